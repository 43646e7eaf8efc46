"""ws_protocol.Session: the /stream state machine, messages in and messages out."""
import json

import numpy as np
import pytest

from bus import schemas
from config import load_config
from gateway import ws_protocol as wp

GW = load_config(env={}, check_cores=False).gateway


def session(**config) -> wp.Session:
    return wp.Session("ws-test", wp.parse_config(config, wp.SessionConfig(), GW), GW, 320)


def f32(seconds: float, rate: int = 16000) -> bytes:
    t = np.arange(int(seconds * rate)) / rate
    return (0.3 * np.sin(2 * np.pi * 220 * t)).astype("<f4").tobytes()


def test_first_audio_opens_the_stream_with_the_session_config():
    s = session(language="de", task="translate", partials="false", end_silence_ms="500", prompt="Namen")
    out = s.audio(f32(0.1))
    assert isinstance(out[0], schemas.Open)
    assert (out[0].language, out[0].task, out[0].partials, out[0].end_silence_ms, out[0].prompt, out[0].source) == \
        ("de", "translate", False, 500, "Namen", "ws")
    audio = out[1:]
    assert [m.seq for m in audio] == [0, 1, 2, 3, 4] and [m.offset for m in audio] == [0, 320, 640, 960, 1280]
    assert s.state is wp.SessionState.STREAMING
    assert not any(isinstance(m, schemas.Open) for m in s.audio(f32(0.1)))


def test_any_rate_is_resampled_to_16k():
    s = session(sample_rate="48000")
    s.audio(f32(1.0, 48000))
    s.flush()
    assert s.samples == 16000


@pytest.mark.parametrize("fields,needle", [
    ({"language": "klingon"}, "language 'klingon'"), ({"task": "summarise"}, "transcribe or translate"),
    ({"sample_rate": "7999"}, "from 8000 to 192000"), ({"encoding": "mp3"}, "f32 or s16"),
    ({"end_silence_ms": "100"}, "from 300 to 2000"), ({"partials": "maybe"}, "true or false"),
    ({"volume": "11"}, "unknown setting(s) volume"), ({"sample_rate": True}, "an integer"),
])
def test_bad_config_is_named(fields, needle):
    with pytest.raises(wp.ProtocolError) as err:
        wp.parse_config(fields, wp.SessionConfig(), GW)
    assert needle in err.value.message and err.value.close_code == 1008


def test_config_message_only_before_audio():
    s = session()
    _, events = s.text_message(json.dumps({"type": "config", "language": "fr", "encoding": "s16"}), 0.0)
    assert events[0]["type"] == "config" and events[0]["config"]["language"] == "fr"
    s.audio(b"\x00\x00" * 320)
    with pytest.raises(wp.IllegalTransition) as err:
        s.text_message(json.dumps({"type": "config", "language": "en"}), 0.0)
    assert "config needs the session to be connected, but it is streaming" in err.value.message


def test_flush_eof_and_illegal_steps_after_eof():
    s = session()
    assert s.flush() == []  # nothing sent yet
    s.audio(f32(0.03))
    flushed = s.flush()
    assert [m.TYPE for m in flushed] == ["audio", "flush"] and len(flushed[0].pcm) == 160 * 2
    out, _ = s.text_message('{"type": "eof"}', 10.0)
    assert [m.TYPE for m in out] == ["flush"] and s.state is wp.SessionState.DRAINING
    for action in (lambda: s.audio(f32(0.02)), lambda: s.text_message('{"type":"eof"}', 11.0)):
        with pytest.raises(wp.IllegalTransition):
            action()
    assert [m.TYPE for m in s.close()] == ["close"] and s.close() == []


def test_unopened_session_closes_without_bus_traffic():
    s = session()
    assert s.eof(0.0) == [] and s.close() == []


def test_bad_text_frames_are_reported_not_fatal():
    s = session()
    for raw, code in (("not json", "bad_json"), ('{"type":"dance"}', "unknown_message"), ("[1,2]", "unknown_message")):
        with pytest.raises(wp.ProtocolError) as err:
            s.text_message(raw, 0.0)
        assert err.value.code == code and err.value.close_code is None
    assert s.text_message('{"type":"ping"}', 0.0)[1][0]["type"] == "pong"


def test_oversized_frame_ends_the_session():
    s = session()
    with pytest.raises(wp.ProtocolError) as err:
        s.audio(b"\x00" * (GW.ws_max_frame_bytes + 4))
    assert err.value.close_code == 1009 and "ws_max_frame_bytes" in err.value.message


