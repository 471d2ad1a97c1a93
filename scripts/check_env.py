"""The set-up's check of the environment it made: every version that constraints.txt pins is
installed, and the stack imports with mmcv's compiled ops. Exits 1 naming what differs.

The test suite checks only the ranges of pyproject.toml: the plugin must work in any environment
within them, while these exact versions are what the set-up installs.

Usage: python scripts/check_env.py CONSTRAINTS
"""
from __future__ import annotations

import sys
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path


def pinned(constraints: Path) -> dict[str, str]:
    """``name==version`` lines of a constraints file (comments and ranges left out)."""
    lines = (line.split("#")[0].strip() for line in constraints.read_text().splitlines())
    return dict(line.split("==") for line in lines if "==" in line)


def differences(pins: dict[str, str]) -> list[str]:
    """``name: pinned X, installed Y`` for each pin the environment does not have."""
    found = []
    for name, wanted in pins.items():
        try:
            have = version(name)
        except PackageNotFoundError:
            have = "none"
        if have != wanted:
            found.append(f"{name}: pinned {wanted}, installed {have}")
    return found


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print(__doc__.strip().splitlines()[-1], file=sys.stderr)
        return 2
    wrong = differences(pinned(Path(argv[0])))
    if wrong:
        print(f"[setup] the environment differs from {argv[0]}:\n  " + "\n  ".join(wrong), file=sys.stderr)
        return 1
    # imported after the versions are known to be right, so that a wrong one is named, not a crash shown
    import captum
    import cv2
    import mmcv
    import mmdet
    import mmseg
    import pydensecrf.densecrf  # noqa: F401  (built from source at install)
    from mmcv.ops import RoIAlign, nms  # noqa: F401  (fails if mmcv was built without its ops)

    import bbam_captum  # noqa: F401

    print(f"[setup] ok: the versions of {argv[0]}; mmcv {mmcv.__version__} with its ops, mmdet {mmdet.__version__}, "
          f"mmseg {mmseg.__version__}, captum {captum.__version__}, cv2 {cv2.__version__}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
