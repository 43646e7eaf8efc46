"""The store process: SUB text/, job/, ctl/, speaker/, health/asr/ → StoreWriter → SQLite; ROUTER store.query.

One thread owns every socket and the one SQLite connection: bus messages are taken as they
come and committed every `commit_every_ms`; queries are answered between turns; producers'
history endpoints are asked for missed finals (store/history_client.py); retention runs every
`retention_every_s`. Partials are not subscribed to (text/ carries them, and they are dropped).
"""
from __future__ import annotations

import logging
import os
import time

import zmq

from bus import schemas, sockets
from bus.stage import StageRuntime, run_stage
from bus.store_query import decode_query, encode_reply, query_endpoint, store_path, QueryError, Reply
from store import alert_ops, db, queries, retention
from store.alerts import Fired
from store.history_client import HistoryClient
from store.webhooks import WebhookSender
from store.writer import StoreWriter

log = logging.getLogger(__name__)
POLL_MS = 20
MAX_BATCH = 2000
TOPICS = [schemas.prefix("text"), schemas.prefix("job"), schemas.prefix("ctl"), schemas.prefix("speaker"),
          schemas.topic("health", "asr")]
SILENCE_CHECK_S = 1.0


def alert_message(fired: Fired) -> schemas.Alert:
    """An alert as the bus message (alert/<stream>/); its payload without `v` is the webhook's JSON body."""
    return schemas.Alert(rule=fired.rule, kind=fired.kind, stream=fired.stream, wall=fired.wall, text=fired.text,
                         terms=list(fired.terms), worker=fired.worker, seq=fired.seq)


def alert_event(fired: Fired) -> dict:
    """The webhook's JSON body: the alert message's fields and `type`."""
    return {k: v for k, v in alert_message(fired).payload().items() if k != "v"}


class StoreLoop:
    def __init__(self, runtime: StageRuntime):
        self.rt = runtime
        self.cfg = runtime.config.store
        self.path = store_path(self.cfg, runtime.config.run_dir, os.environ)
        self.conn = db.connect(self.path)
        self.writer = StoreWriter(self.conn, retry_s=self.cfg.resync_timeout_ms / 1000)
        self.history = HistoryClient(runtime.ctx, self.cfg.resync_timeout_ms, self.cfg.resync_batch)
        self.policy = retention.Policy.of(self.cfg)
        alert_ops.load(self.writer.alerts, self.conn, self.cfg)
        self.webhook = (WebhookSender(self.cfg.webhook_url, self.cfg.webhook_secret, self.cfg.webhook_timeout_s,
                                      self.cfg.webhook_retries) if self.cfg.webhook_url else None)
        self.pub: zmq.Socket | None = None   # alerts go out here once committed
        self.next_commit = self.next_retention = self.next_silence_check = 0.0
        self.bad_messages = self.queries = self.retention_deleted = self.vacuumed_pages = 0

    def state(self) -> tuple[bool, str, dict]:
        return True, "ok", {**self.writer.state(), "bad_messages": self.bad_messages, "queries": self.queries,
                            "retention_deleted": self.retention_deleted, "vacuumed_pages": self.vacuumed_pages,
                            "resync_requests": self.history.requests, "resync_timeouts": self.history.timeouts,
                            "resync_bad_endpoints": self.history.bad_endpoints,
                            **(self.webhook.counters() if self.webhook is not None else {}),
                            "path": str(self.path)}

    def run(self) -> None:
        cfg, ctx = self.rt.config, self.rt.ctx
        endpoint = query_endpoint(self.cfg, cfg.run_dir)
        sub = pub = router = None
        try:
            sub = sockets.subscriber(ctx, cfg.bus, TOPICS)
            pub = sockets.publisher(ctx, cfg.bus)
            router = sockets.make_socket(ctx, zmq.ROUTER, endpoint, cfg.bus, bind=True, hwm=1000)
            heart = self.rt.heartbeater(pub, self.state)
            self.pub = pub
            if self.webhook is not None:
                self.webhook.start()
            log.info("store ready", extra={"path": str(self.path), "query": endpoint,
                                           "stored_producers": len(self.writer.tracker.producers)})
            while not self.rt.stopping.is_set():
                self.turn(sub, router)
                heart.tick()
        finally:
            self.writer.commit()
            self.history.close()
            if self.webhook is not None:
                self.webhook.stop()
            for sock in (sub, pub, router):
                if sock is not None:
                    sock.close(linger=0 if sock is not pub else cfg.bus.linger_ms)
            sockets.remove_ipc_file(endpoint)
            self.conn.close()

    def turn(self, sub: zmq.Socket, router: zmq.Socket) -> None:
        poller = zmq.Poller()
        poller.register(sub, zmq.POLLIN)
        poller.register(router, zmq.POLLIN)
        self.history.register(poller)
        ready = dict(poller.poll(POLL_MS))
        if sub in ready:
            self.drain_bus(sub)
        for reply in self.history.replies(ready):
            self.writer.take_history(reply)
        now = time.monotonic()
        if now >= self.next_silence_check:
            self.writer.tick(time.time())
            self.next_silence_check = now + SILENCE_CHECK_S
        if now >= self.next_commit:
            self.writer.commit()
            self.deliver_alerts()
            self.next_commit = now + self.cfg.commit_every_ms / 1000
            for ask in self.writer.asks(now):
                self.history.send(ask)
        if router in ready:
            self.writer.commit()   # a query sees every final that has come in
            self.answer(router)
        if now >= self.next_retention:
            deleted, pages = retention.step(self.conn, self.policy, time.time())
            self.retention_deleted += deleted
            self.vacuumed_pages += pages
            self.next_retention = now + (0 if deleted >= self.policy.batch else self.cfg.retention_every_s)

    def deliver_alerts(self) -> None:
        """Alerts of the last commit on the bus and to the webhook (its own thread: never waited for here)."""
        for fired in self.writer.fired:
            log.info("alert", extra=alert_event(fired))
            if self.pub is not None:
                sockets.publish(self.pub, alert_message(fired))
            if self.webhook is not None:
                self.webhook.submit(alert_event(fired))
        self.writer.fired.clear()

    def bad_message(self, exc: schemas.SchemaError) -> None:
        self.bad_messages += 1
        log.warning("bad bus message dropped", extra={"error": str(exc), "count": self.bad_messages})

    def drain_bus(self, sub: zmq.Socket) -> None:
        for msg in sockets.received(sub, MAX_BATCH, self.bad_message):
            self.writer.take(msg)

    def answer(self, router: zmq.Socket) -> None:
        for _ in range(50):
            try:
                frames = router.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return
            self.queries += 1
            try:
                query = decode_query(frames[-1])
                if query.op.startswith("alerts_"):
                    reply = alert_ops.answer(self.writer.alerts, self.conn, query, self.cfg.max_page)
                else:
                    reply = queries.answer(self.conn, query, self.cfg.max_page)
            except QueryError as exc:
                reply = Reply(400, error=str(exc))
            try:
                router.send_multipart([*frames[:-1], encode_reply(reply)], zmq.NOBLOCK)
            except zmq.ZMQError as exc:
                log.warning("query reply not delivered", extra={"error": str(exc)})


def loop(runtime: StageRuntime) -> None:
    if not runtime.config.store.enabled:
        log.info("store disabled ([store] enabled = false): idle until stopped")
        runtime.stopping.wait()
        return
    StoreLoop(runtime).run()


def main(argv: list[str] | None = None) -> int:
    return run_stage("store", loop, argv)
