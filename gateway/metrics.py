"""GET /metrics: the whole pipeline in the Prometheus text format, made by prometheus_client.

Two sources, both already at the gateway:
- every stage's newest heartbeat (health/<stage>/, with its counters), read at scrape time by
  `PipelineCollector`: stage up and restarts, bus messages by family, asr segments, queue and
  partials superseded, vad outbox depth and drops, store inserts and lag, webhook failures,
  sessions and jobs, each process's RSS and CPU (same host: /proc), the board's temperature,
  throttling and clock (gateway/host_stats.py);
- the transcripts and vad events the gateway receives anyway, observed by `Observations` into
  histograms: encode and decode time, real-time factor, live final latency and first-partial
  latency per model.
Each app has its own registry, so several gateways in one process (tests) never share one.
"""
from __future__ import annotations

import socket
import time
from collections import Counter, OrderedDict
from typing import Callable

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from starlette.requests import Request
from starlette.responses import Response

from bus import schemas
from bus.status import HealthTable
from config.cores import STAGES
from gateway import host_stats

LATENCY_BUCKETS = (0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0, 30.0)
STEP_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.2, 0.35, 0.5, 1.0, 2.0, 5.0, 10.0)
RTF_BUCKETS = (0.02, 0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 1.5, 2.0, 5.0)
OPEN_UTTERANCES_MAX = 4096  # speech starts waiting for their first partial; the oldest are forgotten


class Observations:
    """Histograms fed by the bus messages the gateway's router sees (call `observe` for each)."""

    def __init__(self, registry: CollectorRegistry, health: HealthTable):
        self.health = health
        self.encode = Histogram("voxbus_asr_encode_seconds", "asr encoder time per transcript", ["kind"],
                                buckets=STEP_BUCKETS, registry=registry)
        self.decode = Histogram("voxbus_asr_decode_seconds", "asr decoder time per transcript", ["kind"],
                                buckets=STEP_BUCKETS, registry=registry)
        self.rtf = Histogram("voxbus_asr_real_time_factor", "asr (encode + decode) time / audio length",
                             ["kind"], buckets=RTF_BUCKETS, registry=registry)
        self.final_latency = Histogram(
            "voxbus_final_latency_seconds", "live final: its arrival at the gateway after vad received the "
            "utterance's last voiced frame (the endpointing wait included)",
            ["model"], buckets=LATENCY_BUCKETS, registry=registry)
        self.first_partial = Histogram(
            "voxbus_first_partial_latency_seconds", "live utterance: first partial after vad's speech_start "
            "(both as the gateway receives them)", ["model"], buckets=LATENCY_BUCKETS, registry=registry)
        self.started: OrderedDict[tuple[str, int], float] = OrderedDict()
        self.lives = StageLives()

    def observe(self, msg: schemas.Message, now: float) -> None:
        if isinstance(msg, schemas.Heartbeat):
            self.lives.see(msg, now)
        elif isinstance(msg, schemas.SpeechStart):
            self.started[(msg.stream, msg.utt)] = now
            while len(self.started) > OPEN_UTTERANCES_MAX:
                self.started.popitem(last=False)
        elif isinstance(msg, schemas.Transcript):
            self._transcript(msg, now)

    def _transcript(self, msg: schemas.Transcript, now: float) -> None:
        kind = "job" if msg.job is not None else msg.kind
        self.encode.labels(kind).observe(msg.encode_ms / 1000.0)
        self.decode.labels(kind).observe(msg.decode_ms / 1000.0)
        if msg.end > msg.start:
            self.rtf.labels(kind).observe((msg.encode_ms + msg.decode_ms) / 1000.0 / (msg.end - msg.start))
        if msg.stream is None:
            return
        started = self.started.pop((msg.stream, msg.utt), None)
        if msg.kind == "partial" and started is not None:
            self.first_partial.labels(self.model_of(msg.worker)).observe(now - started)
        if msg.kind == "final" and msg.ts_end_of_speech:
            self.final_latency.labels(self.model_of(msg.worker)).observe(max(0.0, time.time() - msg.ts_end_of_speech))

    def model_of(self, worker: str) -> str:
        for row in self.health.rows():
            hb = row.heartbeat
            if hb.stage == "asr" and hb.instance == worker and (model := hb.model_status()) is not None:
                return model.name
        return "unknown"


