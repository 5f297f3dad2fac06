"""Reading and writing PyTorch checkpoints without torch (stacked_hourglass.weights.torch_pickle).

The reference checkpoints in ../shared/data/reference-weights were written by PyTorch 2.13; tests
that read them skip when that folder is absent. Hostile and damaged files are made here.
"""

import collections
import hashlib
import pickle
import struct
import types
import zipfile
from pathlib import Path

import numpy as np
import pytest

from stacked_hourglass.weights import torch_pickle
from stacked_hourglass.weights.torch_pickle import (
    CheckpointError,
    TensorStub,
    extract_state_dict,
    load_checkpoint,
    open_checkpoint,
)
from stacked_hourglass.weights.torch_pickle_writer import save_checkpoint

REFERENCE = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "reference-weights"
BEARPAW = "bearpaw_hg_s2_b1.pth.tar"
PRINCETON = "princeton_2hg_f64.pt"
# sha256 over (name, dtype, shape, bytes) of every state_dict entry as torch.load(weights_only=True)
# of PyTorch 2.13 returns them: load_checkpoint must give exactly the same tensors.
TORCH_DIGESTS = {
    BEARPAW: "987dc192a7ad3da6d48facc67a668c5e7cec0b4d2d6178b62be2fbed5f27d396",
    PRINCETON: "e5ef8017433883764b34f3f0374997c43ae957eeedf768fdad58089aca291768",
}


def reference_file(name: str) -> Path:
    path = REFERENCE / name
    if not path.is_file():
        pytest.skip(f"reference checkpoint {path} is absent (shared/data/reference-weights)")
    return path


def digest(state) -> str:
    h = hashlib.sha256()
    for key, value in state.items():
        h.update(key.encode())
        h.update(str(value.dtype).encode())
        h.update(str(tuple(value.shape)).encode())
        h.update(np.ascontiguousarray(value).tobytes())
    return h.hexdigest()


def write_zip(path: Path, data_pkl: bytes, storages: dict[str, bytes], folder: str = "archive"):
    """A zip-format checkpoint from a hand-made data.pkl and raw storage records."""
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr(f"{folder}/data.pkl", data_pkl)
        archive.writestr(f"{folder}/byteorder", b"little")
        for key, raw in storages.items():
            archive.writestr(f"{folder}/data/{key}", raw)
        archive.writestr(f"{folder}/version", b"3\n")


def legacy_bytes(main_pickle: bytes, storages: list[tuple[str, int, bytes]]) -> bytes:
    """A legacy-format checkpoint from a hand-made main pickle and (key, count, raw) storages."""
    info = {"protocol_version": 1001, "little_endian": True, "type_sizes": {"long": 4}}
    parts = [pickle.dumps(torch_pickle.LEGACY_MAGIC_NUMBER, protocol=2)]
    parts += [pickle.dumps(1001, protocol=2), pickle.dumps(info, protocol=2), main_pickle]
    parts.append(pickle.dumps([key for key, _, _ in storages], protocol=2))
    for _, count, raw in storages:
        parts += [struct.pack("<q", count), raw]
    return b"".join(parts)


def tensor_pickle(offset: int, size: tuple, stride: tuple, numel: int, legacy=False) -> bytes:
    """Protocol-2 pickle of {'t': tensor} viewing float storage '0' with the given geometry."""

    def ints(values):
        return b"(" + b"".join(b"K" + bytes([v]) for v in values) + b"t"

    view = b"N" if legacy else b""
    return (
        b"\x80\x02}(X\x01\x00\x00\x00t"
        b"ctorch._utils\n_rebuild_tensor_v2\n("
        b"(X\x07\x00\x00\x00storagectorch\nFloatStorage\nX\x01\x00\x00\x000X\x03\x00\x00\x00cpu"
        + b"K"
        + bytes([numel])
        + view
        + b"tQK"
        + bytes([offset])
        + ints(size)
        + ints(stride)
        + b"\x89ccollections\nOrderedDict\n)Rt"
        + b"Ru."
    )


def os_system_pickle(command: str) -> bytes:
    """A pickle that calls os.system(command) when loaded with the standard unpickler."""
    encoded = command.encode()
    return b"\x80\x02cos\nsystem\nX" + struct.pack("<I", len(encoded)) + encoded + b"\x85R."


