"""Build the default model into the models directory unless it is already there and current.

Run by deploy/setup.sh; prints the model directory. Exit 2 with one line on failure.
"""
from __future__ import annotations

import os
import sys

from config.paths import model_dir, resolve_models_dir

DEFAULT = ("tiny", "tiny.en-int8", "int8")


def main() -> int:
    source, name, precision = DEFAULT
    target = model_dir(str(resolve_models_dir("", os.environ)), name)
    from asr.build.builder import ModelBuildError, ensure_model
    try:
        ensure_model(source, target, precision)
    except (ModelBuildError, OSError) as exc:
        sys.stderr.write(f"setup: error: cannot build the default model into {target}: {exc}\n")
        return 2
    sys.stdout.write(f"{target}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
