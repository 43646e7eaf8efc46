"""store/alerts.py (rules, matching, silence) and store/webhooks.py against a local HTTP server."""
import hashlib
import hmac
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from store.alerts import AlertRuleError, Alerts, Rule
from store.webhooks import SIGNATURE_HEADER, WebhookSender


def test_keywords_match_whole_words_case_insensitively_once_per_final():
    alerts = Alerts()
    alerts.add(Rule.parse({"id": "fire", "keywords": ["fire", "smoke alarm"]}))
    fired = alerts.on_final("cam1", "FIRE! Fire in the kitchen, the smoke alarm rings", 1.0, "w1", 7)
    assert [(f.rule, f.kind, f.terms, f.seq) for f in fired] == [("fire", "keyword", ("fire", "smoke alarm"), 7)]
    assert alerts.on_final("cam1", "a firefly and a campfire", 2.0) == []


def test_a_regex_and_a_stream_filter():
    alerts = Alerts()
    alerts.add(Rule.parse({"id": "code", "regex": r"code \d{3}", "stream": "mic1"}))
    assert alerts.on_final("mic2", "code 123", 1.0) == []
    assert alerts.on_final("mic1", "we have code 123 here", 1.0)[0].terms == ("code 123",)


@pytest.mark.parametrize("body, field", [({"id": "a/b", "keywords": ["x"]}, "id"), ({"id": "a"}, "one kind"),
                                         ({"id": "a", "regex": "("}, "regex"),
                                         ({"id": "a", "keywords": ["x"], "silence_min": 5}, "one kind"),
                                         ({"id": "a", "keywords": "x"}, "keywords"), ({"id": "a", "x": 1}, "unknown")])
def test_bad_rules_are_refused_naming_the_field(body, field):
    with pytest.raises(AlertRuleError, match=field):
        Rule.parse(body)


def test_silence_fires_once_then_speech_again():
    alerts = Alerts()
    alerts.add(Rule.parse({"id": "quiet", "silence_min": 1, "stream": "cam1"}))
    alerts.on_final("cam1", "hello", 100.0)
    alerts.on_final("cam2", "hello", 100.0)
    assert alerts.tick(150.0) == []
    assert [(f.rule, f.kind, f.stream) for f in alerts.tick(161.0)] == [("quiet", "silence", "cam1")]
    assert alerts.tick(500.0) == []
    assert [(f.kind, f.stream) for f in alerts.on_final("cam1", "back", 600.0)] == [("speech", "cam1")]


class Hook(BaseHTTPRequestHandler):
    received: list = []
    mode = "ok"

    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        Hook.received.append((body, self.headers[SIGNATURE_HEADER]))
        if Hook.mode == "hang":
            time.sleep(3)
        self.send_response(500 if Hook.mode == "500" else 204)
        self.end_headers()

    def log_message(self, *args):
        return


@pytest.fixture
def hook():
    Hook.received, Hook.mode = [], "ok"
    server = ThreadingHTTPServer(("127.0.0.1", 0), Hook)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/hook"
    server.shutdown()


def test_a_webhook_gets_a_correctly_signed_body(hook):
    sender = WebhookSender(hook, "s3cret", timeout_s=2, retries=2)
    sender.start()
    sender.submit({"type": "alert", "rule": "fire"})
    deadline = time.monotonic() + 5
    while not sender.delivered and time.monotonic() < deadline:
        time.sleep(0.02)
    sender.stop()
    body, signature = Hook.received[0]
    assert json.loads(body) == {"type": "alert", "rule": "fire"}
    assert signature == "sha256=" + hmac.new(b"s3cret", body, hashlib.sha256).hexdigest()


@pytest.mark.parametrize("mode", ["500", "hang"])
def test_a_failing_or_hanging_webhook_is_retried_then_dead_lettered_without_blocking(hook, mode):
    Hook.mode = mode
    sender = WebhookSender(hook, "k", timeout_s=0.3, retries=2, backoff_s=0.05)
    sender.start()
    started = time.monotonic()
    for i in range(3):
        sender.submit({"n": i})
    assert time.monotonic() - started < 0.05   # submit never waits for the network
    deadline = time.monotonic() + 15
    while sender.dead_letters < 3 and time.monotonic() < deadline:
        time.sleep(0.05)
    sender.stop()
    assert sender.dead_letters == 3 and sender.failed_attempts == 9 and sender.delivered == 0
