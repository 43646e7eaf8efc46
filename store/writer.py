"""The store's logic without sockets: bus messages in, SQLite rows out, gap books kept.

`StoreWriter.take(msg)` handles what the SUB brings (finals of text/ and job/, opens of ctl/
for a stream's source, asr heartbeats for a producer's history endpoint, newest seq and
model); `take_history(reply)` handles a producer's history answer; `commit()` writes what
has come in one transaction together with the gap books, so a kill -9 between commits
loses nothing a restart cannot ask for again.
"""
from __future__ import annotations

import logging
import sqlite3
import time
from collections import Counter

from bus import resync, schemas
from store import db
from store.alerts import Alerts, Fired
from store.gaps import Ask, GapTracker
from store.speakers import SpeakerBook

log = logging.getLogger(__name__)
MAX_SOURCES = 10000


class StoreWriter:
    def __init__(self, conn: sqlite3.Connection, retry_s: float = 1.0):
        self.conn = conn
        self.tracker = GapTracker(db.last_seqs(conn), retry_s=retry_s)
        for worker, ranges in db.gaps(conn).items():
            self.tracker.restore(worker, ranges)
        self.pending: list[tuple] = []
        self.books_changed = False
        self.sources: dict[str, str] = {}
        self.models: dict[str, str] = {}
        self.counters: Counter[str] = Counter()
        self.alerts = Alerts()
        self.fired: list[Fired] = []          # to deliver (webhook, bus) once committed
        self.pending_alerts: list[Fired] = []
        self.speakers = SpeakerBook()

    def take(self, msg: schemas.Message, now: float | None = None) -> None:
        now = time.time() if now is None else now
        if isinstance(msg, schemas.Final):
            self.take_final(msg, now, via="bus")
        elif isinstance(msg, schemas.Open):
            if msg.source and (msg.stream in self.sources or len(self.sources) < MAX_SOURCES):
                self.sources[msg.stream] = msg.source
        elif isinstance(msg, schemas.Heartbeat) and msg.stage == "asr":
            self.take_heartbeat(msg)
        elif isinstance(msg, schemas.Speakers):
            names = self.speakers.take(msg)
            if names and msg.stream is not None:
                self.pending_alerts += self.alerts.on_speakers(msg.stream, names, now,
                                                               *self.speakers.said(msg.stream, msg.utt))

    def take_final(self, final: schemas.Final, now: float, via: str) -> bool:
        """Queue a final for the next commit unless it is a duplicate; True when queued."""
        if final.seq is not None:
            if not self.tracker.stored(final.worker, final.seq):
                self.counters["duplicates"] += 1
                return False
            self.books_changed = True
        source = self.sources.get(final.stream) if final.stream is not None else None
        row = db.row_of(final, source, self.models.get(final.worker), now, self.speakers.of_final(final))
        self.pending.append(row)
        self.speakers.saw(final)
        self.counters[f"received_{via}"] += 1
        self.pending_alerts += self.alerts.on_final(row[0], final.text, row[7], final.worker, final.seq)
        return True

    def tick(self, now: float) -> None:
        """Silence rules: streams with no final for their silence_min."""
        self.pending_alerts += self.alerts.tick(now)

    def take_heartbeat(self, beat: schemas.Heartbeat) -> None:
        worker = beat.instance
        if beat.model is not None:
            self.models[worker] = beat.model_status().name
        endpoint = beat.counters.get("history")
        last = beat.counters.get("final_seq")
        if isinstance(endpoint, str) and endpoint:
            before = self.tracker.missing()
            self.tracker.announced(worker, last if isinstance(last, int) and last >= 0 else 0, endpoint)
            self.books_changed |= self.tracker.missing() != before

    def take_history(self, reply: resync.HistoryReply, now: float | None = None) -> int:
        """Store what a history reply brings; returns how many finals were new."""
        now = time.time() if now is None else now
        if reply.error:
            log.warning("history: producer refused", extra={"producer": reply.producer, "error": reply.error})
            self.tracker.answered(reply.producer, progress=False)
            return 0
        known = self.tracker.producers.get(reply.producer)
        if known is not None and reply.last < known.high:
            self.counters["seq_went_back"] += 1
            log.error("producer numbers below what is stored: its finals would be taken for duplicates "
                      "(a restarted worker must number on, from the wall clock)",
                      extra={"producer": reply.producer, "last": reply.last})
        new = sum(self.take_final(final, now, via="resync") for final in reply.decoded())
        self.tracker.announced(reply.producer, reply.last)
        lost = self.tracker.forgotten(reply.producer, reply.first, reply.origin)
        if lost:
            log.error("finals lost: the producer no longer holds them", extra={
                "producer": reply.producer, "lost": lost, "oldest_held": reply.first})
        self.books_changed = True
        self.tracker.answered(reply.producer, progress=bool(new or lost or reply.more))
        return new

    def asks(self, now: float) -> list[Ask]:
        return self.tracker.requests(now)

    def commit(self) -> int:
        """Write pending rows (and the gap books); returns new rows."""
        if not (self.pending or self.books_changed or self.pending_alerts or self.speakers.updates):
            return 0
        high, missing = self.tracker.snapshot()
        new = db.write(self.conn, self.pending, high, missing, self.pending_alerts)
        if self.speakers.updates:  # after the inserts: a label may name a final of this very commit
            self.counters["speaker_labels"] += self.speakers.apply(self.conn)
        self.counters["alerts"] += len(self.pending_alerts)
        self.fired += self.pending_alerts
        self.pending_alerts = []
        self.counters["stored"] += new
        self.counters["ignored_on_insert"] += len(self.pending) - new
        self.pending.clear()
        self.books_changed = False
        return new

    def state(self) -> dict:
        return {**self.counters, "missing": self.tracker.missing(), "lost": self.tracker.lost,
                "producers": len(self.tracker.producers), "pending": len(self.pending)}
