"""GapCounter: audio frames lost per stream, and nothing kept about a stream once it is forgotten."""
from vad.gaps import GapCounter


def test_gaps_are_counted_per_stream_and_forget_drops_everything():
    gaps = GapCounter()
    assert gaps.see("a", 0) == 0 and gaps.see("a", 4) == 3 and gaps.see("b", 7) == 0
    assert gaps.lost == {"a": 3} and gaps.total == 3
    assert gaps.see("a", 2) == 0  # the source restarted its count
    gaps.forget("a")
    assert "a" not in gaps.lost and "a" not in gaps.last_seq and gaps.total == 0
    gaps.forget("never-seen")
    assert gaps.see("a", 9) == 0  # a fresh start after forget
