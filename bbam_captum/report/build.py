"""Builds ``OUT/report/`` for a ``generate`` run."""
from __future__ import annotations

import time
from pathlib import Path

from .collect import collect, read_run
from .flags import FlagSettings
from .page import page_data, write_page


def build_report(out: str | Path, gt: str | Path | None = None, flags: FlagSettings = FlagSettings(),
                 show_progress: bool = False, gt_img_dir: str | Path | None = None) -> dict:
    """Writes ``OUT/report/`` (``index.html``, ``data.js``, thumbnails) for the run in ``out``.

    Only ``OUT/report/`` is written. Images whose inputs are unchanged since the last report
    reuse their cached rows and thumbnails.

    Args:
        out: the output folder of ``bbam-captum generate``.
        gt: a COCO file with the true masks (the one the boxes came from) for the IoU column.
        flags: thresholds of the flags.
        gt_img_dir: the folder of ``gt``'s images, compared by content with those the maps
            were made from (default: ``images/`` beside ``gt`` if there is one, else its folder).

    Returns:
        ``index`` (path of the page), ``images``, ``boxes``, ``drawn`` (images drawn anew),
        ``failures``, ``images_unchecked`` (images of ``gt`` that could not be compared by
        content: no file found, or no record in the maps), ``flag_recall`` (with ``gt``: how
        many of the worst masks carry a flag, see :func:`bbam_captum.report.page.flag_recall`)
        and ``seconds``.
    """
    start = time.perf_counter()
    out = Path(out)
    inputs = read_run(out, Path(gt) if gt is not None else None, Path(gt_img_dir) if gt_img_dir is not None else None)
    entries, failures, drawn = collect(inputs, show_progress)
    data = page_data(entries, failures, flags, f"BBAM pseudo labels: {out.resolve().name}",
                     inputs.class_names, gt is not None)
    index = write_page(inputs.layout, data)
    return {"index": index, "images": len(entries), "boxes": len(data["rows"]), "flagged": data["summary"]["flagged"],
            "drawn": drawn, "failures": failures, "images_unchecked": inputs.images_unchecked,
            "flag_recall": data["summary"]["flag_recall"],
            "seconds": time.perf_counter() - start}

