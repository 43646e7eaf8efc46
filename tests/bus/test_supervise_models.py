"""`voxbus up` runs asr.workers asr processes per served model, each told its model (issue 18)."""
from __future__ import annotations

import dataclasses
import sys

from bus.supervise import SupervisorPaths, asr_programs, render
from config import load_config


def test_one_program_per_worker_of_each_model_valid_for_supervisord(tmp_path):
    from supervisor.options import ServerOptions

    cfg = load_config(env={"VOXBUS_ASR__MODELS": "['tiny.en-int8', 'base-int8']", "VOXBUS_ASR__WORKERS": "2"})
    cfg = dataclasses.replace(cfg, run_dir=str(tmp_path))
    assert asr_programs(cfg) == [("asr", "tiny.en-int8"), ("asr-tiny_en-int8-1", "tiny.en-int8"),
                                 ("asr-base-int8-0", "base-int8"), ("asr-base-int8-1", "base-int8")]
    paths = SupervisorPaths.for_config(cfg)
    paths.log_dir.mkdir()
    paths.conf.write_text(render(cfg, paths, sys.executable, {}))
    options = ServerOptions()
    options.realize(["-c", str(paths.conf)])
    found = {g.name: g.process_configs[0] for g in options.process_group_configs}
    assert {name: found[name].environment["VOXBUS_ASR__MODEL"] for name, _ in asr_programs(cfg)} == dict(asr_programs(cfg))
    assert found["asr-base-int8-0"].command.endswith("-m asr")


def test_one_model_one_worker_renders_as_before(tmp_path):
    cfg = dataclasses.replace(load_config(env={}), run_dir=str(tmp_path))
    text = render(cfg, SupervisorPaths.for_config(cfg), sys.executable, {})
    assert text.count("[program:asr") == 1 and "VOXBUS_ASR__MODEL" not in text
