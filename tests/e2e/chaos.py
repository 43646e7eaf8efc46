"""kill -9 the asr worker while live streams and a file job run: the chaos test and its bench.

Real clips stream over `/stream` at real time (several sessions at once), a file job goes to
`/transcribe`, and a killer sends SIGKILL to the asr process (supervisord restarts it) right after
an utterance ends (its final is then being decoded) while the job's pieces are in flight.
A tap on the bus records every final and heartbeat, so what went out twice shows even where a
client would hide it. No pytest here (the bench uses it too): `run()` returns what happened.
"""
from __future__ import annotations

import asyncio
import io
import os
import signal
import threading
import time
from collections import Counter
from dataclasses import dataclass, field

import httpx
import soundfile
import zmq

from bus import schemas, sockets
from config import load_config
from tests.e2e import live


@dataclass
class Kill:
    at: float        # wall clock
    pid: int
    recovered_s: float | None = None   # kill → the first final on the bus from another asr process
    caught: int = 0                    # live finals it caught: their utterance ended before the kill, their final after
    caught_late_s: float | None = None  # kill → the last of those finals


@dataclass
class ChaosResult:
    sessions: list[live.Session]
    utterances: list[list[live.Utterance]]
    kills: list[Kill]
    job_status: int
    job_body: dict
    job_count: int | None             # pieces vad announced
    bus_finals: Counter               # (stream or job, utt or piece index) → finals seen on the bus
    job_pieces: Counter               # the job's piece index → finals seen on the bus
    vad_counters: dict = field(default_factory=dict)        # vad's last heartbeat in the run
    vad_counters_before: dict = field(default_factory=dict)  # and its first

    def vad_delta(self, name: str) -> float:
        """How much a vad counter grew during the run."""
        return self.vad_counters.get(name, 0) - self.vad_counters_before.get(name, 0)

    def finals_per_utterance(self) -> list[int]:
        counts = []
        for session, utterances in zip(self.sessions, self.utterances):
            counts += [len(got) for got in live.match_finals(session, utterances).values()]
        return counts

    @property
    def lost(self) -> int:
        live_lost = sum(1 for n in self.finals_per_utterance() if n == 0)
        return live_lost + len(set(range(self.job_count or 0)) - set(self.job_pieces))

    @property
    def job_in_order(self) -> bool:
        """The answer's segments run forward in time (the gateway assembles pieces by index)."""
        starts = [segment["start"] for segment in self.job_body.get("segments", [])]
        return bool(starts) and starts == sorted(starts)

    @property
    def duplicated(self) -> int:
        return sum(n - 1 for n in self.bus_finals.values() if n > 1)


class BusTap:
    """Every final, vad event and heartbeat on the bus, with its arrival time, from a thread."""

    def __init__(self, env: dict):
        self.cfg = load_config(env=env)
        self.seen: list[tuple[float, schemas.Message]] = []
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.ready = threading.Event()
        self.thread = threading.Thread(target=self._run, name="bus-tap", daemon=True)
        self.thread.start()
        self.ready.wait(10)

    def _run(self) -> None:
        ctx = zmq.Context()
        sub = sockets.subscriber(ctx, self.cfg.bus, [b"text/", b"job/", b"vad/", b"health/"])
        self.ready.set()
        try:
            while not self.stopping.is_set():
                if sub.poll(50):
                    msg = schemas.unpack(sub.recv_multipart())
                    with self.lock:
                        self.seen.append((time.time(), msg))
        finally:
            sub.close(linger=0)
            ctx.term()

    def messages(self, since: float = 0.0) -> list[tuple[float, schemas.Message]]:
        with self.lock:
            return [(t, m) for t, m in self.seen if t >= since]

    def asr_pid(self, since: float = 0.0, spare: frozenset[int] = frozenset()) -> int | None:
        """The pid of the newest asr heartbeat since `since` from a worker with its model loaded
        (not one of the `spare` workers, which are never killed)."""
        beats = [m for _, m in self.messages(since) if isinstance(m, schemas.Heartbeat) and m.stage == "asr"
                 and m.pid not in spare and m.model_status() is not None and m.model_status().loaded]
        return beats[-1].pid if beats else None

    def close(self) -> None:
        self.stopping.set()
        self.thread.join(5)


def pick_clips(count: int, shortest_s: float = 2.5, longest_s: float = 5.5) -> list[str]:
    """`count` real clips of speech of a live utterance's length, in manifest order."""
    from tests.bench.common import load_manifest

    fits = [clip.id for clip in load_manifest() if shortest_s <= clip.duration <= longest_s]
    if len(fits) < count:
        raise ValueError(f"only {len(fits)} eval clips last {shortest_s}-{longest_s} s; {count} wanted")
    return fits[:count]


def job_wav(clips: list[str]) -> bytes:
    audio, _ = live.build_stream(clips, pause_s=1.0)
    buf = io.BytesIO()
    soundfile.write(buf, audio, live.RATE, format="WAV", subtype="PCM_16")
    return buf.getvalue()


