"""PyTorch checkpoints read and written with the standard library and numpy only (no torch).

PyTorch saves a checkpoint (`torch.save`) in one of two formats:

- zip (PyTorch >= 1.6, the default): a zip archive with one top-level folder (named after the file
  or "archive") holding `data.pkl`, the pickled object, and `data/<key>`, one raw record per
  storage, in the byte order named by the `byteorder` record;
- legacy (older PyTorch, and `_use_new_zipfile_serialization=False`): five pickles in a row (magic
  number, protocol version 1001, system info, the object, the list of storage keys), then each
  storage as an 8-byte little-endian element count and its little-endian elements.

In both, a tensor is pickled as a call of `torch._utils._rebuild_tensor_v2(storage, offset, size,
stride, ...)` whose storage is a persistent id `('storage', torch.FloatStorage, key, location,
numel[, view])`. `load_checkpoint` unpickles with an allow-list: tensors, parameters, storages,
`collections.OrderedDict`, `torch.device`, `argparse.Namespace`, numpy number scalars and bytes
(`_codecs.encode` of a latin-1 string) come back, tensors as numpy arrays; any other global (a
pickle calling `os.system`, a whole `nn.Module`) is refused before anything is called, and the
opcodes are scanned first so that a corrupt length cannot make the unpickler allocate it.
`torch_pickle_writer.save_checkpoint` writes numpy arrays back as tensors in either format.

`open_checkpoint` does the same checks but reads no storage: each tensor is a `TensorStub` (its
shape and dtype, no memory) that `OpenCheckpoint.load` reads when asked, so that a reader
converting tensors one at a time (the importer) never holds the whole checkpoint.
"""

from __future__ import annotations

import collections
import contextlib
import functools
import io
import os
import pickle
import pickletools
import struct
import types
import zipfile
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from stacked_hourglass.utils.errors import one_line

# `torch.serialization.MAGIC_NUMBER` and `PROTOCOL_VERSION` of the legacy format.
LEGACY_MAGIC_NUMBER = 0x1950A86A20F9469CFC6C
LEGACY_PROTOCOL_VERSION = 1001

_ZIP_SIGNATURES = (b"PK\x03\x04", b"PK\x05\x06")
_STATE_DICT_PREFIXES = ("model.module.", "module.", "model.")

# Storage class name -> numpy type code of one element (byte order added by the format).
STORAGE_CODES = {
    "DoubleStorage": "f8",
    "FloatStorage": "f4",
    "HalfStorage": "f2",
    "BFloat16Storage": "u2",  # widened to float32 when a tensor is built
    "LongStorage": "i8",
    "IntStorage": "i4",
    "ShortStorage": "i2",
    "CharStorage": "i1",
    "ByteStorage": "u1",
    "BoolStorage": "b1",
    "ComplexFloatStorage": "c8",
    "ComplexDoubleStorage": "c16",
    "UntypedStorage": "u1",
}


class CheckpointError(ValueError):
    """A file that is not a readable PyTorch checkpoint, or whose contents do not fit.

    The message is one line: the file, then what is wrong with it.
    """


class _Invalid(Exception):
    """Raised inside the unpickler; `load_checkpoint` turns it into a `CheckpointError`."""


def _error(path, message: str) -> CheckpointError:
    return CheckpointError(one_line(f"{os.fspath(path)}: {message}", 1000))


class _Frozen:
    """Base of the objects the unpickler hands out: a pickle cannot change them (BUILD)."""

    __slots__ = ()

    def __setstate__(self, state):
        raise _Invalid(f"the pickle tries to set the state of {self!r}")


class _StorageType(_Frozen):
    """Stands for a `torch.<Name>Storage` class: its element type."""

    __slots__ = ("name", "code")

    def __init__(self, name: str, code: str):
        object.__setattr__(self, "name", name)
        object.__setattr__(self, "code", code)

    def __setattr__(self, key, value):
        raise AttributeError("storage types are immutable")

    def __repr__(self):
        return f"torch.{self.name}"


