"""/health and /model/info: the rule (bus, vad, one asr with a loaded model) and its messages."""
from __future__ import annotations

import time

from bus import schemas
from bus.status import HealthTable
from gateway import health
from tests.gateway.conftest import ScriptedPipeline
from tests.gateway.helpers import until


def beat(stage, instance="", model_loaded=None, model="", onnxruntime="", **status):
    typed = None if model_loaded is None else {"name": model, "loaded": model_loaded, "runtime": onnxruntime,
                                                **status}
    return schemas.Heartbeat(stage=stage, pid=1, host="h", uptime_s=1.0, ok=True, instance=instance or stage,
                             model=typed)


def test_rule_needs_bus_vad_and_a_loaded_asr():
    table = HealthTable()
    assert health.missing(table, 0.0, 3.0) == ["bus (no heartbeat in 3 s)", "vad (no heartbeat in 3 s)",
                                               "asr (no heartbeat in 3 s)"]
    table.see(beat("bus"), 0.0)
    table.see(beat("vad"), 0.0)
    table.see(beat("asr", "a1", model_loaded=False), 0.0)
    assert health.missing(table, 1.0, 3.0) == ["asr with a loaded model (1 worker(s) heard, status: ok)"]
    table.see(beat("asr", "a2", model_loaded=True, model="base-int8", precision="int8", threads=3), 1.0)
    assert health.report(table, 2.0, 3.0)[0]
    assert health.missing(table, 3.5, 3.0) == ["bus (no heartbeat in 3 s)", "vad (no heartbeat in 3 s)"]


def test_model_info_prefers_loaded_workers():
    table = HealthTable()
    table.see(beat("asr", "a1", model_loaded=False), 0.0)
    table.see(beat("asr", "a2", model_loaded=True, model="base-int8", precision="int8", threads=3,
                   onnxruntime="1.2.3"), 0.0)
    info = health.model_info(table, 1.0, 3.0)
    assert (info["model"], info["precision"], info["threads"], info["onnxruntime"]) == ("base-int8", "int8", 3, "1.2.3")
    assert info["workers_seen"] == 2 and info["sample_rate"] == 16000
    # No worker heard: no version to report (the gateway's own onnxruntime says nothing about the workers').
    assert health.model_info(HealthTable(), 0.0, 3.0)["onnxruntime"] is None


def test_health_endpoint_follows_the_heartbeats(make_client, base_cfg):
    with make_client(healthy=False) as c:
        first = c.get("/health")
        assert first.status_code == 503
        assert any(m.startswith("vad") for m in first.json()["missing"])
        peer = ScriptedPipeline(base_cfg, heartbeat_as=("asr",), model_loaded=False)
        peer.start()
        try:
            assert until(lambda: "asr" in c.get("/health").json()["stages"]), c.get("/health").json()
            body = c.get("/health").json()
            assert body["status"] == "unavailable"
            assert "vad (no heartbeat in 3 s)" in body["missing"]
            assert any(m.startswith("asr with a loaded model") for m in body["missing"])
            assert c.get("/").json()["status"] == "degraded"
            assert c.get("/model/info").json()["workers"][0]["model_loaded"] is False
        finally:
            peer.stop()


def _gateway_heartbeat(sub, predicate, timeout: float = 20.0):
    deadline, last = time.monotonic() + timeout, None
    while time.monotonic() < deadline:
        if sub.poll(100):
            msg = schemas.unpack(sub.recv_multipart())
            if isinstance(msg, schemas.Heartbeat) and msg.stage == "gateway":
                if predicate(msg):
                    return msg
                last = msg
    raise AssertionError(f"no such gateway heartbeat within {timeout:g} s; the last one: {last}")


def test_a_dead_receive_task_turns_heartbeat_and_health_red(make_client, base_cfg, pipeline):
    """The receive loop's socket fails under it: the gateway is deaf, and says so instead of ok=True."""
    import zmq
    from bus import sockets

    ctx = zmq.Context()
    sub = sockets.subscriber(ctx, base_cfg.bus, [b"health/gateway/"])
    try:
        with make_client() as c:
            bridge = c.app_state["bridge"]
            assert _gateway_heartbeat(sub, lambda hb: hb.ok).status == "ok"

            async def break_the_socket():
                bridge.sub.close(linger=0)  # what a zmq failure under recv looks like

            c.portal.call(break_the_socket)
            beat = _gateway_heartbeat(sub, lambda hb: not hb.ok)
            assert beat.status.startswith("task died: bus-receive (") and "heartbeat" not in beat.status
            health = c.get("/health")
            assert health.status_code == 503
            assert any(m.startswith("gateway (task died: bus-receive") for m in health.json()["missing"])
    finally:
        sub.close(linger=0)
        ctx.term()


def test_one_bad_message_does_not_kill_the_receive_loop(make_client, base_cfg, pipeline, monkeypatch):
    from gateway.router import Router
    original = Router.route
    broken = []

    def route_but_fail_once(self, msg, now):
        if not broken and isinstance(msg, schemas.Heartbeat):
            broken.append(msg)
            raise KeyError("a bug")
        return original(self, msg, now)

    monkeypatch.setattr(Router, "route", route_but_fail_once)
    with make_client() as c:
        assert broken and c.get("/health").status_code == 200
        assert c.app_state["bridge"].router.counters["route_errors"] == 1
        assert not c.app_state["bridge"].dead_tasks()
