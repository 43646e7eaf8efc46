"""Issue 12 against the running stack (tiny.en int8) with the real clients: served models and early
refusals, OpenAI's streamed transcription through the official client, job progress (HTTP events, /events,
`voxbus transcribe --url --progress`), honest verbose values, whisper.cpp's shape, a truncated file,
and a browser's MediaRecorder (WebM/Opus) over /stream, plus /docs rendered offline."""
from __future__ import annotations

import asyncio
import io
import json
import subprocess
import sys
import threading
import time

import httpx
import numpy as np
import openai
import pytest
import soundfile
import websockets

from tests.asr.wer import normalize_english, wer
from tests.conftest import REPO
from tests.e2e import live
from tests.e2e.test_web_page import browser  # noqa: F401  (the headless Chromium fixture, fake microphone)

pytestmark = pytest.mark.slow

JFK_TEXT = "And so my fellow Americans, ask not what your country can do for you, ask what you can do for your country."
LONG_CLIPS = ["ls-1089-134686-0000", "lj-LJ001-0001", "ls-2412-153948-0000", "lj-LJ001-0003", "ls-1272-141231-0002"]


@pytest.fixture(scope="module")
def jfk() -> bytes:
    return (live.EVAL_DIR / "asr/jfk/jfk.flac").read_bytes()


def _post(stack, path, **kw) -> httpx.Response:
    return httpx.post(f"{stack.http}{path}", timeout=120, **kw)


def _sse(lines) -> list[tuple[str | None, dict]]:
    events, event, data = [], None, []
    for line in lines:
        if line.startswith("event: "):
            event = line[7:]
        elif line.startswith("data: "):
            data.append(line[6:])
        elif not line and data:
            events.append((event, json.loads("".join(data))))
            event, data = None, []
    return events


def test_served_model_and_early_refusals(stack, jfk):
    models = httpx.get(f"{stack.http}/v1/models", timeout=10).json()["data"]
    served = next(m for m in models if m["id"] == "tiny.en-int8")
    assert served["languages"] == ["en"] and not served["translate"] and served["word_timestamps"], served
    assert models[0]["id"] == "whisper-1" and models[0]["serves"] == "tiny.en-int8"
    started = time.monotonic()
    for path, data, code in (("/v1/audio/transcriptions", {"language": "de"}, "unsupported_language"),
                             ("/v1/audio/translations", {}, "unsupported_task"),
                             ("/v1/audio/transcriptions", {"model": "base-int8"}, "unknown_model")):
        r = _post(stack, path, files={"file": ("jfk.flac", jfk)}, data={"model": "whisper-1", **data})
        assert r.status_code == 400 and r.json()["error"]["code"] == code, r.text
    assert time.monotonic() - started < 5  # before any transcription (JFK alone takes longer through asr)

    async def refused(query: str) -> tuple[dict, int]:
        async with websockets.connect(f"{stack.ws}/stream?{query}") as ws:
            event = json.loads(await ws.recv())
            await ws.wait_closed()
            return event, ws.close_code
    for query, code in (("language=de", "unsupported_language"), ("task=translate", "unsupported_task"),
                        ("model=large-v3", "unknown_model")):
        event, close = asyncio.run(refused(query))
        assert (event["type"], event["code"], close) == ("error", code, 1008), event


def test_openai_streaming_iterator(stack, jfk):
    client = openai.OpenAI(base_url=f"{stack.http}/v1", api_key="unused", max_retries=0, timeout=120)
    events = list(client.audio.transcriptions.create(model="whisper-1", file=("jfk.flac", jfk), stream=True))
    deltas = [e.delta for e in events if e.type == "transcript.text.delta"]
    done = events[-1]
    assert deltas and done.type == "transcript.text.done" and "".join(deltas) == done.text
    assert wer([JFK_TEXT], [done.text]) <= 0.1, done.text


def test_verbose_values_are_real_and_whisper_cpp_names_the_language(stack, jfk):
    body = _post(stack, "/v1/audio/transcriptions", files={"file": ("jfk.flac", jfk)},
                 data={"model": "whisper-1", "response_format": "verbose_json"}).json()
    segments = body["segments"]
    assert len(segments) >= 2, segments
    assert all(s["tokens"] and s["compression_ratio"] > 0 and s["avg_logprob"] < 0 for s in segments), segments
    assert len({s["avg_logprob"] for s in segments}) == len(segments), segments  # one per segment, not per window
    cpp = _post(stack, "/inference", files={"file": ("jfk.flac", jfk)},
                data={"response_format": "verbose_json", "word_timestamps": "true"}).json()
    assert cpp["detected_language"] == "english" and "detected_language_probability" in cpp
    words = [w["word"].strip(" ,.").lower() for s in cpp["segments"] for w in s["words"]]
    assert words[:3] == ["and", "so", "my"], words


def test_a_truncated_file_is_a_400_naming_the_shortfall(stack):
    buf = io.BytesIO()
    soundfile.write(buf, np.zeros(16000, np.int16), 16000, format="WAV", subtype="PCM_16")
    cut = buf.getvalue()[:20000]
    r = _post(stack, "/transcribe", files={"audio_file": ("cut.wav", cut)})
    assert r.status_code == 400 and r.json()["error"]["code"] == "truncated", r.text
    assert "32000 bytes" in r.json()["error"]["message"] and "19956" in r.json()["error"]["message"], r.text


