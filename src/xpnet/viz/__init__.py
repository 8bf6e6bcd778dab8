"""Pictures of a network and its training: filters, feature maps, curves, confusions.

Every function takes arrays of any backend (they are copied to the host with
:func:`xpnet.to_numpy`) and returns a :class:`matplotlib.figure.Figure`. Figures are built
directly, never through ``pyplot``: nothing global changes, no window opens, and they can
be drawn in threads and on machines without a display. Write one with :func:`save_figure`
(atomically), or all of them at once after training with :func:`save_training_plots`,
which is what ``xpnet train --plots DIR`` does.

matplotlib is an optional dependency (``pip install 'xpnet[viz]'``); it is imported when a
function first draws, so ``import xpnet.viz`` costs nothing without it. For example::

    from xpnet import viz

    history = xpnet.fit(model, optimizer, train_loader, 5, test_loader=test_loader)
    viz.save_figure(viz.plot_filters(model), "filters.png")
    viz.save_training_plots(model, history, test_loader, "plots")
"""

from . import _common
from ._classification import plot_confusion_matrix, plot_predictions
from ._common import require_matplotlib
from ._curves import plot_training_curves
from ._feature_maps import plot_feature_maps
from ._files import save_figure, save_training_plots, training_figures
from ._filters import plot_filters

#: Colour of the title and frame of a wrongly classified image in :func:`plot_predictions`.
MISTAKE_COLOR = _common.MISTAKE_COLOR
#: The pictures :func:`training_figures` draws (and ``--plots`` writes), in order.
TRAINING_PICTURES = _common.TRAINING_PICTURES

__all__ = [
    "MISTAKE_COLOR",
    "TRAINING_PICTURES",
    "plot_confusion_matrix",
    "plot_feature_maps",
    "plot_filters",
    "plot_predictions",
    "plot_training_curves",
    "require_matplotlib",
    "save_figure",
    "save_training_plots",
    "training_figures",
]
