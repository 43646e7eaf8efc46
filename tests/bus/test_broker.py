"""The segment broker alone: events in, sends out, a fake clock (bus/broker.py)."""
from __future__ import annotations

import dataclasses

import pytest

from bus import schemas, worker_protocol
from bus.broker import SegmentBroker
from bus.segment_queue import SegmentQueue
from bus.worker_protocol import Bye, Done, Ready, Reset, WorkerHeartbeat

A, B = b"worker-a", b"worker-b"


class Clock:
    def __init__(self):
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def broker(clock):
    return SegmentBroker(SegmentQueue(), interval_s=0.5, liveness=3, clock=clock, first_ticket=1)


def live(stream: str, utt: int, kind: str = "final") -> schemas.Segment:
    return schemas.Segment(utt=utt, kind=kind, offset=utt * 16000, pcm=b"\0\0" * 160, stream=stream)


def piece(job: str, index: int, count: int = 4) -> schemas.Segment:
    return schemas.Segment(utt=index, kind="final", offset=index * 16000, pcm=b"\0\0" * 160, job=job,
                           index=index, count=count)


def add(broker: SegmentBroker, *segments) -> list[schemas.Segment]:
    stamped = [broker.ticketed(s) for s in segments]
    for s in stamped:
        broker.queue.put(s)
    return stamped


def ready(broker, identity, credit, name=None, pid=1):
    return broker.on_message(identity, Ready(worker=name or identity.decode(), credit=credit, pid=pid, host="h"))


def given(deliveries) -> list[tuple[bytes, str, int]]:
    return [(d.worker, d.segment.stream or d.segment.job, d.segment.utt) for d in deliveries]


def reset_reasons(replies, identity):
    return [r.message.reason for r in replies if r.worker == identity and isinstance(r.message, Reset)]


def test_segments_wait_until_a_worker_grants_credit_and_each_done_gives_one_back(broker):
    add(broker, piece("j", 0), piece("j", 1), piece("j", 2))
    assert broker.dispatch() == []
    ready(broker, A, credit=2)
    first = broker.dispatch()
    assert given(first) == [(A, "j", 0), (A, "j", 1)] and broker.dispatch() == []
    broker.on_message(A, Done(ticket=first[0].segment.ticket))
    assert given(broker.dispatch()) == [(A, "j", 2)]
    assert len(broker.ledger) == 2


def test_a_fast_worker_takes_more(broker):
    add(broker, *[piece("j", i, 10) for i in range(10)])
    ready(broker, A, credit=1)
    ready(broker, B, credit=1)
    out = broker.dispatch()
    taken = {A: 0, B: 0}
    for _ in range(8):  # A answers at once every time; B never does
        for d in out:
            taken[d.worker] += 1
        a = [d for d in out if d.worker == A]
        out = []
        for d in a:
            broker.on_message(A, Done(ticket=d.segment.ticket))
        out = broker.dispatch()
    assert taken[A] == 8 and taken[B] == 1


def test_finals_first_and_one_partial_per_stream_out_at_a_time(broker):
    add(broker, live("s", 0, "partial"), live("t", 0, "partial"), live("s", 1))
    ready(broker, A, credit=4)
    assert given(broker.dispatch()) == [(A, "s", 1), (A, "s", 0), (A, "t", 0)]
    newer = add(broker, live("s", 0, "partial"))[0]
    assert broker.dispatch() == []  # s's partial lane is busy
    held = [t for t, out in broker.ledger.items() if out.segment.stream == "s" and out.segment.kind == "partial"]
    broker.on_message(A, Done(ticket=held[0]))
    assert [d.segment for d in broker.dispatch()] == [newer]


