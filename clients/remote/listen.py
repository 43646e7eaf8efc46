"""`voxbus listen --url ws://host:8000 [--mic DEVICE | FILE...]`: live transcription by a remote voxbus.

Streams a microphone or files at real time over the gateway's `/stream` WebSocket
(16 kHz mono s16), prints the transcript as it comes (clients/remote/display.py).
Ctrl-C sends `eof`, waits for the last final (at most EOF_WAIT_S), exits 0; a second
Ctrl-C gives up at once (130). Every problem is one line on stderr,
`voxbus listen: error: ...`. Exit status: 0 done; 1 a server error event, a refused or
lost connection, a failing source; 2 bad usage.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import shutil
import signal
import socket
import sys
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from urllib.parse import urlencode, urlsplit, urlunsplit

from bus.pcm import BYTES_PER_SAMPLE, SAMPLE_RATE
from clients.remote.display import Display, Mode, error_text
from clients.remote.sources import AudioSource, FileSource, MicSource, Pacer, SourceError
from config.names import TASKS

log = logging.getLogger(__name__)

PROG = "voxbus listen"
API_KEY_ENV = "VOXBUS_API_KEY"
EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130
EOF_WAIT_S = 35.0       # the gateway waits at most 30 s for the last final after eof, then closes
OPEN_TIMEOUT_S = 10.0


class UsageError(Exception):
    """Bad command line: one line, exit status 2."""


class ListenError(Exception):
    """The session failed (connection, server, source): one line, exit status 1."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(message)


def _end_silence(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive number of milliseconds, got {value}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog=PROG, description="Stream a microphone or files at real time to a voxbus server "
                                            "and print the transcript live.")
    parser.add_argument("--url", required=True, metavar="ws://HOST:PORT",
                        help="the server (ws://, wss://, http:// or https://; /stream is added)")
    parser.add_argument("--mic", metavar="DEVICE", help="ALSA capture device (see `voxbus devices`), e.g. default")
    parser.add_argument("files", nargs="*", metavar="FILE", help="sound files, sent one after another")
    parser.add_argument("--language", default="auto", metavar="xx|auto")
    parser.add_argument("--task", choices=TASKS, default="transcribe")
    parser.add_argument("--end-silence-ms", type=_end_silence, metavar="N",
                        help="silence that ends an utterance (the server allows 300-2000; default: its own)")
    parser.add_argument("--json", action="store_true", help="every server event as one JSON line")
    parser.add_argument("--api-key", metavar="KEY", default=os.environ.get(API_KEY_ENV),
                        help=f"sent as 'Authorization: Bearer KEY' (default: ${API_KEY_ENV})")
    return parser


def stream_url(server: str, language: str, task: str, end_silence_ms: int | None, partials: bool) -> str:
    """ws(s)|http(s)://host:port[/prefix][/stream] → ws(s)://host:port[/prefix]/stream?… for 16 kHz s16."""
    parts = urlsplit(server)
    scheme = {"http": "ws", "https": "wss", "ws": "ws", "wss": "wss"}.get(parts.scheme)
    if scheme is None or not parts.hostname:
        raise UsageError(f"--url {server!r}: expected ws://host:port (or wss://, http://, https://)")
    path = parts.path.rstrip("/")
    path = path if path.endswith("/stream") else path + "/stream"
    query = {"language": language, "task": task, "sample_rate": SAMPLE_RATE, "encoding": "s16",
             "partials": "true" if partials else "false"}
    if end_silence_ms is not None:
        query["end_silence_ms"] = end_silence_ms
    return urlunsplit((scheme, parts.netloc, path, urlencode(query), ""))


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    """The arguments, checked: exactly one of --mic and FILE..., files that exist."""
    args = build_parser().parse_args(argv)
    stream_url(args.url, args.language, args.task, args.end_silence_ms, partials=True)  # a bad --url first
    if args.mic is not None and args.files:
        raise UsageError("give --mic DEVICE or FILE..., not both")
    if args.mic is None and not args.files:
        raise UsageError("nothing to listen to: give --mic DEVICE or at least one FILE")
    for path in args.files:
        if not Path(path).is_file():
            raise UsageError(f"{path}: no such file" if not Path(path).exists() else f"{path}: not a regular file")
    return args


