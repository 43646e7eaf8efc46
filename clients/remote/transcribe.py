"""`voxbus transcribe --url http://host:8000 FILE...`: the server transcribes, this prints what the
in-process `voxbus transcribe` (asr/cli.py) prints for the same `--format`.

Each file is uploaded to `POST /transcribe` (multipart `audio_file`, `response_format=json`)
and rendered here with `bus.subtitles`, the renderings the in-process command and the
gateway share. Every problem is one line on stderr, `voxbus transcribe: error: ...`.
Exit status: 0 all files done; 2 bad usage, or (with one file) a file the server refused
(4xx) or that is missing; 1 a server failure (5xx), an unreachable server, or some of
several files failed (the others are still transcribed).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import uuid
from collections.abc import Sequence
from pathlib import Path
from urllib.error import HTTPError, URLError
from urllib.parse import urlsplit
from urllib.request import Request, urlopen

from bus import subtitles
from clients.desktop.protocol import http_url
from config.names import TASKS

PROG = "voxbus transcribe"
API_KEY_ENV = "VOXBUS_API_KEY"
EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
TIMEOUT_S = 660.0       # per read: above the gateway's job_timeout_s (600); progress events keep it alive


class UsageError(Exception):
    """Bad command line: one line, exit status 2."""


class FileRefused(Exception):
    """This file cannot be transcribed (missing, or the server answered 4xx): the others go on."""


class ServerFailed(Exception):
    """The server failed on this file (5xx, a broken answer): the others go on."""


class Unreachable(Exception):
    """No server at the URL: nothing else is tried."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(message)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog=PROG, description="Transcribe files on a voxbus server (POST /transcribe).")
    parser.add_argument("--url", required=True, metavar="http://HOST:PORT", help="the server (http:// or https://)")
    parser.add_argument("files", nargs="+", metavar="FILE", help="WAV, FLAC, MP3, OGG, WebM/Opus, M4A, ...")
    parser.add_argument("--language", default="auto", metavar="xx|auto")
    parser.add_argument("--task", choices=TASKS, default="transcribe")
    parser.add_argument("--format", choices=subtitles.FORMATS, default="text", dest="output_format")
    parser.add_argument("--api-key", metavar="KEY", default=os.environ.get(API_KEY_ENV),
                        help=f"sent as 'Authorization: Bearer KEY' (default: ${API_KEY_ENV})")
    parser.add_argument("--progress", action="store_true",
                        help="a line per transcribed segment on stderr (on a terminal: one updating line, always)")
    return parser


def progress_printer(path: str, lines: bool):
    """Reports `path: done/count segments` on stderr: one line rewritten in place on a terminal, else
    a line per step (`--progress` into a pipe)."""
    def show(done: int, count: int) -> None:
        text = f"{path}: {done}/{count} segments transcribed"
        if lines:
            print(text, file=sys.stderr, flush=True)
        else:
            print(f"\r{text}", end="\n" if done == count else "", file=sys.stderr, flush=True)
    return show


def transcribe_url(server: str) -> str:
    parts = urlsplit(server)
    if parts.scheme not in ("http", "https", "ws", "wss") or not parts.hostname:
        raise UsageError(f"--url {server!r}: expected http://host:port (or https://)")
    return http_url(server, "/transcribe")


def multipart(fields: dict[str, str], filename: str, data: bytes) -> tuple[bytes, str]:
    """A multipart/form-data body with `fields` and the file as `audio_file`; (body, content type)."""
    boundary = f"voxbus-{uuid.uuid4().hex}"
    quoted = filename.replace('"', "%22").replace("\r", "").replace("\n", "")
    parts = [f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode()
             for name, value in fields.items()]
    parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="audio_file"; filename="{quoted}"\r\n'
                 f"Content-Type: application/octet-stream\r\n\r\n".encode() + data + b"\r\n")
    parts.append(f"--{boundary}--\r\n".encode())
    return b"".join(parts), f"multipart/form-data; boundary={boundary}"


def _error_message(status: int, body: bytes) -> str:
    """The gateway's own message ({"error": {"code", "message"}}), else the start of the body."""
    try:
        error = json.loads(body)["error"]
        return f"HTTP {status}: {error['code']}: {error['message']}"
    except (ValueError, KeyError, TypeError):
        return f"HTTP {status}: {body[:120].decode('utf-8', 'replace').strip()}"


def read_events(response):
    """(event, data) per Server-Sent Event of a streamed answer, as they arrive."""
    event, data = None, []
    for raw in response:
        line = raw.decode("utf-8", "replace").rstrip("\r\n")
        if line.startswith("event: "):
            event = line[7:]
        elif line.startswith("data: "):
            data.append(line[6:])
        elif not line and data:
            yield event, json.loads("".join(data))
            event, data = None, []


