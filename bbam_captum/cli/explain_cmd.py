"""``bbam-captum explain IMAGE``: a figure of the detector's boxes and what it looks at for each."""
from __future__ import annotations

import argparse
import re
from pathlib import Path

from ..errors import InputError
from ._common import (add_detector_args, add_window_padding_arg, bbam_default, bbam_settings, check_detector_args,
                      load_cli_detector)


def _parse_box(text: str) -> list[float]:
    try:
        values = [float(v) for v in text.split(",")]
    except ValueError:
        values = []
    if len(values) != 4:
        raise argparse.ArgumentTypeError(f"a box is x1,y1,x2,y2 (four numbers), got {text!r}")
    return values


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "explain", help="explain a detector's detections (or given boxes) on one image",
        description="Runs the detector on IMAGE, explains each detection above --score-thr (or each "
                    "--boxes box) with BBAM, and writes a figure: the image with its boxes and class "
                    "names, then each box's map over the image.")
    # "-5,3,40,40" is a box, not an option (Python 3.13's argparse reads it so already)
    parser._negative_number_matcher = re.compile(r"^-\.?\d")
    parser.add_argument("image", help="an image file (PNG, JPEG, ...)")
    parser.add_argument("--boxes", nargs="+", type=_parse_box, metavar="x1,y1,x2,y2",
                        help="boxes to explain instead of the detections")
    parser.add_argument("--score-thr", type=float, default=0.5, help="detection score threshold (default: 0.5)")
    parser.add_argument("--out", required=True, help="the figure to write (PNG)")
    parser.add_argument("--steps", type=int, default=bbam_default("steps"),
                        help=f"BBAM optimisation steps (default: {bbam_default('steps')})")
    parser.add_argument("--l1-coef", type=float, default=bbam_default("l1_coef"),
                        help=f"BBAM's lambda (default: {bbam_default('l1_coef')})")
    add_window_padding_arg(parser)
    parser.add_argument("--seed", type=int, default=bbam_default("seed"))
    add_detector_args(parser)
    return parser


def figure_path(out: str) -> Path:
    """The file the figure goes to: ``--out`` with ``.png`` added when it has no suffix.

    Raises:
        InputError: ``--out`` is a folder, or its suffix is no format matplotlib writes.
    """
    from matplotlib.figure import Figure

    path = Path(out)
    if path.is_dir():
        raise InputError(f"--out {out} is a folder; give the figure's file name, e.g. {path / 'explain.png'}")
    if not path.suffix:
        path = path.with_name(path.name + ".png")
    formats = Figure().canvas.get_supported_filetypes()
    if path.suffix[1:].lower() not in formats:
        raise InputError(f"--out {out}: cannot write {path.suffix!r} figures; use one of "
                         f"{', '.join('.' + f for f in sorted(formats))}")
    existing = next(p for p in (path.parent, *path.parent.parents) if p.exists() or p == Path(p.anchor))
    if existing.exists() and not existing.is_dir():
        raise InputError(f"--out {out}: {existing} is a file, not a folder")
    return path


def run(args: argparse.Namespace) -> int:
    from ..pipeline.outputs import check_not_an_input

    settings = bbam_settings(args)
    if not 0.0 <= args.score_thr <= 1.0:  # also refuses nan
        raise InputError(f"--score-thr must lie in [0, 1], got {args.score_thr}")
    check_detector_args(args)
    out = figure_path(args.out)
    path = Path(args.image)
    if not path.is_file():
        raise InputError(f"image not found: {path}")
    check_not_an_input(out, [path, *(Path(p) for p in (args.config, args.checkpoint, args.classes) if p)], "--out")
    from ..io.images import read_image  # after the checks: an input error answers before torch loads
    from ..pipeline.api import explain

    image = read_image(path)
    boxes = None
    if args.boxes:
        import torch

        from ..ops import check_boxes

        boxes = torch.tensor(args.boxes)
        try:
            check_boxes(boxes, image.shape[1], image.shape[2])
        except ValueError as err:
            raise InputError(f"--boxes on {path} ({image.shape[2]}x{image.shape[1]}): {err}") from err
    model = load_cli_detector(args)
    try:
        result = explain(model, image, boxes, score_thr=args.score_thr, out=out, title=f"BBAM: {path.name}",
                         show_progress=True, settings=settings)
    except ValueError as err:  # what BBAM refuses of this image (e.g. too small): the user's to fix
        raise InputError(f"cannot explain {path}: {err}") from err
    if not result.records:
        print(f"no detection scores {args.score_thr} or more on {path}; nothing to explain "
              "(lower --score-thr or give --boxes)")
        return 1
    for i, (label, record) in enumerate(zip(result.labels, result.records)):
        note = " (no positive proposal: the box itself was used)" if record.fallback else ""
        print(f"box {i}: {label}, {record.num_positives} positive proposals, stride {record.stride}{note}")
    print(f"wrote {out}")
    return 0
