"""Refinement of a pseudo mask with mask proposals (Eq. 4 of the paper).

``T_r = union of {m_i contained in T} and {argmax_i IoU(m_i, T)}``, kept inside the box.
MCG played the proposals' part in the paper; here scikit-image's Felzenszwalb segments at
several scales do (segments of all scales form one pool, so merges of fine segments are
there as coarser segments).

As in the original implementation, a proposal takes part only when (nearly) all of it lies
inside the box, judged on its whole extent: a background segment that runs out of the box
is left out rather than cut to the box and kept.

An image over a pixel budget (:data:`SEGMENT_MAX_PIXELS`) is segmented only around its boxes
(:func:`box_segment_pools`): Eq. 4 reads the segments of the boxes' pixels only, and
Felzenszwalb's cost grows with the pixels segmented. A segment that touches the border of its
crop where the image goes on may run on outside the box, so it is never a candidate. Images
within the budget are segmented whole, as before.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
from skimage.segmentation import felzenszwalb

DEFAULT_SCALES = (30.0, 100.0, 300.0)
DEFAULT_OVERLAP = 0.95  # the original's share of a proposal that must lie inside the box, and inside T
SEGMENT_MAX_PIXELS = 512 * 512  # images with more pixels are segmented around their boxes only (the CRF's budget)
CROP_MARGIN = 0.25  # around a box, segmented in the crop: a share of the box's longer side


class Segments(NamedTuple):
    """One scale's segments: ``labels`` (H, W) int, each pixel's segment 0..N-1, and ``sizes``
    (N,) its pixels in the image (``inf`` for one that may run on past the part segmented)."""

    labels: np.ndarray
    sizes: np.ndarray


def segment_pools(image: np.ndarray, scales: Sequence[float] = DEFAULT_SCALES) -> list[np.ndarray]:
    """Felzenszwalb segmentations of an (H, W, 3) uint8 image, one label map (H, W) int per scale."""
    return [_felzenszwalb(image, s) for s in scales]


def _felzenszwalb(image: np.ndarray, scale: float) -> np.ndarray:
    return felzenszwalb(image, scale=scale, sigma=0.5, min_size=max(8, int(scale / 4)))


def box_segment_pools(image: np.ndarray, boxes: np.ndarray | Sequence[Sequence[float]],
                      scales: Sequence[float] = DEFAULT_SCALES, max_pixels: int = SEGMENT_MAX_PIXELS,
                      margin: float = CROP_MARGIN) -> list[Segments]:
    """The segments :func:`refine_masks` needs for ``boxes`` of an (H, W, 3) uint8 image, one
    :class:`Segments` per scale.

    Within ``max_pixels`` (or with 0), :func:`segment_pools` of the whole image. Over it, each box
    grown by ``margin`` of its longer side is segmented alone (crops that overlap are merged into
    the rectangle around them); segments touching a crop's border inside the image get an
    infinite size (never candidates), and pixels outside every crop one segment of infinite size.
    """
    h, w = image.shape[:2]
    if max_pixels <= 0 or h * w <= max_pixels:
        return [_index(labels) for labels in segment_pools(image, scales)]
    crops = _merged_crops([grown_box(box, h, w, margin) for box in np.asarray(boxes, dtype=np.float64).reshape(-1, 4)])
    return [_crop_segments(image, crops, scale) for scale in scales]


def grown_box(box: np.ndarray, h: int, w: int, margin: float = CROP_MARGIN) -> tuple[int, int, int, int]:
    """``(y1, y2, x1, x2)``: the box's pixels grown by ``margin`` of its longer side, cut to the image."""
    grow = int(np.ceil(margin * max(box[2] - box[0], box[3] - box[1], 0.0)))
    return (max(0, int(np.floor(box[1])) - grow), min(h, int(np.ceil(box[3])) + grow),
            max(0, int(np.floor(box[0])) - grow), min(w, int(np.ceil(box[2])) + grow))


def _merged_crops(crops: list[tuple[int, int, int, int]]) -> list[tuple[int, int, int, int]]:
    """Rectangles ``(y1, y2, x1, x2)`` that overlap replaced by the rectangle around them, until none do
    (so that every pixel has one segment of one crop)."""
    crops = list(crops)
    merged = True
    while merged:
        merged = False
        for i in range(len(crops)):
            for j in range(i + 1, len(crops)):
                a, b = crops[i], crops[j]
                if a[0] < b[1] and b[0] < a[1] and a[2] < b[3] and b[2] < a[3]:
                    crops[i] = (min(a[0], b[0]), max(a[1], b[1]), min(a[2], b[2]), max(a[3], b[3]))
                    del crops[j]
                    merged = True
                    break
            if merged:
                break
    return crops


