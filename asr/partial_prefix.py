"""The prefix a live partial resumes from: the tokens the utterance's last two partials agree on.

Local agreement (whisper_streaming's LocalAgreement-2): what two decodes of the growing audio
both said is stable, so the next partial forces those tokens and the decoder only runs for the
words after them. The cut falls where a word starts, never inside one. Finals always decode
afresh: a prefix only shapes partials, which the final replaces.
"""
from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable, Sequence

MAX_UTTERANCES = 1024  # utterances remembered at once (two partials each), oldest dropped first


def agreed_prefix(older: Sequence[int], newer: Sequence[int], starts_word: Callable[[int], bool]) -> tuple[int, ...]:
    """The longest common prefix of two decodes, cut back to where `newer` starts a word."""
    n = 0
    for a, b in zip(older, newer):
        if a != b:
            break
        n += 1
    while 0 < n < len(newer) and not starts_word(newer[n]):
        n -= 1
    return tuple(newer[:n])


class PartialPrefixes:
    """The last two partial decodes of each utterance, and the prefix they agree on.

    Decode threads call `prefix` and `add` concurrently, and partials of one utterance may finish
    out of order: the two decodes of the most audio are kept.
    """

    def __init__(self, starts_word: Callable[[int], bool], max_utterances: int = MAX_UTTERANCES):
        self.starts_word = starts_word
        self.max_utterances = max_utterances
        self.decodes: OrderedDict[Hashable, list[tuple[int, tuple[int, ...]]]] = OrderedDict()
        self.lock = threading.Lock()

    def prefix(self, utterance: Hashable, samples: int) -> tuple[int, ...]:
        """Tokens a partial of `samples` of the utterance's audio may start with (() for none)."""
        with self.lock:
            kept = [tokens for length, tokens in self.decodes.get(utterance, ()) if length <= samples]
        if len(kept) < 2:
            return ()
        return agreed_prefix(kept[-2], kept[-1], self.starts_word)

    def heard(self, utterance: Hashable) -> bool:
        """True once a partial of the utterance has been decoded with words."""
        return utterance in self.decodes

    def add(self, utterance: Hashable, samples: int, tokens: Sequence[int]) -> None:
        """A partial decode of the first `samples` of the utterance's audio (one without words is
        not kept: it agrees with nothing)."""
        if not tokens:
            return
        with self.lock:
            kept = self.decodes.setdefault(utterance, [])
            kept.append((samples, tuple(tokens)))
            kept.sort(key=lambda decode: decode[0])
            del kept[:-2]
            self.decodes.move_to_end(utterance)
            while len(self.decodes) > self.max_utterances:
                self.decodes.popitem(last=False)

    def forget(self, keep: Callable[[Hashable], bool]) -> None:
        """Drop every utterance for which `keep` is false (an utterance that ended, a stream that closed)."""
        with self.lock:
            for utterance in [u for u in self.decodes if not keep(u)]:
                del self.decodes[utterance]
