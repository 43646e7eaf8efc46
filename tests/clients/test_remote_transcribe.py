"""`voxbus transcribe --url`: the front door's hand-over, the multipart body and the renderings as units;
then the command as a subprocess against a running stack (tiny model) with real eval clips."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from email.parser import BytesParser
from email.policy import HTTP

import pytest

from cli.main import REMOTE_TRANSCRIBE, resolve
from clients.remote import transcribe
from tests.asr.wer import wer
from tests.conftest import REPO
from tests.e2e import live
from tests.kit import need_eval
from tests.kit import parse_srt, parse_vtt, serve_stack

CLIP = "ls-1089-134691-0001"   # 5.4 s: "FOR A FULL HOUR HE HAD PACED UP AND DOWN WAITING BUT HE COULD WAIT NO LONGER"
OTHER = "ls-1089-134691-0000"  # 2.1 s: "HE COULD WAIT NO LONGER"
BODY = {"text": "Hello there. General Kenobi.", "language": "en", "duration": 4.0, "job": "j-1",
        "segments": [{"start": 0.0, "end": 1.5, "text": "Hello there.", "avg_logprob": -0.2, "no_speech_prob": 0.01},
                     {"start": 2.0, "end": 3.9, "text": "General Kenobi.", "avg_logprob": -0.3,
                      "no_speech_prob": 0.02}]}


def test_transcribe_with_url_goes_to_the_server():
    assert resolve(["transcribe", "a.wav"]) == ("asr.cli:main", ["a.wav"])
    assert resolve(["transcribe", "--url", "http://h:1", "a.wav"]) == \
        (REMOTE_TRANSCRIBE, ["--url", "http://h:1", "a.wav"])
    assert resolve(["transcribe", "a.wav", "--url=http://h:1"])[0] == REMOTE_TRANSCRIBE
    assert resolve(["listen", "--url", "ws://h:1"]) == ("clients.remote.listen:main", ["--url", "ws://h:1"])


def test_the_multipart_body_is_what_a_form_parser_reads():
    body, content_type = transcribe.multipart({"language": "en", "task": "transcribe"}, 'a "b".wav', b"\x00RIFF\r\n--")
    message = BytesParser(policy=HTTP).parsebytes(f"Content-Type: {content_type}\r\n\r\n".encode() + body)
    parts = {part.get_param("name", header="content-disposition"): part for part in message.iter_parts()}
    assert parts["language"].get_content() == "en" and parts["task"].get_content() == "transcribe"
    assert parts["audio_file"].get_filename() == "a %22b%22.wav"
    assert parts["audio_file"].get_payload(decode=True) == b"\x00RIFF\r\n--"


def test_each_format_renders_like_the_in_process_command():
    assert transcribe.render("text", "a.wav", BODY, "transcribe") == "Hello there. General Kenobi."
    srt = transcribe.render("srt", "a.wav", BODY, "transcribe")
    assert parse_srt(srt + "\n") == [("00:00:00,000", "00:00:01,500", "Hello there."),
                                     ("00:00:02,000", "00:00:03,900", "General Kenobi.")]
    assert [cue[2] for cue in parse_vtt(transcribe.render("vtt", "a.wav", BODY, "transcribe") + "\n")] == \
        ["Hello there.", "General Kenobi."]
    assert transcribe.render("json", "a.wav", BODY, "transcribe") == {"file": "a.wav", **BODY}
    verbose = transcribe.render("verbose_json", "a.wav", BODY, "translate")
    assert verbose["file"] == "a.wav" and verbose["task"] == "translate" and verbose["duration"] == 4.0
    assert [s["id"] for s in verbose["segments"]] == [0, 1] and "words" not in verbose
    with pytest.raises(transcribe.UsageError, match="expected http://host:port"):
        transcribe.transcribe_url("host:8000")
    assert transcribe.transcribe_url("ws://h:1/vox/") == "http://h:1/vox/transcribe"


# ---- against a running stack ----

@pytest.fixture(scope="module")
def remote(tiny_models_dir):
    yield from serve_stack(tiny_models_dir)


def clip(clip_id: str):
    need_eval()
    row = live.manifest()[clip_id]
    return str(live.EVAL_DIR / row["path"]), row["transcript"]


def voxbus(*args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "VOXBUS_API_KEY"}
    return subprocess.run([sys.executable, "-m", "cli", *args], cwd=REPO, env=env, text=True,
                          capture_output=True, timeout=120)


@pytest.mark.slow
def test_srt_from_the_server(remote):
    path, reference = clip(CLIP)
    done = voxbus("transcribe", "--url", remote.http, path, "--format", "srt", "--api-key", "secret")
    assert done.returncode == 0 and done.stderr == "", done.stderr
    cues = parse_srt(done.stdout)
    assert cues and cues[0][0].startswith("00:00:0") and cues[-1][1] <= "00:00:06,000"
    assert wer([reference], [" ".join(cue[2] for cue in cues)]) <= 0.15, cues


@pytest.mark.slow
def test_text_vtt_and_json_for_several_files(remote):
    (first, ref1), (second, ref2) = clip(CLIP), clip(OTHER)
    text = voxbus("transcribe", "--url", remote.http, first, second, "--language", "en")
    assert text.returncode == 0, text.stderr
    blocks = text.stdout.split("\n\n")
    assert blocks[0].startswith(f"{first}:\n") and blocks[1].startswith(f"{second}:\n")
    assert wer([ref1, ref2], [b.split(":\n", 1)[1] for b in blocks[:2]]) <= 0.15, blocks
    vtt = voxbus("transcribe", "--url", remote.http, second, "--format", "vtt")
    assert vtt.returncode == 0 and wer([ref2], [" ".join(c[2] for c in parse_vtt(vtt.stdout))]) <= 0.15
    documents = json.loads(voxbus("transcribe", "--url", remote.http, first, second, "--format", "json").stdout)
    assert [d["file"] for d in documents] == [first, second] and all(d["segments"] for d in documents)
    verbose = json.loads(voxbus("transcribe", "--url", remote.http, second, "--format", "verbose_json").stdout)
    assert verbose["file"] == second and verbose["task"] == "transcribe" and 1.5 < verbose["duration"] < 2.5


@pytest.mark.slow
def test_problems_are_one_line_each(remote, tmp_path, free_port):
    path, _ = clip(OTHER)
    junk = tmp_path / "junk.wav"
    junk.write_bytes(b"this is not audio at all" * 40)
    refused = voxbus("transcribe", "--url", remote.http, str(junk))
    assert refused.returncode == 2 and refused.stdout == ""
    assert refused.stderr.count("\n") == 1
    assert refused.stderr.startswith(f"voxbus transcribe: error: {junk}: HTTP 400: unsupported_format: ")
    some = voxbus("transcribe", "--url", remote.http, str(tmp_path / "gone.wav"), path)
    assert some.returncode == 1 and "gone.wav" in some.stderr and some.stderr.count("\n") == 1
    assert some.stdout.startswith(f"{tmp_path / 'gone.wav'}:") is False and f"{path}:\n" in some.stdout
    port = free_port()
    down = voxbus("transcribe", "--url", f"http://127.0.0.1:{port}", path)
    assert down.returncode == 1 and down.stderr == (f"voxbus transcribe: error: cannot reach "
                                                    f"http://127.0.0.1:{port}/transcribe: Connection refused\n")


def test_the_api_key_goes_as_a_bearer_token(tmp_path, monkeypatch):
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    seen: dict = {}

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802 (http.server's name)
            seen["path"], seen["auth"] = self.path, self.headers.get("Authorization")
            seen["body"] = self.rfile.read(int(self.headers["Content-Length"]))
            answer = json.dumps(BODY).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    audio = tmp_path / "a.wav"
    audio.write_bytes(b"RIFF....WAVE")
    monkeypatch.setenv("VOXBUS_API_KEY", "from-env")
    try:
        assert transcribe.main(["--url", f"http://127.0.0.1:{server.server_port}", str(audio)]) == 0
        assert seen["path"] == "/transcribe" and seen["auth"] == "Bearer from-env"
        assert b'name="response_format"\r\n\r\njson' in seen["body"] and b"RIFF....WAVE" in seen["body"]
        assert transcribe.main(["--url", f"http://127.0.0.1:{server.server_port}", "--api-key", "k2",
                                str(audio)]) == 0
        assert seen["auth"] == "Bearer k2"
    finally:
        server.shutdown()
        server.server_close()