class _Callable(_Frozen):
    """An allowed global callable; a pickle can call it but not modify it."""

    __slots__ = ("qualified_name", "_function")

    def __init__(self, qualified_name: str, function):
        object.__setattr__(self, "qualified_name", qualified_name)
        object.__setattr__(self, "_function", function)

    def __setattr__(self, key, value):
        raise AttributeError("allowed callables are immutable")

    def __call__(self, *args, **kwargs):
        return self._function(*args, **kwargs)

    def __repr__(self):
        return self.qualified_name


class _Storage:
    """One storage: its key, element type, element count and (once read) its elements."""

    __slots__ = ("key", "type", "numel", "data")

    def __init__(self, key: str, storage_type: _StorageType, numel: int, data):
        self.key = key
        self.type = storage_type
        self.numel = numel
        self.data = data  # 1-D numpy array of `numel` elements, or None before it is read

    def __setstate__(self, state):
        raise _Invalid(f"the pickle tries to set the state of storage {self.key!r}")


class _NamespaceMeta(type):
    def __setattr__(cls, key, value):
        raise _Invalid("the pickle tries to modify argparse.Namespace")


class _Namespace(types.SimpleNamespace, metaclass=_NamespaceMeta):
    """What an `argparse.Namespace` in a checkpoint (training options) is loaded as."""

    def __setstate__(self, state):
        if not isinstance(state, dict) or not all(isinstance(k, str) for k in state):
            raise _Invalid("argparse.Namespace with a state that is not a dict of names")
        self.__dict__.update(state)


_PENDING = object()  # a tensor whose storage has not been read yet (first legacy pass)


class _Deferred:
    """A storage's elements, read only when a tensor of it is loaded (`open_checkpoint`).

    `read()` returns the whole root storage (1-D); a legacy view is the slice [start, stop) of
    its root.
    """

    __slots__ = ("read", "dtype", "start", "stop")

    def __init__(self, read, dtype: np.dtype, start: int = 0, stop: int | None = None):
        self.read, self.dtype, self.start, self.stop = read, dtype, start, stop

    def __getitem__(self, index: slice) -> _Deferred:
        return _Deferred(self.read, self.dtype, self.start + index.start, self.start + index.stop)

    def load(self) -> np.ndarray:
        data = self.read()
        return data if self.stop is None else data[self.start : self.stop]


class TensorStub(np.ndarray):
    """A tensor of a checkpoint opened with `open_checkpoint`, not read yet.

    An array of the tensor's shape and dtype that holds no memory (every element is one shared,
    read-only zero), so that shapes can be checked before anything is inflated;
    `OpenCheckpoint.load` reads its values. `source` is (storage, offset, size, stride).
    """

    def __setstate__(self, state):  # BUILD in a pickle
        raise _Invalid("the pickle tries to set the state of a tensor")


def _stub(storage, storage_offset: int, size: tuple, stride: tuple) -> TensorStub:
    dtype = storage.data.dtype.newbyteorder("=")
    if storage.type.name == "BFloat16Storage":
        dtype = np.dtype(np.float32)  # widened when read, as `_tensor_from_storage` does
    stub = np.broadcast_to(np.zeros((), dtype), size).view(TensorStub)
    stub.source = (storage, storage_offset, size, stride)
    return stub


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _int_tuple(value, what: str) -> tuple[int, ...]:
    if not isinstance(value, tuple | list) or not all(_is_int(v) and v >= 0 for v in value):
        raise _Invalid(f"a tensor's {what} is {value!r}, not a tuple of non-negative integers")
    return tuple(value)