def sources_for(args: argparse.Namespace) -> list[AudioSource]:
    return [MicSource(args.mic)] if args.mic is not None else [FileSource(path) for path in args.files]


async def _pause(seconds: float, stop: asyncio.Event) -> None:
    """Sleep, but wake at once when `stop` is set."""
    if seconds > 0 and not stop.is_set():
        try:
            await asyncio.wait_for(stop.wait(), seconds)
        except TimeoutError:
            pass


async def send_audio(send: Callable[[bytes | str], Awaitable[None]], sources: Sequence[AudioSource],
                     pacer: Pacer, stop: asyncio.Event) -> int:
    """Each source's chunks at real time, `flush` between sources; returns the samples sent.
    Stops early when `stop` is set; a failing source raises SourceError (after closing it)."""
    sent = 0
    for number, source in enumerate(sources):
        if stop.is_set():
            break
        if number:
            await send(json.dumps({"type": "flush"}))   # the last utterance of a file ends with it
        await asyncio.to_thread(source.open)
        try:
            while not stop.is_set():
                chunk = await asyncio.to_thread(source.read)
                if chunk is None:
                    break
                if chunk:
                    await _pause(pacer.delay(sent), stop)
                    await send(chunk)
                    sent += len(chunk) // BYTES_PER_SAMPLE
        finally:
            source.close()
    return sent


def _closed(code: int | None, reason: str | None) -> str:
    return f"the server closed the connection with code {code}" + (f" ({reason})" if reason else "")


class Listener:
    """One /stream session: the events it received and how it ended."""

    def __init__(self, display: Display, err=sys.stderr):
        self.display = display
        self.err = err
        self.errors = 0

    def problem(self, message: str) -> None:
        self.display.end_line()
        self.err.write(f"{PROG}: error: {' '.join(str(message).split())}\n")
        self.err.flush()

    def on_message(self, message: str | bytes) -> None:
        if isinstance(message, bytes):
            raise ListenError(f"the server sent a binary frame ({len(message)} bytes); /stream sends only JSON")
        try:
            event = json.loads(message)
        except ValueError:
            raise ListenError(f"the server sent a text frame that is not JSON: {message[:80]!r}") from None
        if not isinstance(event, dict):
            raise ListenError(f"the server sent a JSON frame that is not an event: {message[:80]!r}")
        self.display.show(event)
        if event.get("type") == "error":
            self.errors += 1
            self.problem(error_text(event))

    async def receive(self, ws) -> None:
        """Every event until the server closes; a close other than 1000 without an error event is a ListenError."""
        from websockets.exceptions import ConnectionClosed

        try:
            async for message in ws:
                self.on_message(message)
        except ConnectionClosed as exc:
            if self.errors:       # the error event already said why
                return
            if exc.rcvd is None:
                raise ListenError(f"connection lost: {exc}") from None
            raise ListenError(_closed(exc.rcvd.code, exc.rcvd.reason)) from None
        if ws.close_code != 1000 and not self.errors:
            raise ListenError(_closed(ws.close_code, ws.close_reason))

    async def run(self, ws, sources: Sequence[AudioSource], stop: asyncio.Event) -> int:
        """Send until the sources end or `stop`, then eof and the last final; the exit status."""
        from websockets.exceptions import ConnectionClosed

        receiver = asyncio.create_task(self.receive(ws))
        sender = asyncio.create_task(send_audio(ws.send, sources, Pacer(), stop))
        await asyncio.wait({receiver, sender}, return_when=asyncio.FIRST_COMPLETED)
        if receiver.done():              # the server ended the session before the audio did
            sender.cancel()
            await asyncio.gather(sender, return_exceptions=True)
            receiver.result()            # raises what ended it
            return EXIT_FAILED if self.errors else EXIT_OK
        problem = sender.exception()
        if isinstance(problem, ConnectionClosed):
            await receiver               # raises how the server ended it, unless an error event said so
            return EXIT_FAILED
        if problem is not None and not isinstance(problem, SourceError):
            receiver.cancel()
            raise problem
        await ws.send(json.dumps({"type": "eof"}))
        try:
            await asyncio.wait_for(receiver, EOF_WAIT_S)
        except TimeoutError:
            raise ListenError(f"the server did not close the session within {EOF_WAIT_S:g} s of eof") from None
        if problem is not None:
            self.problem(str(problem))
            return EXIT_FAILED
        return EXIT_FAILED if self.errors else EXIT_OK


