"""The live connection: a QWebSocket to /stream that reconnects with backoff while the user wants to stream.

States: idle → connecting → streaming → finishing (eof sent, waiting for the last
final and the server's close) → idle; a connection lost while streaming goes to
reconnecting and is tried again after Backoff's delay. A close that retrying cannot
fix (bad settings, 1008/1009) ends the session with the server's reason instead.
Audio captured while (re)connecting is held, up to HOLD_S, and sent once connected:
a slow handshake on a busy server must not cost the first words.
"""
from __future__ import annotations

import json
import logging
from collections import deque

from PySide6.QtCore import QByteArray, QObject, QTimer, QUrl, Signal
from PySide6.QtNetwork import QAbstractSocket, QNetworkRequest
from PySide6.QtWebSockets import QWebSocket, QWebSocketProtocol

from bus import pcm as pcm_format
from clients.desktop.reconnect import Backoff

log = logging.getLogger(__name__)

HOLD_S = 10.0   # audio kept while the connection is not up; beyond it the oldest is dropped (and counted)
NO_RETRY = (QWebSocketProtocol.CloseCode.CloseCodePolicyViolated, QWebSocketProtocol.CloseCode.CloseCodeTooMuchData)


def authorized_request(url: str, api_key: str) -> QNetworkRequest:
    request = QNetworkRequest(QUrl(url))
    if api_key:
        request.setRawHeader(b"Authorization", f"Bearer {api_key}".encode())
    return request


class StreamClient(QObject):
    stateChanged = Signal(str)   # noqa: N815 (Qt signal names)
    message = Signal(str)        # one text frame from the server
    problem = Signal(str)        # something the user should read

    def __init__(self, backoff: Backoff | None = None, parent: QObject | None = None):
        super().__init__(parent)
        self.backoff = backoff or Backoff()
        self.ws = QWebSocket(parent=self)
        self.ws.connected.connect(self._connected)
        self.ws.disconnected.connect(self._disconnected)
        self.ws.textMessageReceived.connect(self.message.emit)
        self.ws.errorOccurred.connect(self._error)
        self.retry = QTimer(self)
        self.retry.setSingleShot(True)
        self.retry.timeout.connect(self._open)
        self.state = "idle"
        self.wanted = False
        self.url = self.api_key = ""
        self.dropped_bytes = 0
        self.reconnects = 0
        self.held: deque[bytes] = deque()
        self.held_bytes = 0
        self.hold_limit = int(HOLD_S * pcm_format.SAMPLE_RATE) * pcm_format.BYTES_PER_SAMPLE

    def _set(self, state: str) -> None:
        if state != self.state:
            self.state = state
            self.stateChanged.emit(state)

    def start(self, url: str, api_key: str) -> None:
        self.url, self.api_key, self.wanted = url, api_key, True
        self.backoff.succeeded()
        self._open()

    def _open(self) -> None:
        if not self.wanted:
            return
        self._set("connecting")
        self.ws.open(authorized_request(self.url, self.api_key))

    def _connected(self) -> None:
        self.backoff.succeeded()
        self._set("streaming")
        while self.held:
            self.ws.sendBinaryMessage(QByteArray(self.held.popleft()))
        self.held_bytes = 0

    def send_audio(self, pcm: bytes) -> None:
        if self.state == "streaming":
            self.ws.sendBinaryMessage(QByteArray(pcm))
        elif self.wanted:
            self._hold(pcm)

    def _hold(self, pcm: bytes) -> None:
        """Not connected (yet, or again): keep the audio for the connection; past the limit the oldest is lost, and counted."""
        self.held.append(pcm)
        self.held_bytes += len(pcm)
        while self.held_bytes > self.hold_limit:
            oldest = self.held.popleft()
            self.held_bytes -= len(oldest)
            self.dropped_bytes += len(oldest)

    def _drop_held(self) -> None:
        """The session ended before a connection took the held audio: it is lost, and counted."""
        self.dropped_bytes += self.held_bytes
        self.held.clear()
        self.held_bytes = 0

    def finish(self) -> None:
        """Stop sending: eof, then the server closes after the last final."""
        self.wanted = False
        self.retry.stop()
        if self.state == "streaming":
            self.ws.sendTextMessage(json.dumps({"type": "eof"}))
            self._set("finishing")
        else:
            self.ws.abort()
            self._drop_held()
            self._set("idle")

    def close(self) -> None:
        self.wanted = False
        self.retry.stop()
        self.ws.close()
        self._drop_held()
        self._set("idle")

    def _error(self, error: QAbstractSocket.SocketError) -> None:
        log.info("websocket error", extra={"error": str(error), "detail": self.ws.errorString()})
        if self.state == "connecting":
            self._disconnected()  # a refused connection emits no disconnected

    def _disconnected(self) -> None:
        code, reason = self.ws.closeCode(), self.ws.closeReason()
        if self.wanted and code in NO_RETRY:
            self.wanted = False
            self.problem.emit(f"the server ended the stream: {reason or code} (check the settings)")
        if not self.wanted:
            self._drop_held()
            self._set("idle")
            return
        delay = self.backoff.next_delay()
        self.reconnects += 1
        self.problem.emit(f"connection to {self.url} lost ({self.ws.errorString() or reason or code}); "
                          f"retrying in {delay:.1f} s")
        self._set("reconnecting")
        self.retry.start(int(delay * 1000))
