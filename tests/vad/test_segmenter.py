"""StreamSegmenter on real speech: boundaries, pre-roll, blips, partials, flush, splits, gaps."""
import numpy as np
import pytest

from config.schema import VadConfig
from vad.detector import VoiceDetector
from vad.segmenter import SegmenterSettings, SpeechEnded, SpeechStarted, StreamSegmenter, UtteranceAudio, ends_sentence
from tests.kit import build_stream, frames_of, load_clip, need_eval

FRAME = 480  # samples in a 30 ms vad frame


def segmenter(**overrides) -> StreamSegmenter:
    settings = SegmenterSettings(**overrides)
    return StreamSegmenter(settings, VoiceDetector(2, settings.frame_ms))


def run(seg, pcm, frame_ms=20):
    events = []
    for offset, chunk in frames_of(pcm, frame_ms):
        events += seg.feed(chunk, offset, now=offset / 16000)
    return events


def of(events, kind):
    return [e for e in events if isinstance(e, kind)]


def test_two_utterances_found_with_pre_roll_and_tail():
    need_eval()
    pcm, placed = build_stream(["asr/librispeech/6930-75918-0000.flac", "asr/ljspeech/LJ001-0008.wav"], [2.0])
    events = run(segmenter(), pcm)
    starts, ends = of(events, SpeechStarted), of(events, SpeechEnded)
    finals = [e for e in of(events, UtteranceAudio) if e.kind == "final"]
    assert [e.utt for e in starts] == [0, 1] and [e.utt for e in ends] == [0, 1]
    assert all(e.reason == "silence" for e in ends)
    for final, start, clip in zip(finals, starts, placed):
        end = final.offset + len(final.pcm) // 2
        assert final.offset <= clip.speech_on <= start.offset + FRAME * 2
        assert start.offset - final.offset >= 300 * 16 - FRAME  # pre-roll kept
        assert end >= clip.speech_off


def test_events_come_in_order_and_partials_grow():
    need_eval()
    pcm, _ = build_stream(["asr/librispeech/1089-134691-0001.flac"], [])
    events = run(segmenter(partial_interval_ms=500), pcm)
    kinds = [type(e).__name__ if not isinstance(e, UtteranceAudio) else e.kind for e in events]
    assert kinds[0] == "SpeechStarted" and kinds[-2:] == ["final", "SpeechEnded"]
    partials = [e for e in of(events, UtteranceAudio) if e.kind == "partial"]
    assert len(partials) >= 5  # 5.4 s clip, one partial per 0.5 s of speech
    assert all(p.offset == partials[0].offset for p in partials)
    assert [len(p.pcm) for p in partials] == sorted(len(p.pcm) for p in partials)


def test_no_partials_when_stream_does_not_want_them():
    need_eval()
    pcm, _ = build_stream(["asr/librispeech/1089-134691-0001.flac"], [])
    events = run(segmenter(partials=False), pcm)
    assert [e.kind for e in of(events, UtteranceAudio) if e.kind != "speculative"] == ["final"]


def test_blip_shorter_than_min_speech_is_dropped():
    need_eval()
    audio = load_clip("asr/librispeech/6930-75918-0000.flac")
    on = np.flatnonzero(np.abs(audio) > 0.1)[0]
    blip = np.concatenate([np.zeros(16000, np.float32), audio[on:on + 2400], np.zeros(32000, np.float32)])
    seg = segmenter(min_speech_ms=250, start_window_ms=90, start_ratio=0.6)
    events = run(seg, (blip * 32767).astype("<i2").tobytes())
    assert events == []
    assert seg.counters.blips_dropped >= 1


def test_flush_finishes_the_open_utterance_now():
    need_eval()
    audio = load_clip("asr/librispeech/1089-134691-0001.flac")[:16000 * 3]
    seg = segmenter()
    events = run(seg, (audio * 32767).astype("<i2").tobytes())
    assert of(events, SpeechStarted) and not of(events, SpeechEnded)
    flushed = seg.flush()
    assert [type(e) for e in flushed][-2:] == [UtteranceAudio, SpeechEnded]
    assert flushed[-1].reason == "flush" and flushed[-2].kind == "final"
    assert seg.flush() == []


