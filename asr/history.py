"""A producer's recent finals, and the ROUTER that answers "finals after seq N" (bus/resync.py).

The Clone pattern's server side for one asr worker: `FinalHistory` keeps the newest finals
bounded by count and by bytes; `HistoryServer` answers `HistoryRequest`s on a ROUTER socket,
non-blocking, from the loop thread that owns it (call `serve()` each turn, or when the poller
says the socket is readable).

Wiring in asr/main.py (the lead's):
    history = FinalHistory(producer=self.worker)
    server = HistoryServer.bind(ctx, endpoint, history, cfg.bus)   # endpoint: e.g. ipc://{run_dir}/asr-history-<worker>
    ... numbering: start at the wall clock, `final_seq = int(time.time() * 1000)`, then +1 per final, so a
        restarted worker with the same name never reuses a seq (the store keys finals by worker + seq)
    ... in publish(): after numbering, `history.add(msg)` (the numbered Final)
    ... heartbeat counters: history=server.endpoint, final_seq=history.last
    ... each loop turn: server.serve(); on exit: server.close()
"""
from __future__ import annotations

import logging
from collections import deque

import zmq

from bus import resync, schemas, sockets
from config.schema import BusConfig

log = logging.getLogger(__name__)
MAX_FINALS = 10000
MAX_BYTES = 32 * 2 ** 20
MAX_REPLY_BYTES = 4 * 2 ** 20   # one reply stops here even under `limit`
SERVE_BATCH = 50                # requests answered per serve() call


class FinalHistory:
    """The newest numbered finals of one producer, oldest dropped first past either bound."""

    def __init__(self, producer: str, max_finals: int = MAX_FINALS, max_bytes: int = MAX_BYTES):
        if max_finals < 1 or max_bytes < 1:
            raise ValueError(f"history bounds must be positive: max_finals={max_finals}, max_bytes={max_bytes}")
        self.producer = producer
        self.max_finals = max_finals
        self.max_bytes = max_bytes
        self.ring: deque[tuple[int, bytes]] = deque()
        self.bytes = 0
        self.last = 0      # newest seq added
        self.origin = 0    # the first seq added: this instance's numbering starts there
        self.dropped = 0   # finals pushed out by a bound

    def add(self, final: schemas.Final) -> None:
        """Keep a numbered final; seqs must increase (they are this producer's own)."""
        if final.seq is None:
            raise ValueError(f"final utt {final.utt} of {final.stream or final.job} has no seq")
        if final.seq <= self.last:
            raise ValueError(f"final seq {final.seq} after seq {self.last}: seqs must increase")
        data = schemas.encode(final)
        self.origin = self.origin or final.seq
        self.ring.append((final.seq, data))
        self.bytes += len(data)
        self.last = final.seq
        while len(self.ring) > self.max_finals or (self.bytes > self.max_bytes and len(self.ring) > 1):
            _, old = self.ring.popleft()
            self.bytes -= len(old)
            self.dropped += 1

    @property
    def first(self) -> int:
        """The oldest seq held; last + 1 when empty."""
        return self.ring[0][0] if self.ring else self.last + 1

    def after(self, seq: int, limit: int, max_bytes: int = MAX_REPLY_BYTES) -> tuple[list[bytes], bool]:
        """Payloads of finals with seq > `seq`, oldest first; and whether more were left out."""
        out: list[bytes] = []
        size = 0
        start = max(0, seq + 1 - self.first)   # seqs are contiguous when the producer numbers +1
        if start < len(self.ring) and self.ring[start][0] != max(seq + 1, self.first):
            start = next((i for i, (s, _) in enumerate(self.ring) if s > seq), len(self.ring))
        for i in range(start, len(self.ring)):
            data = self.ring[i][1]
            if len(out) >= limit or (out and size + len(data) > max_bytes):
                return out, True
            out.append(data)
            size += len(data)
        return out, False

    def answer(self, request: resync.HistoryRequest) -> resync.HistoryReply:
        if request.producer != self.producer:
            return resync.HistoryReply(producer=self.producer, first=self.first, last=self.last, origin=self.origin,
                                       error=f"this is the history of {self.producer!r}, not {request.producer!r}")
        finals, more = self.after(request.after, request.limit)
        return resync.HistoryReply(producer=self.producer, first=self.first, last=self.last, finals=finals, more=more,
                                   origin=self.origin)


class HistoryServer:
    """ROUTER bound at `endpoint`; each request [identity, b"", payload] gets one reply."""

    def __init__(self, sock: zmq.Socket, endpoint: str, history: FinalHistory):
        self.sock = sock
        self.endpoint = endpoint
        self.history = history
        self.served = 0
        self.bad_requests = 0

    @classmethod
    def bind(cls, ctx: zmq.Context, endpoint: str, history: FinalHistory, cfg: BusConfig) -> "HistoryServer":
        """Bind; a tcp endpoint with port * or 0 gets the port chosen (see `.endpoint`)."""
        sock = sockets.make_socket(ctx, zmq.ROUTER, endpoint, cfg, bind=True, hwm=1000)
        sock.setsockopt(zmq.ROUTER_MANDATORY, 1)
        bound = sock.getsockopt(zmq.LAST_ENDPOINT).decode()
        return cls(sock, bound, history)

    def serve(self) -> int:
        """Answer the requests waiting now (at most SERVE_BATCH); returns how many."""
        answered = 0
        while answered < SERVE_BATCH:
            try:
                frames = self.sock.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                break
            answered += 1
            self._answer(frames)
        return answered

    def _answer(self, frames: list[bytes]) -> None:
        if len(frames) < 2:
            self.bad_requests += 1
            log.warning("history: request without an envelope dropped", extra={"frames": len(frames)})
            return
        envelope, payload = frames[:-1], frames[-1]
        try:
            reply = self.history.answer(resync.decode_request(payload))
        except resync.ResyncError as exc:
            self.bad_requests += 1
            log.warning("history: bad request", extra={"error": str(exc), "count": self.bad_requests})
            reply = resync.HistoryReply(producer=self.history.producer, first=self.history.first,
                                        last=self.history.last, error=str(exc))
        try:
            self.sock.send_multipart([*envelope, resync.encode(reply)], zmq.NOBLOCK)
            self.served += 1
        except zmq.ZMQError as exc:   # the asker went away (EHOSTUNREACH) or its pipe is full (EAGAIN)
            log.warning("history: reply not delivered", extra={"error": str(exc)})

    def close(self) -> None:
        self.sock.close(linger=0)
        sockets.remove_ipc_file(self.endpoint)
