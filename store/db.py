"""The transcript store's SQLite file: schema, connection settings, and writing finals.

One table `finals` (one row per final, live or file-job), an external-content FTS5 index
`finals_fts` kept in step by triggers, and `producers` (the newest seq stored per producer,
which survives the deletion of its rows by retention). WAL mode, so readers never block the
writer; auto_vacuum=INCREMENTAL, so freed pages go back to the file system a few at a time.
A numbered final is stored once: UNIQUE(worker, seq) and INSERT OR IGNORE.
"""
from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path

from bus import schemas
from bus.stage import StageError

SCHEMA_VERSION = 2  # 2: finals.speakers
SCHEMA = """
CREATE TABLE IF NOT EXISTS finals (
    id INTEGER PRIMARY KEY,
    stream TEXT NOT NULL,            -- the live stream, or the file job's id
    kind TEXT NOT NULL,              -- live | job
    utt INTEGER NOT NULL,
    idx INTEGER,                     -- a job segment's index
    source TEXT,                     -- the stream's source (from its `open`), when known
    start REAL NOT NULL,             -- seconds on the stream's (or job's) own clock
    end REAL NOT NULL,
    wall REAL NOT NULL,              -- wall clock (epoch s): when the final was published
    text TEXT NOT NULL,
    language TEXT,
    language_prob REAL,
    segments TEXT,                   -- JSON
    words TEXT,                      -- JSON, or NULL
    model TEXT,
    worker TEXT NOT NULL,
    seq INTEGER,
    latency_ms REAL,                 -- end of speech → published, when the final says both
    decode_ms REAL,
    stored_at REAL NOT NULL,
    bytes INTEGER NOT NULL,          -- text + segments + words: what retention_mb counts
    speakers TEXT,                   -- who spoke in it, comma-separated, most first (store/speakers.py)
    UNIQUE (worker, seq)
);
CREATE INDEX IF NOT EXISTS finals_stream ON finals (stream);     -- (stream, id): a stream's newest first
CREATE INDEX IF NOT EXISTS finals_wall ON finals (wall, id);
CREATE VIRTUAL TABLE IF NOT EXISTS finals_fts USING fts5(text, content='finals', content_rowid='id',
    tokenize='unicode61 remove_diacritics 2');
CREATE TRIGGER IF NOT EXISTS finals_ai AFTER INSERT ON finals BEGIN
    INSERT INTO finals_fts (rowid, text) VALUES (new.id, new.text);
END;
CREATE TRIGGER IF NOT EXISTS finals_ad AFTER DELETE ON finals BEGIN
    INSERT INTO finals_fts (finals_fts, rowid, text) VALUES ('delete', old.id, old.text);
END;
CREATE TABLE IF NOT EXISTS gaps (      -- seqs announced but not yet stored, kept with each commit
    worker TEXT NOT NULL,
    lo INTEGER NOT NULL,
    hi INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS alert_rules (
    id TEXT PRIMARY KEY,
    body TEXT NOT NULL               -- the rule as JSON (store/alerts.py Rule.body)
);
CREATE TABLE IF NOT EXISTS alerts (
    id INTEGER PRIMARY KEY,
    rule TEXT NOT NULL,
    kind TEXT NOT NULL,              -- keyword | silence | speech | speaker
    stream TEXT NOT NULL,
    final_id INTEGER,                -- the transcript it fired on (finals.id), when numbered
    worker TEXT,
    seq INTEGER,
    text TEXT,
    terms TEXT,                      -- JSON list of what matched
    wall REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS alerts_wall ON alerts (wall);
CREATE INDEX IF NOT EXISTS alerts_final ON alerts (final_id);
CREATE TRIGGER IF NOT EXISTS finals_ad_alerts AFTER DELETE ON finals BEGIN
    DELETE FROM alerts WHERE final_id = old.id;   -- an alert keeps a copy of the text: it goes with it
END;
CREATE TABLE IF NOT EXISTS producers (
    worker TEXT PRIMARY KEY,
    last_seq INTEGER NOT NULL
);
"""
COLUMNS = ("stream", "kind", "utt", "idx", "source", "start", "end", "wall", "text", "language", "language_prob",
           "segments", "words", "model", "worker", "seq", "latency_ms", "decode_ms", "stored_at", "bytes", "speakers")
INSERT = (f"INSERT OR IGNORE INTO finals ({', '.join(COLUMNS)}) "
          f"VALUES ({', '.join('?' for _ in COLUMNS)})")


ALERT_INSERT = ("INSERT INTO alerts (rule, kind, stream, final_id, worker, seq, text, terms, wall) VALUES "
                "(?, ?, ?, (SELECT id FROM finals WHERE worker = ? AND seq = ?), ?, ?, ?, ?, ?)")


class StoreFileError(StageError):
    """The store's file cannot be opened or has a schema this code does not know."""


