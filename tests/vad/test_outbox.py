"""SegmentOutbox: the shared queue order (finals first, newest partial, jobs round-robin), the memory bound, stalls."""
from bus.schemas import Segment
from vad.outbox import SegmentOutbox


def seg(kind, utt, stream="s", offset=0):
    return Segment(utt=utt, kind=kind, offset=offset, pcm=b"\0\0", stream=stream)


def drain(box):
    out = []
    while box.peek() is not None:
        out.append(box.pop())
    return out


def test_finals_go_before_partials_and_keep_their_order():
    box = SegmentOutbox()
    box.add(seg("partial", 3))
    box.add(seg("final", 1))
    box.add(seg("final", 2))
    assert [(s.kind, s.utt) for s in drain(box)] == [("final", 1), ("final", 2), ("partial", 3)]


def test_newer_partial_and_final_replace_a_queued_partial():
    box = SegmentOutbox()
    box.add(seg("partial", 1, offset=1))
    box.add(seg("partial", 1, offset=2))
    box.add(seg("partial", 1, stream="other"))
    assert box.counters.partials_superseded == 1
    box.add(seg("final", 1))
    assert box.counters.partials_superseded == 2
    assert [(s.stream, s.kind) for s in drain(box)] == [("s", "final"), ("other", "partial")]
    assert box.counters.sent == 2 and box.counters.max_depth == 2


def test_finals_are_never_dropped():
    box = SegmentOutbox()
    for i in range(5000):
        box.add(seg("final", i))
    assert len(box) == 5000 and [s.utt for s in drain(box)] == list(range(5000))


def job_piece(job, index, size=2):
    return Segment(utt=index, kind="final", offset=0, pcm=b"\0" * size, job=job, index=index)


def test_a_short_job_is_not_stuck_behind_a_long_one():
    box = SegmentOutbox()
    for i in range(10):
        box.add(job_piece("long", i))
    for i in range(2):
        box.add(job_piece("short", i))
    order = [(s.job, s.index) for s in drain(box)]
    assert order[:4] == [("long", 0), ("short", 0), ("long", 1), ("short", 1)]
    assert [i for j, i in order if j == "long"] == list(range(10))


def test_over_the_bound_oldest_partials_go_first_then_oldest_finals_each_returned():
    clock = [0.0]
    box = SegmentOutbox(max_bytes=10, clock=lambda: clock[0])
    assert box.add(Segment(utt=0, kind="final", offset=0, pcm=b"\0" * 4, stream="s")) == []
    clock[0] = 1.0
    assert box.add(job_piece("j", 0, size=4)) == []
    clock[0] = 2.0
    assert box.add(Segment(utt=1, kind="partial", offset=0, pcm=b"\0" * 2, stream="s")) == []
    assert box.pcm_bytes == 10
    clock[0] = 3.0
    dropped = box.add(job_piece("j", 1, size=2))  # 12 bytes: the partial goes, not a final
    assert dropped == [] and box.counters.dropped_partials == 1 and box.pcm_bytes == 10
    clock[0] = 4.0
    dropped = box.add(Segment(utt=2, kind="final", offset=0, pcm=b"\0" * 4, stream="s"))
    assert [(d.stream, d.utt) for d in dropped] == [("s", 0)]  # 14 bytes: the oldest final goes
    assert box.counters.dropped_finals == 1 and box.pcm_bytes == 10
    dropped = box.add(Segment(utt=3, kind="final", offset=0, pcm=b"\0" * 6, stream="s"))
    assert [(d.job, d.index) for d in dropped] == [("j", 0), ("j", 1)]  # oldest first, across jobs and live
    assert box.counters.dropped_finals == 3 and box.pcm_bytes == 10
    assert [(s.job or s.stream, s.utt) for s in drain(box)] == [("s", 2), ("s", 3)]


def test_stalled_for_counts_from_the_last_send_or_since_the_outbox_filled():
    clock = [0.0]
    box = SegmentOutbox(clock=lambda: clock[0])
    clock[0] = 100.0
    assert box.stalled_for() == 0.0  # empty: nothing waits
    box.add(seg("final", 1))
    box.add(seg("final", 2))
    clock[0] = 106.0
    assert box.stalled_for() == 6.0
    box.pop()
    assert box.stalled_for() == 0.0  # a worker took one: progress
    clock[0] = 107.0
    assert box.stalled_for() == 1.0


def test_take_all_empties_without_counting_sends():
    box = SegmentOutbox()
    box.add(seg("partial", 3))
    box.add(seg("final", 1))
    assert [s.utt for s in box.take_all()] == [1, 3] and len(box) == 0 and box.counters.sent == 0