class StageLives:
    """Restarts seen from heartbeats: an instance that fell silent while a newer one of the same stage
    on the same host beats. A stall (the same instance back) or a worker that left is no restart."""

    def __init__(self):
        self.lives: dict[tuple[str, str], list] = {}  # (stage, instance) → [host, first seen, last seen]
        self.restarts: Counter = Counter()

    def see(self, hb: schemas.Heartbeat, now: float) -> None:
        life = self.lives.setdefault((hb.stage, hb.instance), [hb.host, now, now])
        life[2] = now

    def update(self, now: float, timeout: float) -> None:
        for (stage, instance), (host, first, last) in list(self.lives.items()):
            if now - last <= timeout:
                continue
            if any(s == stage and h == host and f > first and now - l <= timeout
                   for (s, _), (h, f, l) in self.lives.items()):
                self.restarts[stage] += 1
                del self.lives[(stage, instance)]


def _numbers(counters: dict, prefix: str = "") -> dict[str, float]:
    """A heartbeat's numeric counters, nested maps flattened one level (`outer_inner`)."""
    out = {}
    for key, value in counters.items():
        if isinstance(value, bool):
            out[prefix + key] = float(value)
        elif isinstance(value, (int, float)):
            out[prefix + key] = float(value)
        elif isinstance(value, dict) and not prefix:
            out.update(_numbers(value, f"{key}_"))
    return out


# Named series from heartbeat counters: (metric, help, stage, counter key, is a counter, extra labels).
HEARTBEAT_SERIES = (
    ("voxbus_asr_segments", "asr transcripts made", "asr", "segments_done", True, {"kind": "final"}),
    ("voxbus_asr_segments", "asr transcripts made", "asr", "partials_done", True, {"kind": "partial"}),
    ("voxbus_asr_partials_superseded", "partials dropped for a newer one", "asr", "partials_superseded", True, {}),
    ("voxbus_asr_errors", "asr errors answered", "asr", "errors", True, {}),
    ("voxbus_asr_queue_depth", "segments waiting in asr", "asr", "queue_depth", False, {}),
    ("voxbus_asr_in_flight", "segments being decoded", "asr", "in_flight", False, {}),
    ("voxbus_vad_outbox_depth", "segments waiting for an asr worker", "vad", "outbox_depth", False, {}),
    ("voxbus_vad_outbox_dropped", "segments dropped over vad.outbox_max_mb", "vad", "outbox_dropped_partials",
     True, {"kind": "partial"}),
    ("voxbus_vad_outbox_dropped", "segments dropped over vad.outbox_max_mb", "vad", "outbox_dropped_finals",
     True, {"kind": "final"}),
    ("voxbus_store_inserts", "finals written to the store", "store", "stored", True, {}),
    ("voxbus_store_pending_finals", "finals received, not yet committed", "store", "pending", False, {}),
    ("voxbus_store_missing_finals", "finals known missing, being fetched", "store", "missing", False, {}),
    ("voxbus_store_lost_finals", "finals given up on", "store", "lost", True, {}),
    ("voxbus_webhook_failures", "webhook attempts that failed", "store", "webhook_failures", True, {}),
    ("voxbus_webhook_dead_letters", "alerts whose webhook gave up", "store", "webhook_dead_letters", True, {}),
    ("voxbus_sessions_active", "open /stream and Wyoming sessions", "gateway", "sessions_active", False, {}),
    ("voxbus_sessions_refused", "sessions refused at gateway.max_sessions", "gateway", "sessions_refused",
     True, {}),
    ("voxbus_jobs_active", "file jobs in progress", "gateway", "jobs_active", False, {}),
    ("voxbus_jobs_refused", "file jobs refused at gateway.max_jobs", "gateway", "jobs_refused", True, {}),
    ("voxbus_http_refused", "requests refused by the guard", "gateway", "refused_401", True, {"status": "401"}),
    ("voxbus_http_refused", "requests refused by the guard", "gateway", "refused_403", True, {"status": "403"}),
    ("voxbus_http_refused", "requests refused by the guard", "gateway", "refused_429", True, {"status": "429"}),
)
BUS_FAMILIES = (*schemas.TOPIC_FAMILIES, "other")  # what the bus counts (bus/proxy.py ForwardStats)


