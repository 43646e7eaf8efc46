"""The transcript store on 1 million synthetic finals: insert rate, search latency, RSS, disk per hour of speech.

    .venv/bin/python -m tests.bench store [-- --finals 1000000 --queries 200]

1. Insert: finals as the store gets them (msgpack payloads off the bus → schemas.unpack →
   StoreWriter.take → one commit per `--commit` finals, FTS5 index kept by triggers), timed.
2. Search: the real store process (`python -m store`) on that file, asked over store.query
   (REQ → ROUTER, as the gateway asks), per query kind: p50/p95 ms of `--queries` queries.
3. The store process's RSS after the searches; the file's bytes per hour of speech (finals
   of 6-20 words at 2.5 words/s, one segment each; a second, smaller store with word timings).
Prints a table and writes tests/bench/results/store_bench.json.
"""
from __future__ import annotations

import argparse
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import zmq

from bus import schemas
from bus.store_query import StoreClient
from store import db
from store.writer import StoreWriter
from tests.bench.common import print_table, write_json

WORDS = ("the a and to of in is it that you we they was for on are with as this be at have from or one had "
         "by word but not what all were when your can said there use each which she do how their if will up "
         "other about out many then them these so some her would make like him into time has look two more "
         "write go see number no way could people my than first water been call who oil its now find long "
         "down day did get come made may part weather camera budget meeting patient dosage invoice shipment "
         "warehouse kitchen engine battery signal window doctor morning evening tomorrow yesterday").split()
STREAMS = [f"cam{i}" for i in range(8)] + [f"mic{i}" for i in range(4)]
QUERY_KINDS = {
    "common word": lambda r: {"q": "weather"},
    "rare word": lambda r: {"q": "invoice"},
    "phrase": lambda r: {"q": '"the weather"'},
    "prefix": lambda r: {"q": "ship*"},
    "AND": lambda r: {"q": "patient AND dosage"},
    "OR": lambda r: {"q": "battery OR engine"},
    "word + stream": lambda r: {"q": "budget", "stream": r.choice(STREAMS)},
    "word + 1 h range": lambda r: {"q": "doctor", "since": 1.7e9 + (h := r.randrange(0, 500)) * 3600,
                                   "until": 1.7e9 + (h + 1) * 3600},
    "stream, newest": lambda r: {"stream": r.choice(STREAMS)},
    "page 5 (cursor)": None,   # five keyset pages of 50 into a common word
}


def synthetic(n: int, seed: int = 1, words: bool = False):
    """(payload, speech seconds) of n finals spread over ~n/2000 hours of 12 streams."""
    rng = random.Random(seed)
    wall = 1.7e9
    for seq in range(1, n + 1):
        count = rng.randint(6, 20)
        text = " ".join(rng.choice(WORDS) for _ in range(count))
        stream = STREAMS[seq % len(STREAMS)]
        start = seq * 1.8
        duration = count / 2.5
        wall += 1.8
        timing = None
        if words:
            step = duration / count
            timing = [{"word": w, "start": round(start + i * step, 2), "end": round(start + (i + 1) * step, 2),
                       "probability": 0.9} for i, w in enumerate(text.split())]
        final = schemas.Final(utt=seq, text=text, start=round(start, 3), end=round(start + duration, 3), stream=stream,
                              segments=[{"start": round(start, 3), "end": round(start + duration, 3), "text": text,
                                         "avg_logprob": -0.21, "no_speech_prob": 0.01}],
                              words=timing, language="en", language_prob=0.98, worker="bench-1", seq=seq, ts=wall,
                              ts_end_of_speech=wall - 0.4, encode_ms=60.0, decode_ms=140.0)
        yield schemas.pack(final), duration


def insert(path: Path, n: int, commit_every: int, words: bool = False) -> dict:
    conn = db.connect(path)
    writer = StoreWriter(conn)
    speech, seconds, taken, chunk = 0.0, 0.0, 0, []
    source = synthetic(n, words=words)
    while taken < n:   # made in chunks (1 M payloads at once would take ~0.5 GB), timed without the making
        chunk.clear()
        for frames, duration in source:
            chunk.append(frames)
            speech += duration
            if len(chunk) == 10 * commit_every:
                break
        started = time.perf_counter()
        for frames in chunk:
            writer.take(schemas.unpack(frames))
            taken += 1
            if taken % commit_every == 0:
                writer.commit()
        writer.commit()
        seconds += time.perf_counter() - started
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    return {"finals": n, "seconds": seconds, "speech_h": speech / 3600, "file_bytes": path.stat().st_size}