@pytest.mark.parametrize("name, num_tensors", [(BEARPAW, 684), (PRINCETON, 742)])
def test_reference_checkpoints_load_as_torch_loads_them(name, num_tensors):
    path = reference_file(name)
    checkpoint = load_checkpoint(path)
    assert isinstance(checkpoint, dict)
    assert checkpoint["epoch"] == 7
    assert checkpoint["optimizer"] == {}
    state_dict = checkpoint["state_dict"]
    assert type(state_dict) is collections.OrderedDict
    assert len(state_dict) == num_tensors
    assert all(isinstance(v, np.ndarray) and v.flags.c_contiguous for v in state_dict.values())
    assert digest(state_dict) == TORCH_DIGESTS[name]
    tracked = [v for k, v in state_dict.items() if k.endswith("num_batches_tracked")]
    assert tracked and all(v.shape == () and v.dtype == np.int64 for v in tracked)


def test_reference_checkpoint_extras():
    bearpaw = load_checkpoint(reference_file(BEARPAW))
    assert list(bearpaw) == ["epoch", "arch", "state_dict", "perf", "optimizer"]
    assert bearpaw["arch"] == "hg" and bearpaw["perf"] == 0.0
    assert bearpaw["state_dict"]["module.conv1.weight"].shape == (64, 3, 7, 7)
    princeton = load_checkpoint(reference_file(PRINCETON))
    assert list(princeton) == ["state_dict", "optimizer", "epoch"]
    assert princeton["state_dict"]["model.module.pre.0.conv.weight"].shape == (64, 3, 7, 7)


def example_object():
    rng = np.random.default_rng(0)
    state = collections.OrderedDict(
        [
            ("module.conv.weight", rng.standard_normal((4, 3, 2, 2)).astype(np.float32)),
            ("module.bn.num_batches_tracked", np.array(5, np.int64)),
            ("double", rng.standard_normal(5)),
            ("half", rng.standard_normal((3, 2)).astype(np.float16)),
            ("big_endian", np.arange(12, dtype=">f4").reshape(3, 4)),
            ("transposed", rng.standard_normal((3, 4)).astype(np.float32).T),
            ("empty", np.zeros((0, 3), np.float32)),
            ("bool", np.array([True, False])),
            ("uint8", np.arange(5, dtype=np.uint8)),
            ("int8", np.arange(-3, 3, dtype=np.int8)),
            ("int16", np.arange(4, dtype=np.int16)),
            ("int32", np.arange(4, dtype=np.int32)),
            ("complex", np.array([1 + 2j], np.complex64)),
        ]
    )
    return {
        "state_dict": state,
        "epoch": 3,
        "numbers": [0, 255, 256, 70000, -5, 2**40, -(2**70), 1.5, np.float32(0.25)],
        "text": "héllo",
        "tuples": [(), (1,), (1, 2), (1, 2, 3), (1, 2, 3, 4)],
        "flags": (True, False, None),
        "optimizer": {
            "state": {0: {"momentum_buffer": np.ones(3, np.float32)}},
            "param_groups": [{"lr": 0.1, "params": [0]}],
        },
    }


def assert_same(loaded, original):
    if isinstance(original, np.ndarray):
        assert isinstance(loaded, np.ndarray)
        assert loaded.dtype == original.dtype.newbyteorder("=")
        assert loaded.shape == original.shape
        np.testing.assert_array_equal(loaded, original)
    elif isinstance(original, dict):
        assert type(loaded) is type(original)
        assert list(loaded) == list(original)
        for key in original:
            assert_same(loaded[key], original[key])
    elif isinstance(original, list | tuple):
        assert type(loaded) is type(original) and len(loaded) == len(original)
        for a, b in zip(loaded, original, strict=True):
            assert_same(a, b)
    else:
        assert loaded == original


@pytest.mark.parametrize("format", ["zip", "legacy"])
def test_save_load_round_trip(tmp_path, format):
    original = example_object()
    path = tmp_path / f"checkpoint.{format}"
    save_checkpoint(path, original, format=format)
    with open(path, "rb") as file:
        assert file.read(4) == b"PK\x03\x04" if format == "zip" else file.read(1) == b"\x80"
    assert_same(load_checkpoint(path), original)


