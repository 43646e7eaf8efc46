"""Reader for the CTranslate2 ``model.bin`` format, without CTranslate2.

Layout (little endian, as written by ``ctranslate2/specs/model_spec.py``
``ModelSpec._serialize`` and read by ``src/models/model.cc``)::

    u32 binary_version                      (4..6 understood here)
    str spec_name                           ("WhisperSpec")
    u32 spec_revision
    u32 n_variables
    n_variables x:
        str name
        u8  rank
        u32 dims[rank]
        u8  dtype_id                        (see DTYPES)
        u32 n_bytes
        u8  data[n_bytes]
    u32 n_aliases
    n_aliases x: str alias, str target

    str = u16 length (including the trailing NUL), bytes, NUL

Variables are returned in their stored dtype (fp16 stays fp16); conversion is
the exporter's job.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np

# Index = dtype id in the file (model_spec._dtype_to_type_id).
DTYPES = ("float32", "int8", "int16", "int32", "float16", "bfloat16")
# Versions whose layout matches the one documented above: version 4 introduced
# the explicit dtype id; versions 5 and 6 kept the layout.
MIN_VERSION = 4
MAX_VERSION = 6


@dataclass(frozen=True)
class CT2Model:
    """A parsed model.bin: spec name/revision and name -> array."""

    path: Path
    binary_version: int
    spec_name: str
    spec_revision: int
    variables: dict[str, np.ndarray]


class _Cursor:
    """Sequential reader that turns short reads into a clear ValueError."""

    def __init__(self, fh: BinaryIO, path: Path, size: int) -> None:
        self._fh = fh
        self._path = path
        self._size = size

    def take(self, n: int, what: str) -> bytes:
        data = self._fh.read(n)
        if len(data) != n:
            raise ValueError(
                f"{self._path}: truncated CTranslate2 model file while reading {what} "
                f"(needed {n} bytes at offset {self._fh.tell() - len(data)}, "
                f"file has {self._size} bytes)"
            )
        return data

    def u8(self, what: str) -> int:
        return struct.unpack("<B", self.take(1, what))[0]

    def u16(self, what: str) -> int:
        return struct.unpack("<H", self.take(2, what))[0]

    def u32(self, what: str) -> int:
        return struct.unpack("<I", self.take(4, what))[0]

    def string(self, what: str) -> str:
        length = self.u16(what)
        raw = self.take(length, what)
        if length == 0 or raw[-1] != 0:
            raise ValueError(f"{self._path}: corrupt string for {what} (no NUL terminator)")
        try:
            return raw[:-1].decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ValueError(f"{self._path}: {what} is not valid UTF-8") from exc

    def at_end(self) -> bool:
        return self._fh.tell() == self._size


def _read_variable(cur: _Cursor, index: int) -> tuple[str, np.ndarray]:
    """Read one variable record; returns (name, array with its stored shape)."""
    name = cur.string(f"name of variable #{index}")
    rank = cur.u8(f"rank of {name}")
    shape = tuple(cur.u32(f"shape of {name}") for _ in range(rank))
    dtype_id = cur.u8(f"dtype of {name}")
    if dtype_id >= len(DTYPES):
        raise ValueError(f"{cur._path}: variable {name} has unknown dtype id {dtype_id}")
    n_bytes = cur.u32(f"byte count of {name}")
    dtype_name = DTYPES[dtype_id]
    # numpy has no bfloat16: keep the raw 16-bit words, the exporter widens them.
    np_dtype = np.dtype("uint16") if dtype_name == "bfloat16" else np.dtype(dtype_name)
    expected = int(np.prod(shape, dtype=np.int64)) * np_dtype.itemsize
    if expected != n_bytes:
        raise ValueError(
            f"{cur._path}: variable {name} declares {n_bytes} bytes but shape {shape} "
            f"of {dtype_name} needs {expected}"
        )
    data = cur.take(n_bytes, f"data of {name}")
    return name, np.frombuffer(data, dtype=np_dtype).reshape(shape)


def _read_header(cur: _Cursor, path: Path) -> tuple[int, str, int]:
    version = cur.u32("binary version")
    if not MIN_VERSION <= version <= MAX_VERSION:
        raise ValueError(
            f"{path}: not a supported CTranslate2 model.bin (binary version {version}, "
            f"expected {MIN_VERSION}..{MAX_VERSION}; is this really a CTranslate2 file?)"
        )
    spec_name = cur.string("spec name")
    revision = cur.u32("spec revision")
    return version, spec_name, revision


def read_ct2_model(path: str | Path) -> CT2Model:
    """Parse a CTranslate2 model.bin; aliases resolve to the same array object.

    Raises ValueError naming the file on a bad version, truncation, an unknown
    dtype, a dangling alias or trailing garbage; FileNotFoundError if missing.
    """
    path = Path(path)
    size = path.stat().st_size
    with path.open("rb") as fh:
        cur = _Cursor(fh, path, size)
        version, spec_name, revision = _read_header(cur, path)
        variables: dict[str, np.ndarray] = {}
        for i in range(cur.u32("variable count")):
            name, arr = _read_variable(cur, i)
            variables[name] = arr
        for i in range(cur.u32("alias count")):
            alias = cur.string(f"alias #{i}")
            target = cur.string(f"target of alias {alias}")
            if target not in variables:
                raise ValueError(f"{path}: alias {alias} points to unknown variable {target}")
            variables[alias] = variables[target]
        if not cur.at_end():
            raise ValueError(f"{path}: unexpected trailing bytes after the alias table")
    return CT2Model(path, version, spec_name, revision, variables)


def read_ct2_variables(path: str | Path) -> dict[str, np.ndarray]:
    """Convenience: just the name -> array mapping of :func:`read_ct2_model`."""
    return read_ct2_model(path).variables