def connect(path: Path | str, *, readonly: bool = False) -> sqlite3.Connection:
    """A connection in WAL mode; the writer's creates the schema (auto_vacuum before any table)."""
    path = Path(path)
    try:
        if readonly:
            conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, check_same_thread=False)
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(path, isolation_level=None)
        conn.execute("PRAGMA busy_timeout = 5000")
        if not readonly:
            _prepare(conn, path)
    except sqlite3.Error as exc:
        raise StoreFileError(f"cannot open the transcript store {path}: {exc}") from None
    conn.row_factory = sqlite3.Row
    return conn


def _prepare(conn: sqlite3.Connection, path: Path) -> None:
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    if version not in (0, 1, SCHEMA_VERSION):
        raise StoreFileError(f"{path} has store schema {version}; this voxbus knows {SCHEMA_VERSION}")
    if version == 0:
        conn.execute("PRAGMA auto_vacuum = INCREMENTAL")   # takes effect only before the first table
    if version == 1:  # a store from before speakers: the column is added, its rows unlabelled
        conn.execute("ALTER TABLE finals ADD COLUMN speakers TEXT")
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = NORMAL")           # WAL + NORMAL: durable at checkpoints, never corrupt
    conn.executescript(SCHEMA)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")


def _json(value) -> str | None:
    return None if value is None else json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def row_of(final: schemas.Final, source: str | None, model: str | None, now: float,
           speakers: str | None = None) -> tuple:
    """The `finals` row of a final, in COLUMNS order."""
    segments, words = _json(final.segments), _json(final.words)
    latency = None
    if final.ts is not None and final.ts_end_of_speech is not None:
        latency = round((final.ts - final.ts_end_of_speech) * 1000, 1)
    size = len(final.text.encode()) + len(segments or "") + len(words or "")
    return (final.stream if final.job is None else final.job, "live" if final.job is None else "job",
            final.utt, final.index, source, final.start, final.end, final.ts if final.ts is not None else now,
            final.text, final.language, final.language_prob, segments, words, model, final.worker, final.seq,
            latency, final.decode_ms, now, size, speakers)


def write(conn: sqlite3.Connection, rows: list[tuple], high: dict[str, int] | None = None,
          missing: dict[str, list] | None = None, alerts: list | None = None) -> int:
    """Insert rows in one transaction, with the producers' newest seqs (`high`) and their `missing`
    ranges when given; returns how many rows were new (duplicates are ignored)."""
    seq_at, worker_at = COLUMNS.index("seq"), COLUMNS.index("worker")
    newest: dict[str, int] = {}
    for row in rows:
        if row[seq_at] is not None:
            newest[row[worker_at]] = max(newest.get(row[worker_at], 0), row[seq_at])
    for worker, seq in (high or {}).items():
        newest[worker] = max(newest.get(worker, 0), seq)
    with conn:
        conn.execute("BEGIN IMMEDIATE")
        inserted = conn.executemany(INSERT, rows).rowcount   # changes of the statement itself, not its trigger's
        conn.executemany("INSERT INTO producers (worker, last_seq) VALUES (?, ?) ON CONFLICT (worker) "
                         "DO UPDATE SET last_seq = max(last_seq, excluded.last_seq)", newest.items())
        if alerts:
            conn.executemany(ALERT_INSERT, [(a.rule, a.kind, a.stream, a.worker, a.seq, a.worker, a.seq, a.text,
                                             json.dumps(list(a.terms)), a.wall) for a in alerts])
        if missing is not None:
            conn.execute("DELETE FROM gaps")
            conn.executemany("INSERT INTO gaps (worker, lo, hi) VALUES (?, ?, ?)",
                             [(w, lo, hi) for w, ranges in missing.items() for lo, hi in ranges])
    return inserted


def last_seqs(conn: sqlite3.Connection) -> dict[str, int]:
    """The newest seq stored per producer (kept even when retention deleted the rows)."""
    return {row[0]: row[1] for row in conn.execute("SELECT worker, last_seq FROM producers")}


def stored_seqs(conn: sqlite3.Connection, worker: str, low: int, high: int) -> set[int]:
    """Which seqs in [low, high] of `worker` are stored."""
    return {row[0] for row in conn.execute("SELECT seq FROM finals WHERE worker = ? AND seq BETWEEN ? AND ?",
                                           (worker, low, high))}


def gaps(conn: sqlite3.Connection) -> dict[str, list[tuple[int, int]]]:
    """The missing seq ranges per producer as of the last commit (restored after a restart)."""
    out: dict[str, list[tuple[int, int]]] = {}
    for worker, lo, hi in conn.execute("SELECT worker, lo, hi FROM gaps ORDER BY worker, lo"):
        out.setdefault(worker, []).append((lo, hi))
    return out


def now() -> float:
    return time.time()
