"""Whisper's tokenizer on top of a Hugging Face `tokenizer.json`.

The byte-level BPE comes from the `tokenizers` library; everything Whisper adds on
top (special tokens, the start-of-transcript sequence, timestamp tokens that sit
past the end of the BPE vocabulary, the non-speech suppression list) lives here.
"""

from __future__ import annotations

import re
import string
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import MappingProxyType

from tokenizers import Tokenizer as HFTokenizer
from tokenizers import pre_tokenizers

TASKS = ("transcribe", "translate")
TIME_PRECISION = 0.02  # seconds per timestamp token (one encoder frame = two mel frames)

# Whisper names its special tokens; older tokenizer files call no_speech "nocaptions".
_SPECIAL_NAMES = {
    "eot": ("<|endoftext|>",),
    "sot": ("<|startoftranscript|>",),
    "transcribe": ("<|transcribe|>",),
    "translate": ("<|translate|>",),
    "sot_lm": ("<|startoflm|>",),
    "sot_prev": ("<|startofprev|>",),
    "no_speech": ("<|nospeech|>", "<|nocaptions|>"),
    "no_timestamps": ("<|notimestamps|>",),
}
_NO_SPACE_LANGUAGES = ("zh", "ja", "th", "lo", "my", "yue")
_REPLACEMENT_CHARACTER = "\ufffd"
_LANGUAGE_TOKEN = re.compile(r"^<\|([a-z]{2,3})\|>$")


@dataclass(frozen=True)
class SpecialTokens:
    """Ids of Whisper's special tokens; timestamps are `timestamp_begin + k` for k ≥ 0."""

    eot: int
    sot: int
    transcribe: int
    translate: int
    sot_lm: int
    sot_prev: int
    no_speech: int
    no_timestamps: int
    timestamp_begin: int
    languages: Mapping[str, int] = field(default_factory=dict)  # code -> token id


def _find_special_tokens(hf: HFTokenizer) -> SpecialTokens:
    ids: dict[str, int] = {}
    for role, names in _SPECIAL_NAMES.items():
        found = [hf.token_to_id(name) for name in names if hf.token_to_id(name) is not None]
        if not found:
            raise ValueError(f"tokenizer.json has no special token {' or '.join(names)}")
        ids[role] = found[0]
    languages = {}
    for token_id, added in sorted(hf.get_added_tokens_decoder().items()):
        match = _LANGUAGE_TOKEN.match(added.content)
        if match:
            languages[match.group(1)] = token_id
    # Timestamp tokens are not in tokenizer.json: they follow <|notimestamps|>.
    return SpecialTokens(
        timestamp_begin=ids["no_timestamps"] + 1,
        languages=MappingProxyType(languages),
        **ids,
    )


