"""The adapter between BBAM and MMDetection two-stage detectors (RPN + RoI head).

Supported: ``TwoStageDetector`` subclasses (Faster R-CNN, Mask R-CNN, ...) whose RoI head
is a ``StandardRoIHead`` (or subclass, Grid R-CNN's included), and ``CascadeRoIHead`` and
its subclasses (HTC, SCNet), whose last stage is used. Box heads that give deltas, SABL's
bucketing head and Grid R-CNN's grid head (which give boxes) are explained alike: a box
is encoded as deltas relative to its RoI. Refused, with the reason, when the adapter is
made: query-based heads (Sparse R-CNN, QueryInst) and heads that give several boxes per
RoI (CrowdDet). The RPN never runs here, except in :meth:`MMDetTwoStageAdapter.detect`.

On a CUDA device with an mmcv built without its CUDA ops (mmcv's own CPU build), the RoI
extractor's ``RoIAlign`` layers run through torchvision's ``roi_align`` (mmcv's
``use_torchvision``, the same arithmetic, set only while the adapter runs them), so that a
stock Faster / Mask R-CNN needs no CUDA build of mmcv; a detector with other mmcv ops
(deformable convolutions, CARAFE, ...) and :meth:`MMDetTwoStageAdapter.detect` (mmcv's NMS)
are refused there with what to install.
"""
from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from ..ops import to_rois
from .base import Crop, Detections, RoIOutputs, UnsupportedDetectorError, crop_windows, frozen_model

# Keys of the test pipeline's Resize that :class:`TestResize` reproduces (the others,
# e.g. ``scale_factor``, it cannot).
_RESIZE_KEYS = frozenset({"type", "scale", "keep_ratio", "backend", "interpolation", "clip_object_border"})
# Words in the names of test-pipeline steps that change the image's geometry: any such
# step other than a plain Resize would make the adapter's input differ from the detector's.
_GEOMETRIC_WORDS = ("Resize", "Rescale", "Crop", "Pad", "Affine", "Expand", "Flip", "Mosaic", "MixUp")
# Attributes of the data preprocessor that :meth:`MMDetTwoStageAdapter.preprocess` reads.
_PREPROCESSOR_ATTRS = ("_channel_conversion", "_enable_normalize", "pad_size_divisor", "pad_value")
# Deltas of heads that give boxes: MMDetection's R-CNN box coder, whose normalisation
# gives the box term of BBAM's loss the same scale as for Faster R-CNN.
_BOX_DELTA_STDS = (0.1, 0.1, 0.2, 0.2)


@dataclass
class MMDetFeatures:
    """Features of a batch, the factor (x, y) that maps image pixels to the model's input,
    and, per image of the batch, where its crop of the model's input starts (Tensor[N, 2],
    x and y in input pixels; zeros without windows). ``extra`` holds what some RoI heads
    take besides the maps (HTC's and SCNet's semantic and global-context features), as
    keyword arguments of their ``_bbox_forward``."""

    maps: tuple[Tensor, ...]
    scale: tuple[float, float]
    input_shape: tuple[int, int]
    offsets: Tensor
    extra: dict[str, Tensor] = field(default_factory=dict)


@dataclass(frozen=True)
class TestResize:
    """The resizing of a detector's test pipeline: to ``scale`` (width, height), keeping
    the aspect ratio or not; ``scale`` None: no resizing."""

    scale: tuple[int, int] | None = None
    keep_ratio: bool = False

    def factors(self, height: int, width: int) -> tuple[float, float]:
        """The (x, y) factor by which an image of this size is resized (as ``mmcv.imrescale``)."""
        if self.scale is None:
            return 1.0, 1.0
        if self.keep_ratio:
            long_edge, short_edge = max(self.scale), min(self.scale)
            factor = min(long_edge / max(height, width), short_edge / min(height, width))
            return factor, factor
        return self.scale[0] / width, self.scale[1] / height


def _pipeline_steps(pipeline: Iterable) -> Iterator[dict]:
    """The steps of a pipeline, those inside wrappers (``transforms``, e.g. ProposalBroadcaster) included."""
    for step in pipeline:
        yield step
        inner = step.get("transforms")
        if inner is not None:
            if any(not isinstance(t, dict) for t in inner):  # TestTimeAug: lists of alternatives
                raise UnsupportedDetectorError(
                    f"the test pipeline's {step.get('type')} runs several variants of the image; BBAM needs "
                    "one test pipeline (use the config's test_pipeline, not its tta_pipeline)")
            yield from _pipeline_steps(inner)