def _http_error(url: str, exc) -> str:
    """A refused handshake: the status and the gateway's own message ({"error": {"code", "message"}})."""
    response = exc.response
    try:
        error = json.loads(bytes(response.body or b""))["error"]
        detail = f": {error['code']}: {error['message']}"
    except (ValueError, KeyError, TypeError):
        detail = f": {bytes(response.body or b'')[:80].decode('utf-8', 'replace')}" if response.body else ""
    return f"{url}: the server refused the WebSocket with HTTP {response.status_code}{detail}"


def _os_reason(exc: OSError) -> str:
    """"Connection refused", "Name or service not known", ... rather than asyncio's "Connect call failed (...)"."""
    if isinstance(exc, socket.gaierror):
        return str(exc.strerror)
    return os.strerror(exc.errno) if exc.errno and exc.errno > 0 else str(exc)


async def listen(url: str, api_key: str | None, sources: Sequence[AudioSource], listener: Listener,
                 stop: asyncio.Event) -> int:
    try:
        from websockets.asyncio.client import connect
        from websockets.exceptions import InvalidHandshake, InvalidStatus
    except ImportError as exc:
        raise ListenError(f"voxbus listen needs the websockets package, 13 or newer ({exc})") from None
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    try:
        ws = await connect(url, additional_headers=headers, max_size=None, compression=None,
                           open_timeout=OPEN_TIMEOUT_S, close_timeout=5)
    except InvalidStatus as exc:
        raise ListenError(_http_error(url, exc)) from None
    except InvalidHandshake as exc:
        raise ListenError(f"{url}: not a voxbus WebSocket ({exc})") from None
    except TimeoutError:
        raise ListenError(f"{url}: no WebSocket handshake within {OPEN_TIMEOUT_S:g} s") from None
    except OSError as exc:
        raise ListenError(f"cannot connect to {url}: {_os_reason(exc)}") from None
    async with ws:
        return await listener.run(ws, sources, stop)


async def _listen_until_interrupted(args: argparse.Namespace, url: str, listener: Listener) -> int:
    """The first Ctrl-C ends the audio (eof, last final); a second one cancels everything."""
    stop = asyncio.Event()
    loop, task = asyncio.get_running_loop(), asyncio.current_task()

    def on_sigint() -> None:
        if stop.is_set():
            task.cancel()
        stop.set()

    loop.add_signal_handler(signal.SIGINT, on_sigint)
    try:
        return await listen(url, args.api_key, sources_for(args), listener, stop)
    finally:
        loop.remove_signal_handler(signal.SIGINT)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point for `voxbus listen` (cli/main.py passes the arguments after it)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    out = sys.stdout
    listener = Listener(Display(out, Mode()))
    try:
        args = parse_args(argv)
        mode = Mode(json=args.json, tty=out.isatty(), width=shutil.get_terminal_size().columns)
        # Partials cost the server an encoder pass each: asked for only when they are printed.
        url = stream_url(args.url, args.language, args.task, args.end_silence_ms, partials=mode.json or mode.tty)
        listener.display = Display(out, mode)
        return asyncio.run(_listen_until_interrupted(args, url, listener))
    except UsageError as exc:
        listener.problem(str(exc))
        return EXIT_USAGE
    except SystemExit as exc:   # argparse after --help: it printed the help already
        return exc.code if isinstance(exc.code, int) else EXIT_OK
    except (ListenError, SourceError) as exc:
        listener.problem(str(exc))
        return EXIT_FAILED
    except (asyncio.CancelledError, KeyboardInterrupt):
        listener.problem("interrupted")
        return EXIT_INTERRUPTED
    except Exception as exc:  # noqa: BLE001 - CLI boundary: one line, never a traceback
        log.debug("listen failed", exc_info=True)
        listener.problem(f"{type(exc).__name__}: {exc}")
        return EXIT_FAILED
    finally:
        listener.display.end_line()


if __name__ == "__main__":
    sys.exit(main())
