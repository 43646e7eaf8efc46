"""Export of a stream and time range as txt, srt, vtt or json, with the renderers of bus/subtitles.py.

Cue times are on the stream's own clock (the finals' start/end: seconds since the stream's
`open`, or from the start of a file job's audio), so they line up with a recording of it.
A final with segments gives one cue per segment; without, one cue for the whole final.
"""
from __future__ import annotations

import json
import sqlite3

from bus import subtitles
from bus.store_query import Reply

FORMATS = ("txt", "srt", "vtt", "json")
MAX_ROWS = 200000


class ExportError(ValueError):
    """An export that cannot be made; the message says why."""


def cues(rows: list[sqlite3.Row]) -> list[dict]:
    out = []
    for row in rows:
        segments = json.loads(row["segments"]) if row["segments"] else []
        if segments:
            out.extend({"start": s["start"], "end": s["end"], "text": s.get("text", "")} for s in segments)
        elif row["text"]:
            out.append({"start": row["start"], "end": row["end"], "text": row["text"]})
    return out


def render(rows: list[sqlite3.Row], fmt: str, stream: str) -> tuple[str, str]:
    """(body, media type) of the rows in one format."""
    if fmt == "txt":
        return subtitles.to_text(cues(rows)), "text/plain; charset=utf-8"
    if fmt == "srt":
        return subtitles.to_srt(cues(rows)), "application/x-subrip; charset=utf-8"
    if fmt == "vtt":
        return subtitles.to_vtt(cues(rows)), "text/vtt; charset=utf-8"
    items = [{"id": r["id"], "utt": r["utt"], "start": r["start"], "end": r["end"], "wall": r["wall"],
              "text": r["text"], "language": r["language"],
              "segments": json.loads(r["segments"]) if r["segments"] else [],
              "words": json.loads(r["words"]) if r["words"] else None} for r in rows]
    return json.dumps({"stream": stream, "transcripts": items}, ensure_ascii=False), "application/json"


def answer(conn: sqlite3.Connection, args: dict, filters, text) -> Reply:
    """`filters`/`text`: the argument readers of store/queries.py (one home for since/until rules)."""
    stream = text(args, "stream")
    if stream is None:
        raise ExportError("stream: required")
    fmt = text(args, "format") or "txt"
    if fmt not in FORMATS:
        raise ExportError(f"format = {fmt!r:.20}: expected one of {', '.join(FORMATS)}")
    where, params = filters({k: v for k, v in args.items() if k in ("stream", "since", "until")})
    rows = conn.execute(f"SELECT f.* FROM finals f WHERE {' AND '.join(where)} ORDER BY f.wall, f.id LIMIT ?",
                        [*params, MAX_ROWS + 1]).fetchall()
    if not rows:
        return Reply(404, error=f"no transcripts of stream {stream!r} in that time range")
    if len(rows) > MAX_ROWS:
        raise ExportError(f"more than {MAX_ROWS} finals in that range: narrow it with since/until")
    body, media = render(rows, fmt, stream)
    return Reply(200, {"body": body, "media_type": media, "count": len(rows)})
