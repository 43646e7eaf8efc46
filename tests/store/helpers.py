"""Finals to store, for the store's tests and benchmark."""
from __future__ import annotations

from bus import schemas


def final(seq: int, text: str, *, stream: str = "mic1", worker: str = "w1", wall: float = 1000.0,
          start: float | None = None, language: str = "en", job: str | None = None, words=None) -> schemas.Final:
    start = float(seq * 2) if start is None else start
    segments = [{"start": start, "end": start + 1.5, "text": text}]
    return schemas.Final(utt=seq, text=text, start=start, end=start + 1.5, stream=None if job else stream, job=job,
                         segments=segments, words=words, language=language, language_prob=0.97, worker=worker,
                         seq=seq, ts=wall, ts_end_of_speech=wall - 0.3, decode_ms=120.0)
