"""Builds the model backend the settings ask for."""

from __future__ import annotations

from typing import TYPE_CHECKING

from threadline.models.base import ModelBackend

if TYPE_CHECKING:
    from threadline.models.local.sentences import Embed
    from threadline.settings import Settings


def build_backend(settings: Settings, sentences: Embed | None = None) -> ModelBackend:
    """The backend ``settings`` name; ``sentences`` embeds text as all-MiniLM-L6-v2
    does, for the local backend's tool-need gate and tool router (None: neither)."""
    name = settings.resolved_model_backend
    if name == "scripted":
        from threadline.models.scripted import ScriptedBackend

        return ScriptedBackend.from_settings(settings)
    if name == "openai":
        from threadline.models.openai_compat import OpenAICompatBackend

        return OpenAICompatBackend(settings)
    from threadline.models.local import LocalBackend
    from threadline.models.local.need import NeedGate
    from threadline.models.local.route import ToolRouter
    from threadline.models.local.sentences import SentenceCache

    if sentences is None:
        return LocalBackend(settings)
    shared = SentenceCache(sentences)  # a request is embedded once for gate and router
    gate = NeedGate(shared) if settings.local_tool_gate else None
    route = ToolRouter(shared) if settings.local_tool_router else None
    return LocalBackend(settings, need=gate, route=route)
