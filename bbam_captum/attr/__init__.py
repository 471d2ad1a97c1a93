"""Attribution methods: BBAM, and Grad-CAM for boxes as its baseline."""
from .bbam import BBAM, BoxRecord
from .gradcam import BoxGradCAM

__all__ = ["BBAM", "BoxGradCAM", "BoxRecord"]
