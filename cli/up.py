"""`voxbus up`, after the gateway's start-up rules (a public address needs API keys; see gateway/access.py).

supervisord restarts a stage that exits, so a gateway refusing to start would only show as a
restart loop in its log while `voxbus up` reported success; checked here first, it is one
line and exit 1, and nothing is started.
"""
from __future__ import annotations

import argparse
import os
import sys


def main(argv: list[str]) -> int:
    from bus.stage import load_or_exit
    from bus.supervise import up_main
    from gateway.access import check_startup

    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("--config")
    known, _ = parser.parse_known_args(argv)
    if not {"-h", "--help"} & set(argv):
        problems = check_startup(load_or_exit(known.config, "voxbus up"), os.environ)
        for problem in problems:
            sys.stderr.write(f"voxbus up: error: {problem}\n")
        if problems:
            return 1
    return up_main(argv)
