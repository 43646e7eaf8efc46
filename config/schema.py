"""Typed configuration: one frozen dataclass per section.

Field metadata carries what validation allows: `choices`, `min`, `max`, and
`kind` ("endpoint", "cores") for values with their own grammar. A stage receives
its own section object, never a dict.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from config.names import TASKS

Cores = tuple[int, ...] | str  # "auto" or explicit core ids


def _f(default, **meta):
    if isinstance(default, list):
        return field(default_factory=lambda: tuple(default), metadata=meta)
    return field(default=default, metadata=meta)


@dataclass(frozen=True)
class RunConfig:
    dir: str = _f("")
    log_dir: str = _f("")
    log_level: str = _f("info", choices=("debug", "info", "warning", "error"))
    models_dir: str = _f("")


@dataclass(frozen=True)
class BusConfig:
    publish: str = _f("ipc://{run_dir}/bus-publish", kind="endpoint")
    subscribe: str = _f("ipc://{run_dir}/bus-subscribe", kind="endpoint")
    pub_hwm: int = _f(20000, min=1)
    sub_hwm: int = _f(20000, min=1)
    push_hwm: int = _f(1, min=1)
    linger_ms: int = _f(1000, min=0)
    reconnect_ivl_ms: int = _f(100, min=1)
    reconnect_ivl_max_ms: int = _f(5000, min=0)
    heartbeat_interval_s: float = _f(1.0, min=0.05, max=60.0)
    heartbeat_timeout_s: float = _f(3.0, min=0.1, max=600.0)
    # Scale out (issue 18): remote asr workers publish here (an extra bind of the bus's XSUB side);
    # every tcp endpoint is CURVE-encrypted with keys from curve_dir unless plain_tcp
    remote_publish: str = _f("", kind="endpoint", optional=True)
    curve_dir: str = _f("")
    plain_tcp: bool = _f(False)
    # continuity across a vad restart (bus/replay.py): audio a source keeps until vad acknowledges it
    replay_buffer_s: float = _f(60.0, min=1.0, max=3600.0)


@dataclass(frozen=True)
class CoresConfig:
    bus: Cores = _f("auto", kind="cores")
    capture: Cores = _f("auto", kind="cores")
    vad: Cores = _f("auto", kind="cores")
    asr: Cores = _f("auto", kind="cores")
    gateway: Cores = _f("auto", kind="cores")
    store: Cores = _f("auto", kind="cores")
    speaker: Cores = _f("auto", kind="cores")  # "auto": the light stages' core, never asr's


@dataclass(frozen=True)
class SourceConfig:
    stream: str = _f("", kind="stream")
    kind: str = _f("alsa", choices=("alsa", "ffmpeg", "file"))
    device: str = _f("default")
    url: str = _f("")
    path: str = _f("")
    realtime: bool = _f(True)
    sample_rate: int = _f(16000, min=4000, max=384000)
    channels: int = _f(1, min=1, max=64)
    channel: int = _f(-1, min=-1, max=63)
    period_frames: int = _f(320, min=16, max=65536)
    language: str = _f("auto")
    task: str = _f("transcribe", choices=TASKS)
    partials: bool = _f(True)
    stall_timeout_s: float = _f(10.0, min=0.5, max=3600.0)
    model: str = _f("")  # the served model its segments go to; "" = asr.model


@dataclass(frozen=True)
class CaptureConfig:
    frame_ms: int = _f(20, choices=(10, 20, 30, 40, 50, 100))
    open_every_s: float = _f(5.0, min=0.1, max=3600.0)
    sources: tuple[SourceConfig, ...] = _f([])


@dataclass(frozen=True)
class VadConfig:
    jobs: str = _f("ipc://{run_dir}/vad-jobs", kind="endpoint")
    segments: str = _f("ipc://{run_dir}/vad-segments", kind="endpoint")
    aggressiveness: int = _f(2, min=0, max=3)
    frame_ms: int = _f(30, choices=(10, 20, 30))
    start_window_ms: int = _f(300, min=30, max=2000)
    start_ratio: float = _f(0.6, min=0.05, max=1.0)
    pre_roll_ms: int = _f(300, min=0, max=2000)
    tail_ms: int = _f(150, min=0, max=2000)
    end_silence_ms: int = _f(800, min=100, max=10000)
    min_speech_ms: int = _f(250, min=0, max=5000)
    max_utterance_s: float = _f(30.0, min=2.0, max=30.0)
    partial_interval_ms: int = _f(500, min=100, max=10000)
    first_partial_ms: int = _f(300, min=30, max=10000)
    wordless_partial_interval_ms: int = _f(200, min=30, max=10000)
    speculative_finals: bool = _f(True)
    adaptive_endpointing: bool = _f(True)
    sentence_end_factor: float = _f(0.6, min=0.1, max=1.0)
    open_sentence_factor: float = _f(1.5, min=1.0, max=5.0)
    stream_ttl_s: float = _f(60.0, min=1.0, max=86400.0)
    job_max_segment_s: float = _f(30.0, min=2.0, max=30.0)
    energy_gate_dbfs: float = _f(-100.0, min=-100.0, max=0.0)
    outbox_max_mb: int = _f(256, min=1, max=65536)
    # The segment broker on `segments` (bus/broker.py): workers and broker heartbeat each other
    worker_heartbeat_ms: int = _f(500, min=20, max=60000)
    worker_liveness: int = _f(3, min=1, max=100)
    # Scale out (issue 18): an extra tcp bind of the broker for workers on other hosts (CURVE)
    remote_segments: str = _f("", kind="endpoint", optional=True)
    # continuity across a restart: how long a new vad waits for replaying sources to resend their
    # streams before it takes their audio as it comes, and how often it acknowledges audio
    resume_grace_s: float = _f(3.0, min=0.0, max=60.0)
    ack_interval_ms: int = _f(500, min=50, max=10000)


@dataclass(frozen=True)
class AsrConfig:
    model: str = _f("tiny.en-int8")
    threads: int = _f(0, min=0, max=256)
    parallel: int = _f(0, min=0, max=64)
    reserved_slot: bool = _f(True)
    draft_nice: int = _f(19, min=0, max=19)
    partial_prefix: bool = _f(True)
    draft_encoder: bool = _f(True)
    worker: str = _f("")
    language: str = _f("")
    beam_size: int = _f(1, min=1, max=32)
    best_of: int = _f(5, min=1, max=32)
    patience: float = _f(1.0, min=0.1, max=10.0)
    length_penalty: float = _f(0.0, min=0.0, max=10.0)
    temperatures: tuple[float, ...] = _f([0.0, 0.2, 0.4, 0.6, 0.8, 1.0])
    compression_ratio_threshold: float = _f(2.4, min=0.0, max=100.0)
    logprob_threshold: float = _f(-1.0, min=-100.0, max=0.0)
    no_speech_threshold: float = _f(0.6, min=0.0, max=1.0)
    condition_on_previous_text: bool = _f(True)
    prompt_max_chars: int = _f(200, min=0, max=2000)
    allowed_languages: tuple[str, ...] = _f([])
    word_timestamps: bool = _f(False)
    # Several models (issue 12) and scale out (issue 18)
    models: tuple[str, ...] = _f([])     # every model served, each by its own workers; [] = just `model`
    upload_model: str = _f("")          # the default for file jobs; "" = `model`
    workers: int = _f(1, min=1, max=64)  # asr processes per model under `voxbus up`
    throttle: float = _f(1.0, min=1.0, max=100.0)  # tests/benches: each decode takes this many times as long


@dataclass(frozen=True)
class GatewayConfig:
    host: str = _f("127.0.0.1")
    port: int = _f(8000, min=1, max=65535)
    max_upload_mb: int = _f(100, min=1, max=10000)
    max_audio_s: float = _f(3600.0, min=1.0, max=86400.0)
    job_timeout_s: float = _f(600.0, min=1.0, max=86400.0)
    max_sessions: int = _f(16, min=1, max=10000)
    ws_max_frame_bytes: int = _f(1048576, min=1024)
    ws_idle_timeout_s: float = _f(30.0, min=1.0, max=86400.0)
    ws_ping_interval_s: float = _f(20.0, min=1.0, max=3600.0)
    min_end_silence_ms: int = _f(300, min=100, max=10000)
    max_end_silence_ms: int = _f(2000, min=100, max=10000)
    max_jobs: int = _f(4, min=1, max=1000)
    header_timeout_s: float = _f(10.0, min=0.1, max=3600.0)
    body_timeout_s: float = _f(30.0, min=0.1, max=3600.0)
    body_min_rate_kbps: float = _f(16.0, min=0.1, max=1000000.0)
    job_memory_mb: int = _f(600, min=16, max=100000)
    allowed_origins: tuple[str, ...] = _f([])
    allowed_hosts: tuple[str, ...] = _f([])
    # issue 12 (API fidelity): a file job's deadline grows with its audio
    job_timeout_per_audio_s: float = _f(2.0, min=0.0, max=1000.0)
    # /stream resume (gateway/ws_resume.py)
    resume_window_s: float = _f(300.0, min=0.0, max=86400.0)


@dataclass(frozen=True)
class WyomingConfig:
    enabled: bool = _f(True)
    host: str = _f("127.0.0.1")
    port: int = _f(10300, min=1, max=65535)


@dataclass(frozen=True)
class StoreConfig:
    enabled: bool = _f(True)
    path: str = _f("")
    query: str = _f("ipc://{run_dir}/store-query", kind="endpoint")
    retention_days: float = _f(0.0, min=0.0, max=36500.0)
    retention_rows: int = _f(0, min=0)
    retention_mb: float = _f(0.0, min=0.0, max=10000000.0)
    retention_scope: str = _f("global", choices=("global", "stream"))
    retention_every_s: float = _f(5.0, min=0.1, max=3600.0)
    retention_batch: int = _f(1000, min=1, max=1000000)
    vacuum: str = _f("incremental", choices=("incremental", "none"))
    vacuum_pages: int = _f(512, min=1, max=1000000)
    commit_every_ms: int = _f(100, min=1, max=60000)
    resync_timeout_ms: int = _f(1000, min=10, max=600000)
    resync_batch: int = _f(500, min=1, max=100000)
    query_timeout_ms: int = _f(3000, min=10, max=600000)
    query_retries: int = _f(2, min=0, max=100)
    max_page: int = _f(500, min=1, max=100000)
    alert_keywords: tuple[str, ...] = _f([])
    alert_regex: str = _f("")
    alert_silence_min: float = _f(0.0, min=0.0, max=10080.0)
    webhook_url: str = _f("")
    webhook_secret: str = _f("")
    webhook_timeout_s: float = _f(5.0, min=0.1, max=300.0)
    webhook_retries: int = _f(5, min=0, max=100)


# ---- speaker (diarization, issue 17) -----------------------------------------------------

@dataclass(frozen=True)
class SpeakerConfig:
    enabled: bool = _f(False)
    model: str = _f("speaker-ge2e")
    jobs: str = _f("ipc://{run_dir}/speaker-jobs", kind="endpoint")
    threads: int = _f(1, min=1, max=64)
    threshold: float = _f(0.70, min=-1.0, max=1.0)
    step_s: float = _f(0.4, min=0.1, max=1.6)
    vad_aggressiveness: int = _f(2, min=0, max=3)
    max_speakers: int = _f(20, min=1, max=1000)
    live: bool = _f(False)
    live_buffer_s: float = _f(60.0, min=31.0, max=600.0)
    live_wait_s: float = _f(3.0, min=0.1, max=30.0)  # how long a speakers=true session holds a final for its label
    voices_dir: str = _f("")  # enrolled voices (POST /v1/speakers); "": <data dir>/speakers
    name_threshold: float = _f(0.85, min=-1.0, max=1.0)  # cosine a speaker needs with a voice to take its name


@dataclass(frozen=True)
class AuthConfig:
    mode: str = _f("auto", choices=("auto", "keys", "none"))
    keys_file: str = _f("")
    wyoming_unauthenticated: bool = _f(False)


@dataclass(frozen=True)
class LimitsConfig:
    requests_per_min: int = _f(600, min=0, max=1000000)
    audio_s_per_min: float = _f(1800.0, min=0.0, max=1000000.0)
    ws_sessions: int = _f(8, min=0, max=10000)
    exempt_loopback: bool = _f(True)
    max_body_kb: int = _f(1024, min=1, max=1000000)


@dataclass(frozen=True)
class Config:
    run: RunConfig
    bus: BusConfig
    cores: CoresConfig
    capture: CaptureConfig
    vad: VadConfig
    asr: AsrConfig
    gateway: GatewayConfig
    wyoming: WyomingConfig
    store: StoreConfig
    auth: AuthConfig
    limits: LimitsConfig
    speaker: SpeakerConfig
    source_file: str = ""  # which file, if any, was read over the defaults
    run_dir: str = ""      # resolved run directory
    models_dir: str = ""   # resolved models directory