def work_in_flight(tap: BusTap, since: float) -> bool:
    """Something a kill takes with it: a job piece just answered (the next one is being decoded,
    while the job has pieces left) or an utterance just ended (its final is being decoded)."""
    messages = tap.messages()
    announced = [m for _, m in messages if isinstance(m, schemas.JobSegments)]
    pieces_done = {m.index for _, m in messages if isinstance(m, schemas.Final) and m.job is not None}
    job_left = bool(announced) and len(pieces_done) < announced[-1].count - 1
    return any((isinstance(m, schemas.Final) and m.job is not None and job_left) or isinstance(m, schemas.SpeechEnd)
               for t, m in messages if t >= since)


def killer(tap: BusTap, kills: int, first_s: float, every_s: float, started: float, done: threading.Event,
           out: list[Kill], spare: frozenset[int] = frozenset()) -> None:
    """SIGKILL asr `kills` times, each when it holds work (see work_in_flight): the first at
    `first_s` or after, the next `every_s` later and only once the restarted worker is up again."""
    next_at = started + first_s
    for _ in range(kills):
        while time.time() < next_at and not done.is_set():
            time.sleep(0.02)
        pid = None
        while not done.is_set() and (pid is None or not work_in_flight(tap, next_at)):
            pid = tap.asr_pid(time.time() - 3, spare) if pid is None else pid
            time.sleep(0.005)
        if done.is_set():
            return
        os.kill(pid, signal.SIGKILL)
        out.append(Kill(time.time(), pid))
        while not done.is_set() and tap.asr_pid(out[-1].at, spare) in (None, pid):
            time.sleep(0.05)
        next_at = time.time() + every_s


def run(stack, stream_clips: list[list[str]], job_clips: list[str], kills: int, first_kill_s: float,
        kill_every_s: float, end_silence_ms: int = 800, spare: frozenset[int] = frozenset()) -> ChaosResult:
    tap = BusTap(stack.env)
    done = threading.Event()
    killed: list[Kill] = []
    job: dict = {}
    built = [live.build_stream(clips, pause_s=1.5) for clips in stream_clips]
    url = f"{stack.ws}/stream?language=en&end_silence_ms={end_silence_ms}&sample_rate=16000&encoding=f32"
    started = time.time()
    kill_thread = threading.Thread(target=killer, args=(tap, kills, first_kill_s, kill_every_s, started, done,
                                                        killed, spare), daemon=True)

    def upload() -> None:
        try:
            job["response"] = httpx.post(f"{stack.http}/transcribe", files={"audio_file": ("chaos.wav", job_wav(job_clips))},
                                         data={"response_format": "verbose_json"}, timeout=300)
        finally:
            job["done"] = time.time()

    job_thread = threading.Thread(target=upload, daemon=True)
    try:
        kill_thread.start()
        job_thread.start()

        async def streams():
            return await asyncio.gather(*(live.stream(url, audio) for audio, _ in built))
        sessions = asyncio.run(streams())
        job_thread.join(300)
    finally:
        done.set()
        kill_thread.join(30)
        time.sleep(1.0)  # the last finals' echoes on the tap
        tap.close()
    return summarise(tap, sessions, [u for _, u in built], killed, job)


def summarise(tap: BusTap, sessions, utterances, kills: list[Kill], job: dict) -> ChaosResult:
    messages = tap.messages()
    finals = [(t, m) for t, m in messages if isinstance(m, schemas.Final)]
    ended = {(m.stream, m.utt): t for t, m in messages if isinstance(m, schemas.SpeechEnd)}
    first_final: dict[tuple, float] = {}
    for t, m in finals:
        if m.stream is not None:
            first_final.setdefault((m.stream, m.utt), t)
    for kill in kills:
        after = [t for t, m in finals if t > kill.at and not m.worker.endswith(f"-{kill.pid}")]
        kill.recovered_s = round(after[0] - kill.at, 3) if after else None
        caught = [t for key, t in first_final.items() if t > kill.at and ended.get(key, kill.at) < kill.at]
        kill.caught = len(caught)
        kill.caught_late_s = round(max(caught) - kill.at, 3) if caught else None
    announced = [m for _, m in messages if isinstance(m, schemas.JobSegments)]
    response = job.get("response")
    body = response.json() if response is not None and response.headers.get("content-type", "").startswith(
        "application/json") else {}
    vad = [m for _, m in messages if isinstance(m, schemas.Heartbeat) and m.stage == "vad"]
    return ChaosResult(
        sessions=list(sessions), utterances=utterances, kills=kills,
        job_status=response.status_code if response is not None else 0, job_body=body,
        job_count=announced[-1].count if announced else None,
        bus_finals=Counter((m.job or m.stream, m.index if m.job is not None else m.utt) for _, m in finals),
        job_pieces=Counter(m.index for _, m in finals if m.job is not None and announced
                           and m.job == announced[-1].job),
        vad_counters=vad[-1].counters if vad else {}, vad_counters_before=vad[0].counters if vad else {})
