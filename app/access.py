"""Who may use the UI when it listens beyond loopback: a shared password (``RAG_UI_PASSWORD``) checked in
the app, or Streamlit's own sign-in (``st.login`` with an OIDC provider in ``.streamlit/secrets.toml``).

Example:
    >>> password_matches("s3cret", "s3cret"), password_matches("guess", "s3cret")
    (True, False)
"""
from __future__ import annotations

import hashlib
import hmac
import threading
import time
import tomllib
from collections.abc import Callable
from pathlib import Path


def password_matches(given: str, expected: str) -> bool:
    """Constant-time comparison (of digests, so the length does not leak either)."""
    return hmac.compare_digest(hashlib.sha256(given.encode()).digest(), hashlib.sha256(expected.encode()).digest())


MIN_PASSWORD_LENGTH = 8


def password_problem(password: str) -> str | None:
    """Why ``RAG_UI_PASSWORD`` cannot protect the documents, or None: at least
    :data:`MIN_PASSWORD_LENGTH` characters other than spaces."""
    length = len(password.strip())
    if length < MIN_PASSWORD_LENGTH:
        return f"RAG_UI_PASSWORD has {length} characters besides spaces; it needs at least {MIN_PASSWORD_LENGTH}"
    return None


class FailedAttempts:
    """Slows password guessing: after ``n`` failures within ``window_s``, the next check waits
    ``min(base_s * 2 ** (n - 1), cap_s)`` seconds; a success clears the count. One instance is shared by
    every session of the app (see ``app.ui``), so a new session does not start afresh.

    Example:
        >>> attempts = FailedAttempts(sleep=lambda s: None)
        >>> [attempts.check("guess", "correct horse") for _ in range(3)], attempts.delay()
        ([False, False, False], 2.0)
    """

    def __init__(self, base_s: float = 0.5, cap_s: float = 30.0, window_s: float = 600.0,
                 clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = time.sleep) -> None:
        self.base_s, self.cap_s, self.window_s = base_s, cap_s, window_s
        self._clock, self._sleep = clock, sleep
        self._failures: list[float] = []
        self._lock = threading.Lock()

    def delay(self) -> float:
        """Seconds the next check waits."""
        with self._lock:
            now = self._clock()
            self._failures = [t for t in self._failures if now - t < self.window_s]
            return min(self.base_s * 2 ** (len(self._failures) - 1), self.cap_s) if self._failures else 0.0

    def check(self, given: str, expected: str) -> bool:
        """Wait out the delay, then compare; a failure is counted."""
        self._sleep(self.delay())
        ok = password_matches(given, expected)
        with self._lock:
            if ok:
                self._failures.clear()
            else:
                self._failures.append(self._clock())
        return ok


def auth_configured(folder: Path) -> bool:
    """Whether Streamlit authentication is set up: an ``[auth]`` table in ``.streamlit/secrets.toml`` under
    ``folder`` (where ``rag ui`` runs) or in the user's home."""
    for secrets in (folder / ".streamlit" / "secrets.toml", Path.home() / ".streamlit" / "secrets.toml"):
        try:
            if "auth" in tomllib.loads(secrets.read_text(encoding="utf-8")):
                return True
        except (OSError, tomllib.TOMLDecodeError):
            continue
    return False
