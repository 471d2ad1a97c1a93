"""Turning BBAM maps into pseudo labels."""
from .masks import instance_masks

__all__ = ["instance_masks"]
