"""Attribution methods: BBAM."""
from .bbam import BBAM, BoxRecord

__all__ = ["BBAM", "BoxRecord"]
