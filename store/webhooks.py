"""Webhook delivery of alerts: a JSON POST signed with HMAC-SHA256, retried with exponential backoff.

Its own thread and a bounded queue: the store's loop only `submit`s, so a webhook that hangs or
fails never delays a transcript. The signature header is `X-Voxbus-Signature: sha256=<hex>` of
the exact body with the configured secret; a body that could not be delivered after every
retry (or that found the queue full) is counted in `dead_letters`, which the store's heartbeat
reports.
"""
from __future__ import annotations

import hashlib
import hmac
import json
import logging
import queue
import threading
import urllib.error
import urllib.request

log = logging.getLogger(__name__)
SIGNATURE_HEADER = "X-Voxbus-Signature"
MAX_QUEUE = 1000
BACKOFF_S = 0.5
BACKOFF_MAX_S = 60.0


def sign(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


class WebhookSender:
    def __init__(self, url: str, secret: str, timeout_s: float, retries: int, backoff_s: float = BACKOFF_S):
        self.url = url
        self.secret = secret
        self.timeout_s = timeout_s
        self.retries = retries
        self.backoff_s = backoff_s
        self.queue: queue.Queue[bytes | None] = queue.Queue(MAX_QUEUE)
        self.stopping = threading.Event()
        self.delivered = self.failed_attempts = self.dead_letters = 0
        self.thread = threading.Thread(target=self._run, name="webhooks", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def submit(self, event: dict) -> None:
        body = json.dumps(event, ensure_ascii=False, separators=(",", ":")).encode()
        try:
            self.queue.put_nowait(body)
        except queue.Full:
            self.dead_letters += 1
            log.error("webhook queue full: alert dropped", extra={"dead_letters": self.dead_letters})

    def _post(self, body: bytes) -> None:
        request = urllib.request.Request(self.url, data=body, method="POST", headers={
            "Content-Type": "application/json", SIGNATURE_HEADER: sign(self.secret, body),
            "User-Agent": "voxbus-store"})
        with urllib.request.urlopen(request, timeout=self.timeout_s) as response:
            response.read(65536)

    def _deliver(self, body: bytes) -> None:
        for attempt in range(self.retries + 1):
            try:
                self._post(body)
                self.delivered += 1
                return
            except (urllib.error.URLError, OSError, ValueError) as exc:   # HTTPError is a URLError
                self.failed_attempts += 1
                log.warning("webhook failed", extra={"url": self.url, "attempt": attempt + 1, "error": str(exc)})
            if self.stopping.wait(min(BACKOFF_MAX_S, self.backoff_s * 2 ** attempt)):
                break
        self.dead_letters += 1
        log.error("webhook gave up: alert dropped", extra={"url": self.url, "dead_letters": self.dead_letters})

    def _run(self) -> None:
        while not self.stopping.is_set():
            body = self.queue.get()
            if body is None:
                return
            self._deliver(body)

    def stop(self, timeout: float = 2.0) -> None:
        self.stopping.set()
        try:
            self.queue.put_nowait(None)
        except queue.Full:
            pass   # the thread sees `stopping` after its current delivery
        self.thread.join(timeout)

    def counters(self) -> dict:
        return {"webhooks_delivered": self.delivered, "webhook_failures": self.failed_attempts,
                "webhook_dead_letters": self.dead_letters, "webhook_queue": self.queue.qsize()}
