"""SegmentQueue: finals first and never dropped, newest partial only, jobs round-robin."""
from bus.segment_queue import SegmentQueue, is_urgent
from bus.schemas import Segment


def seg(kind="partial", stream="s1", utt=1, job=None, index=None, offset=0):
    return Segment(utt=utt, kind=kind, offset=offset, pcm=b"\0\0", stream=None if job else stream,
                   job=job, index=index)


def drain(q):
    out = []
    while (item := q.get()) is not None:
        out.append(item.segment)
    return out


def test_newest_partial_supersedes_older():
    q = SegmentQueue()
    q.put(seg(offset=1))
    q.put(seg(offset=2))
    q.put(seg(offset=3))
    assert [s.offset for s in drain(q)] == [3]
    assert q.partials_superseded == 2


def test_final_goes_first_and_drops_its_partial():
    q = SegmentQueue()
    q.put(seg(utt=1))
    q.put(seg(utt=2))
    q.put(seg("final", utt=1))
    out = drain(q)
    assert [(s.kind, s.utt) for s in out] == [("final", 1), ("partial", 2)]


def test_finals_are_never_dropped():
    q = SegmentQueue()
    for utt in range(50):
        q.put(seg("final", utt=utt))
        q.put(seg("partial", utt=utt + 100))
    out = drain(q)
    assert [s.utt for s in out if s.kind == "final"] == list(range(50))


def test_jobs_interleave_round_robin():
    q = SegmentQueue()
    for i in range(3):
        q.put(seg("final", job="long", index=i))
    q.put(seg("final", job="short", index=0))
    out = drain(q)
    assert [(s.job, s.index) for s in out] == [("long", 0), ("short", 0), ("long", 1), ("long", 2)]


def test_partials_and_jobs_alternate():
    q = SegmentQueue()
    q.put(seg("final", job="j", index=0))
    q.put(seg("final", job="j", index=1))
    q.put(seg("partial", utt=1))
    q.put(seg("partial", utt=2))
    kinds = ["job" if s.job else "partial" for s in drain(q)]
    assert kinds == ["partial", "job", "partial", "job"]


def test_len_counts_everything():
    q = SegmentQueue()
    q.put(seg("final", utt=1))
    q.put(seg("partial", utt=2))
    q.put(seg("final", job="j", index=0))
    assert len(q) == 3


def test_peek_names_what_pop_takes_and_bytes_are_counted():
    q = SegmentQueue()
    q.put(seg("final", job="a", index=0))
    q.put(seg("final", job="b", index=0))
    q.put(seg("partial", utt=7))
    assert q.pcm_bytes == 6
    while q.peek() is not None:
        peeked = q.peek()
        assert q.pop() is peeked
    assert q.pcm_bytes == 0 and len(q) == 0


def test_put_returns_what_it_displaced():
    q = SegmentQueue()
    first, guess = seg(offset=1), seg(kind="speculative", offset=2)
    assert q.put(first) == []
    assert q.put(guess) == [first]
    assert q.put(seg(kind="final", offset=3)) == [guess]
    assert q.put(seg(job="j", index=0)) == [] and q.pcm_bytes == 4


def test_put_back_goes_to_the_head_of_its_line():
    q = SegmentQueue()
    q.put(seg(kind="final", utt=2))
    q.put(seg(kind="final", job="a", index=1))
    q.put(seg(kind="final", job="b", index=0))
    q.put_back(seg(kind="final", utt=1))
    q.put_back(seg(kind="final", job="b", index=7))
    q.put_back(seg(kind="final", job="a", index=0))
    got = [(s.stream or s.job, s.utt if s.stream else s.index) for s in drain(q)]
    assert got == [("s1", 1), ("s1", 2), ("a", 0), ("b", 7), ("a", 1), ("b", 0)]
    try:
        q.put_back(seg())
    except ValueError as exc:
        assert "not a partial" in str(exc)
    else:
        raise AssertionError("a partial was put back")


def test_the_stream_served_longest_ago_goes_first_but_a_wordless_partial_before_it():
    q = SegmentQueue()
    for stream in ("a", "b", "c"):  # served in this order: a longest ago
        q.put(seg(stream=stream))
        q.get()
    q.put(seg(stream="c", utt=2))
    q.put(seg(stream="b", utt=2))
    q.put(seg(stream="a", utt=2))
    assert [s.stream for s in drain(q)] == ["a", "b", "c"]
    q.put(seg(stream="a", utt=3))
    first_words = Segment(utt=3, kind="partial", offset=0, pcm=b"\0\0", stream="c", wordless=True)
    q.put(first_words)  # c's new utterance has no words yet: its user waits for the first
    assert [s.stream for s in drain(q)] == ["c", "a"]


def test_urgent_segments_are_what_a_user_waits_on_now():
    assert is_urgent(seg(kind="final")) and is_urgent(seg(kind="speculative"))
    assert is_urgent(Segment(utt=1, kind="partial", offset=0, pcm=b"", stream="s", wordless=True))
    assert not is_urgent(seg()) and not is_urgent(seg(kind="final", job="j", index=0))