def _crop_segments(image: np.ndarray, crops: list[tuple[int, int, int, int]], scale: float) -> Segments:
    """One scale's :class:`Segments` of the image segmented in disjoint ``crops`` only."""
    h, w = image.shape[:2]
    labels = np.zeros((h, w), dtype=np.int64)
    sizes = [np.array([np.inf])]  # segment 0: the pixels of no crop
    for y1, y2, x1, x2 in crops:
        crop = _felzenszwalb(image[y1:y2, x1:x2], scale)
        size = np.bincount(crop.ravel()).astype(np.float64)
        # a segment on a side of the crop where the image goes on may extend past it
        sides = [crop[0] if y1 > 0 else (), crop[-1] if y2 < h else (), crop[:, 0] if x1 > 0 else (),
                 crop[:, -1] if x2 < w else ()]
        size[np.concatenate([np.asarray(side, dtype=np.int64) for side in sides])] = np.inf
        labels[y1:y2, x1:x2] = crop + sum(len(s) for s in sizes)
        sizes.append(size)
    return Segments(labels, np.concatenate(sizes))


def refine_mask(mask: np.ndarray, box: Sequence[float], pools: Sequence[np.ndarray | Segments],
                overlap: float = DEFAULT_OVERLAP) -> np.ndarray:
    """Eq. 4 on one pseudo mask.

    Args:
        mask (np.ndarray[H, W] bool): T, the BBAM mask (only its part inside the box counts).
        box: ``(x1, y1, x2, y2)``.
        pools: label maps ``(H, W)`` from :func:`segment_pools`, or :class:`Segments`
            from :func:`box_segment_pools`.
        overlap: a proposal is a candidate when more than this share of it lies inside the
            box; a candidate is contained in T when more than this share of it lies in T.

    Returns:
        np.ndarray[H, W] bool, T_r inside the box; T itself when it is empty or no
        proposal lies inside the box.
    """
    return refine_masks(mask[None], [box], pools, overlap)[0]


def refine_masks(masks: np.ndarray, boxes: np.ndarray | Sequence[Sequence[float]],
                 pools: Sequence[np.ndarray | Segments], overlap: float = DEFAULT_OVERLAP) -> np.ndarray:
    """:func:`refine_mask` on each box's mask (the pools are indexed once for all boxes).

    Args:
        masks (np.ndarray[K, H, W] bool), boxes (K boxes ``(x1, y1, x2, y2)``), pools and
        overlap as above.

    Returns:
        np.ndarray[K, H, W] bool.
    """
    if not 0.0 < overlap <= 1.0:
        raise ValueError(f"overlap must be in (0, 1], got {overlap}")
    if len(masks) == 0:
        return masks.copy()
    indexed = [_index(p) for p in pools]
    return np.stack([_refine(m, b, indexed, overlap) for m, b in zip(masks, boxes)])


def _index(pool: np.ndarray | Segments) -> Segments:
    """A label map (H, W) as :class:`Segments`; :class:`Segments` as they are."""
    if isinstance(pool, Segments):
        return pool
    if np.issubdtype(pool.dtype, np.integer) and pool.min() >= 0:
        size = np.bincount(pool.ravel())
        if size.all():  # labels 0..N-1 without gaps (Felzenszwalb's): already an index, no sort needed
            return Segments(pool, size)
    _, inverse = np.unique(pool, return_inverse=True)
    inverse = inverse.reshape(pool.shape)
    return Segments(inverse, np.bincount(inverse.ravel()))


def _refine(mask: np.ndarray, box: Sequence[float], indexed: Sequence[Segments],
            overlap: float) -> np.ndarray:
    if not mask.any():
        return mask.copy()
    h, w = mask.shape
    x1, y1 = max(0, int(np.floor(box[0]))), max(0, int(np.floor(box[1])))
    x2, y2 = min(w, int(np.ceil(box[2]))), min(h, int(np.ceil(box[3])))
    t = mask[y1:y2, x1:x2]
    t_area = int(t.sum())
    refined = np.zeros_like(t)
    best_iou, best = 0.0, None
    # only segments with pixels in the box can be candidates: count on the box's crop, against
    # each segment's size in the whole image
    for inverse, size in indexed:
        crop = inverse[y1:y2, x1:x2]
        inside_box = np.bincount(crop.ravel(), minlength=len(size))
        inside_t = np.bincount(crop.ravel(), weights=t.ravel(), minlength=len(size))
        needed = overlap * size - 1e-9  # overlap 1.0: all of the segment
        candidate = inside_box > needed
        refined |= (candidate & (inside_t > needed))[crop]
        iou = np.where(candidate, inside_t / (size + t_area - inside_t), -1.0)
        i = int(np.argmax(iou))
        if iou[i] > best_iou:
            best_iou, best = float(iou[i]), crop == i
    if best is None:  # no proposal lies inside the box: nothing to refine with
        return mask.copy()
    out = np.zeros_like(mask)
    out[y1:y2, x1:x2] = refined | best
    return out
