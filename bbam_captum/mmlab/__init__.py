"""The module OpenMMLab configs import: ``custom_imports = dict(imports=['bbam_captum.mmlab'])``.

Importing it prepares the process for an OpenMMLab run (``mim train``, ``Runner``):

- torch's weights-only loading is allowed the few globals that mmengine's own checkpoints name
  (:mod:`bbam_captum.utils.checkpoint_safety`), so ``load_from``, ``resume`` and
  ``init_detector`` read them with the check still on;
- MMDetection's registries get the components of instance training with an ignore band
  (:mod:`bbam_captum.mmlab.band`): ``CocoBandDataset``, ``LoadBandAnnotations`` and
  ``BandMaskHead``, which the ``coco/config.py`` that ``generate`` writes names.

``import bbam_captum`` alone changes nothing global; only this module does, on purpose.
"""
from __future__ import annotations

from ..utils.checkpoint_safety import install_checkpoint_allowlist
from .band import BandedBitmapMasks, BandMaskHead, CocoBandDataset, LoadBandAnnotations, band_mask_loss

install_checkpoint_allowlist()

__all__ = ["BandMaskHead", "BandedBitmapMasks", "CocoBandDataset", "LoadBandAnnotations", "band_mask_loss"]
