"""`python -m clients.desktop [--server URL] [--wav FILE] [--settings FILE]`."""
from __future__ import annotations

import logging
import sys

from PySide6.QtGui import QGuiApplication

from clients.desktop.app import WindowError, build, parse_args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)  # before Qt starts: --help needs no display
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    app = QGuiApplication(sys.argv[:1])
    app.setOrganizationName("voxbus")
    app.setApplicationName("desktop")
    try:
        controller, engine, window = build(args)
    except WindowError as exc:
        print(f"voxbus desktop: {exc}", file=sys.stderr)
        return 1
    return app.exec()


if __name__ == "__main__":
    sys.exit(main())
