"""What the machine says about itself: CPU temperature, throttling, clock; a process's memory and CPU time.

Read from sysfs and procfs only (no vcgencmd): `/sys/class/thermal/thermal_zone*/` (any Linux
board; a Pi 4's `cpu-thermal`), the Pi firmware's `get_throttled` bits where the kernel exposes
them, cpufreq's current and maximum clock. A board without a source gives nothing, not an error.
Roots are parameters so tests can hand in a fake tree.
"""
from __future__ import annotations

import os
from pathlib import Path

THERMAL = Path("/sys/class/thermal")
THROTTLED = Path("/sys/devices/platform/soc/soc:firmware/get_throttled")
CPUS = Path("/sys/devices/system/cpu")
PROC = Path("/proc")
# The Pi firmware's throttle word: the low bits are now, the same bits << 16 "since boot".
THROTTLE_FLAGS = {0: "under_voltage", 1: "frequency_capped", 2: "throttled", 3: "soft_temperature_limit"}
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
PAGE_BYTES = os.sysconf("SC_PAGE_SIZE")


def _read(path: Path) -> str | None:
    try:
        return path.read_text().strip()
    except OSError:
        return None


def temperatures(root: Path = THERMAL) -> dict[tuple[str, str], float]:
    """(zone, type) → °C for every thermal zone that reads."""
    found = {}
    for zone in sorted(root.glob("thermal_zone*")):
        raw = _read(zone / "temp")
        if raw is not None and raw.lstrip("-").isdigit():
            found[(zone.name, _read(zone / "type") or "unknown")] = int(raw) / 1000.0
    return found


def throttling(path: Path = THROTTLED) -> dict[str, tuple[bool, bool]] | None:
    """flag → (now, since boot), or None where the firmware does not say."""
    raw = _read(path)
    if raw is None:
        return None
    try:
        word = int(raw, 16)
    except ValueError:
        return None
    return {name: (bool(word >> bit & 1), bool(word >> (bit + 16) & 1)) for bit, name in THROTTLE_FLAGS.items()}


def frequencies(root: Path = CPUS) -> dict[str, tuple[float, float]]:
    """cpu → (current Hz, maximum Hz) where cpufreq reports both."""
    found = {}
    for cpu in sorted(root.glob("cpu[0-9]*")):
        current, peak = _read(cpu / "cpufreq/scaling_cur_freq"), _read(cpu / "cpufreq/cpuinfo_max_freq")
        if current and peak and current.isdigit() and peak.isdigit():
            found[cpu.name] = (int(current) * 1000.0, int(peak) * 1000.0)  # sysfs says kHz
    return found


def board_report() -> dict:
    """For /health's details."""
    throttle = throttling()
    return {"temperature_c": {f"{zone} ({kind})": t for (zone, kind), t in temperatures().items()},
            "throttled_now": sorted(k for k, (now, _) in throttle.items() if now) if throttle is not None else None,
            "throttled_since_boot": (sorted(k for k, (_, ever) in throttle.items() if ever)
                                     if throttle is not None else None)}


def process(pid: int, root: Path = PROC) -> tuple[float, float] | None:
    """(resident bytes, CPU seconds user + system) of a process on this host, None if it is gone."""
    stat, statm = _read(root / str(pid) / "stat"), _read(root / str(pid) / "statm")
    if stat is None or statm is None:
        return None
    fields = stat.rsplit(")", 1)[1].split()  # after "(comm)": field 3 onwards; utime, stime are 14 and 15
    cpu = (int(fields[11]) + int(fields[12])) / CLOCK_TICKS
    return int(statm.split()[1]) * PAGE_BYTES, cpu