def read_test_resize(cfg) -> TestResize:
    """How the test pipeline of ``cfg`` (an mmengine ``Config``) resizes images.

    Found with MMDetection's ``get_test_pipeline_cfg``, or the config's ``test_pipeline`` where it
    has no ``test_dataloader`` (a training-only config). A pipeline without a resizing step
    leaves images as they are; one whose resizing cannot be reproduced on tensors (a
    ``Resize`` by ``scale_factor`` or with unknown keys, ``RandomResize``, crops, flips,
    padding, several resizes) raises :class:`UnsupportedDetectorError`.
    """
    from mmdet.utils import get_test_pipeline_cfg

    if cfg is None:
        raise UnsupportedDetectorError(
            "the model has no config (model.cfg): BBAM needs its test pipeline to resize images as the detector "
            "does; build it with bbam_captum.load_detector or mmdet.apis.init_detector, or set model.cfg")
    try:
        if cfg.get("test_dataloader") is None and cfg.get("test_pipeline") is not None:
            pipeline = cfg.test_pipeline  # a training-only config (generate's Mask R-CNN) names only this
        else:
            pipeline = get_test_pipeline_cfg(cfg)
    except (AttributeError, KeyError, RuntimeError) as error:
        raise UnsupportedDetectorError(
            "cannot find the test pipeline in the model's config (test_dataloader.dataset.pipeline): "
            f"{error}") from error
    resizes = []
    for step in _pipeline_steps(pipeline):
        kind = str(step.get("type", "")).split(".")[-1]  # "mmdet.Resize" -> "Resize"
        if kind == "Resize":
            resizes.append(step)
        elif any(word in kind for word in _GEOMETRIC_WORDS):
            raise UnsupportedDetectorError(
                f"the test pipeline's {kind} step changes the image in a way BBAM cannot reproduce on tensors; "
                f"expected at most one Resize(scale=..., keep_ratio=...), got {dict(step)}")
    if not resizes:
        return TestResize()
    if len(resizes) > 1:
        raise UnsupportedDetectorError(f"expected at most one Resize in the test pipeline, got {len(resizes)}")
    step = dict(resizes[0])
    unknown = sorted(set(step) - _RESIZE_KEYS)
    scale = step.get("scale")
    if unknown or scale is None or step.get("interpolation", "bilinear") != "bilinear":
        raise UnsupportedDetectorError(
            "BBAM reproduces the test pipeline's Resize from scale=(width, height) or an int, keep_ratio and "
            f"bilinear interpolation; cannot read {step}" + (f" (unknown keys {unknown})" if unknown else ""))
    if isinstance(scale, int):
        scale = (scale, scale)
    if len(scale) != 2 or not all(isinstance(v, int) and v > 0 for v in scale):
        raise UnsupportedDetectorError(f"expected the Resize scale as two positive ints (width, height), got {scale!r}")
    return TestResize(tuple(scale), bool(step.get("keep_ratio", False)))


def _check_preprocessor(pre: torch.nn.Module) -> None:
    """Raises unless ``pre`` has what :meth:`MMDetTwoStageAdapter.preprocess` reads (as ``DetDataPreprocessor``)."""
    missing = [name for name in _PREPROCESSOR_ATTRS if not hasattr(pre, name)]
    if getattr(pre, "_enable_normalize", False):
        missing += [name for name in ("mean", "std") if not isinstance(getattr(pre, name, None), Tensor)]
    if missing:
        raise UnsupportedDetectorError(
            f"the model's data preprocessor ({type(pre).__name__}) lacks {', '.join(missing)}; BBAM applies the "
            "preprocessing itself and reads them as mmdet's DetDataPreprocessor has them")


def _refusal(roi_head: torch.nn.Module) -> str | None:
    """Why BBAM cannot explain a box with this RoI head, or None."""
    from mmdet.models.roi_heads import CascadeRoIHead, MultiInstanceRoIHead, SparseRoIHead, StandardRoIHead

    name = type(roi_head).__name__
    if isinstance(roi_head, SparseRoIHead):
        return (f"{name} (Sparse R-CNN, QueryInst) is query-based: its class scores and boxes come from learned "
                "proposal features refined together with learned proposal boxes, stage by stage, so it has no class "
                "score and box for a given box, which is what BBAM explains")
    if isinstance(roi_head, MultiInstanceRoIHead):
        return (f"{name} (CrowdDet) predicts a set of several boxes and class scores per RoI; BBAM explains the one "
                "class score and box that a RoI head gives for a given box")
    if not isinstance(roi_head, (StandardRoIHead, CascadeRoIHead)) or not roi_head.with_bbox:
        return ("BBAM needs a RoI head with a box head (StandardRoIHead, CascadeRoIHead or a subclass), "
                f"got {name}")
    return None


