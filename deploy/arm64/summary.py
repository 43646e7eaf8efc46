"""Summary of an arm64 smoke run, and its transcripts against this machine's (stdlib only).

    python3 deploy/arm64/summary.py smoke-arm64.json [--host smoke-host.json] [--out summary.md]

The bar (issue 16): fp32 transcripts identical to x86-64's, int8 within one word per clip
(words compared case- and punctuation-blind, by edit distance). Exit 0 when every smoke step
passed and the comparison holds, 1 otherwise.
"""
from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path


def words(text: str) -> list[str]:
    return re.findall(r"[a-z0-9']+", (text or "").lower())


def word_distance(a: str, b: str) -> int:
    """Word-level edit distance (substitutions, insertions, deletions)."""
    x, y = words(a), words(b)
    row = list(range(len(y) + 1))
    for i, wx in enumerate(x, 1):
        prev, row[0] = row[0], i
        for j, wy in enumerate(y, 1):
            prev, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, prev + (wx != wy))
    return row[-1]


def compare(arm: dict, host: dict) -> tuple[list[dict], bool]:
    rows, ok = [], True
    for precision, allowed in (("fp32", 0), ("int8", 1)):
        for clip, text in arm.get("transcripts", {}).get(precision, {}).items():
            ref = host.get("transcripts", {}).get(precision, {}).get(clip)
            if text is None or ref is None:
                rows.append({"precision": precision, "clip": clip, "identical": False, "words": None, "ok": False})
                ok = False
                continue
            dist = word_distance(text, ref)
            good = (text == ref) if allowed == 0 else dist <= allowed
            ok &= good
            rows.append({"precision": precision, "clip": clip, "identical": text == ref, "words": dist,
                         "ok": good, "arm64": text, "host": ref})
    return rows, ok


def render(arm: dict, host: dict | None, mode: str, setup_seconds: str) -> tuple[str, bool]:
    out = [f"arm64 smoke under emulation ({mode}): {arm.get('machine')} Python {arm.get('python')}, "
           f"onnxruntime {arm.get('onnxruntime')}. Times are emulated (qemu-user on an x86-64 VM): "
           "evidence that it runs, not a Pi's speed.", ""]
    if setup_seconds:
        out.append(f"`bash deploy/setup.sh` in the Debian 12 arm64 root: passed in {setup_seconds} s "
                   "(emulated; less when the root was reused).")
        out.append("")
    out += ["| step | result | emulated time |", "| --- | --- | --- |"]
    for row in arm.get("steps", []):
        detail = "" if row["ok"] else f" ({str(row['detail'])[:160]})"
        out.append(f"| {row['step']} | {'pass' if row['ok'] else 'FAIL'}{detail} | {row['seconds']} s |")
    ws = (arm.get("stack") or {}).get("ws")
    if ws:
        out += ["", f"WebSocket /stream final ({ws['finals']} final(s)): \"{ws['text']}\""]
    crit = (arm.get("stack") or {}).get("supervisord_crit")
    if crit is not None:
        root = [line for line in crit if "running as root" in line]
        out += ["", f"supervisord: {'CRIT running as root' if root else 'no running-as-root CRIT'}; "
                "other CRIT lines: "
                f"{'; '.join(line.split(' CRIT ', 1)[1][:90] for line in crit if line not in root) or 'none'}"]
    passed = bool(arm.get("passed"))
    if host:
        rows, same = compare(arm, host)
        out += ["", f"Transcripts, arm64 vs {host.get('machine')} (onnxruntime {host.get('onnxruntime')}):", "",
                "| precision | clip | identical | words apart | within bar | arm64 text |",
                "| --- | --- | --- | --- | --- | --- |"]
        for r in rows:
            out.append(f"| {r['precision']} | {r['clip']} | {'yes' if r['identical'] else 'no'} | {r['words']} | "
                       f"{'yes' if r['ok'] else 'NO'} | {r.get('arm64', '')} |")
            if not r["identical"] and r.get("host") is not None:
                out.append(f"| | | | | | x86-64: {r['host']} |")
        passed &= same
    out += ["", f"Overall: {'PASS' if passed else 'FAIL'}"]
    return "\n".join(out) + "\n", passed


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("arm64", type=Path)
    parser.add_argument("--host", type=Path)
    parser.add_argument("--out", type=Path)
    parser.add_argument("--mode", default="?")
    parser.add_argument("--setup-seconds", default="")
    args = parser.parse_args()
    try:
        arm = json.loads(args.arm64.read_text())
        host = json.loads(args.host.read_text()) if args.host else None
    except (OSError, ValueError) as exc:
        print(f"summary: error: cannot read a smoke result: {exc}", file=sys.stderr)
        return 2
    text, passed = render(arm, host, args.mode, args.setup_seconds)
    if args.out:
        args.out.write_text(text)
    sys.stdout.write(text)
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