def search(client: StoreClient, queries: int) -> list[dict]:
    rng = random.Random(7)
    rows = []
    for kind, make in QUERY_KINDS.items():
        times, hits = [], 0
        for _ in range(queries):
            started = time.perf_counter()
            if make is None:
                reply = client.ask("search", q="weather", limit=50)
                for _ in range(4):
                    reply = client.ask("search", q="weather", limit=50, cursor=reply.result["next_cursor"])
            else:
                reply = client.ask("search", limit=50, **make(rng))
            times.append((time.perf_counter() - started) * 1000)
            if reply.status != 200:
                raise SystemExit(f"store_bench: {kind}: the store answered {reply.status}: {reply.error}")
            hits += len(reply.result["transcripts"])
        times.sort()
        rows.append({"query": kind, "p50_ms": times[len(times) // 2], "p95_ms": times[int(len(times) * 0.95)],
                     "hits_per_query": hits / queries})
    return rows


def rss_mb(pid: int) -> tuple[float, float]:
    status = Path(f"/proc/{pid}/status").read_text().splitlines()
    get = lambda key: int(next(line.split()[1] for line in status if line.startswith(key))) / 1024  # noqa: E731
    return get("VmRSS:"), get("VmHWM:")


def serve_and_search(path: Path, run_dir: str, queries: int) -> tuple[list[dict], tuple[float, float]]:
    env = {**os.environ, "VOXBUS_RUN_DIR": run_dir, "VOXBUS_STORE__PATH": str(path), "VOXBUS_STORE__MAX_PAGE": "500"}
    proc = subprocess.Popen([sys.executable, "-m", "store"], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, cwd=Path(__file__).resolve().parents[2])
    ctx = zmq.Context()
    client = StoreClient(ctx, f"ipc://{run_dir}/store-query", timeout_ms=30000, retries=0)
    try:
        deadline = time.monotonic() + 30
        while not Path(f"{run_dir}/store-query").exists():
            if time.monotonic() > deadline or proc.poll() is not None:
                raise SystemExit("store_bench: the store process did not bind store.query")
            time.sleep(0.05)
        client.ask("stats")
        rows = search(client, queries)
        return rows, rss_mb(proc.pid)
    finally:
        client.close()
        ctx.destroy(linger=0)
        proc.terminate()
        proc.wait(30)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="store_bench")
    parser.add_argument("--finals", type=int, default=1_000_000)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--commit", type=int, default=500, help="finals per commit (the store commits every 100 ms)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="vbs-", dir="/tmp") as tmp:
        main_store = insert(Path(tmp) / "store.db", args.finals, args.commit)
        with_words = insert(Path(tmp) / "words.db", max(1000, args.finals // 10), args.commit, words=True)
        rows, (rss, hwm) = serve_and_search(Path(tmp) / "store.db", tmp, args.queries)
    summary = [
        {"measure": "insert rate (finals/s)", "value": main_store["finals"] / main_store["seconds"]},
        {"measure": "store file (MB)", "value": main_store["file_bytes"] / 2 ** 20},
        {"measure": "speech stored (h)", "value": main_store["speech_h"]},
        {"measure": "disk per hour of speech (kB)", "value": main_store["file_bytes"] / main_store["speech_h"] / 1000},
        {"measure": "  … with word timings (kB)", "value": with_words["file_bytes"] / with_words["speech_h"] / 1000},
        {"measure": "store RSS after searches (MB)", "value": rss},
        {"measure": "store peak RSS (MB)", "value": hwm},
    ]
    print_table(f"store: {args.finals} synthetic finals, commit per {args.commit}", summary)
    print_table(f"search over store.query, {args.queries} queries each, limit 50", rows)
    out = write_json("store_bench", {"finals": args.finals, "commit_every": args.commit, "insert": main_store,
                                     "with_words": with_words, "rss_mb": rss, "peak_rss_mb": hwm, "search": rows})
    print(f"\nwritten: {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
