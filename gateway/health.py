"""What /health and /model/info say, computed from the heartbeats the router has seen.

Uses bus.status.HealthTable (the same logic as `voxbus status`); this module only
adds the gateway's rule: bus, vad and at least one asr with a loaded model.
"""
from __future__ import annotations

from bus import schemas
from bus.pcm import SAMPLE_RATE
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
    elif not any(_model(row).loaded for row in asr):
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


def _model(row) -> schemas.ModelStatus:
    """The worker's typed model status (a worker too old to send one: nothing loaded)."""
    return row.heartbeat.model_status() or schemas.ModelStatus(name="", loaded=False)


def model_info(table: HealthTable, now: float, timeout: float) -> dict:
    """What the asr workers say they serve; onnxruntime is the workers' version, None until one reports."""
    workers = []
    for row in _asr_rows(table, now, timeout):
        hb, model = row.heartbeat, _model(row)
        workers.append({"instance": hb.instance, "host": hb.host, "pid": hb.pid, "status": hb.status,
                        "model_loaded": model.loaded, "model": model.name or None,
                        "precision": model.precision or None, "threads": model.threads or None,
                        "multilingual": model.multilingual, "onnxruntime": model.runtime or None,
                        "rtf": hb.counters.get("rtf"), "remote": hb.counters.get("remote", False)})
    loaded = [w for w in workers if w["model_loaded"]] or workers
    first = loaded[0] if loaded else {}
    return {"model": first.get("model"), "precision": first.get("precision"), "sample_rate": SAMPLE_RATE,
            "onnxruntime": first.get("onnxruntime"), "threads": first.get("threads"),
            "workers_seen": len(workers), "workers": workers}
