"""The architecture's import rules, read from the source (no imports run):

- a stage never imports another stage; stages share only `bus` and `config`;
- `bus` and `config` import no stage (they are the wire and the settings);
- `asr/whisper` (the Whisper library) imports neither `bus` nor `config`;
- `onnx` (a build-time dependency) is imported only by the model builders, `asr/build` and `speaker/build`;
- only the `cli` front door imports several stages.
"""
from __future__ import annotations

import ast
from pathlib import Path

from tests.conftest import REPO

STAGES = ("capture", "vad", "asr", "gateway", "store", "clients", "speaker")
SHARED = ("bus", "config")


def imports_of(path: Path) -> set[str]:
    """Every module name a file imports, at any depth (function-level imports count too)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Call) and getattr(node.func, "attr", "") == "import_module" and node.args \
                and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str):
            names.add(node.args[0].value)
    return names


def package_files(package: str) -> list[Path]:
    return sorted((REPO / package).rglob("*.py")) if (REPO / package).is_dir() else []


def top(name: str) -> str:
    return name.split(".")[0]


def violations(package: str, forbidden) -> list[str]:
    found = []
    for path in package_files(package):
        for name in sorted(imports_of(path)):
            if forbidden(name):
                found.append(f"{path.relative_to(REPO)} imports {name}")
    return found


def test_the_rules_see_real_imports(tmp_path):
    probe = tmp_path / "probe.py"
    probe.write_text("import vad.segmenter\nfrom gateway import app\ndef f():\n    import asr.main\n"
                     "importlib.import_module('capture.alsa')\nfrom . import sibling\n")
    assert {"vad.segmenter", "gateway", "gateway.app", "asr.main", "capture.alsa"} <= imports_of(probe)
    assert all(package_files(p) for p in ("capture", "vad", "asr", "gateway", "bus", "config", "cli"))


def test_stages_never_import_each_other():
    found = []
    for stage in STAGES:
        found += violations(stage, lambda name, own=stage: top(name) in STAGES and top(name) != own)
    assert not found, "a stage imports another stage:\n" + "\n".join(found)


def test_bus_and_config_import_no_stage():
    found = violations("bus", lambda name: top(name) in STAGES + ("cli",))
    found += violations("config", lambda name: top(name) in STAGES + ("cli", "bus"))
    assert not found, "the shared layer depends on a stage:\n" + "\n".join(found)


def test_whisper_library_knows_nothing_of_the_bus():
    found = violations("asr/whisper", lambda name: top(name) in SHARED + STAGES + ("cli",)
                       and not name.startswith("asr.whisper"))
    assert not found, "asr/whisper must stand alone (no bus, config or stage imports):\n" + "\n".join(found)


def test_only_the_builder_imports_onnx():
    found = []
    for package in STAGES + SHARED + ("cli",):
        for path in package_files(package):
            if path.relative_to(REPO).as_posix().startswith(("asr/build/", "speaker/build/")):
                continue
            found += [f"{path.relative_to(REPO)} imports {n}" for n in imports_of(path) if top(n) == "onnx"]
    assert not found, "onnx is a build-time dependency of the model builders only:\n" + "\n".join(found)
