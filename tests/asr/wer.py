"""Word error rate with Whisper-style English normalisation (shared with tests/bench).

Both sides are normalised the same way: lower case, accents folded, bracketed
asides such as "[laughter]" dropped, apostrophes joined ("don't" -> "dont"),
every other punctuation mark turned into a space, whitespace collapsed. Numbers
are left as written; the eval references spell them the way the models do often
enough for a 10 % bar.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence

import jiwer

_BRACKETED = re.compile(r"[<\[][^>\]]*[>\]]|\([^)]*\)")
_APOSTROPHES = re.compile(r"[’'`]")
_NOT_WORD = re.compile(r"[^\w\s]|_")


def normalize_english(text: str) -> str:
    text = unicodedata.normalize("NFKD", text.lower())
    text = "".join(c for c in text if not unicodedata.combining(c))
    text = _BRACKETED.sub(" ", text)
    text = _APOSTROPHES.sub("", text)
    text = _NOT_WORD.sub(" ", text)
    return " ".join(text.split())


def wer(references: Sequence[str], hypotheses: Sequence[str]) -> float:
    """Corpus WER (total edits / total reference words) after normalisation, in [0, ∞)."""
    if len(references) != len(hypotheses):
        raise ValueError(f"{len(references)} references but {len(hypotheses)} hypotheses")
    refs = [normalize_english(r) for r in references]
    hyps = [normalize_english(h) for h in hypotheses]
    if not any(refs):
        raise ValueError("references are empty after normalisation")
    # jiwer refuses empty references; score those pairs as pure insertions.
    scored = [(r, h) for r, h in zip(refs, hyps) if r]
    insertions = sum(len(h.split()) for r, h in zip(refs, hyps) if not r)
    output = jiwer.process_words([r for r, _ in scored], [h for _, h in scored])
    edits = output.substitutions + output.deletions + output.insertions + insertions
    return edits / sum(len(r.split()) for r, _ in scored)