def _tensor_from_storage(storage, storage_offset, size, stride):
    if not isinstance(storage, _Storage):
        raise _Invalid(f"a tensor is built from {type(storage).__name__}, not from a storage")
    if not _is_int(storage_offset) or storage_offset < 0:
        raise _Invalid(f"a tensor's storage offset is {storage_offset!r}")
    size = _int_tuple(size, "size")
    stride = _int_tuple(stride, "stride")
    if len(size) != len(stride):
        raise _Invalid(f"a tensor has size {size} but stride {stride}")
    if storage.data is None:
        return _PENDING
    last = storage_offset + sum((n - 1) * s for n, s in zip(size, stride, strict=True))
    if 0 not in size and last >= storage.numel:
        raise _Invalid(
            f"a tensor of size {size}, stride {stride} and offset {storage_offset} reaches "
            f"past the end of storage {storage.key!r} ({storage.numel} elements)"
        )
    if isinstance(storage.data, _Deferred):
        return _stub(storage, storage_offset, size, stride)
    data = storage.data
    native = data.dtype.newbyteorder("=")
    if 0 in size:
        array = np.zeros(size, native)
    else:
        if storage.type.name != "BFloat16Storage" and _is_whole(data, storage_offset, size, stride):
            # The usual tensor: all of a storage inflated for it alone; no second copy.
            return data.reshape(size)
        view = np.lib.stride_tricks.as_strided(
            data[storage_offset:],
            shape=size,
            strides=tuple(s * data.itemsize for s in stride),
            writeable=False,
        )
        array = np.array(view, dtype=native, order="C")  # a copy in native byte order
    if storage.type.name == "BFloat16Storage":
        array = (array.astype(np.uint32) << 16).view(np.float32)
    return array


def _is_whole(data: np.ndarray, storage_offset: int, size, stride) -> bool:
    """Whether a tensor is its whole storage, C-contiguous, in a writable native-order array."""
    contiguous, step = [], 1
    for n in reversed(size):
        contiguous.insert(0, step)
        step *= n
    return (
        storage_offset == 0
        and step == data.size
        and tuple(contiguous) == tuple(stride)
        and data.flags.writeable
        and data.dtype.isnative
        and data.dtype.kind != "V"
    )


def _rebuild_tensor_v2(
    storage, storage_offset, size, stride, requires_grad=False, backward_hooks=None, metadata=None
):
    return _tensor_from_storage(storage, storage_offset, size, stride)


def _rebuild_tensor(storage, storage_offset, size, stride):  # PyTorch < 0.4
    return _tensor_from_storage(storage, storage_offset, size, stride)


def _rebuild_parameter(data, requires_grad=False, backward_hooks=None, state=None):
    if not (data is _PENDING or isinstance(data, np.ndarray)):
        raise _Invalid(f"a parameter wraps {type(data).__name__}, not a tensor")
    return data


def _device(kind, index=None):
    if not isinstance(kind, str) or not (index is None or _is_int(index)):
        raise _Invalid(f"torch.device({kind!r}, {index!r})")
    return kind if index is None else f"{kind}:{index}"


def _numpy_dtype(name, align=False, copy=True):
    if not isinstance(name, str):
        raise _Invalid(f"numpy.dtype({name!r})")
    dtype = np.dtype(name)
    if dtype.kind not in "biufc":
        raise _Invalid(f"numpy.dtype({name!r}) is not a plain number type")
    return np.dtype(name, False, True)  # a private copy: BUILD may then set its state


def _numpy_scalar(dtype, data=None):
    if not isinstance(dtype, np.dtype) or dtype.kind not in "biufc":
        raise _Invalid(f"numpy scalar of type {dtype!r}")
    if not isinstance(data, bytes) or len(data) != dtype.itemsize:
        raise _Invalid(f"numpy scalar of type {dtype} with {type(data).__name__} data")
    return np.frombuffer(data, dtype)[0]


def _codecs_encode(text, encoding="utf-8"):
    # Pickle protocol 2 writes `bytes` (e.g. a numpy scalar's data) as encode(str, "latin1").
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
        raise _Invalid(f"_codecs.encode of {type(text).__name__} as {encoding!r}")
    return text.encode("latin1")


