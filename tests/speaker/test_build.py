"""`voxbus model build speaker`: manifest, checksums, atomic output, clear errors."""
from __future__ import annotations

import json
import pickle

import pytest

from cli.main import main as voxbus
from speaker.build.builder import SpeakerBuildError, build_speaker_model
from speaker.build.torch_legacy import CheckpointFormatError, load_legacy_checkpoint
from speaker.encoder.manifest import SpeakerModelError, load_speaker_manifest


def test_cli_builds_a_verified_model_directory(speaker_model_dir, tmp_path, capsys):
    out = tmp_path / "spk"
    assert voxbus(["model", "build", "speaker", "--out", str(out)]) == 0
    assert "built speaker-ge2e (256-dim) from resemblyzer==0.1.4" in capsys.readouterr().out
    manifest = load_speaker_manifest(out, verify=True)
    assert (manifest.n_mels, manifest.embedding_size, manifest.window_frames) == (40, 256, 160)
    raw = json.loads((out / "manifest.json").read_text())
    assert raw["source_sha256"] == "39373b86598fa3da9fcddee6142382efe09777e8d37dc9c0561f41f0070f134e"
    assert sorted(p.name for p in out.iterdir()) == ["manifest.json", "voice_encoder.onnx"]


def test_a_tampered_file_fails_verification(speaker_model_dir, tmp_path):
    out = build_speaker_model(tmp_path / "spk")
    with open(out / "voice_encoder.onnx", "ab") as handle:
        handle.write(b"x")
    with pytest.raises(SpeakerModelError, match="sha256 does not match"):
        load_speaker_manifest(out, verify=True)


def test_a_missing_model_names_the_build_command(tmp_path):
    with pytest.raises(SpeakerModelError, match="voxbus model build speaker"):
        load_speaker_manifest(tmp_path / "nothing")


def test_a_checkpoint_that_is_not_one_is_refused(tmp_path):
    bogus = tmp_path / "bogus.pt"
    bogus.write_bytes(pickle.dumps({"not": "torch"}))
    with pytest.raises(CheckpointFormatError, match="bad magic number"):
        load_legacy_checkpoint(bogus)
    with pytest.raises(SpeakerBuildError):
        build_speaker_model(tmp_path / "out", checkpoint=bogus)


def test_the_reader_never_imports_what_a_pickle_names(tmp_path):
    evil = tmp_path / "evil.pt"
    with open(evil, "wb") as handle:
        for part in (0x1950A86A20F9469CFC6C, 1001, {"little_endian": True}):
            pickle.dump(part, handle, protocol=2)
        handle.write(b"\x80\x02cos\nsystem\nq\x00.")  # a pickle that names os.system
    with pytest.raises(CheckpointFormatError, match="unsupported object in checkpoint: os.system"):
        load_legacy_checkpoint(evil)


def test_bad_cli_usage_is_one_line_and_exit_2(capsys):
    assert voxbus(["model", "build", "speaker", "--bogus"]) == 2
    assert capsys.readouterr().err.startswith("voxbus model build speaker: error:")


def test_without_out_it_builds_where_the_stage_looks(speaker_model_dir, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("VOXBUS_RUN__MODELS_DIR", str(tmp_path / "models"))
    monkeypatch.setenv("VOXBUS_SPEAKER__MODEL", "voices")
    monkeypatch.delenv("VOXBUS_CONFIG", raising=False)
    assert voxbus(["model", "build", "speaker"]) == 0
    assert load_speaker_manifest(tmp_path / "models" / "voices", verify=True).embedding_size == 256
    monkeypatch.setenv("VOXBUS_SPEAKER__THREADS", "0")
    assert voxbus(["model", "build", "speaker"]) == 2
    assert "speaker.threads" in capsys.readouterr().err
