"""Loading detectors: MMDetection's by config (the bundled one by default) and torchvision's by
builder name and checkpoint."""
from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import InputError

if TYPE_CHECKING:  # imported where used, so that the command line reads TORCHVISION_DETECTORS without torch
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
    from mmengine.config import Config

    from ..utils.checkpoint_safety import mmengine_checkpoint_globals

    if config is None:
        config, default_checkpoint = bundled_detector_files()
        checkpoint = default_checkpoint if checkpoint is None else checkpoint
    for label, path in (("config", config), ("checkpoint", checkpoint)):
        if path is not None and not Path(path).is_file():
            raise FileNotFoundError(f"detector {label} not found: {path}")
    register_all_modules(init_default_scope=True)
    cfg = Config.fromfile(str(config))
    # init_detector reads the palette from the test set; a training-only config (the Mask R-CNN
    # config that generate writes) has none
    palette = "none" if cfg.get("test_dataloader") else "random"
    # weights-only loading with the few extra globals of mmengine's checkpoints, for this call only
    with mmengine_checkpoint_globals():
        model = init_detector(cfg, None if checkpoint is None else str(checkpoint), palette=palette,
                              device=str(device))
    return model.eval()


# torchvision's two-stage detector builders that TorchvisionRCNNAdapter takes
TORCHVISION_DETECTORS = ("fasterrcnn_resnet50_fpn", "fasterrcnn_resnet50_fpn_v2", "fasterrcnn_mobilenet_v3_large_fpn",
                         "fasterrcnn_mobilenet_v3_large_320_fpn", "maskrcnn_resnet50_fpn", "maskrcnn_resnet50_fpn_v2")
_CLS_SCORE = "roi_heads.box_predictor.cls_score.weight"


def load_torchvision_detector(name: str, checkpoint: str | Path, class_names: Sequence[str] | None = None,
                              device: str | torch.device = "cpu") -> torch.nn.Module:
    """A torchvision detector ready for BBAM: built by its builder, weights loaded, in eval mode,
    its class names set; as :func:`load_detector` gives an MMDetection one, the model itself,
    which ``BBAM(model)`` takes.

    Args:
        name: one of :data:`TORCHVISION_DETECTORS`, e.g. ``"fasterrcnn_resnet50_fpn"``.
        checkpoint (str or Path): its weights: a state dict, or a dict holding one under
            ``"model"`` (as torchvision's reference training scripts save them); the number
            of classes is read from the box predictor's weights. Loaded weights-only.
        class_names (sequence of str, optional): the object classes in the order of the
            model's labels 1..C. Default: COCO's names (torchvision's, with their ``"N/A"``
            gaps) for a 91-class checkpoint, otherwise ``"0"`` .. ``"C-1"`` (label - 1).
        device (str or torch.device, optional): where the model lives. Default: ``"cpu"``.

    Returns:
        torchvision.models.detection.FasterRCNN (or MaskRCNN), with its class names as
        ``model.dataset_meta["classes"]`` (MMDetection's place for them, where
        :class:`~bbam_captum.TorchvisionRCNNAdapter` reads them too).

    Raises:
        InputError: an unknown builder, a checkpoint that cannot be read, does not hold a
            state dict or does not fit the builder's model, or class names of the wrong count.
    """
    import torch
    from torchvision.models import detection, get_model_weights

    from .torchvision_rcnn import TorchvisionRCNNAdapter

    if name not in TORCHVISION_DETECTORS:
        raise InputError(f"unknown torchvision detector {name!r}; expected one of {', '.join(TORCHVISION_DETECTORS)}")
    try:
        # torchvision's reference scripts save their argparse arguments beside the weights
        with torch.serialization.safe_globals([argparse.Namespace]):
            state = torch.load(checkpoint, map_location="cpu", weights_only=True)
    except Exception as err:  # whatever makes the file unreadable, it is the user's to fix
        raise InputError(f"checkpoint {checkpoint}: not a readable torch file: {err}") from err
    if isinstance(state, dict) and isinstance(state.get("model"), dict):
        state = state["model"]
    if not isinstance(state, dict) or not isinstance(state.get(_CLS_SCORE), torch.Tensor):
        raise InputError(f"checkpoint {checkpoint}: expected the state dict of a torchvision {name} "
                         f"(with {_CLS_SCORE}), or a dict holding one under 'model'")
    num_classes = int(state[_CLS_SCORE].shape[0])
    if num_classes < 2:
        raise InputError(f"checkpoint {checkpoint}: its box predictor scores {num_classes} class (background "
                         "only); expected background and at least one object class")
    model = getattr(detection, name)(weights=None, weights_backbone=None, num_classes=num_classes)
    try:
        model.load_state_dict(state)
    except RuntimeError as err:  # missing, unexpected or differently shaped weights, one a line
        problems = str(err).splitlines()[1:]
        raise InputError(f"checkpoint {checkpoint} does not fit torchvision's {name} ({len(problems)} problems): "
                         + " ".join(line.strip()[:200] for line in problems[:3])) from err
    if class_names is None and num_classes == 91:
        class_names = get_model_weights(name).DEFAULT.meta["categories"]
    try:
        class_names = TorchvisionRCNNAdapter(model, class_names).class_names  # checked against the model
    except ValueError as err:
        raise InputError(f"class names for {checkpoint}: {err}") from err
    model.dataset_meta = {"classes": class_names}
    return model.to(device).eval()