def _allowed_globals() -> dict:
    allowed = {
        ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor_v2,
        ("torch._utils", "_rebuild_tensor"): _rebuild_tensor,
        ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
        ("torch._utils", "_rebuild_parameter_with_state"): _rebuild_parameter,
        ("collections", "OrderedDict"): collections.OrderedDict,
        ("torch", "device"): _device,
        ("_codecs", "encode"): _codecs_encode,
        ("numpy", "dtype"): _numpy_dtype,
        ("numpy.core.multiarray", "scalar"): _numpy_scalar,
        ("numpy._core.multiarray", "scalar"): _numpy_scalar,
    }
    result = {key: _Callable(f"{key[0]}.{key[1]}", fn) for key, fn in allowed.items()}
    for name, code in STORAGE_CODES.items():
        result["torch", name] = _StorageType(name, code)
    result["torch.storage", "UntypedStorage"] = result["torch", "UntypedStorage"]
    result["argparse", "Namespace"] = _Namespace  # a class: pickled with NEWOBJ + BUILD
    return result


_ALLOWED_GLOBALS = types.MappingProxyType(_allowed_globals())


class _RestrictedUnpickler(pickle.Unpickler):
    """Unpickler that resolves only allowed globals and hands storage ids to `load_storage`."""

    def __init__(self, file, load_storage=None):
        super().__init__(file)
        self._load_storage = load_storage

    def find_class(self, module, name):
        try:
            return _ALLOWED_GLOBALS[module, name]
        except (KeyError, TypeError):
            hint = "loading it would run that code"
            if str(module).startswith("torch.nn.") or str(module).startswith("__torch__"):
                hint = "a whole pickled model or TorchScript, not a state dict: save state_dict()"
            raise _Invalid(
                f"refused to load: the pickle asks for {module}.{name}, which is not a tensor, "
                f"a storage or a plain container ({hint})"
            ) from None

    def persistent_load(self, pid):
        if self._load_storage is None:
            raise _Invalid(f"unexpected persistent id {pid!r} outside the checkpoint's object")
        return self._load_storage(pid)


# Protocol-5 out-of-band buffer opcodes: never in a checkpoint, and BYTEARRAY8 makes CPython's
# unpickler allocate whatever length the file states before it reads anything.
_REFUSED_OPCODES = frozenset({"BYTEARRAY8", "NEXT_BUFFER", "READONLY_BUFFER"})


def _load_pickle(buffer: io.BytesIO, load_storage=None):
    """Unpickles the pickle at `buffer`'s position after checking its opcodes without running it.

    The scan rejects truncated data and out-of-range lengths before the unpickler sees them.
    """
    start = buffer.tell()
    try:
        for opcode, _, position in pickletools.genops(buffer):
            if opcode.name in _REFUSED_OPCODES:
                raise _Invalid(f"pickle opcode {opcode.name} at byte {position} is not allowed")
    except ValueError as error:  # what genops raises for truncated data or unknown opcodes
        raise _Invalid(f"truncated or corrupt pickle ({one_line(str(error), 160)})") from None
    buffer.seek(start)
    return _RestrictedUnpickler(buffer, load_storage).load()


def _parse_storage_id(pid, legacy: bool):
    """Checks a storage persistent id; returns (type, key, numel, view or None)."""
    if isinstance(pid, tuple) and pid and pid[0] == "module":
        raise _Invalid(
            "the checkpoint pickles a whole torch.nn.Module, not a state dict; load it with its "
            "own code and save model.state_dict()"
        )
    size = 6 if legacy else 5
    if not (isinstance(pid, tuple) and len(pid) == size and pid[0] == "storage"):
        raise _Invalid(f"unexpected persistent id {one_line(repr(pid), 120)}")
    storage_type, key, location, numel = pid[1:5]
    view = pid[5] if legacy else None
    if not isinstance(storage_type, _StorageType):
        raise _Invalid(f"storage {key!r} has type {storage_type!r}, not a torch storage class")
    if not isinstance(key, str) or not isinstance(location, str):
        raise _Invalid(f"storage id {one_line(repr(pid), 120)} is malformed")
    if not _is_int(numel) or numel < 0:
        raise _Invalid(f"storage {key!r} has {numel!r} elements")
    well_formed_view = (
        isinstance(view, tuple)
        and len(view) == 3
        and isinstance(view[0], str)
        and _is_int(view[1])
        and _is_int(view[2])
        and view[1] >= 0
        and view[2] >= 0
        and view[1] + view[2] <= numel
    )
    if view is not None and not well_formed_view:
        raise _Invalid(f"storage {key!r} has a malformed view {one_line(repr(view), 120)}")
    return storage_type, key, numel, view


