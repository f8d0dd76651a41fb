"""Process settings that the entry points (the CLI, the UI, the API) make before any model library loads;
the library itself changes no environment variable."""
from __future__ import annotations

import os

OFFLINE = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
"""Every model is a local folder or ships in a package: Hugging Face libraries stay off the network
(the loaders also pass ``local_files_only=True``)."""


def prepare_process() -> None:
    """Set :data:`OFFLINE` (a user's own value wins)."""
    for name, value in OFFLINE.items():
        os.environ.setdefault(name, value)
