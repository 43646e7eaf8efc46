"""Speakers on stored finals (store/speakers.py through the writer): live labels and file jobs' turns,
in either order with their finals; the speaker= search filter; speaker alert rules; a schema-1 file."""
import sqlite3

import pytest

from bus import schemas
from store import db, queries
from store.alerts import AlertRuleError, Rule
from store.writer import StoreWriter
from tests.store.helpers import final


def label(utt: int, *turns, stream: str = "mic1", job: str | None = None) -> schemas.Speakers:
    return schemas.Speakers(stream=None if job else stream, job=job, utt=None if job else utt,
                            turns=[{"start": a, "end": b, "speaker": who} for a, b, who in turns])


def speakers_by_utt(writer: StoreWriter) -> dict:
    return {r[0]: r[1] for r in writer.conn.execute("SELECT utt, speakers FROM finals ORDER BY utt")}


def test_live_labels_reach_their_rows_before_or_after_the_commit(tmp_path):
    writer = StoreWriter(db.connect(tmp_path / "s.db"))
    writer.take(final(1, "hello", start=2.0))                            # 2.0-3.5
    writer.commit()
    writer.take(label(1, (2.0, 2.4, "Ann"), (2.4, 3.5, "SPEAKER_2")))   # after its commit
    writer.take(label(2, (4.0, 5.5, "Ann")))                            # before its final
    writer.take(final(2, "again", start=4.0))
    writer.commit()
    assert speakers_by_utt(writer) == {1: "SPEAKER_2,Ann", 2: "Ann"}
    found = queries.search(writer.conn, {"speaker": "Ann"}, 50)["transcripts"]
    assert [(r["utt"], r["speaker"], r["speakers"]) for r in found] == [(2, "Ann", ["Ann"]),
                                                                        (1, "SPEAKER_2", ["SPEAKER_2", "Ann"])]
    assert queries.search(writer.conn, {"speaker": "An"}, 50)["transcripts"] == []


def test_a_diarized_file_jobs_turns_label_each_of_its_rows(tmp_path):
    writer = StoreWriter(db.connect(tmp_path / "s.db"))
    writer.take(final(1, "first", job="j1", start=0.0))
    writer.commit()
    writer.take(label(0, (0.0, 1.6, "SPEAKER_1"), (1.6, 4.0, "SPEAKER_2"), job="j1.speakers"))
    writer.take(final(2, "second", job="j1", start=2.0))
    writer.commit()
    assert speakers_by_utt(writer) == {1: "SPEAKER_1", 2: "SPEAKER_2"}


def test_a_speaker_rule_fires_once_per_stream_quoting_the_final(tmp_path):
    writer = StoreWriter(db.connect(tmp_path / "s.db"))
    writer.alerts.add(Rule.parse({"id": "ann", "speaker": "Ann"}))
    writer.take(final(1, "hello there", start=2.0))
    writer.take(label(1, (2.0, 3.5, "Bob")))
    writer.take(label(1, (2.0, 3.5, "Ann")))
    writer.take(final(2, "more", start=4.0))
    writer.take(label(2, (4.0, 5.5, "Ann")))
    writer.take(label(7, (9.0, 9.5, "Ann"), stream="mic2"))
    writer.commit()
    fired = [(a.rule, a.kind, a.stream, a.text, a.terms) for a in writer.fired]
    assert fired == [("ann", "speaker", "mic1", "hello there", ("Ann",)), ("ann", "speaker", "mic2", "", ("Ann",))]
    stored = writer.conn.execute("SELECT kind, final_id FROM alerts ORDER BY id").fetchall()
    assert [tuple(r) for r in stored] == [("speaker", 1), ("speaker", None)]


@pytest.mark.parametrize("body, field", [
    ({"id": "x", "speaker": "Ann", "keywords": ["hi"]}, "one kind"),
    ({"id": "x", "speaker": "a,b"}, "speaker"),
    ({"id": "x", "speaker": 3}, "speaker"),
])
def test_bad_speaker_rules_name_the_field(body, field):
    with pytest.raises(AlertRuleError, match=field):
        Rule.parse(body)


def test_a_schema_1_store_gains_the_column(tmp_path):
    path = tmp_path / "old.db"
    old = sqlite3.connect(path)
    old.executescript(db.SCHEMA.replace("    speakers TEXT,", "").replace("speaker (store/speakers.py)", ""))
    old.execute("PRAGMA user_version = 1")
    old.close()
    conn = db.connect(path)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == db.SCHEMA_VERSION
    assert "speakers" in [r[1] for r in conn.execute("PRAGMA table_info(finals)")]