class _StorageTable:
    """Storages by key: checks that every reference agrees on type and size, makes views."""

    def __init__(self, legacy: bool, read=None):
        self._legacy = legacy
        self._read = read  # (key, type, numel) -> 1-D array, or None to only collect
        self.roots: dict[str, _Storage] = {}
        self._views: dict[str, _Storage] = {}

    def __call__(self, pid):
        storage_type, key, numel, view = _parse_storage_id(pid, self._legacy)
        root = self.roots.get(key)
        if root is None:
            data = None if self._read is None else self._read(key, storage_type, numel)
            root = self.roots[key] = _Storage(key, storage_type, numel, data)
        elif root.type.code != storage_type.code or root.numel != numel:
            raise _Invalid(
                f"storage {key!r} is used as {root.numel} x {root.type!r} and as "
                f"{numel} x {storage_type!r}"
            )
        if view is None:
            return root
        view_key, offset, view_size = view
        storage = self._views.get(view_key)
        if storage is None:
            data = None if root.data is None else root.data[offset : offset + view_size]
            storage = self._views[view_key] = _Storage(view_key, storage_type, view_size, data)
        return storage


def _numpy_code(storage_type: _StorageType, byteorder: str) -> np.dtype:
    code = storage_type.code
    if code[0] in "iufc" and code not in ("i1", "u1"):
        code = byteorder + code
    return np.dtype(code)


# The pickle of a state dict is a few MB even for large models; more is not a checkpoint.
MAX_PICKLE_BYTES = 256 * 2**20
# Storages a checkpoint may hold in all, by default: ten times the paper's 8-stack network with
# its optimizer state. `load_checkpoint(max_bytes=...)` changes it.
DEFAULT_MAX_BYTES = 4 * 2**30


def _check_members(archive, prefix: str, roots, byteorder: str, max_bytes: int) -> None:
    """Before anything is inflated: every storage the pickle references is a member whose
    declared uncompressed size is exactly its elements' bytes, no `data/` member is left
    unreferenced, and the storages stay under `max_bytes` in all."""
    infos = {info.filename: info for info in archive.infolist()}
    expected, total = {}, 0
    for key, root in roots.items():
        name = f"{prefix}data/{key}"
        need = root.numel * _numpy_code(root.type, byteorder).itemsize
        info = infos.get(name)
        if info is None:
            raise _Invalid(f"missing storage record {name}")
        if info.file_size != need:
            raise _Invalid(
                f"storage record {name} declares {info.file_size} bytes; its {root.numel} "
                f"elements of {root.type!r} are {need} bytes"
            )
        expected[name], total = need, total + need
    extra = sorted(n for n in infos if n.startswith(f"{prefix}data/") and n not in expected)
    if extra:
        raise _Invalid(f"storage record {extra[0]} is not referenced by any tensor")
    if total > max_bytes:
        raise _Invalid(
            f"its storages declare {total} bytes in all, above the limit of {max_bytes} (max_bytes)"
        )


def _read_member(archive, name: str, size: int) -> bytearray:
    """Exactly `size` bytes of a member, inflated in chunks: never more than it declared.

    The chunks are small because `ZipExtFile.readinto` reads each into a temporary bytes object
    before copying it: the chunk size bounds that second copy.
    """
    buffer = bytearray(size)
    view = memoryview(buffer)
    with archive.open(name) as member:
        done = 0
        while done < size:
            count = member.readinto(view[done : done + (1 << 20)])
            if not count:
                raise _Invalid(f"storage record {name} ends after {done} of {size} bytes")
            done += count
    return buffer


