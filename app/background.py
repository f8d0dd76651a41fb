"""Work the UI and the API start without waiting for it: warming up models, syncing watched folders."""
from __future__ import annotations

import logging
import threading
from collections.abc import Callable


def in_background(action: Callable[[], object], what: str) -> threading.Thread:
    """Run ``action`` in a daemon thread; a failure is logged with ``what`` (a question or a sync that
    hits the same failure reports it to the user).

    Example:
        >>> in_background(lambda: None, "nothing").join()
    """

    def run() -> None:
        try:
            action()
        except Exception:
            logging.getLogger("rag").exception("%s failed", what)

    thread = threading.Thread(target=run, name=f"rag: {what}", daemon=True)
    thread.start()
    return thread
