"""BBAM's settings as one typed object, checked once where it is made."""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, fields, replace
from enum import Enum
from numbers import Integral, Real
from typing import Any

from ..errors import SettingsError

__all__ = ["FROM_SETTINGS", "BBAMSettings", "FromSettings"]


MAX_L1_COEF = 1e6
MAX_WINDOW_PADDING = 100.0  # a window padded to 101 times its pixels: past any use


class FromSettings(Enum):
    """The default of :meth:`bbam_captum.BBAM.attribute`'s setting keywords: the value of the field of the
    same name in its ``settings``. (None cannot say so: it is a value of ``context``,
    ``early_stop_patience`` and ``max_memory_mb``.)"""

    FROM_SETTINGS = "from settings"

    def __repr__(self) -> str:
        return "FROM_SETTINGS"


FROM_SETTINGS = FromSettings.FROM_SETTINGS


@dataclass(frozen=True)
class BBAMSettings:
    """Every setting of :meth:`bbam_captum.BBAM.attribute` but the image, its boxes, their
    targets, the baselines and what is returned; its defaults are BBAM's.

    ``BBAM.attribute(..., settings=settings)`` runs with them (its keywords of the same names
    override single fields); the pipeline (:func:`bbam_captum.pipeline.generate_labels`,
    :func:`bbam_captum.pipeline.compute_maps`), the command line and the benchmarks pass one
    around. A bad value is refused at construction with a
    :class:`~bbam_captum.errors.SettingsError` (a ``ValueError``) that names the field, what it
    must be and what came; sequences are stored as tuples.

    Attributes:
        box_head (bool): use the box-regression term (1_box). Default: True
        cls_head (bool): use the classification term (1_cls). Default: True
        l1_coef (float): lambda, the weight of ``|M|_1`` (summed over mask cells).
            Default: 0.007
        tv_coef (float): weight of the total variation of M (0 disables). Default: 1e-4
        tv_power (float): exponent of the total variation. Default: 3
        stride (int or "adaptive"): image pixels per mask cell; "adaptive" grows it with the
            box (``s = short_side * (lo + (hi - lo) sqrt(box area / image area))`` with
            ``(lo, hi) = stride_range``). Default: "adaptive"
        stride_range (tuple of 2 floats): the adaptive stride's ends as fractions of the
            shorter image side, for a vanishing box and for a box filling the image.
            Default: (0.03, 0.12), 1.5 times the original's rule (its 16..64 px at 800 px
            are (0.02, 0.08)): cells that wide mark an object's body where only its outline
            tells it from the background, chosen across worlds by leave-one-world-out
            (``benchmarks/results/worlds.md``)
        steps (int): Adam steps. Default: 40 (the original ran 300 at lr 0.02; fewer,
            larger steps reach masks as good in the speed benchmark)
        lr (float): Adam learning rate. Default: 0.1
        num_proposals (int): jittered proposals drawn per box. Default: 200
        max_shift (float): largest jitter per coordinate, as a fraction of the box side.
            Default: 0.3
        iou_thresholds (sequence of float): IoU thresholds tried in order for O+; the first
            that admits a proposal is used. Default: (0.9, 0.85, 0.8)
        max_positives (int): most proposals kept in O+ (the original kept up to 100; the RoI
            head's cost grows with them). Default: 20
        early_stop_patience (int or None): stop a box once its loss has not improved by
            ``early_stop_tol`` (relative) for this many steps. None runs all steps.
            Default: None
        early_stop_tol (float): see above. Default: 1e-3
        context (float or None): the detector sees, for each box, only a window around it:
            the union of its positive proposals and their regressed boxes, grown on each side
            by ``context`` times the box's side (aligned to the detector's coarsest RoI
            feature grid); the rest of the image counts as masked out (mu), so only the L1
            term reaches its mask cells, which stay at 0. Small boxes then cost a fraction of
            a full-image forward. None: the whole image, as the original. Default: 0.25
        seed (int): seed of the proposal jitter and subsampling. Default: 0
        max_memory_mb (float, "auto" or None): memory budget of one step, in MiB: the boxes
            are split into chunks whose estimated step memory (what the forward keeps for the
            backward pass, not the detector's weights) stays under it, and the chunks are
            optimised one after another; a box over the budget alone makes a chunk of its
            own. The estimate per box is linear in the pixels of its context window (of the
            whole input with ``context=None``), fitted on three forwards of small windows,
            plus two RGB images of the input's size that a step holds for a moment. Chunks
            give the maps of one batch to float rounding. "auto": half the free memory of the
            CUDA device, or on CPU half the memory the system reports available. None: one
            batch, no estimate. Default: "auto"
        window_padding (float): boxes whose context windows differ in size share one batched
            forward when padding each (at its bottom and right, with the detector's pad value,
            as the detector pads a batch of images) to the batch's largest window adds at most
            this share of its pixels. 0: only windows of one size share a forward, the least
            work, best where compute is the limit (a CPU). On a GPU a small window costs about
            what a larger one does, so fewer, fuller forwards per step pay: e.g. 1.0 (up to
            twice a window's pixels). Padding changes the features near a window's padded
            edges a little, so the maps differ slightly from those of 0. Default: 0.0

    The pipeline records every field's value (``dataclasses.asdict``), defaults included, in
    ``run.json`` and hashes it into every maps file's key, so that a changed default recomputes
    the maps.

    Example::

        settings = BBAMSettings(steps=20, context=None)
        maps = BBAM(model).attribute(image, boxes, settings=settings)
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
    window_padding: float = 0.0

    def __post_init__(self) -> None:
        for name in ("box_head", "cls_head"):
            if not isinstance(getattr(self, name), bool):
                raise SettingsError(f"{name} must be True or False, got {getattr(self, name)!r}")
        if not (self.box_head or self.cls_head):
            raise SettingsError("box_head and cls_head: at least one must be True, got both False")
        # far above any useful weight, and below where the float32 loss overflows into NaN maps
        _number("l1_coef", self.l1_coef, low=0.0, high=MAX_L1_COEF)
        _number("tv_coef", self.tv_coef, low=0.0)
        _number("tv_power", self.tv_power, low=0.0, low_open=True)
        if self.stride != "adaptive":
            _integer("stride", self.stride, low=1, also="or 'adaptive'")
        object.__setattr__(self, "stride_range", _sequence("stride_range", self.stride_range, length=2))
        lo, hi = self.stride_range
        if not all(_is_real(v) and math.isfinite(v) for v in (lo, hi)) or not 0 <= lo <= hi or not hi > 0:
            raise SettingsError(f"stride_range must be two finite numbers (lo, hi) with 0 <= lo <= hi and hi > 0 "
                                f"(fractions of the shorter image side), got {self.stride_range!r}")
        _integer("steps", self.steps, low=1)
        _number("lr", self.lr, low=0.0, low_open=True)
        _integer("num_proposals", self.num_proposals, low=1)
        _number("max_shift", self.max_shift, low=0.0)
        object.__setattr__(self, "iou_thresholds", _sequence("iou_thresholds", self.iou_thresholds))
        if not self.iou_thresholds or not all(_is_real(t) and 0.0 < t <= 1.0 for t in self.iou_thresholds):
            raise SettingsError(f"iou_thresholds must be a non-empty sequence of values in (0, 1], "
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
        _number("window_padding", self.window_padding, low=0.0, high=MAX_WINDOW_PADDING)

    def override(self, **values: Any) -> BBAMSettings:
        """These settings with the fields given changed (checked as at construction); a field given
        as :data:`FROM_SETTINGS` keeps its value here.

        Raises:
            TypeError: a name that is no field.
        """
        changes = {name: value for name, value in values.items() if value is not FROM_SETTINGS}
        unknown = sorted(changes.keys() - {f.name for f in fields(self)})
        if unknown:
            raise TypeError(f"unknown BBAM settings {unknown}; expected fields of BBAMSettings: "
                            f"{[f.name for f in fields(self)]}")
        return replace(self, **changes) if changes else self


def _is_real(value: Any) -> bool:
    return isinstance(value, Real) and not isinstance(value, bool)


def _number(name: str, value: Any, low: float, low_open: bool = False, also: str = "",
            high: float = math.inf) -> None:
    """``value`` is a finite number >= ``low`` (> with ``low_open``) and <= ``high``."""
    if _is_real(value) and math.isfinite(value) and value > high:
        raise SettingsError(f"{name} must be at most {high:g}, got {value!r}")
    if not (_is_real(value) and math.isfinite(value) and (value > low if low_open else value >= low)):
        expected = f"a finite number {'>' if low_open else '>='} {low:g}" + (f" {also}" if also else "")
        raise SettingsError(f"{name} must be {expected}, got {value!r}")


def _integer(name: str, value: Any, low: int | None = None, also: str = "") -> None:
    """``value`` is an int (not a bool), at least ``low``."""
    if not (isinstance(value, Integral) and not isinstance(value, bool)):
        raise SettingsError(f"{name} must be an int{f' {also}' if also else ''}, got {value!r}")
    if low is not None and value < low:
        raise SettingsError(f"{name} must be at least {low}{f' {also}' if also else ''}, got {value!r}")


def _sequence(name: str, value: Any, length: int | None = None) -> tuple:
    """``value`` as a tuple: a sequence (not a string) of ``length`` items."""
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence) or (length and len(value) != length):
        what = f"a sequence of {length} numbers" if length else "a sequence of numbers"
        raise SettingsError(f"{name} must be {what}, got {value!r}")
    return tuple(value)
