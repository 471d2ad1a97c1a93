"""The adapter between BBAM and torchvision's two-stage detectors (``GeneralizedRCNN``).

Supported: :class:`torchvision.models.detection.FasterRCNN` and its subclasses
(``MaskRCNN``, ``KeypointRCNN``) with a box predictor that has a ``cls_score`` layer, as
built by ``fasterrcnn_resnet50_fpn`` (v1, v2), ``fasterrcnn_mobilenet_v3_large_fpn``
(and ``_320_fpn``) and ``maskrcnn_resnet50_fpn`` (v1, v2). The model's own transform
(scaling to 0..1, normalisation, resizing, padding) is applied here, to tensors, so that
gradients reach the raw pixels. The RPN never runs here, except in
:meth:`TorchvisionRCNNAdapter.detect`. torchvision is imported only when an adapter is made.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from functools import cached_property

import torch
import torch.nn.functional as F
from torch import Tensor

from ..ops import to_rois
from .base import Crop, Detections, RoIOutputs, UnsupportedDetectorError, crop_windows, frozen_model


@dataclass
class TorchvisionFeatures:
    """Backbone (FPN) features of a batch, the factor (x, y) that maps image pixels to the
    model's input, the size of each input before padding (what torchvision's RoI pooler
    infers its scales from), and where each image's crop of the input starts (Tensor[N, 2],
    x and y in input pixels; zeros without crops)."""

    maps: dict[str, Tensor]
    scale: tuple[float, float]
    image_shapes: list[tuple[int, int]]
    offsets: Tensor


class TorchvisionRCNNAdapter:
    """BBAM's view of a torchvision Faster R-CNN or Mask R-CNN.

    Args:
        model (torchvision.models.detection.FasterRCNN): the detector, e.g.
            ``fasterrcnn_resnet50_fpn(weights=...)``; its ``transform``
            (``GeneralizedRCNNTransform``) is replicated on tensors.
        class_names (sequence of str, optional): one name per object class, or
            torchvision's category list with ``"__background__"`` first, e.g.
            ``weights.meta["categories"]``. Default: ``model.dataset_meta["classes"]``
            where the model carries them (as :func:`~bbam_captum.detectors.load_torchvision_detector`
            and MMDetection set them), else the class indices as strings.

    Raises:
        UnsupportedDetectorError: ``model`` is not a Faster R-CNN (or subclass) with
            torchvision's transform and a box predictor that has a ``cls_score`` layer.
        ValueError: ``class_names`` of another count than the model's classes.

    torchvision puts background in column 0 of its scores and its labels 1..C name the
    object classes; here, as in every adapter, classes are 0..C-1 and background is last.
    """

    def __init__(self, model: torch.nn.Module, class_names: Sequence[str] | None = None) -> None:
        from torchvision.models.detection import FasterRCNN
        from torchvision.models.detection.transform import GeneralizedRCNNTransform

        if not isinstance(model, FasterRCNN):
            raise UnsupportedDetectorError("TorchvisionRCNNAdapter supports torchvision's FasterRCNN and its "
                                           f"subclasses (MaskRCNN, KeypointRCNN), got {type(model).__name__}")
        if not isinstance(model.transform, GeneralizedRCNNTransform):
            raise UnsupportedDetectorError("expected the model's transform to be a GeneralizedRCNNTransform, "
                                           f"got {type(model.transform).__name__}")
        cls_score = getattr(model.roi_heads.box_predictor, "cls_score", None)
        if not isinstance(cls_score, torch.nn.Linear):
            raise UnsupportedDetectorError("expected a box predictor with a cls_score Linear layer "
                                           f"(FastRCNNPredictor), got {type(model.roi_heads.box_predictor).__name__}")
        self.model = model
        self.num_classes: int = cls_score.out_features - 1  # torchvision counts background as a class
        if class_names is None:
            class_names = (getattr(model, "dataset_meta", None) or {}).get("classes")
        self.class_names = _class_names(class_names, self.num_classes)

    # ----------------------------------------------------------------- preprocessing
    def resized_size(self, height: int, width: int) -> tuple[int, int]:
        """The (height, width) the model's transform resizes an image of this size to (eval mode)."""
        transform = self.model.transform
        if transform.fixed_size is not None:
            return int(transform.fixed_size[1]), int(transform.fixed_size[0])
        scale = self._resize_factor(height, width)
        # F.interpolate with recompute_scale_factor=True: floor(side * factor)
        return int(math.floor(height * scale)), int(math.floor(width * scale))

    def _resize_factor(self, height: int, width: int) -> float:
        """torchvision's scale: the short side to ``min_size`` unless the long side passes ``max_size``."""
        transform = self.model.transform
        return min(float(transform.min_size[-1]) / min(height, width), float(transform.max_size) / max(height, width))

    def input_scale(self, height: int, width: int) -> tuple[float, float]:
        """The (x, y) factor that maps an image of this size to the model's input (as torchvision rescales boxes)."""
        new_h, new_w = self.resized_size(height, width)
        return new_w / width, new_h / height

    def preprocess(self, images: Tensor) -> tuple[Tensor, tuple[float, float]]:
        """RGB 0..255 ``Tensor[N, 3, H, W]`` -> the model's normalised, resized, padded input
        ``Tensor[N, 3, H', W']`` and the (x, y) factor from image to input pixels."""
        transform = self.model.transform
        height, width = images.shape[-2:]
        x = images.float() / 255.0
        mean = x.new_tensor(transform.image_mean)[:, None, None]
        std = x.new_tensor(transform.image_std)[:, None, None]
        x = (x - mean) / std
        # the same call as torchvision's resize, so that the input matches the model's own to the bit
        if transform.fixed_size is not None:
            x = F.interpolate(x, size=self.resized_size(height, width), mode="bilinear", align_corners=False)
        else:
            x = F.interpolate(x, scale_factor=self._resize_factor(height, width), mode="bilinear",
                              recompute_scale_factor=True, align_corners=False)
        scale = (x.shape[-1] / width, x.shape[-2] / height)
        divisor = int(transform.size_divisible)
        x = F.pad(x, (0, (-x.shape[-1]) % divisor, 0, (-x.shape[-2]) % divisor))  # torchvision pads with 0
        return x, scale

    def pixel_mean(self) -> Tensor:
        """The model's pixel mean as RGB 0..255, Tensor[3, 1, 1] (the default mu)."""
        return torch.tensor(self.model.transform.image_mean, device=self.device).reshape(3, 1, 1) * 255.0

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    # ----------------------------------------------------------------- forward parts
    def crop(self, window: Tensor, height: int, width: int) -> Crop:
        """The crop of the model's input that covers ``window`` (Tensor[4], image pixels) of
        an image of this size, its corners on the grid of the coarsest RoI feature map so
        that the cropped features are the full image's features, shifted."""
        sx, sy = self.input_scale(height, width)
        grid = self._crop_grid
        new_h, new_w = self.resized_size(height, width)
        input_h = math.ceil(new_h / grid) * grid
        input_w = math.ceil(new_w / grid) * grid
        x1, y1, x2, y2 = window.tolist()
        left = min(max(math.floor(x1 * sx / grid) * grid, 0), input_w - grid)
        top = min(max(math.floor(y1 * sy / grid) * grid, 0), input_h - grid)
        right = min(max(math.ceil(x2 * sx / grid) * grid, left + grid), input_w)
        bottom = min(max(math.ceil(y2 * sy / grid) * grid, top + grid), input_h)
        return Crop(left, top, right - left, bottom - top)

    def features(self, images: Tensor, crops: Sequence[Crop] | None = None) -> TorchvisionFeatures:
        """FPN features of ``images`` (Tensor[N, 3, H, W], RGB 0..255), each cropped to its
        entry of ``crops`` (from :meth:`crop`) when given, padded to the largest."""
        height, width = images.shape[-2:]
        x, scale = self.preprocess(images.to(self.device))
        offsets = x.new_zeros((x.shape[0], 2))
        shapes = [self.resized_size(height, width)] * x.shape[0]
        if crops is not None:
            grid = self._crop_grid
            x = F.pad(x, (0, (-x.shape[-1]) % grid, 0, (-x.shape[-2]) % grid))
            x = crop_windows(x, crops)  # torchvision pads its batches with zeros too
            offsets = x.new_tensor([[c.left, c.top] for c in crops])
            shapes = [(c.height, c.width) for c in crops]
        return TorchvisionFeatures(dict(self.model.backbone(x)), scale, shapes, offsets)

    def roi_outputs(self, features: TorchvisionFeatures, rois: Tensor) -> RoIOutputs:
        """Class probabilities (background last) and class-specific deltas for ``rois``
        (Tensor[R, 5]: batch index, x1, y1, x2, y2 in image pixels)."""
        sx, sy = features.scale
        batch = rois[:, 0].long()
        boxes = rois[:, 1:] * rois.new_tensor([sx, sy, sx, sy]) - features.offsets[batch].repeat(1, 2)
        # torchvision's pooler takes one box list per image: group the RoIs by image, then restore their order
        order = torch.argsort(batch, stable=True)
        counts = torch.bincount(batch, minlength=len(features.image_shapes)).tolist()
        heads = self.model.roi_heads
        pooled = heads.box_roi_pool(features.maps, list(boxes[order].split(counts)), features.image_shapes)
        logits, regression = heads.box_predictor(heads.box_head(pooled))
        inverse = torch.empty_like(order)
        inverse[order] = torch.arange(order.numel(), device=order.device)
        logits, regression = logits[inverse], regression[inverse]
        probs = F.softmax(logits, dim=-1)  # [R, C + 1], background in column 0
        probs = torch.cat([probs[:, 1:], probs[:, :1]], dim=1)
        deltas = regression.reshape(rois.shape[0], -1, 4)
        deltas = deltas.expand(-1, self.num_classes + 1, 4) if deltas.shape[1] == 1 else deltas
        return RoIOutputs(probs=probs, deltas=deltas[:, 1:])

    def decode(self, proposals: Tensor, deltas: Tensor, height: int, width: int) -> Tensor:
        """Boxes regressed from ``proposals`` (Tensor[R, 4]) by ``deltas`` (Tensor[R, 4]), image pixels.

        torchvision decodes in input pixels; the deltas are relative to the proposal's size,
        so decoding in image pixels and clipping to the image gives the same boxes.
        """
        from torchvision.ops import clip_boxes_to_image

        boxes = self.model.roi_heads.box_coder.decode_single(deltas, proposals)
        return clip_boxes_to_image(boxes, (height, width))

    def gradcam_layer(self, box: Tensor, height: int, width: int) -> torch.nn.Module:
        """The FPN output that torchvision's pooler reads ``box`` (Tensor[4], image pixels, an image
        of this size) from: Grad-CAM's layer."""
        pooler = self.model.roi_heads.box_roi_pool
        if pooler.map_levels is None:  # torchvision sets its level mapper on the pooler's first call
            with torch.no_grad(), self.frozen():
                image = torch.zeros((1, 3, height, width), device=self.device)
                self.roi_outputs(self.features(image), to_rois([box[None].to(self.device)]))
        sx, sy = self.input_scale(height, width)
        level = int(pooler.map_levels([(box * box.new_tensor([sx, sy, sx, sy]))[None].to(self.device)])[0])
        return self.model.backbone.fpn.layer_blocks[level]

    def frozen(self) -> AbstractContextManager[None]:
        """Eval mode, no weight gradients; both restored on exit."""
        return frozen_model(self.model)

    @cached_property
    def _crop_grid(self) -> int:
        """The largest stride of the feature maps the RoI pooler reads (measured by one small forward)."""
        side = 4 * int(self.model.transform.size_divisible)
        names = getattr(self.model.roi_heads.box_roi_pool, "featmap_names", None)
        with torch.no_grad(), self.frozen():
            maps = self.model.backbone(torch.zeros(1, 3, side, side, device=self.device))
        heights = [m.shape[-2] for name, m in maps.items() if names is None or name in names]
        return max(side // h for h in heights)

    # ----------------------------------------------------------------- full detector
    @torch.no_grad()
    def detect(self, image: Tensor, score_thr: float = 0.5) -> Detections:
        """The detector's detections (RPN + RoI heads, its own transform) on ``image``
        (Tensor[3, H, W], RGB 0..255), labels 0..C-1."""
        with self.frozen():
            result = self.model([image.to(self.device, torch.float32) / 255.0])[0]
        keep = result["scores"] >= score_thr
        return Detections(boxes=result["boxes"][keep].cpu(), scores=result["scores"][keep].cpu(),
                          labels=result["labels"][keep].cpu() - 1)


def _class_names(names: Sequence[str] | None, num_classes: int) -> tuple[str, ...]:
    """C object class names; a list with background first (torchvision's ``meta["categories"]``) loses it."""
    if names is None:
        return tuple(str(i) for i in range(num_classes))
    names = tuple(str(n) for n in names)
    if len(names) == num_classes + 1 and names[0] == "__background__":
        names = names[1:]
    if len(names) != num_classes:
        raise ValueError(f"class_names must name the model's {num_classes} object classes (or {num_classes + 1} "
                         f"with '__background__' first), got {len(names)}")
    return names
