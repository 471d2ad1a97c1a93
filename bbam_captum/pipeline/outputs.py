"""Where a run may write: inside its output folder, never over one of its inputs."""
from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from ..errors import InputError

# what generate, labels and evaluate write under OUT
OUTPUT_PARTS = ("maps", "mmseg", "coco", "summary.json", "run.json", "eval.json")


def check_output_folder(out: Path) -> None:
    """``out`` is a folder that exists or can be made, and can be written to.

    Raises:
        InputError: ``out`` (or a parent) is a file, or the folder cannot be written.
    """
    if out.exists() and not out.is_dir():
        raise InputError(f"--out {out} is an existing file; give a folder")
    existing = next((p for p in (out, *out.parents) if p.exists()), None)
    if existing is not None and not existing.is_dir():
        raise InputError(f"--out {out}: {existing} is a file, not a folder")
    if existing is not None and not os.access(existing, os.W_OK | os.X_OK):
        raise InputError(f"--out {out}: {existing} cannot be written to")


def check_inputs_outside_outputs(out: Path, inputs: Iterable[Path]) -> None:
    """No input file lies where a run writes (``OUT/maps``, ``OUT/mmseg``, ``OUT/coco``,
    ``OUT/summary.json``, ...), so that no output can replace an input.

    Raises:
        InputError: naming the first input found there.
    """
    root = out.resolve()
    parts = [root / part for part in OUTPUT_PARTS]
    for path in inputs:
        resolved = path.resolve()
        for part in parts:
            if resolved == part or part in resolved.parents:
                raise InputError(f"input file {path} lies inside the output folder's {part.relative_to(root)}, "
                                 f"which this run writes; choose another --out than {out}")
