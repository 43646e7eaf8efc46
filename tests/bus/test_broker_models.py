"""The broker routes by model and keeps each worker's speed (issue 18, issue 12's several models)."""
from __future__ import annotations

import dataclasses

import msgpack
import pytest

from bus import schemas, worker_protocol
from bus.broker import SegmentBroker
from bus.segment_queue import SegmentQueue
from bus.worker_protocol import Done, Ready, WorkerHeartbeat
from tests.bus.test_broker import Clock, add, live, piece


@pytest.fixture
def broker():
    return SegmentBroker(SegmentQueue(), interval_s=0.5, liveness=3, clock=Clock(), first_ticket=1)


def join(broker, identity: bytes, model: str, credit: int = 1):
    broker.on_message(identity, Ready(worker=identity.decode(), credit=credit, pid=1, host="h", model=model))


def test_a_segment_goes_only_to_a_worker_serving_its_model_and_waits_for_one(broker):
    tiny, base = (dataclasses.replace(piece("j1", 0), model="tiny"), dataclasses.replace(piece("j2", 0), model="base"))
    add(broker, base, tiny)
    join(broker, b"t", "tiny", credit=2)
    assert [(d.worker, d.segment.model) for d in broker.dispatch()] == [(b"t", "tiny")]  # base waits, not given to t
    join(broker, b"b", "base")
    assert [(d.worker, d.segment.model) for d in broker.dispatch()] == [(b"b", "base")]


def test_a_stream_never_follows_its_last_worker_to_another_model(broker):
    join(broker, b"t", "tiny")
    join(broker, b"b", "base")
    first = add(broker, dataclasses.replace(live("s", 0), model="tiny"))[0]
    assert broker.dispatch()[0].worker == b"t"
    broker.on_message(b"t", Done(ticket=first.ticket))
    add(broker, dataclasses.replace(live("s", 1), model="base"))
    assert broker.dispatch()[0].worker == b"b"


def test_an_unnamed_model_on_either_side_matches_any(broker):
    join(broker, b"old", "")  # a worker that does not say what it serves takes anything
    add(broker, dataclasses.replace(piece("j", 0), model="base"), piece("k", 0))
    join(broker, b"t", "tiny")
    assert sorted(d.worker for d in broker.dispatch()) == [b"old", b"t"]


def test_workers_report_their_speed_in_heartbeats(broker):
    join(broker, b"w", "tiny")
    broker.on_message(b"w", WorkerHeartbeat(rtf=0.25))
    broker.on_message(b"w", WorkerHeartbeat())  # none measured yet: the last known stays
    assert broker.roster() == [{"worker": "w", "host": "h", "pid": 1, "model": "tiny", "rtf": 0.25,
                                "credit": 1, "given": 0}]


def test_rtf_on_the_wire():
    beat = WorkerHeartbeat(rtf=0.125)
    assert worker_protocol.decode_from_worker(worker_protocol.encode(beat)) == beat
    for bad in (-1, True, "fast", 1e9):
        with pytest.raises(schemas.SchemaError, match="heartbeat.rtf"):
            worker_protocol.decode_from_worker(msgpack.packb({"v": schemas.VERSION, "type": "heartbeat", "rtf": bad}))
