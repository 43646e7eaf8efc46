"""`voxbus keys add NAME --scopes ... | list | revoke NAME`: the gateway's API keys file.

`add` prints the new key once, on stdout (it is never stored, only its hash); errors are
one line on stderr and exit 1; bad usage exits 2.
"""
from __future__ import annotations

import argparse
import os
import sys
import time

from gateway import keys


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="voxbus keys", description="manage the gateway's API keys")
    parser.add_argument("--config", help="TOML file over the defaults (auth.keys_file says where the keys are)")
    commands = parser.add_subparsers(dest="command", required=True)
    add = commands.add_parser("add", help="make a key and print it once")
    add.add_argument("name")
    add.add_argument("--scopes", required=True, help=f"comma-separated: {', '.join(keys.SCOPES)}")
    commands.add_parser("list", help="every key: name, scopes, created, revoked")
    revoke = commands.add_parser("revoke", help="revoke the active key of this name")
    revoke.add_argument("name")
    return parser.parse_args(argv)


def _when(epoch: float | None) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch)) if epoch else "-"


def run(args: argparse.Namespace, path) -> int:
    if args.command == "add":
        secret = keys.add_key(path, args.name, keys.parse_scopes(args.scopes))
        sys.stdout.write(f"{secret}\n")
        sys.stderr.write(f"voxbus keys: added {args.name!r} to {path}; the key above is shown only now\n")
    elif args.command == "revoke":
        keys.revoke_key(path, args.name)
        sys.stderr.write(f"voxbus keys: revoked {args.name!r}\n")
    else:
        rows = [("name", "scopes", "created", "revoked")]
        rows += [(k.name, ",".join(k.scopes), _when(k.created), _when(k.revoked)) for k in keys.read_keys(path)]
        widths = [max(len(r[i]) for r in rows) for i in range(3)]
        for row in rows:
            sys.stdout.write("  ".join(c.ljust(w) for c, w in zip(row, widths)) + "  " + row[3] + "\n")
    return 0


def main(argv: list[str]) -> int:
    from bus.stage import load_or_exit

    args = parse_args(argv)
    cfg = load_or_exit(args.config, "voxbus keys")
    path = keys.keys_path(cfg.auth, os.environ)
    try:
        return run(args, path)
    except (keys.KeyFileError, OSError) as exc:
        sys.stderr.write(f"voxbus keys: {exc}\n")
        return 1
