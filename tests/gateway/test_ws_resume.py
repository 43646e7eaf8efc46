"""gateway/ws_resume.py: resume tokens (signed, checked, expiring) and the session a token brings back."""
from __future__ import annotations

import os
import stat
import time

import pytest

from bus import schemas
from config import load_config
from gateway import ws_protocol as wp
from gateway import ws_resume as wr

GW = load_config(env={}, check_cores=False).gateway


def final(utt: int, ts: float, stream: str) -> schemas.Final:
    return schemas.Final(utt=utt, text=f"utterance {utt}", start=float(utt), end=utt + 0.5, stream=stream,
                         worker="w1", seq=100 + utt, ts=ts)


def test_the_key_is_made_once_per_run_dir_and_private(tmp_path):
    first = wr.ResumeSigner.load(tmp_path, 60)
    again = wr.ResumeSigner.load(tmp_path, 60)   # a restarted gateway: the same key
    assert first.key == again.key and len(first.key) == wr.KEY_BYTES
    assert stat.S_IMODE(os.stat(tmp_path / wr.KEY_FILE).st_mode) == 0o600
    (tmp_path / wr.KEY_FILE).write_bytes(b"short")
    with pytest.raises(RuntimeError, match="remove the file"):
        wr.ResumeSigner.load(tmp_path, 60)


def test_ready_and_finals_carry_a_token_that_brings_the_same_stream_back(tmp_path):
    signer = wr.ResumeSigner.load(tmp_path, 60)
    session, resumed = wr.new_session({"language": "de", "partials": "false"}, GW, signer, 320, now=1000.0)
    assert resumed is None and session.ready_event()["resume"]
    session.audio(bytes(4 * 16000))   # 1 s of float32 audio
    events = [session.on_bus(final(u, 1000.0 + u, session.stream)) for u in (0, 1, 2)]
    assert session.on_bus(final(1, 1001.0, session.stream)) is None   # the same utterance again: not sent twice
    token = events[-1]["resume"]

    state = signer.verify(token, now=time.time())
    assert (state.stream, state.samples, state.newest, state.utts) == (session.stream, 16000, 1002.0, (0, 1, 2))
    back, resumed = wr.new_session({"resume": token}, GW, signer, 320, now=state.issued + 2.5)
    assert back.stream == session.stream and back.config == session.config and resumed == state
    # the clock goes on in real time from the token's offset; the token's utterances count as delivered
    assert back.samples == back.start_samples == 16000 + 40000
    assert back.on_bus(final(2, 1002.0, back.stream)) is None
    assert back.on_bus(final(3, 1003.0, back.stream))["type"] == "final"
    assert back.pace_delay(0.0) == 0.0   # a resumed stream is not paced for what came before it


@pytest.mark.parametrize("damage,code", [
    (lambda t: t[:-2] + ("AA" if not t.endswith("AA") else "BB"), "bad_resume_token"),
    (lambda t: "x" + t, "bad_resume_token"), (lambda t: "garbage", "bad_resume_token"),
])
def test_a_forged_or_damaged_token_is_refused(tmp_path, damage, code):
    signer = wr.ResumeSigner.load(tmp_path, 60)
    session, _ = wr.new_session({}, GW, signer, 320, now=1000.0)
    with pytest.raises(wp.ProtocolError) as err:
        wr.new_session({"resume": damage(session.ready_event()["resume"])}, GW, signer, 320, now=1001.0)
    assert err.value.code == code and err.value.close_code == 1008


def test_another_servers_token_an_old_one_and_resume_off_are_refused(tmp_path):
    signer = wr.ResumeSigner.load(tmp_path, 60)
    other = wr.ResumeSigner(b"k" * 32, 60)
    token = other.issue(wr.ResumeState("ws-1", {}, 1000.0, 0, 1000.0, ()))
    with pytest.raises(wp.ProtocolError, match="not signed by this server"):
        signer.verify(token, 1001.0)
    old = signer.issue(wr.ResumeState("ws-1", {}, 1000.0, 0, 1000.0, ()))
    with pytest.raises(wp.ProtocolError) as err:
        signer.verify(old, 1061.0)
    assert err.value.code == "resume_expired" and "60 s" in err.value.message
    off = wr.ResumeSigner(signer.key, 0)
    with pytest.raises(wp.ProtocolError) as err:
        off.verify(old, 1001.0)
    assert err.value.code == "resume_disabled"
    session, _ = wr.new_session({}, GW, off, 320, now=1000.0)
    assert "resume" not in session.ready_event()


def test_a_token_names_only_the_recent_utterances(tmp_path):
    signer = wr.ResumeSigner.load(tmp_path, 600)
    session, _ = wr.new_session({}, GW, signer, 320, now=1000.0)
    for utt in range(100):
        session.on_bus(final(utt, 1000.0 + utt, session.stream))
    state = signer.verify(session.ready_event()["resume"], time.time())
    assert state.newest == 1099.0 and state.utts == tuple(range(94, 100))   # within SLACK_S of the newest
