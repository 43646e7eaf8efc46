"""store/writer.py without sockets: what a final's row takes from opens and heartbeats; history replies."""
from asr.history import FinalHistory
from bus import resync, schemas
from store import db
from store.writer import StoreWriter
from tests.store.helpers import final


def heartbeat(last: int, endpoint: str = "ipc://h") -> schemas.Heartbeat:
    return schemas.Heartbeat(stage="asr", pid=1, host="h", uptime_s=1.0, ok=True, instance="w1",
                             counters={"history": endpoint, "final_seq": last},
                             model={"name": "tiny.en-int8", "loaded": True})


def test_a_row_gets_its_streams_source_and_its_workers_model(tmp_path):
    writer = StoreWriter(db.connect(tmp_path / "s.db"))
    writer.take(schemas.Open(stream="mic1", source="alsa:hw:1"))
    writer.take(heartbeat(0))
    writer.take(final(1, "hello", worker="w1"))
    writer.take(schemas.Partial(utt=2, text="partial", start=0.0, end=1.0, stream="mic1", worker="w1"))
    assert writer.commit() == 1
    row = writer.conn.execute("SELECT source, model, text FROM finals").fetchone()
    assert tuple(row) == ("alsa:hw:1", "tiny.en-int8", "hello")


def test_a_history_reply_fills_the_gap_once_and_the_books_survive_the_commit(tmp_path):
    writer = StoreWriter(db.connect(tmp_path / "s.db"))
    ring = FinalHistory("w1", max_finals=3)
    for seq in range(1, 7):
        ring.add(final(seq, f"t {seq}", worker="w1"))
    writer.take(heartbeat(6))
    assert [a.after for a in writer.asks(0.0)] == [0]
    new = writer.take_history(ring.answer(resync.HistoryRequest(producer="w1", after=0)))
    assert new == 3 and writer.tracker.lost == 3 and writer.tracker.missing() == 0
    writer.take(final(6, "t 6", worker="w1"))   # the same final again, live: a duplicate
    writer.commit()
    assert [r[0] for r in writer.conn.execute("SELECT seq FROM finals ORDER BY seq")] == [4, 5, 6]
    again = StoreWriter(writer.conn)
    assert again.tracker.producers["w1"].high == 6 and again.tracker.missing() == 0


def test_an_alert_is_stored_with_its_transcript_and_deleted_with_it(tmp_path):
    from bus.store_query import Query
    from store import queries
    from store.alerts import Rule

    writer = StoreWriter(db.connect(tmp_path / "s.db"))
    writer.alerts.add(Rule.parse({"id": "fire", "keywords": ["fire"]}))
    writer.take(final(1, "there is a fire", worker="w1"))
    writer.take(final(2, "all quiet", worker="w1"))
    writer.commit()
    assert [f.rule for f in writer.fired] == ["fire"]
    rows = writer.conn.execute("SELECT a.final_id, f.seq, a.text FROM alerts a JOIN finals f ON f.id = a.final_id")
    assert [tuple(r) for r in rows] == [(1, 1, "there is a fire")]
    queries.answer(writer.conn, Query("delete", {"id": 1}), 500)
    assert writer.conn.execute("SELECT count(*) FROM alerts").fetchone()[0] == 0
