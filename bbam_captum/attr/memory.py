"""The memory of one BBAM step, estimated before the optimisation so that boxes can be chunked."""
from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from ..detectors.base import Crop, DetectorAdapter
from ..ops import perturb, to_rois, upsample_mask
from .proposals import PositiveProposals

__all__ = ["StepMemoryEstimate", "estimate_step_memory"]

#: ``(adapter, image, mu, masks, positives, crops) -> bytes per box``: what
#: :class:`~bbam_captum.BBAM` calls (``estimate_step_memory=``) to chunk its boxes.
StepMemoryEstimate = Callable[
    [DetectorAdapter, Tensor, Tensor, list[Tensor], list[PositiveProposals], list[Crop] | None], list[float]]


def estimate_step_memory(adapter: DetectorAdapter, image: Tensor, mu: Tensor, masks: list[Tensor],
                         positives: list[PositiveProposals], crops: list[Crop] | None) -> list[float]:
    """Estimated bytes of one BBAM step, per box.

    The memory of a step is ``fixed + sum over boxes of (a + b * pixels)``, ``pixels``
    being the box's window of the detector's input. Three forwards on small windows
    (one box on a small window, two on it, two on a window twice as wide) measure
    ``a`` and ``b`` from the tensors autograd saves for the backward pass, whatever the
    detector; the fixed part (weights, the image) cancels out. Each box also holds, for
    a moment, its perturbed image and that image's gradient at the input's full size,
    which autograd does not save: two RGB float images of the input's size are added.
    Call it with the detector frozen and gradients enabled, as :class:`~bbam_captum.BBAM` does.

    Args:
        adapter (DetectorAdapter): the detector.
        image (Tensor[1, 3, H, W]): the input, float.
        mu (Tensor): what masked-out pixels become, broadcastable to ``image``.
        masks (list of K Tensor[1, 1, h, w]): each box's mask grid.
        positives (list of K :class:`~bbam_captum.attr.proposals.PositiveProposals`): each box's O+.
        crops (list of K Crop, or None): each box's context window; None: the whole input.

    Returns:
        K floats, bytes.
    """
    height, width = image.shape[-2:]
    side = min(height, width)
    small, large = (adapter.crop(image.new_tensor([0.0, 0.0, side * f, side * f]), height, width)
                    for f in (0.125, 0.25))
    probe = max(range(len(masks)), key=lambda k: len(positives[k].rois))  # the most RoIs: the costliest head

    def saved(num: int, crop: Crop) -> int:
        storages: dict[int, Tensor] = {}  # kept alive so that no address is reused

        def pack(t: Tensor) -> Tensor:
            storages[t.untyped_storage().data_ptr()] = t
            return t

        mask = masks[probe].detach().requires_grad_(True).expand(num, -1, -1, -1)
        rois = to_rois([positives[probe].rois] * num)
        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            features = adapter.features(perturb(image, upsample_mask(mask, height, width), mu), [crop] * num)
            adapter.roi_outputs(features, rois)
        return sum(t.untyped_storage().nbytes() for t in storages.values())

    one, two, two_large = saved(1, small), saved(2, small), saved(2, large)
    pixels_small, pixels_large = small.width * small.height, large.width * large.height
    per_box = float(two - one)
    # an adapter that cannot crop sees the whole input in every probe: no slope to fit
    slope = 0.0
    if pixels_large != pixels_small:
        slope = max(0.0, (two_large - two) / (2 * (pixels_large - pixels_small)))
    full = adapter.crop(image.new_tensor([0.0, 0.0, width, height]), height, width)
    transient = 2 * 3 * full.width * full.height * image.element_size()
    return [transient + max(per_box + slope * (c.width * c.height - pixels_small), per_box)
            for c in (crops if crops is not None else [full] * len(masks))]
