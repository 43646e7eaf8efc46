"""The server's HTTP side: /health and /model/info polled for the status bar, and file upload to /transcribe."""
from __future__ import annotations

import json
import logging
from pathlib import Path

from PySide6.QtCore import QFile, QIODevice, QObject, Signal
from PySide6.QtNetwork import QHttpMultiPart, QHttpPart, QNetworkAccessManager, QNetworkReply, QNetworkRequest

from clients.desktop.protocol import http_url
from clients.desktop.stream_client import authorized_request

log = logging.getLogger(__name__)


def _error_text(reply: QNetworkReply, body: bytes) -> str:
    """The server's own message (gateway errors are {"error": {"message", "code"}}), else Qt's."""
    try:
        error = json.loads(body)["error"]
        return f"{error['code']}: {error['message']}"
    except (ValueError, KeyError, TypeError):
        return reply.errorString()


class ServerApi(QObject):
    health = Signal(dict)
    modelInfo = Signal(dict)          # noqa: N815
    uploadProgress = Signal(float)    # noqa: N815 (0..1)
    uploadDone = Signal(dict)         # noqa: N815 (the /transcribe JSON)
    problem = Signal(str)

    def __init__(self, parent: QObject | None = None):
        super().__init__(parent)
        self.nam = QNetworkAccessManager(self)
        self.upload_reply: QNetworkReply | None = None

    def poll(self, server: str, api_key: str) -> None:
        self._get(http_url(server, "/health"), api_key, self.health, accept=(200, 503))
        self._get(http_url(server, "/model/info"), api_key, self.modelInfo, accept=(200,))

    def _get(self, url: str, api_key: str, signal, accept: tuple[int, ...]) -> None:
        reply = self.nam.get(authorized_request(url, api_key))

        def done() -> None:
            body = bytes(reply.readAll().data())
            status = reply.attribute(QNetworkRequest.Attribute.HttpStatusCodeAttribute)
            reply.deleteLater()
            if status in accept:
                try:
                    signal.emit(json.loads(body))
                    return
                except ValueError:
                    pass
            signal.emit({"unreachable": f"{url}: {_error_text(reply, body) if status else reply.errorString()}"})
        reply.finished.connect(done)

    def upload(self, server: str, api_key: str, path: str, language: str, task: str) -> bool:
        """POST the file to /transcribe; False (and a problem) when it cannot even start."""
        file = QFile(path)
        if not file.open(QIODevice.OpenModeFlag.ReadOnly):
            self.problem.emit(f"cannot open {path}: {file.errorString()}")
            return False
        parts = QHttpMultiPart(QHttpMultiPart.ContentType.FormDataType)
        for name, value in (("language", language), ("task", task)):
            field = QHttpPart()
            field.setHeader(QNetworkRequest.KnownHeaders.ContentDispositionHeader, f'form-data; name="{name}"')
            field.setBody(value.encode())
            parts.append(field)
        audio = QHttpPart()
        audio.setHeader(QNetworkRequest.KnownHeaders.ContentDispositionHeader,
                        f'form-data; name="audio_file"; filename="{Path(path).name}"')
        audio.setBodyDevice(file)
        file.setParent(parts)
        parts.append(audio)
        reply = self.nam.post(authorized_request(http_url(server, "/transcribe"), api_key), parts)
        parts.setParent(reply)
        reply.uploadProgress.connect(self._progress)
        reply.finished.connect(lambda: self._uploaded(reply))
        self.upload_reply = reply
        return True

    def _progress(self, sent: int, total: int) -> None:
        if total > 0:  # Qt ends with (0, 0) once the body is sent: not a step back to 0 %
            self.uploadProgress.emit(sent / total)

    def _uploaded(self, reply: QNetworkReply) -> None:
        body = bytes(reply.readAll().data())
        status = reply.attribute(QNetworkRequest.Attribute.HttpStatusCodeAttribute)
        reply.deleteLater()
        self.upload_reply = None
        if status != 200:
            self.problem.emit(f"transcription failed: {_error_text(reply, body) if status else reply.errorString()}")
            self.uploadDone.emit({})
            return
        try:
            self.uploadDone.emit(json.loads(body))
        except ValueError:
            self.problem.emit(f"the server's answer is not JSON: {body[:80]!r}")
            self.uploadDone.emit({})
