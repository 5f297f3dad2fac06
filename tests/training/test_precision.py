"""The dtype policy, and the warning for bfloat16 on a CPU that has to emulate it."""

from __future__ import annotations

import keras
import pytest

from stacked_hourglass import train
from stacked_hourglass.training import precision

# Shortened /proc/cpuinfo texts of real CPUs (first processor, then the second's first line).
AVX2_EPYC = """processor\t: 0
vendor_id\t: AuthenticAMD
model name\t: AMD EPYC 7B12
flags\t\t: fpu vme sse sse2 ssse3 fma sse4_1 sse4_2 avx f16c avx2 bmi2 sha_ni
bogomips\t: 4500.00

processor\t: 1
"""
SAPPHIRE_RAPIDS = (
    "processor\t: 0\nflags\t\t: fpu sse2 avx avx2 avx512f avx512_vnni avx512_bf16 amx_bf16 "
    "amx_tile amx_int8\n"
)
GENOA = "processor\t: 0\nflags\t\t: avx2 avx512f avx512_vnni avx512_bf16\n"
GRAVITON3 = "processor\t: 0\nBogoMIPS\t: 2100.00\nFeatures\t: fp asimd sve i8mm bf16 rng\n"
GRAVITON2 = "processor\t: 0\nFeatures\t: fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics\n"


def test_set_precision_policy():
    try:
        assert precision.set_precision_policy("bfloat16") == "mixed_bfloat16"
        assert keras.mixed_precision.global_policy().name == "mixed_bfloat16"
        assert precision.set_precision_policy("float16") == "mixed_float16"
        assert precision.set_precision_policy("none") == "float32"
        assert keras.mixed_precision.global_policy().name == "float32"
    finally:
        keras.mixed_precision.set_global_policy("float32")


@pytest.mark.parametrize(
    "cpuinfo, native",
    [(AVX2_EPYC, False), (SAPPHIRE_RAPIDS, True), (GENOA, True), (GRAVITON3, True),
     (GRAVITON2, False)],
    ids=["avx2_epyc", "sapphire_rapids", "genoa", "graviton3", "graviton2"],
)  # fmt: skip
def test_cpu_flags_and_native_bfloat16(cpuinfo, native):
    flags = precision.cpu_flags(cpuinfo)
    assert "avx2" in flags or "asimd" in flags
    warning = precision.emulated_bfloat16_warning("mixed_bfloat16", False, flags)
    assert (warning is None) == native


def test_cpu_flags_of_a_text_without_flags_is_none(tmp_path):
    assert precision.cpu_flags("processor\t: 0\nmodel name\t: x\n") is None
    assert precision.read_cpu_flags(str(tmp_path / "missing")) is None
    (tmp_path / "cpuinfo").write_text(AVX2_EPYC)
    assert precision.read_cpu_flags(str(tmp_path / "cpuinfo")) == precision.cpu_flags(AVX2_EPYC)


def test_no_warning_for_other_policies_a_gpu_or_an_unknown_cpu():
    avx2 = precision.cpu_flags(AVX2_EPYC)
    assert precision.emulated_bfloat16_warning("mixed_bfloat16", False, avx2)
    assert precision.emulated_bfloat16_warning("float32", False, avx2) is None
    assert precision.emulated_bfloat16_warning("mixed_float16", False, avx2) is None
    assert precision.emulated_bfloat16_warning("mixed_bfloat16", True, avx2) is None
    assert precision.emulated_bfloat16_warning("mixed_bfloat16", False, None) is None


def test_train_warns_in_one_line_before_it_reads_anything(capsys, monkeypatch, tmp_path):
    """On an AVX2-only CPU a bfloat16 run says so before its first check (here the missing
    training files, which then end it)."""
    monkeypatch.setattr(precision, "read_cpu_flags", lambda: precision.cpu_flags(AVX2_EPYC))
    pattern = f"{tmp_path}/nothing-*.tfrecord"
    try:
        status = train.main(
            ["--mixed_precision=bfloat16", f"--train_files={pattern}", f"--model_dir={tmp_path}/r"]
        )
    finally:
        keras.mixed_precision.set_global_policy("float32")
    err = capsys.readouterr().err.strip().splitlines()
    assert status == 1
    assert err == [
        "train: warning: " + precision.emulated_bfloat16_warning("mixed_bfloat16", False, set()),
        f"train: error: No TFRecord files match {pattern!r}",
    ]
