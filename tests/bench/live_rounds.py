"""One round of the live bench: K concurrent real-time streams to voxbus or to the Wyoming peer,
and what is measured from it (latencies, partial cadence, WER, CPU per process, RSS).

Every latency is on the client's wall clock with nothing subtracted:
- final: arrival of the utterance's (last) final minus the moment the frame holding the clip's
  last sample was sent (for the peer, when that frame was due if the peer had already answered);
- first partial: arrival of the utterance's first partial minus the moment the frame holding
  its first speech sample was sent;
- cadence: gaps between successive partials of an utterance while it is spoken (first speech
  frame to last speech frame sent); the max gap also counts the last partial to speech end.
"""
from __future__ import annotations

import asyncio
import bisect
import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tests.asr.wer import wer
from tests.bench import peer_wyoming
from tests.e2e import live

FRAME_S = 0.02          # 20 ms frames, as a microphone client sends them
STAGGER_S = 0.37        # streams start a little apart, as real users do
DRAIN_S = 60.0          # after eof, how long a voxbus stream waits for the server to close
CLK_TCK = os.sysconf("SC_CLK_TCK")


@dataclass
class UtteranceResult:
    id: str
    reference: str
    text: str | None              # None: no final arrived
    final_s: float | None
    first_partial_s: float | None = None
    partial_gaps_s: tuple[float, ...] = ()
    max_gap_s: float | None = None
    note: str = ""


def percentile(values: list[float], q: float) -> float | None:
    return round(float(np.percentile(values, q)), 3) if values else None


def code_version() -> dict:
    """The commit the run measured and the product files that differed from it (others edit the tree)."""
    import subprocess
    repo = Path(__file__).resolve().parents[2]
    git = lambda *args: subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True).stdout  # noqa: E731
    product = ["asr", "vad", "gateway", "bus", "config", "cli", "capture", "deploy"]
    return {"head": git("log", "-1", "--format=%h %cI %s").strip()[:120],
            "dirty_product_files": git("status", "--porcelain", "--", *product).split("\n")[:-1][:40]}


# --- processes: CPU seconds and RSS from /proc -------------------------------------------------

