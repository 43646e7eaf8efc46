"""Load configuration: package defaults → a TOML file → VOXBUS_<SECTION>__<KEY> env.

Every problem is collected and reported together, one line each, naming the key
path, the bad value and what is allowed; nothing falls back silently.
"""
from __future__ import annotations

import dataclasses
import math
import os
import re
import tomllib
import typing
from importlib import resources
from pathlib import Path
from typing import Any, Mapping

from config import paths
from config.names import ID_RULE, valid_id
from config.schema import Config, SourceConfig

SYSTEM_CONFIG = Path("/etc/voxbus/voxbus.toml")
_ENDPOINT = re.compile(r"^(ipc://.+|inproc://.+|tcp://(\*|[A-Za-z0-9_.\-]+|\[[0-9a-fA-F:]+\]):(\d{1,5}))$")


_SECTION_TYPES = {f.name: t for f in dataclasses.fields(Config)
                  if isinstance(t := typing.get_type_hints(Config)[f.name], type) and dataclasses.is_dataclass(t)}


class ConfigError(Exception):
    """Invalid configuration; `problems` holds one line per bad key."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("\n".join(problems))


def load_config(path: str | os.PathLike | None = None,
                env: Mapping[str, str] | None = None,
                check_cores: bool = True) -> Config:
    """Build a validated Config; raise ConfigError listing every problem."""
    env = os.environ if env is None else env
    raw = _read_toml_text(resources.files("config").joinpath("defaults.toml").read_text(), "defaults.toml")
    file_path = _choose_file(path, env)
    if file_path is not None:
        _merge(raw, _read_file(file_path), "", problems := [])
        if problems:
            raise ConfigError(problems)
    problems = []
    _merge(raw, _env_overrides(env), "", problems, from_env=True)
    cfg = _build(raw, problems, str(file_path or ""), env)
    if cfg is not None:
        problems.extend(_cross_checks(cfg))
    if cfg is not None and check_cores:
        from config.cores import check_core_map
        problems.extend(check_core_map(cfg.cores))
    if problems:
        raise ConfigError(problems)
    return cfg


def _cross_checks(cfg: Config) -> list[str]:
    """Settings that are each valid alone but contradict each other."""
    gw = cfg.gateway
    if gw.min_end_silence_ms > gw.max_end_silence_ms:
        return [f"config: gateway.min_end_silence_ms = {gw.min_end_silence_ms} is above "
                f"gateway.max_end_silence_ms = {gw.max_end_silence_ms}: expected min ≤ max"]
    return _model_checks(cfg)


def _model_checks(cfg: Config) -> list[str]:
    """asr.models names every served model once; the live and upload defaults are among them."""
    asr, served = cfg.asr, cfg.asr.models
    if not served:
        return []
    problems = []
    if len(set(served)) != len(served):
        problems.append(f"config: asr.models = {list(served)!r}: expected each model once")
    for key in ("model", "upload_model"):
        value = getattr(asr, key)
        if value and value not in served:
            problems.append(f"config: asr.{key} = {value!r}: expected one of asr.models ({', '.join(served)})")
    for source in cfg.capture.sources:
        if source.model and source.model not in served:
            problems.append(f"config: capture.sources[{source.stream}].model = {source.model!r}: "
                            f"expected one of asr.models ({', '.join(served)})")
    return problems


def _choose_file(path, env) -> Path | None:
    if path:
        return Path(path)
    if env.get("VOXBUS_CONFIG"):
        return Path(env["VOXBUS_CONFIG"])
    return SYSTEM_CONFIG if SYSTEM_CONFIG.is_file() else None


def _read_file(path: Path) -> dict:
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError([f"config: cannot read {path}: {exc.strerror or exc}"]) from None
    return _read_toml_text(text, str(path))


def _read_toml_text(text: str, name: str) -> dict:
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError([f"config: {name} is not valid TOML: {exc}"]) from None


def _env_overrides(env: Mapping[str, str]) -> dict:
    """VOXBUS_GATEWAY__PORT=9000 → {"gateway": {"port": 9000}}; values parse as TOML, else string."""
    out: dict = {}
    for name, raw in env.items():
        if not name.startswith("VOXBUS_") or "__" not in name:
            continue
        keys = [k.lower() for k in name[len("VOXBUS_"):].split("__")]
        try:
            value = tomllib.loads(f"v = {raw}")["v"]
        except tomllib.TOMLDecodeError:
            value = raw
        node = out
        for key in keys[:-1]:
            node = node.setdefault(key, {})
        node[keys[-1]] = value
    return out


def _merge(base: dict, over: dict, prefix: str, problems: list[str], from_env: bool = False) -> None:
    for key, value in over.items():
        where = f"{prefix}{key}"
        if key not in base:
            src = f"VOXBUS_{where.upper().replace('.', '__')}" if from_env else where
            allowed = ", ".join(sorted(base)) or "nothing"
            problems.append(f"config: unknown key {src!s} (known here: {allowed})")
        elif isinstance(base.get(key), dict) and isinstance(value, dict):
            _merge(base[key], value, where + ".", problems, from_env)
        else:
            base[key] = value


def _build(raw: dict, problems: list[str], file_path: str, env) -> Config | None:
    sections = {}
    for f in dataclasses.fields(Config):
        if f.name in _SECTION_TYPES:
            sections[f.name] = _coerce_dataclass(_SECTION_TYPES[f.name], raw.get(f.name, {}), f.name, problems)
    if problems:
        return None
    run_dir = paths.resolve_run_dir(sections["run"].dir, env)
    sections["bus"] = _expand_endpoints(sections["bus"], run_dir)
    sections["vad"] = _expand_endpoints(sections["vad"], run_dir)
    sections["speaker"] = _expand_endpoints(sections["speaker"], run_dir)
    models_dir = paths.resolve_models_dir(sections["run"].models_dir, env)
    return Config(**sections, source_file=file_path, run_dir=str(run_dir), models_dir=str(models_dir))


def _coerce_dataclass(cls, value, path: str, problems: list[str]):
    if not isinstance(value, dict):
        problems.append(f"config: {path} = {value!r}: expected a table")
        return None
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for f in dataclasses.fields(cls):
        if f.name in value:
            kwargs[f.name] = _coerce(value[f.name], hints[f.name], f.metadata, f"{path}.{f.name}", problems)
    for key in value:
        if key not in hints:
            problems.append(f"config: unknown key {path}.{key} (known here: {', '.join(hints)})")
    return cls(**kwargs)


def _coerce(value: Any, tp, meta: Mapping, path: str, problems: list[str]) -> Any:
    if meta.get("kind") == "cores":
        return _coerce_cores(value, path, problems)
    origin = typing.get_origin(tp)
    if origin is tuple:
        item_type = typing.get_args(tp)[0]
        if not isinstance(value, list):
            problems.append(f"config: {path} = {value!r}: expected a list")
            return ()
        if item_type is SourceConfig:
            return tuple(_coerce_dataclass(SourceConfig, v, f"{path}[{i}]", problems) for i, v in enumerate(value))
        return tuple(_coerce(v, item_type, {}, f"{path}[{i}]", problems) for i, v in enumerate(value))
    return _coerce_scalar(value, tp, meta, path, problems)


def _coerce_scalar(value, tp, meta, path, problems):
    ok = {bool: lambda v: isinstance(v, bool),
          int: lambda v: isinstance(v, int) and not isinstance(v, bool),
          float: lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
          str: lambda v: isinstance(v, str)}[tp]
    if not ok(value):
        problems.append(f"config: {path} = {value!r}: expected {_describe(tp, meta)}")
        return value
    value = float(value) if tp is float else value
    if tp is float and not math.isfinite(value):  # nan slips past every min/max comparison
        problems.append(f"config: {path} = {value!r}: expected a finite number")
        return value
    bad = ("choices" in meta and value not in meta["choices"]) \
        or ("min" in meta and value < meta["min"]) or ("max" in meta and value > meta["max"])
    if meta.get("kind") == "endpoint" and not (meta.get("optional") and value == "") and not _ENDPOINT.match(value):
        problems.append(f"config: {path} = {value!r}: expected an endpoint ipc://PATH or tcp://HOST:PORT")
    elif meta.get("kind") == "stream" and not valid_id(value):
        problems.append(f"config: {path} = {value!r}: expected a stream id of {ID_RULE}")
    elif bad:
        problems.append(f"config: {path} = {value!r}: expected {_describe(tp, meta)}")
    return value


def _describe(tp, meta) -> str:
    name = {bool: "true or false", int: "an integer", float: "a number", str: "a string"}[tp]
    if "choices" in meta:
        return f"one of {', '.join(map(str, meta['choices']))}"
    if "min" in meta and "max" in meta:
        return f"{name} from {meta['min']} to {meta['max']}"
    if "min" in meta:
        return f"{name} ≥ {meta['min']}"
    return name


def _coerce_cores(value, path, problems):
    if value == "auto":
        return "auto"
    if isinstance(value, int) and not isinstance(value, bool):
        value = [value]
    if (isinstance(value, list) and value
            and all(isinstance(c, int) and not isinstance(c, bool) and c >= 0 for c in value)):
        return tuple(value)
    problems.append(f"config: {path} = {value!r}: expected \"auto\" or a non-empty list of core numbers")
    return "auto"


def _expand_endpoints(section, run_dir: Path):
    changes = {}
    for f in dataclasses.fields(section):
        if f.metadata.get("kind") == "endpoint":
            changes[f.name] = getattr(section, f.name).replace("{run_dir}", str(run_dir))
    return dataclasses.replace(section, **changes)
