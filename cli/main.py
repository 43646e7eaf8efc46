"""The `voxbus` console script: one entry point that hands each subcommand to its module.

This is the one package allowed to import every stage (it sits above them, like a shell):
commands are looked up by module path, so a stage is imported only when its command runs.
"""
from __future__ import annotations

import importlib
import sys

USAGE = """usage: voxbus COMMAND [ARGS...]

commands:
  up [--foreground]          start supervisord with every stage
  down                       stop every stage and supervisord
  status [--json]            each stage's heartbeat; exit 1 if a stage is missing
  model build SOURCE --out DIR [--precision int8|fp32]
                             build an ONNX model directory (tiny, base, or a CTranslate2 dir)
  model build speaker [--out DIR]
                             build the speaker-embedding model (diarization) into the models dir
  transcribe FILE... [--model DIR] [--language xx|auto] [--task transcribe|translate]
             [--format text|json|srt|vtt|verbose_json]
                             transcribe files in-process, no bus needed
  transcribe --url http://HOST:PORT FILE... [--language] [--task] [--format] [--api-key KEY]
                             transcribe files on a voxbus server (POST /transcribe)
  listen --url ws://HOST:PORT [--mic DEVICE | FILE...] [--language xx|auto] [--task]
         [--end-silence-ms N] [--json] [--api-key KEY]
                             stream a microphone or files at real time to a server, print the text live
  tap PREFIX                 print bus messages live
  record PREFIX -o FILE      record bus traffic to a file
  replay FILE [--speed N]    publish a recording back (N=0: as fast as possible)
  devices                    list ALSA capture devices
  keys add NAME --scopes transcribe,read,admin,metrics | keys list | keys revoke NAME
                             the gateway's API keys (add prints the key once)
  worker --connect tcp://HOST:PORT [--model M] [--models-dir D] [--curve-dir D]
                             an asr worker for a stack on another host (CURVE-encrypted)
  keys curve server | worker NAME --out DIR | list | revoke NAME
                             the CURVE keys of tcp endpoints and the workers' allow-list

every command takes --config FILE (else $VOXBUS_CONFIG, else /etc/voxbus/voxbus.toml) where it reads config.
"""

COMMANDS = {
    "up": "cli.up:main",  # the gateway's start-up rules first, then bus.supervise.up_main
    "down": "bus.supervise:down_main",
    "status": "bus.status:main",
    "model build speaker": "speaker.build.builder:main",
    "model build": "asr.build.builder:main",
    "transcribe": "asr.cli:main",
    "tap": "bus.recording:tap_main",
    "record": "bus.recording:record_main",
    "replay": "bus.recording:replay_main",
    "devices": "capture.devices:main",
    "listen": "clients.remote.listen:main",
    "keys": "gateway.keys_cli:main",
    "worker": "asr.remote_worker:main",
    "keys curve": "bus.curve_keys:main",
}
REMOTE_TRANSCRIBE = "clients.remote.transcribe:main"  # `transcribe` with --url: the server transcribes


def resolve(argv: list[str]) -> tuple[str, list[str]] | None:
    """Find the command (one or two words) and the arguments after it."""
    for words in (3, 2, 1):
        name = " ".join(argv[:words])
        if len(argv) >= words and name in COMMANDS:
            rest = argv[words:]
            if name == "transcribe" and any(arg == "--url" or arg.startswith("--url=") for arg in rest):
                return REMOTE_TRANSCRIBE, rest
            return COMMANDS[name], rest
    return None


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] in ("-h", "--help", "help"):
        sys.stdout.write(USAGE)
        return 0 if argv else 2
    found = resolve(argv)
    if found is None:
        sys.stderr.write(f"voxbus: error: unknown command {' '.join(argv[:2])!r} (see voxbus --help)\n")
        return 2
    target, rest = found
    module_name, func_name = target.split(":")
    func = getattr(importlib.import_module(module_name), func_name)
    return int(func(rest) or 0)


if __name__ == "__main__":
    sys.exit(main())
