"""`voxbus devices`: the ALSA capture devices and sound cards this machine has."""
from __future__ import annotations

import argparse
import json
import sys

from capture.alsa import list_capture_devices
from capture.base import SourceUnavailable


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="voxbus devices", description="list ALSA capture devices")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    args = parser.parse_args(argv)
    try:
        pcms, cards = list_capture_devices()
    except SourceUnavailable as exc:
        sys.stderr.write(f"voxbus devices: {exc}\n")
        return 1
    if args.json:
        sys.stdout.write(json.dumps({"capture_pcms": pcms, "cards": cards}) + "\n")
        return 0
    sys.stdout.write("capture devices (use as capture.sources[].device):\n")
    for name in pcms:
        sys.stdout.write(f"  {name}\n")
    sys.stdout.write("sound cards:\n" if cards else "sound cards: none found\n")
    for index, name in enumerate(cards):
        sys.stdout.write(f"  {index}: {name}  (hw:{index} or plughw:{index})\n")
    return 0
