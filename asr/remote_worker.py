"""`voxbus worker --connect tcp://HOST:PORT`: an asr worker on another machine (issue 18).

It is the asr stage itself, pointed at a stack elsewhere: a DEALER to the stack's broker
(`vad.remote_segments`) and a PUB to its bus (`bus.remote_publish`; by default the same host,
port + 1), both CURVE-encrypted with the keys in its own `bus.curve_dir` (made on the stack by
`voxbus keys curve worker NAME --out DIR`), its own models dir and model. It may join and leave
at any time: the broker gives it work once it says `ready`, and gives what it held to others
when it goes. The options become config overrides (VOXBUS_* variables) for the stage.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import sys

ENDPOINT = re.compile(r"^tcp://(?P<host>[^:]+|\[[0-9a-fA-F:]+\]):(?P<port>\d{1,5})$")


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="voxbus worker", description="an asr worker for a voxbus stack elsewhere")
    parser.add_argument("--connect", required=True, help="the stack's broker, tcp://HOST:PORT (vad.remote_segments)")
    parser.add_argument("--publish", help="the stack's bus for transcripts (bus.remote_publish); "
                                          "default: the same host, port + 1")
    parser.add_argument("--model", help="the model it serves (a name under the models dir, or a path)")
    parser.add_argument("--models-dir", help="where its models are (run.models_dir)")
    parser.add_argument("--curve-dir", help="its CURVE keys: worker.key_secret and server.key (bus.curve_dir)")
    parser.add_argument("--plain-tcp", action="store_true", help="no CURVE (only if the stack allows it too)")
    parser.add_argument("--name", help="its name in transcripts and status (asr.worker)")
    parser.add_argument("--parallel", type=int, help="decodes at once (asr.parallel)")
    parser.add_argument("--throttle", type=float, help="tests and benches: decodes take this many times as long")
    parser.add_argument("--config", help="config file over the defaults (else $VOXBUS_CONFIG, /etc/voxbus/voxbus.toml)")
    return parser.parse_args(argv)


def default_publish(connect: str) -> str:
    """tcp://HOST:PORT → tcp://HOST:PORT+1; ValueError for anything else."""
    found = ENDPOINT.match(connect)
    if found is None:
        raise ValueError(f"--connect {connect!r}: expected tcp://HOST:PORT")
    port = int(found["port"]) + 1
    if port > 65535:
        raise ValueError(f"--connect {connect!r}: no port after it for the bus; give --publish")
    return f"tcp://{found['host']}:{port}"


def overrides(args: argparse.Namespace) -> dict[str, str]:
    """The config overrides the options stand for, as VOXBUS_<SECTION>__<KEY> = TOML value."""
    values = {"vad.segments": args.connect, "bus.publish": args.publish or default_publish(args.connect),
              "asr.model": args.model, "run.models_dir": args.models_dir, "bus.curve_dir": args.curve_dir,
              "asr.worker": args.name, "asr.parallel": args.parallel, "asr.throttle": args.throttle,
              "bus.plain_tcp": True if args.plain_tcp else None}
    return {"VOXBUS_" + key.upper().replace(".", "__"): json.dumps(value)
            for key, value in values.items() if value is not None}


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    try:
        env = overrides(args)
    except ValueError as exc:
        sys.stderr.write(f"voxbus worker: {exc}\n")
        return 2
    os.environ.update(env)
    from asr.main import main as asr_main  # after the overrides: the stage reads its config from them
    return asr_main(["--config", args.config] if args.config else [])
