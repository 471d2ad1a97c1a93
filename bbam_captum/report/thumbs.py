"""Thumbnails of the review page, drawn with numpy and PIL (no figure library: hundreds per run)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib import colormaps
from PIL import Image, ImageDraw
from skimage.segmentation import find_boundaries

from ..labels import IGNORE
from ..utils.atomic import atomic_open

# Bump when the drawing changes, so cached thumbnails are redrawn.
RENDER_VERSION = 2
MAX_SIDE = 256          # image thumbnails: larger images are scaled down to this side
BOX_SIDE = 96           # box thumbnails: the box and its margin are scaled to about this side
BOX_MARGIN = 0.2        # share of the box side shown around the box
MASK_COLOUR = (255, 255, 255)
TRUE_COLOUR = (60, 230, 60)
IGNORE_COLOUR = np.array([255, 0, 255], np.uint8)
_HEAT = colormaps["inferno"]


def box_colour(index: int) -> tuple[int, int, int]:
    """A distinct colour per box of an image (tab10)."""
    return tuple(int(255 * c) for c in colormaps["tab10"].colors[index % 10])


def _resize(array: np.ndarray, scale: float, nearest: bool = False) -> np.ndarray:
    if scale == 1.0:
        return array
    height, width = array.shape[:2]
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    img = Image.fromarray(array.astype(np.uint8) if array.dtype == bool else array)
    out = np.array(img.resize(size, Image.NEAREST if nearest else Image.BILINEAR))
    return out.astype(bool) if array.dtype == bool else out


def _outline(canvas: np.ndarray, mask: np.ndarray, colour: tuple[int, int, int]) -> None:
    """Paints the inner boundary of ``mask`` (H, W bool) onto ``canvas`` (H, W, 3) in place."""
    canvas[find_boundaries(mask, mode="inner")] = colour


def _rectangle(canvas: np.ndarray, box, scale: float, colour) -> np.ndarray:
    img = Image.fromarray(canvas)
    x1, y1, x2, y2 = (float(v) * scale for v in box)
    ImageDraw.Draw(img).rectangle([x1, y1, max(x1, x2 - 1), max(y1, y2 - 1)], outline=colour)
    return np.array(img)


def image_scale(height: int, width: int) -> float:
    return min(1.0, MAX_SIDE / max(height, width))


def overview(image: np.ndarray, boxes: np.ndarray, masks: np.ndarray) -> np.ndarray:
    """The image with each box and its instance mask outlined in the box's colour.

    Args:
        image (np.ndarray[H, W, 3] uint8), boxes (np.ndarray[K, 4]) x1 y1 x2 y2,
        masks (np.ndarray[K, H, W] bool).
    """
    scale = image_scale(*image.shape[:2])
    canvas = _resize(image, scale).copy()
    for k, (box, mask) in enumerate(zip(boxes, masks)):
        _outline(canvas, _resize(mask, scale, nearest=True), box_colour(k))
        canvas = _rectangle(canvas, box, scale, box_colour(k))
    return canvas


def label_view(image: np.ndarray, label: np.ndarray, palette: list[list[int]]) -> np.ndarray:
    """The semantic label over a dimmed grey image; ignored pixels striped in magenta.

    Args:
        image (np.ndarray[H, W, 3] uint8), label (np.ndarray[H, W] uint8: 0 background,
        class + 1, 255 ignore), palette: one RGB per label value below 255.
    """
    grey = image.mean(-1, keepdims=True).repeat(3, -1) * 0.5
    colours = np.array(palette, np.float64)[np.minimum(label, len(palette) - 1)]
    canvas = np.where((label > 0)[..., None], 0.35 * grey + 0.65 * colours, grey).astype(np.uint8)
    rows, cols = np.indices(label.shape)
    ignored = label == IGNORE
    canvas[ignored] = np.where((((rows + cols) // 2) % 2 == 0)[ignored][:, None], IGNORE_COLOUR, 255)
    return _resize(canvas, image_scale(*image.shape[:2]), nearest=True)


def box_view(image: np.ndarray, bbam_map: np.ndarray, box: np.ndarray, mask: np.ndarray,
             true_mask: np.ndarray | None = None) -> np.ndarray:
    """The box and a margin around it: the map as a heat map over the image, the pseudo mask
    outlined in white, the true mask (when given) in green, the box in cyan.

    Args:
        image (np.ndarray[H, W, 3] uint8), bbam_map (np.ndarray[H, W]) in [0, 1],
        box (np.ndarray[4]) x1 y1 x2 y2, mask and true_mask (np.ndarray[H, W] bool).
    """
    height, width = image.shape[:2]
    x1, y1, x2, y2 = (float(v) for v in box)
    margin = BOX_MARGIN * max(x2 - x1, y2 - y1, 1.0)
    cx1, cy1 = max(0, int(x1 - margin)), max(0, int(y1 - margin))
    cx2, cy2 = min(width, int(np.ceil(x2 + margin))), min(height, int(np.ceil(y2 + margin)))
    crop = (slice(cy1, cy2), slice(cx1, cx2))
    heat = _HEAT(np.clip(bbam_map[crop].astype(np.float32), 0, 1))[..., :3] * 255
    canvas = (0.45 * image[crop].mean(-1, keepdims=True) + 0.55 * heat).astype(np.uint8)
    side = max(cx2 - cx1, cy2 - cy1, 1)
    # Small boxes are enlarged by whole pixels so that their cells stay sharp.
    scale = float(min(8, max(1, BOX_SIDE // side))) if side <= BOX_SIDE else BOX_SIDE / side
    canvas = _resize(canvas, scale, nearest=scale >= 1).copy()
    if true_mask is not None:
        _outline(canvas, _resize(true_mask[crop], scale, nearest=True), TRUE_COLOUR)
    _outline(canvas, _resize(mask[crop], scale, nearest=True), MASK_COLOUR)
    shifted = np.array([x1 - cx1, y1 - cy1, x2 - cx1, y2 - cy1])
    return _rectangle(canvas, shifted, scale, (0, 220, 255))


def save_png(path: Path, array: np.ndarray) -> None:
    with atomic_open(path) as f:
        Image.fromarray(array).save(f, format="PNG")
