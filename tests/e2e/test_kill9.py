"""kill -9 on the real stack: the gateway under a live /stream session and an /events reader (issue 11's
resume, issue 13's Last-Event-ID and alerts), and the store under 4 live streams and a file job (issue 13)."""
from __future__ import annotations

import asyncio
import os
import signal
import time
from collections import Counter

import httpx
import pytest

from tests.asr.wer import normalize_english
from tests.e2e import live, resilient
from tests.e2e.stack import wait_healthy
from tests.kit import wait_for

pytestmark = pytest.mark.slow

# 0 has the alert's word; the gateway is killed in 1's speech; 3's final comes while the client is away
CLIPS = ["ls-1089-134691-0000", "lj-LJ001-0002", "ls-6930-75918-0000", "ls-1089-134686-0001", "lj-LJ001-0008"]
QUERY = "language=en&partials=false&end_silence_ms=500"


def _kill(stack, stage: str) -> int:
    pid = stack.pids()[stage][0]
    os.kill(pid, signal.SIGKILL)
    return pid


def _stored(stack, stream: str) -> list[dict]:
    reply = httpx.get(f"{stack.http}/v1/transcripts", params={"stream": stream, "limit": 500}, timeout=10)
    return reply.json()["transcripts"] if reply.status_code == 200 else []


def _at_least(rows: list, count: int) -> list | None:
    return rows if len(rows) >= count else None


def _gateway_back(stack, old_pid: int) -> bool:
    try:
        return old_pid not in stack.pids().get("gateway", [])
    except (httpx.HTTPError, ValueError, KeyError):
        return False


def test_gateway_killed_9_the_session_resumes_and_events_replay_the_gap(stack):
    audio, utts = live.build_stream(CLIPS, pause_s=1.5, lead_s=0.5, tail_s=1.5)
    rule = httpx.post(f"{stack.http}/v1/alerts", json={"id": "e2e-kill9", "keywords": ["longer"]}, timeout=10)
    assert rule.status_code == 201, rule.text
    kill_in_speech = (utts[1].speech_on + utts[1].speech_off) // 2
    leave_after = utts[3].speech_off + live.RATE // 10
    sse: list[dict] = []
    sse_may_reconnect = asyncio.Event()
    done: dict = {}

    async def leave_then_kill(session):
        """Away while utterance 3 ends (its final is published meanwhile and stored), then the
        gateway is killed -9 too: the restarted one has only the store to replay from."""
        stream, had = session.readies[0]["session"], max(e["utt"] for e in session.finals())
        await asyncio.to_thread(wait_for, lambda: any(t["utt"] > had for t in _stored(stack, stream)),
                                30, 0.1, f"a final after utterance {had} in the store")
        pid = _kill(stack, "gateway")
        await asyncio.to_thread(wait_for, lambda: _gateway_back(stack, pid), 40, 0.2, "a new gateway")

    async def on_chunk(sample, session):
        if "kill" not in done and sample >= kill_in_speech:
            done["kill"] = _kill(stack, "gateway")
            sse_may_reconnect.clear()
        elif "kill" in done and "sse" not in done and len({e["utt"] for e in session.finals()}) >= 3:
            done["sse"] = len(sse)   # a final came since the restart, while /events was away: now reconnect
            sse_may_reconnect.set()
        elif "leave" not in done and sample >= leave_after:
            done["leave"] = sample
            return lambda: leave_then_kill(session)
        return None

    async def main():
        sse_may_reconnect.set()
        follower = asyncio.create_task(resilient.follow_events(stack.http, sse, sse_may_reconnect))
        await asyncio.to_thread(wait_for, lambda: resilient.CONNECTED in sse, 10, 0.05, "/events connected")
        session = await resilient.resumable_stream(stack.ws, audio, QUERY, 1.5, on_chunk)
        stream = session.readies[0]["session"]
        stored = await asyncio.to_thread(wait_for, lambda: _at_least(_stored(stack, stream), len(session.finals())),
                                         30, 0.2, "every final in the store")
        await asyncio.to_thread(wait_for, lambda: len([e for e in sse if e.get("stream") == stream and
                                                       e["type"] == "final"]) >= len(stored), 30, 0.1, "/events")
        follower.cancel()
        return session, stored

    try:
        session, stored = asyncio.run(main())
    finally:
        httpx.delete(f"{stack.http}/v1/alerts/e2e-kill9", timeout=10)
        wait_healthy(stack)
    stream = session.readies[0]["session"]
    got = Counter(e["utt"] for e in session.finals())
    assert [r["session"] for r in session.readies] == [stream] * 3 and session.connections == 3
    assert max(got.values()) == 1, got                                   # none twice
    assert set(got) == {t["utt"] for t in stored}, (got, stored)        # every final the stack made
    assert len(got) >= len(CLIPS) - 1 and sorted(got) == list(range(min(got), min(got) + len(got))), got
    assert any(e.get("replayed") for e in session.finals()), "the final made while away was not replayed"
    heard = normalize_english(" ".join(e["text"] for e in session.finals()))
    assert "belly" in heard and "surpassed" in heard, (heard, stored)

    on_events = [e for e in sse if e.get("stream") == stream]
    sse_finals = Counter(e["utt"] for e in on_events if e["type"] == "final")
    assert max(sse_finals.values()) == 1 and set(sse_finals) == set(got), (sse_finals, got)
    assert any(e.get("replayed") for e in on_events if e["type"] == "final")
    assert sse.count(resilient.CONNECTED) == 3
    alerts = [e for e in on_events if e["type"] == "alert" and e["rule"] == "e2e-kill9"]
    assert len(alerts) == 1 and alerts[0]["terms"] == ["longer"] and alerts[0]["kind"] == "keyword", alerts