class PipelineCollector:
    """Reads the health table (and this host) at each scrape; registered in the app's registry."""

    def __init__(self, health: HealthTable, lives: StageLives, timeout_s: Callable[[], float],
                 clock: Callable[[], float] = time.monotonic):
        self.health = health
        self.lives = lives
        self.timeout_s = timeout_s
        self.clock = clock  # the health table's clock
        self.host = socket.gethostname()

    def describe(self):
        return []  # names vary with the stages heard; without this the registry would scrape once to learn them

    def collect(self):
        now = self.clock()
        timeout = self.timeout_s()
        rows = self.health.fresh(now, timeout)
        self.lives.update(now, timeout)
        yield from self._stages(rows)
        yield from self._named(rows)
        yield from self._bus(rows)
        yield from self._processes(rows)
        yield from self._board()
        generic = GaugeMetricFamily("voxbus_heartbeat_value", "every numeric counter of every stage's newest "
                                    "heartbeat", labels=["stage", "instance", "name"])
        for row in rows:
            for name, value in _numbers(row.heartbeat.counters).items():
                generic.add_metric([row.heartbeat.stage, row.heartbeat.instance, name], value)
        yield generic

    def _stages(self, rows):
        up = GaugeMetricFamily("voxbus_stage_up", "instances of the stage heard within "
                               "bus.heartbeat_timeout_s and saying ok", labels=["stage"])
        restarts = CounterMetricFamily("voxbus_stage_restarts", "instances replaced by a new one since the "
                                       "gateway started", labels=["stage"])
        for stage in sorted(set(STAGES) | {r.heartbeat.stage for r in rows}):
            up.add_metric([stage], sum(1 for r in rows if r.heartbeat.stage == stage and r.heartbeat.ok))
            restarts.add_metric([stage], self.lives.restarts[stage])
        return [up, restarts]

    def _named(self, rows):
        families: dict[str, GaugeMetricFamily | CounterMetricFamily] = {}
        for name, help_, stage, key, counter, extra in HEARTBEAT_SERIES:
            family = families.get(name)
            if family is None:
                kind = CounterMetricFamily if counter else GaugeMetricFamily
                family = families[name] = kind(name, help_, labels=["instance", *extra])
            for row in rows:
                value = row.heartbeat.counters.get(key) if row.heartbeat.stage == stage else None
                if isinstance(value, (int, float)):
                    family.add_metric([row.heartbeat.instance, *extra.values()], value)
        return list(families.values())

    def _bus(self, rows):
        messages = CounterMetricFamily("voxbus_bus_messages", "messages the bus forwarded, by topic family",
                                       labels=["family"])
        for row in rows:
            if row.heartbeat.stage == "bus":
                for family in BUS_FAMILIES:
                    messages.add_metric([family], row.heartbeat.counters.get(f"forwarded_{family}", 0))
        return [messages]

    def _processes(self, rows):
        rss = GaugeMetricFamily("voxbus_process_resident_memory_bytes", "resident memory of each stage's "
                                "process (on the gateway's host)", labels=["stage", "instance"])
        cpu = CounterMetricFamily("voxbus_process_cpu_seconds", "CPU time (user + system) of each stage's "
                                  "process (on the gateway's host)", labels=["stage", "instance"])
        for row in rows:
            hb = row.heartbeat
            found = host_stats.process(hb.pid) if hb.host == self.host else None
            if found is not None:
                rss.add_metric([hb.stage, hb.instance], found[0])
                cpu.add_metric([hb.stage, hb.instance], found[1])
        return [rss, cpu]

    def _board(self):
        temp = GaugeMetricFamily("voxbus_cpu_temperature_celsius", "thermal zones (/sys/class/thermal)",
                                 labels=["zone", "type"])
        for (zone, kind), celsius in host_stats.temperatures().items():
            temp.add_metric([zone, kind], celsius)
        throttled = GaugeMetricFamily("voxbus_cpu_throttled", "the Pi firmware's throttle flags (1 = on); "
                                      "since=boot: it happened since boot", labels=["flag", "since"])
        for flag, (now_, ever) in (host_stats.throttling() or {}).items():
            throttled.add_metric([flag, "now"], float(now_))
            throttled.add_metric([flag, "boot"], float(ever))
        freq = GaugeMetricFamily("voxbus_cpu_frequency_hertz", "cpufreq clock", labels=["cpu", "which"])
        for cpu, (current, peak) in host_stats.frequencies().items():
            freq.add_metric([cpu, "current"], current)
            freq.add_metric([cpu, "max"], peak)
        return [temp, throttled, freq]


class Metrics:
    """The app's registry with both sources in it."""

    def __init__(self, health: HealthTable, timeout_s: Callable[[], float],
                 clock: Callable[[], float] = time.monotonic):
        self.registry = CollectorRegistry()
        self.observations = Observations(self.registry, health)
        self.registry.register(PipelineCollector(health, self.observations.lives, timeout_s, clock))

    def render(self) -> bytes:
        return generate_latest(self.registry)


async def metrics_endpoint(request: Request) -> Response:
    return Response(request.state.metrics.render(), media_type=CONTENT_TYPE_LATEST)
