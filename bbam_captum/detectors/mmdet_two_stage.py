"""The adapter between BBAM and MMDetection two-stage detectors (RPN + RoI head).

Supported: ``TwoStageDetector`` subclasses (Faster R-CNN, Mask R-CNN, ...) whose RoI head
is a ``StandardRoIHead`` (or subclass), and ``CascadeRoIHead``, whose last stage is used.
The RPN never runs here, except in :meth:`MMDetTwoStageAdapter.detect`.
"""
from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from .base import Crop, Detections, RoIOutputs


@dataclass
class MMDetFeatures:
    """Features of a batch, the factor (x, y) that maps image pixels to the model's input,
    and, per image of the batch, where its crop of the model's input starts (Tensor[N, 2],
    x and y in input pixels; zeros without windows)."""

    maps: tuple[Tensor, ...]
    scale: tuple[float, float]
    input_shape: tuple[int, int]
    offsets: Tensor


def _test_resize_scale(cfg, height: int, width: int) -> tuple[float, float]:
    """The (x, y) factor by which the detector's test pipeline resizes an image of this size."""
    pipeline = []
    if cfg is not None:
        dataloader = cfg.get("test_dataloader") or {}
        pipeline = (dataloader.get("dataset") or {}).get("pipeline") or cfg.get("test_pipeline") or []
    for step in pipeline:
        if step.get("type") in ("Resize", "mmdet.Resize") and step.get("scale") is not None:
            scale = step["scale"]
            target = (scale, scale) if isinstance(scale, int) else tuple(scale)
            if step.get("keep_ratio", False):
                long_edge, short_edge = max(target), min(target)
                factor = min(long_edge / max(height, width), short_edge / min(height, width))
                return factor, factor
            return target[0] / width, target[1] / height
    return 1.0, 1.0


def _class_names(model: torch.nn.Module, num_classes: int) -> tuple[str, ...]:
    """Class names from the checkpoint's meta, else the config's metainfo, else indices."""
    cfg = getattr(model, "cfg", None)
    candidates = [(getattr(model, "dataset_meta", None) or {}).get("classes"),
                  (cfg.get("metainfo") or {}).get("classes") if cfg is not None else None]
    for classes in candidates:
        if classes and len(classes) == num_classes:  # mmdet falls back to COCO's 80 names without a checkpoint
            return tuple(classes)
    return tuple(str(i) for i in range(num_classes))