def test_a_reserved_slot_takes_only_urgent_segments(broker):
    """A worker keeps a slot for a live final, its guess or an utterance's first words: drafts
    (worded partials, file jobs) never fill it, so urgent work never waits behind them."""
    broker.on_message(A, Ready(worker="a", credit=3, pid=1, host="h", reserved=1))
    first_words = dataclasses.replace(live("s4", 1, "partial"), wordless=True)
    add(broker, live("s1", 1, "partial"), live("s2", 1, "partial"), live("s3", 1, "partial"), piece("j", 0))
    assert given(broker.dispatch()) == [(A, "s1", 1), (A, "j", 0)]  # the third slot stays free
    add(broker, first_words, live("s5", 1, "speculative"))
    assert given(broker.dispatch()) == [(A, "s5", 1)]
    broker.on_message(A, Done(ticket=1))
    assert given(broker.dispatch()) == [(A, "s4", 1)]  # the first words before any worded partial
    broker.on_message(A, Done(ticket=6))
    assert given(broker.dispatch()) == []  # one slot free: the reserved one
    broker.on_message(A, Done(ticket=4))
    assert given(broker.dispatch()) == [(A, "s2", 1)]


def test_a_stream_goes_back_to_its_worker_when_it_has_credit(broker):
    ready(broker, A, credit=2)
    ready(broker, B, credit=2)
    add(broker, live("s", 0, "partial"))
    [first] = broker.dispatch()
    broker.on_message(first.worker, Done(ticket=first.segment.ticket))
    add(broker, live("s", 0, "speculative"))
    add(broker, live("t", 0, "partial"))
    out = broker.dispatch()
    assert {d.segment.stream: d.worker for d in out}["s"] == first.worker


def test_a_silent_worker_is_dropped_its_finals_redelivered_in_order_its_partials_dropped(broker, clock):
    ready(broker, A, credit=4)
    add(broker, live("s", 0), piece("j", 0), piece("j", 1), live("t", 3, "partial"))
    assert len(broker.dispatch()) == 4
    add(broker, live("s", 1))  # waits: s's final lane is busy at A
    ready(broker, B, credit=0)
    for _ in range(4):
        clock.now += 0.5
        broker.on_message(B, WorkerHeartbeat())  # B stays alive; A is silent
        replies = broker.tick()
    assert A not in broker.workers and reset_reasons(replies, A) == ["expired"]
    assert broker.counters.redelivered == 3 and broker.counters.partials_dropped == 1
    assert broker.counters.last_redelivery_s == pytest.approx(2.0)
    broker.on_message(B, Done(ticket=999))  # an unknown ticket still gives its credit back
    assert broker.workers[B].credit == 1
    broker.on_message(B, Ready(worker="worker-b", credit=4, pid=1, host="h"))
    # s's utt 0 goes first and its utt 1 waits for it (one final per stream out); the job keeps its order.
    assert given(broker.dispatch()) == [(B, "s", 0), (B, "j", 0), (B, "j", 1)]


def test_a_final_seen_on_the_bus_is_never_given_again(broker, clock):
    ready(broker, A, credit=2)
    ready(broker, B, credit=0)
    add(broker, live("s", 0), piece("j", 2))
    assert len(broker.dispatch()) == 2
    # A published both, then died before its `done`s.
    broker.final_seen("s", None, 0, None)
    broker.final_seen(None, "j", 2, 2)
    assert not broker.ledger and broker.counters.answered_on_bus == 2
    clock.now += 2.0
    broker.on_message(B, Ready(worker="worker-b", credit=2, pid=1, host="h"))
    broker.tick()
    assert A not in broker.workers and broker.dispatch() == [] and broker.counters.redelivered == 0


def test_a_redelivered_final_answered_before_it_goes_out_again_is_suppressed(broker, clock):
    ready(broker, A, credit=1)
    [segment] = add(broker, live("s", 0))
    broker.dispatch()
    clock.now += 2.0
    broker.tick()  # A dropped: the final is queued again
    assert broker.counters.redelivered == 1 and len(broker.queue) == 1
    broker.final_seen("s", None, 0, None)  # A's publish reached the bus late
    ready(broker, B, credit=1)
    assert broker.dispatch() == [] and broker.counters.duplicates_suppressed == 1


