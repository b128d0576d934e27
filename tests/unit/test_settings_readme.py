"""Every setting is documented in the README's table of ``THREADLINE_*`` variables."""

from __future__ import annotations

from pathlib import Path

from threadline.settings import Settings

README = Path(__file__).resolve().parents[2] / "README.md"


def test_every_setting_is_in_the_readme_table() -> None:
    readme = README.read_text(encoding="utf-8")
    missing = [n for n in Settings.model_fields if f"| `THREADLINE_{n.upper()}` |" not in readme]
    assert missing == []
