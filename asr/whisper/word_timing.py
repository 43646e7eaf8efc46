"""Word-level timestamps from the cross-attention of the alignment heads.

The reference method (openai-whisper's timing.py, written afresh here): run the
decoder once over the window's finished tokens with the attention weights of
the alignment heads exposed (decoder_attn.onnx), normalise each head over the
tokens, median-filter along time, average the heads, and align tokens to
encoder frames by dynamic time warping. Word boundaries are where the path
moves to the word's first token. Then the reference's clean-ups: punctuation
joins its word, words longer than twice the median (capped at 0.7 s) are
trimmed at sentence and segment edges.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from asr.whisper.tokenizer import Tokenizer

FRAMES_PER_SECOND = 50  # encoder frames (= timestamp steps) per second
MEDIAN_FILTER_WIDTH = 7
SENTENCE_END_MARKS = ".。!！?？"

# (tokens [1, n]) -> (logits [1, n, n_vocab], softmaxed cross_attn [n_heads, 1, n, n_audio_ctx])
AttentionFn = Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]


@dataclass
class WordTiming:
    word: str
    tokens: list[int]
    start: float  # seconds from the window start
    end: float
    probability: float


@dataclass
class TimedSegment:
    """What word timing needs of one segment, and where its words go."""

    start: float  # seconds from the audio start, updated to its words' edges
    end: float
    text_tokens: list[int]
    words: list[dict] = field(default_factory=list)


def median_filter(x: np.ndarray, width: int) -> np.ndarray:
    """Median over a sliding window of odd `width` along the last axis, reflect-padded."""
    pad = width // 2
    if x.shape[-1] <= pad:
        return x
    padded = np.pad(x, [(0, 0)] * (x.ndim - 1) + [(pad, pad)], mode="reflect")
    return np.median(np.lib.stride_tricks.sliding_window_view(padded, width, axis=-1), axis=-1)


def dtw(cost: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Cheapest monotonic path through cost [n_tokens, n_frames]: (token indices, frame indices).

    Filled one anti-diagonal at a time, so each step is a vector operation;
    ties break as the reference's loop does (diagonal, then up, then left).
    """
    n, m = cost.shape
    total = np.full((n + 1, m + 1), np.inf)
    total[0, 0] = 0.0
    trace = np.full((n + 1, m + 1), -1, dtype=np.int8)
    for diagonal in range(2, n + m + 1):
        i = np.arange(max(1, diagonal - m), min(n, diagonal - 1) + 1)
        j = diagonal - i
        c0, c1, c2 = total[i - 1, j - 1], total[i - 1, j], total[i, j - 1]
        choice = np.where((c0 < c1) & (c0 < c2), 0, np.where((c1 < c0) & (c1 < c2), 1, 2))
        total[i, j] = cost[i - 1, j - 1] + np.choose(choice, [c0, c1, c2])
        trace[i, j] = choice
    trace[0, :] = 2
    trace[:, 0] = 1
    return _backtrace(trace)


