"""The desktop client's plain-Python parts (no Qt): the /stream lines, history export, backoff, settings, levels."""
from __future__ import annotations

import json
import random

import numpy as np
import pytest

from clients.desktop.history import History
from clients.desktop.levels import FLOOR_DB, Waveform, level_db
from clients.desktop.protocol import LiveTranscript, ProtocolError, http_url, stream_url
from clients.desktop.reconnect import Backoff
from clients.desktop.settings import Settings, SettingsError


def ev(**fields) -> str:
    return json.dumps(fields)


def test_stream_url_asks_for_16k_int16_with_the_settings():
    url = stream_url("https://box.lan/voxbus/", "de", "translate", 500)
    assert url == ("wss://box.lan/voxbus/stream?language=de&task=translate&sample_rate=16000&encoding=s16"
                   "&partials=true&end_silence_ms=500")
    assert http_url("http://127.0.0.1:8000", "/health") == "http://127.0.0.1:8000/health"
    with pytest.raises(ValueError, match="expected http://host:port"):
        stream_url("box.lan:8000", "en", "transcribe", None)


def test_partials_are_replaced_by_their_final_and_late_partials_dropped():
    live = LiveTranscript()
    assert live.apply(ev(type="ready", session="ws-1"))[0] == "status"
    live.apply(ev(type="partial", utt=0, text="hello wor", start=0.1, end=0.9))
    live.apply(ev(type="partial", utt=1, text="second", start=2.0, end=2.5))
    kind, line = live.apply(ev(type="final", utt=0, text=" Hello world.", start=0.1, end=1.2))
    assert (kind, line.text, line.final) == ("final", "Hello world.", True)
    assert live.apply(ev(type="partial", utt=0, text="late"))[1] is None
    assert [(line.text, line.final) for line in live.lines] == [("Hello world.", True), ("second", False)]
    live.apply(ev(type="final", utt=1, text=""))   # no speech after all: the grey line goes
    assert [line.text for line in live.lines] == ["Hello world."]


def test_a_reconnect_starts_new_utterance_numbers_after_the_old_ones():
    live = LiveTranscript()
    live.apply(ev(type="ready", session="ws-1"))
    live.apply(ev(type="final", utt=0, text="one"))
    live.apply(ev(type="ready", session="ws-2"))
    live.apply(ev(type="final", utt=0, text="two"))
    assert [(line.utt, line.text) for line in live.lines] == [(0, "one"), (1, "two")]


def test_server_errors_and_garbage():
    live = LiveTranscript()
    assert live.apply(ev(type="error", code="bad_config", message="language 'xx'")) == \
        ("error", "bad_config: language 'xx'")
    with pytest.raises(ProtocolError, match="not JSON"):
        live.apply("hello")
    with pytest.raises(ProtocolError, match="without a type"):
        live.apply("[1]")


def test_history_exports_txt_and_srt():
    history = History()
    history.add("microphone", " Hello world. ", 0.5, 1.25)
    history.add("talk.wav", "Second line\n\nwith a gap --> here", 3661.0, 3662.5)
    assert history.add("microphone", "   ", 0, 1) is None
    assert history.export("txt") == "Hello world.\nSecond line\n\nwith a gap --> here\n"
    assert history.export("srt") == ("1\n00:00:00,500 --> 00:00:01,250\nHello world.\n\n"
                                     "2\n01:01:01,000 --> 01:01:02,500\nSecond line\nwith a gap -> here\n")
    with pytest.raises(ValueError, match="'vtt': expected txt or srt"):
        history.export("vtt")


def test_backoff_doubles_to_its_cap_and_resets():
    backoff = Backoff(first_s=0.5, factor=2, max_s=4, jitter=0.0, rng=random.Random(1))
    assert [backoff.next_delay() for _ in range(6)] == [0.5, 1.0, 2.0, 4.0, 4.0, 4.0]
    backoff.succeeded()
    assert backoff.next_delay() == 0.5
    jittered = Backoff(first_s=1.0, jitter=0.1, rng=random.Random(2))
    assert 0.9 <= jittered.next_delay() <= 1.1


def test_settings_are_checked_and_every_problem_named():
    s = Settings.from_mapping({"server": "http://box:8000/", "language": "DE", "end_silence_ms": "600",
                               "unknown": 1})
    assert (s.server, s.language, s.end_silence_ms, s.task) == ("http://box:8000", "de", 600, "transcribe")
    with pytest.raises(SettingsError) as bad:
        Settings.from_mapping({"server": "box:8000", "task": "summarise", "language": "english!",
                               "end_silence_ms": 50})
    message = str(bad.value)
    for part in ("server 'box:8000'", "task 'summarise'", "language 'english!'", "end_silence_ms 50"):
        assert part in message


def test_level_and_waveform():
    assert level_db(b"") == FLOOR_DB and level_db(np.zeros(160, "<i2").tobytes()) == FLOOR_DB
    full = (np.ones(160) * 32767).astype("<i2").tobytes()
    assert level_db(full) == pytest.approx(0.0, abs=0.01)
    wave = Waveform(columns=4, samples_per_column=100)
    wave.add((np.arange(250) * 100).astype("<i2").tobytes())
    assert wave.values()[:2] == [0.0, 0.0] and wave.values()[2] == pytest.approx(9900 / 32768)
    wave.add(np.zeros(10, "<i2").tobytes())   # less than a column: kept for the next chunk
    wave.add(np.zeros(40, "<i2").tobytes())
    assert wave.values()[-1] == pytest.approx(24900 / 32768)