STREAM_CLIPS = [["ls-1089-134691-0000", "lj-LJ001-0002", "ls-6930-75918-0000"],
                ["ls-7902-96591-0000", "lj-LJ001-0008", "lj-LJ001-0013"],
                ["ls-1089-134686-0001", "lj-LJ001-0006", "ls-1089-134691-0001"],
                ["lj-LJ001-0011", "lj-LJ001-0016", "lj-LJ001-0020"]]
JOB_CLIPS = ["lj-LJ001-0001", "lj-LJ001-0003", "lj-LJ001-0005"]
STORE_KILLS_S = (2.0, 5.5)   # into the streams


def _store_restarted(stack, old_pid: int) -> bool:
    return bool(set(stack.pids().get("store", [])) - {old_pid})


def test_store_killed_9_under_4_live_streams_and_a_file_job_loses_and_repeats_nothing(stack, tmp_path):
    import numpy as np
    import soundfile

    audios = [live.build_stream(clips, pause_s=1.5, lead_s=0.5, tail_s=1.0)[0] for clips in STREAM_CLIPS]
    upload = tmp_path / "job.wav"
    soundfile.write(upload, np.clip(live.build_stream(JOB_CLIPS, pause_s=2.0)[0], -1, 1), live.RATE,
                    subtype="PCM_16")
    killed: list[int] = []

    async def kill_the_store():
        start = time.monotonic()
        for at in STORE_KILLS_S:
            await asyncio.sleep(max(0.0, start + at - time.monotonic()))
            killed.append(_kill(stack, "store"))
            await asyncio.to_thread(wait_for, lambda: _store_restarted(stack, killed[-1]), 30, 0.1, "a new store")

    def transcribe() -> dict:
        with upload.open("rb") as fh:
            reply = httpx.post(f"{stack.http}/transcribe", files={"audio_file": fh}, data={"language": "en"},
                               timeout=120)
        assert reply.status_code == 200, reply.text
        return reply.json()

    async def main():
        return await asyncio.gather(*(live.stream(f"{stack.ws}/stream?{QUERY}", a, pace=1.5) for a in audios),
                                    asyncio.to_thread(transcribe), kill_the_store())

    *sessions, job, _ = asyncio.run(main())
    wait_healthy(stack)
    assert len(killed) == 2
    for session in sessions:
        got = Counter(e["utt"] for _, e in session.of_type("final"))
        assert got and max(got.values()) == 1, got
        stored = wait_for(lambda: _at_least(_stored(stack, session.session), len(got)), 30, 0.2,
                          f"{session.session}'s finals in the store")
        assert sorted(t["utt"] for t in stored) == sorted(got), (session.session, stored, got)   # none lost, none twice
    rows = wait_for(lambda: _stored(stack, job["job"]), 30, 0.2, "the job's finals in the store")
    assert len({t["idx"] for t in rows}) == len(rows)
    assert normalize_english(" ".join(t["text"] for t in sorted(rows, key=lambda t: t["idx"]))).split() \
        == normalize_english(job["text"]).split()
