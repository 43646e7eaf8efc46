"""Live WebSocket streaming through every process: one final per utterance, WER close to offline, partials."""
from __future__ import annotations

import asyncio

import pytest

from tests.asr.wer import normalize_english, wer
from tests.e2e import live

pytestmark = pytest.mark.slow

# Real clips from four corpora (2-5.5 s, ~45 s in all, ~120 words, so that the bar of
# 2 WER points is more than a word); 1.5 s pauses are well over the 800 ms endpointing.
CLIPS = ["ls-1089-134691-0000", "lj-LJ001-0011", "librivox-0880", "timit-ldc93s1", "ls-1089-134691-0001",
         "ls-6930-75918-0000", "lj-LJ001-0004", "lj-LJ001-0016", "librivox-0890", "ls-1089-134686-0001"]
END_SILENCE_MS = 800
WER_MARGIN = 0.02  # live WER may exceed the same model's offline WER by 2 points at most


@pytest.fixture(scope="module")
def stream_and_offline(stack, tiny_models_dir):
    """The live session, and the same model's offline WER on the same clips (computed first, off the clock)."""
    from asr.whisper.engine import WhisperModel

    audio, utterances = live.build_stream(CLIPS, pause_s=1.5)
    model = WhisperModel(tiny_models_dir / "tiny.en-int8", threads=1)
    rows = live.manifest()
    offline = [model.transcribe(live.load_clip(live.EVAL_DIR / rows[c]["path"]), language="en").text for c in CLIPS]
    del model
    url = f"{stack.ws}/stream?language=en&end_silence_ms={END_SILENCE_MS}&sample_rate=16000&encoding=f32"
    session = asyncio.run(live.stream(url, audio))
    return session, utterances, offline


def test_every_utterance_gets_exactly_one_final(stream_and_offline):
    session, utterances, _ = stream_and_offline
    assert session.close_code == 1000
    finals = live.match_finals(session, utterances)
    counts = {clip: len(got) for clip, got in finals.items()}
    assert all(n == 1 for n in counts.values()), (counts, [e for _, e in session.of_type("final")])
    assert session.events[-1][1]["type"] == "final"  # after eof: the last final, then the clean close
    for _, final in session.of_type("final"):
        assert final["is_speech_final"] is True and final["language"] == "en" and final["segments"]


def test_live_wer_is_within_two_points_of_offline(stream_and_offline):
    session, utterances, offline = stream_and_offline
    finals = live.match_finals(session, utterances)
    references = [u.reference for u in utterances]
    hypotheses = [" ".join(f["text"] for _, f in finals[u.id]) for u in utterances]
    live_wer, offline_wer = wer(references, hypotheses), wer(references, offline)
    words = sum(len(normalize_english(r).split()) for r in references)
    assert words >= 100, f"{words} words: too few for a 2-point bar to mean more than one word"
    assert live_wer <= offline_wer + WER_MARGIN, (live_wer, offline_wer, words, hypotheses, offline)


def test_partials_arrive_while_speech_goes_on(stream_and_offline):
    session, utterances, _ = stream_and_offline
    long_ones = [u for u in utterances if u.speech_off - u.speech_on >= 2.5 * live.RATE]
    assert long_ones
    for u in long_ones:
        during = [t for t, e in session.of_type("partial")
                  if t < session.sent_time(u.speech_off) and u.start <= e["end"] * live.RATE <= u.end + live.RATE]
        assert during, f"no partial for {u.id} before its speech ended"
    vad = [e["event"] for _, e in session.of_type("vad")]
    assert vad.count("speech_start") == vad.count("speech_end") == len(utterances)
