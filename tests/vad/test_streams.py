"""StreamTable: the per-stream life cycle and every kind of bad input, counted and never raised."""
import logging

from bus import schemas
from config.schema import VadConfig
from vad.streams import StreamTable
from tests.kit import build_stream, frames_of, need_eval, synth_stream


def feed(table, stream, pcm, seq0=0, now=0.0, skip=()):
    out = []
    for i, (offset, chunk) in enumerate(frames_of(pcm)):
        if i in skip:
            continue
        out += table.handle(schemas.Audio(stream=stream, seq=seq0 + i, offset=offset, pcm=chunk), now)
    return out


def types(msgs):
    return [m.kind if isinstance(m, schemas.Segment) else m.TYPE for m in msgs]


def speech():
    need_eval()
    return build_stream(["asr/librispeech/6930-75918-0000.flac"], [])[0]


def test_segments_carry_the_open_options():
    table = StreamTable(VadConfig(resume_grace_s=0))
    table.handle(schemas.Open(stream="m1", language="de", task="translate", prompt="Hallo", partials=True), 0.0)
    out = feed(table, "m1", speech(), now=123.0)
    segs = [m for m in out if isinstance(m, schemas.Segment)]
    assert types(out)[0] == "speech_start" and types(out)[-2:] == ["final", "speech_end"]
    assert "partial" in types(out)
    assert all((s.stream, s.language, s.task, s.prompt) == ("m1", "de", "translate", "Hallo") for s in segs)
    assert segs[-1].ts_end_of_speech == 123.0
    start, end = out[0], out[-1]
    assert start.utt == end.utt == segs[-1].utt == 0 and start.offset < end.offset


def test_partials_false_and_stream_end_silence():
    table = StreamTable(VadConfig(resume_grace_s=0))
    table.handle(schemas.Open(stream="m1", partials=False, end_silence_ms=300), 0.0)
    assert table.streams["m1"].segmenter.s.end_silence_ms == 300
    assert "partial" not in types(feed(table, "m1", speech()))


def test_audio_for_a_stream_never_opened_opens_it_with_defaults(caplog):
    table = StreamTable(VadConfig(resume_grace_s=0))
    with caplog.at_level(logging.WARNING):
        out = feed(table, "late", speech())
    assert table.counters["implicit_opens"] == 1 and table.streams["late"].implicit
    assert "final" in types(out)
    assert "never opened" in caplog.text


def test_wrong_sample_rate_in_open_is_reported_and_its_audio_dropped(caplog):
    table = StreamTable(VadConfig(resume_grace_s=0))
    with caplog.at_level(logging.WARNING):
        out = table.handle(schemas.Open(stream="m8", sample_rate=8000), 0.0)
    assert isinstance(out[0], schemas.Error) and out[0].code == "bad_sample_rate" and "8000" in out[0].message
    assert feed(table, "m8", bytes(6400)) == []
    assert table.counters["bad_opens"] == 1 and table.counters["rejected_frames"] == 10
    assert "rejected" in caplog.text
    table.handle(schemas.Open(stream="m8"), 0.0)  # a valid open heals the stream
    assert table.streams["m8"].segmenter is not None


def test_odd_length_pcm_is_counted_and_logged(caplog):
    table = StreamTable(VadConfig(resume_grace_s=0))
    with caplog.at_level(logging.WARNING):
        for seq in range(3):
            assert table.handle(schemas.Audio(stream="s", seq=seq, offset=seq * 320, pcm=b"\0" * 641), 0.0) == []
    assert table.counters["bad_pcm"] == 3
    assert caplog.text.count("not whole int16 samples") == 1  # logged once, then counted


def test_lost_frames_are_counted_per_stream():
    table = StreamTable(VadConfig(resume_grace_s=0))
    table.handle(schemas.Open(stream="s"), 0.0)
    out = feed(table, "s", bytes(640 * 100), skip={10, 11, 50})
    assert table.counters["lost_frames"] == 3
    assert table.snapshot()["per_stream"]["s"]["lost_frames"] == 3
    # told to the stream's listeners: once, then at most every LOSS_REPORT_EVERY_S with the count since
    reports = [m for m in out if isinstance(m, schemas.Error)]
    assert [(r.code, r.stream, r.permanent) for r in reports] == [("audio_lost", "s", False)]
    assert reports[0].message.startswith("2 audio frame(s) lost on the bus before sample 3840")


