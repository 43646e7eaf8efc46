"""Clients that survive a gateway killed -9, for tests/e2e/test_kill9.py: a /stream session that
resumes with its newest token, and an /events reader that reconnects with Last-Event-ID."""
from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, field

import httpx
import numpy as np

RATE = 16000
RECONNECT_S = 0.2
GIVE_UP_S = 40.0


@dataclass
class Resumed:
    readies: list[dict] = field(default_factory=list)
    events: list[dict] = field(default_factory=list)
    token: str | None = None
    connections: int = 0

    def finals(self) -> list[dict]:
        return [e for e in self.events if e["type"] == "final"]


async def _connect(url: str):
    import websockets

    deadline = time.monotonic() + GIVE_UP_S
    while True:
        try:
            return await websockets.connect(url, max_size=None)
        except (OSError, websockets.exceptions.InvalidStatus, websockets.exceptions.InvalidMessage):
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(RECONNECT_S)


async def resumable_stream(ws_base: str, audio: np.ndarray, query: str, pace: float, on_chunk) -> Resumed:
    """Send float32 `audio` at `pace` × real time, then eof; whenever the connection breaks, reconnect
    with the newest `resume` token and go on from the next chunk. `await on_chunk(sample, session)`
    runs before each chunk (the test kills the gateway from there); when it returns a coroutine
    function, the client leaves (closes the connection), awaits it, then resumes."""
    import websockets

    out, step, pos = Resumed(), RATE // 10, 0
    while True:
        url = f"{ws_base}/stream?{query}" if out.token is None else f"{ws_base}/stream?resume={out.token}"
        ws = await _connect(url)
        out.connections += 1

        async def receive():
            async for message in ws:
                event = json.loads(message)
                (out.readies if event["type"] == "ready" else out.events).append(event)
                out.token = event.get("resume", out.token)

        receiver = asyncio.create_task(receive())
        away = None
        try:
            start = time.monotonic()
            for i, first in enumerate(range(pos, audio.size, step)):
                await asyncio.sleep(max(0.0, start + i * 0.1 / pace - time.monotonic()))
                away = await on_chunk(first, out)
                if away is not None:
                    break
                pos = first + step
                await ws.send(audio[first:first + step].astype("<f4").tobytes())
            if away is None:
                await ws.send(json.dumps({"type": "eof"}))
                await asyncio.wait_for(receiver, 60)
                return out
        except websockets.exceptions.ConnectionClosed:
            await asyncio.gather(receiver, return_exceptions=True)
        finally:
            await ws.close()
            receiver.cancel()
        if away is not None:
            await away()


CONNECTED = {"type": "_connected"}


async def follow_events(base: str, out: list[dict], may_reconnect: asyncio.Event) -> None:
    """Read /events into `out` until cancelled (CONNECTED marks each connection); on a broken
    connection, reconnect with Last-Event-ID as a browser's EventSource does, once `may_reconnect`."""
    last_id = ""
    async with httpx.AsyncClient(timeout=httpx.Timeout(5.0, read=None)) as client:
        while True:
            await may_reconnect.wait()
            try:
                headers = {"Last-Event-ID": last_id} if last_id else {}
                async with client.stream("GET", f"{base}/events", headers=headers) as response:
                    response.raise_for_status()
                    out.append(CONNECTED)
                    event_id, data = "", None
                    async for line in response.aiter_lines():
                        if line.startswith("id: "):
                            event_id = line[4:]
                        elif line.startswith("data: "):
                            data = json.loads(line[6:])
                        elif line == "" and data is not None:
                            out.append(data)
                            last_id = event_id or last_id
                            event_id, data = "", None
            except httpx.HTTPError:
                await asyncio.sleep(RECONNECT_S)
