"""StreamTable: the per-stream life cycle and every kind of bad input, counted and never raised."""
import logging

from bus import schemas
from config.schema import VadConfig
from vad.streams import StreamTable
from tests.vad.kit import build_stream, frames_of, need_eval


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
    table = StreamTable(VadConfig())
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
    table = StreamTable(VadConfig())
    table.handle(schemas.Open(stream="m1", partials=False, end_silence_ms=300), 0.0)
    assert table.streams["m1"].segmenter.s.end_silence_ms == 300
    assert "partial" not in types(feed(table, "m1", speech()))


def test_audio_for_a_stream_never_opened_opens_it_with_defaults(caplog):
    table = StreamTable(VadConfig())
    with caplog.at_level(logging.WARNING):
        out = feed(table, "late", speech())
    assert table.counters["implicit_opens"] == 1 and table.streams["late"].implicit
    assert "final" in types(out)
    assert "never opened" in caplog.text


def test_wrong_sample_rate_in_open_is_reported_and_its_audio_dropped(caplog):
    table = StreamTable(VadConfig())
    with caplog.at_level(logging.WARNING):
        out = table.handle(schemas.Open(stream="m8", sample_rate=8000), 0.0)
    assert isinstance(out[0], schemas.Error) and out[0].code == "bad_sample_rate" and "8000" in out[0].message
    assert feed(table, "m8", bytes(6400)) == []
    assert table.counters["bad_opens"] == 1 and table.counters["rejected_frames"] == 10
    assert "rejected" in caplog.text
    table.handle(schemas.Open(stream="m8"), 0.0)  # a valid open heals the stream
    assert table.streams["m8"].segmenter is not None


def test_odd_length_pcm_is_counted_and_logged(caplog):
    table = StreamTable(VadConfig())
    with caplog.at_level(logging.WARNING):
        for seq in range(3):
            assert table.handle(schemas.Audio(stream="s", seq=seq, offset=seq * 320, pcm=b"\0" * 641), 0.0) == []
    assert table.counters["bad_pcm"] == 3
    assert caplog.text.count("not whole int16 samples") == 1  # logged once, then counted


def test_lost_frames_are_counted_per_stream():
    table = StreamTable(VadConfig())
    table.handle(schemas.Open(stream="s"), 0.0)
    feed(table, "s", bytes(640 * 100), skip={10, 11, 50})
    assert table.counters["lost_frames"] == 3
    assert table.snapshot()["per_stream"]["s"]["lost_frames"] == 3


def test_flush_close_and_ttl():
    table = StreamTable(VadConfig(stream_ttl_s=5.0))
    pcm = speech()
    table.handle(schemas.Open(stream="a"), 0.0)
    feed(table, "a", pcm[:len(pcm) // 2])
    assert types(table.handle(schemas.Flush(stream="a"), 1.0))[-2:] == ["final", "speech_end"]
    feed(table, "a", pcm[:len(pcm) // 2], seq0=1000, now=2.0)
    assert types(table.handle(schemas.Close(stream="a"), 3.0))[-2:] == ["final", "speech_end"]
    assert "a" not in table.streams
    assert table.handle(schemas.Close(stream="a"), 3.0) == [] and table.counters["closes"] == 1
    table.handle(schemas.Open(stream="b"), 10.0)
    feed(table, "b", bytes(6400), now=10.0)
    assert table.expire(14.0) == [] and "b" in table.streams
    table.expire(16.0)
    assert "b" not in table.streams and table.counters["ttl_closed"] == 1


def test_unexpected_message_types_are_counted_not_raised():
    table = StreamTable(VadConfig())
    assert table.handle(schemas.SpeechStart(stream="x", utt=0, offset=0), 0.0) == []
    assert table.handle(schemas.Flush(stream="nobody"), 0.0) == []
