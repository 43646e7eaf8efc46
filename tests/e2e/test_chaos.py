"""kill -9 the asr worker twice while two live streams and a file job run (issue 11, "Nothing lost").

supervisord restarts it; vad's segment broker notices the silence (vad.worker_heartbeat_ms ×
vad.worker_liveness) and gives what the dead worker held to the new one. Every utterance gets
exactly one final, the file job completes with every piece once and in order, and no final is
on the bus twice. The longer run with its table: `python -m tests.bench chaos`.
"""
from __future__ import annotations

import pytest

from tests.e2e import chaos
from tests.kit import serve_stack

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def chaos_stack(tiny_models_dir):
    # Its own stack, so killing asr disturbs no other e2e test; file jobs cut into pieces of at most
    # 6 s, so the job has several pieces and the first kill takes one with it.
    yield from serve_stack(tiny_models_dir, VOXBUS_VAD__JOB_MAX_SEGMENT_S="6")


def test_asr_killed_twice_under_two_streams_and_a_job_loses_nothing_and_duplicates_nothing(chaos_stack):
    clips = chaos.pick_clips(15)
    result = chaos.run(chaos_stack, [clips[0:5], clips[5:10]], job_clips=clips[10:15], kills=2,
                       first_kill_s=0.5, kill_every_s=5.0)
    report = (f"kills={result.kills} finals per utterance={result.finals_per_utterance()} "
              f"job={result.job_status} pieces={dict(result.job_pieces)} of {result.job_count} "
              f"vad={ {k: v for k, v in result.vad_counters.items() if k.startswith('broker_')} }\n"
              f"asr log:\n{chaos_stack.log('asr')}")
    assert len(result.kills) == 2, report
    assert all(session.close_code == 1000 for session in result.sessions), report
    assert result.finals_per_utterance() == [1] * 10, report
    assert result.job_status == 200 and result.job_count, report
    assert result.job_pieces == {i: 1 for i in range(result.job_count)}, report
    assert result.job_in_order, report
    assert result.duplicated == 0 and result.lost == 0, report
    assert all(kill.recovered_s is not None for kill in result.kills), report
    # The kills took work with them (which kind depends on the moment: the bench's table shows both).
    taken = result.vad_delta("broker_redelivered") + result.vad_delta("broker_partials_dropped")
    assert taken >= 1, report
    assert result.vad_delta("partial_bytes_saved") > 0, report  # partials still go as deltas to their worker
