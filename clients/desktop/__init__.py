"""The Qt6 desktop client: `python -m clients.desktop` (needs `pip install -e .[desktop]`).

Logic lives in plain-Python modules with no Qt import (protocol, history, reconnect,
settings, levels); Qt is only in audio_source, controller, models and the QML.
"""
