"""The finals a reconnecting client missed: from the store, and from the gateway's own recent ones.

Used by `GET /events` with Last-Event-ID and by a resumed `/stream` session (gateway/ws_resume.py).
The caller subscribes to live messages first and only then asks here, so nothing falls between
the two; the store may not yet hold the newest finals (it commits every store.commit_every_ms),
so the router's ring of recent finals (gateway/router.py) fills in what the gateway saw itself.
Each final is keyed by its producer and seq, so one that comes both ways is sent once.
"""
from __future__ import annotations

import logging

from bus import schemas
from gateway import store_api
from gateway.errors import ApiError

log = logging.getLogger(__name__)


def final_key(final: schemas.Final) -> tuple:
    """Who published it and its number: the same final from the store, the ring or the bus."""
    return (final.worker, final.seq) if final.seq is not None else (final.worker, final.ts)


def _of(final: schemas.Final, stream: str | None) -> bool:
    return stream is None or (final.job if final.job is not None else final.stream) == stream


async def missed(store: store_api.StoreGateway, recent, after: float, stream: str | None = None,
                 ) -> tuple[list[schemas.Final], str | None]:
    """Finals published after wall time `after` (of `stream`, a live stream or a job id, when given),
    oldest first, each once; and why the list may be incomplete (the store's error), else None."""
    problem = None
    try:
        stored = await store_api.missed_finals(store, repr(after), stream)
    except ApiError as exc:
        stored, problem = [], f"the transcript store could not be asked ({exc.code}): {exc.message}"
        log.warning("replay without the store", extra={"reason": problem})
    keys = {final_key(f) for f in stored}
    extra = [f for f in list(recent) if f.ts is not None and f.ts > after and _of(f, stream)
             and final_key(f) not in keys]
    return sorted(stored + extra, key=lambda f: (f.ts or 0.0, final_key(f))), problem
