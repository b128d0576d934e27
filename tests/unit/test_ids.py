"""Object ids: OpenAI's prefixes, base-62 letters, every letter equally likely."""

from __future__ import annotations

import collections
import re

import pytest

from threadline.domain.ids import PREFIXES, new_id


@pytest.mark.parametrize("kind", sorted(PREFIXES))
def test_prefix_length_and_letters(kind: str) -> None:
    made = new_id(kind)
    assert made.startswith(PREFIXES[kind])
    assert re.fullmatch(r"[A-Za-z0-9]{24}", made[len(PREFIXES[kind]) :])
    assert re.fullmatch(r"[A-Za-z0-9]{48}", new_id(kind, 48)[len(PREFIXES[kind]) :])


def test_ids_do_not_repeat_and_use_every_letter_evenly() -> None:
    made = [new_id("run")[4:] for _ in range(5000)]
    assert len(set(made)) == len(made)
    for position in (0, 12, 23):  # the first, middle and last letters alike
        counts = collections.Counter(m[position] for m in made)
        assert len(counts) == 62
        expected = len(made) / 62
        chi_square = sum((n - expected) ** 2 / expected for n in counts.values())
        assert chi_square < 120  # 61 degrees of freedom: p < 1e-5 for a fair die
