"""Temperature fallback: decode again, hotter, while the result looks like a failure.

Whisper's rule: a decode fails when its text compresses too well (a loop,
compression ratio above the threshold; voxbus adds the repetition guard's own
loop check) or its average log-probability is too low; a window that is probably silence is not retried. When every temperature
fails, the best failure is kept: the most likely decode among those that do not
loop, else among all (faster-whisper's choice; whisper keeps the last one).
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from asr.whisper.decoding import DecodingResult
from asr.whisper.options import TranscribeOptions

LoopCheck = Callable[[DecodingResult], bool]

logger = logging.getLogger(__name__)


def needs_fallback(result: DecodingResult, options: TranscribeOptions, loops: LoopCheck | None = None) -> bool:
    """loops: the repetition guard's verdict, a failure like a high compression ratio."""
    if options.no_speech_threshold is not None and result.no_speech_prob > options.no_speech_threshold:
        return False  # probably silence: a hotter decode would only invent more
    too_repetitive = (options.compression_ratio_threshold is not None
                      and result.compression_ratio > options.compression_ratio_threshold)
    too_repetitive = too_repetitive or (loops is not None and loops(result))
    too_unlikely = options.logprob_threshold is not None and result.avg_logprob < options.logprob_threshold
    return too_repetitive or too_unlikely


def decode_with_fallback(decode: Callable[[float], DecodingResult], options: TranscribeOptions,
                         loops: LoopCheck | None = None) -> DecodingResult:
    """`decode(temperature)` at each of options.temperature until one passes."""
    failures: list[DecodingResult] = []
    for temperature in options.temperature:
        result = decode(temperature)
        if not needs_fallback(result, options, loops):
            return result
        failures.append(result)
        logger.debug("fallback after temperature %.1f: compression %.2f, avg logprob %.2f",
                     temperature, result.compression_ratio, result.avg_logprob)
    threshold = options.compression_ratio_threshold
    not_looping = [r for r in failures if threshold is None or r.compression_ratio <= threshold]
    return max(not_looping or failures, key=lambda r: r.avg_logprob)
