"""``bbam-captum synth OUT --num-images N --seed S``: a synthetic COCO dataset with true masks."""
from __future__ import annotations

import argparse

from ..synth import WORLDS, WorldConfig, write_dataset


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "synth", help="draw a synthetic dataset of one of the worlds (COCO, with true masks for evaluation)",
        description="Draws OUT/images/*.png and OUT/annotations.json (boxes, classes and true "
                    "instance masks as RLE) of one world: shapes (the bundled detector's), camouflage "
                    "(fills like the background) or photo (photographic textures, holes, thin parts). "
                    "The same world and seed give the same dataset.")
    parser.add_argument("out", help="output folder")
    parser.add_argument("--num-images", type=int, default=100, help="number of images (default: 100)")
    parser.add_argument("--seed", type=int, default=0, help="dataset seed (default: 0)")
    parser.add_argument("--world", choices=sorted(WORLDS), default="shapes",
                        help="which world to draw (default: shapes, the bundled detector's); see the README")
    parser.add_argument("--image-size", type=int, default=WorldConfig.image_size,
                        help=f"side of the square images in pixels (default: {WorldConfig.image_size})")
    return parser


def run(args: argparse.Namespace) -> int:
    from ..errors import InputError

    if args.num_images < 1:
        raise InputError(f"--num-images must be at least 1, got {args.num_images}")
    if args.image_size < 64:
        raise InputError(f"--image-size must be at least 64 px, got {args.image_size}")
    config = WORLDS[args.world]
    if args.image_size != config.image_size:
        config = config.at_size(args.image_size)
    ann = write_dataset(args.out, args.num_images, args.seed, config)
    print(f"wrote {args.num_images} images and {ann}")
    return 0
