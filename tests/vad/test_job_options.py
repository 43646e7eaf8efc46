"""Job options are checked where they enter vad: each bad one named, before any cutting."""
import pytest

from bus import schemas
from config.schema import VadConfig
from tests.vad.test_job_worker import collect
from vad.job_options import check_job
from vad.job_worker import JobWorker


def job(language="en", **options) -> schemas.Job:
    return schemas.Job(job="j", pcm=b"\0\0" * 160, language=language, options=options)


def test_sane_options_pass():
    check_job(job("auto", temperature=[0.0, 0.2, 0.4], word_timestamps=True, beam_size=5, best_of=5, patience=1.0))
    check_job(job("yue", temperature=0.3))


@pytest.mark.parametrize("bad, named", [
    (job(beam_size=10 ** 9), "job option beam_size = 1000000000: expected an integer from 1 to 32"),
    (job(beam_size=2.5), "beam_size = 2.5: expected an integer"),
    (job(best_of=0), "best_of = 0: expected an integer from 1 to 32"),
    (job(patience=float("nan")), "patience = nan: expected a number from 0.1 to 10"),
    (job(temperature=float("inf")), "temperature = inf: expected a number from 0 to 1"),
    (job(temperature=[0.0] * 11), "or a list of 1 to 10 of them"),
    (job(temperature=[]), "temperature = []"),
    (job(word_timestamps="yes"), "word_timestamps = 'yes': expected true or false"),
    (job(suppress_tokens=[1]), "job option 'suppress_tokens' is unknown (known: beam_size, best_of"),
    (job("english"), "job language 'english': expected a Whisper language code"),
])
def test_each_bad_value_is_named(bad, named):
    with pytest.raises(ValueError) as err:
        check_job(bad)
    assert named in str(err.value)


def test_a_bad_job_is_refused_before_cutting_as_a_permanent_error():
    worker = JobWorker(VadConfig())
    worker.start()
    try:
        worker.submit(schemas.encode(job(beam_size=10 ** 9)))
        [result] = collect(worker)
        assert result.job == "j" and result.permanent and "beam_size" in result.error and not result.pieces
    finally:
        worker.stop()
