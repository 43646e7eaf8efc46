"""asr/history.py: the producer's ring of numbered finals and its ROUTER (bus/resync.py's server side)."""
import pytest
import zmq

from asr.history import FinalHistory, HistoryServer
from bus import resync, schemas
from config import load_config
from tests.store.helpers import final


def test_the_ring_is_bounded_by_count_and_bytes_and_answers_after_a_seq():
    ring = FinalHistory("w1", max_finals=5)
    for seq in range(1, 9):
        ring.add(final(seq, f"text {seq}", worker="w1"))
    assert (ring.first, ring.last, ring.dropped) == (4, 8, 3)
    payloads, more = ring.after(5, limit=10)
    assert [schemas.decode(p).seq for p in payloads] == [6, 7, 8] and not more
    payloads, more = ring.after(0, limit=2)
    assert [schemas.decode(p).seq for p in payloads] == [4, 5] and more
    small = FinalHistory("w1", max_bytes=1)
    small.add(final(1, "a", worker="w1"))
    small.add(final(2, "b", worker="w1"))
    assert small.first == 2   # the newest is always kept


def test_seqs_must_increase_and_exist():
    ring = FinalHistory("w1")
    ring.add(final(3, "x", worker="w1"))
    with pytest.raises(ValueError, match="seqs must increase"):
        ring.add(final(3, "x", worker="w1"))
    with pytest.raises(ValueError, match="has no seq"):
        ring.add(schemas.Final(utt=1, text="x", start=0.0, end=1.0, stream="s"))


def test_the_router_answers_requests_and_refuses_bad_ones(run_dir):
    cfg = load_config()
    ctx = zmq.Context()
    ring = FinalHistory("w1")
    for seq in range(1, 4):
        ring.add(final(seq, f"text {seq}", worker="w1"))
    server = HistoryServer.bind(ctx, f"ipc://{run_dir}/h", ring, cfg.bus)
    client = ctx.socket(zmq.DEALER)
    client.connect(server.endpoint)
    try:
        def ask(payload: bytes) -> resync.HistoryReply:
            client.send_multipart([b"", payload])
            for _ in range(100):
                server.serve()
                if client.poll(20):
                    return resync.decode_reply(client.recv_multipart()[-1])
            raise AssertionError("no reply")
        reply = ask(resync.encode(resync.HistoryRequest(producer="w1", after=1, limit=10)))
        assert [f.seq for f in reply.decoded()] == [2, 3] and (reply.first, reply.last) == (1, 3)
        assert "not 'w2'" in ask(resync.encode(resync.HistoryRequest(producer="w2", after=0))).error
        assert "limit" in ask(resync.encode(resync.HistoryRequest(producer="w1", after=0, limit=0))).error
        assert "msgpack" in ask(b"\xc1").error and server.bad_requests == 2
    finally:
        client.close(linger=0)
        server.close()
        ctx.term()
