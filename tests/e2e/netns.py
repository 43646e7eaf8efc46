"""Test hosts as Linux network namespaces: a stack host and worker hosts, each worker linked to the
stack by its own veth pair in 198.51.100.0/24 (the documentation range), made and deleted by the
test that uses them. The test process (the root namespace) reaches the stack host's gateway over
one more pair. No pytest here: the scale benchmark uses it too.

    root .1 ─── .2 stack ─ .5 ─── .6 worker 1
                         ─ .9 ─── .10 worker 2   (a /30 per link)
"""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

NET = "198.51.100"


class NetnsUnavailable(RuntimeError):
    """`ip netns` cannot be used here (not root, no iproute2, a kernel or container that forbids it)."""


def _ip(*args: str, netns: str | None = None) -> None:
    command = (["ip", "netns", "exec", netns, "ip"] if netns else ["ip"]) + list(args)
    result = subprocess.run(command, capture_output=True, text=True, timeout=10)
    if result.returncode:
        raise NetnsUnavailable(f"{' '.join(command)}: {result.stderr.strip()}")


def _pids_in(netns: str) -> list[int]:
    result = subprocess.run(["ip", "netns", "pids", netns], capture_output=True, text=True, timeout=10)
    return [int(p) for p in result.stdout.split()] if result.returncode == 0 else []


@dataclass
class Hosts:
    """The namespaces of one test: `stack` and `workers[i]`, with the addresses each side uses."""
    tag: str
    stack: str = ""
    workers: list[str] = field(default_factory=list)
    stack_address: str = f"{NET}.2"           # the stack host, as the test process sees it
    links: list[str] = field(default_factory=list)

    def broker_address(self, i: int) -> str:
        """The stack host's address on worker i's link."""
        return f"{NET}.{4 * (i + 1) + 1}"

    def worker_address(self, i: int) -> str:
        return f"{NET}.{4 * (i + 1) + 2}"

    def exec_prefix(self, netns: str) -> list[str]:
        return ["ip", "netns", "exec", netns]

    def cut(self, i: int) -> None:
        """Worker host i drops off the network (its link down) and its processes are killed: the host is gone."""
        _ip("link", "set", "dev", f"{self.tag}w{i}", "down", netns=self.workers[i])
        for pid in _pids_in(self.workers[i]):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                continue

    def delete(self) -> None:
        for netns in [self.stack, *self.workers]:
            if not netns:
                continue
            for pid in _pids_in(netns):
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    continue
            subprocess.run(["ip", "netns", "delete", netns], capture_output=True, timeout=10)
        for link in self.links:  # the root side of a pair goes with its peer's namespace; this is the rest
            subprocess.run(["ip", "link", "delete", link], capture_output=True, timeout=10)


def make(workers: int) -> Hosts:
    """A stack host and `workers` worker hosts; NetnsUnavailable (with the reason) if it cannot be done."""
    if os.geteuid() != 0 or shutil.which("ip") is None:
        raise NetnsUnavailable("needs root and iproute2 (`ip`)")
    tag = f"vb{os.getpid() % 100000}"
    hosts = Hosts(tag)
    try:
        hosts.stack = f"{tag}-stack"
        _ip("netns", "add", hosts.stack)
        _ip("link", "set", "lo", "up", netns=hosts.stack)
        _pair(hosts, f"{tag}r", f"{tag}s", None, hosts.stack, f"{NET}.1/30", f"{NET}.2/30")
        for i in range(workers):
            netns = f"{tag}-w{i}"
            _ip("netns", "add", netns)
            hosts.workers.append(netns)
            _ip("link", "set", "lo", "up", netns=netns)
            _pair(hosts, f"{tag}b{i}", f"{tag}w{i}", hosts.stack, netns,
                  f"{hosts.broker_address(i)}/30", f"{hosts.worker_address(i)}/30")
    except NetnsUnavailable:
        hosts.delete()
        raise
    return hosts


def _pair(hosts: Hosts, a: str, b: str, ns_a: str | None, ns_b: str, addr_a: str, addr_b: str) -> None:
    _ip("link", "add", a, "type", "veth", "peer", "name", b)
    hosts.links.append(a)
    if ns_a:
        _ip("link", "set", a, "netns", ns_a)
    _ip("link", "set", b, "netns", ns_b)
    _ip("addr", "add", addr_a, "dev", a, netns=ns_a)
    _ip("link", "set", a, "up", netns=ns_a)
    _ip("addr", "add", addr_b, "dev", b, netns=ns_b)
    _ip("link", "set", b, "up", netns=ns_b)


def run_in(hosts: Hosts, netns: str, command: list[str], env: dict, log: Path, cwd: Path) -> subprocess.Popen:
    """A process on a test host, its output in `log`."""
    out = open(log, "ab")
    try:
        return subprocess.Popen(hosts.exec_prefix(netns) + command, env=env, cwd=cwd, stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True)
    finally:
        out.close()
