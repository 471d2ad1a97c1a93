"""bbam-captum: BBAM as a Captum attribution method for MMDetection two-stage detectors.

Importing the package also lets torch's weights-only loading read mmengine's own
checkpoints (see :mod:`bbam_captum.utils.checkpoint_safety`).
"""
from .utils.checkpoint_safety import install_checkpoint_allowlist

install_checkpoint_allowlist()

from .attr import BBAM, BoxRecord  # noqa: E402
from .detectors import MMDetTwoStageAdapter, load_detector  # noqa: E402

__version__ = "0.1.0"
__all__ = ["BBAM", "BoxRecord", "MMDetTwoStageAdapter", "install_checkpoint_allowlist", "load_detector"]
