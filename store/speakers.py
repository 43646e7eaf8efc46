"""Speakers on stored finals: the speaker stage's labels (`Speakers`) matched to the finals' rows.

A live final is labelled on speaker/<s>/ (`utt` naming it) just after it is published; a file
job's turns come on job/<job>.speakers/ for the whole job. Either may come before or after the
final it labels (and before or after its commit), so labels are kept (bounded) by what they
label: a final taken later gets its speakers in its row, rows already taken are updated at the
next commit. A row's `speakers` column is the distinct speakers heard in it, comma-separated,
whoever spoke most first. Pure but for `apply` (the SQL of one commit).
"""
from __future__ import annotations

import sqlite3
from collections import OrderedDict

from bus import schemas
from bus.speaker_turns import DIARIZE_JOB_SUFFIX, speakers_in

MAX_KEPT = 4096  # labels (and finals waiting for theirs) remembered; the oldest go beyond


def joined(names: list[str]) -> str | None:
    return ",".join(names) or None


class SpeakerBook:
    def __init__(self) -> None:
        self.live: OrderedDict[tuple[str, int], list[str]] = OrderedDict()  # (stream, utt) → speakers
        self.jobs: OrderedDict[str, list[dict]] = OrderedDict()             # job → its turns
        self.updates: list[tuple[str, object]] = []                         # ("live", key) | ("job", job)
        self.finals: OrderedDict[tuple[str, int], tuple] = OrderedDict()    # (stream, utt) → (text, worker, seq)

    @staticmethod
    def _keep(table: OrderedDict, key, value) -> None:
        table[key] = value
        table.move_to_end(key)
        while len(table) > MAX_KEPT:
            table.popitem(last=False)

    def take(self, msg: schemas.Speakers) -> list[str]:
        """Remember a label; the speakers it names (for speaker alert rules)."""
        if msg.stream is not None and msg.utt is not None and msg.job is None:
            names = list(dict.fromkeys(str(t["speaker"]) for t in msg.turns))
            if not names:
                return []
            first, end = min(float(t["start"]) for t in msg.turns), max(float(t["end"]) for t in msg.turns)
            key = (msg.stream, msg.utt)
            self._keep(self.live, key, speakers_in(first, end, msg.turns))
            self.updates.append(("live", key))
            return names
        if msg.job is not None and msg.job.endswith(DIARIZE_JOB_SUFFIX) and msg.turns:
            job = msg.job[:-len(DIARIZE_JOB_SUFFIX)]
            self._keep(self.jobs, job, msg.turns)
            self.updates.append(("job", job))
        return []

    def saw(self, final: schemas.Final) -> None:
        """A live final taken: what a speaker alert on its label will quote."""
        if final.job is None and final.stream is not None:
            self._keep(self.finals, (final.stream, final.utt), (final.text, final.worker, final.seq))

    def said(self, stream: str, utt: int | None) -> tuple[str, str, int | None]:
        """(text, worker, seq) of a live final, when it was taken; else nothing to quote."""
        return self.finals.get((stream, utt), ("", "", None))

    def of_final(self, final: schemas.Final) -> str | None:
        """The speakers of a final being stored, when its label came first."""
        if final.job is not None:
            turns = self.jobs.get(final.job)
            return joined(speakers_in(final.start, final.end, turns)) if turns else None
        names = self.live.get((final.stream, final.utt)) if final.stream is not None else None
        return joined(names) if names else None

    def apply(self, conn: sqlite3.Connection) -> int:
        """Write the labels that came since the last commit onto rows already stored; rows changed."""
        changed = 0
        with conn:
            for kind, key in self.updates:
                if kind == "live":
                    names = self.live.get(key)
                    if names:
                        changed += conn.execute("UPDATE finals SET speakers = ? WHERE kind = 'live' AND stream = ? "
                                                "AND utt = ?", (joined(names), key[0], key[1])).rowcount
                elif key in self.jobs:
                    turns = self.jobs[key]
                    rows = conn.execute("SELECT id, start, end FROM finals WHERE kind = 'job' AND stream = ?",
                                        (key,)).fetchall()
                    conn.executemany("UPDATE finals SET speakers = ? WHERE id = ?",
                                     [(joined(speakers_in(r[1], r[2], turns)), r[0]) for r in rows])
                    changed += len(rows)
        self.updates.clear()
        return changed
