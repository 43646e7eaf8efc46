"""Questions to the transcript store over `store.query` (REQ → the store's ROUTER), and the client.

Only the store touches its SQLite file; the gateway (or any tool) asks it here:

    request: {v, type: "store_query", op, args}
    reply:   {v, type: "store_reply", status, result, error}

`op` is one of OPS; `args` a map of that op's arguments (store/queries.py reads them);
`status` is HTTP-like: 200, 400 (bad arguments, named in `error`), 404, 500.
`StoreClient` is the zguide's Lazy Pirate: poll with a timeout, on silence close the
socket with LINGER 0, open a fresh one, retry, and give up after `retries` with
StoreUnavailable. Every op is safe to repeat (a repeated delete deletes nothing more).
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import msgpack
import zmq

from bus import schemas

log = logging.getLogger(__name__)
VERSION = schemas.VERSION
OPS = ("search", "get", "delete", "streams", "export", "stats", "replay", "alerts_add", "alerts_list", "alerts_delete",
       "alerts_fired")


class StoreUnavailable(RuntimeError):
    """The store did not answer within the timeout, after every retry."""


class QueryError(schemas.SchemaError):
    """A query or reply that is not valid."""


@dataclass(frozen=True)
class Query:
    op: str
    args: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Reply:
    status: int
    result: object = None
    error: str = ""

    @property
    def ok(self) -> bool:
        return self.status == 200


def _load(data: bytes, expected: str) -> dict:
    body = schemas.load_body(data, QueryError, VERSION)
    if body.get("type") != expected:
        raise QueryError(f"got a {body.get('type')!r:.40}, expected a {expected}")
    return body


def encode_query(query: Query) -> bytes:
    return msgpack.packb({"v": VERSION, "type": "store_query", "op": query.op, "args": query.args},
                         use_bin_type=True)


def decode_query(data: bytes) -> Query:
    body = _load(data, "store_query")
    op, args = body.get("op"), body.get("args", {})
    if op not in OPS:
        raise QueryError(f"store_query.op = {op!r:.40}: expected one of {', '.join(OPS)}")
    if not isinstance(args, dict):
        raise QueryError("store_query.args: expected a map")
    return Query(op, args)


def encode_reply(reply: Reply) -> bytes:
    return msgpack.packb({"v": VERSION, "type": "store_reply", "status": reply.status, "result": reply.result,
                          "error": reply.error}, use_bin_type=True)


def decode_reply(data: bytes) -> Reply:
    body = _load(data, "store_reply")
    status = body.get("status")
    if not isinstance(status, int) or isinstance(status, bool):
        raise QueryError(f"store_reply.status = {status!r:.40}: expected an integer")
    return Reply(status, body.get("result"), str(body.get("error", "")))


def query_endpoint(store_cfg, run_dir: str) -> str:
    """store.query with {run_dir} expanded (the config loader expands only bus and vad endpoints)."""
    return store_cfg.query.replace("{run_dir}", str(run_dir))


def store_path(store_cfg, run_dir: str, env) -> Path:
    """store.path, else $VOXBUS_DATA_DIR/transcripts.db, /var/lib/voxbus/… as root, $XDG_DATA_HOME/voxbus/…"""
    from config.paths import resolve_data_dir

    if store_cfg.path:
        return Path(store_cfg.path.replace("{run_dir}", str(run_dir))).expanduser()
    return resolve_data_dir(env) / "transcripts.db"


class StoreClient:
    """Lazy Pirate REQ client. Not thread-safe: one per thread (or behind a lock)."""

    def __init__(self, ctx: zmq.Context, endpoint: str, timeout_ms: int = 3000, retries: int = 2):
        self.ctx = ctx
        self.endpoint = endpoint
        self.timeout_ms = timeout_ms
        self.retries = retries
        self.sock: zmq.Socket | None = None

    def _fresh(self) -> zmq.Socket:
        self.close()
        sock = self.ctx.socket(zmq.REQ)
        sock.setsockopt(zmq.LINGER, 0)
        sock.connect(self.endpoint)
        self.sock = sock
        return sock

    def ask(self, op: str, **args) -> Reply:
        """The store's reply; StoreUnavailable after 1 + retries silent timeouts."""
        payload = encode_query(Query(op, args))
        for attempt in range(self.retries + 1):
            sock = self.sock or self._fresh()
            sock.send(payload)
            if sock.poll(self.timeout_ms, zmq.POLLIN):
                return decode_reply(sock.recv())
            log.warning("store query timed out", extra={"op": op, "attempt": attempt + 1, "endpoint": self.endpoint})
            self.close()   # a REQ that sent and heard nothing is stuck: a fresh one (Lazy Pirate)
        raise StoreUnavailable(f"the store did not answer {op!r} at {self.endpoint} within "
                               f"{self.timeout_ms} ms, {self.retries + 1} times")

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close(linger=0)
            self.sock = None