def test_bus_events_become_client_events_and_stale_partials_vanish():
    s = session()
    start = s.on_bus(schemas.SpeechStart(stream="ws-test", utt=0, offset=16000))
    assert start["type"] == "vad" and start["event"] == "speech_start" and start["offset"] == 1.0
    partial = s.on_bus(schemas.Partial(utt=0, text="hel", start=1.0, end=1.5, stream="ws-test"))
    assert partial["type"] == "partial" and partial["text"] == "hel" and "timestamp" in partial
    final = s.on_bus(schemas.Final(utt=0, text="hello", start=1.0, end=2.0, stream="ws-test",
                                        language="en", segments=[{"start": 1.0, "end": 2.0, "text": "hello"}]))
    assert final["is_speech_final"] is True and final["language"] == "en" and final["segments"]
    assert s.on_bus(schemas.Partial(utt=0, text="hel", start=1, end=1.5, stream="ws-test")) is None
    error = s.on_bus(schemas.Error(code="x", message="y", stream="ws-test"))
    assert error == {"type": "error", "code": "x", "message": "y", "utt": None, "timestamp": error["timestamp"]}


def test_partials_off_means_none_reach_the_client():
    s = session(partials="0")
    assert s.on_bus(schemas.Partial(utt=0, text="p", start=0, end=1, stream="ws-test")) is None


def test_drain_waits_for_flushed_and_the_final_it_names():
    s = session()
    s.audio(f32(0.1))
    s.on_bus(schemas.SpeechStart(stream="ws-test", utt=3, offset=0))
    s.eof(100.0)
    assert not s.drained(100.5)  # vad has not answered the flush
    s.on_bus(schemas.Flushed(stream="ws-test", utt=4))
    s.on_bus(schemas.Final(utt=3, text="x", start=0, end=1, stream="ws-test"))
    assert not s.drained(105.0)  # the flush made utterance 4 (its speech_start may come late): no final yet
    assert s.on_bus(schemas.Final(utt=4, text="y", start=1, end=2, stream="ws-test"))["type"] == "final"
    assert s.drained(105.0) and not s.drain_timed_out(105.0)
    assert s.on_bus(schemas.Final(utt=4, text="y", start=1, end=2, stream="ws-test")) is None  # resent: dropped
    assert s.duplicate_finals == 1
    quiet = session()
    quiet.eof(0.0)
    assert quiet.drained(0.0)  # nothing was sent: nothing to wait for
    none_made = session()
    none_made.audio(f32(0.1))
    none_made.eof(0.0)
    none_made.on_bus(schemas.Flushed(stream="ws-test", utt=None))
    assert none_made.drained(0.0)
    stuck = session()
    stuck.audio(f32(0.1))
    stuck.on_bus(schemas.SpeechStart(stream="ws-test", utt=0, offset=0))
    stuck.eof(0.0)
    assert not stuck.drained(wp.DRAIN_MAX_S - 1) and stuck.drained(wp.DRAIN_MAX_S)
    assert stuck.drain_timed_out(wp.DRAIN_MAX_S) and stuck.unfinished() == [0]


def test_a_flush_before_eof_is_not_taken_for_the_eofs_answer():
    s = session()
    s.audio(f32(0.1))
    s.text_message('{"type": "flush"}', 0.0)
    s.eof(1.0)
    s.on_bus(schemas.Flushed(stream="ws-test", utt=None))  # the answer to the first flush
    assert not s.drained(1.0)
    s.on_bus(schemas.Flushed(stream="ws-test", utt=None))
    assert s.drained(1.0)


def test_a_new_vad_gets_the_open_the_unacked_audio_and_the_pending_flush():
    s = session(language="de", end_silence_ms="500")
    s.audio(f32(0.1))
    hb = dict(stage="vad", pid=1, host="h", uptime_s=0, ok=True)
    assert s.on_vad(schemas.Heartbeat(**hb, instance="h-1"))  # the first vad heard: it may have missed the open
    s.on_bus(schemas.Ack(stream="ws-test", offset=800, utt=2, vad="h-1"))
    s.audio(f32(0.1))
    s.eof(0.0)
    assert s.on_vad(schemas.Heartbeat(**hb, instance="h-1")) == []
    resent = s.on_vad(schemas.Heartbeat(**hb, instance="h-2"))
    opened, *frames, flush = resent
    assert (opened.language, opened.end_silence_ms, opened.replays, opened.resume_utt) == ("de", 500, True, 2)
    assert frames[0].offset + len(frames[0].pcm) // 2 > 800 and frames[-1].offset + len(frames[-1].pcm) // 2 \
        == s.samples
    assert isinstance(flush, schemas.Flush)


def test_fast_senders_are_paced_after_a_burst():
    s = session()
    s.audio(f32(1.0))
    assert s.pace_delay(100.0) == 0.0  # the first second, well inside the burst
    s.audio(f32(wp.BURST_S))
    assert s.pace_delay(100.0) == pytest.approx(1.0 / wp.MAX_SPEED, abs=1e-3)  # 1 s over the burst
    assert s.pace_delay(100.0 + 1.0 / wp.MAX_SPEED) == pytest.approx(0.0, abs=1e-3)