def _box_kind(roi_head: torch.nn.Module, bbox_head: torch.nn.Module) -> str:
    """How the explained head gives a RoI's box: "deltas" (its box head), "sabl" (SABL's
    bucketing head) or "grid" (Grid R-CNN's grid head); raises when it gives none."""
    from mmdet.models.roi_heads import GridRoIHead
    from mmdet.models.roi_heads.bbox_heads import SABLHead

    if isinstance(bbox_head, SABLHead):
        return "sabl"
    if isinstance(roi_head, GridRoIHead):
        return "grid"
    if not getattr(bbox_head, "with_reg", True):
        raise UnsupportedDetectorError(f"{type(bbox_head).__name__} has no box regression (with_reg=False) and "
                                       f"{type(roi_head).__name__} gives no box otherwise; BBAM explains a box")
    return "deltas"


def _has_deformable_conv(model: torch.nn.Module) -> bool:
    from mmcv.ops import DeformConv2d, ModulatedDeformConv2d

    return any(isinstance(m, (DeformConv2d, ModulatedDeformConv2d)) for m in model.modules())


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
            :func:`bbam_captum.load_detector`, with its config as ``model.cfg``. Its
            ``data_preprocessor`` (channel order, mean, std, padding) and its test
            pipeline's ``Resize`` are applied here, to tensors, so that gradients reach the
            raw pixels.

    Raises:
        UnsupportedDetectorError: for a detector BBAM cannot explain (the message names
            its RoI head and why), or whose test pipeline or data preprocessor it cannot
            reproduce.
    """

    def __init__(self, model: torch.nn.Module) -> None:
        from mmdet.models.detectors import TwoStageDetector
        from mmdet.models.roi_heads import CascadeRoIHead
        from mmdet.models.task_modules.coders import DeltaXYWHBBoxCoder

        if not isinstance(model, TwoStageDetector):
            raise UnsupportedDetectorError(
                "BBAM supports MMDetection two-stage detectors (TwoStageDetector: Faster R-CNN, Mask R-CNN, Cascade "
                f"R-CNN, ...), got {type(model).__name__}")
        roi_head = getattr(model, "roi_head", None)
        reason = _refusal(roi_head)
        if reason is not None:
            raise UnsupportedDetectorError(reason)
        if isinstance(roi_head, CascadeRoIHead):
            self._stage: int | None = roi_head.num_stages - 1
            self._bbox_head = roi_head.bbox_head[self._stage]
        else:
            self._stage = None
            self._bbox_head = roi_head.bbox_head
        self._box_kind = _box_kind(roi_head, self._bbox_head)
        # decode() inverts the deltas of roi_outputs(): the head's own, or boxes encoded by the R-CNN coder
        self._box_coder = (self._bbox_head.bbox_coder if self._box_kind == "deltas"
                           else DeltaXYWHBBoxCoder(target_stds=_BOX_DELTA_STDS))
        _check_preprocessor(model.data_preprocessor)
        self._resize = read_test_resize(getattr(model, "cfg", None))
        self.model = model
        extractor = roi_head.bbox_roi_extractor
        # the RoI extractor of the stage explained (cascade heads keep one per stage)
        self.roi_extractor = extractor[self._stage] if self._stage is not None else extractor
        strides = list(self.roi_extractor.featmap_strides)
        if self._box_kind == "grid":
            strides += list(roi_head.grid_roi_extractor.featmap_strides)
        # crops lie on the coarsest RoI feature grid (so that their features are the image's,
        # shifted) and are multiples of the padding divisor, which some necks need (FPG: 64)
        self._crop_grid = math.lcm(int(max(strides)), int(model.data_preprocessor.pad_size_divisor or 1))
        # mmcv's deformable convolutions refuse feature maps smaller than their kernel (3 x 3):
        # with them a crop spans at least 3 cells of the coarsest grid
        self._min_crop_cells = 3 if _has_deformable_conv(model) else 1
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
        if not pre._channel_conversion:
            # The detector was trained on BGR inputs as loaded by OpenCV and does not flip them.
            x = x.flip(1)
        if pre._enable_normalize:
            x = (x - pre.mean) / pre.std
        divisor = int(pre.pad_size_divisor or 1)
        pad_h = (-x.shape[-2]) % divisor
        pad_w = (-x.shape[-1]) % divisor
        if pad_h or pad_w:
            x = F.pad(x, (0, pad_w, 0, pad_h), value=float(pre.pad_value))
        return x, (sx, sy)

    def input_scale(self, height: int, width: int) -> tuple[float, float]:
        """The (x, y) factor by which the detector's test pipeline resizes an image of this size."""
        return self._resize.factors(height, width)

    def pixel_mean(self) -> Tensor:
        """The detector's pixel mean as RGB 0..255, Tensor[3, 1, 1] (the default mu)."""
        pre = self.model.data_preprocessor
        if not pre._enable_normalize:
            return torch.zeros(3, 1, 1, device=self.device)
        mean = pre.mean.detach().reshape(3, 1, 1).float()
        # With channel conversion the stored mean is in RGB; without it, in BGR.
        return mean if pre._channel_conversion else mean.flip(0)

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
        least = self._min_crop_cells * grid
        left = min(max(math.floor(x1 * sx / grid) * grid, 0), max(input_w - least, 0))
        top = min(max(math.floor(y1 * sy / grid) * grid, 0), max(input_h - least, 0))
        right = min(max(math.ceil(x2 * sx / grid) * grid, left + least), input_w)
        bottom = min(max(math.ceil(y2 * sy / grid) * grid, top + least), input_h)
        return Crop(left, top, right - left, bottom - top)

    def features(self, images: Tensor, crops: Sequence[Crop] | None = None) -> MMDetFeatures:
        """FPN features of ``images`` (Tensor[N, 3, H, W], RGB 0..255), each cropped to its
        entry of ``crops`` (from :meth:`crop`) when given, padded to the largest."""
        x, scale = self.preprocess(images.to(self.device))
        offsets = x.new_zeros((x.shape[0], 2))
        if crops is not None:
            grid, pad_value = self._crop_grid, float(self.model.data_preprocessor.pad_value)
            x = F.pad(x, (0, (-x.shape[-1]) % grid, 0, (-x.shape[-2]) % grid), value=pad_value)
            x = crop_windows(x, crops, pad_value)
            offsets = x.new_tensor([[c.left, c.top] for c in crops])
        maps = tuple(self.model.extract_feat(x))
        return MMDetFeatures(maps, scale, tuple(x.shape[-2:]), offsets, self._extra_features(maps))

    def _extra_features(self, maps: tuple[Tensor, ...]) -> dict[str, Tensor]:
        """What the RoI head's ``_bbox_forward`` takes besides the maps, as its own ``predict`` computes it."""
        roi_head = self.model.roi_head
        extra = {}
        if getattr(roi_head, "with_semantic", False):  # HTC, SCNet
            extra["semantic_feat"] = roi_head.semantic_head(maps)[1]
        if getattr(roi_head, "with_glbctx", False):  # SCNet
            extra["glbctx_feat"] = roi_head.glbctx_head(maps)[1]
        return extra

    def roi_outputs(self, features: MMDetFeatures, rois: Tensor) -> RoIOutputs:
        """Class probabilities and class-specific deltas for ``rois`` (Tensor[R, 5], image pixels).

        For heads that give boxes (SABL, Grid R-CNN), the deltas are their boxes encoded
        relative to the RoI, which :meth:`decode` inverts.
        """
        sx, sy = features.scale
        scaled = rois * rois.new_tensor([1.0, sx, sy, sx, sy])
        shift = features.offsets[rois[:, 0].long()].repeat(1, 2)  # crops move the input's origin
        scaled = torch.cat([scaled[:, :1], scaled[:, 1:] - shift], dim=1)
        roi_head = self.model.roi_head
        with self._roi_ops(scaled.device):
            if self._stage is None:
                out = roi_head._bbox_forward(features.maps, scaled, **features.extra)
            else:
                out = roi_head._bbox_forward(self._stage, features.maps, scaled, **features.extra)
        if self._bbox_head.custom_cls_channels:  # e.g. Seesaw loss: its own activation, as the head's predict
            probs = self._bbox_head.loss_cls.get_activation(out["cls_score"])
        else:
            probs = F.softmax(out["cls_score"], dim=-1)  # [R, C + 1]
        if self._box_kind == "deltas":
            deltas = out["bbox_pred"]
        else:
            boxes = self._head_boxes(features, scaled, out["bbox_pred"])
            # boxes of random heads can be empty; their log-size deltas need a positive size
            boxes = torch.cat([boxes[:, :2], torch.maximum(boxes[:, 2:], boxes[:, :2] + 1e-2)], dim=1)
            deltas = self._box_coder.encode(scaled[:, 1:], boxes)  # [R, 4], class-agnostic
        if self._box_kind != "deltas" or self._bbox_head.reg_class_agnostic:
            deltas = deltas.reshape(-1, 1, 4).expand(-1, self.num_classes, 4)
        else:
            deltas = deltas.reshape(-1, self.num_classes, 4)
        return RoIOutputs(probs=probs, deltas=deltas)

    def _head_boxes(self, features: MMDetFeatures, rois: Tensor, bbox_pred) -> Tensor:
        """Tensor[R, 4]: the boxes SABL's or Grid R-CNN's head gives for ``rois`` (Tensor[R, 5],
        input pixels), unclipped (:meth:`decode` clips to the image), as their own ``predict``."""
        if self._box_kind == "sabl":
            return self._bbox_head.bbox_coder.decode(rois[:, 1:], bbox_pred, max_shape=None)[0]
        roi_head = self.model.roi_head
        extractor = roi_head.grid_roi_extractor
        grid_feats = extractor(features.maps[:len(extractor.featmap_strides)], rois)
        if roi_head.with_shared_head:
            grid_feats = roi_head.shared_head(grid_feats)
        fused = roi_head.grid_head(grid_feats)["fused"]
        # its clipping to img_shape is left to decode(), which knows the image
        return roi_head.grid_head._predict_by_feat_single(
            fused, rois[:, 1:], img_meta={"img_shape": (math.inf, math.inf)}, rescale=False)

    def decode(self, proposals: Tensor, deltas: Tensor, height: int, width: int) -> Tensor:
        """Boxes regressed from ``proposals`` (Tensor[R, 4]) by ``deltas`` (Tensor[R, 4]), image pixels."""
        return self._box_coder.decode(proposals, deltas, max_shape=(height, width))

    def gradcam_layer(self, box: Tensor, height: int, width: int) -> torch.nn.Module:
        """The neck output that the RoI extractor pools ``box`` (Tensor[4], image pixels, an image of
        this size) from: Grad-CAM's layer. Needs an FPN-like neck (``neck.fpn_convs``)."""
        convs = getattr(getattr(self.model, "neck", None), "fpn_convs", None)
        if convs is None:
            raise UnsupportedDetectorError(
                "Grad-CAM needs a neck with one output layer per level (neck.fpn_convs); "
                f"{type(self.model).__name__} has {type(getattr(self.model, 'neck', None)).__name__}")
        sx, sy = self.input_scale(height, width)
        roi = to_rois([(box * box.new_tensor([sx, sy, sx, sy]))[None]])
        extractor = self.roi_extractor
        return convs[int(extractor.map_roi_levels(roi, extractor.num_inputs)[0])]

    def frozen(self) -> AbstractContextManager[None]:
        """Eval mode, no weight gradients; both restored on exit."""
        return frozen_model(self.model)

    def _roi_ops(self, device: torch.device) -> AbstractContextManager[None]:
        """Where mmcv lacks its CUDA ops and the features are on CUDA: the RoI extractor's
        ``RoIAlign`` layers through torchvision while the context lasts; else nothing changes."""
        if device.type != "cuda" or mmcv_has_cuda_ops():
            return nullcontext()
        return torchvision_roi_align(self.model)

    @torch.no_grad()
    def box_masks(self, image: Tensor, boxes: Tensor, classes: Tensor) -> Tensor:
        """The mask head's foreground probability for given boxes and classes (Mask R-CNN and kin).

        Args:
            image (Tensor[3, H, W]): RGB 0..255.
            boxes (Tensor[K, 4]): x1, y1, x2, y2 in image pixels.
            classes (Tensor[K]): each box's class index.

        Returns:
            Tensor[K, H, W]: probabilities in [0, 1], pasted into each box as the head's own
            ``predict`` pastes them (0 outside the box).
        """
        from mmdet.models.roi_heads.mask_heads.fcn_mask_head import _do_paste_mask

        roi_head = self.model.roi_head
        if not getattr(roi_head, "with_mask", False) or self._stage is not None:
            raise UnsupportedDetectorError(
                f"masks for given boxes need a single-stage RoI head with a mask head (Mask R-CNN), got "
                f"{type(roi_head).__name__}{'' if getattr(roi_head, 'with_mask', False) else ' without one'}")
        height, width = image.shape[-2:]
        if len(boxes) == 0:
            return image.new_zeros((0, height, width), dtype=torch.float32)
        boxes = boxes.float().to(self.device)
        with self.frozen():
            features = self.features(image[None].float())
            sx, sy = features.scale
            rois = to_rois([boxes * boxes.new_tensor([sx, sy, sx, sy])])
            with self._roi_ops(rois.device):
                logits = roi_head._mask_forward(features.maps, rois)["mask_preds"]  # [K, C or 1, m, m]
        # a class-agnostic head has one channel
        index = classes.long().to(logits.device) if logits.shape[1] > 1 else logits.new_zeros(len(boxes), dtype=torch.long)
        chosen = logits[torch.arange(len(boxes), device=logits.device), index]
        probs, _ = _do_paste_mask(chosen.sigmoid()[:, None], boxes, height, width, skip_empty=False)
        return probs.cpu()

    # ----------------------------------------------------------------- full detector
    @torch.no_grad()
    def detect(self, image: Tensor, score_thr: float = 0.5) -> Detections:
        """The detector's detections (RPN + RoI head, its own test pipeline) on ``image`` (Tensor[3, H, W] RGB)."""
        from mmdet.apis import inference_detector

        if self.device.type == "cuda" and not mmcv_has_cuda_ops():
            raise UnsupportedDetectorError(
                "the detector's own detections (no boxes given) run mmcv's NMS, which this mmcv was built without "
                f"CUDA ops for: give the boxes, or run on the CPU, or {_MMCV_CUDA_HINT}")
        bgr = np.ascontiguousarray(image.detach().cpu().permute(1, 2, 0).numpy()[..., ::-1]).astype(np.uint8)
        with self.frozen():
            result = inference_detector(self.model, bgr)
        inst = result.pred_instances
        keep = inst.scores >= score_thr
        return Detections(boxes=inst.bboxes[keep].cpu(), scores=inst.scores[keep].cpu(),
                          labels=inst.labels[keep].cpu())


