"""Alert rules on finals: keywords or a regular expression (case-insensitive, word boundaries),
an optional stream filter, silence rules (no speech on a stream for N minutes, then speech again),
and speaker rules (a named or labelled speaker heard on a stream: once per stream).

Pure: no sockets, no SQLite, no clock of its own. `Alerts.on_final` is called once per final
the store takes (never for a duplicate), so a rule fires once per match; `Alerts.tick(now)`
finds streams gone silent; `Alerts.on_speakers` is called per live label (store/speakers.py).
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

from config.names import valid_id

MAX_RULES = 1000
MAX_PATTERN = 1000
MAX_STREAMS_WATCHED = 10000
MAX_SPEAKER_NAME = 64


class AlertRuleError(ValueError):
    """A rule that cannot be used; the message names the field."""


@dataclass(frozen=True)
class Rule:
    id: str
    keywords: tuple[str, ...] = ()
    regex: str = ""
    stream: str = ""          # "" = every stream and job
    silence_min: float = 0.0  # > 0: a silence rule (no keywords or regex)
    speaker: str = ""         # a speaker rule: fires when this speaker is first heard on a stream

    @classmethod
    def parse(cls, body: dict) -> "Rule":
        """From a JSON body; AlertRuleError naming the field that is wrong."""
        unknown = set(body) - {"id", "keywords", "regex", "stream", "silence_min", "speaker"}
        if unknown:
            raise AlertRuleError(f"unknown field(s) {', '.join(sorted(unknown))}")
        ident, stream = body.get("id"), body.get("stream", "") or ""
        if not isinstance(ident, str) or not valid_id(ident):
            raise AlertRuleError(f"id = {ident!r:.40}: expected a name of letters, digits, - _ . (no /)")
        if not isinstance(stream, str) or (stream and not valid_id(stream)):
            raise AlertRuleError(f"stream = {stream!r:.40}: expected a stream id")
        keywords = body.get("keywords", [])
        if not isinstance(keywords, list) or not all(isinstance(k, str) and k.strip() for k in keywords):
            raise AlertRuleError("keywords: expected a list of non-empty strings")
        regex, silence = body.get("regex", "") or "", body.get("silence_min", 0) or 0
        if not isinstance(regex, str) or len(regex) > MAX_PATTERN:
            raise AlertRuleError(f"regex: expected a string of at most {MAX_PATTERN} characters")
        if not isinstance(silence, (int, float)) or isinstance(silence, bool) or not 0 <= silence <= 10080:
            raise AlertRuleError(f"silence_min = {silence!r:.20}: expected 0 to 10080 minutes")
        speaker = body.get("speaker", "") or ""
        if not isinstance(speaker, str) or len(speaker) > MAX_SPEAKER_NAME or "," in speaker:
            raise AlertRuleError(f"speaker = {speaker!r:.40}: expected a speaker's name or label "
                                 f"(at most {MAX_SPEAKER_NAME} characters, no comma)")
        if [bool(keywords or regex), bool(silence), bool(speaker.strip())].count(True) != 1:
            raise AlertRuleError("a rule has keywords or a regex, or else silence_min, or else speaker (one kind)")
        rule = cls(ident, tuple(k.strip() for k in keywords), regex, stream, float(silence), speaker.strip())
        rule.pattern()
        return rule

    def pattern(self) -> re.Pattern | None:
        if self.silence_min or self.speaker:
            return None
        source = self.regex or "|".join(re.escape(k) for k in self.keywords)
        try:
            return re.compile(rf"(?<!\w)(?:{source})(?!\w)", re.IGNORECASE)
        except re.error as exc:
            raise AlertRuleError(f"regex = {self.regex!r:.60}: {exc}") from None

    def applies_to(self, stream: str) -> bool:
        return not self.stream or self.stream == stream

    def body(self) -> dict:
        return {"id": self.id, "keywords": list(self.keywords), "regex": self.regex, "stream": self.stream,
                "silence_min": self.silence_min, "speaker": self.speaker}


@dataclass(frozen=True)
class Fired:
    rule: str
    kind: str                 # keyword | silence | speech | speaker
    stream: str
    wall: float
    text: str = ""
    terms: tuple[str, ...] = ()
    worker: str = ""
    seq: int | None = None


@dataclass
class Alerts:
    rules: dict[str, Rule] = field(default_factory=dict)
    patterns: dict[str, re.Pattern] = field(default_factory=dict)
    last_speech: dict[str, float] = field(default_factory=dict)
    silent: set[tuple[str, str]] = field(default_factory=set)   # (rule, stream) alerted, awaiting speech
    heard: set[tuple[str, str]] = field(default_factory=set)    # (speaker rule, stream) that fired

    def add(self, rule: Rule) -> None:
        if rule.id not in self.rules and len(self.rules) >= MAX_RULES:
            raise AlertRuleError(f"at most {MAX_RULES} rules")
        self.rules[rule.id] = rule
        pattern = rule.pattern()
        self.patterns.pop(rule.id, None)
        if pattern is not None:
            self.patterns[rule.id] = pattern

    def remove(self, ident: str) -> bool:
        self.patterns.pop(ident, None)
        self.silent = {key for key in self.silent if key[0] != ident}
        self.heard = {key for key in self.heard if key[0] != ident}
        return self.rules.pop(ident, None) is not None

    def on_final(self, stream: str, text: str, wall: float, worker: str = "", seq: int | None = None) -> list[Fired]:
        fired = []
        for ident, pattern in self.patterns.items():
            if self.rules[ident].applies_to(stream):
                terms = tuple(dict.fromkeys(m.group(0).lower() for m in pattern.finditer(text)))
                if terms:
                    fired.append(Fired(ident, "keyword", stream, wall, text, terms, worker, seq))
        if stream in self.last_speech or len(self.last_speech) < MAX_STREAMS_WATCHED:
            self.last_speech[stream] = max(wall, self.last_speech.get(stream, wall))
        for key in [k for k in self.silent if k[1] == stream]:
            self.silent.discard(key)
            fired.append(Fired(key[0], "speech", stream, wall, text, (), worker, seq))
        return fired

    def on_speakers(self, stream: str, names: list[str], wall: float, text: str = "", worker: str = "",
                    seq: int | None = None) -> list[Fired]:
        """Speaker rules naming one of `names` (a live final's label): each fires once per stream."""
        fired = []
        for rule in self.rules.values():
            key = (rule.id, stream)
            if rule.speaker and rule.speaker in names and rule.applies_to(stream) and key not in self.heard:
                if len(self.heard) < MAX_STREAMS_WATCHED * 10:
                    self.heard.add(key)
                fired.append(Fired(rule.id, "speaker", stream, wall, text, (rule.speaker,), worker, seq))
        return fired

    def tick(self, now: float) -> list[Fired]:
        """Silence rules whose stream has had no final for silence_min (each fires once until speech)."""
        fired = []
        for rule in self.rules.values():
            if not rule.silence_min:
                continue
            for stream, last in self.last_speech.items():
                key = (rule.id, stream)
                if rule.applies_to(stream) and key not in self.silent and now - last >= rule.silence_min * 60:
                    self.silent.add(key)
                    fired.append(Fired(rule.id, "silence", stream, now))
        return fired