def test_zip_records_are_aligned_like_torch(tmp_path):
    path = tmp_path / "aligned.pt"
    save_checkpoint(path, {"w": np.ones((3, 5), np.float32), "b": np.ones(7, np.float64)})
    with zipfile.ZipFile(path) as archive, open(path, "rb") as raw:
        for info in archive.infolist():
            if "/data/" in info.filename:
                raw.seek(info.header_offset)
                header = raw.read(30)
                name_length, extra_length = struct.unpack("<HH", header[26:30])
                assert (info.header_offset + 30 + name_length + extra_length) % 64 == 0


def test_save_rejects_what_torch_cannot_hold(tmp_path):
    with pytest.raises(TypeError, match="object"):
        save_checkpoint(tmp_path / "x.pt", {"x": object()})
    with pytest.raises(TypeError, match="uint16"):
        save_checkpoint(tmp_path / "x.pt", {"x": np.zeros(2, np.uint16)})
    with pytest.raises(ValueError, match="format"):
        save_checkpoint(tmp_path / "x.pt", {}, format="tar")


def write_strided(path, legacy):
    """A checkpoint {"t": a [2, 3] view at offset 2, strides (1, 2), of the storage 0..9}."""
    storage = np.arange(10, dtype="<f4")
    data_pkl = tensor_pickle(offset=2, size=(2, 3), stride=(1, 2), numel=10, legacy=legacy)
    if legacy:
        path.write_bytes(legacy_bytes(data_pkl, [("0", 10, storage.tobytes())]))
    else:
        write_zip(path, data_pkl, {"0": storage.tobytes()}, folder="any_name")
    return path


@pytest.mark.parametrize("legacy", [False, True])
def test_storage_offset_and_stride_are_respected(tmp_path, legacy):
    tensor = load_checkpoint(write_strided(tmp_path / "strided.pt", legacy))["t"]
    np.testing.assert_array_equal(tensor, [[2, 4, 6], [3, 5, 7]])
    assert tensor.flags.c_contiguous and tensor.flags.writeable


def test_tensor_reaching_past_its_storage_is_refused(tmp_path):
    path = tmp_path / "overflow.pt"
    write_zip(path, tensor_pickle(2, (3, 4), (4, 1), numel=10), {"0": bytes(40)})
    with pytest.raises(CheckpointError, match="past the end of storage"):
        load_checkpoint(path)


@pytest.mark.parametrize("format", ["zip", "legacy"])
@pytest.mark.parametrize("keep", [0.2, 0.5, 0.9, 0.999])
def test_truncated_file(tmp_path, format, keep):
    path = tmp_path / "whole.pt"
    save_checkpoint(path, example_object(), format=format)
    data = path.read_bytes()
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(data[: int(len(data) * keep)])
    with pytest.raises(CheckpointError, match="truncated") as error:
        load_checkpoint(truncated)
    message = str(error.value)
    assert message.startswith(str(truncated)) and "\n" not in message


def test_corrupt_storage_record_is_detected(tmp_path):
    path = tmp_path / "good.pt"
    save_checkpoint(path, {"w": np.ones(64, np.float32)})
    data = bytearray(path.read_bytes())
    position = data.index(np.ones(64, np.float32).tobytes())
    data[position + 10] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="corrupt zip archive"):
        load_checkpoint(path)


def test_missing_storage_record(tmp_path):
    path = tmp_path / "missing.pt"
    write_zip(path, tensor_pickle(0, (2,), (1,), numel=2), {})
    with pytest.raises(CheckpointError, match="missing storage record archive/data/0"):
        load_checkpoint(path)
    path.write_bytes(legacy_bytes(tensor_pickle(0, (2,), (1,), numel=2, legacy=True), []))
    with pytest.raises(CheckpointError, match="missing storage record '0'"):
        load_checkpoint(path)


def test_short_storage_record(tmp_path):
    path = tmp_path / "short.pt"
    write_zip(path, tensor_pickle(0, (4,), (1,), numel=4), {"0": bytes(8)})
    with pytest.raises(CheckpointError, match="declares 8 bytes; its 4 elements"):
        load_checkpoint(path)