_MMCV_CUDA_HINT = ("install an mmcv built with its CUDA ops for this torch and CUDA (`mim install mmcv==2.1.0` "
                   "where a wheel exists, else `FORCE_CUDA=1 pip install mmcv==2.1.0 --no-binary mmcv`)")


@lru_cache(maxsize=None)
def mmcv_has_cuda_ops() -> bool:
    """Whether the installed mmcv's compiled ops include CUDA kernels."""
    from mmcv.ops import get_compiling_cuda_version

    return get_compiling_cuda_version() not in ("not available", "")


@contextmanager
def torchvision_roi_align(model: torch.nn.Module) -> Iterator[None]:
    """mmcv's ``RoIAlign`` layers of ``model`` through torchvision's ``roi_align`` (mmcv's
    ``use_torchvision``), their setting restored on exit.

    Raises:
        UnsupportedDetectorError: the model holds other mmcv ops, or a max-pooling RoIAlign,
            which torchvision does not offer.
    """
    from mmcv.ops import RoIAlign

    others = sorted({type(m).__name__ for m in model.modules()
                     if type(m).__module__.startswith("mmcv.ops") and not isinstance(m, RoIAlign)})
    layers = [m for m in model.modules() if isinstance(m, RoIAlign)]
    if others or any(m.pool_mode != "avg" for m in layers):
        what = ", ".join(others) if others else "RoIAlign with pool_mode='max'"
        raise UnsupportedDetectorError(f"this detector runs mmcv ops ({what}) that this mmcv was built without CUDA "
                                       f"kernels for and torchvision does not offer: run on the CPU, or "
                                       f"{_MMCV_CUDA_HINT}")
    before = [m.use_torchvision for m in layers]
    for m in layers:
        m.use_torchvision = True
    try:
        yield
    finally:
        for m, flag in zip(layers, before):
            m.use_torchvision = flag
