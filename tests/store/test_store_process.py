"""The store as a real process on a real bus, with a fake numbered producer: kill -9, resync, queries."""
from __future__ import annotations

import os
import signal
import sqlite3
import time

import pytest
import zmq

from bus.store_query import StoreClient
from tests.kit import start_bus, wait_for

COUNT = 3000
RATE = 300.0   # finals/s: far above a real server's (a few per second per stream)


@pytest.fixture
def env(run_dir, tmp_path):
    environ = os.environ.copy()
    environ.update(VOXBUS_RUN_DIR=str(run_dir), VOXBUS_STORE__PATH=str(tmp_path / "store" / "t.db"),
                   VOXBUS_STORE__COMMIT_EVERY_MS="50", VOXBUS_STORE__RESYNC_TIMEOUT_MS="500")
    return environ


def seqs(path) -> list[int]:
    if not path.exists():
        return []
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return [r[0] for r in conn.execute("SELECT seq FROM finals WHERE worker = 'fake1' ORDER BY seq")]
    except sqlite3.OperationalError:   # the schema is not there yet
        return []
    finally:
        conn.close()


def producer(spawn, env, run_dir, count=COUNT, rate=RATE, origin=1):
    return spawn(["-m", "tests.store.fake_producer", "--count", str(count), "--rate", str(rate),
                  "--origin", str(origin), "--worker", "fake1", "--history", f"ipc://{run_dir}/fake1-history"],
                 env=env, name="producer")


def test_kill_9_under_load_loses_nothing_and_duplicates_nothing(spawn, run_dir, tmp_path, env):
    path = tmp_path / "store" / "t.db"
    start_bus(spawn, run_dir, env)
    store = spawn(["-m", "store"], env=env, name="store")
    wait_for(lambda: path.exists(), what="the store's file")
    producer(spawn, env, run_dir)
    for _ in range(3):   # three kills at random points of the load, each down for a while
        wait_for(lambda: len(seqs(path)) > 200, what="finals stored")
        time.sleep(0.7)
        os.kill(store.pid, signal.SIGKILL)
        store.popen.wait()
        time.sleep(1.5)   # finals published now reach no store: the producer's history keeps them
        store = spawn(["-m", "store"], env=env, name="store")
    got = wait_for(lambda: (s := seqs(path)) and len(s) >= COUNT and s, timeout=60, what="every final stored")
    time.sleep(1.0)   # anything more would be a duplicate
    got = seqs(path)
    assert got == list(range(1, COUNT + 1)), f"lost {sorted(set(range(1, COUNT + 1)) - set(got))[:20]}"
    assert store.stop() == 0, store.output()[-2000:]


def test_finals_published_before_the_store_starts_are_fetched(spawn, run_dir, tmp_path, env):
    path = tmp_path / "store" / "t.db"
    start_bus(spawn, run_dir, env)
    producer(spawn, env, run_dir, count=400, rate=2000.0)
    time.sleep(1.0)   # all 400 published, nobody storing
    spawn(["-m", "store"], env=env, name="store")
    assert wait_for(lambda: seqs(path) == list(range(1, 401)), timeout=30, what="the 400 early finals")


def test_queries_over_the_store_socket(spawn, run_dir, tmp_path, env):
    path = tmp_path / "store" / "t.db"
    start_bus(spawn, run_dir, env)
    spawn(["-m", "store"], env=env, name="store")
    producer(spawn, env, run_dir, count=50, rate=1000.0)
    wait_for(lambda: len(seqs(path)) == 50, what="50 finals")
    ctx = zmq.Context()
    client = StoreClient(ctx, f"ipc://{run_dir}/store-query", timeout_ms=2000)
    try:
        found = client.ask("search", q='"budget figures"', limit=100)
        assert found.ok and len(found.result["transcripts"]) == 10
        assert {t["stream"] for t in found.result["transcripts"]} == {"job1"}
        streams = client.ask("streams").result["streams"]
        assert sorted(s["stream"] for s in streams) == ["cam1", "cam2", "job1", "mic1", "mic2"]
        srt = client.ask("export", stream="mic1", format="srt")
        assert srt.ok and srt.result["body"].startswith("1\n")
        assert client.ask("delete", stream="job1").result == {"deleted": 10}
        assert client.ask("search", q="budget").result["transcripts"] == []
        assert client.ask("search", q='"open').status == 400
    finally:
        client.close()
        ctx.destroy(linger=0)


def test_retention_runs_while_finals_come_and_deleted_finals_never_come_back(spawn, run_dir, tmp_path, env):
    path = tmp_path / "store" / "t.db"
    env = {**env, "VOXBUS_STORE__RETENTION_ROWS": "100", "VOXBUS_STORE__RETENTION_EVERY_S": "0.2"}
    start_bus(spawn, run_dir, env)
    store = spawn(["-m", "store"], env=env, name="store")
    producer(spawn, env, run_dir, count=600, rate=300.0)
    wait_for(lambda: (s := seqs(path)) and s[-1] == 600 and len(s) == 100, timeout=30,
             what="the newest 100 of 600 finals kept")
    assert seqs(path) == list(range(501, 601))
    ctx = zmq.Context()
    client = StoreClient(ctx, f"ipc://{run_dir}/store-query", timeout_ms=2000)
    try:
        assert client.ask("delete", stream="mic1").result["deleted"] > 0
    finally:
        client.close()
        ctx.destroy(linger=0)
    kept = seqs(path)
    os.kill(store.pid, signal.SIGKILL)   # a restart must not fetch deleted finals back from the producer
    store.popen.wait()
    spawn(["-m", "store"], env=env, name="store")
    time.sleep(3.0)
    assert seqs(path) == kept


def test_a_producer_restarted_under_the_same_name_while_the_store_is_down(spawn, run_dir, tmp_path, env):
    path = tmp_path / "store" / "t.db"
    start_bus(spawn, run_dir, env)
    store = spawn(["-m", "store"], env=env, name="store")
    first = producer(spawn, env, run_dir, count=200, rate=1000.0)
    wait_for(lambda: len(seqs(path)) == 200, what="the first run's 200 finals")
    store.stop()
    first.stop()
    producer(spawn, env, run_dir, count=200, rate=1000.0, origin=1_000_000)   # numbers on, from "the clock"
    time.sleep(1.0)   # its 200 finals are published while no store listens
    spawn(["-m", "store"], env=env, name="store")
    wanted = list(range(1, 201)) + list(range(1_000_000, 1_000_200))
    assert wait_for(lambda: seqs(path) == wanted, timeout=30, what="both runs' finals, once each")
