"""Loading llama-cpp-python, the runtime the local model runs on."""

from __future__ import annotations

import os
from typing import Any

from threadline.models.base import ModelError


def load_llama_cpp() -> Any:
    """Import llama_cpp, with settings that suit a shared CPU.

    llama.cpp's OpenMP threads spin while they wait; on a busy machine (a server, other
    processes) that makes every token many times slower, so waiting threads sleep
    instead unless ``OMP_WAIT_POLICY`` says otherwise. This must happen before the
    library loads.
    """
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    try:
        import llama_cpp
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise ModelError(
            "The local model needs llama-cpp-python: pip install 'threadline[local]'"
        ) from exc
    return llama_cpp