def _load_zip(archive: zipfile.ZipFile, max_bytes: int, lazy: bool = False):
    """The object of a zip checkpoint; with `lazy`, tensors are `TensorStub`s read later."""
    names = archive.namelist()
    pickles = [n for n in names if n.endswith("/data.pkl") and n.count("/") == 1]
    if len(pickles) != 1:
        found = "no" if not pickles else f"{len(pickles)}"
        raise _Invalid(f"not a PyTorch checkpoint: a zip archive with {found} FOLDER/data.pkl")
    prefix = pickles[0][: -len("data.pkl")]
    byteorder = "<"
    if prefix + "byteorder" in names:
        if archive.getinfo(prefix + "byteorder").file_size > 16:
            raise _Invalid(f"{prefix}byteorder is not a byte order")
        order = archive.read(prefix + "byteorder").decode("ascii", "replace").strip()
        if order not in ("little", "big"):
            raise _Invalid(f"unknown byte order {order!r} in {prefix}byteorder")
        byteorder = "<" if order == "little" else ">"
    if archive.getinfo(pickles[0]).file_size > MAX_PICKLE_BYTES:
        raise _Invalid(f"{pickles[0]} declares more than {MAX_PICKLE_BYTES} bytes")
    # From memory: a corrupt length in the pickle then reads as truncated data instead of
    # making the unpickler allocate that length for a read from the archive.
    data_pkl = io.BytesIO(archive.read(pickles[0]))
    collected = _StorageTable(legacy=False)  # first pass: which storages, of what size
    _load_pickle(data_pkl, collected)
    _check_members(archive, prefix, collected.roots, byteorder, max_bytes)

    def read(key, storage_type, numel):
        dtype = _numpy_code(storage_type, byteorder)
        name = f"{prefix}data/{key}"
        inflate = functools.partial(_read_member, archive, name, numel * dtype.itemsize)
        if lazy:
            return _Deferred(lambda: np.frombuffer(inflate(), dtype), dtype)
        return np.frombuffer(inflate(), dtype)

    data_pkl.seek(0)
    return _load_pickle(data_pkl, _StorageTable(legacy=False, read=read))


def _read_at(file, position: int, dtype: np.dtype, count: int) -> np.ndarray:
    """`count` elements of `dtype` at byte `position` of an open file, in an array of their own."""
    buffer = bytearray(count * dtype.itemsize)
    file.seek(position)
    if file.readinto(buffer) != len(buffer):
        raise _Invalid(f"truncated file: {len(buffer)} bytes of storage at offset {position}")
    return np.frombuffer(buffer, dtype)


def _load_legacy(path: Path, max_bytes: int, file=None):
    """The object of a legacy checkpoint; given the open `file`, tensors are `TensorStub`s
    whose storages are read from it later (the whole file is read once here, for the pickles
    and the storage list, and let go)."""
    if path.stat().st_size > max_bytes + MAX_PICKLE_BYTES:
        raise _Invalid(f"the file is larger than the limit of {max_bytes} bytes (max_bytes)")
    data = path.read_bytes()
    buffer = io.BytesIO(data)

    def plain():
        return _load_pickle(buffer)

    magic = plain()
    if not (_is_int(magic) and magic == LEGACY_MAGIC_NUMBER):
        raise _Invalid(
            "not a PyTorch checkpoint: a pickle without PyTorch's magic number (a plain pickle?)"
        )
    protocol = plain()
    if protocol != LEGACY_PROTOCOL_VERSION:
        raise _Invalid(f"unsupported legacy checkpoint protocol version {protocol!r}")
    system_info = plain()
    if not isinstance(system_info, dict):
        raise _Invalid("corrupt legacy checkpoint: no system information after the magic number")
    object_start = buffer.tell()
    collected = _StorageTable(legacy=True)  # first pass: which storages, of which type and size
    _load_pickle(buffer, collected)
    keys = plain()
    if not isinstance(keys, list) or not all(isinstance(k, str) for k in keys):
        raise _Invalid("corrupt legacy checkpoint: the storage key list is not a list of strings")
    arrays = {}
    position = buffer.tell()
    for key in keys:
        root = collected.roots.get(key)
        if root is None:
            raise _Invalid(f"storage {key!r} is listed in the file but no tensor refers to it")
        if position + 8 > len(data):
            raise _Invalid(f"truncated file: storage {key!r} is missing (file ends at {position})")
        (count,) = struct.unpack_from("<q", data, position)
        position += 8
        if count != root.numel:
            raise _Invalid(f"storage {key!r} holds {count} elements; its tensors need {root.numel}")
        dtype = _numpy_code(root.type, "<")  # the legacy writer always writes little-endian
        size = count * dtype.itemsize
        if position + size > len(data):
            raise _Invalid(
                f"truncated file: storage {key!r} needs {size} bytes at offset {position}, "
                f"the file ends {len(data) - position} bytes after it"
            )
        if file is None:
            arrays[key] = np.frombuffer(data, dtype, count, position)
        else:
            arrays[key] = _Deferred(
                functools.partial(_read_at, file, position, dtype, count), dtype
            )
        position += size
    missing = [key for key in collected.roots if key not in arrays]
    if missing:
        raise _Invalid(f"missing storage record {missing[0]!r} (not in the file's storage list)")
    buffer.seek(object_start)
    table = _StorageTable(legacy=True, read=lambda key, storage_type, numel: arrays[key])
    return _load_pickle(buffer, table)


