"""config/defaults.toml (the commented settings users read) and config/schema.py (the typed
defaults the code falls back to) say the same thing, key for key."""
from __future__ import annotations

import dataclasses
import tomllib
import typing
from importlib import resources

from config.schema import Config


def _sections():
    hints = typing.get_type_hints(Config)
    return {f.name: hints[f.name] for f in dataclasses.fields(Config) if dataclasses.is_dataclass(hints[f.name])}


def _default(field: dataclasses.Field):
    if field.default_factory is not dataclasses.MISSING:
        return field.default_factory()
    return field.default


def test_every_schema_default_is_written_in_defaults_toml():
    toml = tomllib.loads(resources.files("config").joinpath("defaults.toml").read_text())
    problems = []
    for section, cls in _sections().items():
        written = toml.get(section, {})
        fields = {f.name: f for f in dataclasses.fields(cls)}
        for name in sorted(set(fields) | set(written)):
            if name not in fields:
                problems.append(f"[{section}] {name} is in defaults.toml but not in config/schema.py")
            elif name not in written:
                problems.append(f"[{section}] {name} is in config/schema.py but not in defaults.toml")
            else:
                code, text = _default(fields[name]), written[name]
                if (tuple(text) if isinstance(text, list) else text) != code:
                    problems.append(f"[{section}] {name}: defaults.toml says {text!r}, schema.py says {code!r}")
    assert not problems, "\n".join(problems)
