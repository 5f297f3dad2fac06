"""PyTorch checkpoints written with the standard library and numpy only (no torch).

`save_checkpoint` writes numpy arrays as tensors in either of `torch.save`'s formats (described in
`torch_pickle`, the reader), readable by `torch_pickle.load_checkpoint` and by
`torch.load(weights_only=True)`. The tests write their checkpoints with it, and
`importer.export_reference_state` + `save_checkpoint` turn a model of this package into a
reference implementation's checkpoint.
"""

from __future__ import annotations

import collections
import hashlib
import os
import pickle
import struct
import zipfile

import numpy as np

from stacked_hourglass.weights.torch_pickle import (
    LEGACY_MAGIC_NUMBER,
    LEGACY_PROTOCOL_VERSION,
    STORAGE_CODES,
)

_ZIP_ALIGNMENT = 64  # torch aligns storage records so that they can be memory-mapped
# numpy dtype (native) -> storage class name.
_WRITABLE_STORAGES = {
    np.dtype(code): name
    for name, code in STORAGE_CODES.items()
    if name not in ("BFloat16Storage", "UntypedStorage")
}


class _PickleWriter:
    """Writes a pickle (protocol 2, as torch.save) of plain containers and numpy arrays as tensors.

    Written by hand rather than with `pickle.Pickler`, which would import torch to name its
    functions.
    """

    def __init__(self, legacy: bool):
        self._legacy = legacy
        self._out = bytearray()
        self.storages: list[tuple[str, int, bytes]] = []  # (key, element count, little-endian)

    def dumps(self, obj) -> bytes:
        self._out += pickle.PROTO + b"\x02"
        self._save(obj)
        self._out += pickle.STOP
        return bytes(self._out)

    def _global(self, module: str, name: str):
        self._out += pickle.GLOBAL + f"{module}\n{name}\n".encode("ascii")

    def _save(self, obj):
        out = self._out
        if obj is None:
            out += pickle.NONE
        elif isinstance(obj, bool | np.bool_):
            out += pickle.NEWTRUE if obj else pickle.NEWFALSE
        elif isinstance(obj, np.ndarray):
            self._save_tensor(obj)
        elif isinstance(obj, np.generic):
            self._save(obj.item())
        elif isinstance(obj, int):
            self._save_int(obj)
        elif isinstance(obj, float):
            out += pickle.BINFLOAT + struct.pack(">d", obj)
        elif isinstance(obj, str):
            encoded = obj.encode("utf-8", "surrogatepass")
            out += pickle.BINUNICODE + struct.pack("<I", len(encoded)) + encoded
        elif isinstance(obj, tuple):
            self._save_tuple(obj)
        elif isinstance(obj, list):
            out += pickle.EMPTY_LIST
            if obj:
                out += pickle.MARK
                for item in obj:
                    self._save(item)
                out += pickle.APPENDS
        elif isinstance(obj, dict):
            if isinstance(obj, collections.OrderedDict):
                self._global("collections", "OrderedDict")
                out += pickle.EMPTY_TUPLE + pickle.REDUCE
            else:
                out += pickle.EMPTY_DICT
            if obj:
                out += pickle.MARK
                for key, value in obj.items():
                    self._save(key)
                    self._save(value)
                out += pickle.SETITEMS
        else:
            raise TypeError(
                f"save_checkpoint writes None, bool, int, float, str, tuple, list, dict and numpy "
                f"arrays, not {type(obj).__name__}"
            )

    def _save_int(self, value: int):
        if 0 <= value < 0x100:
            self._out += pickle.BININT1 + bytes([value])
        elif 0 <= value < 0x10000:
            self._out += pickle.BININT2 + struct.pack("<H", value)
        elif -(2**31) <= value < 2**31:
            self._out += pickle.BININT + struct.pack("<i", value)
        else:
            encoded = value.to_bytes((value.bit_length() >> 3) + 1, "little", signed=True)
            if len(encoded) > 255:
                raise ValueError(f"integer too large to write: {value}")
            self._out += pickle.LONG1 + bytes([len(encoded)]) + encoded

    def _save_tuple(self, items: tuple):
        if not items:
            self._out += pickle.EMPTY_TUPLE
            return
        if len(items) > 3:
            self._out += pickle.MARK
        for item in items:
            self._save(item)
        self._out += {1: pickle.TUPLE1, 2: pickle.TUPLE2, 3: pickle.TUPLE3}.get(
            len(items)
        ) or pickle.TUPLE

    def _save_tensor(self, array: np.ndarray):
        native = array.dtype.newbyteorder("=")
        storage_name = _WRITABLE_STORAGES.get(native)
        if storage_name is None:
            raise TypeError(f"save_checkpoint cannot write {array.dtype} arrays as tensors")
        little = native.newbyteorder("<") if native.itemsize > 1 else native
        data = np.ascontiguousarray(array, dtype=little)
        key = str(len(self.storages))
        self.storages.append((key, data.size, data.tobytes()))
        strides = [1] * array.ndim
        for i in range(array.ndim - 2, -1, -1):
            strides[i] = strides[i + 1] * array.shape[i + 1]
        self._global("torch._utils", "_rebuild_tensor_v2")
        self._out += pickle.MARK + pickle.MARK
        self._save("storage")
        self._global("torch", storage_name)
        self._save(key)
        self._save("cpu")
        self._save(data.size)
        if self._legacy:
            self._out += pickle.NONE
        self._out += pickle.TUPLE + pickle.BINPERSID
        self._save(0)  # storage offset
        self._save_tuple(tuple(int(n) for n in array.shape))
        self._save_tuple(tuple(strides))
        self._out += pickle.NEWFALSE  # requires_grad
        self._global("collections", "OrderedDict")  # backward hooks
        self._out += pickle.EMPTY_TUPLE + pickle.REDUCE
        self._out += pickle.TUPLE + pickle.REDUCE


