"""The encoder window rule: max(floor, audio + pad) seconds, even frames, ≤ 30 s."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from asr.whisper.features import N_FRAMES, content_frames, encoder_frames, window_mel
from asr.whisper.manifest import EncoderWindow, load_manifest

SR = 16000


@pytest.mark.parametrize("seconds, floor, pad, frames", [
    (1.0, 10, 1, 1000), (8.99, 10, 1, 1000), (9.5, 10, 1, 1050), (9.515, 10, 1, 1052),
    (29.5, 10, 1, 3000), (30.0, 30, 0, 3000), (0.0, 10, 1, 1000), (2.0, 0.01, 0, 200),
])
def test_encoder_frames(seconds, floor, pad, frames):
    assert encoder_frames(int(seconds * SR), floor, pad) == frames


def test_full_window_is_unchanged_and_short_windows_are_its_prefix():
    audio = np.random.default_rng(0).standard_normal(3 * SR).astype(np.float32) * 0.1
    full = window_mel(audio)
    assert full.shape == (80, N_FRAMES)
    short = window_mel(audio, 80, 1000)
    assert short.shape == (80, 1000)
    np.testing.assert_array_equal(short, full[:, :1000])


def test_silence_padding_is_the_log_mel_of_zeros():
    audio = np.random.default_rng(1).standard_normal(2 * SR).astype(np.float32) * 0.1
    padded = window_mel(audio, 80, 800, pad="silence")
    appended = window_mel(np.concatenate([audio, np.zeros(6 * SR, np.float32)]), 80, 800)
    n = content_frames(len(audio))
    np.testing.assert_array_equal(padded[:, :n], window_mel(audio, 80, 800)[:, :n])
    # Frames of real zeros (well away from the audio) have the value the padding uses.
    np.testing.assert_allclose(padded[:, n + 10 :], appended[:, n + 10 :], atol=1e-5)


def test_manifest_window(tiny_model_dir, tmp_path):
    raw = json.loads((tiny_model_dir / "manifest.json").read_text())
    assert load_manifest(tiny_model_dir).encoder_window == EncoderWindow.from_json(raw["encoder_window"])
    for name in raw["files"]:
        (tmp_path / name).symlink_to(tiny_model_dir / name)
    del raw["encoder_window"]  # a model built before the rule: 30 s windows
    (tmp_path / "manifest.json").write_text(json.dumps(raw))
    assert load_manifest(tmp_path).encoder_window is None
    raw["encoder_window"] = {"floor_s": 0, "pad_s": 1}
    (tmp_path / "manifest.json").write_text(json.dumps(raw))
    with pytest.raises(ValueError, match="encoder_window"):
        load_manifest(tmp_path)
    rule = {"floor_s": 15.0, "pad_s": 1.0, "pad": "zeros", "draft_floor_s": 8.0, "first_words_draft": True}
    assert EncoderWindow.from_json(rule).to_json() == rule
    with pytest.raises(ValueError, match="first_words_draft must be true or false"):
        EncoderWindow.from_json({**rule, "first_words_draft": "yes"})


# Clips whose words are the same with the 12 s / 1 s rule as with the 30 s window (tiny.en int8,
# greedy with fallback; tests/bench/window_sweep.py), from 1.1 to 11 s.
SAME_TEXT = ("ls-1089-134686-0001", "ls-1089-134691-0000", "lj-LJ001-0001", "ps-cards-001", "jfk")


def test_short_window_gives_the_30s_text(tiny_model, eval_clips):
    from asr.whisper.engine import EncoderWindow as Window
    from tests.asr.wer import normalize_english
    from tests.bench.common import load_audio_16k

    rule = tiny_model.encoder_window
    try:
        for clip_id in SAME_TEXT:
            audio = load_audio_16k(Path(eval_clips[clip_id]["file"]))
            tiny_model.encoder_window = Window()
            full = tiny_model.transcribe_segment(audio, language="en")
            tiny_model.encoder_window = Window(12.0, 1.0)
            short = tiny_model.transcribe_segment(audio, language="en")
            assert normalize_english(short.text) == normalize_english(full.text), clip_id
            assert short.encode_ms < full.encode_ms
    finally:
        tiny_model.encoder_window = rule


def test_a_partial_runs_the_encoder_once_on_the_draft_window(tiny_model, eval_clips):
    """Prefixes of an utterance, as partials see them: cut mid-word, the decoder often overshoots the
    audio or stops early, and the second pass re-encodes (up to 30 s). Without it, one encoder
    run, on the shorter draft window."""
    from tests.bench.common import load_audio_16k

    audio = load_audio_16k(Path(eval_clips["ls-1089-134691-0001"]["file"]))
    runs = []
    encode = tiny_model._encode
    tiny_model._encode = lambda mels, timings, draft=False: runs.append(mels.shape[-1]) or encode(mels, timings, draft)
    try:
        extra = 0
        for seconds in (0.6, 1.0, 2.0, 3.0, 4.0):
            prefix = audio[: int(seconds * 16000)]
            runs.clear()
            one = tiny_model.transcribe_segment(prefix, language="en", temperature=[0.0], second_pass=False,
                                                 draft_window=True)
            assert runs == [tiny_model.window_frames(prefix.shape[0], draft=True)] and one.text, seconds
            assert runs[0] < tiny_model.window_frames(prefix.shape[0])
            runs.clear()
            tiny_model.transcribe_segment(prefix, language="en", temperature=[0.0])
            extra += len(runs) - 1
        assert extra >= 1  # what the option saves: on these prefixes the second pass does run
    finally:
        tiny_model._encode = encode
