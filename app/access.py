"""Who may use the UI when it listens beyond loopback: a shared password (``RAG_UI_PASSWORD``) checked in
the app, or Streamlit's own sign-in (``st.login`` with an OIDC provider in ``.streamlit/secrets.toml``).

Example:
    >>> password_matches("s3cret", "s3cret"), password_matches("guess", "s3cret")
    (True, False)
"""
from __future__ import annotations

import hashlib
import hmac
import tomllib
from pathlib import Path


def password_matches(given: str, expected: str) -> bool:
    """Constant-time comparison (of digests, so the length does not leak either)."""
    return hmac.compare_digest(hashlib.sha256(given.encode()).digest(), hashlib.sha256(expected.encode()).digest())


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
