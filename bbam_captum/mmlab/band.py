"""Instance training that ignores each pseudo mask's uncertain band, as the original BBAM did.

``generate`` writes, beside each instance's ``segmentation``, its ``ignore_segmentation``: the
pixels between the instance mask and the wider mask, where the label chain is unsure. Three
MMDetection components carry that band from the COCO file to the mask loss:

- :class:`CocoBandDataset` passes ``ignore_segmentation`` on with each instance;
- :class:`LoadBandAnnotations` decodes it beside the mask into :class:`BandedBitmapMasks`, masks
  that move their band with them through every geometric transform (flip, resize, crop, ...), so
  any train pipeline keeps the two aligned;
- :class:`BandMaskHead` gives band pixels no weight in the mask loss, and optionally grows
  foreground seeds into the band where its own prediction is confident (the original's 0.9).

Masks without a band (plain ``BitmapMasks``, or instances without ``ignore_segmentation``) train
exactly as MMDetection's ``FCNMaskHead`` trains them.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from mmdet.datasets import CocoDataset
from mmdet.datasets.transforms import LoadAnnotations
from mmdet.models.roi_heads.mask_heads import FCNMaskHead
from mmdet.registry import DATASETS, MODELS, TRANSFORMS
from mmdet.structures.mask import BitmapMasks, mask_target

BAND_KEY = "ignore_segmentation"  # the COCO field the band is written to
# Geometric methods of BitmapMasks that return new masks of the same instances: the band
# takes the same step as the masks.
_SHARED_STEPS = ("rescale", "resize", "flip", "pad", "crop", "expand", "translate", "shear", "rotate")


class BandedBitmapMasks(BitmapMasks):
    """Bitmap masks (N, H, W) with an ignore band (N, H, W) per instance that follows them.

    Args:
        masks (np.ndarray[N, H, W]): the instance masks.
        band (np.ndarray[N, H, W]): pixels of each instance that training must not count.
        height, width (int): the masks' size.
    """

    def __init__(self, masks, band, height: int, width: int):
        super().__init__(masks, height, width)
        self.band = BitmapMasks(band, height, width).masks
        if self.band.shape != self.masks.shape:
            raise ValueError(f"band of shape {self.band.shape} for masks of shape {self.masks.shape}")

    def band_masks(self) -> BitmapMasks:
        """The bands as plain bitmap masks (the same instances, in the same order)."""
        return BitmapMasks(self.band, self.height, self.width)

    def __getitem__(self, index):
        kept = BitmapMasks(self.masks, self.height, self.width)[index]
        return BandedBitmapMasks(kept.masks, self.band_masks()[index].masks, self.height, self.width)

    @classmethod
    def cat(cls, masks):
        if not masks:
            raise ValueError("masks should not be an empty list")
        plain = BitmapMasks.cat([BitmapMasks(m.masks, m.height, m.width) for m in masks])
        bands = BitmapMasks.cat([band_masks(m) for m in masks])
        return cls(plain.masks, bands.masks, plain.height, plain.width)


def _shared_step(name: str):
    def step(self: BandedBitmapMasks, *args, **kwargs) -> BandedBitmapMasks:
        moved = getattr(BitmapMasks(self.masks, self.height, self.width), name)(*args, **kwargs)
        band = getattr(self.band_masks(), name)(*args, **kwargs)
        return BandedBitmapMasks(moved.masks, band.masks, moved.height, moved.width)

    step.__name__ = name
    step.__doc__ = f"``BitmapMasks.{name}`` applied to the masks and to their band alike."
    return step


for _name in _SHARED_STEPS:
    setattr(BandedBitmapMasks, _name, _shared_step(_name))


def band_masks(masks) -> BitmapMasks:
    """The ignore bands of ``masks``: their own for :class:`BandedBitmapMasks`, else none (zeros)."""
    if isinstance(masks, BandedBitmapMasks):
        return masks.band_masks()
    return BitmapMasks(np.zeros((len(masks), masks.height, masks.width), np.uint8), masks.height, masks.width)


@DATASETS.register_module()
class CocoBandDataset(CocoDataset):
    """MMDetection's ``CocoDataset`` that keeps each instance's ``ignore_segmentation``."""

    def parse_data_info(self, raw_data_info: dict) -> dict:
        info = super().parse_data_info(raw_data_info)
        # CocoDataset skips some annotations (empty, outside the image, other classes); an
        # instance's mask is its annotation's own segmentation object, which identifies it.
        band_of = {id(ann["segmentation"]): ann.get(BAND_KEY) for ann in raw_data_info["raw_ann_info"]
                   if ann.get("segmentation")}
        for instance in info["instances"]:
            if "mask" in instance and band_of.get(id(instance["mask"])):
                instance["ignore_mask"] = band_of[id(instance["mask"])]
        return info


@TRANSFORMS.register_module()
class LoadBandAnnotations(LoadAnnotations):
    """``LoadAnnotations`` whose masks carry their ignore bands (:class:`BandedBitmapMasks`).

    Needs ``poly2mask=True`` (the default). An instance without ``ignore_mask`` has an empty band.
    """

    def _load_masks(self, results: dict) -> None:
        super()._load_masks(results)
        masks = results["gt_masks"]
        if not isinstance(masks, BitmapMasks):
            raise ValueError("LoadBandAnnotations needs poly2mask=True: bands are bitmaps")
        h, w = masks.height, masks.width
        band = np.zeros((len(masks), h, w), np.uint8)
        for k, instance in enumerate(results.get("instances", [])):
            if instance.get("ignore_mask"):
                band[k] = self._poly2mask(instance["ignore_mask"], h, w)
        results["gt_masks"] = BandedBitmapMasks(masks.masks, band & (1 - masks.masks), h, w)


def band_mask_loss(logits: torch.Tensor, targets: torch.Tensor, bands: torch.Tensor,
                   seed_threshold: float | None = None) -> torch.Tensor:
    """Binary cross-entropy of mask logits over the pixels outside the band, averaged over them.

    Args:
        logits (Tensor[P, h, w]): mask logits of each positive RoI for its class.
        targets (Tensor[P, h, w]): mask targets in [0, 1].
        bands (Tensor[P, h, w]): 1 where a pixel lies in the band (no weight), else 0.
        seed_threshold (float, optional): band pixels whose predicted probability reaches it are
            trained as foreground (seed growing). Default: None (the band is ignored throughout).

    Returns:
        Tensor[]: the loss. With no band it equals MMDetection's mask cross-entropy.
    """
    if logits.shape != targets.shape or targets.shape != bands.shape:
        raise ValueError(f"logits {tuple(logits.shape)}, targets {tuple(targets.shape)} and bands "
                         f"{tuple(bands.shape)} must have one shape")
    weights = 1.0 - bands
    if seed_threshold is not None:
        grown = (bands > 0) & (logits.detach().sigmoid() >= seed_threshold)
        targets = torch.where(grown, torch.ones_like(targets), targets)
        weights = torch.where(grown, torch.ones_like(weights), weights)
    losses = F.binary_cross_entropy_with_logits(logits, targets, reduction="none")
    return (losses * weights).sum() / weights.sum().clamp(min=1.0)


@MODELS.register_module()
class BandMaskHead(FCNMaskHead):
    """``FCNMaskHead`` whose loss gives no weight to the instances' ignore bands.

    Args:
        seed_threshold (float, optional): grow foreground seeds into the band where the head's
            own probability reaches this value (the original BBAM: 0.9). Default: None.
        *args, **kwargs: those of ``FCNMaskHead``; ``loss_mask`` keeps its ``loss_weight``.
    """

    def __init__(self, *args, seed_threshold: float | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        if seed_threshold is not None and not 0.0 < seed_threshold <= 1.0:
            raise ValueError(f"seed_threshold must lie in (0, 1] or be None, got {seed_threshold}")
        self.seed_threshold = seed_threshold

    def loss_and_target(self, mask_preds, sampling_results, batch_gt_instances, rcnn_train_cfg) -> dict:
        targets = self.get_targets(sampling_results, batch_gt_instances, rcnn_train_cfg)
        labels = torch.cat([res.pos_gt_labels for res in sampling_results])
        if mask_preds.size(0) == 0:
            return dict(loss_mask=dict(loss_mask=mask_preds.sum()), mask_targets=targets)
        bands = mask_target([res.pos_priors for res in sampling_results],
                            [res.pos_assigned_gt_inds for res in sampling_results],
                            [band_masks(gt.masks) for gt in batch_gt_instances], rcnn_train_cfg)
        if self.class_agnostic:
            labels = torch.zeros_like(labels)
        logits = mask_preds[torch.arange(len(labels), device=labels.device), labels]  # [P, h, w]
        loss = band_mask_loss(logits, targets, bands, self.seed_threshold) * self.loss_mask.loss_weight
        return dict(loss_mask=dict(loss_mask=loss), mask_targets=targets)
