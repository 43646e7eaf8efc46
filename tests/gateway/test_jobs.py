"""JobAssembler: messages in, an ordered transcript (or a failure) out."""
import pytest

from bus import schemas
from gateway import jobs
from gateway.errors import ApiError


def final(index, count, text, start=0.0, end=1.0, **kw):
    return schemas.Final(utt=index, text=text, start=start, end=end, job="j1", index=index,
                              count=count, segments=[{"start": start, "end": end, "text": text}],
                              encode_ms=1.0, decode_ms=2.0, language="en", worker=f"w{index % 2}", **kw)


def test_finals_are_assembled_in_index_order():
    a = jobs.JobAssembler("j1")
    a.see(schemas.JobSegments(job="j1", count=3))
    for i in (2, 0, 1):
        assert not a.done
        a.see(final(i, 3, f"t{i}", start=i, end=i + 1))
    assert a.done
    result = a.result()
    assert result.text == "t0 t1 t2"
    assert [s["start"] for s in result.segments] == [0, 1, 2]
    assert result.compute_ms == 9.0 and result.workers == ["w0", "w1"] and result.language == "en"


def test_a_final_may_overtake_job_segments():
    a = jobs.JobAssembler("j1")
    a.see(final(0, 1, "only"))
    assert a.done and a.result().text == "only"


def test_no_speech_means_zero_segments_and_an_empty_result():
    a = jobs.JobAssembler("j1")
    a.see(schemas.JobSegments(job="j1", count=0))
    assert a.done and a.result().text == "" and a.result().segments == []


def test_out_of_range_and_partials_are_ignored():
    a = jobs.JobAssembler("j1")
    a.see(schemas.JobSegments(job="j1", count=1))
    a.see(final(5, 1, "stray"))
    a.see(schemas.Partial(utt=0, text="p", start=0, end=1, job="j1"))
    assert not a.done and a.ignored == 2


def test_errors_fail_the_job_with_the_right_status():
    a = jobs.JobAssembler("j1")
    a.see(schemas.Error(code="bad_segment", message="too short", job="j1", permanent=True, stage="asr"))
    assert a.done
    err = jobs.failure(a.error)
    assert isinstance(err, ApiError) and err.status == 400 and "too short" in err.message
    transient = jobs.failure(schemas.Error(code="oom", message="busy", job="j1", permanent=False))
    assert transient.status == 503


def test_segments_without_inner_segments_are_synthesised():
    a = jobs.JobAssembler("j1")
    a.see(schemas.Final(utt=0, text="x", start=2.0, end=3.0, job="j1", index=0, count=1))
    assert a.result().segments == [{"start": 2.0, "end": 3.0, "text": "x"}]


@pytest.mark.parametrize("status", ["no_ack", "timeout"])
def test_timeout_messages_name_the_cause(status):
    a = jobs.JobAssembler("j1")
    if status == "timeout":
        a.see(schemas.JobSegments(job="j1", count=4))
    err = jobs._timeout(a, overall=status == "timeout", timeout_s=7)
    assert err.status == (504 if status == "timeout" else 503)
    assert ("0 of 4" in err.message and "7 s" in err.message) if status == "timeout" else "vad" in err.message
