"""The installed voxbus version (kept out of __init__: an editable install may load this package as a namespace)."""
from importlib import metadata

try:
    VERSION = metadata.version("voxbus")
except metadata.PackageNotFoundError:  # running from a checkout that was never installed
    VERSION = "0.0.0"
