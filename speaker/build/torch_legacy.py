"""Read the tensors of a PyTorch checkpoint in the legacy (pre-1.6, non-zip) format, without torch.

The format is five pickles one after another, then the raw storages:
magic number, protocol version, system info, the object (tensors refer to their storages
by persistent id), the list of storage keys; then, for each key in that order, an int64
element count followed by the elements (little-endian). Only what a state dict of float
tensors needs is understood: OrderedDict, torch.*Storage and _rebuild_tensor_v2. Anything
else in the pickle is refused (the reader never imports what a pickle names).
"""
from __future__ import annotations

import collections
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np

MAGIC_NUMBER = 0x1950A86A20F9469CFC6C
PROTOCOL_VERSION = 1001
STORAGE_DTYPES = {
    "FloatStorage": np.float32, "DoubleStorage": np.float64, "HalfStorage": np.float16,
    "LongStorage": np.int64, "IntStorage": np.int32, "ShortStorage": np.int16,
    "CharStorage": np.int8, "ByteStorage": np.uint8, "BoolStorage": np.bool_,
}


class CheckpointFormatError(ValueError):
    """The file is not a legacy PyTorch checkpoint this reader understands."""


@dataclass(frozen=True)
class _StorageType:
    dtype: type


@dataclass(frozen=True)
class _StorageRef:
    key: str
    dtype: type
    size: int


@dataclass(frozen=True)
class _LazyTensor:
    """A tensor whose storage bytes come after the pickle that names it."""

    storage: _StorageRef
    offset: int
    shape: tuple[int, ...]
    stride: tuple[int, ...]

    def resolve(self, storages: dict[str, np.ndarray]) -> np.ndarray:
        flat = storages[self.storage.key]
        item = flat.dtype.itemsize
        if self.shape and (self.offset + sum((n - 1) * s for n, s in zip(self.shape, self.stride)) >= flat.size):
            raise CheckpointFormatError(f"tensor of shape {self.shape} overruns storage {self.storage.key}")
        view = np.lib.stride_tricks.as_strided(flat[self.offset:], self.shape, tuple(s * item for s in self.stride))
        return np.array(view)  # a copy: contiguous, owns its memory


def _rebuild_tensor_v2(storage, offset, shape, stride, *_unused) -> _LazyTensor:
    if not isinstance(storage, _StorageRef):
        raise CheckpointFormatError("a tensor without a storage")
    return _LazyTensor(storage, int(offset), tuple(shape), tuple(stride))


class _Unpickler(pickle.Unpickler):
    ALLOWED = {("collections", "OrderedDict"): collections.OrderedDict,
               ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor_v2}

    def find_class(self, module: str, name: str):
        if module == "torch" and name in STORAGE_DTYPES:
            return _StorageType(STORAGE_DTYPES[name])
        if (module, name) in self.ALLOWED:
            return self.ALLOWED[(module, name)]
        raise CheckpointFormatError(f"unsupported object in checkpoint: {module}.{name}")

    def persistent_load(self, pid):
        if not (isinstance(pid, tuple) and len(pid) >= 5 and pid[0] == "storage"):
            raise CheckpointFormatError(f"unsupported persistent id {pid!r}")
        _, storage_type, key, _location, size = pid[:5]
        if len(pid) > 5 and pid[5] is not None:
            raise CheckpointFormatError("storage views are not supported")
        return _StorageRef(str(key), storage_type.dtype, int(size))


def _load_pickle(handle: BinaryIO):
    return _Unpickler(handle).load()


def _read_storages(handle: BinaryIO, keys: list[str], refs: dict[str, _StorageRef]) -> dict[str, np.ndarray]:
    storages = {}
    for key in keys:
        ref = refs[key]
        count = int(np.frombuffer(handle.read(8), "<i8")[0])
        data = handle.read(count * np.dtype(ref.dtype).itemsize)
        if count != ref.size or len(data) != count * np.dtype(ref.dtype).itemsize:
            raise CheckpointFormatError(f"storage {key}: expected {ref.size} elements, file has {count}")
        storages[key] = np.frombuffer(data, np.dtype(ref.dtype).newbyteorder("<"))
    return storages


def _collect(obj, found: dict[str, _StorageRef]) -> None:
    if isinstance(obj, _LazyTensor):
        found[obj.storage.key] = obj.storage
    elif isinstance(obj, (dict, list, tuple)):
        for value in (obj.values() if isinstance(obj, dict) else obj):
            _collect(value, found)


def _resolve(obj, storages):
    if isinstance(obj, _LazyTensor):
        return obj.resolve(storages)
    if isinstance(obj, dict):
        return {key: _resolve(value, storages) for key, value in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_resolve(value, storages) for value in obj)
    return obj


def load_legacy_checkpoint(path: Path) -> dict:
    """The checkpoint's top-level dict, every tensor as a numpy array."""
    with open(path, "rb") as handle:
        try:
            if _load_pickle(handle) != MAGIC_NUMBER:
                raise CheckpointFormatError(f"{path}: not a legacy PyTorch checkpoint (bad magic number)")
            if _load_pickle(handle) != PROTOCOL_VERSION:
                raise CheckpointFormatError(f"{path}: unsupported checkpoint protocol version")
            info = _load_pickle(handle)
            if not (isinstance(info, dict) and info.get("little_endian")):
                raise CheckpointFormatError(f"{path}: only little-endian checkpoints are supported")
            obj = _load_pickle(handle)
            keys = [str(key) for key in _load_pickle(handle)]
        except (pickle.UnpicklingError, EOFError) as exc:
            raise CheckpointFormatError(f"{path}: not a legacy PyTorch checkpoint ({exc})") from exc
        refs: dict[str, _StorageRef] = {}
        _collect(obj, refs)
        if set(refs) - set(keys):
            raise CheckpointFormatError(f"{path}: tensors refer to storages that are not in the file")
        return _resolve(obj, _read_storages(handle, keys, refs))
