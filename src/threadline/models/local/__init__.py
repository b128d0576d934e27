"""The embedded ``local`` backend (``THREADLINE_MODEL_BACKEND=local``); see ``backend``."""

from threadline.models.local.backend import LocalBackend

__all__ = ["LocalBackend"]
