"""Where voxbus keeps its sockets, logs and models."""
from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Mapping


def resolve_run_dir(configured: str, env: Mapping[str, str]) -> Path:
    """run.dir, else $VOXBUS_RUN_DIR, else /run/voxbus as root, else $XDG_RUNTIME_DIR/voxbus, else a temp dir."""
    if configured:
        return Path(configured).expanduser()
    if env.get("VOXBUS_RUN_DIR"):
        return Path(env["VOXBUS_RUN_DIR"]).expanduser()
    if os.geteuid() == 0:
        return Path("/run/voxbus")
    if env.get("XDG_RUNTIME_DIR"):
        return Path(env["XDG_RUNTIME_DIR"]) / "voxbus"
    return Path(tempfile.gettempdir()) / f"voxbus-{os.getuid()}"


def resolve_models_dir(configured: str, env: Mapping[str, str]) -> Path:
    """run.models_dir, else $VOXBUS_MODELS_DIR, else $XDG_DATA_HOME/voxbus/models."""
    if configured:
        return Path(configured).expanduser()
    if env.get("VOXBUS_MODELS_DIR"):
        return Path(env["VOXBUS_MODELS_DIR"]).expanduser()
    data_home = env.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(data_home) / "voxbus" / "models"


def resolve_data_dir(env: Mapping[str, str]) -> Path:
    """Where kept data lives (the store's database, API keys): $VOXBUS_DATA_DIR, else /var/lib/voxbus as root,
    else $XDG_DATA_HOME/voxbus."""
    if env.get("VOXBUS_DATA_DIR"):
        return Path(env["VOXBUS_DATA_DIR"]).expanduser()
    if os.geteuid() == 0:
        return Path("/var/lib/voxbus")
    data_home = env.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(data_home) / "voxbus"


def model_dir(models_dir: str, model: str) -> Path:
    """A model name is a folder under models_dir; anything with a slash is a path."""
    return Path(model).expanduser() if "/" in model else Path(models_dir) / model


def ensure_private_dir(path: Path) -> Path:
    """Create the run dir 0700, or check an existing one is ours and not open to others.

    Its sockets accept any local process that can reach them, and the temp-dir
    fallback has a predictable name, so another user must not own or share it.
    """
    path = Path(path)
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    info = path.stat()
    if info.st_uid != os.getuid():
        raise OSError(f"run dir {path} belongs to uid {info.st_uid}, not to this user ({os.getuid()})")
    if info.st_mode & 0o022:
        raise OSError(f"run dir {path} is writable by others (mode {info.st_mode & 0o777:o}); "
                      f"chmod go-w it or set VOXBUS_RUN_DIR")
    return path
