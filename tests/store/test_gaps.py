"""The store's gap books (store/gaps.py): pure, no sockets."""
from store.gaps import Ask, GapTracker


def test_in_order_finals_leave_no_gap_and_a_repeat_is_a_duplicate():
    books = GapTracker()
    assert all(books.stored("w", seq) for seq in (1, 2, 3))
    assert not books.stored("w", 2)
    assert books.missing() == 0 and books.duplicates == 1


def test_a_jump_is_missing_until_filled_and_then_asked_no_more():
    books = GapTracker()
    books.stored("w", 1)
    books.stored("w", 5)
    assert books.producers["w"].missing == [[2, 4]]
    assert books.requests(0.0) == []            # no endpoint known yet
    books.announced("w", 5, "ipc://h")
    assert books.requests(0.0) == [Ask("w", "ipc://h", 1)]
    assert books.requests(0.5) == []            # within retry_s
    assert books.stored("w", 3)
    assert books.producers["w"].missing == [[2, 2], [4, 4]]
    books.stored("w", 2)
    books.stored("w", 4)
    assert books.missing() == 0 and books.requests(10.0) == []


def test_a_heartbeat_past_what_was_stored_opens_a_gap_even_with_no_final_seen():
    books = GapTracker({"w": 10})
    books.announced("w", 14, "ipc://h")
    assert books.producers["w"].missing == [[11, 14]]
    assert books.requests(0.0) == [Ask("w", "ipc://h", 10)]


def test_what_the_producer_no_longer_holds_is_counted_lost():
    books = GapTracker()
    books.announced("w", 100, "ipc://h")
    assert books.forgotten("w", 91) == 90
    assert books.producers["w"].missing == [[91, 100]] and books.lost == 90


def test_books_survive_a_restart_through_their_snapshot():
    books = GapTracker()
    books.stored("w", 1)
    books.stored("w", 4)
    high, missing = books.snapshot()
    again = GapTracker(high)
    for worker, ranges in missing.items():
        again.restore(worker, ranges)
    assert again.producers["w"].missing == [[2, 3]] and not again.stored("w", 4) and again.stored("w", 2)


def test_a_restarted_producer_numbering_on_from_the_clock_loses_nothing_it_had():
    books = GapTracker({"w": 5000})
    books.announced("w", 1_000_150, "ipc://h")          # the new run started numbering at 1_000_000
    assert books.forgotten("w", first=1_000_000, origin=1_000_000) == 0
    assert books.producers["w"].missing == [[1_000_000, 1_000_150]]
    assert books.forgotten("w", first=1_000_100, origin=1_000_000) == 100   # its ring dropped 100 of them
