"""Builds the model backend the settings ask for."""

from __future__ import annotations

from typing import TYPE_CHECKING

from threadline.models.base import ModelBackend

if TYPE_CHECKING:
    from threadline.settings import Settings


def build_backend(settings: Settings) -> ModelBackend:
    name = settings.resolved_model_backend
    if name == "scripted":
        from threadline.models.scripted import ScriptedBackend

        return ScriptedBackend.from_settings(settings)
    if name == "openai":
        from threadline.models.openai_compat import OpenAICompatBackend

        return OpenAICompatBackend(settings)
    from threadline.models.local import LocalBackend

    return LocalBackend(settings)
