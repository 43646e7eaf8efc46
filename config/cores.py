"""The core map: which CPU cores each stage runs on, checked before anything starts."""
from __future__ import annotations

import dataclasses
import os

from config.schema import CoresConfig

STAGES = ("bus", "capture", "vad", "asr", "gateway")


def available_cores() -> list[int]:
    return sorted(os.sched_getaffinity(0))


def cores_for(cores: CoresConfig, stage: str, available: list[int] | None = None) -> tuple[int, ...]:
    """Resolve "auto": light stages share the first core; asr takes the rest on 3 cores or more
    (a Pi 4: 1-3) and every core on 1 or 2 (the light stages need far less than a core, and asr's
    decodes would otherwise leave one core nearly idle)."""
    value = getattr(cores, stage)
    if value != "auto":
        return tuple(value)
    available = available if available is not None else available_cores()
    if stage != "asr":
        return (available[0],)
    return tuple(available[1:]) if len(available) > 2 else tuple(available)


def check_core_map(cores: CoresConfig, available: list[int] | None = None) -> list[str]:
    """One problem line per stage whose cores this process may not use."""
    available = available if available is not None else available_cores()
    problems = []
    for f in dataclasses.fields(cores):
        value = getattr(cores, f.name)
        if value == "auto":
            continue
        missing = sorted(set(value) - set(available))
        if missing:
            problems.append(f"config: cores.{f.name} = {list(value)}: core(s) {missing} do not exist here "
                            f"(available: {available})")
    return problems


def pin(cores: CoresConfig, stage: str) -> tuple[int, ...]:
    """Pin the calling process to its stage's cores; returns them."""
    chosen = cores_for(cores, stage)
    os.sched_setaffinity(0, chosen)
    return chosen
