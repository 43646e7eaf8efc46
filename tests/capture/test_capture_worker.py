"""SourceWorker and AlsaReader with fake devices: back-off, state changes, overruns, restarts, stop."""
import errno
import logging
import threading

from bus import schemas
from capture.alsa import AlsaReader
from capture.backoff import Backoff
from capture.base import SourceLost, SourceUnavailable
from capture.worker import SourceWorker
from config.schema import SourceConfig
from tests.vad.kit import wait_for

CFG = SourceConfig(stream="mic1", kind="alsa", device="fake", period_frames=320, language="de", partials=False)


class FakeReader:
    """Missing for `missing` opens, then gives `chunks` chunks and dies with SourceLost (or ends)."""

    def __init__(self, script):
        self.script = script
        self.rate, self.channels = 16000, 1
        self.closed = False

    def open(self):
        if self.script["missing"] > 0:
            self.script["missing"] -= 1
            raise SourceUnavailable("no such device 'fake'")

    def read(self):
        if self.script["chunks"] <= 0:
            if self.script.get("end"):
                return None
            self.script["chunks"] = self.script.get("refill", 0)
            self.script["refill"] = 0
            raise SourceLost("device unplugged")
        self.script["chunks"] -= 1
        return bytes(640)

    def close(self):
        self.closed = True

    def counters(self):
        return {}


def run_worker(script, schedule=(0.01,)):
    sent, readers, stop = [], [], threading.Event()

    def make(cfg):
        readers.append(FakeReader(script))
        return readers[-1]

    worker = SourceWorker(CFG, 20, make, sent.append, stop, backoff=Backoff(schedule))
    return worker, sent, readers, stop


def test_missing_device_backs_off_logs_once_then_runs(caplog):
    worker, sent, readers, stop = run_worker({"missing": 3, "chunks": 5, "end": True})
    with caplog.at_level(logging.INFO):
        worker.start()
        worker.join(5)
    assert not worker.is_alive() and worker.state == "ended"
    assert worker.open_failures == 3
    assert caplog.text.count("source device_missing") == 1  # one line per state change, not per retry
    opens = [m for m in sent if isinstance(m, schemas.Open)]
    assert len(opens) == 1 and opens[0].language == "de" and opens[0].partials is False
    audio = [m for m in sent if isinstance(m, schemas.Audio)]
    assert [a.seq for a in audio] == list(range(5)) and isinstance(sent[-1], schemas.Close)
    assert readers[-1].closed  # the one that opened; failed opens hold nothing


def test_device_lost_mid_stream_restarts_and_keeps_one_timeline():
    worker, sent, readers, stop = run_worker({"missing": 0, "chunks": 4, "refill": 3, "end": False})
    worker.start()
    wait_for(lambda: worker.restarts >= 1 and sum(isinstance(m, schemas.Audio) for m in sent) >= 7,
             timeout=5, what="a restart")
    snap = worker.snapshot()
    stop.set()
    worker.join(5)
    audio = [m for m in sent if isinstance(m, schemas.Audio)]
    assert [a.seq for a in audio[:7]] == list(range(7)) and audio[6].offset == 6 * 320
    assert sum(isinstance(m, schemas.Open) for m in sent) >= 2  # re-announced after the restart
    assert snap["restarts"] >= 1 and worker.state == "stopped" and isinstance(sent[-1], schemas.Close)


def test_stop_interrupts_the_back_off_wait():
    worker, sent, readers, stop = run_worker({"missing": 10 ** 6, "chunks": 0}, schedule=(30.0,))
    worker.start()
    wait_for(lambda: worker.state == "device_missing", timeout=5, what="device_missing")
    assert worker.snapshot()["state"] == "device_missing"
    stop.set()
    worker.join(2)
    assert not worker.is_alive()


class FakePcm:
    def __init__(self, results):
        self.results = list(results)
        self.closed = False

    def info(self):
        return {"rate": 48000, "channels": 2}

    def read(self):
        item = self.results.pop(0)
        if isinstance(item, Exception):
            raise item
        return item

    def close(self):
        self.closed = True


def test_alsa_reader_counts_overruns_goes_on_and_reports_a_vanished_device():
    period = (320, bytes(320 * 4))
    pcm = FakePcm([period, (-errno.EPIPE, b""), period, OSError(errno.ENODEV, "No such device")])
    reader = AlsaReader(CFG, pcm_factory=lambda *a: pcm, sleep=lambda s: None)
    reader.open()
    assert (reader.rate, reader.channels) == (48000, 2)  # what the device granted, not what was asked
    assert len(reader.read()) == 1280 and reader.read() == b"" and len(reader.read()) == 1280
    assert reader.counters()["overruns"] == 1
    try:
        reader.read()
        raise AssertionError("expected SourceLost")
    except SourceLost as exc:
        assert "fake" in str(exc)
    reader.close()
    assert pcm.closed


def test_alsa_reader_paces_a_device_that_never_blocks():
    slept, now = [], [0.0]
    pcm = FakePcm([(4800, bytes(4800 * 4))] * 10)

    def sleep(seconds):
        slept.append(seconds)
        now[0] += seconds

    reader = AlsaReader(CFG, pcm_factory=lambda *a: pcm, clock=lambda: now[0], sleep=sleep)
    reader.open()
    for _ in range(10):
        reader.read()  # 1 s of 48 kHz audio in no time at all
    assert abs(sum(slept) - (1.0 - 0.2)) < 1e-6  # stays at most 0.2 s ahead of real time
