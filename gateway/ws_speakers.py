"""WebSocket `speakers=true`: each final of the session carries the speaker stage's live label.

The speaker stage (`[speaker] live`) labels every final of text/<s>/ after it is published and
answers on speaker/<s>/ (`Speakers`, `utt` naming the final). A session that asked for speakers
holds each final until its label is in, or `[speaker] live_wait_s` has passed (then it goes out
unlabelled), finals in order; partials, vad events and errors are never held. A final then gains
`speaker` (whoever spoke most of it) and `speakers` (its turns); its segments and words get a
`speaker` each, and where the speaker changes inside a segment (with word timings: `[asr]
word_timestamps`), it is split at the word where it changes.

Holding the bus message (not the client event) keeps the session's eof drain waiting for a held
final: the session counts an utterance finished only when its final goes through `on_bus`.
"""
from __future__ import annotations

import asyncio
import time
from collections import OrderedDict, deque

from bus import schemas
from bus.speaker_turns import assign_speakers, speaker_at
from gateway.diarization import with_words
from gateway.ws_protocol import ProtocolError

MAX_EARLY_LABELS = 64  # labels kept for finals not seen yet (or never to be seen)


def speaker_check(check, speaker_cfg):
    """The session's model check, plus: speakers=true needs the speaker stage labelling live streams."""
    def checked(config) -> None:
        check(config)
        if config.speakers and not (speaker_cfg.enabled and speaker_cfg.live):
            raise ProtocolError("speakers_unavailable",
                                "speakers=true needs live speaker labels on this server "
                                "([speaker] enabled = true and live = true, then: voxbus model build speaker)",
                                close_code=1008)
    return checked


class SpeakerLabels:
    """Finals waiting for their label, in order; pure (the caller gives the clock)."""

    def __init__(self, wait_s: float):
        self.wait_s = wait_s
        self.held: deque[tuple[schemas.Transcript, float]] = deque()  # (final, deadline)
        self.labels: OrderedDict[int, list] = OrderedDict()  # utt → turns
        self.unlabelled = 0  # finals that went out without their label

    def take(self, msg: schemas.Message | None, now: float) -> list[tuple[schemas.Message, list | None]]:
        """What may go to the client now: (message, its final's turns or None), in order."""
        out: list[tuple[schemas.Message, list | None]] = []
        if isinstance(msg, schemas.Speakers):
            if msg.utt is not None:
                self.labels[msg.utt] = msg.turns
                while len(self.labels) > MAX_EARLY_LABELS:
                    self.labels.popitem(last=False)
        elif isinstance(msg, schemas.Transcript) and msg.kind == "final":
            self.held.append((msg, now + self.wait_s))
        elif msg is not None:
            out.append((msg, None))
        while self.held:
            final, deadline = self.held[0]
            turns = self.labels.pop(final.utt, None)
            if turns is None and now < deadline:
                break
            self.held.popleft()
            self.unlabelled += turns is None
            out.append((final, turns))
        return out

    def wait(self, now: float) -> float | None:
        """Seconds until the first held final is due; None when none is held."""
        return max(0.0, self.held[0][1] - now) if self.held else None


def labelled(event: dict, turns: list | None) -> dict:
    """A final event with its speaker(s); unchanged when it has no turns (its label did not come)."""
    if event.get("type") != "final" or not turns:
        return event
    event = {**event, "speaker": speaker_at(float(event["start"]), float(event["end"]), turns), "speakers": turns}
    words = event.get("words") or []
    segments = event.get("segments") or []
    if words:
        event["words"] = [{**w, "speaker": speaker_at(float(w["start"]), float(w["end"]), turns)} for w in words]
        had_words = any(s.get("words") for s in segments)
        split = assign_speakers(with_words(segments, words), turns)
        event["segments"] = split if had_words else [{k: v for k, v in s.items() if k != "words"} for s in split]
    else:
        event["segments"] = assign_speakers(segments, turns)
    return event


async def listen(queue: asyncio.Queue, session, emit, wait_s: float) -> None:
    """The session's listener with speakers on: bus → held until labelled → session → client."""
    labels = SpeakerLabels(wait_s)
    while True:
        msg = None
        try:
            async with asyncio.timeout(labels.wait(time.monotonic())):
                msg = await queue.get()
        except TimeoutError:
            pass  # a held final is due: it goes out unlabelled
        for ready, turns in labels.take(msg, time.monotonic()):
            event = session.on_bus(ready)
            if event is not None:
                emit(labelled(event, turns))
