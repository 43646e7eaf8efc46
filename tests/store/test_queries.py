"""Search, pagination, export, delete and retention on a real SQLite file (store/queries.py, retention.py)."""
import json

import pytest

from bus.store_query import Query
from store import db, queries, retention
from tests.kit import parse_srt, parse_vtt
from tests.store.helpers import final

TEXTS = ["the quick brown fox", "a lazy dog sleeps", "quick thinking saves the day", "Hello world again",
         "the fox and the dog", "nothing to see here"]


@pytest.fixture
def conn(tmp_path):
    c = db.connect(tmp_path / "t.db")
    rows = [db.row_of(final(i + 1, t, stream="cam" if i % 2 else "mic1", wall=1000.0 + i,
                            language="de" if i == 3 else "en"), "alsa:default", "tiny.en", 2000.0)
            for i, t in enumerate(TEXTS)]
    assert db.write(c, rows) == len(TEXTS)
    assert db.write(c, rows) == 0          # a final is never stored twice
    yield c
    c.close()


def texts(conn, **args):
    reply = queries.answer(conn, Query("search", args), 500)
    assert reply.status == 200, reply.error
    return [t["text"] for t in reply.result["transcripts"]]


def test_search_words_phrase_prefix_and_or_not(conn):
    assert texts(conn, q="fox") == ["the fox and the dog", "the quick brown fox"]
    assert texts(conn, q='"quick brown"') == ["the quick brown fox"]
    assert texts(conn, q="qui*") == ["quick thinking saves the day", "the quick brown fox"]
    assert texts(conn, q="fox AND dog") == ["the fox and the dog"]
    assert texts(conn, q="lazy OR hello") == ["Hello world again", "a lazy dog sleeps"]
    assert texts(conn, q="dog NOT fox") == ["a lazy dog sleeps"]


def test_filters_by_stream_time_and_language(conn):
    assert texts(conn, stream="cam") == ["nothing to see here", "Hello world again", "a lazy dog sleeps"]
    assert texts(conn, since=1002, until=1004) == ["Hello world again", "quick thinking saves the day"]
    assert texts(conn, language="de") == ["Hello world again"]
    assert texts(conn, q="dog", stream="mic1") == ["the fox and the dog"]


def test_keyset_pages_cover_everything_once(conn):
    seen, cursor = [], None
    while True:
        reply = queries.answer(conn, Query("search", {"limit": 4, **({"cursor": cursor} if cursor else {})}), 500)
        seen += [t["id"] for t in reply.result["transcripts"]]
        cursor = reply.result["next_cursor"]
        if cursor is None:
            break
    assert sorted(seen) == list(range(1, 7)) and len(seen) == 6


def test_bad_arguments_are_400_naming_them(conn):
    assert queries.answer(conn, Query("search", {"q": '"unclosed'}), 500).status == 400
    assert "limit" in queries.answer(conn, Query("search", {"limit": 9999}), 500).error
    assert "cursor" in queries.answer(conn, Query("search", {"cursor": "x"}), 500).error
    assert queries.answer(conn, Query("get", {"id": 999}), 500).status == 404
    assert "format" in queries.answer(conn, Query("export", {"stream": "mic1", "format": "doc"}), 500).error


def test_a_row_has_every_field(conn):
    row = queries.answer(conn, Query("get", {"id": 1}), 500).result
    assert row["source"] == "alsa:default" and row["model"] == "tiny.en" and row["worker"] == "w1"
    assert row["segments"][0]["text"] == "the quick brown fox" and row["latency_ms"] == 300.0
    assert (row["start"], row["end"], row["wall"], row["seq"]) == (2.0, 3.5, 1000.0, 1)


def test_export_round_trips_in_every_format(conn):
    def export(fmt):
        reply = queries.answer(conn, Query("export", {"stream": "mic1", "format": fmt}), 500)
        assert reply.status == 200, reply.error
        return reply.result["body"]
    mic = ["the quick brown fox", "quick thinking saves the day", "the fox and the dog"]
    assert export("txt") == " ".join(mic) + "\n"
    assert [c[2] for c in parse_srt(export("srt"))] == mic
    assert [c[2] for c in parse_vtt(export("vtt"))] == mic
    assert parse_srt(export("srt"))[0][:2] == ("00:00:02,000", "00:00:03,500")
    assert [t["text"] for t in json.loads(export("json"))["transcripts"]] == mic
    ranged = queries.answer(conn, Query("export", {"stream": "mic1", "format": "txt", "since": 1001}), 500)
    assert ranged.result["body"] == " ".join(mic[1:]) + "\n"


def test_delete_by_id_and_by_stream_until_also_leaves_search(conn):
    assert queries.answer(conn, Query("delete", {"id": 1}), 500).result == {"deleted": 1}
    assert texts(conn, q="brown") == []
    assert queries.answer(conn, Query("delete", {"stream": "cam", "until": 1003}), 500).result == {"deleted": 1}
    assert texts(conn, stream="cam") == ["nothing to see here", "Hello world again"]
    assert queries.answer(conn, Query("delete", {}), 500).status == 400


def test_retention_by_age_rows_and_size_removes_exactly_the_oldest(conn):
    assert retention.step(conn, retention.Policy(days=1 / 86400 * 3), now=1006.0)[0] == 3   # wall < 1003
    assert texts(conn) == ["nothing to see here", "the fox and the dog", "Hello world again"]
    assert retention.step(conn, retention.Policy(rows=2), now=0)[0] == 1
    assert texts(conn) == ["nothing to see here", "the fox and the dog"]
    size = conn.execute("SELECT bytes FROM finals ORDER BY wall DESC LIMIT 1").fetchone()[0]
    assert retention.step(conn, retention.Policy(mb=size / 2 ** 20), now=0)[0] == 1
    assert texts(conn) == ["nothing to see here"]


def test_retention_per_stream_keeps_each_streams_newest(conn):
    deleted, _ = retention.step(conn, retention.Policy(rows=1, per_stream=True), now=0)
    assert deleted == 4
    assert sorted(texts(conn)) == ["nothing to see here", "the fox and the dog"]


def test_incremental_vacuum_returns_pages_to_the_file_system(tmp_path):
    c = db.connect(tmp_path / "v.db")
    db.write(c, [db.row_of(final(i, "word " * 200, wall=float(i)), None, None, 0.0) for i in range(1, 2001)])
    c.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    before = (tmp_path / "v.db").stat().st_size
    policy = retention.Policy(rows=10, batch=5000, vacuum_pages=100000)
    deleted, pages = retention.step(c, policy, now=0)
    c.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    assert deleted == 1990 and pages > 0
    assert (tmp_path / "v.db").stat().st_size < before / 4


def test_replay_gives_what_came_after_a_wall_time_oldest_first(conn):
    reply = queries.answer(conn, Query("replay", {"after": 1002.0, "limit": 2}), 500)
    assert [t["text"] for t in reply.result["transcripts"]] == ["Hello world again", "the fox and the dog"]
    assert reply.result["more"] is True
    mic = queries.answer(conn, Query("replay", {"after": 1002.0, "stream": "mic1"}), 500).result
    assert [t["text"] for t in mic["transcripts"]] == ["the fox and the dog"] and mic["more"] is False
    assert queries.answer(conn, Query("replay", {}), 500).status == 400
