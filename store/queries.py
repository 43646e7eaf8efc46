"""The store's answers to `store_query` ops (bus/store_query.py): search, get, delete, streams, export.

Pure functions of a SQLite connection and the op's args; argument problems raise BadArgs
(a 400 naming the argument). Pagination is by keyset: newest stored first (id, which follows
the wall clock except for finals fetched late by resync), and the cursor is the last row's id,
so a page never skips or repeats rows as finals arrive.
"""
from __future__ import annotations

import json
import sqlite3

from bus.store_query import Query, Reply
from store import export

FIELDS = ("id", "stream", "kind", "utt", "idx", "source", "start", "end", "wall", "text", "language",
          "language_prob", "segments", "words", "model", "worker", "seq", "latency_ms", "decode_ms", "speakers")
SELECT = ", ".join(f"f.{name}" for name in FIELDS)


class BadArgs(ValueError):
    """An argument of a query that cannot be used; the message names it."""


def _num(args: dict, name: str, kind=float, low: float | None = None):
    value = args.get(name)
    if value is None or value == "":
        return None
    try:
        number = kind(value)
    except (TypeError, ValueError):
        raise BadArgs(f"{name} = {value!r:.40}: expected a{'n integer' if kind is int else ' number'}") from None
    if low is not None and number < low:
        raise BadArgs(f"{name} = {number}: must be at least {low}")
    return number


def _text(args: dict, name: str) -> str | None:
    value = args.get(name)
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise BadArgs(f"{name}: expected a string")
    return value


def row_dict(row: sqlite3.Row) -> dict:
    out = {name: row[name] for name in FIELDS}
    out["segments"] = json.loads(out["segments"]) if out["segments"] else []
    out["words"] = json.loads(out["words"]) if out["words"] else None
    out["speakers"] = out["speakers"].split(",") if out["speakers"] else []
    out["speaker"] = out["speakers"][0] if out["speakers"] else None  # whoever spoke most of it
    return out


def _filters(args: dict) -> tuple[list[str], list]:
    where, params = [], []
    for name, clause in (("stream", "f.stream = ?"), ("language", "f.language = ?")):
        value = _text(args, name)
        if value is not None:
            where.append(clause)
            params.append(value)
    speaker = _text(args, "speaker")
    if speaker is not None:  # one of the speakers heard in it
        where.append("instr(',' || f.speakers || ',', ',' || ? || ',') > 0")
        params.append(speaker)
    since, until = _num(args, "since"), _num(args, "until")
    if since is not None:
        where.append("f.wall >= ?")
        params.append(since)
    if until is not None:
        where.append("f.wall < ?")
        params.append(until)
    return where, params


def _cursor(value: str | None) -> int | None:
    if value is None:
        return None
    if not value.isdigit():
        raise BadArgs(f"cursor = {value!r:.60}: not a cursor this store gave")
    return int(value)


def _check_match(conn: sqlite3.Connection, q: str) -> None:
    """A 400 for an FTS5 query that does not parse (unbalanced quotes, a stray operator)."""
    try:
        conn.execute("SELECT rowid FROM finals_fts WHERE finals_fts MATCH ? LIMIT 1", (q,)).fetchall()
    except sqlite3.OperationalError as exc:
        raise BadArgs(f"q = {q!r:.80}: not a search this store understands ({exc}); use words, "
                      f'"a phrase", prefix*, AND, OR, NOT') from None


def _id_bounds(conn: sqlite3.Connection, args: dict) -> tuple[int, int] | None:
    """The lowest and highest id of the rows in the since/until range (every row of it lies between)."""
    since, until = _num(args, "since"), _num(args, "until")
    if since is None and until is None:
        return None
    low, high = conn.execute("SELECT min(id), max(id) FROM finals WHERE wall >= ? AND wall < ?",
                             (since if since is not None else float("-inf"),
                              until if until is not None else float("inf"))).fetchone()
    return (low, high) if low is not None else (0, -1)