def cpu_seconds(pid: int) -> float | None:
    """utime + stime of a process (all its threads), in seconds."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / CLK_TCK   # fields 14 and 15 of stat(5)


def rss_mb(pid: int) -> dict:
    try:
        status = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines())
    except OSError:
        return {}
    to_mb = lambda key: round(int(status.get(key, "0 kB").split()[0]) / 1024, 1)  # noqa: E731
    return {"rss_mb": to_mb("VmRSS"), "peak_mb": to_mb("VmHWM")}


class CpuMeter:
    """CPU seconds each named process spent between start() and stop()."""

    def __init__(self, pids: dict[str, int]):
        self.pids = pids
        self.before: dict[str, float | None] = {}

    def start(self) -> None:
        self.before = {name: cpu_seconds(pid) for name, pid in self.pids.items()}

    def stop(self) -> dict[str, dict]:
        out = {}
        for name, pid in self.pids.items():
            after, before = cpu_seconds(pid), self.before.get(name)
            used = round(after - before, 2) if after is not None and before is not None else None
            out[name] = {"cpu_s": used, **rss_mb(pid)}
        return out


# --- voxbus: one WebSocket per stream, the clips back to back ----------------------------------

def _frame_time(sent_at: list[tuple[int, float]], sample: int) -> float:
    """When the frame holding `sample` was sent."""
    firsts = [first for first, _ in sent_at]
    i = max(bisect.bisect_right(firsts, sample) - 1, 0)
    return sent_at[i][1]


def _partials_by_utterance(session: live.Session, utterances: list[live.Utterance],
                           finals: dict[str, list]) -> dict[str, list[float]]:
    """Partial arrival times per utterance: by the voxbus utterance id its final carries, else by time."""
    owner_of_utt = {final.get("utt"): uid for uid, got in finals.items() for _, final in got}
    out: dict[str, list[float]] = {u.id: [] for u in utterances}
    for when, event in session.of_type("partial"):
        owner = owner_of_utt.get(event.get("utt"))
        if owner is None:
            middle = (event["start"] + event["end"]) / 2 * live.RATE
            owner = next((u.id for u in utterances if u.start <= middle <= u.end + live.RATE), None)
        if owner is not None:
            out[owner].append(when)
    return out


def _cadence(arrivals: list[float], speech_on: float, speech_off: float) -> tuple[tuple[float, ...], float]:
    """Gaps between successive partials while the utterance is spoken, and the longest stretch of
    speech without a fresh partial (speech start to the first, ..., the last to speech end)."""
    inside = sorted(t for t in arrivals if speech_on <= t <= speech_off)
    gaps = tuple(round(b - a, 3) for a, b in zip(inside, inside[1:]))
    marks = [speech_on, *inside, speech_off]
    return gaps, round(max(b - a for a, b in zip(marks, marks[1:])), 3)


def voxbus_results(session: live.Session, utterances: list[live.Utterance],
                   with_partials: bool = True) -> list[UtteranceResult]:
    finals = live.match_finals(session, utterances)
    partials = _partials_by_utterance(session, utterances, finals)
    out = []
    for u in utterances:
        got = finals[u.id]
        t_on, t_off = _frame_time(session.sent_at, u.speech_on), _frame_time(session.sent_at, u.speech_off - 1)
        t_last = _frame_time(session.sent_at, u.end - 1)
        first = [t for t in partials[u.id] if t >= t_on]
        gaps, max_gap = _cadence(partials[u.id], t_on, t_off) if with_partials else ((), None)
        out.append(UtteranceResult(
            u.id, u.reference, " ".join(f["text"] for _, f in got) if got else None,
            round(got[-1][0] - t_last, 3) if got else None,
            round(first[0] - t_on, 3) if first else None, gaps, max_gap,
            f"{len(got)} finals" if len(got) > 1 else ""))
    return out


async def voxbus_stream(url: str, audio: np.ndarray) -> tuple[live.Session, str]:
    """live.stream's pacing and records, but what arrived is kept when the server does not close
    within DRAIN_S of eof (the note says so) instead of being lost with the timeout."""
    import json

    import websockets

    session, note = live.Session(), ""
    async with websockets.connect(url, max_size=None) as ws:
        async def receive():
            async for message in ws:
                session.events.append((time.time(), json.loads(message)))

        receiver = asyncio.create_task(receive())
        step, start = int(FRAME_S * live.RATE), time.monotonic()
        for i, first in enumerate(range(0, audio.size, step)):
            delay = start + i * FRAME_S - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            session.sent_at.append((first, time.time()))
            await ws.send(audio[first:first + step].astype("<f4").tobytes())
        await ws.send(json.dumps({"type": "eof"}))
        try:
            await asyncio.wait_for(receiver, DRAIN_S)
        except asyncio.TimeoutError:
            note = f"no close within {DRAIN_S:g} s of eof"
        session.close_code = ws.close_code
    return session, note


async def _voxbus_streams(url: str, audio: np.ndarray, k: int) -> list:
    async def one(i: int):
        await asyncio.sleep(i * STAGGER_S)
        return await voxbus_stream(url, audio)
    return await asyncio.gather(*(one(i) for i in range(k)), return_exceptions=True)


def voxbus_round(ws_base: str, audio: np.ndarray, utterances: list[live.Utterance], k: int,
                 end_silence_ms: int, partials: bool, extra_query: str = "") -> tuple[list[UtteranceResult], list[str], list]:
    url = (f"{ws_base}/stream?language=en&end_silence_ms={end_silence_ms}"
           f"&partials={str(partials).lower()}{extra_query}")
    results, errors, streams = [], [], []
    for outcome in asyncio.run(_voxbus_streams(url, audio, k)):
        if isinstance(outcome, BaseException):
            errors.append(f"stream failed: {type(outcome).__name__}: {outcome}")
            results += [UtteranceResult(u.id, u.reference, None, None) for u in utterances]
            streams.append([])
            continue
        session, note = outcome
        if note:
            errors.append(note)
        errors += [f"error event: {e.get('code', '')} {e.get('message', '')}".strip()
                   for _, e in session.of_type("error")]
        results += voxbus_results(session, utterances, partials)
        streams.append(event_log(session))
    return results, errors, streams


def event_log(session: live.Session) -> list[list]:
    """What the stream received, compactly: [arrival s after its first frame, type, utt, start, end, text]."""
    t0 = session.sent_at[0][1] if session.sent_at else 0.0
    return [[round(when - t0, 3), e["type"], e.get("utt"), e.get("start"), e.get("end"), (e.get("text") or "")[:60]]
            for when, e in session.events if e["type"] not in ("pong",)] + [["close", session.close_code]]


# --- the peer: one Wyoming session per utterance, paced on the same stream clock ----------------

def regions(audio: np.ndarray, utterances: list[live.Utterance]) -> list[tuple[int, int]]:
    """Each utterance's session covers its clip and the pause after it (the first also the lead-in)."""
    starts = [0] + [u.start for u in utterances[1:]]
    return list(zip(starts, starts[1:] + [audio.size]))