def _follow(response, path: Path, progress) -> bytes:
    """The answer of a `?progress=true` upload, reporting each step to `progress(done, count)`."""
    for event, data in read_events(response):
        if event == "job_segments":
            progress(0, data["count"])
        elif event == "final":
            progress(data["done"], data["count"])
        elif event == "done":
            return json.dumps(data).encode()
        elif event == "error":
            status = data.get("status", 500)
            message = f"{path}: {_error_message(status, json.dumps(data).encode())}"
            raise FileRefused(message) if 400 <= status < 500 else ServerFailed(message)
    raise ServerFailed(f"{path}: the server's event stream ended without an answer")


def upload(url: str, path: Path, language: str, task: str, api_key: str | None, progress=None) -> dict:
    """POST one file; the /transcribe JSON answer. With `progress`, the server is asked for its
    progress events (`?progress=true`) and `progress(done, count)` sees each segment finish."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise FileRefused(f"{path}: {exc.strerror or exc}") from None
    body, content_type = multipart({"language": language, "task": task, "response_format": "json"}, path.name, data)
    headers = {"Content-Type": content_type, "Accept": "application/json"}
    if api_key:
        headers["Authorization"] = f"Bearer {api_key}"
    if progress is not None:
        url += "?progress=true"
    try:
        with urlopen(Request(url, data=body, headers=headers, method="POST"), timeout=TIMEOUT_S) as response:
            streamed = response.headers.get_content_type() == "text/event-stream"
            answer = _follow(response, path, progress) if streamed else response.read()
    except HTTPError as exc:
        message = f"{path}: {_error_message(exc.code, exc.read())}"
        raise (FileRefused(message) if 400 <= exc.code < 500 else ServerFailed(message)) from None
    except URLError as exc:
        reason = getattr(exc.reason, "strerror", None) or exc.reason
        raise Unreachable(f"cannot reach {url}: {reason}") from None
    except (TimeoutError, OSError) as exc:
        raise ServerFailed(f"{path}: {url}: {exc}") from None
    try:
        return json.loads(answer)
    except ValueError:
        raise ServerFailed(f"{path}: the server's answer is not JSON: {answer[:80]!r}") from None


def render(output_format: str, path: str, body: dict, task: str) -> str | dict:
    """text, srt, vtt (a string without its trailing newline) or a json/verbose_json document of one file."""
    segments = body.get("segments") or []
    if output_format == "text":
        return str(body.get("text", ""))
    if output_format in ("srt", "vtt"):
        rendered = subtitles.to_srt(segments) if output_format == "srt" else subtitles.to_vtt(segments)
        return rendered.rstrip("\n")
    if output_format == "verbose_json":
        return {"file": path, **subtitles.verbose_json(str(body.get("text", "")), segments,
                                                       subtitles.all_words(segments), task=task,
                                                       language=body.get("language"),
                                                       duration=float(body.get("duration") or 0.0))}
    return {"file": path, **body}


def _error(message: str) -> None:
    print(f"{PROG}: error: {' '.join(str(message).split())}", file=sys.stderr)


def _run(argv: Sequence[str]) -> int:
    args = build_parser().parse_args(argv)
    url = transcribe_url(args.url)
    several = len(args.files) > 1
    documents, refused, failed = [], 0, 0
    for path in args.files:
        try:
            tty = sys.stderr.isatty()
            show = progress_printer(path, lines=not tty) if tty or args.progress else None
            body = upload(url, Path(path), args.language, args.task, args.api_key, show)
        except FileRefused as exc:
            _error(str(exc))
            refused += 1
            continue
        except ServerFailed as exc:
            _error(str(exc))
            failed += 1
            continue
        output = render(args.output_format, path, body, args.task)
        if isinstance(output, dict):
            documents.append(output)
        else:
            header = f"{path}:\n" if several else ""
            print(f"{header}{output}" + ("\n" if several else ""), flush=True)
    if documents:
        print(json.dumps(documents if several else documents[0], ensure_ascii=False, indent=2))
    if refused + failed == 0:
        return EXIT_OK
    return EXIT_USAGE if not several and refused else EXIT_FAILED


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point for `voxbus transcribe --url ...` (cli/main.py hands over when --url is given)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        return _run(argv)
    except UsageError as exc:
        _error(str(exc))
        return EXIT_USAGE
    except Unreachable as exc:
        _error(str(exc))
        return EXIT_FAILED
    except SystemExit as exc:   # argparse after --help: it printed the help already
        return exc.code if isinstance(exc.code, int) else EXIT_OK
    except KeyboardInterrupt:
        _error("interrupted")
        return 130


if __name__ == "__main__":
    sys.exit(main())
