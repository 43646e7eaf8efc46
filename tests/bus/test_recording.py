"""Recordings: the file format, and record → replay through a real bus reproducing content and pacing."""
from __future__ import annotations

import io
import json
import os
import random
import signal
import subprocess
import sys
import time

import msgpack
import pytest

from bus import schemas
from bus.recording import (FLUSH_EVERY_S, Record, RecordingError, RecordingWriter, ReplaySchedule, describe,
                           read_records)

CLI = ["-m", "cli"]
PREFIXES = ["audio/t1/", "vad/t1/", "text/t1/"]


def audio(seq: int) -> schemas.Audio:
    return schemas.Audio(stream="t1", seq=seq, offset=seq * 320, pcm=seq.to_bytes(2, "little") * 320)


def source_records(count: int = 60, seed: int = 7) -> list[Record]:
    """Mixed topics at irregular gaps of 10-90 ms (≈ 3 s in all); the first is audio."""
    rng, t_ns, out = random.Random(seed), 1_700_000_000_000_000_000, []
    for i in range(count):
        if i and i % 10 == 0:
            msg = schemas.Partial(utt=i, text=f"words {i}", start=0.0, end=i / 10, stream="t1")
        elif i % 10 == 5:
            msg = schemas.SpeechStart(stream="t1", utt=i, offset=i * 320)
        else:
            msg = audio(i)
        topic, payload = schemas.pack(msg)
        out.append(Record(t_ns, topic, payload))
        t_ns += rng.randrange(10, 90) * 1_000_000
    return out


def write_file(path, records) -> None:
    with open(path, "wb") as out:
        writer = RecordingWriter(out)
        for record in records:
            writer.write(record)


def read_file(path) -> list[Record]:
    with open(path, "rb") as source:
        return list(read_records(source))


# ---- the file format and the pure helpers ------------------------------------------

def test_writer_and_reader_round_trip():
    buffer = io.BytesIO()
    writer = RecordingWriter(buffer)
    for record in source_records(20):
        writer.write(record)
    assert writer.count == 20
    buffer.seek(0)
    assert list(read_records(buffer)) == source_records(20)
    first = next(iter(msgpack.Unpacker(io.BytesIO(buffer.getvalue()), raw=False)))
    assert set(first) == {"t_ns", "topic", "payload"}   # the documented format, nothing else


def test_a_file_cut_mid_record_keeps_the_good_records_then_says_so():
    buffer = io.BytesIO()
    writer = RecordingWriter(buffer)
    for record in source_records(5):
        writer.write(record)
    cut = io.BytesIO(buffer.getvalue()[:-10])
    good = []
    with pytest.raises(RecordingError, match="truncated after record 4"):
        for record in read_records(cut):
            good.append(record)
    assert good == source_records(5)[:4]


@pytest.mark.parametrize("data, words", [
    (msgpack.packb([1, 2]), "record 1: a list, expected a map"),
    (msgpack.packb({"t_ns": "now", "topic": b"a/", "payload": b""}), "record 1: t_ns = 'now'"),
    (msgpack.packb({"t_ns": 1, "topic": "a/", "payload": b""}), "record 1: topic and payload must be bytes"),
    (b"\xc1", "record 1: not msgpack"),
])
def test_bad_records_are_named(data, words):
    with pytest.raises(RecordingError, match=words):
        list(read_records(io.BytesIO(data)))


def test_replay_schedule_divides_recorded_gaps_by_speed():
    normal, double, flat = ReplaySchedule(1, 100.0), ReplaySchedule(2, 100.0), ReplaySchedule(0, 100.0)
    for schedule in (normal, double, flat):
        assert schedule.due(5_000_000_000) == 100.0
    assert normal.due(6_000_000_000) == pytest.approx(101.0)
    assert double.due(6_000_000_000) == pytest.approx(100.5)
    assert flat.due(9_000_000_000) == 100.0
    with pytest.raises(ValueError, match="speed -1"):
        ReplaySchedule(-1, 0.0)


def test_describe_shows_pcm_as_its_length_and_bad_messages_as_errors():
    line = json.loads(describe(schemas.pack(audio(3))))
    assert line == {"topic": "audio/t1/", "v": 1, "type": "audio", "stream": "t1", "seq": 3, "offset": 960,
                    "pcm": "<640 bytes>", "ts": None}
    bad = json.loads(describe([b"audio/t1/", b"\x93junk"]))
    assert bad["topic"] == "audio/t1/" and "error" in bad


# ---- through a real bus ------------------------------------------------------------------

@pytest.fixture
def bus(spawn, run_dir):
    proc = spawn(["-m", "bus"], name="bus")
    deadline = time.monotonic() + 15
    while not (run_dir / "bus-subscribe").exists():
        assert time.monotonic() < deadline and proc.popen.poll() is None, proc.output()
        time.sleep(0.05)
    return proc


def replay(path, speed: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *CLI, "replay", str(path), "--speed", speed, "--settle", "20"],
                          capture_output=True, text=True, timeout=60)