def load_checkpoint(path: str | os.PathLike, max_bytes: int = DEFAULT_MAX_BYTES) -> object:
    """Reads a PyTorch checkpoint in either on-disk format, without torch and without running code.

    A zip checkpoint is checked before any storage is inflated: the pickle is read first (it
    says which storages exist and how many elements each has), every storage member must
    declare exactly that many bytes, and each is then inflated only up to them, so that a
    member that inflates to gigabytes (a decompression bomb) costs nothing.

    Args:
        path: a file written by `torch.save` (zip format, PyTorch >= 1.6, or the legacy pickle
            format), e.g. `checkpoint.pth.tar`.
        max_bytes: the most bytes of storage the checkpoint may declare in all.

    Returns:
        The saved object (usually a dict such as `{'state_dict': OrderedDict, 'epoch': int,
        ...}`) with every tensor and parameter as a C-contiguous numpy array in native byte order
        (bfloat16 widened to float32), `torch.device`s as strings and `argparse.Namespace`s as
        `types.SimpleNamespace`s.

    Raises:
        CheckpointError: the file is truncated or corrupt, is not a PyTorch checkpoint, lacks a
            storage, or its pickle asks for anything besides tensors, storages and plain
            containers (that global, e.g. `os.system`, is named and never called).
        OSError: the file cannot be read.
    """
    path = Path(path)
    head = _head(path)
    with _translated(path):
        if _container(head) == "zip":
            with zipfile.ZipFile(path) as archive:
                return _load_zip(archive, max_bytes)
        return _load_legacy(path, max_bytes)


class OpenCheckpoint:
    """A checkpoint read tensor by tensor (`open_checkpoint`); a context manager.

    Attributes:
        path: the file.
        object: the saved object as `load_checkpoint` returns it, but with every tensor a
            `TensorStub` (its shape and dtype; no memory).
    """

    def __init__(self, path: Path, obj, file):
        self.path, self.object, self._file = path, obj, file

    def load(self, stub: TensorStub) -> np.ndarray:
        """The values of one tensor of `object` (as `load_checkpoint` returns them), read now.

        Raises:
            CheckpointError: its storage cannot be read (e.g. the file changed since it was
                opened).
        """
        storage, offset, size, stride = stub.source
        with _translated(self.path):
            loaded = _Storage(storage.key, storage.type, storage.numel, storage.data.load())
            return _tensor_from_storage(loaded, offset, size, stride)

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> OpenCheckpoint:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def open_checkpoint(path: str | os.PathLike, max_bytes: int = DEFAULT_MAX_BYTES) -> OpenCheckpoint:
    """Opens a PyTorch checkpoint to read its tensors one at a time, with the checks of
    `load_checkpoint` (pickle, storage sizes, limits) done here, before any storage is read.

    A reader that converts each tensor as it goes (the importer) then holds one tensor at a
    time, not the whole checkpoint: a zip storage is inflated, a legacy one read from the file,
    by `OpenCheckpoint.load`.

    Raises:
        CheckpointError, OSError: as `load_checkpoint`.
    """
    path = Path(path)
    head = _head(path)
    file = open(path, "rb")  # noqa: SIM115 -- closed by OpenCheckpoint.close
    try:
        with _translated(path):
            if _container(head) == "zip":
                obj = _load_zip(zipfile.ZipFile(file), max_bytes, lazy=True)
            else:
                obj = _load_legacy(path, max_bytes, file)
    except BaseException:
        file.close()
        raise
    return OpenCheckpoint(path, obj, file)


