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


def model_dir(models_dir: str, model: str) -> Path:
    """A model name is a folder under models_dir; anything with a slash is a path."""
    return Path(model).expanduser() if "/" in model else Path(models_dir) / model
