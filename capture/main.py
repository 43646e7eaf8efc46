"""The capture process: one SourceWorker thread per configured source, one PUB socket.

Workers hand messages over a queue; this loop publishes them, and beats the
heart with every source's state (`device_missing` among them). On SIGTERM the
workers close their devices and each stream gets a `close`.

The publisher is an XPUB: sources start once the bus has passed it vad's subscription to
ctl/ (or after HANDSHAKE_S without one), so the first `open` is not lost to the slow joiner.
Each stream keeps the audio vad has not acknowledged (bus/replay.py); a SUB on vad/ and
health/vad/ hears vad's acks and heartbeats, and a vad that restarted (or is heard for the
first time) gets every stream's open and unacknowledged audio again.
"""
from __future__ import annotations

import logging
import os
import queue
import stat
import sys
import time
from urllib.parse import urlsplit

from bus import schemas, sockets
from bus.replay import StreamReplay, VadWatch
from bus.stage import StageRuntime, run_stage
from capture.alsa import AlsaReader
from capture.ffmpeg import FfmpegReader, redact_url
from capture.filesrc import FileReader
from capture.worker import SourceWorker
from config.schema import SourceConfig

log = logging.getLogger(__name__)
QUEUE_FRAMES = 5000     # ~100 s of one stream at 20 ms: far more than a PUB send ever lags
HANDSHAKE_S = 5.0       # longest wait for a subscriber of ctl/ before the sources start anyway
MAX_BATCH = 500         # bus messages read per turn
JOIN_S = 3.0


def make_reader(cfg: SourceConfig):
    if cfg.kind == "alsa":
        return AlsaReader(cfg)
    if cfg.kind == "ffmpeg":
        return FfmpegReader(cfg)
    return FileReader(cfg)


def describe(cfg: SourceConfig) -> str:
    """What the source is, safe to log and to put in `open`."""
    if cfg.kind == "alsa":
        return f"alsa:{cfg.device}"
    if cfg.kind == "ffmpeg":
        return f"ffmpeg:{redact_url(cfg.url)}"
    return f"file:{cfg.path}"


def check_sources(sources: tuple[SourceConfig, ...]) -> list[str]:
    """Problems the loader cannot see: duplicate streams, missing url/path."""
    problems, seen = [], set()
    for i, src in enumerate(sources):
        where = f"capture.sources[{i}]"
        if not src.stream:
            problems.append(f"{where}.stream: every source needs a stream id")
        elif src.stream in seen:
            problems.append(f"{where}.stream = {src.stream!r}: used by another source")
        seen.add(src.stream)
        if src.kind == "ffmpeg" and not src.url:
            problems.append(f"{where}.url: an ffmpeg source needs a url")
        if src.kind == "file" and not src.path:
            problems.append(f"{where}.path: a file source needs a path")
        if src.channel >= src.channels:
            problems.append(f"{where}.channel = {src.channel}: the source has {src.channels} channel(s)")
    return problems


def credential_warnings(sources: tuple[SourceConfig, ...], config_file: str) -> list[str]:
    """ffmpeg takes its URL as an argument: credentials in it show in the process list."""
    streams = [s.stream for s in sources if s.kind == "ffmpeg" and _has_userinfo(s.url)]
    if not streams:
        return []
    lines = [f"ffmpeg source(s) {', '.join(streams)}: the URL carries credentials; every local user can read "
             f"them in the process list (ffmpeg's command line)"]
    try:
        mode = os.stat(config_file).st_mode if config_file else 0
    except OSError:
        mode = 0
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        lines.append(f"{config_file} holds credentials but other users may read it (mode {stat.filemode(mode)}): "
                     f"chmod 600")
    return lines


def _has_userinfo(url: str) -> bool:
    try:
        parts = urlsplit(url)
    except ValueError:
        return False
    return bool(parts.username or parts.password)


def source_status(sources: dict[str, dict]) -> tuple[bool, str]:
    """(ok, status) from every source's snapshot: a failing source is named with its problem."""
    failing = [f"{stream}: {snap['reason']}" for stream, snap in sources.items() if snap["state"] == "failing"]
    if failing:
        return False, f"failing: {'; '.join(failing)}"[:300]
    if any(snap["state"] in ("device_missing", "restarting") for snap in sources.values()):
        return False, "device_missing"
    return True, "ok"


