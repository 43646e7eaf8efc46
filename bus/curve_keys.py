"""`voxbus keys curve`: the CURVE keys of the bus's tcp endpoints (bus/curve.py).

    voxbus keys curve server               the stack's keypair, in bus.curve_dir
    voxbus keys curve worker NAME --out D  a worker's keypair in D (with the server's public key
                                           beside it: copy D to the worker's host as its curve dir),
                                           and its public key in the allow-list
    voxbus keys curve list                 the allow-list
    voxbus keys curve revoke NAME          out of the allow-list (its next connection is refused)
"""
from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

import zmq.auth

from bus import curve
from config import ConfigError, load_config
from config.names import valid_id, ID_RULE


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="voxbus keys curve", description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", help="config file (else $VOXBUS_CONFIG, else /etc/voxbus/voxbus.toml)")
    parser.add_argument("--dir", help="the curve dir (else bus.curve_dir)")
    sub = parser.add_subparsers(dest="action", required=True)
    server = sub.add_parser("server", help="make the stack's keypair")
    server.add_argument("--force", action="store_true", help="replace an existing keypair (every worker then "
                                                             "needs the new server.key)")
    worker = sub.add_parser("worker", help="make a worker's keypair and allow it")
    worker.add_argument("name")
    worker.add_argument("--out", required=True, help="where the worker's curve dir goes")
    sub.add_parser("list", help="the allowed workers' public keys")
    revoke = sub.add_parser("revoke", help="take a worker off the allow-list")
    revoke.add_argument("name")
    return parser.parse_args(argv)


def make_worker(directory: Path, name: str, out: Path) -> Path:
    """The worker's curve dir at `out`: worker.key(_secret) and server.key; its public key allowed here."""
    server_public = directory / f"{curve.SERVER}.key"
    if not server_public.exists():
        raise OSError(f"no {server_public}: make the server keypair first (voxbus keys curve server)")
    allowed = directory / curve.ALLOWED / f"{name}.key"
    if allowed.exists():
        raise OSError(f"a worker named {name} is allowed already ({allowed}): revoke it first or pick another name")
    out.mkdir(mode=0o700, parents=True, exist_ok=True)
    public, _secret = zmq.auth.create_certificates(out, curve.WORKER)
    shutil.copy(server_public, out / server_public.name)
    allowed.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    shutil.copy(public, allowed)
    return allowed


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    try:
        cfg = load_config(args.config)
    except ConfigError as exc:
        sys.stderr.write(f"{exc}\n")
        return 2
    directory = Path(args.dir).expanduser() if args.dir else curve.keys_dir(cfg.bus)
    try:
        if args.action == "server":
            if (directory / f"{curve.SERVER}.key_secret").exists() and not args.force:
                sys.stderr.write(f"voxbus keys curve: {directory}/{curve.SERVER}.key_secret exists (--force replaces it)\n")
                return 1
            directory.mkdir(mode=0o700, parents=True, exist_ok=True)
            public, _ = zmq.auth.create_certificates(directory, curve.SERVER)
            print(f"server keypair in {directory} (public: {public})")
        elif args.action == "worker":
            if not valid_id(args.name):
                sys.stderr.write(f"voxbus keys curve: worker name {args.name!r}: expected {ID_RULE}\n")
                return 2
            allowed = make_worker(directory, args.name, Path(args.out).expanduser())
            print(f"worker {args.name}: keys in {args.out} (copy it to the worker's host as bus.curve_dir); "
                  f"allowed as {allowed}")
        elif args.action == "list":
            for key, name in curve.Allowlist(directory).keys().items():
                print(f"{name}\t{key.decode()}")
        else:
            path = directory / curve.ALLOWED / f"{args.name}.key"
            if not path.exists():
                sys.stderr.write(f"voxbus keys curve: no allowed worker named {args.name} in {path.parent}\n")
                return 1
            path.unlink()
            print(f"worker {args.name} revoked: its next connection is refused")
    except OSError as exc:
        sys.stderr.write(f"voxbus keys curve: {exc}\n")
        return 1
    return 0
