"""ffmpeg as a decoder child: anything it reads (RTSP, HTTP, a file) → s16le 16 kHz mono on stdout.

stderr is drained by its own thread so a chatty ffmpeg never blocks on a full
pipe; its lines are logged with credentials removed. No bytes on stdout for
`stall_timeout_s` means a stalled input: the child is killed and SourceLost
raised, and the worker restarts it with back-off. A local file that ffmpeg
finishes with exit code 0 is the end of the source; a network input that ends
is lost (cameras and streams come back). Every wait on the child is bounded: one
that does not exit after closing its output is killed.

The URL is ffmpeg's argument, so credentials in it are visible to local users in
the process list (/proc/<pid>/cmdline); see README "Credentials".
"""
from __future__ import annotations

import logging
import os
import re
import select
import shutil
import subprocess
import threading
import time
from urllib.parse import urlsplit, urlunsplit

from bus.pcm import SAMPLE_RATE
from capture.base import SourceLost, SourceUnavailable
from config.schema import SourceConfig

log = logging.getLogger(__name__)
READ_BYTES = 6400          # 200 ms of output
SELECT_S = 0.1
STDERR_LINES_KEPT = 20
EXIT_WAIT_S = 2.0          # how long a child that closed stdout (or was terminated) may take to exit
_USERINFO = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.\-]*://)[^/@\s]+@")


def redact_url(url: str) -> str:
    """Drop user:password and the query string (tokens live there) from a URL for logs."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparsable url>"
    if not parts.scheme or not parts.netloc:
        return url
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = ("***@" if parts.username or parts.password else "") + host + (f":{parts.port}" if parts.port else "")
    return urlunsplit((parts.scheme, netloc, parts.path, "***" if parts.query else "", ""))


def redact_text(text: str, url: str) -> str:
    """ffmpeg echoes its input URL in errors; remove it and any user:pass@ from a log line."""
    if url:
        text = text.replace(url, redact_url(url))
    return _USERINFO.sub(r"\g<scheme>***@", text)


def ffmpeg_command(cfg: SourceConfig, binary: str = "ffmpeg") -> list[str]:
    cmd = [binary, "-hide_banner", "-nostdin", "-loglevel", "warning"]
    if cfg.realtime and is_local(cfg.url):
        cmd.append("-re")
    return cmd + ["-i", cfg.url, "-vn", "-ac", "1", "-ar", str(SAMPLE_RATE), "-f", "s16le", "-acodec", "pcm_s16le", "pipe:1"]


def is_local(url: str) -> bool:
    return "://" not in url or url.startswith("file:")


class FfmpegReader:
    rate = SAMPLE_RATE
    channels = 1

    def __init__(self, cfg: SourceConfig, binary: str = "ffmpeg", stall_timeout_s: float | None = None):
        self.cfg = cfg
        self.binary = binary
        self.stall_timeout_s = stall_timeout_s if stall_timeout_s is not None else cfg.stall_timeout_s
        self.safe_url = redact_url(cfg.url)
        self._proc: subprocess.Popen | None = None
        self._stderr_thread: threading.Thread | None = None
        self._last_bytes = 0.0
        self.stderr_tail: list[str] = []
        self.stalls = 0
        self.exits = 0
        self.kills = 0

    def open(self) -> None:
        if shutil.which(self.binary) is None:
            raise SourceUnavailable(f"{self.binary} not found on PATH")
        try:
            self._proc = subprocess.Popen(ffmpeg_command(self.cfg, self.binary), stdin=subprocess.DEVNULL,
                                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, bufsize=0)
        except OSError as exc:
            raise SourceUnavailable(f"cannot start {self.binary}: {exc.strerror or exc}") from None
        self._stderr_thread = threading.Thread(target=self._drain_stderr, args=(self._proc,),
                                               name=f"ffmpeg-stderr-{self.cfg.stream}", daemon=True)
        self._stderr_thread.start()
        self._last_bytes = time.monotonic()
        log.info("ffmpeg started", extra={"stream": self.cfg.stream, "url": self.safe_url, "pid": self._proc.pid})

    def read(self) -> bytes | None:
        proc = self._proc
        ready, _, _ = select.select([proc.stdout], [], [], SELECT_S)
        if ready:
            data = os.read(proc.stdout.fileno(), READ_BYTES)
            if data:
                self._last_bytes = time.monotonic()
                return data
            return self._ended(proc)
        if time.monotonic() - self._last_bytes > self.stall_timeout_s:
            self.stalls += 1
            raise SourceLost(f"ffmpeg stalled: no audio from {self.safe_url} for {self.stall_timeout_s:g} s")
        return b""

    def _ended(self, proc: subprocess.Popen) -> bytes | None:
        code = self._reap(proc, terminate=False)
        self.exits += 1
        if self._stderr_thread is not None:
            self._stderr_thread.join(timeout=1.0)
        if code == 0 and is_local(self.cfg.url):
            log.info("ffmpeg reached the end of its input", extra={"stream": self.cfg.stream, "url": self.safe_url})
            return None
        last = self.stderr_tail[-1] if self.stderr_tail else "no message"
        raise SourceLost(f"ffmpeg exited with code {code} reading {self.safe_url}: {last}")

    def _reap(self, proc: subprocess.Popen, terminate: bool) -> int | None:
        """Wait EXIT_WAIT_S for the child, then SIGKILL it; never block for ever."""
        try:
            return proc.wait(timeout=EXIT_WAIT_S)
        except subprocess.TimeoutExpired:
            why = "when terminated" if terminate else "after closing its output"
            log.warning("ffmpeg did not exit %s: killed", why,
                        extra={"stream": self.cfg.stream, "pid": proc.pid, "url": self.safe_url})
            self.kills += 1
            proc.kill()
        try:
            return proc.wait(timeout=EXIT_WAIT_S)
        except subprocess.TimeoutExpired:  # stuck in the kernel (D state): leave it, report it
            log.error("ffmpeg survived SIGKILL", extra={"stream": self.cfg.stream, "pid": proc.pid})
            return None

    def _drain_stderr(self, proc: subprocess.Popen) -> None:
        for raw in iter(proc.stderr.readline, b""):
            line = redact_text(raw.decode("utf-8", "replace").rstrip(), self.cfg.url)
            if not line:
                continue
            self.stderr_tail = (self.stderr_tail + [line])[-STDERR_LINES_KEPT:]
            log.warning("ffmpeg: %s", line, extra={"stream": self.cfg.stream})

    def close(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if proc.poll() is None:
            proc.terminate()
            self._reap(proc, terminate=True)
        for pipe in (proc.stdout, proc.stderr):
            pipe.close()
        if self._stderr_thread is not None:
            self._stderr_thread.join(timeout=1.0)

    def counters(self) -> dict:
        return {"stalls": self.stalls, "exits": self.exits, "kills": self.kills}
