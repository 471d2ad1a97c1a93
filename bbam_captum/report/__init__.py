"""``bbam-captum report``: a static page to review the pseudo labels of a ``generate`` run."""
from __future__ import annotations

from .flags import FLAG_HELP, FlagSettings, box_flags

__all__ = ["FLAG_HELP", "FlagSettings", "box_flags", "build_report"]


def __getattr__(name: str):
    # build_report pulls in numpy, PIL and scikit-image; the CLI's --help needs only the flags.
    if name == "build_report":
        from .build import build_report

        return build_report
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

