"""Flags that point at likely bad pseudo masks without the true masks, and the review order."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import SettingsError

# Flag ids (the page shows their descriptions from FLAG_HELP).
FALLBACK, FEW, FULL, EMPTY, ODD, CLAIMED, COVERS = \
    "fallback", "few-positives", "fills-box", "nearly-empty", "odd-fill", "claimed", "covers-other"
FLAG_HELP = {
    FALLBACK: "no jittered proposal kept the detection: BBAM fell back to the box itself",
    FEW: "few jittered proposals kept the detection (small O+)",
    FULL: "the mask fills almost all of its box",
    EMPTY: "the mask fills almost none of its box",
    ODD: "the mask fills its box much more or less than the masks of its class do in this run",
    CLAIMED: "most of the mask is also claimed by another box's mask",
    COVERS: "the mask covers most of another box's mask (it may have taken that object)",
}


@dataclass(frozen=True)
class FlagSettings:
    """Thresholds of the flags.

    Attributes:
        full_fill: a mask covering more than this share of its box is flagged ``fills-box``.
        empty_fill: a mask covering less than this share of its box is flagged ``nearly-empty``.
        claimed: a mask with more than this share of its pixels inside other boxes' masks is
            flagged ``claimed``.
        covers: a mask covering more than this share of another box's mask is flagged
            ``covers-other`` (the other side of ``claimed``: one of the two masks is wrong).
        min_positives: a box with fewer positive proposals (and no fallback) is flagged
            ``few-positives``.
        odd_fill: a mask whose area / box area lies further than this from the median of its
            class in the run is flagged ``odd-fill`` (classes with at least ``min_class_boxes``).
        min_class_boxes: how many boxes a class needs for its median fill to count.
    """

    full_fill: float = 0.9
    empty_fill: float = 0.1
    claimed: float = 0.5
    covers: float = 0.5
    min_positives: int = 5
    odd_fill: float = 0.15
    min_class_boxes: int = 5

    def __post_init__(self) -> None:
        if not 0.0 <= self.empty_fill < self.full_fill <= 1.0:
            raise SettingsError(f"fill thresholds must satisfy 0 <= empty_fill < full_fill <= 1, got "
                                f"empty_fill={self.empty_fill}, full_fill={self.full_fill}")
        if not (0.0 <= self.claimed <= 1.0 and 0.0 <= self.covers <= 1.0):
            raise SettingsError(f"the claimed and covers shares must lie in [0, 1], got claimed={self.claimed}, "
                                f"covers={self.covers}")
        if not 0.0 < self.odd_fill <= 1.0:
            raise SettingsError(f"odd_fill must lie in (0, 1], got {self.odd_fill}")


def class_fills(rows: list[dict], settings: FlagSettings) -> dict[str, float]:
    """The median mask area / box area of each class with at least ``min_class_boxes`` boxes."""
    by_class: dict[str, list[float]] = {}
    for row in rows:
        by_class.setdefault(row["class"], []).append(row["fill"])
    return {c: float(np.median(f)) for c, f in by_class.items() if len(f) >= settings.min_class_boxes}


def _fill_gap(row: dict, class_fill: float | None) -> float:
    return 0.0 if class_fill is None else abs(row["fill"] - class_fill)


def box_flags(row: dict, settings: FlagSettings, class_fill: float | None = None) -> list[str]:
    """The flags of one box row (needs ``fallback``, ``positives``, ``fill``, ``claimed`` and ``covers``;
    ``class_fill``: the median fill of its class, see :func:`class_fills`)."""
    flags = []
    if row["fallback"]:
        flags.append(FALLBACK)
    elif row["positives"] is not None and row["positives"] < settings.min_positives:
        flags.append(FEW)
    if row["fill"] > settings.full_fill:
        flags.append(FULL)
    if row["fill"] < settings.empty_fill:
        flags.append(EMPTY)
    if _fill_gap(row, class_fill) > settings.odd_fill:
        flags.append(ODD)
    if row["claimed"] > settings.claimed:
        flags.append(CLAIMED)
    if row["covers"] > settings.covers:
        flags.append(COVERS)
    return flags


def suspicion(row: dict, settings: FlagSettings, class_fill: float | None = None) -> float:
    """How far a box is past its flags' thresholds, for the worst-first order (0 when unflagged).

    Each flag counts 1 plus how far past its threshold the box lies, as a share of the
    room beyond it, so more flags come first and, within as many flags, the clearer case.
    """
    score = 0.0
    if row["fallback"]:
        score += 1.0
    elif row["positives"] is not None and row["positives"] < settings.min_positives:
        score += 1.0 + (settings.min_positives - row["positives"]) / settings.min_positives
    if (gap := _fill_gap(row, class_fill)) > settings.odd_fill:
        score += 1.0 + (gap - settings.odd_fill) / max(1.0 - settings.odd_fill, 1e-6)
    if row["fill"] > settings.full_fill:
        score += 1.0 + (row["fill"] - settings.full_fill) / max(1.0 - settings.full_fill, 1e-6)
    if row["fill"] < settings.empty_fill:
        score += 1.0 + (settings.empty_fill - row["fill"]) / max(settings.empty_fill, 1e-6)
    if row["claimed"] > settings.claimed:
        score += 1.0 + (row["claimed"] - settings.claimed) / max(1.0 - settings.claimed, 1e-6)
    if row["covers"] > settings.covers:
        score += 1.0 + (row["covers"] - settings.covers) / max(1.0 - settings.covers, 1e-6)
    return score