def test_a_new_utterance_with_an_old_number_is_not_mistaken_for_a_duplicate(broker):
    ready(broker, A, credit=2)
    [first] = add(broker, live("s", 0))
    broker.dispatch()
    broker.final_seen("s", None, 0, None)
    broker.on_message(A, Done(ticket=first.ticket))
    add(broker, live("s", 0))  # a restarted vad numbers from 0 again: a new ticket, a new final
    assert given(broker.dispatch()) == [(A, "s", 0)]


def test_bye_redelivers_at_once_and_a_slow_worker_heard_again_is_told_it_expired(broker, clock):
    ready(broker, A, credit=1)
    add(broker, piece("j", 0))
    broker.dispatch()
    assert reset_reasons(broker.on_message(A, Bye()), A) == ["expired"]
    assert broker.counters.redelivered == 1 and broker.counters.workers_left == 1
    assert reset_reasons(broker.on_message(A, WorkerHeartbeat()), A) == ["expired"]
    assert reset_reasons(broker.on_message(b"stranger", Done(ticket=1)), b"stranger") == ["unknown"]
    assert broker.counters.unknown_peers == 2


def test_the_same_process_on_a_new_connection_replaces_its_old_life_at_once(broker):
    ready(broker, A, credit=1, name="asr-1", pid=7)
    add(broker, piece("j", 0))
    broker.dispatch()
    ready(broker, B, credit=1, name="asr-1", pid=7)
    assert A not in broker.workers and given(broker.dispatch()) == [(B, "j", 0)]
    ready(broker, A, credit=1, name="asr-1", pid=8)  # another process of that name: both stay
    assert set(broker.workers) == {A, B}


def test_heartbeats_go_to_every_worker_each_interval(broker, clock):
    ready(broker, A, credit=1)
    ready(broker, B, credit=1)
    beats = [r.worker for r in broker.tick() if isinstance(r.message, WorkerHeartbeat)]
    assert sorted(beats) == [A, B] and broker.tick() == []
    assert broker.wait_s() == pytest.approx(0.5)
    clock.now += 0.5
    assert len(broker.tick()) == 2


@pytest.mark.parametrize("msg", [Ready(worker="w", credit=2, pid=3, host="h", model="m"), WorkerHeartbeat(),
                                 Done(ticket=2 ** 62), Bye()])
def test_worker_messages_round_trip(msg):
    assert worker_protocol.decode_from_worker(worker_protocol.encode(msg)) == msg


@pytest.mark.parametrize("data, named", [
    (worker_protocol.encode(Reset("expired")), "unknown broker message type 'reset'"),
    (b"\x81\xa1v\x01", "unknown broker message type None"),
    (schemas.encode(schemas.Heartbeat(stage="x", pid=1, host="h", uptime_s=0, ok=True))[:5], "not msgpack"),
])
def test_bad_worker_messages_are_named(data, named):
    with pytest.raises(schemas.SchemaError, match=named):
        worker_protocol.decode_from_worker(data)


def test_bad_fields_are_named():
    import msgpack
    for body, named in [({"type": "done", "ticket": -1}, "done.ticket = -1"),
                        ({"type": "ready", "worker": "w", "credit": True}, "ready.credit = True"),
                        ({"type": "ready", "credit": 1}, "missing field 'worker'")]:
        with pytest.raises(schemas.SchemaError, match=named):
            worker_protocol.decode_from_worker(msgpack.packb({"v": schemas.VERSION, **body}))
    segment = live("s", 0)
    assert worker_protocol.decode_from_broker(worker_protocol.encode(segment)) == segment
    with pytest.raises(schemas.SchemaError, match="reset.reason"):
        worker_protocol.decode_from_broker(msgpack.packb({"v": schemas.VERSION, "type": "reset", "reason": "x"}))