@pytest.fixture(scope="module")
def long_upload(tmp_path_factory) -> tuple[bytes, float]:
    """A 10-minute upload: five real clips spread over 600 s (the e2e stack's max_audio_s is 620), as FLAC."""
    audio, _ = live.build_stream(LONG_CLIPS, pause_s=110.0, lead_s=2.0, tail_s=20.0)
    audio = np.pad(audio, (0, max(0, 600 * live.RATE - audio.size)))[: 600 * live.RATE]
    buf = io.BytesIO()
    soundfile.write(buf, np.clip(audio, -1, 1), live.RATE, format="FLAC", subtype="PCM_16")
    return buf.getvalue(), audio.size / live.RATE


def _listen(stack, seen: list, stop: threading.Event) -> None:
    """Collects /events' job events until `stop` (checked at each line: keepalives come every 15 s)."""
    with httpx.stream("GET", f"{stack.http}/events", timeout=httpx.Timeout(5, read=None)) as r:
        event = None
        for line in r.iter_lines():
            if stop.is_set():
                return
            if line.startswith("event: "):
                event = line[7:]
            elif line.startswith("data: ") and event in ("job_segments", "final"):
                seen.append((event, json.loads(line[6:])))


def test_progress_of_a_long_upload_over_http_and_events(stack, long_upload):
    data, seconds = long_upload
    seen: list = []
    stop = threading.Event()
    listener = threading.Thread(target=_listen, args=(stack, seen, stop), daemon=True)
    listener.start()
    time.sleep(0.5)  # the listener is registered once its request is in
    with httpx.stream("POST", f"{stack.http}/transcribe?progress=true", files={"audio_file": ("long.flac", data)},
                      data={"response_format": "json"}, timeout=httpx.Timeout(10, read=60)) as r:
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
        events = _sse(r.iter_lines())
    kinds = [e for e, _ in events]
    count = events[0][1]["count"]
    assert kinds[0] == "job_segments" and count >= len(LONG_CLIPS), events[:3]
    finals = [d for e, d in events if e == "final"]
    assert [f["done"] for f in finals] == list(range(1, count + 1)) and sorted(f["index"] for f in finals) == \
        list(range(count))
    answer = events[-1]
    assert answer[0] == "done" and answer[1]["duration"] == pytest.approx(seconds, abs=0.01)
    job = answer[1]["job"]
    # /events gets the same messages as the request, in its own queue: wait until it has them all
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and sum(1 for e, d in list(seen) if d.get("job") == job) < count + 1:
        time.sleep(0.05)
    stop.set()
    on_bus = [(e, d) for e, d in seen if d.get("job") == job]
    assert on_bus and on_bus[0] == ("job_segments", {**on_bus[0][1], "count": count}), on_bus[:2]
    assert sorted(d["index"] for e, d in on_bus if e == "final") == list(range(count))
    rows = live.manifest()
    references = " ".join(rows[c]["transcript"] for c in LONG_CLIPS)
    assert wer([references], [answer[1]["text"]]) <= 0.2, answer[1]["text"]


def test_voxbus_transcribe_url_shows_progress(stack, jfk, tmp_path):
    path = tmp_path / "jfk.flac"
    path.write_bytes(jfk)
    done = subprocess.run([sys.executable, "-m", "cli", "transcribe", "--url", stack.http, str(path), "--progress"],
                          cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    lines = done.stderr.splitlines()
    assert lines and lines[-1].endswith(" segments transcribed") and lines[0].startswith(f"{path}: 0/"), lines
    assert wer([JFK_TEXT], [done.stdout]) <= 0.1, done.stdout


RECORD = """
const done = arguments[arguments.length - 1];
(async () => {
  const stream = await navigator.mediaDevices.getUserMedia({ audio: true });
  const ws = new WebSocket(`ws://${location.host}/stream?encoding=webm&language=en&end_silence_ms=500`);
  window.events = []; window.wsClosedCode = null; window.eventsWhileRecording = null;
  ws.onmessage = (m) => window.events.push(JSON.parse(m.data));
  ws.onclose = (c) => { window.wsClosedCode = c.code; };
  await new Promise((resolve) => { ws.onopen = resolve; });
  const recorder = new MediaRecorder(stream, { mimeType: "audio/webm;codecs=opus" });
  recorder.ondataavailable = (e) => { if (e.data.size) ws.send(e.data); };
  recorder.onstop = () => {
    window.eventsWhileRecording = window.events.length;
    ws.send(JSON.stringify({ type: "eof" }));
    stream.getTracks().forEach((t) => t.stop());
  };
  recorder.start(250);
  setTimeout(() => recorder.stop(), arguments[0] * 1000);
  done(recorder.mimeType);
})().catch((err) => done("failed: " + err));
"""


def test_browser_media_recorder_over_stream_and_the_docs_page(stack, browser):  # noqa: F811
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    driver, utterances = browser
    driver.set_script_timeout(30)
    driver.get(f"{stack.http}/ui/")  # the page's origin: /stream accepts it
    record_s = utterances[-1].end / live.RATE + 1.0
    mime = driver.execute_async_script(RECORD, record_s)
    assert mime.startswith("audio/webm"), mime
    WebDriverWait(driver, 60).until(lambda d: d.execute_script("return window.wsClosedCode") is not None)
    events, closed, early = driver.execute_script("return [window.events, window.wsClosedCode, window.eventsWhileRecording]")
    assert closed == 1000, events
    assert any(e["type"] in ("vad", "partial") for e in events[:early]), events  # decoded while recording
    heard = normalize_english(" ".join(e["text"] for e in events if e["type"] == "final"))
    for u in utterances:
        words = normalize_english(u.reference).split()
        assert sum(w in heard for w in words) >= 0.8 * len(words), (u.reference, heard)

    driver.get(f"{stack.http}/docs")
    WebDriverWait(driver, 15).until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#paths section")) > 20)
    assert "/v1/audio/transcriptions" in driver.find_element(By.ID, "paths").text
