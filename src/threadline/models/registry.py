"""Builds the model backend the settings ask for."""

from __future__ import annotations

from typing import TYPE_CHECKING

from threadline.models.base import ModelBackend

if TYPE_CHECKING:
    from threadline.models.local.need import Embed
    from threadline.settings import Settings


def build_backend(settings: Settings, sentences: Embed | None = None) -> ModelBackend:
    """The backend ``settings`` name; ``sentences`` embeds text as all-MiniLM-L6-v2
    does, for the local backend's tool-need gate (None: no gate)."""
    name = settings.resolved_model_backend
    if name == "scripted":
        from threadline.models.scripted import ScriptedBackend

        return ScriptedBackend.from_settings(settings)
    if name == "openai":
        from threadline.models.openai_compat import OpenAICompatBackend

        return OpenAICompatBackend(settings)
    from threadline.models.local import LocalBackend
    from threadline.models.local.need import NeedGate

    gate = NeedGate(sentences) if sentences is not None and settings.local_tool_gate else None
    return LocalBackend(settings, need=gate)
