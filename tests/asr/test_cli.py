"""`voxbus transcribe`: asr.cli.main called directly, plus one real subprocess."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile

from asr import cli

REPO = Path(__file__).resolve().parents[2]
PREFIX = "voxbus transcribe: error: "


def _one_error_line(stderr: str, *fragments: str) -> None:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(PREFIX), stderr
    assert "Traceback" not in stderr
    for fragment in fragments:
        assert fragment in lines[0]


@pytest.fixture
def clip(eval_clips) -> str:
    return eval_clips["jfk"]["file"]


@pytest.fixture
def use_model(monkeypatch, tiny_model_dir):
    monkeypatch.setenv(cli.MODEL_ENV, str(tiny_model_dir))


# --- usage errors (no model needed) --------------------------------------------------


@pytest.mark.parametrize(
    "argv, fragment",
    [
        ([], "FILE"),
        (["a.wav", "--threads", "0"], "--threads"),
        (["a.wav", "--format", "xml"], "--format"),
        (["a.wav", "--task", "summarise"], "--task"),
        (["a.wav", "--beam-size", "0"], "--beam-size"),
        (["a.wav", "--best-of", "many"], "--best-of"),
        (["a.wav", "--temperature", "0,hot"], "--temperature"),
        (["a.wav", "--temperature", ","], "--temperature"),
        (["a.wav", "--no-speech-threshold", "x"], "--no-speech-threshold"),
        (["a.wav", "--allowed-languages", ","], "--allowed-languages"),
    ],
)
def test_usage_errors(capsys, argv, fragment):
    assert cli.main(argv) == 2
    _one_error_line(capsys.readouterr().err, fragment)


def test_help_exits_zero(capsys):
    assert cli.main(["--help"]) == 0
    assert "--language" in capsys.readouterr().out


def test_missing_model_names_the_build_command(capsys, tmp_path, monkeypatch):
    monkeypatch.delenv(cli.MODEL_ENV, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))  # the default ~/.local/share/... is missing too
    assert cli.main([str(tmp_path / "a.wav")]) == 2
    _one_error_line(capsys.readouterr().err, "voxbus model build tiny --out DIR")


# --- with the real model -------------------------------------------------------------


@pytest.mark.slow
def test_text_output(capsys, use_model, clip):
    assert cli.main([clip]) == 0
    assert "ask not what your country can do for you" in capsys.readouterr().out


@pytest.mark.slow
def test_json_output(capsys, use_model, clip):
    assert cli.main([clip, "--format", "json", "--threads", "1", "--language", "en"]) == 0
    document = json.loads(capsys.readouterr().out)
    assert document["language"] == "en" and document["duration"] == pytest.approx(11.0, abs=0.01)
    assert document["segments"][0]["start"] == 0.0 and document["text"].startswith("And so")
    assert set(document["timings"]) == {"audio_ms", "encode_ms", "decode_ms"}


@pytest.mark.slow
def test_bad_inputs(capsys, use_model, tmp_path):
    empty = tmp_path / "empty.wav"
    empty.write_bytes(b"")
    corrupt = tmp_path / "corrupt.flac"
    corrupt.write_bytes(b"fLaC" + bytes(range(256)) * 8)
    zero_length = tmp_path / "zero.wav"
    soundfile.write(zero_length, np.zeros(0, np.float32), 16000)
    nan = tmp_path / "nan.wav"
    soundfile.write(nan, np.full(1600, np.nan, np.float32), 16000, subtype="FLOAT")
    for path, fragment in [(empty, "file is empty"), (corrupt, "cannot decode"),
                           (zero_length, "no audio samples"), (nan, "NaN")]:
        assert cli.main([str(path)]) == 2
        _one_error_line(capsys.readouterr().err, str(path), fragment)


@pytest.mark.slow
def test_one_bad_file_among_several(capsys, use_model, clip, tmp_path):
    assert cli.main([str(tmp_path / "missing.wav"), clip, "--format", "json"]) == 1
    captured = capsys.readouterr()
    _one_error_line(captured.err, "missing.wav", "no such file")
    documents = json.loads(captured.out)
    assert [d["file"] for d in documents] == [clip]


@pytest.mark.slow
def test_language_the_model_cannot_do(capsys, use_model, clip):
    assert cli.main([clip, "--language", "de"]) == 2
    _one_error_line(capsys.readouterr().err, "English-only")


@pytest.mark.slow
def test_real_subprocess(tiny_model_dir, clip, tmp_path):
    code = "import asr.cli, sys; sys.exit(asr.cli.main(sys.argv[1:]))"
    completed = subprocess.run(
        [sys.executable, "-c", code, clip, str(tmp_path / "missing.wav"), "--model", str(tiny_model_dir)],
        cwd=REPO, capture_output=True, text=True, timeout=120,
    )
    assert completed.returncode == 1
    assert "ask what you can do for your country" in completed.stdout
    _one_error_line(completed.stderr, "missing.wav")


@pytest.mark.slow
@pytest.mark.parametrize("argv, flag", [
    (["--patience", "2"], "--patience"),
    (["--temperature", "0.4,0.2"], "--temperature"),
    (["--logprob-threshold", "3"], "--logprob-threshold"),
    (["--compression-ratio-threshold", "-1"], "--compression-ratio-threshold"),
    (["--length-penalty", "5"], "--length-penalty"),
    (["--allowed-languages", "de,fr"], "--allowed-languages"),
])
def test_bad_decoding_values_name_the_flag(capsys, use_model, clip, argv, flag):
    assert cli.main([clip, *argv]) == 2
    _one_error_line(capsys.readouterr().err, flag)


@pytest.mark.slow
def test_subtitles_with_beam_search_and_word_timestamps(capsys, use_model, clip):
    from tests.kit import parse_srt, parse_vtt

    flags = ["--beam-size", "5", "--best-of", "2", "--patience", "1.5", "--length-penalty", "0.5",
             "--temperature", "0,0.4", "--no-speech-threshold", "0.7", "--logprob-threshold", "-1.5",
             "--compression-ratio-threshold", "2.2", "--initial-prompt", "President Kennedy:"]
    assert cli.main([clip, "--format", "srt", *flags]) == 0
    cues = parse_srt(capsys.readouterr().out)
    assert cues and "country" in cues[-1][2]
    assert cli.main([clip, "--format", "vtt"]) == 0
    assert len(parse_vtt(capsys.readouterr().out)) >= 1
    assert cli.main([clip, "--format", "verbose_json", "--word-timestamps", "--temperature", "0"]) == 0
    body = json.loads(capsys.readouterr().out)
    assert body["task"] == "transcribe" and body["segments"][0]["id"] == 0
    assert body["words"] and {"word", "start", "end", "probability"} <= set(body["words"][0])


@pytest.mark.slow
def test_finds_the_model_where_the_asr_stage_does(capsys, tiny_model_dir, clip, monkeypatch):
    """Under the systemd unit only $VOXBUS_MODELS_DIR (run.models_dir) and asr.model say where models are."""
    monkeypatch.delenv(cli.MODEL_ENV, raising=False)
    monkeypatch.setenv("HOME", "/nonexistent")  # no default ~/.local/share/... to fall back on
    monkeypatch.setenv("VOXBUS_MODELS_DIR", str(tiny_model_dir.parent))
    monkeypatch.setenv("VOXBUS_ASR__MODEL", tiny_model_dir.name)
    assert cli.main([clip]) == 0, capsys.readouterr().err
    assert capsys.readouterr().out.strip()
    assert cli.main([clip, "--model", tiny_model_dir.name]) == 0  # a model name, looked up in the models dir
