"""Attribution methods: BBAM, and Grad-CAM for boxes as its baseline."""
from .bbam import BBAM, BoxRecord
from .gradcam import BoxGradCAM
from .settings import BBAMSettings

__all__ = ["BBAM", "BBAMSettings", "BoxGradCAM", "BoxRecord"]
