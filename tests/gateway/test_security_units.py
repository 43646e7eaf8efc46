"""The pure parts of issue 14: the keys file, rate windows, host readings, metric observations; and the
two command lines (`voxbus keys`, the gateway refusing a public bind without keys)."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from bus import schemas
from bus.status import HealthTable
from gateway import access, host_stats, keys, metrics
from gateway.rate_limits import Limiter, Sessions, Window
from tests.conftest import REPO, find_free_port


def test_keys_are_stored_hashed_and_found_in_constant_time(tmp_path):
    path = tmp_path / "k" / "keys.json"
    secret = keys.add_key(path, "pi", ("transcribe", "read"))
    text = path.read_text()
    assert secret.startswith("vbk_") and len(secret) > 40 and secret not in text
    assert keys.digest(secret) in text and oct(path.stat().st_mode & 0o777) == "0o600"
    store = keys.KeyStore(path)
    assert store.find(secret).name == "pi" and store.find(secret + "x") is None and store.find("") is None
    assert store.find(secret).grants() == {"transcribe", "read", "metrics"}
    with pytest.raises(keys.KeyFileError, match="exists already"):
        keys.add_key(path, "pi", ("read",))
    with pytest.raises(keys.KeyFileError, match="key name"):
        keys.add_key(path, "no spaces", ("read",))
    with pytest.raises(keys.KeyFileError, match="expected a comma-separated list"):
        keys.parse_scopes("read,root")
    keys.revoke_key(path, "pi")
    store.reload()
    assert store.find(secret) is None and not store.any
    again = keys.add_key(path, "pi", ("admin",))  # the name is free again after a revoke
    store.reload()
    assert store.find(again).grants() == set(keys.SCOPES)
    path.write_text("{not json")
    with pytest.raises(keys.KeyFileError, match="cannot be read"):
        store.reload()
    store.reload()  # said once per change of the file, not on every request
    assert store.find(again) is not None  # a broken file leaves the keys in force as they were


def test_auth_modes(tmp_path, base_cfg):
    import dataclasses

    store = keys.KeyStore(tmp_path / "keys.json")
    auto = access.Access(base_cfg.auth, store)
    assert not auto.enforced() and auto.principal({"sk-anything"}) is access.OPEN
    keys.add_key(store.path, "a", ("read",))
    store.reload()
    assert auto.enforced() and auto.principal(set()) is access.ANONYMOUS
    with pytest.raises(access.Unauthorized):
        auto.principal({"vbk_wrong"})
    none = access.Access(dataclasses.replace(base_cfg.auth, mode="none"), store)
    assert not none.enforced()
    forced = access.Access(dataclasses.replace(base_cfg.auth, mode="keys"), keys.KeyStore(tmp_path / "empty.json"))
    assert forced.enforced() and forced.principal(set()) is access.ANONYMOUS


def test_presented_keys_and_the_query_parameter_removed():
    headers = {"authorization": "Bearer k1", "x-api-key": "k1", "sec-websocket-protocol": "voxbus, voxbus-key.k1"}
    assert access.presented_keys(headers, [("api_key", "k1")]) == {"k1"}
    assert access.presented_keys({"authorization": "Basic abc"}, []) == set()
    query, pairs = access.without_key(b"language=en&api_key=secret&task=transcribe")
    assert query == b"language=en&task=transcribe" and ("api_key", "secret") in pairs
    assert access.without_key(b"stream=a%2Fb")[0] == b"stream=a%2Fb"  # untouched unless a key is in it
    assert access.chosen_subprotocol(headers) == "voxbus"
    assert access.chosen_subprotocol({}) is None


def test_window_trips_and_recovers():
    window = Window(3, span_s=60)
    for t in (0, 10, 20):
        assert window.retry_after("a", t) is None
        window.charge("a", 1, t)
    assert window.retry_after("a", 30) == pytest.approx(30)  # the first request leaves the window at 60
    assert window.retry_after("b", 30) is None                # another caller has its own window
    assert window.retry_after("a", 60.5) is None
    audio = Window(10.0)
    audio.charge("a", 25.0, 0)                                 # one long upload: over until it leaves
    assert audio.retry_after("a", 1) == pytest.approx(59)
    assert Window(0).retry_after("a", 0) is None               # 0 = no limit
    sessions = Sessions(1)
    assert sessions.acquire("a") and not sessions.acquire("a") and sessions.acquire("b")
    sessions.release("a")
    assert sessions.acquire("a") and sessions.open == {"a": 1, "b": 1}


def test_limiter_identities(base_cfg):
    limiter = Limiter(base_cfg.limits)
    assert limiter.caller("ops", "10.0.0.9", loopback=False) == "key:ops"
    assert limiter.caller(None, "10.0.0.9", loopback=False) == "addr:10.0.0.9"
    assert limiter.caller(None, "127.0.0.1", loopback=True) is None


def test_host_readings_from_a_fake_board(tmp_path):
    zone = tmp_path / "thermal" / "thermal_zone0"
    zone.mkdir(parents=True)
    (zone / "temp").write_text("61234\n")
    (zone / "type").write_text("cpu-thermal\n")
    (tmp_path / "thermal" / "thermal_zone1").mkdir()  # no readings: skipped
    assert host_stats.temperatures(tmp_path / "thermal") == {("thermal_zone0", "cpu-thermal"): 61.234}
    throttle = tmp_path / "get_throttled"
    throttle.write_text("0x50005\n")  # under-voltage and throttled now; both since boot
    flags = host_stats.throttling(throttle)
    assert flags["under_voltage"] == (True, True) and flags["throttled"] == (True, True)
    assert flags["frequency_capped"] == (False, False)
    assert host_stats.throttling(tmp_path / "absent") is None
    freq = tmp_path / "cpu" / "cpu0" / "cpufreq"
    freq.mkdir(parents=True)
    (freq / "scaling_cur_freq").write_text("600000")
    (freq / "cpuinfo_max_freq").write_text("1500000")
    assert host_stats.frequencies(tmp_path / "cpu") == {"cpu0": (600e6, 1500e6)}
    rss, cpu = host_stats.process(os.getpid())
    assert rss > 10e6 and cpu > 0 and host_stats.process(2 ** 22 + 7) is None


def _heartbeat(stage, instance, host="h", counters=None, model=None):
    return schemas.Heartbeat(stage=stage, pid=1, host=host, uptime_s=1.0, ok=True, instance=instance,
                             counters=counters or {}, model=model)


def test_observations_and_restarts():
    table = HealthTable()
    observed = metrics.Metrics(table, lambda: 3.0, clock=lambda: 110.5)
    asr = _heartbeat("asr", "w1", counters={"segments_done": 4, "queue_depth": 2, "history": "tcp://x"},
                     model={"name": "tiny.en-int8", "loaded": True})
    for msg in (asr, _heartbeat("vad", "v1", counters={"outbox_depth": 1, "per_stream": {"mic": {"x": 1}}})):
        table.see(msg, 100.0)
        observed.observations.observe(msg, 100.0)
    observed.observations.observe(schemas.SpeechStart(stream="mic", utt=0, offset=0), 100.0)
    observed.observations.observe(schemas.Partial(utt=0, text="a", start=0.0, end=1.0, stream="mic", worker="w1",
                                                  encode_ms=50.0, decode_ms=30.0), 100.4)
    observed.observations.observe(schemas.Final(utt=0, text="a b", start=0.0, end=2.0, stream="mic", worker="w1",
                                                encode_ms=80.0, decode_ms=40.0, ts_end_of_speech=1.0), 101.0)
    lives = observed.observations.lives
    lives.see(_heartbeat("vad", "v2"), 104.0)  # v1 fell silent, v2 on the same host beats: a restart
    lives.update(104.5, 3.0)
    assert lives.restarts["vad"] == 1
    lives.see(_heartbeat("asr", "w1"), 110.0)  # the same instance back after a stall: no restart
    lives.update(110.0, 3.0)
    assert lives.restarts["asr"] == 0
    table.see(asr, 110.0)
    samples = {}
    for family in text_string_to_metric_families(generate_latest(observed.registry).decode()):
        for s in family.samples:
            samples[(s.name, tuple(sorted(s.labels.items())))] = s.value
    assert samples[("voxbus_first_partial_latency_seconds_count", (("model", "tiny.en-int8"),))] == 1
    assert samples[("voxbus_first_partial_latency_seconds_sum", (("model", "tiny.en-int8"),))] == pytest.approx(0.4)
    assert samples[("voxbus_final_latency_seconds_count", (("model", "tiny.en-int8"),))] == 1
    assert samples[("voxbus_asr_real_time_factor_count", (("kind", "final"),))] == 1
    assert samples[("voxbus_asr_real_time_factor_sum", (("kind", "final"),))] == pytest.approx(0.06)
    assert samples[("voxbus_asr_segments_total", (("instance", "w1"), ("kind", "final")))] == 4
    assert samples[("voxbus_asr_queue_depth", (("instance", "w1"),))] == 2
    assert samples[("voxbus_heartbeat_value", (("instance", "w1"), ("name", "queue_depth"), ("stage", "asr")))] == 2
    assert samples[("voxbus_stage_restarts_total", (("stage", "vad"),))] == 1


def test_keys_command_line(tmp_path):
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("VOXBUS_")}, "VOXBUS_DATA_DIR": str(tmp_path)}

    def voxbus(*args):
        return subprocess.run([sys.executable, "-m", "cli", "keys", *args], env=env, cwd=REPO, capture_output=True,
                              text=True, timeout=60)
    added = voxbus("add", "kitchen", "--scopes", "transcribe,read")
    assert added.returncode == 0 and added.stdout.startswith("vbk_") and "shown only now" in added.stderr
    listed = voxbus("list")
    assert "kitchen" in listed.stdout and "transcribe,read" in listed.stdout
    assert added.stdout.strip() not in listed.stdout
    assert voxbus("revoke", "kitchen").returncode == 0
    again = voxbus("revoke", "kitchen")
    assert again.returncode == 1 and again.stderr.count("\n") == 1 and "no active key" in again.stderr
    assert voxbus("add", "x", "--scopes", "root").returncode == 1
    assert voxbus("frobnicate").returncode == 2
    saved = json.loads((tmp_path / "keys.json").read_text())
    assert saved["keys"][0]["revoked"] is not None


def test_gateway_refuses_a_public_bind_without_keys(tmp_path):
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("VOXBUS_")}, "VOXBUS_RUN_DIR": str(tmp_path),
           "VOXBUS_DATA_DIR": str(tmp_path / "data"), "VOXBUS_GATEWAY__HOST": "0.0.0.0",
           "VOXBUS_GATEWAY__PORT": str(find_free_port()), "VOXBUS_WYOMING__ENABLED": "false"}
    done = subprocess.run([sys.executable, "-m", "gateway"], env=env, cwd=REPO, capture_output=True, text=True,
                          timeout=60)
    last = done.stderr.strip().splitlines()[-1]
    assert done.returncode == 1 and last.startswith("voxbus-gateway: gateway.host = '0.0.0.0'"), done.stderr
    assert "voxbus keys add" in last and 'auth.mode = "none"' in last


def test_voxbus_up_says_it_before_starting_anything(tmp_path):
    """supervisord would restart a refusing gateway forever while `voxbus up` reported success."""
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("VOXBUS_")},
           "VOXBUS_RUN_DIR": str(tmp_path / "run"), "VOXBUS_DATA_DIR": str(tmp_path / "data"),
           "VOXBUS_WYOMING__HOST": "0.0.0.0"}
    done = subprocess.run([sys.executable, "-m", "cli", "up"], env=env, cwd=REPO, capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 1 and done.stderr.count("\n") == 1, done.stderr
    assert done.stderr.startswith("voxbus up: error: wyoming.host = '0.0.0.0'") and "wyoming_unauthenticated" in done.stderr
    assert not (tmp_path / "run").exists()  # nothing started, not even the run dir
