"""What the QML sees: one QObject with properties, slots and the two list models.

It wires the parts together and holds no protocol logic of its own: audio source →
level/waveform and StreamClient; server text → LiveTranscript → the lines model;
finals and file results → History; ServerApi for health, model info and uploads.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Callable

from PySide6.QtCore import Property, QObject, QSettings, QTimer, QUrl, Signal, Slot
from PySide6.QtGui import QGuiApplication

from clients.desktop import levels
from clients.desktop.audio_source import AudioSource, MicSource
from clients.desktop.history import History
from clients.desktop.models import ListModel
from clients.desktop.protocol import LiveTranscript, ProtocolError, stream_url
from clients.desktop.server_api import ServerApi
from clients.desktop.settings import Settings, SettingsError
from clients.desktop.stream_client import StreamClient

log = logging.getLogger(__name__)

POLL_MS = 5000


def _text_property(name: str, notify: Signal):
    return Property(str, lambda self: getattr(self, name), notify=notify)


class Controller(QObject):
    changed = Signal()              # any of the status texts
    levelChanged = Signal()         # noqa: N815 (Qt names)
    settingsChanged = Signal()      # noqa: N815
    uploadChanged = Signal()        # noqa: N815

    def __init__(self, store: QSettings, source_factory: Callable[[], AudioSource] | None = None,
                 parent: QObject | None = None):
        super().__init__(parent)
        self.store = store
        self.source_factory = source_factory or MicSource
        self.settings = self._load_settings()
        self.live = LiveTranscript()
        self.history = History()
        self.lines_model = ListModel(self.live.lines, ("text", "final", "utt"), self)
        self.history_model = ListModel(self.history.entries, ("source", "text", "start", "end"), self)
        self.waveform = levels.Waveform()
        self.source: AudioSource | None = None
        self.client = StreamClient(parent=self)
        self.client.stateChanged.connect(self._state_changed)
        self.client.message.connect(self._server_message)
        self.client.problem.connect(self._show)
        self.api = ServerApi(self)
        self.api.health.connect(self._health)
        self.api.modelInfo.connect(self._model)
        self.api.problem.connect(self._show)
        self.api.uploadProgress.connect(self._progress)
        self.api.uploadDone.connect(self._uploaded)
        self._state, self._status, self._health_text, self._model_text = "idle", "", "health: not asked yet", ""
        self._level, self._progress_value, self._file_text, self._uploading = 0.0, 0.0, "", False
        self._source_name = self._source_name_file = ""
        self.poller = QTimer(self)
        self.poller.setInterval(POLL_MS)
        self.poller.timeout.connect(self.refresh)
        self.poller.start()
        QTimer.singleShot(0, self.refresh)

    # ---- properties --------------------------------------------------------------------
    connectionState = _text_property("_state", changed)    # noqa: N815
    statusText = _text_property("_status", changed)        # noqa: N815
    healthText = _text_property("_health_text", changed)   # noqa: N815
    modelText = _text_property("_model_text", changed)     # noqa: N815
    fileText = _text_property("_file_text", uploadChanged)  # noqa: N815
    level = Property(float, lambda self: self._level, notify=levelChanged)
    waveformValues = Property("QVariantList", lambda self: self.waveform.values(), notify=levelChanged)  # noqa: N815
    uploadProgress = Property(float, lambda self: self._progress_value, notify=uploadChanged)  # noqa: N815
    uploading = Property(bool, lambda self: self._uploading, notify=uploadChanged)
    lines = Property(QObject, lambda self: self.lines_model, constant=True)
    historyModel = Property(QObject, lambda self: self.history_model, constant=True)  # noqa: N815
    settingsMap = Property("QVariantMap", lambda self: self.settings.as_dict(), notify=settingsChanged)  # noqa: N815

    # ---- live --------------------------------------------------------------------------
    @Slot()
    def startLive(self) -> None:  # noqa: N802
        if self.source is not None:
            return
        s = self.settings
        self.client.start(stream_url(s.server, s.language, s.task, s.end_silence_ms), s.api_key)
        self.source = self.source_factory()
        self._source_name = getattr(self.source, "path", None) and Path(self.source.path).name or "microphone"
        self.source.chunk.connect(self._audio)
        self.source.finished.connect(self.stopLive)
        self.source.failed.connect(self._source_failed)
        self.source.start()

    @Slot()
    def stopLive(self) -> None:  # noqa: N802
        if self.source is not None:
            self.source.stop()
            self.source.deleteLater()
            self.source = None
        self.client.finish()

    def _source_failed(self, message: str) -> None:
        self._show(message)
        self.stopLive()

    def _audio(self, pcm: bytes) -> None:
        self.client.send_audio(pcm)
        self.waveform.add(pcm)
        self._level = (levels.level_db(pcm) - levels.FLOOR_DB) / -levels.FLOOR_DB
        self.levelChanged.emit()

    def _server_message(self, raw: str) -> None:
        try:
            kind, what = self.live.apply(raw)
        except ProtocolError as exc:
            self._show(str(exc))
            return
        if kind in ("partial", "final") and what is not None:
            if kind == "final":
                self.history.add(self._source_name or "microphone", what.text, what.start, what.end)
                self.history_model.refresh()
            self.lines_model.refresh()
        elif kind == "error" or (kind == "status" and what):
            self._show(what)

    def _state_changed(self, state: str) -> None:
        self._state = state
        self.changed.emit()

    def _show(self, message: str) -> None:
        log.info("status", extra={"detail": message})
        self._status = message
        self.changed.emit()

    # ---- server health -----------------------------------------------------------------
    @Slot()
    def refresh(self) -> None:
        self.api.poll(self.settings.server, self.settings.api_key)

    def _health(self, body: dict) -> None:
        if "unreachable" in body:
            self._health_text = f"server unreachable: {body['unreachable']}"
        elif body.get("status") == "ok":
            self._health_text = "server ok"
        else:
            self._health_text = f"server {body.get('status')}: {', '.join(body.get('missing', []))}"
        self.changed.emit()

    def _model(self, body: dict) -> None:
        if "unreachable" in body:
            self._model_text = ""
        else:
            self._model_text = f"model {body.get('model')} ({body.get('precision')}), " \
                               f"{body.get('workers_seen')} asr worker(s)"
        self.changed.emit()

    # ---- files -------------------------------------------------------------------------
    @Slot(str)
    def transcribeFile(self, path: str) -> None:  # noqa: N802
        local = QUrl(path).toLocalFile() if path.startswith("file:") else path
        s = self.settings
        self._file_text, self._progress_value = "", 0.0
        self._uploading = self.api.upload(s.server, s.api_key, local, s.language, s.task)
        self._source_name_file = Path(local).name
        self.uploadChanged.emit()

    def _progress(self, fraction: float) -> None:
        self._progress_value = fraction
        self.uploadChanged.emit()

    def _uploaded(self, body: dict) -> None:
        self._uploading = False
        self._file_text = body.get("text", "").strip()
        for seg in body.get("segments", []):
            self.history.add(self._source_name_file, seg.get("text", ""), seg.get("start", 0.0), seg.get("end", 0.0))
        self.history_model.refresh()
        self.uploadChanged.emit()

    # ---- history -----------------------------------------------------------------------
    @Slot()
    def copyHistory(self) -> None:  # noqa: N802
        QGuiApplication.clipboard().setText(self.history.as_text())
        self._show(f"copied {len(self.history.entries)} line(s)")

    @Slot(str, str, result=str)
    def exportHistory(self, path: str, fmt: str) -> str:  # noqa: N802
        """Write the history as `fmt` (txt|srt) to `path`; returns "" or the reason it failed."""
        local = QUrl(path).toLocalFile() if path.startswith("file:") else path
        try:
            Path(local).write_text(self.history.export(fmt), encoding="utf-8")
        except (OSError, ValueError) as exc:
            self._show(f"export failed: {exc}")
            return str(exc)
        self._show(f"exported {len(self.history.entries)} line(s) to {local}")
        return ""

    @Slot()
    def clearHistory(self) -> None:  # noqa: N802
        self.history.clear()
        self.live.clear()
        self.history_model.refresh()
        self.lines_model.refresh()

    # ---- settings ----------------------------------------------------------------------
    def _load_settings(self) -> Settings:
        saved = {key: self.store.value(key) for key in Settings().as_dict() if self.store.contains(key)}
        try:
            return Settings.from_mapping(saved)
        except SettingsError as exc:
            log.warning("saved settings ignored", extra={"reason": str(exc)})
            return Settings()

    @Slot("QVariantMap", result=str)
    def saveSettings(self, values: dict) -> str:  # noqa: N802
        """Check and keep new settings; returns "" or what is wrong (shown under the form)."""
        try:
            self.settings = Settings.from_mapping({**self.settings.as_dict(), **values})
        except SettingsError as exc:
            return str(exc)
        for key, value in self.settings.as_dict().items():
            self.store.setValue(key, value)
        self.store.sync()
        self.settingsChanged.emit()
        self.refresh()
        return ""