def records_on_disk(path) -> int:
    """Complete records in a file a recorder is still writing (its last write may end mid-record)."""
    count = 0
    try:
        with open(path, "rb") as source:
            for _ in read_records(source):
                count += 1
    except (OSError, RecordingError):
        pass
    return count


def wait_for_records(path, count: int, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while records_on_disk(path) < count:
        assert time.monotonic() < deadline, f"{records_on_disk(path)} of {count} records in {path} after {timeout} s"
        time.sleep(0.05)


def offsets(records: list[Record]) -> list[float]:
    return [(r.t_ns - records[0].t_ns) / 1e9 for r in records]


@pytest.mark.slow
def test_record_then_replay_reproduces_content_order_and_pacing(bus, spawn, tmp_path):
    original = source_records()
    write_file(tmp_path / "a.rec", original)
    recorder = spawn([*CLI, "record", *PREFIXES, "-o", str(tmp_path / "b.rec"), "--count", str(len(original))],
                     name="record-b")
    result = replay(tmp_path / "a.rec", "1")
    assert result.returncode == 0, result.stderr
    assert f"{len(original)} messages published" in result.stderr
    assert recorder.popen.wait(30) == 0, recorder.output()
    again = read_file(tmp_path / "b.rec")
    assert [(r.topic, r.payload) for r in again] == [(r.topic, r.payload) for r in original]
    span = offsets(original)[-1]
    errors = [abs(got - want) for want, got in zip(offsets(original), offsets(again))]
    print(f"replay at speed 1: worst offset error {max(errors) * 1000:.1f} ms over a {span:.2f} s recording")
    assert max(errors) <= 0.05 * span, (errors, span)


@pytest.mark.slow
def test_replay_as_fast_as_possible_keeps_content_and_order(bus, spawn, tmp_path):
    original = [Record(1_000 + i * 1_000_000_000, *schemas.pack(audio(i))) for i in range(500)]  # 1 s apart
    write_file(tmp_path / "a.rec", original)
    recorder = spawn([*CLI, "record", "audio/t1/", "-o", str(tmp_path / "c.rec"), "--count", "500"],
                     name="record-c")
    result = replay(tmp_path / "a.rec", "0")
    assert result.returncode == 0, result.stderr
    assert recorder.popen.wait(30) == 0, recorder.output()
    again = read_file(tmp_path / "c.rec")
    assert [(r.topic, r.payload) for r in again] == [(r.topic, r.payload) for r in original]
    assert offsets(again)[-1] < offsets(original)[-1] / 10   # nowhere near the recorded 499 s


def test_record_stops_on_sigterm_and_flushes(bus, spawn, tmp_path):
    # SIGTERM drops what the recorder has not read yet, so it must come after the last message is in.
    # The last one follows a pause longer than the recorder's flush interval: the recorder flushes
    # on it, and the file shows when all have arrived (a fixed sleep here raced the delivery).
    records = source_records(30)
    pause_ns = int(3 * FLUSH_EVERY_S * 1e9) * 10   # 3 flush intervals at --speed 10
    records[-1] = Record(records[-2].t_ns + pause_ns, records[-1].topic, records[-1].payload)
    write_file(tmp_path / "a.rec", records)
    recorder = spawn([*CLI, "record", *PREFIXES, "-o", str(tmp_path / "d.rec")], name="record-d")
    assert replay(tmp_path / "a.rec", "10").returncode == 0
    wait_for_records(tmp_path / "d.rec", len(records))
    recorder.popen.send_signal(signal.SIGTERM)
    assert recorder.popen.wait(10) == 0, recorder.output()
    assert "30 messages written" in recorder.output()
    assert [r.payload for r in read_file(tmp_path / "d.rec")] == [r.payload for r in source_records(30)]


def test_tap_prints_one_json_line_per_message(bus, spawn, tmp_path):
    write_file(tmp_path / "a.rec", source_records(12))
    tap = spawn([*CLI, "tap", "audio/t1/", "text/t1/", "--count", "11"], name="tap")
    assert replay(tmp_path / "a.rec", "0").returncode == 0
    assert tap.popen.wait(30) == 0, tap.output()
    lines = [json.loads(line) for line in tap.output().splitlines() if line.startswith("{")]
    assert [line["type"] for line in lines] == ["audio"] * 9 + ["partial", "audio"]   # vad/ not tapped
    assert lines[0]["pcm"] == "<640 bytes>" and lines[-2]["text"] == "words 10"


def test_replay_of_a_bad_file_is_one_clear_line(run_dir, tmp_path):
    (tmp_path / "junk.rec").write_bytes(msgpack.packb([1, 2]))
    for path, words in ((tmp_path / "junk.rec", "record 1: a list, expected a map"),
                        (tmp_path / "missing.rec", "cannot read")):
        result = subprocess.run([sys.executable, *CLI, "replay", str(path), "--settle", "0"],
                                capture_output=True, text=True, timeout=30, env=dict(os.environ))
        assert result.returncode == 1
        assert words in result.stderr and str(path) in result.stderr
