"""Build the window: a Controller, the QML engine with `controller` in its context, the Fusion style."""
from __future__ import annotations

import argparse
import logging
from functools import partial
from pathlib import Path

from PySide6.QtCore import QSettings
from PySide6.QtQml import QQmlApplicationEngine
from PySide6.QtQuick import QQuickWindow
from PySide6.QtQuickControls2 import QQuickStyle

from clients.desktop.audio_source import FileSource
from clients.desktop.controller import Controller

log = logging.getLogger(__name__)

QML_DIR = Path(__file__).parent / "qml"


class WindowError(RuntimeError):
    """The QML did not load; the message carries the engine's warnings."""


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m clients.desktop", description="voxbus desktop client")
    parser.add_argument("--server", help="server URL, e.g. http://192.168.1.20:8000 (saved as the setting)")
    parser.add_argument("--wav", help="play this sound file at real time instead of the microphone")
    parser.add_argument("--settings", help="settings file (INI); default: Qt's per-user place for voxbus/desktop")
    return parser.parse_args(argv)


def settings_store(path: str | None) -> QSettings:
    return QSettings(path, QSettings.Format.IniFormat) if path else QSettings("voxbus", "desktop")


def create_window(controller: Controller) -> tuple[QQmlApplicationEngine, QQuickWindow]:
    """Load qml/Main.qml with `controller`; WindowError with the QML warnings if it fails."""
    QQuickStyle.setStyle("Fusion")
    engine = QQmlApplicationEngine()
    controller.setParent(engine)  # the engine outlives its bindings' object: no "of null" errors at exit
    warnings: list[str] = []
    engine.warnings.connect(lambda errors: warnings.extend(e.toString() for e in errors))
    engine.rootContext().setContextProperty("controller", controller)
    engine.load(str(QML_DIR / "Main.qml"))
    roots = engine.rootObjects()
    if not roots or not isinstance(roots[0], QQuickWindow):
        raise WindowError("the window's QML did not load:\n" + "\n".join(warnings or ["(no warnings)"]))
    return engine, roots[0]


def build(args: argparse.Namespace) -> tuple[Controller, QQmlApplicationEngine, QQuickWindow]:
    """The controller and window for parsed `args` (a QGuiApplication must exist)."""
    source = partial(FileSource, args.wav) if args.wav else None
    controller = Controller(settings_store(args.settings), source_factory=source)
    if args.server:
        problem = controller.saveSettings({"server": args.server})
        if problem:
            raise SystemExit(f"voxbus desktop: {problem}")
    engine, window = create_window(controller)
    return controller, engine, window
