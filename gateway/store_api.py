"""The transcript store's HTTP API: search, get, delete, streams, export (issue 13).

The gateway never opens the SQLite file: it asks the store process over `store.query`
(bus/store_query.py, REQ with Lazy Pirate retries) from a worker thread, so a slow or absent
store costs a request its timeout and a 503, never the event loop.

Wiring (gateway/app.py): in the lifespan, `store = StoreGateway(cfg, context)`, yield it as
"store" in the state, `store.close()` on the way out; append `ROUTES` to the route list.

    GET    /v1/transcripts?stream=&q=&since=&until=&language=&speaker=&limit=&cursor=
    GET    /v1/transcripts/{id}
    DELETE /v1/transcripts?stream=&until=        DELETE /v1/transcripts/{id}
    GET    /v1/streams
    GET    /v1/streams/{stream}/export?format=srt|vtt|txt|json&since=&until=
    POST   /v1/alerts   GET /v1/alerts   DELETE /v1/alerts/{id} (or ?id=)   GET /v1/alerts/fired?rule=&stream=&limit=

`since`/`until` are epoch seconds or ISO 8601 (a time without a zone is UTC).
"""
from __future__ import annotations

import queue
from datetime import datetime, timezone

import anyio
import zmq
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from bus import schemas
from bus.store_query import QueryError, Reply, StoreClient, StoreUnavailable, query_endpoint
from gateway.errors import ApiError

SEARCH_ARGS = ("stream", "q", "language", "speaker", "limit", "cursor")
MAX_CLIENTS = 8
RETRY_AFTER_S = "2"


class StoreGateway:
    """A small pool of StoreClients (a REQ socket is one thread's), used from worker threads."""

    def __init__(self, cfg, ctx: zmq.Context):
        self.enabled = cfg.store.enabled
        self.endpoint = query_endpoint(cfg.store, cfg.run_dir)
        self.ctx = ctx
        self.timeout_ms = cfg.store.query_timeout_ms
        self.retries = cfg.store.query_retries
        self.idle: queue.SimpleQueue[StoreClient] = queue.SimpleQueue()
        self.limiter = anyio.CapacityLimiter(MAX_CLIENTS)

    def _ask(self, op: str, args: dict) -> Reply:
        try:
            client = self.idle.get_nowait()
        except queue.Empty:
            client = StoreClient(self.ctx, self.endpoint, self.timeout_ms, self.retries)
        try:
            reply = client.ask(op, **args)
        except (StoreUnavailable, QueryError):
            client.close()
            raise
        self.idle.put(client)
        return reply

    async def ask(self, op: str, args: dict) -> Reply:
        """The store's reply; ApiError 503 when it is disabled or does not answer, and its 4xx as ours."""
        if not self.enabled:
            raise ApiError(503, "store_disabled", "the transcript store is off ([store] enabled = false)")
        try:
            reply = await anyio.to_thread.run_sync(self._ask, op, args, limiter=self.limiter)
        except StoreUnavailable as exc:
            raise ApiError(503, "store_unavailable", str(exc), headers={"Retry-After": RETRY_AFTER_S}) from None
        except QueryError as exc:
            raise ApiError(502, "store_bad_reply", f"the store's reply could not be read: {exc}") from None
        if reply.status != 200:
            codes = {400: "invalid_argument", 404: "not_found"}
            raise ApiError(reply.status if reply.status in codes else 500, codes.get(reply.status, "store_error"),
                           reply.error, param=_param_of(reply.error))
        return reply

    def close(self) -> None:
        while True:
            try:
                self.idle.get_nowait().close()
            except queue.Empty:
                return


def _param_of(message: str) -> str | None:
    first = message.split(" ", 1)[0].rstrip(":")
    return first if first in SEARCH_ARGS + ("since", "until", "format", "id", "keywords", "regex",
                                            "silence_min") else None


def epoch(value: str | None, name: str) -> float | None:
    """Epoch seconds from a number or an ISO 8601 time; ApiError 400 naming `name`."""
    if value is None or value == "":
        return None
    try:
        return float(value)
    except ValueError:
        pass
    try:
        when = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise ApiError(400, "invalid_argument", f"{name} = {value!r:.40}: expected epoch seconds or "
                                                f"an ISO 8601 time", param=name) from None
    return (when if when.tzinfo else when.replace(tzinfo=timezone.utc)).timestamp()


def _range(request: Request) -> dict:
    args = {}
    for name in ("since", "until"):
        value = epoch(request.query_params.get(name), name)
        if value is not None:
            args[name] = value
    return args


def _store(request: Request) -> StoreGateway:
    return request.state.store


async def list_transcripts(request: Request) -> JSONResponse:
    args = {k: request.query_params[k] for k in SEARCH_ARGS if request.query_params.get(k)}
    if "limit" in args:
        if not args["limit"].isdigit():
            raise ApiError(400, "invalid_argument", f"limit = {args['limit']!r:.20}: expected an integer",
                           param="limit")
        args["limit"] = int(args["limit"])
    reply = await _store(request).ask("search", {**args, **_range(request)})
    return JSONResponse(reply.result)


def _ident(request: Request) -> int:
    raw = request.path_params["id"]
    if not raw.isdigit() or int(raw) < 1:
        raise ApiError(404, "not_found", f"no transcript {raw!r:.40}: ids are positive integers")
    return int(raw)


async def get_transcript(request: Request) -> JSONResponse:
    reply = await _store(request).ask("get", {"id": _ident(request)})
    return JSONResponse(reply.result)


async def delete_transcript(request: Request) -> JSONResponse:
    reply = await _store(request).ask("delete", {"id": _ident(request)})
    if reply.result["deleted"] == 0:
        raise ApiError(404, "not_found", f"no transcript {request.path_params['id']}")
    return JSONResponse(reply.result)


