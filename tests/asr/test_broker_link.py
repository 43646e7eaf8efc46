"""asr's side of the segment broker over a real ROUTER (ipc://): ready with the free slots, one
`done` per segment, reconnecting on a fresh identity when the broker goes silent."""
from __future__ import annotations

import pytest
import zmq

from asr.broker_link import BrokerLink
from bus import schemas, worker_protocol
from bus.worker_protocol import Done, Ready, Reset, WorkerHeartbeat
from config import load_config


class Clock:
    now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def wire(tmp_path):
    cfg = load_config(env={"VOXBUS_RUN_DIR": str(tmp_path)}, check_cores=False)
    ctx = zmq.Context()
    router = ctx.socket(zmq.ROUTER)
    router.bind(cfg.vad.segments)
    clock = Clock()
    link = BrokerLink(ctx, cfg, "asr-test", slots=2, model="tiny", clock=clock)
    yield link, router, clock
    link.close()
    router.close(0)
    ctx.term()


def heard(router: zmq.Socket) -> tuple[bytes, object]:
    assert router.poll(5000), "nothing from the worker"
    identity, data = router.recv_multipart()
    return identity, worker_protocol.decode_from_worker(data)


def test_ready_credit_done_once_and_a_reset_answered_with_ready(wire):
    link, router, clock = wire
    link.connect()
    identity, ready = heard(router)
    assert ready == Ready(worker="asr-test", credit=2, pid=ready.pid, host=ready.host, model="tiny")
    segment = schemas.Segment(utt=0, kind="final", offset=0, pcm=b"\0\0", stream="s", ticket=5)
    router.send_multipart([identity, worker_protocol.encode(WorkerHeartbeat())])
    router.send_multipart([identity, worker_protocol.encode(segment)])
    router.send_multipart([identity, b"\x93junk"])
    router.send_multipart([identity, worker_protocol.encode(Reset("unknown"))])
    got = []
    while len(got) < 2:
        link.sock.poll(5000)
        got += list(link.receive())
    assert got == [segment, Reset("unknown")] and link.outstanding == {5}
    assert link.counters["bad_messages"] == 1 and link.counters["broker_resets"] == 1
    link.ready()
    assert heard(router)[1].credit == 1  # one slot is taken by ticket 5
    link.done(segment)
    link.done(segment)
    assert heard(router) == (identity, Done(ticket=5))
    assert not router.poll(200), "a second done for the same ticket"


def test_a_silent_broker_means_a_fresh_socket_and_ready_again(wire):
    link, router, clock = wire
    link.connect()
    first, _ = heard(router)
    clock.now += 0.5
    link.tick()
    assert heard(router) == (first, WorkerHeartbeat())
    clock.now += 3.1  # 2 × liveness (3) × 0.5 s without a word from the broker
    link.tick()
    again, msg = heard(router)
    assert isinstance(msg, Ready) and again != first and link.counters["broker_reconnects"] == 1
