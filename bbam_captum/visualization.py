"""Figures: an image with its boxes, and each box's map over the image (drawn with Captum).

Figures are drawn on their own Agg canvas, not through pyplot, so the process's matplotlib
backend is left as the user set it.
"""
from __future__ import annotations

from collections.abc import Sequence

import matplotlib
import numpy as np
from captum.attr import visualization as viz
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle
from torch import Tensor

_COLOURS = matplotlib.colormaps["tab10"].colors


def _draw_box(ax, box: Sequence[float], colour, text: str | None = None) -> None:
    x1, y1, x2, y2 = (float(v) for v in box)
    ax.add_patch(Rectangle((x1, y1), x2 - x1, y2 - y1, fill=False, edgecolor=colour, linewidth=1.5))
    if text:
        ax.text(x1, y1 - 2, text, color="white", fontsize=7, va="bottom",
                bbox=dict(facecolor=colour, alpha=0.8, pad=1, edgecolor="none"))


def explanation_figure(image: Tensor, boxes: Tensor, labels: Sequence[str], maps: Tensor,
                       masks: Tensor | None = None, title: str | None = None) -> Figure:
    """One row: the image with all boxes, then one panel per box with its map blended over it.

    Args:
        image (Tensor[3, H, W]): RGB 0..255.
        boxes (Tensor[K, 4]): ``(x1, y1, x2, y2)``.
        labels: K captions (class name, score, ...).
        maps (Tensor[K, 1, H, W]): values in [0, 1].
        masks (Tensor[K, H, W] bool, optional): pseudo masks, outlined on each panel.

    Returns:
        A matplotlib Figure on an Agg canvas with 1 + K axes (panel width about 2.2 inches).
    """
    rgb = image.detach().cpu().permute(1, 2, 0).float().numpy() / 255.0
    k = boxes.shape[0]
    fig = Figure(figsize=(2.2 * (k + 1), 2.5))
    FigureCanvasAgg(fig)  # fig.savefig and fig.canvas.buffer_rgba without a global backend
    axes = fig.subplots(1, k + 1, squeeze=False)[0]
    axes[0].imshow(rgb)
    axes[0].set_title("image", fontsize=8)
    for i in range(k):
        colour = _COLOURS[i % len(_COLOURS)]
        _draw_box(axes[0], boxes[i].tolist(), colour, f"{i}: {labels[i]}")
        attr = maps[i, 0].detach().cpu().numpy()[..., None]
        if np.isfinite(attr).all() and attr.max() > 0:
            viz.visualize_image_attr(attr, rgb, method="blended_heat_map", sign="positive", outlier_perc=0,
                                     plt_fig_axis=(fig, axes[i + 1]), use_pyplot=False, alpha_overlay=0.6,
                                     title=f"{i}: {labels[i]}")
        else:  # captum scales a map by its cumulative sum, which an empty map lacks: the image alone
            axes[i + 1].imshow(rgb)
            axes[i + 1].set_title(f"{i}: {labels[i]} (empty map)")
        _draw_box(axes[i + 1], boxes[i].tolist(), colour)
        if masks is not None:
            axes[i + 1].contour(masks[i].cpu().numpy().astype(np.float32), levels=[0.5], colors="white",
                                linewidths=0.8)
        axes[i + 1].title.set_fontsize(8)
    for ax in axes:
        ax.axis("off")
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    return fig
