"""Keys and metrics on the whole stack under supervisord: keys made with `voxbus keys` take effect on the
running gateway, the official OpenAI client works with one, /metrics parses with prometheus_client's own
parser and moves when audio is transcribed, and the Grafana dashboard asks only for what is exported."""
from __future__ import annotations

import asyncio
import json
import re
import time
from pathlib import Path

import httpx
import openai
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.e2e import live

pytestmark = pytest.mark.slow

SUFFIXES = {"counter": ("_total",), "histogram": ("_bucket", "_count", "_sum")}
DASHBOARD = Path(__file__).resolve().parents[2] / "deploy" / "grafana-voxbus.json"


def scrape(stack, headers=None) -> dict[str, list]:
    """sample name → [(labels, value)], parsed by prometheus_client's parser (which raises on bad text)."""
    response = httpx.get(f"{stack.http}/metrics", headers=headers or {}, timeout=10)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain; version=")
    samples: dict[str, list] = {}
    for family in text_string_to_metric_families(response.text):
        for suffix in SUFFIXES.get(family.type, ("",)):  # a family with no samples yet still names its series
            samples.setdefault(family.name + suffix, [])
        for sample in family.samples:
            samples.setdefault(sample.name, []).append((sample.labels, sample.value))
    return samples


def total(samples, metric: str, **labels) -> float:
    return sum(v for found, v in samples.get(metric, []) if all(found.get(k) == want for k, want in labels.items()))


def wait_for(predicate, timeout: float = 30.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if (result := predicate()):
            return result
        time.sleep(0.25)
    return predicate()


def test_metrics_parse_and_move_when_audio_is_transcribed(stack):
    before = scrape(stack)
    for stage in ("bus", "vad", "asr", "gateway", "store"):
        assert total(before, "voxbus_stage_up", stage=stage) >= 1, stage
    jfk = (live.EVAL_DIR / "asr/jfk/jfk.flac").read_bytes()
    assert httpx.post(f"{stack.http}/transcribe", files={"audio_file": ("jfk.flac", jfk)}, timeout=120).status_code \
        == 200
    audio, _ = live.build_stream(["lj-LJ001-0011"], pause_s=1.0, lead_s=0.5, tail_s=1.5)
    session = asyncio.run(live.stream(f"{stack.ws}/stream?language=en&end_silence_ms=500", audio, pace=2.0))
    assert session.of_type("final"), session.events

    def moved():
        now = scrape(stack)
        grew = {name: total(now, name, **labels) - total(before, name, **labels) for name, labels in (
            ("voxbus_asr_segments_total", {"kind": "final"}), ("voxbus_asr_encode_seconds_count", {"kind": "job"}),
            ("voxbus_asr_real_time_factor_count", {}), ("voxbus_final_latency_seconds_count", {}),
            ("voxbus_first_partial_latency_seconds_count", {}), ("voxbus_bus_messages_total", {"family": "text"}),
            ("voxbus_store_inserts_total", {}))}
        return (now, grew) if all(v > 0 for v in grew.values()) else None
    found = wait_for(moved)
    assert found, moved() or {n: total(scrape(stack), n) for n in ("voxbus_asr_segments_total",)}
    now, _ = found
    assert total(now, "voxbus_final_latency_seconds_count", model="tiny.en-int8") >= 1
    assert total(now, "voxbus_process_resident_memory_bytes", stage="asr") > 50e6
    assert total(now, "voxbus_process_cpu_seconds_total", stage="asr") > 0
    # vad's outbox depth is exported (its value is whatever is queued at that beat: the shared stack is busy)
    assert any(found.get("stage") == "vad" and found.get("name") == "outbox_depth"
               for found, _ in now.get("voxbus_heartbeat_value", [])), now.get("voxbus_heartbeat_value")


def test_dashboard_uses_only_exported_metrics(stack):
    exported = set(scrape(stack))
    board = json.loads(DASHBOARD.read_text())
    exprs = [t["expr"] for panel in board["panels"] for t in panel.get("targets", [])]
    assert len(exprs) >= 10 and board["title"]
    used = {name for expr in exprs for name in re.findall(r"\bvoxbus_[a-z_]+", expr)}
    assert used and not used - exported, sorted(used - exported)


def test_keys_made_with_the_cli_guard_the_running_stack(stack, stack_key):
    assert httpx.get(f"{stack.http}/v1/models").status_code == 200  # no key yet: open (loopback, "auto")
    admin = stack_key("ops", "admin")
    talk = stack_key("mic", "transcribe")
    refused = httpx.get(f"{stack.http}/v1/models", headers={"x-request-id": "e2e-trace-1"})
    assert refused.status_code == 401 and refused.json()["error"]["request_id"] == "e2e-trace-1"
    assert httpx.get(f"{stack.http}/metrics", headers={"authorization": f"Bearer {talk}"}).status_code == 403
    assert total(scrape(stack, {"x-api-key": admin}), "voxbus_stage_up", stage="asr") >= 1
    assert httpx.get(f"{stack.http}/health").json() == {"status": "ok"}
    assert "stages" in httpx.get(f"{stack.http}/health", headers={"x-api-key": admin}).json()

    client = openai.OpenAI(base_url=f"{stack.http}/v1", api_key=talk, max_retries=0)
    with open(live.EVAL_DIR / "asr/jfk/jfk.flac", "rb") as f:
        assert "country" in client.audio.transcriptions.create(model="whisper-1", file=f).text.lower()
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=f"{stack.http}/v1", api_key="sk-wrong", max_retries=0).models.list()

    closed = asyncio.run(_stream_close(f"{stack.ws}/stream"))
    assert closed == (4401, "unauthorized")
    assert asyncio.run(_stream_close(f"{stack.ws}/stream", subprotocols=["voxbus", f"voxbus-key.{talk}"])) \
        == (None, "ready")

    stack_key.revoke("mic")
    assert httpx.get(f"{stack.http}/v1/models", headers={"x-api-key": talk}).status_code == 401  # no restart
    assert wait_for(lambda: "e2e-trace-1" in stack.log("gateway", tail=200000), 10), "request id not logged"
    line = next(json.loads(x) for x in stack.log("gateway", tail=200000).splitlines() if "e2e-trace-1" in x)
    assert line["request_id"] == "e2e-trace-1" and talk not in stack.log("gateway", tail=200000)


async def _stream_close(url: str, subprotocols=None) -> tuple[int | None, str]:
    """(close code, reason) of a refused session, or (None, first event type) of an accepted one."""
    import websockets

    async with websockets.connect(url, subprotocols=subprotocols) as ws:
        first = json.loads(await ws.recv())
        if first["type"] == "ready":
            assert ws.subprotocol == "voxbus"
            return None, "ready"
        try:
            await asyncio.wait_for(ws.recv(), 10)
        except websockets.ConnectionClosed:
            pass
        return ws.close_code, ws.close_reason