def _head(path: Path) -> bytes:
    with open(path, "rb") as file:
        return file.read(512)


def _container(head: bytes) -> str:
    """ "zip" or "legacy" from a file's first 512 bytes; `_Invalid` for anything else."""
    if not head:
        raise _Invalid("empty file")
    if head[:4] in _ZIP_SIGNATURES:
        return "zip"
    if head[:1] == pickle.PROTO:
        return "legacy"
    if head[257:262] == b"ustar":
        raise _Invalid("a tar archive: PyTorch's tar checkpoints (< 0.1.10) are not supported")
    raise _Invalid("not a PyTorch checkpoint: neither a zip archive nor a pickle")


@contextlib.contextmanager
def _translated(path: Path):
    """Turns what the readers raise into one `CheckpointError` line naming `path`."""
    try:
        yield
    except CheckpointError:
        raise
    except _Invalid as error:
        raise _error(path, str(error)) from None
    except zipfile.BadZipFile as error:
        raise _error(path, f"truncated or corrupt zip archive ({error})") from error
    except (pickle.UnpicklingError, EOFError) as error:
        detail = one_line(f"{type(error).__name__}: {error}", 160)
        raise _error(path, f"truncated or corrupt pickle ({detail})") from error
    except Exception as error:  # whatever a malformed pickle or archive makes the readers raise
        detail = one_line(f"{type(error).__name__}: {error}", 160)
        raise _error(path, f"corrupt or unreadable checkpoint ({detail})") from error


def extract_state_dict(obj, path: str | os.PathLike = "checkpoint") -> dict[str, np.ndarray]:
    """The model weights of a loaded checkpoint, with the training wrappers' prefixes removed.

    Args:
        obj: what `load_checkpoint` returned: a dict with a `state_dict` entry (as the reference
            training scripts save) or a state dict itself (a flat mapping of names to arrays).
        path: the file, for error messages.

    Returns:
        {name: array} in the checkpoint's order, each name stripped of a leading `model.module.`,
        `module.` (`DataParallel`) or `model.`; BatchNorm `num_batches_tracked` counters dropped.

    Raises:
        CheckpointError: no tensors found, a non-tensor entry in the state dict, or two names
            that coincide once stripped.
    """
    source, where = obj, "the checkpoint"
    if isinstance(obj, Mapping) and "state_dict" in obj:
        source, where = obj["state_dict"], "its 'state_dict'"
    if not isinstance(source, Mapping):
        raise _error(
            path, f"not a model checkpoint: {where} is a {type(source).__name__}, not a mapping"
        )
    if not any(isinstance(value, np.ndarray) for value in source.values()):
        keys = ", ".join(repr(k) for k in list(source)[:6])
        raise _error(path, f"not a model checkpoint: no tensors found in {where} (keys: {keys})")
    state = {}
    for key, value in source.items():
        if not isinstance(key, str) or not isinstance(value, np.ndarray):
            raise _error(
                path,
                f"{where} is not a mapping of names to tensors: entry {key!r} is a "
                f"{type(value).__name__}",
            )
        name = key
        for prefix in _STATE_DICT_PREFIXES:
            if name.startswith(prefix):
                name = name[len(prefix) :]
                break
        if name.rsplit(".", 1)[-1] == "num_batches_tracked":
            continue
        if name in state:
            raise _error(path, f"two entries are named {name!r} once their prefixes are removed")
        state[name] = value
    return state
