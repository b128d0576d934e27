"""A matplotlib backend for the sandbox: Agg rendering, and ``plt.show()`` keeps PNGs.

Selected with ``MPLBACKEND=module://threadline_mpl``. Figures shown are rendered at
once (later changes to them do not count) and closed, as a notebook shows them; the
driver takes these with ``take_images()``, which also renders and closes the figures
still open when an execution ends.
"""

from __future__ import annotations

import io
from typing import Any

from matplotlib import pyplot
from matplotlib._pylab_helpers import Gcf
from matplotlib.backend_bases import FigureManagerBase
from matplotlib.backends.backend_agg import FigureCanvasAgg

FigureCanvas = FigureCanvasAgg
FigureManager = FigureManagerBase

MAX_IMAGES = 32
"""Figures kept per execution; a loop that shows thousands keeps the first ones."""

_shown: list[bytes] = []


def _render_open_figures() -> None:
    for manager in Gcf.get_all_fig_managers():
        if len(_shown) >= MAX_IMAGES:
            break
        buffer = io.BytesIO()
        manager.canvas.figure.savefig(buffer, format="png")
        _shown.append(buffer.getvalue())
    pyplot.close("all")


def show(*args: Any, **kwargs: Any) -> None:
    _render_open_figures()


def take_images() -> list[bytes]:
    _render_open_figures()
    images = list(_shown)
    _shown.clear()
    return images
