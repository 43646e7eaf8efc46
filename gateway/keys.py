"""API keys: names, scopes and SHA-256 hashes in one JSON file; the secret itself is never stored.

A key is `vbk_` + 32 random bytes (url-safe base64), shown once when it is made. With
256 random bits a plain SHA-256 is enough (a slow password hash guards guessable
secrets; these are not). A presented key is hashed and compared with every stored
hash in constant time (`hmac.compare_digest`, no early exit), so timing tells nothing.

The gateway reloads the file when it changes (inode, size or mtime), so `voxbus keys revoke`
takes effect on the next request without a restart.
"""
from __future__ import annotations

import hashlib
import hmac
import json
import os
import re
import secrets
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Mapping

from config.paths import resolve_data_dir

PREFIX = "vbk_"
SCOPES = ("transcribe", "read", "admin", "metrics")
# What each scope lets a key do besides itself: admin everything, read also the metrics.
IMPLIES = {"admin": frozenset(SCOPES), "read": frozenset({"read", "metrics"}),
           "transcribe": frozenset({"transcribe"}), "metrics": frozenset({"metrics"})}
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
FILE_VERSION = 1


class KeyFileError(ValueError):
    """A key operation that cannot be done (bad name, unknown key, unreadable file); the message says why."""


@dataclass(frozen=True)
class Key:
    name: str
    scopes: tuple[str, ...]
    hash: str            # sha256 hex of the secret
    created: float       # epoch seconds
    revoked: float | None = None

    def grants(self) -> frozenset[str]:
        return frozenset().union(*(IMPLIES[s] for s in self.scopes))


def digest(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8", "surrogatepass")).hexdigest()


def keys_path(auth_cfg, env: Mapping[str, str]) -> Path:
    """auth.keys_file, else keys.json in the data dir (config/paths.resolve_data_dir)."""
    if auth_cfg.keys_file:
        return Path(auth_cfg.keys_file).expanduser()
    return resolve_data_dir(env) / "keys.json"


def parse_scopes(text: str) -> tuple[str, ...]:
    scopes = tuple(dict.fromkeys(s.strip() for s in text.split(",") if s.strip()))
    bad = [s for s in scopes if s not in SCOPES]
    if not scopes or bad:
        raise KeyFileError(f"scopes {text!r}: expected a comma-separated list of {', '.join(SCOPES)}")
    return scopes


def read_keys(path: Path) -> list[Key]:
    """Every key in the file (revoked ones too); an absent file is no keys."""
    try:
        raw = json.loads(path.read_text())
    except FileNotFoundError:
        return []
    except (OSError, ValueError) as exc:
        raise KeyFileError(f"keys file {path} cannot be read: {exc}") from None
    try:
        keys = [Key(name=k["name"], scopes=tuple(k["scopes"]), hash=k["hash"], created=float(k["created"]),
                    revoked=k.get("revoked")) for k in raw["keys"]]
    except (KeyError, TypeError, ValueError) as exc:
        raise KeyFileError(f"keys file {path} is not a voxbus keys file (bad entry: {exc})") from None
    for key in keys:
        if set(key.scopes) - set(SCOPES) or not re.fullmatch(r"[0-9a-f]{64}", key.hash):
            raise KeyFileError(f"keys file {path}: key {key.name!r} has unknown scopes or a malformed hash")
    return keys


def write_keys(path: Path, keys: list[Key]) -> None:
    """Atomically, mode 0600 (the hashes are no secret, but the names and scopes are nobody else's)."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    body = json.dumps({"version": FILE_VERSION, "keys": [asdict(k) for k in keys]}, indent=2) + "\n"
    fd, tmp = tempfile.mkstemp(prefix=".keys-", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as out:
            out.write(body)
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def add_key(path: Path, name: str, scopes: tuple[str, ...]) -> str:
    """Make a key; returns the secret (the only time it exists outside the caller's hands)."""
    if not NAME.match(name):
        raise KeyFileError(f"key name {name!r}: expected letters, digits, '_', '.' or '-' (at most 64)")
    keys = read_keys(path)
    if any(k.name == name and k.revoked is None for k in keys):
        raise KeyFileError(f"a key named {name!r} exists already (revoke it first, or choose another name)")
    secret = PREFIX + secrets.token_urlsafe(32)
    write_keys(path, keys + [Key(name, scopes, digest(secret), round(time.time(), 3))])
    return secret


def revoke_key(path: Path, name: str) -> None:
    keys = read_keys(path)
    if not any(k.name == name and k.revoked is None for k in keys):
        raise KeyFileError(f"no active key named {name!r} in {path}")
    now = round(time.time(), 3)
    write_keys(path, [Key(k.name, k.scopes, k.hash, k.created, now) if k.name == name and k.revoked is None
                      else k for k in keys])


class KeyStore:
    """The active keys of a file, reloaded when it changes; `find` is the constant-time lookup."""

    def __init__(self, path: Path):
        self.path = path
        self._stamp: tuple[int, int, int] | None | bool = False  # False: never read
        self._active: list[Key] = []
        self.reload()

    def _current_stamp(self) -> tuple[int, int, int] | None:
        try:
            info = self.path.stat()
        except FileNotFoundError:
            return None
        return info.st_ino, info.st_mtime_ns, info.st_size  # write_keys replaces the file: a new inode

    def reload(self) -> None:
        """Re-read the file if it changed. KeyFileError if it is unreadable: raised once per change of the
        file (a broken file is not reported on every request), and the keys in force stay so."""
        stamp = self._current_stamp()
        if stamp == self._stamp:
            return
        self._stamp = stamp
        self._active = [k for k in read_keys(self.path) if k.revoked is None]

    @property
    def any(self) -> bool:
        return bool(self._active)

    def find(self, secret: str) -> Key | None:
        wanted = digest(secret)
        found = None
        for key in self._active:  # every hash compared, whichever matches
            if hmac.compare_digest(wanted, key.hash):
                found = key
        return found
