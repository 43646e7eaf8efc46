"""Resuming a /stream session whose connection dropped: the client's network, or the gateway killed -9.

Every session's `ready`, each `final` and each `pong` carry `resume`, a token the gateway signs
with HMAC-SHA256 and a key kept in the run dir (`gateway-resume.key`, made once, mode 0600), so a
restarted gateway verifies tokens without any memory of the session. The token holds the
stream id, the session's settings, when it was issued, the stream's sample offset then, and which
finals the client has: the publish time of the newest one and the utterances delivered in the
SLACK_S before it (finals of two asr workers may arrive out of order).

`/stream?resume=<token>` within gateway.resume_window_s of the token's issue:
- the session goes on as the same stream (same id and settings: vad sees the same `open` and keeps
  its utterance numbering; a stream vad closed meanwhile numbers on where it stopped);
- its clock goes on in real time from the token's offset (vad fills a gap up to 1 s with silence,
  and after a longer one finishes the utterance it held and starts the timeline anew);
- the finals published since, from the store and the gateway's recent ones (gateway/replay.py),
  are sent first, marked `replayed`; none is sent twice (Session.on_bus drops a delivered utterance).
"""
from __future__ import annotations

import base64
import binascii
import dataclasses
import hashlib
import hmac
import json
import os
import secrets
import time
import uuid
from collections import deque
from dataclasses import dataclass
from pathlib import Path

from bus import schemas
from gateway import replay
from gateway.ws_protocol import ProtocolError, Session, SessionConfig, parse_config

TOKEN_VERSION = 1
KEY_FILE = "gateway-resume.key"
KEY_BYTES = 32
SLACK_S = 5.0          # finals up to this long before the newest delivered one are told apart by utterance
MAX_RECENT_UTTS = 64   # at most this many utterances in a token


@dataclass(frozen=True)
class ResumeState:
    """What a token says about its session."""
    stream: str
    config: dict          # the SessionConfig's fields
    issued: float         # epoch s
    samples: int          # the stream's offset when issued
    newest: float         # publish time of the newest final delivered (the session's start if none)
    utts: tuple[int, ...]  # utterances whose finals were delivered in the SLACK_S before `newest`


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _bad_token(why: str) -> ProtocolError:
    return ProtocolError("bad_resume_token", f"resume token refused: {why} (start a new session without resume)",
                         close_code=1008)


class ResumeSigner:
    """Issues and verifies tokens; `window_s` 0 means resume is off (no tokens, every resume refused)."""

    def __init__(self, key: bytes, window_s: float):
        self.key = key
        self.window_s = window_s

    @classmethod
    def load(cls, run_dir: str | Path, window_s: float) -> "ResumeSigner":
        """The run dir's key, made on first use; the same key for every gateway started in that run dir."""
        path = Path(run_dir) / KEY_FILE
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            key = path.read_bytes()
            if len(key) < KEY_BYTES:
                raise RuntimeError(f"{path}: a resume key of {len(key)} bytes (expected {KEY_BYTES}); "
                                   "remove the file and a new key is made") from None
            return cls(key, window_s)
        key = secrets.token_bytes(KEY_BYTES)
        with os.fdopen(fd, "wb") as fh:
            fh.write(key)
        return cls(key, window_s)

    @property
    def enabled(self) -> bool:
        return self.window_s > 0

    def _mac(self, body: str) -> str:
        return _b64(hmac.new(self.key, body.encode(), hashlib.sha256).digest())

    def issue(self, state: ResumeState) -> str:
        body = _b64(json.dumps({"v": TOKEN_VERSION, "s": state.stream, "c": state.config, "i": round(state.issued, 3),
                                "n": state.samples, "w": state.newest, "u": list(state.utts)},
                               separators=(",", ":")).encode())
        return f"{body}.{self._mac(body)}"

    def verify(self, token: str, now: float) -> ResumeState:
        """The state a token carries; ProtocolError (closing) for a forged, damaged or expired one."""
        if not self.enabled:
            raise ProtocolError("resume_disabled", "this gateway does not resume sessions "
                                                   "(gateway.resume_window_s = 0)", close_code=1008)
        body, _, mac = token.partition(".")
        if not body or not hmac.compare_digest(mac.encode(), self._mac(body).encode()):
            raise _bad_token("not signed by this server")
        try:
            fields = json.loads(_unb64(body))
            state = ResumeState(stream=schemas.check_id(fields["s"]), config=dict(fields["c"]),
                                issued=float(fields["i"]), samples=int(fields["n"]), newest=float(fields["w"]),
                                utts=tuple(int(u) for u in fields["u"]))
        except (binascii.Error, ValueError, KeyError, TypeError) as exc:
            raise _bad_token(f"unreadable ({type(exc).__name__})") from None
        if fields.get("v") != TOKEN_VERSION:
            raise _bad_token(f"version {fields.get('v')!r}")
        if now - state.issued > self.window_s:
            raise ProtocolError("resume_expired", f"the resume token is {now - state.issued:.0f} s old; tokens are "
                                                  f"good for {self.window_s:g} s (gateway.resume_window_s)",
                                close_code=1008)
        return state


