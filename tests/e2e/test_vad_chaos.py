"""vad killed -9 (supervisord restarts it) during two live streams and a file job, on the real stack.

Every utterance gets exactly one final, utterance numbers go on (no second utt 0), the utterance
the kill cut gets its final whole, and the file job completes (the gateway resubmits it). What
makes it so: bus/replay.py (sources resend to a new vad), vad's acks, gateway/jobs.py's resubmit.
"""
from __future__ import annotations

import asyncio
import io
import os
import signal
import time

import httpx
import numpy as np
import pytest
import soundfile

from tests.asr.wer import normalize_english, wer
from tests.e2e import live
from tests.kit import need_eval, wait_for

pytestmark = pytest.mark.slow

STREAM_A = ["ls-1089-134691-0000", "lj-LJ001-0011", "librivox-0880", "timit-ldc93s1", "ls-1089-134691-0001"]
STREAM_B = ["ls-6930-75918-0000", "lj-LJ001-0004", "lj-LJ001-0016", "librivox-0890", "ls-1089-134686-0001"]
JOB = ["lj-LJ001-0011", "ls-1089-134691-0000", "librivox-0880", "lj-LJ001-0004"] * 3  # ~1 min: in flight at the kill


def _wav(audio: np.ndarray) -> bytes:
    out = io.BytesIO()
    soundfile.write(out, audio, live.RATE, format="WAV", subtype="PCM_16")
    return out.getvalue()


def _vad_pid(stack) -> int:
    return stack.pids()["vad"][0]


async def _chaos(stack, a, b, job_wav: bytes, kill_at_s: float) -> tuple:
    url = f"{stack.ws}/stream?language=en&end_silence_ms=800&sample_rate=16000&encoding=f32"
    started = time.monotonic()
    streams = [asyncio.create_task(live.stream(url, a)), asyncio.create_task(live.stream(url, b))]
    await asyncio.sleep(kill_at_s - 0.5)
    job = asyncio.create_task(asyncio.to_thread(
        httpx.post, f"{stack.http}/transcribe", files={"audio_file": ("job.wav", job_wav)},
        data={"language": "en"}, timeout=180))
    await asyncio.sleep(max(0.0, kill_at_s - (time.monotonic() - started)))
    victim = _vad_pid(stack)
    os.kill(victim, signal.SIGKILL)
    return victim, await asyncio.gather(*streams), await job


def test_vad_killed_during_two_streams_and_a_file_job(stack):
    need_eval()
    audio_a, utts_a = live.build_stream(STREAM_A, pause_s=1.5)
    audio_b, utts_b = live.build_stream(STREAM_B, pause_s=1.5)
    job_audio, job_utts = live.build_stream(JOB, pause_s=1.0)
    # The kill lands inside stream A's second utterance, while the job is being cut or transcribed.
    kill_at_s = (utts_a[1].speech_on + utts_a[1].speech_off) / 2 / live.RATE
    victim, (session_a, session_b), job = asyncio.run(_chaos(stack, audio_a, audio_b, _wav(job_audio), kill_at_s))

    assert _vad_pid(stack) != victim  # supervisord brought a new vad
    for session, utterances in ((session_a, utts_a), (session_b, utts_b)):
        assert session.close_code == 1000
        assert not session.of_type("error"), session.of_type("error")
        finals = [e for _, e in session.of_type("final")]
        per_clip = {clip: len(got) for clip, got in live.match_finals(session, utterances).items()}
        assert all(n == 1 for n in per_clip.values()), (per_clip, finals)
        assert sorted(f["utt"] for f in finals) == list(range(len(utterances))), finals  # numbering went on
        assert session.events[-1][1]["type"] == "final"
        hyp = " ".join(f["text"] for f in finals)
        reference = " ".join(u.reference for u in utterances)
        assert wer([normalize_english(reference)], [normalize_english(hyp)]) < 0.35, hyp
    assert job.status_code == 200, job.text
    reference = normalize_english(" ".join(u.reference for u in job_utts))
    assert wer([reference], [normalize_english(job.json()["text"])]) < 0.35, job.json()["text"]
    # the mechanisms were exercised, not dodged: the new vad rebuilt both streams, the job went again
    vad_log = (stack.run_dir / "log" / "vad.log").read_text(errors="replace")
    gateway_log = (stack.run_dir / "log" / "gateway.log").read_text(errors="replace")
    resumed = {line.split('"stream": "')[1].split('"')[0] for line in vad_log.splitlines() if "stream resumed" in line}
    assert {session_a.session, session_b.session} <= resumed, resumed
    # the job goes again only if vad still held some of it at the kill; when its cutting was done
    # first (a fast box), its 200 and text above are the proof (seen once in a full run)
    print("job resubmitted:", "vad restarted during a job: resubmitted" in gateway_log)
    wait_for(lambda: httpx.get(f"{stack.http}/health", timeout=5).status_code == 200, what="healthy again")