def search(conn: sqlite3.Connection, args: dict, max_page: int) -> dict:
    """Newest first; `q` is an FTS5 query (words, "a phrase", prefix*, AND/OR/NOT)."""
    limit = _num(args, "limit", int, 1) or 50
    if limit > max_page:
        raise BadArgs(f"limit = {limit}: at most {max_page}")
    where, params = _filters(args)
    q = _text(args, "q")
    key, source = "f.id", "finals f"
    if q is not None:
        _check_match(conn, q)
        # FTS5 yields rowids newest first and takes the cursor itself: a page stops at `limit` hits
        key, source = "finals_fts.rowid", "finals_fts JOIN finals f ON f.id = finals_fts.rowid"
        where.insert(0, "finals_fts MATCH ?")
        params.insert(0, q)
        bounds = _id_bounds(conn, args)
        if bounds is not None:   # FTS5 seeks to the ids of the time range instead of walking every hit
            where.append("finals_fts.rowid BETWEEN ? AND ?")
            params += list(bounds)
    after = _cursor(_text(args, "cursor"))
    if after is not None:
        where.append(f"{key} < ?")
        params.append(after)
    sql = (f"SELECT {SELECT} FROM {source} {'WHERE ' + ' AND '.join(where) if where else ''} "
           f"ORDER BY {key} DESC LIMIT ?")
    rows = conn.execute(sql, [*params, limit + 1]).fetchall()
    items = [row_dict(r) for r in rows[:limit]]
    cursor = str(items[-1]["id"]) if len(rows) > limit else None
    return {"transcripts": items, "next_cursor": cursor}


def replay(conn: sqlite3.Connection, args: dict, max_page: int) -> dict:
    """Finals published after wall time `after` (exclusive), oldest first: what a reconnecting
    /events client missed (its Last-Event-ID is the last final's `ts`). `stream` narrows it."""
    after = _num(args, "after")
    if after is None:
        raise BadArgs("after: required (the wall time of the last final the client has)")
    limit = _num(args, "limit", int, 1) or max_page
    if limit > max_page:
        raise BadArgs(f"limit = {limit}: at most {max_page}")
    where, params = ["f.wall > ?"], [after]
    stream = _text(args, "stream")
    if stream is not None:
        where.append("f.stream = ?")
        params.append(stream)
    rows = conn.execute(f"SELECT {SELECT} FROM finals f WHERE {' AND '.join(where)} ORDER BY f.wall, f.id LIMIT ?",
                        [*params, limit + 1]).fetchall()
    return {"transcripts": [row_dict(r) for r in rows[:limit]], "more": len(rows) > limit}


def get(conn: sqlite3.Connection, args: dict) -> dict | None:
    ident = _num(args, "id", int, 1)
    if ident is None:
        raise BadArgs("id: required")
    row = conn.execute(f"SELECT {SELECT} FROM finals f WHERE f.id = ?", (ident,)).fetchone()
    return row_dict(row) if row is not None else None


def delete(conn: sqlite3.Connection, args: dict) -> dict:
    """By `id`, or by `stream` with `until` (wall clock; everything of the stream before it)."""
    ident = _num(args, "id", int, 1)
    stream, until = _text(args, "stream"), _num(args, "until")
    if ident is not None:
        sql, params = "DELETE FROM finals WHERE id = ?", [ident]
    elif stream is not None:
        sql, params = "DELETE FROM finals WHERE stream = ?", [stream]
        if until is not None:
            sql += " AND wall < ?"
            params.append(until)
    else:
        raise BadArgs("delete needs id, or stream (and optionally until)")
    with conn:
        conn.execute("BEGIN IMMEDIATE")
        deleted = conn.execute(sql, params).rowcount
    return {"deleted": deleted}


def streams(conn: sqlite3.Connection) -> dict:
    rows = conn.execute("SELECT stream, kind, min(wall) AS first, max(wall) AS last, count(*) AS finals, "
                        "sum(end - start) AS speech_s FROM finals GROUP BY stream, kind ORDER BY last DESC")
    return {"streams": [dict(r) for r in rows]}


def stats(conn: sqlite3.Connection) -> dict:
    page_size = conn.execute("PRAGMA page_size").fetchone()[0]
    pages = conn.execute("PRAGMA page_count").fetchone()[0]
    free = conn.execute("PRAGMA freelist_count").fetchone()[0]
    rows, size = conn.execute("SELECT count(*), coalesce(sum(bytes), 0) FROM finals").fetchone()
    return {"finals": rows, "transcript_bytes": size, "file_bytes": pages * page_size, "free_bytes": free * page_size}


def answer(conn: sqlite3.Connection, query: Query, max_page: int) -> Reply:
    """The reply to one query; a bad argument is a 400, an unknown id a 404."""
    try:
        if query.op == "search":
            return Reply(200, search(conn, query.args, max_page))
        if query.op == "get":
            found = get(conn, query.args)
            return Reply(200, found) if found is not None else Reply(404, error=f"no transcript {query.args.get('id')}")
        if query.op == "delete":
            return Reply(200, delete(conn, query.args))
        if query.op == "streams":
            return Reply(200, streams(conn))
        if query.op == "replay":
            return Reply(200, replay(conn, query.args, max_page))
        if query.op == "stats":
            return Reply(200, stats(conn))
        return export.answer(conn, query.args, _filters, _text)
    except BadArgs as exc:
        return Reply(400, error=str(exc))
    except export.ExportError as exc:
        return Reply(400, error=str(exc))