async def delete_transcripts(request: Request) -> JSONResponse:
    """Everything of `stream` (before `until` when given): a person asked for their text to go."""
    stream = request.query_params.get("stream")
    if not stream:
        raise ApiError(400, "invalid_argument", "stream: required (and until, to keep what came after it)",
                       param="stream")
    args = {"stream": stream, **{k: v for k, v in _range(request).items() if k == "until"}}
    reply = await _store(request).ask("delete", args)
    return JSONResponse(reply.result)


async def list_streams(request: Request) -> JSONResponse:
    reply = await _store(request).ask("streams", {})
    return JSONResponse(reply.result)


async def export_stream(request: Request) -> Response:
    fmt = request.query_params.get("format", "txt")
    stream = request.path_params["stream"]
    reply = await _store(request).ask("export", {"stream": stream, "format": fmt, **_range(request)})
    extension = {"txt": "txt", "srt": "srt", "vtt": "vtt", "json": "json"}[fmt]
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in stream)
    return Response(reply.result["body"], media_type=reply.result["media_type"],
                    headers={"Content-Disposition": f'attachment; filename="{safe}.{extension}"'})


# ---- alert rules ----

async def add_alert(request: Request) -> JSONResponse:
    """POST a rule: {"id", "keywords": [...] | "regex": "...", "stream"?}, {"id", "silence_min", "stream"?}
    or {"id", "speaker", "stream"?} (a speaker first heard on a stream)."""
    try:
        body = await request.json()
    except ValueError:
        raise ApiError(400, "invalid_json", "the body must be a JSON object (an alert rule)") from None
    if not isinstance(body, dict):
        raise ApiError(400, "invalid_json", "the body must be a JSON object (an alert rule)")
    reply = await _store(request).ask("alerts_add", body)
    return JSONResponse(reply.result, status_code=201)


async def list_alerts(request: Request) -> JSONResponse:
    return JSONResponse((await _store(request).ask("alerts_list", {})).result)


async def delete_alert(request: Request) -> JSONResponse:
    ident = request.path_params.get("id") or request.query_params.get("id")
    if not ident:
        raise ApiError(400, "invalid_argument", "id: required", param="id")
    return JSONResponse((await _store(request).ask("alerts_delete", {"id": ident})).result)


async def fired_alerts(request: Request) -> JSONResponse:
    args = {k: request.query_params[k] for k in ("rule", "stream") if request.query_params.get(k)}
    limit = request.query_params.get("limit", "100")
    if not limit.isdigit():
        raise ApiError(400, "invalid_argument", f"limit = {limit!r:.20}: expected an integer", param="limit")
    return JSONResponse((await _store(request).ask("alerts_fired", {**args, "limit": int(limit)})).result)


# ---- /events resume (Last-Event-ID): helpers for gateway/events.py ----
#
# An SSE final's `id:` is event_id(final) (its publish time, `ts`, exactly). A client that
# reconnects with Last-Event-ID gets, in this order and without gaps or repeats:
#   1. subscribe to the live finals first and hold them in a buffer;
#   2. `await missed_finals(store, last_event_id, stream)` (oldest first; pages until done);
#   3. send those, then the buffer and live finals, skipping any whose (worker, seq) was sent.
# The store commits every store.commit_every_ms, so step 1 before step 2 is what closes the gap.

def event_id(final: schemas.Final) -> str:
    return repr(final.ts) if final.ts is not None else ""


def final_of(row: dict) -> schemas.Final:
    """A stored transcript as the Final it was on the bus (for events.client_event)."""
    job = row["stream"] if row["kind"] == "job" else None
    return schemas.Final(utt=row["utt"], text=row["text"], start=row["start"], end=row["end"],
                         stream=None if job else row["stream"], job=job, segments=row["segments"],
                         words=row["words"], language=row["language"], language_prob=row["language_prob"],
                         worker=row["worker"], decode_ms=row["decode_ms"] or 0.0, index=row["idx"],
                         seq=row["seq"], ts=row["wall"])


async def missed_finals(store: StoreGateway, last_event_id: str, stream: str | None = None,
                        most: int = 10000) -> list[schemas.Final]:
    """Finals after the one `last_event_id` names, oldest first (at most `most`); ApiError 400 for a bad id."""
    after = epoch(last_event_id, "Last-Event-ID")
    out: list[schemas.Final] = []
    while after is not None and len(out) < most:
        args = {"after": after, **({"stream": stream} if stream else {})}
        page = (await store.ask("replay", args)).result
        out += [final_of(row) for row in page["transcripts"]]
        after = page["transcripts"][-1]["wall"] if page["more"] and page["transcripts"] else None
    return out[:most]


ROUTES = [
    Route("/v1/transcripts", list_transcripts, methods=["GET"]),
    Route("/v1/transcripts", delete_transcripts, methods=["DELETE"]),
    Route("/v1/transcripts/{id}", get_transcript, methods=["GET"]),
    Route("/v1/transcripts/{id}", delete_transcript, methods=["DELETE"]),
    Route("/v1/streams", list_streams, methods=["GET"]),
    Route("/v1/streams/{stream}/export", export_stream, methods=["GET"]),
    Route("/v1/alerts", add_alert, methods=["POST"]),
    Route("/v1/alerts", list_alerts, methods=["GET"]),
    Route("/v1/alerts", delete_alert, methods=["DELETE"]),
    Route("/v1/alerts/fired", fired_alerts, methods=["GET"]),
    Route("/v1/alerts/{id}", delete_alert, methods=["DELETE"]),
]