class Tokenizer:
    """Text <-> token ids for one Whisper model, plus Whisper's special-token logic."""

    def __init__(self, hf: HFTokenizer, multilingual: bool, languages: Mapping[str, int] | None = None):
        """languages: code -> token id to offer (a model manifest's list); default
        every <|xx|> token in the tokenizer."""
        # tokenizer.json ships ByteLevel(add_prefix_space=True); Whisper's tiktoken
        # encoding never adds a space, and " -" vs "-" must stay different tokens.
        hf.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
        self._hf = hf
        self.multilingual = multilingual
        self.special = _find_special_tokens(hf)
        if languages is not None:
            self.special = replace(self.special, languages=MappingProxyType(dict(languages)))
        self._non_speech: tuple[int, ...] | None = None  # computed on first use
        self._word_starts: dict[int, bool] = {}  # starts_word's answers, filled as tokens are asked about

    @classmethod
    def from_file(
        cls, path: Path | str, multilingual: bool, languages: Mapping[str, int] | None = None
    ) -> Tokenizer:
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"tokenizer file not found: {path}")
        return cls(HFTokenizer.from_file(str(path)), multilingual, languages)

    # --- plain text -------------------------------------------------------------

    def encode(self, text: str) -> list[int]:
        """BPE ids of `text` exactly as written (no prefix space, no special tokens)."""
        return self._hf.encode(text, add_special_tokens=False).ids

    def decode(self, token_ids: Iterable[int]) -> str:
        """Text of `token_ids`; timestamp tokens are dropped."""
        text_ids = [int(t) for t in token_ids if t < self.special.timestamp_begin]
        return self._hf.decode(text_ids, skip_special_tokens=False)

    def decode_with_timestamps(self, token_ids: Iterable[int]) -> str:
        """Text with timestamp tokens rendered as "<|1.08|>", as whisper does."""
        parts: list[str] = []
        pending: list[int] = []
        for token in token_ids:
            if token >= self.special.timestamp_begin:
                parts.append(self._hf.decode(pending, skip_special_tokens=False))
                pending = []
                seconds = (token - self.special.timestamp_begin) * TIME_PRECISION
                parts.append(f"<|{seconds:.2f}|>")
            else:
                pending.append(int(token))
        parts.append(self._hf.decode(pending, skip_special_tokens=False))
        return "".join(parts)

    def starts_word(self, token: int) -> bool:
        """True when text may be cut before `token`: a timestamp or control token, or one that
        begins with a space (a new word)."""
        known = self._word_starts.get(token)
        if known is None:
            text = self._hf.decode([int(token)], skip_special_tokens=False)
            known = token >= self.special.eot or text.startswith(" ")
            self._word_starts[token] = known
        return known

    # --- Whisper's control tokens ---------------------------------------------

    @property
    def language_codes(self) -> tuple[str, ...]:
        """Language codes this model can be told to use, in token order."""
        if not self.multilingual:
            return ("en",)
        return tuple(self.special.languages)

    def language_token(self, code: str) -> int:
        if code not in self.special.languages:
            raise ValueError(f"unknown language code {code!r}")
        return self.special.languages[code]

    def sot_sequence(self, language: str | None, task: str, timestamps: bool) -> tuple[int, ...]:
        """Tokens that start a transcript: <|sot|> [<|lang|> <|task|>] [<|notimestamps|>].

        English-only models take no language or task token. A multilingual model
        needs the language decided first (see decoding.detect_language).
        """
        if task not in TASKS:
            raise ValueError(f"task must be one of {TASKS}, got {task!r}")
        sequence = [self.special.sot]
        if self.multilingual:
            if language is None:
                raise ValueError("a multilingual model needs a language for its sot sequence")
            sequence += [self.language_token(language), getattr(self.special, task)]
        if not timestamps:
            sequence.append(self.special.no_timestamps)
        return tuple(sequence)

    def non_speech_tokens(self) -> tuple[int, ...]:
        """Tokens for symbols that are not speech, which Whisper never lets it say.

        Same list as whisper.tokenizer.Tokenizer.non_speech_tokens: speaker tags
        and sound-effect markup such as "(", "[", "♪", but keeps "-" and "'" only
        in their space-prefixed form since they are common inside words.
        """
        if self._non_speech is None:
            self._non_speech = self._compute_non_speech_tokens()
        return self._non_speech

    def _compute_non_speech_tokens(self) -> tuple[int, ...]:
        symbols = list('"#()*+/:;<=>@[\\]^_`{|}~「」『』')
        symbols += "<< >> <<< >>> -- --- -( -[ (' (\" (( )) ((( ))) [[ ]] {{ }} ♪♪ ♪♪♪".split()
        miscellaneous = set("♩♪♫♬♭♮♯")
        result = {self.encode(" -")[0], self.encode(" '")[0]}
        for symbol in symbols + sorted(miscellaneous):
            for tokens in (self.encode(symbol), self.encode(" " + symbol)):
                if len(tokens) == 1 or symbol in miscellaneous:
                    result.add(tokens[0])
        return tuple(sorted(result))

    def split_at_timestamps(
        self, tokens: Sequence[int], keep_trailing: bool
    ) -> tuple[list[tuple[int, int | None, tuple[int, ...]]], int | None]:
        """Cut one window's sampled tokens into timed pieces, Whisper's way.

        Returns (pieces, resume_at). A piece is (start, end, tokens) in timestamp
        steps of TIME_PRECISION from the window start; end None means "the end of
        the window". resume_at is None when the window ended cleanly, else the step
        of the last closed timestamp: text after it was cut short and is decoded
        again from there. With keep_trailing (no next window) that text is kept
        as a last piece instead.
        """
        begin = self.special.timestamp_begin
        tokens = tuple(int(t) for t in tokens)
        is_timestamp = [t >= begin for t in tokens]
        closes_pair = [i + 1 for i in range(len(tokens) - 1) if is_timestamp[i] and is_timestamp[i + 1]]
        if not closes_pair:
            stamps = [t - begin for t in tokens if t >= begin]
            return ([(0, stamps[-1] if stamps and stamps[-1] > 0 else None, tokens)] if tokens else []), None
        single_timestamp_ending = is_timestamp[-2:] == [False, True]
        if single_timestamp_ending:
            closes_pair.append(len(tokens))
        pieces, last_slice = [], 0
        for current_slice in closes_pair:
            piece = tokens[last_slice:current_slice]
            pieces.append((piece[0] - begin, piece[-1] - begin, piece))
            last_slice = current_slice
        if single_timestamp_ending:
            return pieces, None
        if keep_trailing and last_slice < len(tokens):
            pieces.append((pieces[-1][1], None, tokens[last_slice:]))
        resume_at = tokens[last_slice - 1] - begin
        # Resuming at 0 would decode the same window forever.
        return pieces, resume_at if resume_at > 0 else None

    def split_to_word_tokens(self, tokens: Sequence[int], language: str | None) -> tuple[list[str], list[list[int]]]:
        """Words and their tokens, for word timestamps: on spaces and punctuation, or
        per character for languages written without spaces (as whisper splits them)."""
        if language in _NO_SPACE_LANGUAGES:
            return self._split_on_unicode(tokens)
        words: list[str] = []
        word_tokens: list[list[int]] = []
        for subword, subword_tokens in zip(*self._split_on_unicode(tokens)):
            starts_word = (subword_tokens[0] >= self.special.eot or subword.startswith(" ")
                           or subword.strip() in string.punctuation or not words)
            if starts_word:
                words.append(subword)
                word_tokens.append(list(subword_tokens))
            else:
                words[-1] += subword
                word_tokens[-1].extend(subword_tokens)
        return words, word_tokens

    def _split_on_unicode(self, tokens: Sequence[int]) -> tuple[list[str], list[list[int]]]:
        """Smallest runs of tokens that decode to whole characters (a token may hold half a UTF-8 character)."""
        full = self.decode_with_timestamps(tokens)
        words: list[str] = []
        word_tokens: list[list[int]] = []
        current: list[int] = []
        offset = 0
        for token in tokens:
            current.append(int(token))
            decoded = self.decode_with_timestamps(current)
            bad = decoded.find(_REPLACEMENT_CHARACTER)
            if bad < 0 or full[offset + bad : offset + bad + 1] == _REPLACEMENT_CHARACTER:
                words.append(decoded)
                word_tokens.append(current)
                current = []
                offset += len(decoded)
        return words, word_tokens

    def control_tokens(self) -> tuple[int, ...]:
        """Tokens that must never be sampled as text (whisper's suppress "-1" extras)."""
        special = self.special
        return (
            special.transcribe,
            special.translate,
            special.sot,
            special.sot_prev,
            special.sot_lm,
            special.no_speech,
        )
