"""What every picture shares: matplotlib on demand, figures without pyplot, argument
checks, and the grid layout."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from .. import backends

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

# Public through xpnet.viz, which documents them.
MISTAKE_COLOR = "#d62728"
TRAINING_PICTURES = (
    "filters",
    "feature_maps",
    "training_curves",
    "confusion_matrix",
    "predictions",
    "mistakes",
)
_CORRECT_COLOR = "#222222"
_TEST_COLOR = "#ff7f0e"
_TRAIN_COLOR = "#1f77b4"
_INSTALL = "pip install 'xpnet[viz]'"


def require_matplotlib() -> None:
    """Check that matplotlib can be imported.

    Raises
    ------
    ImportError
        When it cannot, saying how to install it (``pip install 'xpnet[viz]'``).
    """
    _figure_class()


def _figure_class() -> type[Figure]:
    try:
        from matplotlib.figure import Figure
    except ImportError as exc:
        raise ImportError(
            f"xpnet.viz draws with matplotlib, which is not installed ({exc}): {_INSTALL}"
        ) from None
    return Figure


def _new_figure(figsize: tuple[float, float]) -> Figure:
    return _figure_class()(figsize=figsize, layout="constrained")


def _size(value: tuple[float, float] | None, default: tuple[float, float]) -> tuple[float, float]:
    if value is None:
        return default
    if len(value) != 2 or not all(isinstance(v, int | float) and v > 0 for v in value):
        raise ValueError(f"figsize: expected (width, height) in inches > 0, got {value!r}")
    return float(value[0]), float(value[1])


def _positive(name: str, value: Any, allow_none: bool = False) -> int | None:
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name}: expected a positive int, got {value!r}")
    return value


def _host(value: Any, name: str) -> np.ndarray:
    """``value`` (array of any backend, or nested sequence) as a NumPy array."""
    try:
        return np.asarray(backends.to_numpy(value))
    except (TypeError, ValueError) as exc:
        raise TypeError(f"{name}: expected an array, got {type(value).__name__} ({exc})") from None


class _Grid:
    """Tiles placed at fixed sizes in inches (constrained layout is slow with many axes).

    Rows run from the top; ``left`` leaves room for row labels, ``right`` for colour bars.
    """

    def __init__(
        self,
        rows: int,
        columns: int,
        tile: tuple[float, float],
        *,
        gap: tuple[float, float] = (0.12, 0.3),
        left: float = 0.15,
        right: float = 0.15,
        top: float = 0.55,
        bottom: float = 0.15,
    ) -> None:
        self.rows, self.columns, self.tile, self.gap = rows, columns, tile, gap
        self.left, self.top = left, top
        self.grid_width = columns * tile[0] + (columns - 1) * gap[0]
        self.grid_height = rows * tile[1] + (rows - 1) * gap[1]
        self.size = (left + self.grid_width + right, top + self.grid_height + bottom)

    def figure(self, figsize: tuple[float, float] | None) -> Figure:
        fig = _figure_class()(figsize=_size(figsize, self.size))
        return fig

    def add(self, fig: Figure, x: float, y: float, width: float, height: float) -> Axes:
        """Axes at ``x`` inches from the left and ``y`` inches from the top (of the natural
        size; a ``figsize`` given by the caller stretches the layout)."""
        total_w, total_h = self.size
        rect = (x / total_w, 1 - (y + height) / total_h, width / total_w, height / total_h)
        return fig.add_axes(rect)

    def tile_axes(self, fig: Figure, row: int, column: int) -> Axes:
        x = self.left + column * (self.tile[0] + self.gap[0])
        y = self.top + row * (self.tile[1] + self.gap[1])
        ax = self.add(fig, x, y, *self.tile)
        ax.set_xticks([])
        ax.set_yticks([])
        return ax

    def tiles(self, fig: Figure, count: int) -> list[Axes]:
        return [self.tile_axes(fig, *divmod(k, self.columns)) for k in range(count)]

    def colorbar_axes(self, fig: Figure, row: int | None = None, used: int | None = None) -> Axes:
        """A thin axes right of the grid: centred on the whole grid, or beside one row
        (after its first ``used`` tiles)."""
        x = self.left + self.grid_width + 0.15
        if used is not None:
            x -= (self.columns - used) * (self.tile[0] + self.gap[0])
        if row is None:
            height = min(self.grid_height, max(1.2, 0.7 * self.grid_height))
            y = self.top + (self.grid_height - height) / 2
        else:
            height = self.tile[1]
            y = self.top + row * (self.tile[1] + self.gap[1])
        ax = self.add(fig, x, y, 0.12, height)
        ax.set_label("<colorbar>")  # as matplotlib names the colour bars it places
        return ax

    def title(self, fig: Figure, text: str, fontsize: float = 10) -> None:
        fig.suptitle(text, fontsize=fontsize, y=1 - 0.08 / self.size[1], va="top")
