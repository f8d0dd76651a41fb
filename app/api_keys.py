"""API keys for ``rag serve``: from ``RAG_API_KEYS`` (comma-separated) or a keys file of SHA-256 hashes.

Only hashes are kept in memory once loaded, and a presented key is compared with every known hash in
constant time, so neither the keys nor which of them matched leak through timing or logs.

Example:
    >>> keys = ApiKeys.load({"RAG_API_KEYS": "s3cret,other"})
    >>> keys.accepts("s3cret"), keys.accepts("guess")
    (True, False)
"""
from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

_HASH_LINE = re.compile(r"^(?:sha256:)?([0-9a-fA-F]{64})$")


class KeysError(ValueError):
    """A keys file that cannot be used; the message names the file, the line and the reason."""


def key_hash(key: str) -> bytes:
    return hashlib.sha256(key.encode("utf-8")).digest()


@dataclass(frozen=True)
class ApiKeys:
    """The SHA-256 hashes of the accepted keys; empty means no key is required (loopback only)."""

    hashes: tuple[bytes, ...] = ()

    @classmethod
    def load(cls, env: Mapping[str, str], keys_file: Path | None = None) -> ApiKeys:
        """Keys from ``RAG_API_KEYS`` and from ``keys_file`` (or ``RAG_API_KEYS_FILE``): one hash per
        line, as ``printf %s "$KEY" | sha256sum`` prints it (``sha256:`` prefix optional, ``#`` comments)."""
        hashes = [key_hash(k.strip()) for k in env.get("RAG_API_KEYS", "").split(",") if k.strip()]
        path = keys_file or (Path(env["RAG_API_KEYS_FILE"]) if env.get("RAG_API_KEYS_FILE") else None)
        if path is not None:
            try:
                lines = path.read_text(encoding="utf-8").splitlines()
            except OSError as exc:
                raise KeysError(f"{path}: cannot read the keys file ({exc.strerror})") from exc
            for number, line in enumerate(lines, start=1):
                fields = line.split("#", 1)[0].split()  # sha256sum prints "HASH  -"
                if not fields:
                    continue
                match = _HASH_LINE.match(fields[0])
                if match is None:
                    raise KeysError(f"{path}:{number}: expected a SHA-256 hash of a key (64 hex digits), not a key itself")
                hashes.append(bytes.fromhex(match.group(1)))
        return cls(tuple(hashes))

    def __bool__(self) -> bool:
        return bool(self.hashes)

    def accepts(self, key: str | None) -> bool:
        """Whether ``key`` is one of the keys; every hash is compared, in constant time each."""
        presented = key_hash(key or "")
        found = False
        for known in self.hashes:
            found |= hmac.compare_digest(presented, known)
        return found and key is not None