def _alignment_padding(offset: int, filename: str) -> bytes:
    """A zip extra field that puts a record's data at a multiple of 64 bytes, as torch does."""
    data_start = offset + 30 + len(filename.encode("utf-8")) + 4
    padding = -data_start % _ZIP_ALIGNMENT
    return struct.pack("<HH", 0x4246, padding) + b"Z" * padding  # header id "FB"


def _write_zip(path, data_pkl: bytes, storages) -> None:
    prefix = "archive/"
    serialization_id = str(int.from_bytes(hashlib.sha256(data_pkl).digest()[:16], "big"))
    records = [
        ("data.pkl", data_pkl),
        (".format_version", b"1"),
        (".storage_alignment", str(_ZIP_ALIGNMENT).encode()),
        ("byteorder", b"little"),
        *((f"data/{key}", raw) for key, _, raw in storages),
        ("version", b"3\n"),
        (".data/serialization_id", serialization_id.zfill(40).encode()),
    ]
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as archive:
        for name, payload in records:
            info = zipfile.ZipInfo(prefix + name, date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_STORED
            if name.startswith("data/"):
                info.extra = _alignment_padding(archive.fp.tell(), info.filename)
            archive.writestr(info, payload)


def _write_legacy(path, main_pickle: bytes, storages) -> None:
    system_info = {
        "protocol_version": LEGACY_PROTOCOL_VERSION,
        "little_endian": True,
        "type_sizes": {"short": 2, "int": 4, "long": 4},
    }
    with open(path, "wb") as file:
        for header in (LEGACY_MAGIC_NUMBER, LEGACY_PROTOCOL_VERSION, system_info):
            file.write(pickle.dumps(header, protocol=2))
        file.write(main_pickle)
        file.write(pickle.dumps([key for key, _, _ in storages], protocol=2))
        for _, count, raw in storages:
            file.write(struct.pack("<q", count))
            file.write(raw)


def save_checkpoint(path: str | os.PathLike, obj, format: str = "zip") -> None:
    """Writes `obj` as `torch.save` would, numpy arrays becoming tensors.

    The file is read back by `load_checkpoint` and by `torch.load(path, weights_only=True)`.

    Args:
        path: the file to write.
        obj: None, bools, ints, floats, strings, tuples, lists, dicts (`collections.OrderedDict`
            kept as such) and numpy arrays of float16/32/64, (u)int8, int16/32/64, bool or
            complex64/128, nested freely. Every array gets its own storage.
        format: "zip" (PyTorch >= 1.6's default) or "legacy" (the pre-1.6 pickle format).

    Raises:
        TypeError: `obj` holds something else.
        ValueError: an unknown `format`.
    """
    if format not in ("zip", "legacy"):
        raise ValueError(f"format must be 'zip' or 'legacy', got {format!r}")
    writer = _PickleWriter(legacy=format == "legacy")
    main_pickle = writer.dumps(obj)
    if format == "zip":
        _write_zip(path, main_pickle, writer.storages)
    else:
        _write_legacy(path, main_pickle, writer.storages)
