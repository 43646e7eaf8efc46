"""JobWorker: jobs are cut in their own thread, one at a time; bad jobs and bugs come back as results."""
import numpy as np

from bus import schemas
from config.schema import VadConfig
from tests.kit import synth_stream, wait_for
from vad.job_worker import JobWorker


def collect(worker, timeout=20.0):
    got = []
    wait_for(lambda: got.extend(worker.results()) or got, timeout=timeout, what="a cut result")
    return got


def test_a_job_is_cut_off_the_calling_thread_and_busy_until_collected():
    worker = JobWorker(VadConfig(job_max_segment_s=5.0))
    worker.start()
    try:
        pcm = synth_stream(["One sentence to cut.", "Another one after a pause.", "And a third."] * 2)
        worker.submit(schemas.encode(schemas.Job(job="j1", pcm=pcm, language="de", options={"beam_size": 2})))
        assert worker.busy
        try:
            worker.submit(b"x")
            raise AssertionError("a second job while busy must be refused")
        except RuntimeError as exc:
            assert "busy" in str(exc)
        [result] = collect(worker)
        assert not worker.busy and not result.error and result.job == "j1"
        assert result.announce.count == len(result.pieces) >= 2
        assert [p.index for p in result.pieces] == list(range(result.announce.count))
        assert all(p.job == "j1" and p.language == "de" and p.options == {"beam_size": 2} for p in result.pieces)
        assert all(len(p.pcm) <= 5 * 32000 for p in result.pieces)
    finally:
        worker.stop()


def test_bad_jobs_come_back_as_errors_and_the_thread_survives_a_bug(monkeypatch):
    worker = JobWorker(VadConfig())
    worker.start()
    try:
        worker.submit(b"not msgpack at all")
        [bad] = collect(worker)
        assert bad.error and bad.job is None and bad.permanent
        worker.submit(schemas.encode(schemas.Job(job="odd", pcm=b"\0" * 3)))
        [odd] = collect(worker)
        assert odd.job == "odd" and "whole int16" in odd.error and odd.permanent

        def broken(*_a, **_k):
            raise ZeroDivisionError("a bug")
        monkeypatch.setattr("vad.job_worker.cut_job", broken)
        worker.submit(schemas.encode(schemas.Job(job="bug", pcm=np.zeros(320, "<i2").tobytes())))
        [bug] = collect(worker)
        assert bug.job == "bug" and "ZeroDivisionError" in bug.error and not bug.permanent
        monkeypatch.undo()
        worker.submit(schemas.encode(schemas.Job(job="after", pcm=np.zeros(16000, "<i2").tobytes())))
        [after] = collect(worker)
        assert after.job == "after" and not after.error  # still cutting
    finally:
        worker.stop()
