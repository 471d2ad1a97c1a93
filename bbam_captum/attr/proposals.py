"""The positive proposals O+ of each box (Sec. 3.2 of the paper) and their target outputs."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from ..detectors.base import DetectorAdapter
from ..ops import box_iou_pairwise, jitter_boxes, to_rois
from .settings import BBAMSettings


@dataclass
class PositiveProposals:
    """O+ of one box, with the detector's outputs for it on the unperturbed image.

    Attributes:
        rois (Tensor[P, 4]): the positive proposals.
        regressed (Tensor[P, 4]): the boxes the detector regresses from them (for the target class).
        target: class index.
        probs (Tensor[P]): p_c, the class probability of the target class.
        deltas (Tensor[P, 4]): t_c, the target class's regression deltas.
        iou_threshold: the threshold that admitted them (None with the fallback).
        fallback: True when no proposal was positive and the box itself stands in.
    """

    rois: Tensor
    regressed: Tensor
    target: int
    probs: Tensor
    deltas: Tensor
    iou_threshold: float | None
    fallback: bool



#: ``(adapter, image, boxes, targets, settings) -> one PositiveProposals per box``: what
#: :class:`~bbam_captum.BBAM` calls (``select_positives=``) to choose O+; :func:`select_positives` by default.
PositiveSelector = Callable[[DetectorAdapter, Tensor, Tensor, Tensor, BBAMSettings], list[PositiveProposals]]


def box_generator(seed: int, box: Tensor) -> torch.Generator:
    """A random stream that depends only on the seed and the box, not on the other boxes,
    so that a box gets the same proposals alone or in a batch."""
    key = hash((seed, *(round(float(v) * 8) for v in box)))
    return torch.Generator().manual_seed(key & 0x7FFF_FFFF_FFFF_FFFF)


def select_positives(adapter: DetectorAdapter, image: Tensor, boxes: Tensor, targets: Tensor,
                     settings: BBAMSettings) -> list[PositiveProposals]:
    """Jitters each box, runs the RoI head once on all proposals and keeps the positives.

    Each box gets ``settings.num_proposals`` proposals, each coordinate shifted by up to
    ``settings.max_shift`` times the box side. A proposal is positive when the detector's
    top class (background included) is the target and the box it regresses for that class
    has IoU with the box above the threshold. ``settings.iou_thresholds`` are tried in
    order; at most ``settings.max_positives`` are kept, drawn at random when there are
    more. Randomness comes from :func:`box_generator` with ``settings.seed``.

    Args:
        image (Tensor[1, 3, H, W]), boxes (Tensor[K, 4]), targets (Tensor[K] long).
        settings: BBAM's settings; the fields above are used.

    Returns:
        One :class:`PositiveProposals` per box.
    """
    num_proposals, max_positives = settings.num_proposals, settings.max_positives
    height, width = image.shape[-2:]
    k = boxes.shape[0]
    generators = [box_generator(settings.seed, box) for box in boxes.cpu()]
    props = torch.cat([jitter_boxes(box[None], num_proposals, settings.max_shift, height, width, g)
                       for box, g in zip(boxes.cpu(), generators)]).to(boxes.device)  # [K, N, 4]
    flat = props.reshape(-1, 4)
    outputs = adapter.roi_outputs(adapter.features(image), to_rois([flat]))
    cls_of = targets.repeat_interleave(num_proposals)  # [K * N]
    rows = torch.arange(flat.shape[0], device=flat.device)
    deltas = outputs.deltas[rows, cls_of]  # [K * N, 4]
    regressed = adapter.decode(flat, deltas, height, width)
    top_class = outputs.probs.argmax(1)  # a proposal the detector calls background is not positive
    iou = box_iou_pairwise(regressed.reshape(k, num_proposals, 4), boxes[:, None, :])  # [K, N]
    correct = (top_class == cls_of).reshape(k, num_proposals)
    probs = outputs.probs[rows, cls_of].reshape(k, num_proposals)
    deltas = deltas.reshape(k, num_proposals, 4)
    regressed = regressed.reshape(k, num_proposals, 4)

    result = []
    for i in range(k):
        chosen, used = None, None
        for thr in settings.iou_thresholds:
            hits = (correct[i] & (iou[i] > thr)).nonzero().flatten()
            if hits.numel():
                chosen, used = hits, float(thr)
                break
        if chosen is None:  # fallback: the box itself (index 0 of the jitter is the unjittered box)
            chosen = torch.zeros(1, dtype=torch.long, device=boxes.device)
        elif chosen.numel() > max_positives:
            pick = torch.randperm(chosen.numel(), generator=generators[i])[:max_positives]
            chosen = chosen[pick.to(chosen.device)]
        result.append(PositiveProposals(
            rois=props[i, chosen], regressed=regressed[i, chosen], target=int(targets[i]),
            probs=probs[i, chosen], deltas=deltas[i, chosen], iou_threshold=used, fallback=used is None))
    return result
