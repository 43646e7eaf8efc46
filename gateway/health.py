"""What /health and /model/info say, computed from the heartbeats the router has seen.

Uses bus.status.HealthTable (the same logic as `voxbus status`); this module only
adds the gateway's rule: bus, vad and at least one asr with a loaded model.
"""
from __future__ import annotations

from importlib import metadata

from bus.schemas import SAMPLE_RATE
from bus.status import HealthTable

REQUIRED = ("bus", "vad")


def _asr_rows(table: HealthTable, now: float, timeout: float) -> list:
    return [row for row in table.fresh(now, timeout) if row.heartbeat.stage == "asr"]


def missing(table: HealthTable, now: float, timeout: float) -> list[str]:
    """Human-readable names of what is missing; empty when the service can transcribe."""
    gone = [f"{stage} (no heartbeat in {timeout:g} s)" for stage in table.missing(REQUIRED, now, timeout)]
    asr = _asr_rows(table, now, timeout)
    if not asr:
        gone.append(f"asr (no heartbeat in {timeout:g} s)")
    elif not any(row.heartbeat.counters.get("model_loaded") for row in asr):
        statuses = sorted({row.heartbeat.status for row in asr})
        gone.append(f"asr with a loaded model ({len(asr)} worker(s) heard, status: {', '.join(statuses)})")
    return gone


def report(table: HealthTable, now: float, timeout: float) -> tuple[bool, dict]:
    gone = missing(table, now, timeout)
    stages = {}
    for row in table.fresh(now, timeout):
        hb = row.heartbeat
        stages.setdefault(hb.stage, []).append({"instance": hb.instance, "pid": hb.pid, "host": hb.host,
                                                "ok": hb.ok, "status": hb.status,
                                                "age_s": round(now - row.received, 2), "uptime_s": hb.uptime_s})
    body = {"status": "ok" if not gone else "unavailable", "missing": gone, "stages": stages}
    return not gone, body


def _onnxruntime_version() -> str | None:
    try:  # the package's metadata, without importing onnxruntime into the gateway
        return metadata.version("onnxruntime")
    except metadata.PackageNotFoundError:
        return None


def model_info(table: HealthTable, now: float, timeout: float) -> dict:
    workers = []
    for row in _asr_rows(table, now, timeout):
        hb, counters = row.heartbeat, row.heartbeat.counters
        workers.append({"instance": hb.instance, "host": hb.host, "pid": hb.pid, "status": hb.status,
                        "model_loaded": bool(counters.get("model_loaded")), "model": counters.get("model"),
                        "precision": counters.get("precision"), "threads": counters.get("threads"),
                        "onnxruntime": counters.get("onnxruntime")})
    loaded = [w for w in workers if w["model_loaded"]] or workers
    first = loaded[0] if loaded else {}
    return {"model": first.get("model"), "precision": first.get("precision"), "sample_rate": SAMPLE_RATE,
            "onnxruntime": first.get("onnxruntime") or _onnxruntime_version(), "threads": first.get("threads"),
            "workers_seen": len(workers), "workers": workers}
