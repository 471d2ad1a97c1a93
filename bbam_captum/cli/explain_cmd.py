"""``bbam-captum explain IMAGE``: a figure of the detector's boxes and what it looks at for each."""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from ._common import add_detector_args, bbam_default


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
    parser.add_argument("image", help="an image file (PNG, JPEG, ...)")
    parser.add_argument("--boxes", nargs="+", type=_parse_box, metavar="x1,y1,x2,y2",
                        help="boxes to explain instead of the detections")
    parser.add_argument("--score-thr", type=float, default=0.5, help="detection score threshold (default: 0.5)")
    parser.add_argument("--out", required=True, help="the figure to write (PNG)")
    parser.add_argument("--steps", type=int, default=bbam_default("steps"),
                        help=f"BBAM optimisation steps (default: {bbam_default('steps')})")
    parser.add_argument("--l1-coef", type=float, default=bbam_default("l1_coef"),
                        help=f"BBAM's lambda (default: {bbam_default('l1_coef')})")
    parser.add_argument("--seed", type=int, default=0)
    add_detector_args(parser)
    return parser


def run(args: argparse.Namespace) -> int:
    from .. import BBAM, load_detector
    from ..visualization import explanation_figure

    path = Path(args.image)
    if not path.is_file():
        raise FileNotFoundError(f"image not found: {path}")
    try:
        image = torch.from_numpy(np.array(Image.open(path).convert("RGB"))).permute(2, 0, 1)
    except UnidentifiedImageError as err:
        raise ValueError(f"cannot read {path} as an image: {err}") from err
    model = load_detector(args.config, args.checkpoint, device=args.device)
    bbam = BBAM(model)
    if args.boxes:
        boxes, target, scores = torch.tensor(args.boxes), None, None
    else:
        det = bbam.adapter.detect(image, score_thr=args.score_thr)
        if det.boxes.shape[0] == 0:
            print(f"no detection scores {args.score_thr} or more on {path}; nothing to explain "
                  "(lower --score-thr or give --boxes)")
            return 1
        boxes, target, scores = det.boxes, det.labels, det.scores
    maps, records = bbam.attribute(image, boxes, target=target, steps=args.steps, l1_coef=args.l1_coef,
                                   seed=args.seed, show_progress=True, return_records=True)
    names = bbam.adapter.class_names
    labels = [names[r.target] + (f" {float(scores[i]):.2f}" if scores is not None else "")
              for i, r in enumerate(records)]
    fig = explanation_figure(image, boxes, labels, maps, title=f"BBAM: {path.name}")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.out, dpi=120)
    for i, (label, record) in enumerate(zip(labels, records)):
        note = " (no positive proposal: the box itself was used)" if record.fallback else ""
        print(f"box {i}: {label}, {record.num_positives} positive proposals, stride {record.stride}{note}")
    print(f"wrote {args.out}")
    return 0
