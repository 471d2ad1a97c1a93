"""Flags that point at likely bad pseudo masks without the true masks, and the review order."""
from __future__ import annotations

from dataclasses import dataclass

# Flag ids (the page shows their descriptions from FLAG_HELP).
FALLBACK, FULL, EMPTY, CLAIMED = "fallback", "fills-box", "nearly-empty", "claimed"
FLAG_HELP = {
    FALLBACK: "no jittered proposal kept the detection: BBAM fell back to the box itself",
    FULL: "the mask fills almost all of its box",
    EMPTY: "the mask fills almost none of its box",
    CLAIMED: "most of the mask is also claimed by another box's mask",
}


@dataclass(frozen=True)
class FlagSettings:
    """Thresholds of the flags.

    Attributes:
        full_fill: a mask covering more than this share of its box is flagged ``fills-box``.
        empty_fill: a mask covering less than this share of its box is flagged ``nearly-empty``.
        claimed: a mask with more than this share of its pixels inside other boxes' masks is
            flagged ``claimed``.
    """

    full_fill: float = 0.9
    empty_fill: float = 0.1
    claimed: float = 0.5

    def __post_init__(self) -> None:
        if not 0.0 <= self.empty_fill < self.full_fill <= 1.0:
            raise ValueError(f"fill thresholds must satisfy 0 <= empty_fill < full_fill <= 1, got "
                             f"empty_fill={self.empty_fill}, full_fill={self.full_fill}")
        if not 0.0 <= self.claimed <= 1.0:
            raise ValueError(f"the claimed share must lie in [0, 1], got {self.claimed}")


def box_flags(row: dict, settings: FlagSettings) -> list[str]:
    """The flags of one box row (needs ``fallback``, ``fill`` and ``claimed``)."""
    flags = []
    if row["fallback"]:
        flags.append(FALLBACK)
    if row["fill"] > settings.full_fill:
        flags.append(FULL)
    if row["fill"] < settings.empty_fill:
        flags.append(EMPTY)
    if row["claimed"] > settings.claimed:
        flags.append(CLAIMED)
    return flags


def suspicion(row: dict, settings: FlagSettings) -> float:
    """How far a box is past its flags' thresholds, for the worst-first order (0 when unflagged).

    Each flag counts 1 plus how far past its threshold the box lies, as a share of the
    room beyond it, so more flags come first and, within as many flags, the clearer case.
    """
    score = 0.0
    if row["fallback"]:
        score += 1.0
    if row["fill"] > settings.full_fill:
        score += 1.0 + (row["fill"] - settings.full_fill) / max(1.0 - settings.full_fill, 1e-6)
    if row["fill"] < settings.empty_fill:
        score += 1.0 + (settings.empty_fill - row["fill"]) / max(settings.empty_fill, 1e-6)
    if row["claimed"] > settings.claimed:
        score += 1.0 + (row["claimed"] - settings.claimed) / max(1.0 - settings.claimed, 1e-6)
    return score
