"""The bus proxy killed -9 (supervisord restarts it) during a live stream, on the real stack.

Publishers and subscribers reconnect on their own (ZeroMQ re-sends subscriptions), audio lost
meanwhile is counted by vad and told to the client as an `audio_lost` error, and the stream
goes on without any client action: the utterances after the restart get their finals.
"""
from __future__ import annotations

import asyncio
import os
import signal

import httpx
import pytest

from tests.e2e import live
from tests.kit import need_eval, wait_for

pytestmark = pytest.mark.slow

CLIPS = ["lj-LJ001-0011", "ls-1089-134691-0000", "librivox-0880", "lj-LJ001-0004"]


async def _kill_bus_during(stack, audio, kill_at_s: float) -> tuple[int, live.Session]:
    url = f"{stack.ws}/stream?language=en&end_silence_ms=800&sample_rate=16000&encoding=f32"
    session = asyncio.create_task(live.stream(url, audio))
    await asyncio.sleep(kill_at_s)
    victim = stack.pids()["bus"][0]
    os.kill(victim, signal.SIGKILL)
    return victim, await session


def test_bus_killed_during_a_live_stream(stack):
    need_eval()
    audio, utterances = live.build_stream(CLIPS, pause_s=1.5)
    kill_at_s = (utterances[1].speech_off / live.RATE) + 0.5  # in the pause after the second clip
    victim, session = asyncio.run(_kill_bus_during(stack, audio, kill_at_s))

    wait_for(lambda: httpx.get(f"{stack.http}/health", timeout=5).status_code == 200, what="healthy again")
    assert stack.pids()["bus"][0] != victim
    assert session.close_code == 1000
    finals = live.match_finals(session, utterances)
    # the clips spoken after the bus came back are transcribed: the stream recovered by itself
    assert all(len(finals[u.id]) == 1 for u in utterances[2:]), finals
    numbers = [e["utt"] for _, e in session.of_type("final")]
    assert numbers == sorted(set(numbers)), numbers  # none twice, in order
    errors = [e for _, e in session.of_type("error")]
    assert all(e["code"] == "audio_lost" for e in errors), errors
    vad_log = (stack.run_dir / "log" / "vad.log").read_text(errors="replace")
    lost = any("audio frame(s) lost" in line and session.session in line for line in vad_log.splitlines())
    assert bool(errors) == lost, (errors, lost)  # a gap vad saw is a gap the client was told of
