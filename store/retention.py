"""Retention: by age, row count or transcript bytes, over all finals or per stream, a batch at a time.

`step()` deletes at most `batch` of the oldest finals past a limit in one short transaction,
then returns up to `vacuum_pages` free pages to the file system (PRAGMA incremental_vacuum),
so writes wait at most one small transaction; the store calls it every `retention_every_s`
and again at once while it still finds work. Sizes are the rows' `bytes` (text + segments +
words), not the file's: indexes add to the file what `stats` shows.
"""
from __future__ import annotations

import sqlite3
from dataclasses import dataclass


@dataclass(frozen=True)
class Policy:
    days: float = 0.0
    rows: int = 0
    mb: float = 0.0
    per_stream: bool = False
    batch: int = 1000
    vacuum: bool = True
    vacuum_pages: int = 512

    @classmethod
    def of(cls, cfg) -> "Policy":
        """From the [store] config section."""
        return cls(cfg.retention_days, cfg.retention_rows, cfg.retention_mb, cfg.retention_scope == "stream",
                   cfg.retention_batch, cfg.vacuum == "incremental", cfg.vacuum_pages)

    @property
    def active(self) -> bool:
        return bool(self.days or self.rows or self.mb)


def _doomed_by_age(conn: sqlite3.Connection, policy: Policy, now: float, limit: int) -> list[int]:
    cutoff = now - policy.days * 86400
    return [r[0] for r in conn.execute("SELECT id FROM finals WHERE wall < ? ORDER BY wall, id LIMIT ?",
                                       (cutoff, limit))]


def _doomed_over(conn: sqlite3.Connection, policy: Policy, stream: str | None, limit: int) -> list[int]:
    """The oldest rows (of `stream`, or of all) beyond the row limit or the byte limit."""
    scope, params = ("WHERE stream = ?", [stream]) if stream is not None else ("", [])
    count, size = conn.execute(f"SELECT count(*), coalesce(sum(bytes), 0) FROM finals {scope}", params).fetchone()
    excess_rows = max(0, count - policy.rows) if policy.rows else 0
    excess_bytes = max(0, size - int(policy.mb * 2 ** 20)) if policy.mb else 0
    if not excess_rows and not excess_bytes:
        return []
    doomed, freed = [], 0
    rows = conn.execute(f"SELECT id, bytes FROM finals {scope} ORDER BY wall, id LIMIT ?",
                        [*params, limit if excess_bytes else min(limit, excess_rows)])
    for ident, nbytes in rows:
        if len(doomed) >= limit or (len(doomed) >= excess_rows and freed >= excess_bytes):
            break
        doomed.append(ident)
        freed += nbytes
    return doomed


def doomed(conn: sqlite3.Connection, policy: Policy, now: float) -> list[int]:
    """Ids to delete now (at most policy.batch), oldest first within each rule."""
    ids: list[int] = []
    if policy.days:
        ids += _doomed_by_age(conn, policy, now, policy.batch)
    if policy.rows or policy.mb:
        streams = [r[0] for r in conn.execute("SELECT DISTINCT stream FROM finals")] if policy.per_stream else [None]
        for stream in streams:
            if len(ids) >= policy.batch:
                break
            ids += [i for i in _doomed_over(conn, policy, stream, policy.batch - len(ids)) if i not in set(ids)]
    return ids[:policy.batch]


def step(conn: sqlite3.Connection, policy: Policy, now: float) -> tuple[int, int]:
    """One batch: (rows deleted, pages vacuumed). The byte rule counts rows by sum(bytes)."""
    deleted = 0
    if policy.active:
        ids = doomed(conn, policy, now)
        if ids:
            with conn:
                conn.execute("BEGIN IMMEDIATE")
                conn.executemany("DELETE FROM finals WHERE id = ?", [(i,) for i in ids])
            deleted = len(ids)
    pages = 0
    if policy.vacuum:
        free = conn.execute("PRAGMA freelist_count").fetchone()[0]
        if free:
            pages = min(free, policy.vacuum_pages)
            # executescript steps the pragma to the end; execute() steps once, which frees one page
            conn.executescript(f"PRAGMA incremental_vacuum({int(pages)});")
    return deleted, pages
