"""Grad-CAM for one box of a two-stage detector: the baseline that BBAM is compared with."""
from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from captum.attr import GradientAttribution, LayerAttribution, LayerGradCam
from captum.log import log_usage
from torch import Tensor

from ..detectors.adapt import as_adapter
from ..detectors.base import DetectorAdapter
from ..ops import check_boxes, to_rois
from ._utils import format_image, format_target
from .bbam import TargetType


def box_score(adapter: DetectorAdapter, box: Tensor, target: int) -> Callable[[Tensor], Tensor]:
    """``images (Tensor[N, 3, H, W], RGB 0..255) -> Tensor[N]``: the class-``target`` probability of the RoI ``box``."""

    def score(images: Tensor) -> Tensor:
        features = adapter.features(images)
        return adapter.roi_outputs(features, to_rois([box[None]] * images.shape[0])).probs[:, target]

    return score


def _crop_to_image(attr: Tensor, adapter: DetectorAdapter, image: Tensor) -> Tensor:
    """A layer attribution over the detector's padded input -> Tensor[1, 1, H, W] over the image
    (Tensor[1, 3, H, W])."""
    height, width = image.shape[-2:]
    x, (sx, sy) = adapter.preprocess(image)
    up = LayerAttribution.interpolate(attr, tuple(x.shape[-2:]), interpolate_mode="bilinear")
    up = up[..., : round(height * sy), : round(width * sx)]
    return F.interpolate(up, size=(height, width), mode="bilinear", align_corners=False)


class BoxGradCAM(GradientAttribution):
    r"""Grad-CAM for boxes: Captum's ``LayerGradCam`` of the detector's probability of the box's
    class for the RoI equal to the box (second stage, proposals fixed), on the FPN level that
    the RoI is pooled from. A Captum ``GradientAttribution`` whose forward function is the
    detector's second stage; the layer differs from box to box, so it is no single
    ``LayerAttribution``.

    Paper: https://arxiv.org/abs/1610.02391

    Args:
        model (torch.nn.Module or DetectorAdapter): an MMDetection two-stage detector with an
            FPN-like neck (e.g. from :func:`bbam_captum.load_detector`), a torchvision Faster /
            Mask R-CNN, or an adapter with ``preprocess`` and ``gradcam_layer``.
    """

    def __init__(self, model: torch.nn.Module | DetectorAdapter) -> None:
        adapter = as_adapter(model, "BoxGradCAM")
        GradientAttribution.__init__(self, adapter.roi_outputs)
        self.adapter = adapter

    @classmethod
    def get_name(cls) -> str:
        return "Box Grad-CAM"  # Captum's default splits the capitals: "Box Grad C A M"

    @log_usage()
    def attribute(self, inputs: Tensor, boxes: Tensor, target: TargetType = None) -> Tensor:  # type: ignore[override]
        r"""Grad-CAM of each box, at the image's size.

        Args:
            inputs (Tensor): one image, ``(3, H, W)`` or ``(1, 3, H, W)``, RGB, values 0..255
                (uint8 or float).
            boxes (Tensor): ``(K, 4)`` or ``(4,)``, ``(x1, y1, x2, y2)`` in the image's pixels.
            target (int, list, Tensor or None, optional): class index per box; None: the
                detector's own top class for each box. Default: None

        Returns:
            Tensor[K, 1, H, W]: one map per box (H, W: the image's size), the positive part of
            Grad-CAM scaled to [0, 1] by its maximum; the same shape as
            :meth:`bbam_captum.BBAM.attribute`'s.
        """
        adapter = self.adapter
        image = format_image(inputs, adapter.device)  # [1, 3, H, W]
        boxes = check_boxes(boxes, *image.shape[-2:]).to(image.device)  # [K, 4]
        maps = []
        with adapter.frozen():
            with torch.no_grad():
                targets = format_target(target, boxes, image, adapter)  # [K]
            for box, cls in zip(boxes, targets):
                cam = LayerGradCam(box_score(adapter, box, int(cls)), adapter.gradcam_layer(box, *image.shape[-2:]))
                with torch.enable_grad():
                    attr = cam.attribute(image, relu_attributions=True)  # [1, 1, h, w]
                # the layer's grid covers the padded input: keep the part over the image
                maps.append(_crop_to_image(attr, adapter, image).detach())
        if not maps:
            return image.new_zeros((0, 1, *image.shape[-2:]))
        maps = torch.cat(maps)  # [K, 1, H, W]
        peak = maps.flatten(1).amax(1).clamp(min=1e-12)[:, None, None, None]
        return (maps.clamp(min=0) / peak).clamp(0, 1)
