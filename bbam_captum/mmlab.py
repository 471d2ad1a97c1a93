"""The module OpenMMLab configs import: ``custom_imports = dict(imports=['bbam_captum.mmlab'])``.

Importing it prepares the process for an OpenMMLab run (``mim train``, ``Runner``): torch's
weights-only loading is allowed the few globals that mmengine's own checkpoints name
(:mod:`bbam_captum.utils.checkpoint_safety`), so ``load_from``, ``resume`` and
``init_detector`` read them with the check still on. bbam-captum adds no models, datasets,
transforms or hooks to OpenMMLab's registries: the configs it ships and writes name only
MMDetection's and MMSegmentation's own components. A component added later is registered
here, in the registry of the scope whose configs name it (``mmdet.registry`` or
``mmseg.registry``).

``import bbam_captum`` alone changes nothing global; only this module does, on purpose.
"""
from __future__ import annotations

from .utils.checkpoint_safety import install_checkpoint_allowlist

install_checkpoint_allowlist()

__all__: list[str] = []