def test_flush_close_and_ttl():
    clock = [10.0]
    table = StreamTable(VadConfig(resume_grace_s=0, stream_ttl_s=5.0), clock=lambda: clock[0])
    pcm = speech()
    table.handle(schemas.Open(stream="a"), 0.0)
    feed(table, "a", pcm[:len(pcm) // 2])
    assert types(table.handle(schemas.Flush(stream="a"), 1.0))[-3:] == ["final", "speech_end", "flushed"]
    feed(table, "a", pcm[:len(pcm) // 2], seq0=1000, now=2.0)
    assert types(table.handle(schemas.Close(stream="a"), 3.0))[-2:] == ["final", "speech_end"]
    assert "a" not in table.streams
    assert table.handle(schemas.Close(stream="a"), 3.0) == [] and table.counters["closes"] == 1
    table.handle(schemas.Open(stream="b"), 10.0)
    feed(table, "b", bytes(6400), now=10.0)
    clock[0] = 14.0
    assert table.expire() == [] and "b" in table.streams
    clock[0] = 16.0
    table.expire()
    assert "b" not in table.streams and table.counters["ttl_closed"] == 1


def test_unexpected_message_types_are_counted_not_raised():
    table = StreamTable(VadConfig(resume_grace_s=0))
    assert table.handle(schemas.SpeechStart(stream="x", utt=0, offset=0), 0.0) == []
    assert table.handle(schemas.Flush(stream="nobody"), 0.0) == []


def synth_speech():
    """Two espeak-ng sentences with a pause: two utterances, no eval clips needed."""
    return synth_stream(["The first sentence is here.", "And now a second one follows."])


MID = 640 * 90  # 1.8 s in: inside the first sentence of synth_speech()


def feed_range(table, stream, pcm, start, end=None, seq0=0):
    """Feed pcm[start:end] on the stream's own timeline (offsets and seqs go on from `start`)."""
    out = []
    for i, (offset, chunk) in enumerate(frames_of(pcm[start:end])):
        out += table.handle(schemas.Audio(stream=stream, seq=seq0 + start // 640 + i, offset=start // 2 + offset,
                                          pcm=chunk), 0.0)
    return out


def utts(msgs, kind="final"):
    return [m.utt for m in msgs if isinstance(m, schemas.Segment) and m.kind == kind]


def test_ttl_runs_on_the_monotonic_clock_not_the_wall_clock():
    mono = [100.0]
    table = StreamTable(VadConfig(resume_grace_s=0, stream_ttl_s=5.0), clock=lambda: mono[0])
    table.handle(schemas.Open(stream="s"), 1e9)
    feed(table, "s", bytes(640), now=1e9)
    assert table.expire(now=1e9 + 3600) == [] and "s" in table.streams  # the wall clock jumped: no effect
    mono[0] = 106.0
    table.expire(now=0.0)  # the wall clock went back: no effect either, the monotonic one decides
    assert "s" not in table.streams


def test_a_repeated_identical_open_changes_nothing():
    table = StreamTable(VadConfig(resume_grace_s=0))
    pcm = synth_speech()
    opened = schemas.Open(stream="m", language="de", partials=False, source="alsa:x")
    table.handle(opened, 0.0)
    out = feed_range(table, "m", pcm, 0, MID)
    assert table.streams["m"].segmenter.in_speech
    assert table.handle(opened, 0.0) == [] and table.streams["m"].segmenter.in_speech  # utterance goes on
    assert table.counters["repeated_opens"] == 1 and table.counters["reopens"] == 0
    out += feed_range(table, "m", pcm, MID)
    assert utts(out) == [0, 1] and all(s.language == "de" for s in out if isinstance(s, schemas.Segment))


def test_a_changed_open_finishes_the_utterance_and_applies_the_new_options():
    table = StreamTable(VadConfig(resume_grace_s=0))
    pcm = synth_speech()
    table.handle(schemas.Open(stream="m", language="de", partials=False), 0.0)
    feed_range(table, "m", pcm, 0, MID)
    changed = table.handle(schemas.Open(stream="m", language="fr", partials=False), 0.0)
    assert types(changed)[-2:] == ["final", "speech_end"] and changed[-2].language == "de"
    out = feed_range(table, "m", pcm, MID)
    finals = [m for m in out if isinstance(m, schemas.Segment) and m.kind == "final"]
    assert finals and all(f.language == "fr" for f in finals)
    assert table.counters["reopens"] == 1


def test_utterance_numbers_never_repeat_across_reopen_and_close():
    table = StreamTable(VadConfig(resume_grace_s=0))
    pcm = synth_speech()
    seen = []
    for round_, options in enumerate([dict(language="de"), dict(language="fr"), dict(language="fr")]):
        table.handle(schemas.Open(stream="m", partials=False, **options), 0.0)
        seen += utts(feed(table, "m", pcm, seq0=round_ * 10000))
        if round_ == 1:
            table.handle(schemas.Close(stream="m"), 0.0)
    assert seen == list(range(6))
    table.handle(schemas.Close(stream="m"), 0.0)
    seen += utts(feed(table, "m", pcm, seq0=99999))  # implicit reopen after a close numbers on too
    assert seen == list(range(8))


def test_forgotten_streams_start_above_every_number_they_reached(monkeypatch):
    monkeypatch.setattr("vad.streams.CLOSED_REMEMBERED", 2)
    table = StreamTable(VadConfig(resume_grace_s=0))
    pcm = synth_speech()
    for name in ("a", "b", "c"):
        table.handle(schemas.Open(stream=name, partials=False), 0.0)
        feed(table, name, pcm)
        table.handle(schemas.Close(stream=name), 0.0)
    assert list(table._closed_next_utt) == ["b", "c"]  # "a" was forgotten, its 2 became the floor
    table.handle(schemas.Open(stream="a", partials=False), 0.0)
    assert utts(feed(table, "a", pcm)) == [2, 3]
    table.handle(schemas.Open(stream="new", partials=False), 0.0)
    assert utts(feed(table, "new", pcm)) == [2, 3]


def test_a_repeated_bad_open_is_reported_once_and_a_good_one_numbers_on():
    table = StreamTable(VadConfig(resume_grace_s=0))
    bad = schemas.Open(stream="m8", sample_rate=8000)
    assert types(table.handle(bad, 0.0)) == ["error"]
    assert table.handle(bad, 0.0) == [] and table.counters["bad_opens"] == 1


def test_per_stream_problem_counts_and_gaps_are_dropped_when_a_stream_ends():
    table = StreamTable(VadConfig(resume_grace_s=0))
    table.handle(schemas.Open(stream="s"), 0.0)
    table.handle(schemas.Audio(stream="s", seq=0, offset=0, pcm=b"\0" * 641), 0.0)
    table.handle(schemas.Audio(stream="s", seq=5, offset=320, pcm=bytes(640)), 0.0)
    assert "s" in table._problems and table.gaps.lost == {"s": 4}
    table.handle(schemas.Close(stream="s"), 0.0)
    assert "s" not in table._problems and "s" not in table.gaps.lost and "s" not in table.gaps.last_seq
    for i in range(100):  # controls for streams vad never held share one bucket
        table.handle(schemas.Close(stream=f"ghost{i}"), 0.0)
        table.handle(schemas.Flush(stream=f"ghost{i}"), 0.0)
    assert list(table._problems) == ["-"] and table._problems["-"]["unknown_stream_ctl"] == 200
    assert table.counters["lost_frames"] == 4  # the process total stays


def test_flush_all_finishes_every_open_utterance():
    table = StreamTable(VadConfig(resume_grace_s=0))
    pcm = synth_speech()
    for name in ("a", "b"):
        table.handle(schemas.Open(stream=name, partials=False), 0.0)
        feed_range(table, name, pcm, 0, MID)
    table.handle(schemas.Open(stream="idle"), 0.0)
    out = table.flush_all(0.0)
    assert sorted(m.stream for m in out if isinstance(m, schemas.Segment)) == ["a", "b"]
    assert set(table.streams) == {"a", "b", "idle"}


def _run_until(table, stream, frames, published):
    """Feed frames; finals are 'published' by asr at once (the table hears them back)."""
    out = []
    for offset, chunk, seq in frames:
        msgs = table.handle(schemas.Audio(stream=stream, seq=seq, offset=offset, pcm=chunk), 0.0)
        out += msgs
        for m in msgs:
            if isinstance(m, schemas.Segment) and m.kind == "final" and published(m):
                table.handle(schemas.Final(utt=m.utt, text="", start=0, end=0, stream=stream), 0.0)
    return out


def test_a_restarted_vad_rebuilds_a_stream_from_the_sources_resend():
    """Old vad killed mid-utterance, one final not yet published by asr: the new vad, fed the source's
    resend (bus/replay.py), numbers on, keeps the options and finishes every utterance whole."""
    from bus.replay import StreamReplay

    clip = speech()  # one utterance, with a second of quiet before and two after
    pcm = clip * 3 + bytes(16000 * 2)
    frames = [(offset, chunk, seq) for seq, (offset, chunk) in enumerate(frames_of(pcm))]
    kill = (len(clip) * 2 + 16000 * 2 * 3) // 640  # 3 s into the third clip: utterance 2 in progress
    source = StreamReplay(capacity_samples=16000 * 60)
    opened = source.open(schemas.Open(stream="s", language="de", end_silence_ms=300), "h-1")
    old = StreamTable(VadConfig(resume_grace_s=0))
    old.handle(opened, 0.0)
    for offset, chunk, seq in frames[:kill]:
        source.sent(schemas.Audio(stream="s", seq=seq, offset=offset, pcm=chunk))
    before = _run_until(old, "s", frames[:kill], published=lambda m: m.utt == 0)  # utt 1's final is lost
    for ack in old.acks():
        source.acked(ack)
    old_finals = [m for m in before if isinstance(m, schemas.Segment) and m.kind == "final"]
    assert [m.utt for m in old_finals] == [0, 1] and source.resume_utt == 1

    clock = [0.0]
    new = StreamTable(VadConfig(resume_grace_s=3.0), clock=lambda: clock[0], instance="h-2")
    held = new.handle(schemas.Audio(stream="s", seq=kill, offset=frames[kill][0], pcm=frames[kill][1]), 0.0)
    assert held == [] and new.counters["held_for_resend"] == 1  # live audio before the resend waits
    resent = source.resend()
    assert new.handle(resent[0], 0.0) == [] and new.streams["s"].options.language == "de"
    replayed = [(m.offset, m.pcm, m.seq) for m in resent[1:]]
    after = _run_until(new, "s", replayed + frames[kill:], published=lambda m: True)
    after += new.handle(schemas.Flush(stream="s"), 0.0)
    new_finals = [m for m in after if isinstance(m, schemas.Segment) and m.kind == "final"]
    # the utterance lost with the old vad, whole: the same audio give or take one vad frame (the replay
    # starts at a bus frame, so the new vad's 30 ms grid may sit 20 ms off the old one's)
    lost, again = old_finals[1], new_finals[0]
    assert again.utt == 1 and abs(again.offset - lost.offset) <= 480
    assert abs((again.offset + len(again.pcm) // 2) - (lost.offset + len(lost.pcm) // 2)) <= 480
    assert [m.utt for m in new_finals] == [1, 2]
    assert all(m.utt >= 1 for m in after if hasattr(m, "utt"))  # numbering goes on: no second utt 0
    assert isinstance(after[-1], schemas.Flushed) and after[-1].utt == new_finals[-1].utt


def test_a_resend_to_a_stream_vad_already_serves_skips_what_it_saw():
    table = StreamTable(VadConfig(resume_grace_s=0))
    table.handle(schemas.Open(stream="s", replays=True), 0.0)
    frames = frames_of(speech())
    for i, (offset, chunk) in enumerate(frames[:100]):
        table.handle(schemas.Audio(stream="s", seq=i, offset=offset, pcm=chunk), 0.0)
    frames_before = table.streams["s"].segmenter.counters.frames
    table.handle(schemas.Open(stream="s", replays=True, resume_utt=0), 0.0)
    for i, (offset, chunk) in enumerate(frames[50:100], start=50):
        assert table.handle(schemas.Audio(stream="s", seq=i, offset=offset, pcm=chunk), 0.0) == []
    assert table.streams["s"].segmenter.counters.frames == frames_before
    assert table.counters["replayed_frames_skipped"] == 50 and table.counters["resends_to_live_streams"] == 1


def test_no_speculation_while_the_streams_previous_final_is_unheard():
    """asr keeps one guess per stream; a newer guess must never replace one a final waits on."""
    pcm = speech() * 2
    frames = [(offset, chunk, seq) for seq, (offset, chunk) in enumerate(frames_of(pcm))]
    kinds = lambda out: [(m.utt, m.kind) for m in out if isinstance(m, schemas.Segment) and m.kind != "partial"]  # noqa: E731
    slow = StreamTable(VadConfig(resume_grace_s=0))
    slow.handle(schemas.Open(stream="s"), 0.0)
    out = _run_until(slow, "s", frames, published=lambda m: False)  # asr has published nothing yet
    assert kinds(out) == [(0, "speculative"), (0, "final"), (1, "final")]
    assert slow.counters["speculations_withheld"] == 1
    keeping_up = StreamTable(VadConfig(resume_grace_s=0))
    keeping_up.handle(schemas.Open(stream="s"), 0.0)
    out = _run_until(keeping_up, "s", frames, published=lambda m: True)
    assert kinds(out) == [(0, "speculative"), (0, "final"), (1, "speculative"), (1, "final")]


def test_in_the_grace_a_stream_new_to_a_source_that_heard_this_vad_is_not_held():
    clock = [0.0]
    table = StreamTable(VadConfig(resume_grace_s=3.0), clock=lambda: clock[0], instance="h-2")
    table.handle(schemas.Open(stream="fresh", replays=True, vad="h-2"), 0.0)
    table.handle(schemas.Open(stream="old", replays=True, vad="h-1"), 0.0)  # announced to the vad before
    table.handle(schemas.Open(stream="plain"), 0.0)  # a source that does not replay: as before
    for stream in ("fresh", "old", "plain"):
        feed(table, stream, bytes(640 * 10))
    assert not table.streams["fresh"].provisional and not table.streams["plain"].provisional
    assert table.streams["old"].provisional and table.counters["held_for_resend"] == 10
    assert table.streams["fresh"].segmenter.counters.frames > 0