@pytest.mark.parametrize("format", ["zip", "legacy", "plain"])
def test_os_system_is_refused_and_never_called(tmp_path, format):
    marker = tmp_path / "pwned"
    hostile = os_system_pickle(f"touch {marker}")
    path = tmp_path / "hostile.pt"
    if format == "zip":
        write_zip(path, hostile, {})
    elif format == "legacy":
        path.write_bytes(legacy_bytes(hostile, []))
    else:  # the very first pickle of the file, where the magic number belongs
        path.write_bytes(hostile)
    with pytest.raises(CheckpointError, match=r"os\.system") as error:
        load_checkpoint(path)
    assert str(error.value).startswith(str(path))
    assert not marker.exists()


class _Exploit:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        import os

        return (os.system, (f"touch {self.marker}",))


def test_reduce_exploit_inside_a_checkpoint_is_refused(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "hostile.pt"
    inner = pickle.dumps({"state_dict": {"x": _Exploit(marker)}}, protocol=2)
    write_zip(path, inner, {})
    with pytest.raises(CheckpointError, match=r"refused to load: the pickle asks for \w+\.system"):
        load_checkpoint(path)
    assert not marker.exists()


def test_whole_pickled_model_is_refused_with_a_hint(tmp_path):
    path = tmp_path / "model.pt"
    data_pkl = b"\x80\x02ctorch.nn.modules.linear\nLinear\n)\x81."
    write_zip(path, data_pkl, {})
    with pytest.raises(CheckpointError, match=r"torch\.nn\.modules\.linear\.Linear.*state_dict"):
        load_checkpoint(path)


def test_allowed_callables_cannot_be_modified_by_a_pickle(tmp_path):
    path = tmp_path / "build.pt"
    # GLOBAL _rebuild_tensor_v2, then BUILD with state (None, {'__defaults__': None}).
    data_pkl = b"\x80\x02ctorch._utils\n_rebuild_tensor_v2\nN}X\x0c\x00\x00\x00__defaults__Ns\x86b."
    write_zip(path, data_pkl, {})
    with pytest.raises(CheckpointError, match="set the state"):
        load_checkpoint(path)
    save_checkpoint(path, {"w": np.ones(2, np.float32)})
    np.testing.assert_array_equal(load_checkpoint(path)["w"], [1, 1])


def test_plain_pickle_is_not_a_checkpoint(tmp_path):
    path = tmp_path / "plain.pkl"
    path.write_bytes(pickle.dumps({"a": [1, 2, 3]}))
    with pytest.raises(CheckpointError, match="not a PyTorch checkpoint.*magic number"):
        load_checkpoint(path)


@pytest.mark.parametrize(
    "content, message",
    [
        (b"", "empty file"),
        (b"hello, world" * 10, "neither a zip archive nor a pickle"),
        (b"PK\x03\x04" + bytes(100), "truncated or corrupt zip archive"),
    ],
)
def test_other_files_are_not_checkpoints(tmp_path, content, message):
    path = tmp_path / "other.pt"
    path.write_bytes(content)
    with pytest.raises(CheckpointError, match=message):
        load_checkpoint(path)


def test_zip_without_data_pkl(tmp_path):
    path = tmp_path / "other.zip"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("readme.txt", "not a checkpoint")
    with pytest.raises(CheckpointError, match="no FOLDER/data.pkl"):
        load_checkpoint(path)


def test_checkpoint_without_tensors_fails_at_state_dict_extraction(tmp_path):
    path = tmp_path / "lists.pt"
    save_checkpoint(path, {"a": [1, 2], "b": {"c": [3.0]}})
    loaded = load_checkpoint(path)
    assert loaded == {"a": [1, 2], "b": {"c": [3.0]}}
    with pytest.raises(CheckpointError, match="no tensors found"):
        extract_state_dict(loaded, path)


def test_extract_state_dict_strips_wrappers_and_counters():
    w = np.ones((2, 2), np.float32)
    checkpoint = {
        "epoch": 1,
        "state_dict": collections.OrderedDict(
            [
                ("model.module.a.weight", w),
                ("module.b.weight", w),
                ("model.c.weight", w),
                ("d.weight", w),
                ("module.bn.num_batches_tracked", np.array(3)),
            ]
        ),
    }
    state = extract_state_dict(checkpoint, "x.pt")
    assert list(state) == ["a.weight", "b.weight", "c.weight", "d.weight"]
    assert extract_state_dict({"w": w}) == {"w": w}


@pytest.mark.parametrize(
    "obj, message",
    [
        ({"state_dict": {"module.a": np.ones(1), "a": np.ones(1)}}, "two entries are named 'a'"),
        ({"state_dict": {"a": np.ones(1), "b": 3}}, "entry 'b' is a int"),
        ({"epoch": 3, "w": np.ones(1)}, "entry 'epoch' is a int"),
        ({"state_dict": [np.ones(1)]}, "is a list, not a mapping"),
        ([1, 2], "is a list, not a mapping"),
    ],
)
def test_extract_state_dict_errors(obj, message):
    with pytest.raises(CheckpointError, match=message) as error:
        extract_state_dict(obj, "file.pt")
    assert str(error.value).startswith("file.pt: ")


def test_namespace_and_numpy_scalars_in_checkpoints(tmp_path):
    import argparse

    # What torch.save (protocol 2) writes for training options and a numpy best accuracy.
    inner = pickle.dumps(
        {"args": argparse.Namespace(lr=0.1, arch="hg"), "best": np.float64(0.5)}, protocol=2
    )
    path = tmp_path / "extras.pt"
    write_zip(path, inner, {})
    loaded = load_checkpoint(path)
    assert isinstance(loaded["args"], types.SimpleNamespace)
    assert (loaded["args"].lr, loaded["args"].arch) == (0.1, "hg")
    assert loaded["best"] == 0.5 and loaded["best"].dtype == np.float64


@pytest.mark.parametrize(
    "data_pkl, message",
    [
        # BYTEARRAY8 of 2**60 bytes: refused before the unpickler tries to allocate it.
        (b"\x80\x05\x96" + struct.pack("<Q", 2**60) + b"xx.", "truncated or corrupt pickle"),
        (b"\x80\x05\x96" + struct.pack("<Q", 2) + b"xx.", "BYTEARRAY8 at byte 2 is not allowed"),
        (b"\x80\x02\xff.", "truncated or corrupt pickle"),
    ],
)
def test_malformed_pickles(tmp_path, data_pkl, message):
    path = tmp_path / "malformed.pt"
    write_zip(path, data_pkl, {})
    with pytest.raises(CheckpointError, match=message):
        load_checkpoint(path)


def _replace_member(path: Path, name_end: str, raw: bytes) -> None:
    """Rewrites a zip checkpoint with one member's bytes replaced (deflated)."""
    with zipfile.ZipFile(path) as archive:
        members = [(info.filename, archive.read(info)) for info in archive.infolist()]
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in members:
            data = raw if name.endswith(name_end) else data
            archive.writestr(name, data, compress_type=zipfile.ZIP_DEFLATED)


def _peak_python_bytes(function) -> int:
    import tracemalloc

    tracemalloc.start()
    try:
        function()
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    return peak


def test_storage_that_inflates_beyond_its_tensors_is_refused_before_inflating(tmp_path):
    path = tmp_path / "bomb.pt"
    save_checkpoint(path, {"t": np.ones(2, np.float32)})
    _replace_member(path, "/data/0", bytes(64 * 2**20))  # deflates to ~64 KB
    assert path.stat().st_size < 2**20

    def load():
        with pytest.raises(CheckpointError, match="declares 67108864 bytes; its 2 elements"):
            load_checkpoint(path)

    assert _peak_python_bytes(load) < 4 * 2**20  # nothing near 64 MiB was inflated


def test_storages_above_the_limit_are_refused_before_inflating(tmp_path):
    path = tmp_path / "large.pt"
    save_checkpoint(path, {"t": np.zeros(2**22, np.float32)})  # 16 MiB, deflates to ~16 KB
    _replace_member(path, "/data/0", bytes(16 * 2**20))

    def load():
        with pytest.raises(CheckpointError, match="declare 16777216 bytes in all, above the lim"):
            load_checkpoint(path, max_bytes=2**20)

    assert _peak_python_bytes(load) < 4 * 2**20
    assert load_checkpoint(path)["t"].shape == (2**22,)


def test_unreferenced_storage_member_is_refused(tmp_path):
    path = tmp_path / "extra.pt"
    save_checkpoint(path, {"t": np.ones(2, np.float32)})
    with zipfile.ZipFile(path, "a") as archive:
        folder = archive.namelist()[0].split("/")[0]
        archive.writestr(f"{folder}/data/99", bytes(8))
    with pytest.raises(CheckpointError, match="data/99 is not referenced by any tensor"):
        load_checkpoint(path)


def test_whole_storage_tensors_are_not_copied_twice(tmp_path):
    path = tmp_path / "big.pt"
    weights = np.arange(2**20, dtype=np.float32).reshape(1024, 1024)
    save_checkpoint(path, {"w": weights})
    loaded = {}

    def load():
        loaded.update(load_checkpoint(path))

    peak = _peak_python_bytes(load)
    np.testing.assert_array_equal(loaded["w"], weights)
    assert loaded["w"].flags.writeable and loaded["w"].flags.c_contiguous
    # One copy of the 4 MiB tensor (plus the archive's buffers), not two.
    assert peak < 1.5 * weights.nbytes, peak


def _tensors(obj, found):
    """Every array in a loaded object, depth first, in order."""
    if isinstance(obj, np.ndarray):
        found.append(obj)
    elif isinstance(obj, dict):
        for value in obj.values():
            _tensors(value, found)
    elif isinstance(obj, list | tuple):
        for value in obj:
            _tensors(value, found)
    return found


@pytest.mark.parametrize("format", ["zip", "legacy"])
def test_open_checkpoint_reads_each_tensor_when_asked(tmp_path, format):
    path = tmp_path / f"checkpoint.{format}"
    save_checkpoint(path, example_object(), format=format)
    eager = _tensors(load_checkpoint(path), [])
    with open_checkpoint(path) as opened:
        stubs = _tensors(opened.object, [])
        assert all(isinstance(stub, TensorStub) for stub in stubs)
        assert [(s.shape, s.dtype) for s in stubs] == [(e.shape, e.dtype) for e in eager]
        assert all(stub.size == 0 or stub.strides == (0,) * stub.ndim for stub in stubs)
        for stub, expected in zip(stubs, eager, strict=True):
            loaded = opened.load(stub)
            assert loaded.dtype == expected.dtype and loaded.flags.c_contiguous
            np.testing.assert_array_equal(loaded, expected)


@pytest.mark.parametrize("legacy", [False, True])
def test_open_checkpoint_respects_offset_and_stride(tmp_path, legacy):
    with open_checkpoint(write_strided(tmp_path / "strided.pt", legacy)) as opened:
        np.testing.assert_array_equal(opened.load(opened.object["t"]), [[2, 4, 6], [3, 5, 7]])


@pytest.mark.parametrize("format", ["zip", "legacy"])
def test_open_checkpoint_reads_no_storage_until_asked(tmp_path, format):
    """Opening costs the pickle, not the tensors: each is read alone, in an array of its own."""
    path = tmp_path / f"big.{format}"
    weights = {f"w{i}": np.full((512, 512), i, np.float32) for i in range(8)}  # 8 MiB in all
    save_checkpoint(path, weights, format=format)
    opened = []
    # Legacy: the file is read once for its pickles and storage list, then let go.
    whole = path.stat().st_size if format == "legacy" else 0
    assert _peak_python_bytes(lambda: opened.append(open_checkpoint(path))) < whole + (1 << 20)
    with opened[0] as checkpoint:
        loaded = []
        peak = _peak_python_bytes(lambda: loaded.append(checkpoint.load(checkpoint.object["w3"])))
        # One copy of the tensor, plus the 1 MiB chunk a zip member is inflated through.
        assert peak < weights["w3"].nbytes + (1 << 20) + (64 << 10), peak
        np.testing.assert_array_equal(loaded[0], weights["w3"])
