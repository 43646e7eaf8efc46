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
from tests.kit import wait_for

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
        worker.join(20)
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
             timeout=20, what="a restart")
    snap = worker.snapshot()
    stop.set()
    worker.join(20)
    audio = [m for m in sent if isinstance(m, schemas.Audio)]
    assert [a.seq for a in audio[:7]] == list(range(7)) and audio[6].offset == 6 * 320
    assert sum(isinstance(m, schemas.Open) for m in sent) >= 2  # re-announced after the restart
    assert snap["restarts"] >= 1 and worker.state == "stopped" and isinstance(sent[-1], schemas.Close)


def test_stop_interrupts_the_back_off_wait():
    worker, sent, readers, stop = run_worker({"missing": 10 ** 6, "chunks": 0}, schedule=(30.0,))
    worker.start()
    wait_for(lambda: worker.state == "device_missing", timeout=20, what="device_missing")
    assert worker.snapshot()["state"] == "device_missing"
    stop.set()
    worker.join(10)  # far less than the 30 s back-off step
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


class BrokenReader(FakeReader):
    """Gives `chunks` chunks, then raises what a library might (not SourceLost)."""

    def __init__(self, script, exc, channels=1):
        super().__init__(script)
        self.exc = exc
        self.channels = channels
        self.opened = 0

    def open(self):
        self.opened += 1

    def read(self):
        if self.script["chunks"] <= 0:
            raise self.exc
        self.script["chunks"] -= 1
        return bytes(640)


def start_broken(exc, cfg=CFG, chunks=3, channels=1):
    sent, readers, stop = [], [], threading.Event()

    def make(c):
        readers.append(BrokenReader({"chunks": chunks}, exc, channels))
        return readers[-1]

    worker = SourceWorker(cfg, 20, make, sent.append, stop, backoff=Backoff((0.01,)), describe="file:/x.flac")
    worker.start()
    return worker, sent, readers, stop


def test_an_unexpected_exception_is_logged_with_its_traceback_and_retried(caplog):
    with caplog.at_level(logging.INFO):
        worker, sent, readers, stop = start_broken(RuntimeError("Internal psf_fseek() failed"))
        # The 10 ms back-off reopens the source at once: wait for a moment between retries.
        wait_for(lambda: worker.failures >= 3 and worker.state == "failing", timeout=20,
                 what="retries after the failure")
        assert worker.is_alive() and worker.state == "failing"
        snap = worker.snapshot()
        stop.set()
        worker.join(20)
    assert snap["state"] == "failing" and "RuntimeError: Internal psf_fseek() failed" in snap["reason"]
    assert len(readers) >= 3  # reopened each time
    failures = [r for r in caplog.records if "failed unexpectedly" in r.getMessage()]
    assert len(failures) >= 3 and all(r.exc_info and r.levelno == logging.ERROR for r in failures)
    assert isinstance(sent[-1], schemas.Close) and worker.state == "stopped"


def test_a_device_granting_fewer_channels_than_picked_is_a_failing_source_named_in_the_heartbeat():
    from capture.main import source_status
    cfg = SourceConfig(stream="mic1", kind="alsa", device="fake", channels=2, channel=1)
    worker, sent, readers, stop = start_broken(RuntimeError("unused"), cfg=cfg, channels=1)
    wait_for(lambda: worker.state == "failing", timeout=20, what="failing")
    ok, status = source_status({"mic1": worker.snapshot(), "other": {"state": "running", "reason": ""}})
    stop.set()
    worker.join(20)
    assert not ok and status.startswith("failing: mic1: ValueError: channel 1 picked")
    assert not any(isinstance(m, schemas.Audio) for m in sent)


def test_the_open_is_repeated_while_the_source_runs_in_order_with_its_audio():
    sent, stop = [], threading.Event()

    class SlowReader(FakeReader):
        def read(self):
            stop.wait(0.01)
            return bytes(640)

    worker = SourceWorker(CFG, 20, lambda c: SlowReader({"missing": 0}), sent.append, stop,
                          backoff=Backoff((0.01,)), open_every_s=0.05)
    worker.start()
    wait_for(lambda: sum(isinstance(m, schemas.Open) for m in sent) >= 4, timeout=20, what="repeated opens")
    stop.set()
    worker.join(20)
    opens = [m for m in sent if isinstance(m, schemas.Open)]
    assert isinstance(sent[0], schemas.Open) and len(set(opens)) == 1  # the same options every time
    assert isinstance(sent[-1], schemas.Close) and worker.snapshot()["opens_sent"] == len(opens)
    audio = [m for m in sent if isinstance(m, schemas.Audio)]
    assert [a.seq for a in audio] == list(range(len(audio)))
