"""The label chain: how one image's BBAM maps become instance masks and semantic claims.

:class:`LabelSettings` holds the rules (the dense CRF or thresholds, the refinement of Eq. 4, the
opening of holes), :func:`pseudo_masks` applies them; ``generate``, ``labels`` and the benchmarks all use these two.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch

from .crf import crf_mask_sets
from .holes import open_holes
from .masks import instance_masks, smooth_maps
from .refine import DEFAULT_SCALES, box_segment_pools, refine_masks
from .settings import DenseCRFSettings, LabelSettings

#: ``(maps, boxes, image, top_share, settings, blur_sigmas) -> masks``, as :func:`~bbam_captum.labels.crf.crf_masks`:
#: the dense CRF that :func:`pseudo_masks` calls (``crf=``).
CRFMasks = Callable[[np.ndarray, np.ndarray, np.ndarray, float, DenseCRFSettings, np.ndarray], np.ndarray]


def pseudo_masks(maps: np.ndarray, boxes: np.ndarray, settings: LabelSettings, image: np.ndarray | None,
                 cells: np.ndarray | Sequence[float] | None = None,
                 crf: CRFMasks | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Instance masks, foreground and uncertain claims of one image's boxes.

    Args:
        maps (np.ndarray[K, H, W]), boxes (np.ndarray[K, 4]); ``image`` (H, W, 3) uint8
        is needed with ``settings.crf``, ``settings.refine`` or ``settings.open_holes``.
        cells (np.ndarray[K]): image pixels per mask cell of each map (BBAM's per-box
            ``stride``, :class:`~bbam_captum.attr.bbam.BoxRecord`), needed with ``settings.crf``:
            the CRF's prior is blurred by ``settings.crf_blur`` of them.
        crf (callable, optional): the dense CRF used with ``settings.crf``, called as
            ``crf(maps, boxes, image, top_share, crf_settings, blur_sigmas)`` once for the
            instance masks (``settings.crf_fg_share``) and once for the wider masks
            (``settings.crf_bg_share``). Default (None): :func:`~bbam_captum.labels.crf.crf_masks`,
            through :func:`~bbam_captum.labels.crf.crf_mask_sets` so that both masks share the
            image's CRF set-up (the same masks as two calls).

    Returns:
        instance, foreground, uncertain: each np.ndarray[K, H, W] bool (uncertain: claimed
        by the wider mask, not by the foreground).
    """
    if settings.needs_image and image is None:
        raise ValueError("the CRF, the refinement and the opening of holes (settings.crf, settings.refine, "
                         "settings.open_holes) need the image; pass it, or use crf=False, refine=False, "
                         "open_holes=False")
    maps = maps.astype(np.float32)
    if settings.crf:
        crf_settings = DenseCRFSettings(max_pixels=settings.crf_max_pixels, window=settings.crf_window)
        if cells is None or len(cells) != len(boxes):
            raise ValueError(f"the CRF blurs each map by its mask cells: cells must hold one size per box "
                             f"({len(boxes)}), got {None if cells is None else len(cells)}")
        sigmas = settings.crf_blur * np.asarray(cells, dtype=np.float64)
        shares = (settings.crf_fg_share, settings.crf_bg_share)
        if crf is None:
            instance, wider = crf_mask_sets(maps, boxes, image, shares, crf_settings, sigmas)
        else:
            instance, wider = (crf(maps, boxes, image, share, crf_settings, sigmas) for share in shares)
        foreground = instance
    else:
        maps_t = smooth_maps(torch.from_numpy(maps)[:, None], settings.blur_sigma)
        boxes_t = torch.from_numpy(boxes)
        instance = instance_masks(maps_t, boxes_t, settings.instance_threshold).numpy()
        foreground = instance_masks(maps_t, boxes_t, settings.theta_fg).numpy()
        wider = instance_masks(maps_t, boxes_t, settings.theta_bg).numpy()
    pools = None
    if settings.refine and len(boxes):
        pools = box_segment_pools(image, boxes)  # a large image: segmented around its boxes only
        refined_instance = refine_masks(instance, boxes, pools)
        foreground = refined_instance if foreground is instance else refine_masks(foreground, boxes, pools)
        instance = refined_instance
        if settings.crf:  # the original refined its wider masks too, keeping the foreground in them
            wider = refine_masks(wider, boxes, pools) | foreground
    if settings.open_holes and len(boxes):
        # the finest segments: a hole a cell or two wide is one or a few of them
        finest = pools[0] if pools is not None else box_segment_pools(image, boxes, scales=DEFAULT_SCALES[:1])[0]
        opened = instance & ~open_holes(instance, boxes, image, finest, settings.hole_rim)
        # what shows through a hole is background, in the semantic labels too
        instance, foreground, wider = instance & ~opened, foreground & ~opened, wider & ~opened
    return instance, foreground, wider & ~foreground
