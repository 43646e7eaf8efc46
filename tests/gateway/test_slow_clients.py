"""Issue 11, finding 1 and the slow clients of "Bad input", against a real uvicorn server (raw sockets).

Before: a job slot was taken before the body was read and bodies had no deadline, so stalled
uploads made every other upload a 503; a connection that stopped half-way through its headers
(or never sent any) was never closed; a WebSocket client that never read kept its slot until
the close frame went out.
"""
from __future__ import annotations

import base64
import json
import os
import socket
import time

import httpx
import pytest

from gateway import ws_session
from tests.gateway.conftest import gateway_cfg
from tests.gateway.helpers import WAV, until
from tests.gateway.live_server import live_gateway, read_until_closed

pytestmark = pytest.mark.slow

HEADER_S = 1.0
BODY_S = 1.5


@pytest.fixture(scope="module")
def live(base_cfg, pipeline):
    cfg = gateway_cfg(base_cfg, max_jobs=2, max_sessions=1, header_timeout_s=HEADER_S, body_timeout_s=BODY_S,
                      body_min_rate_kbps=16.0)
    with live_gateway(cfg) as gateway:
        assert until(lambda: httpx.get(f"http://{gateway.base}/health").status_code == 200, 30)
        yield gateway


def _stalled_upload(live, path: str = "/transcribe") -> socket.socket:
    sock = live.connect()
    sock.sendall(f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: multipart/form-data; boundary=b\r\n"
                 f"Content-Length: 1000000\r\n\r\n--b\r\n".encode())
    return sock


def test_stalled_uploads_hold_no_job_slot_and_are_cut_with_408(live):
    stalled = [_stalled_upload(live) for _ in range(3)] + [_stalled_upload(live, "/v1/audio/transcriptions")]
    time.sleep(0.3)
    started = time.monotonic()
    # Before: with 2 slots held by stalled bodies, this was 503 too_many_jobs.
    r = httpx.post(f"http://{live.base}/transcribe", files={"audio_file": ("a.wav", WAV)}, timeout=30)
    assert r.status_code == 200, r.text
    assert live.counters()["jobs_active"] == 0
    for sock in stalled:
        answer, took = read_until_closed(sock, 10)
        assert answer.startswith(b"HTTP/1.1 408"), answer[:200]
        assert b'"body_timeout"' in answer and b"gateway.body_timeout_s" in answer
        sock.close()
    assert time.monotonic() - started < BODY_S + 5


def test_bodies_read_at_once_are_bounded_and_stalled_ones_free_their_place(live):
    """4 readers per job slot (max_jobs = 2: 8): memory stays bounded however many clients upload, and a
    reader slot held by a stalled body is freed at its deadline."""
    stalled = [_stalled_upload(live) for _ in range(8)]
    time.sleep(0.3)
    r = httpx.post(f"http://{live.base}/transcribe", files={"audio_file": ("a.wav", WAV)}, timeout=30)
    assert r.status_code == 503 and r.json()["error"]["code"] == "too_many_uploads", r.text
    assert r.headers["retry-after"] == "5" and r.headers["connection"] == "close"
    for sock in stalled:
        assert read_until_closed(sock, 10)[0].startswith(b"HTTP/1.1 408")
        sock.close()
    r = httpx.post(f"http://{live.base}/transcribe", files={"audio_file": ("a.wav", WAV)}, timeout=30)
    assert r.status_code == 200, r.text


def test_a_trickled_body_is_cut_once_it_falls_behind_the_minimum_rate(live):
    sock = _stalled_upload(live)
    started = time.monotonic()
    sock.settimeout(0.2)
    answer = b""
    while time.monotonic() - started < 8 and not answer:
        try:
            sock.sendall(b"x")  # one byte every 0.2 s: far below 16 kB/s
            answer = sock.recv(65536)
        except (TimeoutError, socket.timeout):
            continue
        except (BrokenPipeError, ConnectionResetError):
            break
    took = time.monotonic() - started
    assert answer.startswith(b"HTTP/1.1 408"), answer[:200]
    assert BODY_S - 0.2 <= took < BODY_S + 3, took
    sock.close()


