"""``bbam-captum report OUT [--gt ANN.json] [--open]``: a static page to review the pseudo labels."""
from __future__ import annotations

import argparse
from pathlib import Path

from ._common import add_gt_img_dir_arg, gt_img_dir, print_unchecked


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    from ..report.flags import FlagSettings

    d = FlagSettings()
    parser = subparsers.add_parser(
        "report", help="write a static page to review the pseudo labels of a generate run",
        description="Writes OUT/report/index.html: every image with its boxes, maps, instance masks and semantic "
                    "label, and a table of all boxes (sortable, filterable, flagged boxes first). Only OUT/report/ "
                    "is written; images whose inputs did not change reuse their thumbnails.")
    parser.add_argument("out", help="the output folder of 'bbam-captum generate'")
    parser.add_argument("--gt", default=None, help="COCO file with the true masks: adds each mask's IoU")
    add_gt_img_dir_arg(parser)
    parser.add_argument("--open", action="store_true", help="open the page in the default browser")
    parser.add_argument("--full-fill", type=float, default=d.full_fill,
                        help=f"flag masks covering more than this share of their box (default: {d.full_fill})")
    parser.add_argument("--empty-fill", type=float, default=d.empty_fill,
                        help=f"flag masks covering less than this share of their box (default: {d.empty_fill})")
    parser.add_argument("--claimed", type=float, default=d.claimed,
                        help="flag masks with more than this share also in another box's mask "
                             f"(default: {d.claimed})")
    parser.add_argument("--covers", type=float, default=d.covers,
                        help=f"flag masks covering more than this share of another box's mask (default: {d.covers})")
    parser.add_argument("--min-positives", type=int, default=d.min_positives,
                        help=f"flag boxes with fewer positive proposals (default: {d.min_positives})")
    parser.add_argument("--odd-fill", type=float, default=d.odd_fill,
                        help="flag masks whose area / box area lies further than this from their class's "
                             f"median in the run (default: {d.odd_fill})")
    return parser


def run(args: argparse.Namespace) -> int:
    from ..errors import InputError
    from ..pipeline.outputs import check_output_subfolders
    from ..report import FlagSettings, build_report

    out = Path(args.out)
    if not out.is_dir():
        raise InputError(f"output folder not found: {out}")
    check_output_subfolders(out)
    if args.gt is not None and not Path(args.gt).is_file():
        raise InputError(f"--gt file not found: {args.gt}")
    images = gt_img_dir(args)
    if images is not None and args.gt is None:
        raise InputError("--gt-img-dir names the images of --gt: pass --gt too")
    flags = FlagSettings(full_fill=args.full_fill, empty_fill=args.empty_fill, claimed=args.claimed,
                         covers=args.covers, min_positives=args.min_positives, odd_fill=args.odd_fill)
    result = build_report(out, args.gt, flags, show_progress=True, gt_img_dir=images)
    if args.gt is not None:
        from ..metrics.pseudo_labels import gt_image_folder

        print_unchecked(result["images_unchecked"], Path(args.gt), gt_image_folder(Path(args.gt), images))
    print(f"report of {result['images']} images, {result['boxes']} boxes ({result['flagged']} flagged); "
          f"{result['drawn']} images drawn anew, the rest from the cache; {result['seconds']:.1f} s")
    if recall := result["flag_recall"]:
        in_worst = "n/a" if recall["flagged_in_worst"] is None else f"{100 * recall['flagged_in_worst']:.0f} %"
        print(f"flags: {100 * recall['worst_flagged']:.0f} % of the {recall['worst']} masks of lowest IoU with the "
              f"true masks (IoU <= {recall['worst_iou']:.3f}) carry a flag; {in_worst} of the flagged are among them")
    for failure in result["failures"][:10]:
        print(f"  not shown: image {failure['image_id']}: {failure['reason']}")
    print(f"wrote {result['index']}")
    if args.open:
        import webbrowser

        webbrowser.open(result["index"].resolve().as_uri())
    return 1 if result["failures"] else 0
