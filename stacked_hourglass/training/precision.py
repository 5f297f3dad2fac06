"""Mixed precision: the Keras dtype policy of a run, and whether this CPU computes bfloat16.

Without bfloat16 instructions (x86's AVX512_BF16, AMX or AVX-NE-CONVERT; Arm's BF16) every
bfloat16 operation is emulated through float32 conversions, so `--mixed_precision=bfloat16`
makes CPU training several times slower instead of faster (BUILD.md, *Benchmarks*, AVX2-only
CPUs); `train` says so in one warning line before it builds anything.
"""

from __future__ import annotations

import keras
import tensorflow as tf

# Linux /proc/cpuinfo flags of the bfloat16 instructions TensorFlow's and oneDNN's bfloat16
# kernels use: x86 "flags" (AVX512_BF16, AMX-BF16, AVX-NE-CONVERT) and Arm "Features".
BF16_CPU_FLAGS = frozenset({"avx512_bf16", "amx_bf16", "avx_ne_convert", "bf16"})
CPUINFO = "/proc/cpuinfo"


def set_precision_policy(mixed_precision: str) -> str:
    """Sets Keras's global dtype policy; returns the policy name.

    Args:
        mixed_precision: "none", "float16", "bfloat16" or "auto" (float16 where a GPU is
            visible, else none).
    """
    if mixed_precision == "auto":
        mixed_precision = "float16" if tf.config.list_logical_devices("GPU") else "none"
    policy = {"none": "float32", "float16": "mixed_float16", "bfloat16": "mixed_bfloat16"}[
        mixed_precision
    ]
    keras.mixed_precision.set_global_policy(policy)
    return policy


def cpu_flags(cpuinfo: str) -> frozenset[str] | None:
    """The CPU feature flags a Linux `/proc/cpuinfo` text lists (x86 `flags`, Arm `Features`)
    for its first processor; None when it lists none."""
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("flags", "Features"):
            return frozenset(value.split())
    return None


def read_cpu_flags(path: str = CPUINFO) -> frozenset[str] | None:
    """`cpu_flags` of this machine; None where `path` does not exist (not Linux) or cannot be
    read: the caller then knows nothing and assumes nothing."""
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return cpu_flags(f.read())
    except OSError:
        return None


def emulated_bfloat16_warning(policy: str, gpu: bool, flags: frozenset[str] | None) -> str | None:
    """The warning for a bfloat16 policy on a CPU without bfloat16 instructions, else None.

    Args:
        policy: the Keras dtype policy name (`set_precision_policy`'s result).
        gpu: whether a GPU is visible (the model then runs there; no warning).
        flags: this CPU's flags (`read_cpu_flags`); None (unknown): no warning.
    """
    if policy != "mixed_bfloat16" or gpu or flags is None or flags & BF16_CPU_FLAGS:
        return None
    return (
        "--mixed_precision=bfloat16 on a CPU without bfloat16 instructions (/proc/cpuinfo "
        "lists none of AVX512_BF16, AMX-BF16, AVX-NE-CONVERT or Arm's BF16): every bfloat16 "
        "operation is emulated, and training is several times slower than with "
        "--mixed_precision=none"
    )
