"""One Wyoming transcription's text: finals in utterance order, and the streaming chunks.

Whisper's partials are revisions, not additions, while a `transcript-chunk` can only
add text. So a word goes out as a chunk only once two hypotheses in a row agree on
it (local agreement: the common prefix of the last two partials), and a final
sends whatever of it is not out yet. When a final contradicts words already sent,
nothing more is chunked for that request: the closing `transcript` event always
carries the authoritative text (the protocol sends it for every request).
Words are compared without case and punctuation ("for" agrees with "For,"): partials
and finals often differ only there.
"""
from __future__ import annotations

import re

_NOT_WORD = re.compile(r"[^\w']+")


def _key(word: str) -> str:
    return _NOT_WORD.sub("", word.lower())


def _same(a: list[str], b: list[str]) -> bool:
    return len(a) == len(b) and all(_key(x) == _key(y) for x, y in zip(a, b))


def _common_prefix(a: list[str], b: list[str]) -> list[str]:
    """The words of `b` that agree with `a` from the start."""
    n = 0
    while n < min(len(a), len(b)) and _key(a[n]) == _key(b[n]):
        n += 1
    return b[:n]


class TranscriptAssembler:
    def __init__(self) -> None:
        self.finals: dict[int, str] = {}    # utterance → final text
        self.previous: list[str] = []       # the last partial's hypothesis (finals + partial words)
        self.sent: list[str] = []           # words already sent as chunks
        self.diverged = False               # a final contradicted sent words: chunking stops
        self.language: str | None = None

    def _final_words(self) -> list[str]:
        return [w for utt in sorted(self.finals) for w in self.finals[utt].split()]

    def _advance(self, agreed: list[str]) -> str | None:
        """Words of `agreed` beyond those sent → the next chunk's text, or None."""
        if self.diverged:
            return None
        if not _same(agreed[:len(self.sent)], self.sent):
            return None
        new = agreed[len(self.sent):]
        if not new:
            return None
        text = (" " if self.sent else "") + " ".join(new)
        self.sent.extend(new)
        return text

    def partial(self, utt: int, text: str) -> str | None:
        if utt in self.finals:
            return None
        hypothesis = self._final_words() + text.split()
        agreed = _common_prefix(self.previous, hypothesis)
        self.previous = hypothesis
        return self._advance(agreed)

    def final(self, utt: int, text: str, language: str | None) -> str | None:
        self.finals[utt] = text.strip()
        self.language = language or self.language
        words = self._final_words()
        self.previous = words
        if not _same(words[:len(self.sent)], self.sent):
            self.diverged = True
            return None
        return self._advance(words)

    @property
    def text(self) -> str:
        return " ".join(self.finals[utt] for utt in sorted(self.finals) if self.finals[utt])
