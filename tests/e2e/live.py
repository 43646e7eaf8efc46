"""A live /stream client for the end-to-end tests and the live benchmark.

Builds a stream of real clips joined with pauses, sends it over the WebSocket at
real-time pace (recording when each sample went out), and records every event
with its arrival time, so latencies are measured on the client's clock.
"""
from __future__ import annotations

import asyncio
import csv
import json
import time
from dataclasses import dataclass, field

import numpy as np

from tests.bench.common import EVAL_DIR, eval_available, load_audio_16k, speech_span  # noqa: F401  (re-exported)

RATE = 16000
CHUNK_S = 0.1


def manifest() -> dict[str, dict]:
    with open(EVAL_DIR / "MANIFEST.tsv", newline="", encoding="utf-8") as fh:
        return {row["id"]: row for row in csv.DictReader(fh, delimiter="\t")}


load_clip = load_audio_16k  # float32 16 kHz mono; .raw files are s16le 16 kHz


@dataclass(frozen=True)
class Utterance:
    id: str
    reference: str
    start: int        # clip's first sample in the stream
    end: int
    speech_on: int    # energy-based speech start/end in the stream
    speech_off: int


def build_stream(ids: list[str], pause_s: float = 1.5, lead_s: float = 0.5, tail_s: float = 1.0,
                 noise_dbfs: float = -70.0) -> tuple[np.ndarray, list[Utterance]]:
    """Clips joined by low-level noise pauses → float32 audio and where each utterance sits."""
    rows = manifest()
    rng = np.random.default_rng(7)
    noise = 10 ** (noise_dbfs / 20)
    parts, placed, pos = [rng.normal(0, noise, int(lead_s * RATE)).astype(np.float32)], [], int(lead_s * RATE)
    for i, clip_id in enumerate(ids):
        clip = load_clip(EVAL_DIR / rows[clip_id]["path"]).astype(np.float32)
        on, off = speech_span(clip)
        placed.append(Utterance(clip_id, rows[clip_id]["transcript"], pos, pos + clip.size, pos + on, pos + off))
        parts.append(clip)
        pos += clip.size
        gap = tail_s if i == len(ids) - 1 else pause_s
        parts.append(rng.normal(0, noise, int(gap * RATE)).astype(np.float32))
        pos += int(gap * RATE)
    return np.concatenate(parts), placed


@dataclass
class Session:
    """What one live session sent and received."""
    sent_at: list[tuple[int, float]] = field(default_factory=list)   # (first sample of chunk, wall time)
    events: list[tuple[float, dict]] = field(default_factory=list)   # (arrival time, event)
    close_code: int | None = None
    session: str = ""

    def sent_time(self, sample: int) -> float:
        """When `sample` went out (interpolated within its chunk, at real-time pace)."""
        for first, when in reversed(self.sent_at):
            if first <= sample:
                return when + (sample - first) / RATE
        return self.sent_at[0][1]

    def of_type(self, kind: str) -> list[tuple[float, dict]]:
        return [(t, e) for t, e in self.events if e["type"] == kind]


async def stream(url: str, audio: np.ndarray, pace: float = 1.0, chunk_s: float = CHUNK_S) -> Session:
    """Send float32 audio at `pace` × real time, then eof; collect events until the server closes."""
    import websockets

    result = Session()
    async with websockets.connect(url, max_size=None) as ws:
        async def receive():
            async for message in ws:
                result.events.append((time.time(), json.loads(message)))

        receiver = asyncio.create_task(receive())
        step = int(chunk_s * RATE)
        start = time.monotonic()
        for i, first in enumerate(range(0, audio.size, step)):
            delay = start + i * chunk_s / pace - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            result.sent_at.append((first, time.time()))
            await ws.send(audio[first:first + step].astype("<f4").tobytes())
        await ws.send(json.dumps({"type": "eof"}))
        await asyncio.wait_for(receiver, 60)
        result.close_code = ws.close_code
    ready = [e for _, e in result.events if e["type"] == "ready"]
    result.session = ready[0]["session"] if ready else ""
    return result


def match_finals(session: Session, utterances: list[Utterance]) -> dict[str, list[tuple[float, dict]]]:
    """Each final goes to the utterance its middle falls in (stream seconds)."""
    out: dict[str, list] = {u.id: [] for u in utterances}
    for when, final in session.of_type("final"):
        middle = (final["start"] + final["end"]) / 2 * RATE
        owner = min(utterances, key=lambda u: 0 if u.start <= middle <= u.end else
                    min(abs(middle - u.start), abs(middle - u.end)))
        out[owner.id].append((when, final))
    return out


def latencies(session: Session, utterances: list[Utterance], end_silence_ms: int) -> dict[str, list[float]]:
    """Per utterance: speech end → final (minus the endpointing wait) and speech start → first partial."""
    finals = match_finals(session, utterances)
    final_lat, partial_lat = [], []
    for u in utterances:
        if finals[u.id]:
            final_lat.append(finals[u.id][-1][0] - session.sent_time(u.speech_off) - end_silence_ms / 1000)
        first = [t for t, e in session.of_type("partial")
                 if u.start <= (e["start"] + e["end"]) / 2 * RATE <= u.end + RATE]
        if first:
            partial_lat.append(first[0] - session.sent_time(u.speech_on))
    return {"final": final_lat, "partial": partial_lat}
