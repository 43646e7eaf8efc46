"""The voxbus gateway: REST, WebSocket, SSE and the web page, bridged to the bus."""
from importlib import metadata

try:
    __version__ = metadata.version("voxbus")
except metadata.PackageNotFoundError:  # running from a checkout that was never installed
    __version__ = "0.0.0"