def test_long_speech_is_split_at_max_length_at_a_quiet_frame():
    need_eval()
    clips = ["asr/ljspeech/LJ001-0001.wav", "asr/ljspeech/LJ001-0003.wav"]
    pcm, _ = build_stream(clips, [0.3], lead_s=0.5)
    seg = segmenter(max_utterance_s=4.0, end_silence_ms=800)
    events = run(seg, pcm)
    ends = of(events, SpeechEnded)
    assert any(e.reason == "max_length" for e in ends)
    finals = [e for e in of(events, UtteranceAudio) if e.kind == "final"]
    assert all(len(f.pcm) // 2 <= 4.0 * 16000 + FRAME for f in finals)
    # consecutive split pieces tile the audio: no sample lost or doubled at a split
    for a, b, end in zip(finals, finals[1:], ends):
        if end.reason == "max_length":
            assert a.offset + len(a.pcm) // 2 == b.offset
    assert seg.counters.splits == sum(e.reason == "max_length" for e in ends)


def test_lost_frames_are_filled_and_a_restart_resyncs():
    need_eval()
    pcm, _ = build_stream(["asr/librispeech/6930-75918-0000.flac"], [])
    chunks = frames_of(pcm)
    seg = segmenter()
    events = []
    for i, (offset, chunk) in enumerate(chunks):
        if i % 50 == 7:
            continue  # a lost bus frame
        events += seg.feed(chunk, offset)
    assert seg.counters.gap_fills > 0
    assert len(of(events, SpeechStarted)) == 1 and len(of(events, SpeechEnded)) == 1
    seg.feed(bytes(640), 0)  # the source restarted its timeline
    assert seg.counters.resyncs == 1 and seg.expected_offset() == 320


def test_odd_length_pcm_is_refused():
    with pytest.raises(ValueError, match="not whole int16 samples"):
        segmenter().feed(b"\0\0\0", 0)


def test_settings_follow_config_and_stream_override():
    s = SegmenterSettings.from_config(VadConfig(), end_silence_ms=500, partials=False)
    assert (s.end_silence_ms, s.partials, s.pre_roll_ms) == (500, False, 300)
    assert SegmenterSettings.from_config(VadConfig()).end_silence_ms == 800


def test_speculation_is_the_final_to_be_and_a_new_one_follows_resumed_speech():
    need_eval()
    pcm, _ = build_stream(["asr/librispeech/1089-134691-0001.flac"], [])
    audio = of(run(segmenter(partials=False), pcm), UtteranceAudio)
    kinds = [e.kind for e in audio]
    # The clip pauses longer than the 150 ms tail mid-sentence: a guess, voided when speech goes on,
    # then a second guess at its end, which is the final to the byte.
    assert kinds == ["speculative", "speculative", "final"]
    early, guess, final = audio
    assert (guess.utt, guess.offset, guess.pcm, guess.voiced) == (final.utt, final.offset, final.pcm, final.voiced)
    assert early.utt == final.utt and len(early.pcm) < len(final.pcm)


def test_no_speculation_when_switched_off():
    need_eval()
    pcm, _ = build_stream(["asr/librispeech/1089-134691-0001.flac"], [])
    assert [e.kind for e in of(run(segmenter(partials=False, speculate=False), pcm), UtteranceAudio)] == ["final"]


def test_text_that_ends_a_sentence_closes_sooner_and_open_text_waits_longer():
    need_eval()
    full, [clip] = build_stream(["asr/librispeech/1089-134691-0001.flac"], [], tail_s=1.5)
    speech, quiet = full[: clip.speech_off * 2], full[clip.speech_off * 2:]  # cut where its speech ends

    def endpoint_ms(text: str | None) -> float:
        seg = segmenter(partials=False, end_silence_ms=500)
        run(seg, speech)
        assert seg.utt is not None and seg.utt.trailing_silence < 5, "the utterance should still be open here"
        speech_end = seg.utt.frames[seg.utt.last_voiced].offset + seg.detector.frame_samples
        if text is not None:
            seg.hear(seg.next_utt, text, speech_end + 4800)
        for offset, chunk in frames_of(quiet, 30):
            if of(seg.feed(chunk, clip.speech_off + offset, 0.0), SpeechEnded):
                return (clip.speech_off + offset + 480 - speech_end) / 16
        raise AssertionError("never ended")

    plain, ended = endpoint_ms(None), endpoint_ms("Stuff it into you, his belly counselled him.")
    open_ = endpoint_ms("Stuff it into you, his belly")
    assert 450 <= plain <= 600 and 270 <= ended <= 380 and 700 <= open_ <= 850, (plain, ended, open_)


def test_an_older_or_earlier_text_does_not_move_the_endpoint():
    seg = segmenter(end_silence_ms=500)
    assert seg.hear(0, "Done.", 10**9) == []  # nothing in speech: ignored
    assert ends_sentence("Really?") and ends_sentence('He said "yes."') and not ends_sentence("and so...")


def test_partials_come_sooner_until_asr_sends_words():
    """A first partial on 300 ms of speech often has no words: until asr sends some, partials
    follow every wordless_partial_interval_ms, then every partial_interval_ms."""
    need_eval()
    pcm, _ = build_stream(["asr/librispeech/1089-134691-0001.flac"], [])
    seg = segmenter(partial_interval_ms=600, wordless_partial_interval_ms=210, first_partial_ms=300)
    times, wordless = [], []
    for offset, chunk in frames_of(pcm, 30):
        for event in seg.feed(chunk, offset):
            if isinstance(event, UtteranceAudio) and event.kind == "partial":
                times.append(offset / 16000)
                wordless.append(event.wordless)
                if len(times) == 3:  # words come back after the third
                    seg.hear(event.utt, "For a full", event.offset + len(event.pcm) // 2)
    gaps = [round(b - a, 2) for a, b in zip(times, times[1:])]
    assert gaps[:2] == [0.21, 0.21], gaps
    assert all(gap >= 0.6 for gap in gaps[2:4]), gaps
    assert wordless[:3] == [True] * 3 and not any(wordless[3:])  # the queue serves wordless partials first


def test_no_partial_after_the_speculation_of_a_pause():
    """A partial sent during the silence after the speculation would void it (speech seems to go
    on); the speculation already holds all the speech, so no partial follows it."""
    need_eval()
    pcm, _ = build_stream(["asr/librispeech/1089-134691-0001.flac", "asr/ljspeech/LJ001-0008.wav"], [1.5])
    seg = segmenter(end_silence_ms=500, partial_interval_ms=500)  # at 500 a partial falls due in the pause
    events = run(seg, pcm)
    audio = [e for e in events if isinstance(e, UtteranceAudio)]
    for before, after in zip(audio, audio[1:]):
        if before.kind == "speculative" and after.kind == "partial":
            assert any(after.voiced[len(before.voiced):]), "a partial after the guess with no new speech"
    assert [e.kind for e in audio].count("final") == 2
