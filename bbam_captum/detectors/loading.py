"""Loading MMDetection detectors, the bundled one by default."""
from __future__ import annotations

from pathlib import Path

import torch

_ASSET_DIR = Path(__file__).resolve().parent.parent / "assets" / "detector"


def bundled_detector_files() -> tuple[Path, Path]:
    """The config and checkpoint of the detector shipped with the package."""
    return _ASSET_DIR / "config.py", _ASSET_DIR / "checkpoint.pth"


def load_detector(config: str | Path | None = None, checkpoint: str | Path | None = None,
                  device: str | torch.device = "cpu") -> torch.nn.Module:
    """An MMDetection detector ready for BBAM: built, weights loaded, in eval mode.

    Args:
        config (str or Path, optional): an MMDetection config file. Default: the bundled
            detector's config.
        checkpoint (str or Path, optional): its weights. Default: the bundled checkpoint
            when ``config`` is also left out, otherwise none (random weights).
        device (str or torch.device, optional): where the model lives. Default: ``"cpu"``.

    Returns:
        mmdet.models.TwoStageDetector (or whatever the config builds), with ``cfg`` and
        ``dataset_meta`` set.

    Checkpoints that mmengine's runner wrote (with their ``message_hub``) load under torch's
    weights-only loading: the globals they name are allowed for this call only.
    """
    from mmdet.apis import init_detector
    from mmdet.utils import register_all_modules

    from ..utils.checkpoint_safety import mmengine_checkpoint_globals

    if config is None:
        config, default_checkpoint = bundled_detector_files()
        checkpoint = default_checkpoint if checkpoint is None else checkpoint
    for label, path in (("config", config), ("checkpoint", checkpoint)):
        if path is not None and not Path(path).is_file():
            raise FileNotFoundError(f"detector {label} not found: {path}")
    register_all_modules(init_default_scope=True)
    # weights-only loading with the few extra globals of mmengine's checkpoints, for this call only
    with mmengine_checkpoint_globals():
        model = init_detector(str(config), None if checkpoint is None else str(checkpoint), device=str(device))
    return model.eval()