class MMDetTwoStageAdapter:
    """BBAM's view of an MMDetection two-stage detector.

    Args:
        model (mmdet.models.TwoStageDetector): the detector, e.g. from
            :func:`bbam_captum.load_detector`. Its ``data_preprocessor`` (channel order,
            mean, std, padding) and its test pipeline's ``Resize`` are applied here, to
            tensors, so that gradients reach the raw pixels.
    """

    def __init__(self, model: torch.nn.Module) -> None:
        from mmdet.models.detectors import TwoStageDetector
        from mmdet.models.roi_heads import CascadeRoIHead, StandardRoIHead

        if not isinstance(model, TwoStageDetector):
            raise TypeError("BBAM supports MMDetection two-stage detectors (TwoStageDetector: Faster R-CNN, "
                            f"Mask R-CNN, Cascade R-CNN, ...), got {type(model).__name__}")
        roi_head = getattr(model, "roi_head", None)
        if isinstance(roi_head, CascadeRoIHead):
            self._stage = roi_head.num_stages - 1
            self._bbox_head = roi_head.bbox_head[self._stage]
        elif isinstance(roi_head, StandardRoIHead) and roi_head.with_bbox:
            self._stage = None
            self._bbox_head = roi_head.bbox_head
        else:
            raise TypeError("BBAM needs a RoI head with a box head (StandardRoIHead or CascadeRoIHead), "
                            f"got {type(roi_head).__name__}")
        if getattr(self._bbox_head, "custom_cls_channels", False):
            raise TypeError(f"box heads with custom class channels are not supported ({type(self._bbox_head).__name__})")
        self.model = model
        extractor = roi_head.bbox_roi_extractor
        # the RoI extractor of the stage explained (cascade heads keep one per stage)
        self.roi_extractor = extractor[self._stage] if self._stage is not None else extractor
        self._crop_grid = int(max(self.roi_extractor.featmap_strides))
        self.num_classes: int = int(self._bbox_head.num_classes)
        self.class_names = _class_names(model, self.num_classes)

    # ----------------------------------------------------------------- preprocessing
    def preprocess(self, images: Tensor) -> tuple[Tensor, tuple[float, float]]:
        """RGB 0..255 ``Tensor[N, 3, H, W]`` -> the detector's normalised, resized, padded input."""
        pre = self.model.data_preprocessor
        height, width = images.shape[-2:]
        sx, sy = self.input_scale(height, width)
        x = images.float()
        if (sx, sy) != (1.0, 1.0):
            size = (int(round(height * sy)), int(round(width * sx)))
            x = F.interpolate(x, size=size, mode="bilinear", align_corners=False)
            sx, sy = size[1] / width, size[0] / height
        if not getattr(pre, "_channel_conversion", False):
            # The detector was trained on BGR inputs as loaded by OpenCV and does not flip them.
            x = x.flip(1)
        if getattr(pre, "_enable_normalize", False):
            x = (x - pre.mean) / pre.std
        divisor = int(getattr(pre, "pad_size_divisor", 1) or 1)
        pad_h = (-x.shape[-2]) % divisor
        pad_w = (-x.shape[-1]) % divisor
        if pad_h or pad_w:
            x = F.pad(x, (0, pad_w, 0, pad_h), value=float(getattr(pre, "pad_value", 0)))
        return x, (sx, sy)

    def input_scale(self, height: int, width: int) -> tuple[float, float]:
        """The (x, y) factor by which the detector's test pipeline resizes an image of this size."""
        return _test_resize_scale(getattr(self.model, "cfg", None), height, width)

    def pixel_mean(self) -> Tensor:
        """The detector's pixel mean as RGB 0..255, Tensor[3, 1, 1] (the default mu)."""
        pre = self.model.data_preprocessor
        if not getattr(pre, "_enable_normalize", False):
            return torch.zeros(3, 1, 1, device=self.device)
        mean = pre.mean.detach().reshape(3, 1, 1).float()
        # With channel conversion the stored mean is in RGB; without it, in BGR.
        return mean if getattr(pre, "_channel_conversion", False) else mean.flip(0)

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    # ----------------------------------------------------------------- forward parts
    def crop(self, window: Tensor, height: int, width: int) -> Crop:
        """The crop of the detector's input that covers ``window`` (Tensor[4], image pixels)
        of an image of this size, its corners on the grid of the coarsest RoI feature map so
        that the cropped features are the full image's features, shifted."""
        sx, sy = self.input_scale(height, width)
        grid = self._crop_grid
        input_h = math.ceil(round(height * sy) / grid) * grid
        input_w = math.ceil(round(width * sx) / grid) * grid
        x1, y1, x2, y2 = window.tolist()
        left = min(max(math.floor(x1 * sx / grid) * grid, 0), input_w - grid)
        top = min(max(math.floor(y1 * sy / grid) * grid, 0), input_h - grid)
        right = min(max(math.ceil(x2 * sx / grid) * grid, left + grid), input_w)
        bottom = min(max(math.ceil(y2 * sy / grid) * grid, top + grid), input_h)
        return Crop(left, top, right - left, bottom - top)

    def features(self, images: Tensor, crops: Sequence[Crop] | None = None) -> MMDetFeatures:
        """FPN features of ``images`` (Tensor[N, 3, H, W], RGB 0..255), each cropped to its
        entry of ``crops`` (from :meth:`crop`, all of one size) when given."""
        x, scale = self.preprocess(images.to(self.device))
        offsets = x.new_zeros((x.shape[0], 2))
        if crops is not None:
            if len(crops) != x.shape[0] or len({(c.width, c.height) for c in crops}) != 1:
                raise ValueError(f"expected one crop per image ({x.shape[0]}), all of one size, got {list(crops)}")
            grid = self._crop_grid
            x = F.pad(x, (0, (-x.shape[-1]) % grid, 0, (-x.shape[-2]) % grid),
                      value=float(getattr(self.model.data_preprocessor, "pad_value", 0)))
            x = torch.stack([x[i, :, c.top:c.top + c.height, c.left:c.left + c.width] for i, c in enumerate(crops)])
            offsets = x.new_tensor([[c.left, c.top] for c in crops])
        return MMDetFeatures(tuple(self.model.extract_feat(x)), scale, tuple(x.shape[-2:]), offsets)

    def roi_outputs(self, features: MMDetFeatures, rois: Tensor) -> RoIOutputs:
        """Class probabilities and class-specific deltas for ``rois`` (Tensor[R, 5], image pixels)."""
        sx, sy = features.scale
        scaled = rois * rois.new_tensor([1.0, sx, sy, sx, sy])
        shift = features.offsets[rois[:, 0].long()].repeat(1, 2)  # crops move the input's origin
        scaled = torch.cat([scaled[:, :1], scaled[:, 1:] - shift], dim=1)
        roi_head = self.model.roi_head
        if self._stage is None:
            out = roi_head._bbox_forward(features.maps, scaled)
        else:
            out = roi_head._bbox_forward(self._stage, features.maps, scaled)
        probs = F.softmax(out["cls_score"], dim=-1)  # [R, C + 1]
        deltas = out["bbox_pred"]
        if self._bbox_head.reg_class_agnostic:
            deltas = deltas.reshape(-1, 1, 4).expand(-1, self.num_classes, 4)
        else:
            deltas = deltas.reshape(-1, self.num_classes, 4)
        return RoIOutputs(probs=probs, deltas=deltas)

    def decode(self, proposals: Tensor, deltas: Tensor, height: int, width: int) -> Tensor:
        """Boxes regressed from ``proposals`` (Tensor[R, 4]) by ``deltas`` (Tensor[R, 4]), image pixels."""
        return self._bbox_head.bbox_coder.decode(proposals, deltas, max_shape=(height, width))

    @contextmanager
    def frozen(self) -> Iterator[None]:
        """Eval mode, no weight gradients; both restored on exit."""
        was_training = self.model.training
        flags = [(p, p.requires_grad) for p in self.model.parameters()]
        self.model.eval()
        for p, _ in flags:
            p.requires_grad_(False)
        try:
            yield
        finally:
            for p, flag in flags:
                p.requires_grad_(flag)
            self.model.train(was_training)

    # ----------------------------------------------------------------- full detector
    @torch.no_grad()
    def detect(self, image: Tensor, score_thr: float = 0.5) -> Detections:
        """The detector's detections (RPN + RoI head, its own test pipeline) on ``image`` (Tensor[3, H, W] RGB)."""
        from mmdet.apis import inference_detector

        bgr = np.ascontiguousarray(image.detach().cpu().permute(1, 2, 0).numpy()[..., ::-1]).astype(np.uint8)
        with self.frozen():
            result = inference_detector(self.model, bgr)
        inst = result.pred_instances
        keep = inst.scores >= score_thr
        return Detections(boxes=inst.bboxes[keep].cpu(), scores=inst.scores[keep].cpu(),
                          labels=inst.labels[keep].cpu())
