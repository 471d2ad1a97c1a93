"""Where a run may write: inside its output folder, never over one of its inputs."""
from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from ..errors import InputError
from ..io.coco import load_coco_json
from ..io.layout import RunLayout


def check_output_folder(out: Path) -> None:
    """``out`` is a folder that exists or can be made, and can be written to.

    Raises:
        InputError: ``out`` (or a parent) is a file, or the folder cannot be written.
    """
    if out.exists() and not out.is_dir():
        raise InputError(f"out {out} is an existing file; give a folder")
    existing = next((p for p in (out, *out.parents) if p.exists()), None)
    if existing is not None and not existing.is_dir():
        raise InputError(f"out {out}: {existing} is a file, not a folder")
    if existing is not None and not os.access(existing, os.W_OK | os.X_OK):
        raise InputError(f"out {out}: {existing} cannot be written to")
    check_output_subfolders(out)


def check_output_subfolders(out: Path) -> None:
    """The folders a run writes under ``out`` (:attr:`RunLayout.written_folders`) are folders and
    can be written to where they exist, so that no run fails after its maps are made.

    Raises:
        InputError: naming the first that is a file or cannot be written.
    """
    layout = RunLayout(out)
    for file in layout.written_files:
        if file.is_dir():
            raise InputError(f"out {out}: {file} is a folder where the run writes a file; move it away")
    for folder in layout.written_folders:
        if folder.exists() and not folder.is_dir():
            raise InputError(f"out {out}: {folder} is a file where the run writes a folder; move it away")
        if folder.is_dir() and not os.access(folder, os.W_OK | os.X_OK):
            raise InputError(f"out {out}: {folder} cannot be written to")


def check_inputs_outside_outputs(out: Path, inputs: Iterable[Path]) -> None:
    """No input file lies where a run writes (``OUT/maps``, ``OUT/mmseg``, ``OUT/coco``,
    ``OUT/summary.json``, ...), so that no output can replace an input.

    Raises:
        InputError: naming the first input found there.
    """
    root = out.resolve()
    parts = RunLayout(root).written_parts
    for path in inputs:
        resolved = path.resolve()
        for part in parts:
            if resolved == part or part in resolved.parents:
                raise InputError(f"input file {path} lies inside the output folder's {part.relative_to(root)}, "
                                 f"which this run writes; choose another output folder than {out}")


def check_not_an_input(target: Path, inputs: Iterable[Path | None], name: str = "out") -> None:
    """``target``, a file a command writes, is none of its input files (by any path to it);
    ``name`` is what the caller calls it (an argument, or the command line's option).

    Raises:
        InputError: naming the input that would be overwritten.
    """
    resolved = target.resolve()
    for path in inputs:
        if path is None or not path.exists():
            continue
        if path.resolve() == resolved or (target.exists() and os.path.samefile(path, target)):
            raise InputError(f"{name} {target} is the input file {path}: writing there would overwrite it; "
                             "choose another file")


def check_generate_inputs(ann_file: str | Path, img_dir: str | Path, out: str | Path) -> None:
    """What :func:`~bbam_captum.pipeline.generate_labels` checks before any image is explained.

    Raises:
        InputError: a missing image folder, an output folder that cannot be written, a
            malformed COCO file, or an input that lies where the run writes.
    """
    img_dir, out = Path(img_dir), Path(out)
    if not img_dir.is_dir():
        raise InputError(f"image folder not found: {img_dir}")
    check_output_folder(out)
    images = load_coco_json(ann_file)["images"]
    check_inputs_outside_outputs(out, [Path(ann_file), *(img_dir / i["file_name"] for i in images)])
