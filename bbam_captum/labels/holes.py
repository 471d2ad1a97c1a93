"""Opening the holes of hollow objects that a pseudo mask has filled in.

BBAM's maps are made of mask cells, and a ring's or a frame's hole is often a cell or two wide,
so the map, and the CRF and Eq. 4 after it, tend to claim the hole as object. The image tells
it apart: what shows through a hole is the surroundings. The part of a segment inside the mask
that lies clear of the mask's rim is taken out when its colours are likelier under the
surroundings' colours than under the rim's (two Gaussians in CIELAB, fitted per mask): the rim of
a mask is the object's own most certain part, the surroundings the box's neighbourhood outside
the mask. The rim itself is never cut; a segment that reaches into it is judged by its part
clear of it, since the hole of a thin ring or frame often lies closer to the object's outer edge
than the rim is wide, and on textured images its segments then run into the rim.

A segment whose colours are like the object's stays; so does everything of a solid object
whose colours are its own, which is what keeps the rule from cutting into solid shapes.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
from scipy import ndimage
from skimage.color import rgb2lab

from .refine import DEFAULT_OVERLAP, Segments, grown_box

MIN_MASK_PIXELS = 30  # a smaller mask has no interior to judge
MIN_REFERENCE_PIXELS = 10  # fewer rim or surrounding pixels fit no colour model
COLOUR_PRIOR = 4.0  # added to each colour covariance's diagonal (CIELAB units squared): flat fills stay invertible


def open_holes(masks: np.ndarray, boxes: np.ndarray | Sequence[Sequence[float]], image: np.ndarray,
               segments: Segments, rim: float) -> np.ndarray:
    """The masks with the inner segments that look like their surroundings taken out.

    Args:
        masks (np.ndarray[K, H, W] bool): the pseudo masks.
        boxes: K boxes ``(x1, y1, x2, y2)``.
        image (np.ndarray[H, W, 3] uint8): the image the masks were made from.
        segments (Segments): one segmentation of the image (labels (H, W), sizes), as
            :func:`~bbam_captum.labels.refine.box_segment_pools` gives.
        rim: width of a mask's rim (its pixels this close to the outside of the mask with its
            holes filled), as a share of the box's longer side (at least 2 px). The rim is never
            taken out; a segment that reaches into it is judged, and taken out, by its part
            clear of it.

    Returns:
        np.ndarray[K, H, W] bool: each mask without the segments taken out (a subset of it).
    """
    if masks.ndim != 3 or image.shape[:2] != masks.shape[1:] or image.ndim != 3:
        raise ValueError(f"expected masks (K, H, W) and an image (H, W, 3) of the same size, got masks "
                         f"{tuple(masks.shape)} and image {tuple(image.shape)}")
    if not 0.0 < rim < 0.5:
        raise ValueError(f"rim must lie in (0, 0.5) of the box's longer side, got {rim}")
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    if len(boxes) != len(masks):
        raise ValueError(f"expected one box per mask ({len(masks)}), got {len(boxes)}")
    if not masks.any():
        return masks.copy()
    lab = rgb2lab(image)
    return np.stack([_open(mask, box, lab, segments, rim) for mask, box in zip(masks, boxes)])


def _open(mask: np.ndarray, box: np.ndarray, lab: np.ndarray, segments: Segments, rim: float) -> np.ndarray:
    if mask.sum() < MIN_MASK_PIXELS:
        return mask.copy()
    side = max(box[2] - box[0], box[3] - box[1], 1.0)
    y1, y2, x1, x2 = grown_box(box, *mask.shape)
    crop = mask[y1:y2, x1:x2]
    if crop.sum() < mask.sum():  # the mask runs out of its box's neighbourhood: not this rule's case
        return mask.copy()
    filled = ndimage.binary_fill_holes(crop)
    # padded, so that a mask on the image's edge has its rim there too
    depth = ndimage.distance_transform_edt(np.pad(filled, 1))[1:-1, 1:-1]
    rim_pixels = crop & (depth <= max(2.0, rim * side))
    surroundings = ~filled
    if rim_pixels.sum() < MIN_REFERENCE_PIXELS or surroundings.sum() < MIN_REFERENCE_PIXELS:
        return mask.copy()
    colours = lab[y1:y2, x1:x2]
    object_score = _log_likelihood(colours[rim_pixels])
    surroundings_score = _log_likelihood(colours[surroundings])
    labels = segments.labels[y1:y2, x1:x2]
    inner = crop & ~rim_pixels
    ids = np.unique(labels[inner])
    in_mask = np.bincount(labels[crop], minlength=len(segments.sizes))[ids]
    # a segment wholly inside the mask (as Eq. 4 counts it) is a candidate, judged by its part clear of the rim
    candidates = ids[in_mask > DEFAULT_OVERLAP * segments.sizes[ids] - 1e-9]
    opened = crop.copy()
    for i in candidates:
        pixels = (labels == i) & inner
        x = colours[pixels]
        if np.mean(surroundings_score(x) - object_score(x)) > 0.0:
            opened &= ~pixels
    out = mask.copy()
    out[y1:y2, x1:x2] = opened
    return out


def _log_likelihood(samples: np.ndarray) -> Callable[[np.ndarray], np.ndarray]:
    """log N(x; mean, cov) up to a constant, of a Gaussian fitted to ``samples`` (N, 3)."""
    mean = samples.mean(0)
    cov = np.cov(samples.T) + COLOUR_PRIOR * np.eye(3)
    inverse, log_det = np.linalg.inv(cov), np.linalg.slogdet(cov)[1]

    def score(x: np.ndarray) -> np.ndarray:
        d = x - mean
        return -0.5 * (np.einsum("ni,ij,nj->n", d, inverse, d) + log_det)

    return score
