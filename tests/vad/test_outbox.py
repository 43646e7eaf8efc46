"""SegmentOutbox: finals first and all kept, an older partial of the same utterance replaced (counted)."""
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