class LiveSessions:
    """The handlers of the sessions this gateway serves, by stream. A resume of a session whose old
    connection the gateway still holds (the client's network dropped and nothing told the gateway
    yet) takes it over: the old handler ends without publishing `close`, so vad keeps the stream."""

    def __init__(self) -> None:
        self.handlers: dict[str, object] = {}

    async def take_over(self, stream: str) -> None:
        old = self.handlers.get(stream)
        if old is not None:
            old.hand_over()
            await old.done.wait()

    def serving(self, stream: str, handler) -> None:
        self.handlers[stream] = handler

    def gone(self, stream: str, handler) -> None:
        if self.handlers.get(stream) is handler:
            del self.handlers[stream]


@dataclass
class Resume:
    """What the app keeps for resume: the token signer and the live sessions."""
    signer: ResumeSigner
    live: LiveSessions

    @classmethod
    def load(cls, run_dir: str | Path, window_s: float) -> "Resume":
        return cls(ResumeSigner.load(run_dir, window_s), LiveSessions())


class ResumeBook:
    """A session's side of resume: which finals the client has, and its current token."""

    def __init__(self, signer: ResumeSigner, newest: float, utts: tuple[int, ...] = ()):
        self.signer = signer
        self.newest = newest
        self.recent: deque[tuple[float, int]] = deque(((newest, u) for u in utts), maxlen=MAX_RECENT_UTTS)

    def delivered(self, final: schemas.Final) -> None:
        if final.ts is not None:
            self.newest = max(self.newest, final.ts)
        self.recent.append((final.ts if final.ts is not None else self.newest, final.utt))

    def token(self, session: Session, now: float) -> str:
        utts = tuple(sorted({u for t, u in self.recent if t >= self.newest - SLACK_S}))
        return self.signer.issue(ResumeState(session.stream, dataclasses.asdict(session.config), now,
                                             session.samples, self.newest, utts))


def new_session(params: dict, gw, signer: ResumeSigner, frame_samples: int, now: float,
                check=lambda config: None) -> tuple[Session, ResumeState | None]:
    """The session a /stream connection asks for: a new one, or (with `resume`) the one its token names,
    its settings changed by any other query parameters. ProtocolError (closing) names what is wrong;
    `check` (gateway.models) refuses settings the served models cannot do."""
    params = dict(params)
    token = params.pop("resume", None)
    state = signer.verify(token, now) if token is not None else None
    if state is None:
        config = parse_config(params, SessionConfig(), gw)
        check(config)
        session = Session(f"ws-{uuid.uuid4().hex[:12]}", config, gw, frame_samples, check)
    else:
        try:
            restored = parse_config({k: v for k, v in state.config.items() if v is not None}, SessionConfig(), gw)
        except ProtocolError as exc:   # the gateway's limits changed since the token was issued
            raise _bad_token(exc.message) from None
        config = parse_config(params, restored, gw)
        check(config)
        session = Session(state.stream, config, gw, frame_samples, check)
        session.samples = session.start_samples = state.samples + round(max(0.0, now - state.issued)
                                                                        * schemas.SAMPLE_RATE)
        session.finished.update(state.utts)
    if signer.enabled:
        session.resume = ResumeBook(signer, state.newest if state else now, state.utts if state else ())
    return session, state


async def catch_up(session: Session, state: ResumeState, router, store) -> list[dict]:
    """The client events a resumed session missed, oldest utterance first (its finals, and an error
    event when the store could not be asked, so the client knows the list may be short)."""
    finals, problem = await replay.missed(store, router.recent, state.newest - SLACK_S, session.stream)
    events = []
    if problem:
        events.append({"type": "error", "code": "resume_incomplete", "message": problem,
                       "timestamp": round(time.time(), 3)})
    for final in sorted((f for f in finals if f.job is None), key=lambda f: f.utt):
        event = session.on_bus(final)
        if event is not None:
            events.append({**event, "replayed": True})
    return events