class CaptureLoop:
    def __init__(self, runtime: StageRuntime, reader_factory=make_reader):
        self.rt = runtime
        self.outbox: queue.Queue[schemas.Message] = queue.Queue(maxsize=QUEUE_FRAMES)
        self.dropped = 0
        self.published = 0
        self.bad_messages = 0
        self.replay_samples = int(runtime.config.bus.replay_buffer_s * schemas.SAMPLE_RATE)
        self.replays = {src.stream: StreamReplay(self.replay_samples) for src in runtime.config.capture.sources}
        self.vad = VadWatch()
        self.workers = [SourceWorker(src, runtime.config.capture.frame_ms, reader_factory, self.emit,
                                     runtime.stopping, describe=describe(src),
                                     open_every_s=runtime.config.capture.open_every_s)
                        for src in runtime.config.capture.sources]

    def emit(self, msg: schemas.Message) -> None:
        try:
            self.outbox.put(msg, timeout=1.0)
        except queue.Full:
            self.dropped += 1  # only if publishing itself is stuck; seq gaps tell vad
            if self.dropped % 100 == 1:
                log.error("capture queue full: frames dropped", extra={"dropped": self.dropped})

    def state(self) -> tuple[bool, str, dict]:
        sources = {w.cfg.stream: w.snapshot() for w in self.workers}
        for stream, replay in self.replays.items():
            if stream in sources:
                sources[stream].update(replay.counters())
        return (*source_status(sources), {"sources": sources, "published": self.published, "dropped": self.dropped,
                                          "queued": self.outbox.qsize(), "vad_restarts_seen": self.vad.restarts,
                                          "bad_messages": self.bad_messages})

    def run(self) -> None:
        cfg = self.rt.config.bus
        pub = sockets.handshake_publisher(self.rt.ctx, cfg)
        sub = sockets.subscriber(self.rt.ctx, cfg, [b"vad/", b"health/vad/"])
        try:
            heart = self.rt.heartbeater(pub, self.state)
            if self.workers and not sockets.wait_for_subscription(pub, b"ctl/", HANDSHAKE_S, self.rt.stopping):
                log.warning("no subscriber of ctl/ yet (is vad running?): starting the sources anyway; "
                            "vad gets their streams when it is heard", extra={"waited_s": HANDSHAKE_S})
            for worker in self.workers:
                worker.start()
            if not self.workers:
                log.warning("no capture sources configured (capture.sources is empty)")
            while not self.rt.stopping.is_set():
                self._hear_vad(sub, pub)
                self._publish_some(pub, timeout=0.05)
                heart.tick()
            deadline = time.monotonic() + JOIN_S
            for worker in self.workers:
                worker.join(max(0.0, deadline - time.monotonic()))
            self._publish_some(pub, timeout=0.0)
        finally:
            sub.close(linger=0)
            pub.close(linger=self.rt.config.bus.linger_ms)

    def _bad_message(self, exc: schemas.SchemaError) -> None:
        self.bad_messages += 1
        log.warning("bad bus message dropped", extra={"error": str(exc), "count": self.bad_messages})

    def _hear_vad(self, sub, pub) -> None:
        """vad's acks trim the replay buffers; a new vad gets every stream again."""
        for msg in sockets.received(sub, MAX_BATCH, self._bad_message):
            if isinstance(msg, schemas.Heartbeat) and self.vad.restarted(msg):
                resent = [m for replay in self.replays.values() for m in replay.resend()]
                log.info("vad (re)started: streams resent", extra={"vad": msg.instance, "messages": len(resent)})
                for out in resent:
                    sockets.publish(pub, out)
            elif isinstance(msg, schemas.Ack) and msg.stream in self.replays:
                self.replays[msg.stream].acked(msg)

    def _kept(self, msg: schemas.Message) -> schemas.Message:
        """Into the stream's replay buffer, as it goes out."""
        replay = self.replays.get(getattr(msg, "stream", None))
        if replay is None:
            return msg
        if isinstance(msg, schemas.Open):
            return replay.open(msg, self.vad.instance)
        if isinstance(msg, schemas.Audio):
            replay.sent(msg)
        elif isinstance(msg, schemas.Close):  # the source ended: nothing to resend to a later vad
            self.replays[msg.stream] = StreamReplay(self.replay_samples)
        return msg

    def _publish_some(self, pub, timeout: float) -> None:
        try:
            msg = self.outbox.get(timeout=timeout) if timeout else self.outbox.get_nowait()
        except queue.Empty:
            return
        while True:
            sockets.publish(pub, self._kept(msg))
            self.published += 1
            try:
                msg = self.outbox.get_nowait()
            except queue.Empty:
                return


def loop(runtime: StageRuntime) -> None:
    problems = check_sources(runtime.config.capture.sources)
    if problems:  # same shape as config errors: one plain line each, exit 2
        for line in problems:
            sys.stderr.write(f"voxbus-capture: config: {line}\n")
        raise SystemExit(2)
    for line in credential_warnings(runtime.config.capture.sources, runtime.config.source_file):
        log.warning(line)
    CaptureLoop(runtime).run()


def main(argv: list[str] | None = None) -> int:
    return run_stage("capture", loop, argv)

