"""``bbam-captum synth OUT --num-images N --seed S``: a synthetic COCO dataset with true masks."""
from __future__ import annotations

import argparse
import os
import re
from pathlib import Path

from ..synth.world import WORLDS, WorldConfig

MAX_IMAGES = 1_000_000
MAX_IMAGE_SIZE = 4096  # a side beyond this is a typo far more often than a wish (64 MB per image)
_SYNTH_IMAGE = re.compile(r"\d{6}\.png")  # the names write_dataset gives its images


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "synth", help="draw a synthetic dataset of one of the worlds (COCO, with true masks for evaluation)",
        description="Draws OUT/images/*.png and OUT/annotations.json (boxes, classes and true "
                    "instance masks as RLE) of one world: shapes (the bundled detector's), camouflage "
                    "(fills like the background) or photo (photographic textures, holes, thin parts). "
                    "The same world and seed give the same dataset. A folder that already holds files "
                    "is refused unless --force.")
    parser.add_argument("out", help="output folder (new or empty)")
    parser.add_argument("--num-images", type=int, default=100, help="number of images (default: 100)")
    parser.add_argument("--seed", type=int, default=0, help="dataset seed, >= 0 (default: 0)")
    parser.add_argument("--world", choices=sorted(WORLDS), default="shapes",
                        help="which world to draw (default: shapes, the bundled detector's); see the README")
    parser.add_argument("--image-size", type=int, default=WorldConfig.image_size,
                        help=f"side of the square images in pixels, 64..{MAX_IMAGE_SIZE} "
                             f"(default: {WorldConfig.image_size})")
    parser.add_argument("--force", action="store_true",
                        help="write into a folder that already holds files: replaces OUT/annotations.json and "
                             "removes the images of an earlier synth run in OUT/images (names like 000000.png)")
    return parser


def check_options(args: argparse.Namespace) -> None:
    """Every number within what the drawing accepts.

    Raises:
        InputError: naming the option, its range and what came.
    """
    from ..errors import InputError

    if not 1 <= args.num_images <= MAX_IMAGES:
        raise InputError(f"--num-images must be at least 1 and at most {MAX_IMAGES}, got {args.num_images}")
    if not 64 <= args.image_size <= MAX_IMAGE_SIZE:
        raise InputError(f"--image-size must be at least 64 px and at most {MAX_IMAGE_SIZE}, got {args.image_size}")
    if args.seed < 0:
        raise InputError(f"--seed must be >= 0, got {args.seed}")


def check_folder(out: Path, force: bool) -> list[Path]:
    """``out`` can take a new dataset; returns the images of an earlier synth run to remove.

    Raises:
        InputError: ``out`` or a parent is a file, or ``out`` holds files and ``force`` is off
            (the message says what would be replaced).
    """
    from ..errors import InputError

    existing = next((p for p in (out, *out.parents) if p.exists()), None)
    if existing is not None and not existing.is_dir():
        raise InputError(f"synth {out}: {existing} is a file, not a folder; give a new or empty folder")
    if existing is not None and not os.access(existing, os.W_OK | os.X_OK):
        raise InputError(f"synth {out}: {existing} cannot be written to")
    held = sorted(p for p in out.rglob("*") if not p.is_dir()) if out.is_dir() else []
    if held and not force:
        replaced = [p for p in held if p == out / "annotations.json" or
                    (p.parent == out / "images" and _SYNTH_IMAGE.fullmatch(p.name))]
        listed = ", ".join(str(p.relative_to(out)) for p in replaced[:5]) + (" ..." if len(replaced) > 5 else "")
        raise InputError(f"synth {out}: the folder already holds {len(held)} file(s); writing a dataset there would "
                         f"replace {len(replaced)} of them ({listed or 'none'}) and mix the rest with the new one. "
                         "Give a new or empty folder, or pass --force to replace them")
    return [p for p in held if p.parent == out / "images" and _SYNTH_IMAGE.fullmatch(p.name)]


def run(args: argparse.Namespace) -> int:
    from ..synth.coco import write_dataset

    check_options(args)
    out = Path(args.out)
    stale = check_folder(out, args.force)
    config = WORLDS[args.world]
    if args.image_size != config.image_size:
        config = config.at_size(args.image_size)
    for path in stale:  # an earlier dataset's images: with --force, the folder holds one dataset only
        path.unlink()
    ann = write_dataset(out, args.num_images, args.seed, config)
    print(f"wrote {args.num_images} images and {ann}" + (f" (replaced {len(stale)} earlier images)" if stale else ""))
    return 0