@pytest.mark.parametrize("head", [b"", b"POST /transcribe HTTP/1.1\r\nHost: 127.0.0.1\r\n"])
def test_half_sent_or_missing_headers_are_closed_after_the_deadline(live, head):
    sock = live.connect()
    sock.sendall(head)
    started = time.monotonic()
    for _ in range(3):  # trickling header bytes does not extend the deadline
        time.sleep(HEADER_S / 4)
        if head:
            sock.sendall(b"X-Pad: 1\r\n")
    answer, _ = read_until_closed(sock, 10)
    took = time.monotonic() - started
    assert answer.startswith(b"HTTP/1.1 408"), answer[:200]  # before: still open after 10 s
    assert b"gateway.header_timeout_s" in answer and took < HEADER_S + 3
    assert b"x-content-type-options: nosniff" in answer and b"content-security-policy: " in answer  # issue 14
    sock.close()


def test_keep_alive_requests_each_get_their_own_header_deadline(live):
    with httpx.Client(base_url=f"http://{live.base}") as client:
        for _ in range(3):
            assert client.get("/health").status_code == 200
            time.sleep(HEADER_S * 0.7)  # together longer than one deadline: each request starts afresh


def test_a_half_sent_head_on_a_kept_alive_connection_is_cut_too(live):
    sock = live.connect()
    sock.sendall(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
    first = b""
    while b"\r\n\r\n" not in first:
        first += sock.recv(65536)
    assert first.startswith(b"HTTP/1.1 200")
    time.sleep(0.2)
    sock.sendall(b"GET /health HTTP/1.1\r\nHost: 1")  # and no more: uvicorn's keep-alive timer is off now
    started = time.monotonic()
    answer, _ = read_until_closed(sock, 10)
    assert b"HTTP/1.1 408" in answer and time.monotonic() - started < HEADER_S + 3, answer[-300:]
    sock.close()


def test_oversized_body_is_refused_before_it_is_read(live):
    sock = live.connect()
    limit = live.cfg.gateway.max_upload_mb * 1024 * 1024
    sock.sendall(f"POST /transcribe HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: multipart/form-data; boundary=b\r\n"
                 f"Content-Length: {limit + 1}\r\n\r\n".encode())  # and not one byte of it
    answer, took = read_until_closed(sock, 10)
    assert answer.startswith(b"HTTP/1.1 413") and b'"too_large"' in answer and took < 5, answer[:300]
    sock.close()


def _ws_handshake(sock: socket.socket, query: str = "") -> None:
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall(f"GET /stream{query} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                 f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n".encode())
    head = b""
    while b"\r\n\r\n" not in head:
        head += sock.recv(1)
    assert head.startswith(b"HTTP/1.1 101"), head


def _ws_text(payload: str) -> bytes:
    data = payload.encode()
    mask = os.urandom(4)
    length = len(data)
    size = bytes([0x80 | length]) if length < 126 else bytes([0x80 | 126]) + length.to_bytes(2, "big")
    header = bytes([0x81]) + size
    return header + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(data))


def test_a_client_that_never_reads_is_dropped_and_frees_its_slot(live, monkeypatch):
    """Config messages are answered with non-droppable events; a client that reads none of them fills
    its outbox (512 events, bounded memory) and is dropped as slow_consumer; with max_sessions = 1 the
    next session gets in, so the slot was freed although the close frame could not be sent."""
    monkeypatch.setattr(ws_session, "CLOSE_FLUSH_S", 0.5)
    monkeypatch.setattr(ws_session, "CLOSE_SEND_S", 0.5)
    sock = live.connect()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    _ws_handshake(sock)
    frame = _ws_text(json.dumps({"type": "config", "prompt": "p" * 900}))
    before = live.counters().get("ws_slow_consumers", 0)
    sock.settimeout(0.5)
    sent = 0
    try:
        while live.counters().get("ws_slow_consumers", 0) == before and sent < 40000:
            sock.sendall(frame * 50)
            sent += 50
    except (TimeoutError, socket.timeout, BrokenPipeError, ConnectionResetError):
        pass  # the server stopped reading us: it has given up on this client
    assert until(lambda: live.counters().get("ws_slow_consumers", 0) > before, 20), live.counters()
    assert until(lambda: live.counters()["sessions_active"] == 0, 10), live.counters()
    other = live.connect()
    _ws_handshake(other)
    assert b'"ready"' in other.recv(4096)
    other.close()
    sock.close()