def _peer_result(u: live.Utterance, got: peer_wyoming.PeerUtterance, clock0: float) -> UtteranceResult:
    step = int(FRAME_S * live.RATE)
    last_frame = (u.end - 1) // step * step
    sent = got.frame_times.get(last_frame)
    due = clock0 + last_frame / live.RATE
    final = round(got.transcript_at - (sent if sent is not None else due), 3) if got.transcript_at else None
    note = ("transcript before the region's end" if got.ended_by == "vad"
            else "transcript after the region's end (audio-stop sent first)")
    return UtteranceResult(u.id, u.reference, got.text, final, note=got.error or note)


async def _peer_stream(port: int, audio: np.ndarray, utterances: list[live.Utterance],
                       delay: float) -> list[UtteranceResult]:
    await asyncio.sleep(delay)
    clock0 = time.time() + 0.05
    out = []
    for u, (lo, hi) in zip(utterances, regions(audio, utterances)):
        try:
            got = await peer_wyoming.session(port, audio[lo:hi], FRAME_S, clock0, lo)
        except OSError as exc:
            got = peer_wyoming.PeerUtterance(error=f"{type(exc).__name__}: {exc}")
        out.append(_peer_result(u, got, clock0))
    return out


def peer_round(port: int, audio: np.ndarray, utterances: list[live.Utterance], k: int
               ) -> tuple[list[UtteranceResult], list[str]]:
    async def all_streams():
        return await asyncio.gather(*(_peer_stream(port, audio, utterances, i * STAGGER_S) for i in range(k)))
    results = [r for stream in asyncio.run(all_streams()) for r in stream]
    errors = [r.note for r in results if r.note and not r.note.startswith("transcript ")]
    return results, errors


# --- summary of a round ------------------------------------------------------------------------

def summarize(results: list[UtteranceResult], errors: list[str]) -> dict:
    finals = [r.final_s for r in results if r.final_s is not None]
    firsts = [r.first_partial_s for r in results if r.first_partial_s is not None]
    gaps = [g for r in results for g in r.partial_gaps_s]
    max_gaps = [r.max_gap_s for r in results if r.max_gap_s is not None]
    scored = [r for r in results if r.text is not None]
    return {
        "utterances": len(results), "missing_finals": len(results) - len(scored), "errors": len(errors),
        "final_p50_s": percentile(finals, 50), "final_p95_s": percentile(finals, 95),
        "first_partial_p50_s": percentile(firsts, 50), "first_partial_p95_s": percentile(firsts, 95),
        "partial_gap_median_s": percentile(gaps, 50), "partial_gap_max_s": max(max_gaps) if max_gaps else None,
        "wer_pct": round(100 * wer([r.reference for r in results], [r.text or "" for r in results]), 2),
    }
