"""BBAM's settings as one typed object, checked once where it is made."""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, fields
from numbers import Integral, Real
from typing import Any

__all__ = ["BBAMSettings"]


MAX_L1_COEF = 1e6


@dataclass(frozen=True)
class BBAMSettings:
    """Every setting of :meth:`bbam_captum.BBAM.attribute` but the image, its boxes, their
    targets, the baseline and what is returned; the fields, their meaning and their defaults
    are those of its keyword arguments.

    ``BBAM.attribute`` builds one from its keywords and hands it to the proposal selection
    and the optimiser; the pipeline (:func:`bbam_captum.pipeline.generate_labels`,
    :func:`bbam_captum.pipeline.compute_maps`), the command line and the benchmarks share
    it. A bad value is refused at construction with a ``ValueError`` that names the field,
    what it must be and what came; sequences are stored as tuples.

    The fields given to the constructor by name or position are kept apart
    (:meth:`explicit`): they are what the pipeline records in ``run.json`` and hashes into
    every maps file's key, as it did with the keywords before this class existed, so that
    those keys stay valid.

    Example::

        settings = BBAMSettings(steps=20, context=None)
        maps = BBAM(model).attribute(image, boxes, **settings.to_kwargs())
    """

    box_head: bool = True
    cls_head: bool = True
    l1_coef: float = 0.007
    tv_coef: float = 1e-4
    tv_power: float = 3.0
    stride: int | str = "adaptive"
    stride_range: tuple[float, float] = (0.03, 0.12)
    steps: int = 40
    lr: float = 0.1
    num_proposals: int = 200
    max_shift: float = 0.3
    iou_thresholds: tuple[float, ...] = (0.9, 0.85, 0.8)
    max_positives: int = 20
    early_stop_patience: int | None = None
    early_stop_tol: float = 1e-3
    context: float | None = 0.25
    seed: int = 0
    max_memory_mb: float | str | None = "auto"

    def __new__(cls, *args: Any, **kwargs: Any) -> BBAMSettings:
        # the dataclass's __init__ cannot tell a default from a value given equal to it
        self = super().__new__(cls)
        names = [f.name for f in fields(cls)]
        object.__setattr__(self, "_explicit", tuple(names[:len(args)]) + tuple(kwargs))
        return self

    def __post_init__(self) -> None:
        for name in ("box_head", "cls_head"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"{name} must be True or False, got {getattr(self, name)!r}")
        if not (self.box_head or self.cls_head):
            raise ValueError("box_head and cls_head: at least one must be True, got both False")
        # far above any useful weight, and below where the float32 loss overflows into NaN maps
        _number("l1_coef", self.l1_coef, low=0.0, high=MAX_L1_COEF)
        _number("tv_coef", self.tv_coef, low=0.0)
        _number("tv_power", self.tv_power, low=0.0, low_open=True)
        if self.stride != "adaptive":
            _integer("stride", self.stride, low=1, also="or 'adaptive'")
        object.__setattr__(self, "stride_range", _sequence("stride_range", self.stride_range, length=2))
        lo, hi = self.stride_range
        if not all(_is_real(v) and math.isfinite(v) for v in (lo, hi)) or not 0 <= lo <= hi or not hi > 0:
            raise ValueError(f"stride_range must be two finite numbers (lo, hi) with 0 <= lo <= hi and hi > 0 "
                             f"(fractions of the shorter image side), got {self.stride_range!r}")
        _integer("steps", self.steps, low=1)
        _number("lr", self.lr, low=0.0, low_open=True)
        _integer("num_proposals", self.num_proposals, low=1)
        _number("max_shift", self.max_shift, low=0.0)
        object.__setattr__(self, "iou_thresholds", _sequence("iou_thresholds", self.iou_thresholds))
        if not self.iou_thresholds or not all(_is_real(t) and 0.0 < t <= 1.0 for t in self.iou_thresholds):
            raise ValueError(f"iou_thresholds must be a non-empty sequence of values in (0, 1], "
                             f"got {self.iou_thresholds!r}")
        _integer("max_positives", self.max_positives, low=1)
        if self.early_stop_patience is not None:
            _integer("early_stop_patience", self.early_stop_patience, low=1, also="or None")
        _number("early_stop_tol", self.early_stop_tol, low=0.0)
        if self.context is not None:
            _number("context", self.context, low=0.0, also="or None")
        _integer("seed", self.seed)
        if self.max_memory_mb not in ("auto", None):
            _number("max_memory_mb", self.max_memory_mb, low=0.0, low_open=True, also="(MiB), 'auto' or None")

    def explicit(self) -> dict[str, Any]:
        """The fields given to the constructor, by name (sequences as tuples)."""
        return {name: getattr(self, name) for name in self._explicit}

    def to_kwargs(self) -> dict[str, Any]:
        """Every field by name: keywords for :meth:`bbam_captum.BBAM.attribute`."""
        return {f.name: getattr(self, f.name) for f in fields(self)}


def _is_real(value: Any) -> bool:
    return isinstance(value, Real) and not isinstance(value, bool)


def _number(name: str, value: Any, low: float, low_open: bool = False, also: str = "",
            high: float = math.inf) -> None:
    """``value`` is a finite number >= ``low`` (> with ``low_open``) and <= ``high``."""
    if _is_real(value) and math.isfinite(value) and value > high:
        raise ValueError(f"{name} must be at most {high:g}, got {value!r}")
    if not (_is_real(value) and math.isfinite(value) and (value > low if low_open else value >= low)):
        expected = f"a finite number {'>' if low_open else '>='} {low:g}" + (f" {also}" if also else "")
        raise ValueError(f"{name} must be {expected}, got {value!r}")


def _integer(name: str, value: Any, low: int | None = None, also: str = "") -> None:
    """``value`` is an int (not a bool), at least ``low``."""
    if not (isinstance(value, Integral) and not isinstance(value, bool)):
        raise ValueError(f"{name} must be an int{f' {also}' if also else ''}, got {value!r}")
    if low is not None and value < low:
        raise ValueError(f"{name} must be at least {low}{f' {also}' if also else ''}, got {value!r}")


def _sequence(name: str, value: Any, length: int | None = None) -> tuple:
    """``value`` as a tuple: a sequence (not a string) of ``length`` items."""
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence) or (length and len(value) != length):
        what = f"a sequence of {length} numbers" if length else "a sequence of numbers"
        raise ValueError(f"{name} must be {what}, got {value!r}")
    return tuple(value)