def _backtrace(trace: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    i, j = trace.shape[0] - 1, trace.shape[1] - 1
    path = []
    while i > 0 or j > 0:
        path.append((i - 1, j - 1))
        step = trace[i, j]
        if step == 0:
            i, j = i - 1, j - 1
        elif step == 1:
            i -= 1
        else:
            j -= 1
    path.reverse()
    indices = np.array(path, dtype=np.int64).reshape(-1, 2)
    return indices[:, 0], indices[:, 1]


def find_alignment(attention: AttentionFn, tokenizer: Tokenizer, sot_sequence: tuple[int, ...],
                   text_tokens: list[int], n_frames: int, language: str | None) -> list[WordTiming]:
    """Words of `text_tokens` with start/end seconds within the window and probabilities.

    sot_sequence: the window's start tokens without <|notimestamps|>; n_frames:
    mel frames of audio in the window (the attention beyond is padding);
    language: of the text (languages written without spaces split per character).
    """
    if not text_tokens:
        return []
    special = tokenizer.special
    tokens = np.array([[*sot_sequence, special.no_timestamps, *text_tokens, special.eot]], dtype=np.int64)
    logits, attention_weights = attention(tokens)
    sampled = logits[0, len(sot_sequence) :, : special.eot].astype(np.float64)
    sampled = np.exp(sampled - np.logaddexp.reduce(sampled, axis=-1, keepdims=True))
    text_probs = sampled[np.arange(len(text_tokens)), text_tokens]
    weights = attention_weights[:, 0, :, : max(1, n_frames // 2)].astype(np.float64)
    # The graph's softmax ran over the whole window: renormalise over the audio part.
    weights /= np.maximum(weights.sum(axis=-1, keepdims=True), 1e-12)
    weights = (weights - weights.mean(axis=-2, keepdims=True)) / np.maximum(weights.std(axis=-2, keepdims=True), 1e-12)
    matrix = median_filter(weights, MEDIAN_FILTER_WIDTH).mean(axis=0)[len(sot_sequence) : -1]
    text_indices, time_indices = dtw(-matrix)
    words, word_tokens = tokenizer.split_to_word_tokens([*text_tokens, special.eot], language)
    if len(word_tokens) <= 1:
        return []
    boundaries = np.pad(np.cumsum([len(t) for t in word_tokens[:-1]]), (1, 0))
    jumps = np.pad(np.diff(text_indices), (1, 0), constant_values=1).astype(bool)
    jump_times = time_indices[jumps] / FRAMES_PER_SECOND
    starts, ends = jump_times[boundaries[:-1]], jump_times[boundaries[1:]]
    return [WordTiming(word, tokens_, float(start), float(end), float(np.mean(text_probs[i:j])))
            for word, tokens_, start, end, i, j in zip(words[:-1], word_tokens[:-1], starts, ends,
                                                       boundaries[:-1], boundaries[1:])]


def merge_punctuations(alignment: list[WordTiming], prepended: str, appended: str) -> None:
    """Opening marks join the next word, closing marks the previous one (in place)."""
    following = len(alignment) - 1
    for index in range(len(alignment) - 2, -1, -1):
        previous = alignment[index]
        if previous.word.startswith(" ") and previous.word.strip() in prepended:
            target = alignment[following]
            target.word, target.tokens = previous.word + target.word, previous.tokens + target.tokens
            previous.word, previous.tokens = "", []
        else:
            following = index
    kept = 0
    for index in range(1, len(alignment)):
        previous, current = alignment[kept], alignment[index]
        if not previous.word.endswith(" ") and current.word in appended:
            previous.word, previous.tokens = previous.word + current.word, previous.tokens + current.tokens
            current.word, current.tokens = "", []
        else:
            kept = index


def _trim_long_words(alignment: list[WordTiming], max_duration: float) -> None:
    """A word far longer than usual next to a sentence end took the pause with it."""
    for index in range(1, len(alignment)):
        word = alignment[index]
        if word.end - word.start <= max_duration:
            continue
        if word.word in SENTENCE_END_MARKS:
            word.end = word.start + max_duration
        elif alignment[index - 1].word in SENTENCE_END_MARKS:
            word.start = word.end - max_duration


def _words_of(alignment: list[WordTiming], position: int, n_tokens: int, offset: float) -> tuple[list[dict], int]:
    """The next words covering n_tokens tokens, from alignment[position]; returns them and the new position."""
    words, taken = [], 0
    while position < len(alignment) and taken < n_tokens:
        timing = alignment[position]
        if timing.word:
            words.append({"word": timing.word, "start": round(offset + timing.start, 2),
                          "end": round(offset + timing.end, 2), "probability": round(timing.probability, 4)})
        taken += len(timing.tokens)
        position += 1
    return words, position


def _fit_to_segment(segment: TimedSegment, words: list[dict], last_speech: float,
                    median_duration: float, max_duration: float) -> None:
    """The reference's edge rules between a segment's own timestamps and its words' (in place)."""
    first = words[0]
    # After a pause, the first word(s) must not stretch back into it.
    if first["end"] - last_speech > median_duration * 4 and (
            first["end"] - first["start"] > max_duration
            or (len(words) > 1 and words[1]["end"] - first["start"] > max_duration * 2)):
        if len(words) > 1 and words[1]["end"] - words[1]["start"] > max_duration:
            boundary = max(words[1]["end"] / 2, words[1]["end"] - max_duration)
            first["end"] = words[1]["start"] = boundary
        first["start"] = max(0.0, first["end"] - max_duration)
    if segment.start < first["end"] and segment.start - 0.5 > first["start"]:
        first["start"] = max(0.0, min(first["end"] - median_duration, segment.start))
    else:
        segment.start = first["start"]
    last = words[-1]
    if segment.end > last["start"] and segment.end + 0.5 < last["end"]:
        last["end"] = max(last["start"] + median_duration, segment.end)
    else:
        segment.end = last["end"]


def add_word_timestamps(segments: list[TimedSegment], alignment: list[WordTiming], window_offset: float,
                        last_speech: float, prepended: str, appended: str) -> float:
    """Give each segment of one window its words (seconds from the audio start, like
    the segments' start/end). Returns the end of the last speech, for the next window."""
    durations = np.array([w.end - w.start for w in alignment])
    durations = durations[durations.nonzero()]
    median_duration = min(0.7, float(np.median(durations))) if durations.size else 0.0
    max_duration = median_duration * 2
    if durations.size:
        _trim_long_words(alignment, max_duration)
    merge_punctuations(alignment, prepended, appended)
    position = 0
    for segment in segments:
        words, position = _words_of(alignment, position, len(segment.text_tokens), window_offset)
        if words:
            _fit_to_segment(segment, words, last_speech, median_duration, max_duration)
            last_speech = segment.end
        segment.words = words
    return last_speech
