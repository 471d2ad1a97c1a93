"""The default label step at scale: seconds per box at 800 px and instance mIoU, this code against a checkout before.

    .venv/bin/python -m benchmarks.label_scale --out DIR [--before CHECKOUT] [--worlds W ...]

For the first ``--images`` images of each world's val split (seed 1), BBAM explains every true
box with the world's own detector (BBAM's default settings); the maps are cached under
``DIR/maps/WORLD``, so a stopped run resumes. The default label step (:func:`pseudo_masks` with
``LabelSettings()``: both CRF masks and Eq. 4) then runs on each image:

- at the split's own size (192 px): instance mIoU, all ``--images`` images;
- at 800 px: the first ``--large-images`` images upscaled by 800 / 192 (image, maps and true
  masks, as ``benchmarks/crf_scale.py``; the maps' cells scaled alike): seconds per box on one
  thread, and instance mIoU;
- at 800 px drawn so (``--large-images`` scenes of the world drawn at 800 px, seed 1, indices from
  10000): an upscaled image holds no detail past 192 px, so a step that works on a coarser grid
  loses nothing there; these scenes have the world's texture and noise at every pixel. The
  detector (trained at 192 px) explains the scene's area-downscale to 192 px; its maps are
  upscaled to 800 px (cached under ``DIR/maps/WORLD_800_KEY``, keyed by the detector and BBAM's
  settings). Seconds per box and instance mIoU.

``--before CHECKOUT``: a checkout of the code to compare with (e.g. a git worktree of an earlier
commit); its ``bbam_captum`` is loaded beside this one under another name, and both label steps
run on every image in the same process, in turns (which goes first alternates by image), so
that the machine's load weighs on both alike. Also reported: the mean IoU of each box's mask
with the earlier code's, and whether every mask is the same.

Writes ``DIR/label_scale.json`` and ``DIR/label_scale.md``.
"""
from __future__ import annotations

import argparse
import hashlib
import importlib
import importlib.util
import json
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from bbam_captum import BBAM, BBAMSettings, load_detector
from bbam_captum.detectors import detector_digest
from bbam_captum.io import read_image
from bbam_captum.labels import LabelSettings
from bbam_captum.pipeline import RunLayout, compute_maps, read_coco
from bbam_captum.pipeline.generate import map_cells
from bbam_captum.synth import CLASSES, WORLDS
from bbam_captum.synth.world import draw_image
from bbam_captum.utils.atomic import write_json_atomic

from .crf_scale import agreement, boxes_seen, upscale
from .harness import VAL_SEED, Timed, markdown_table, start_run, write_markdown
from .worlds import MaskScore, detector_files, first_images, true_masks, val_split

LARGE = 800
NATIVE_FIRST_INDEX = 10000  # scenes drawn at LARGE px: indices past the val split's, never trained on
BEFORE_PACKAGE = "bbam_captum_before"  # the name the --before checkout's package is loaded under

#: ``(maps, boxes, image, cells) -> instance masks (K, H, W) bool``: one code's default label step.
SIZES = ("native", "large", "small")  # drawn at 800 px, upscaled to 800 px, the split's own 192 px
LabelStep = Callable[[np.ndarray, np.ndarray, np.ndarray, np.ndarray], np.ndarray]


def label_step(chain: object) -> LabelStep:
    """The default label step of a ``labels.chain`` module (this code's or the earlier checkout's),
    with that module's own ``LabelSettings()``; only the instance masks are scored."""
    settings = chain.LabelSettings()

    def step(maps: np.ndarray, boxes: np.ndarray, image: np.ndarray, cells: np.ndarray) -> np.ndarray:
        return chain.pseudo_masks(maps, boxes, settings, image, cells)[0]

    return step


def load_before(checkout: Path) -> LabelStep:
    """The label step of ``CHECKOUT/bbam_captum``, imported as :data:`BEFORE_PACKAGE` (its relative
    imports stay within it)."""
    root = checkout / "bbam_captum"
    spec = importlib.util.spec_from_file_location(BEFORE_PACKAGE, root / "__init__.py",
                                                  submodule_search_locations=[str(root)])
    if spec is None or spec.loader is None:
        raise SystemExit(f"no bbam_captum package under {checkout}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[BEFORE_PACKAGE] = module
    spec.loader.exec_module(module)
    return label_step(importlib.import_module(f"{BEFORE_PACKAGE}.labels.chain"))


def world_maps(world: str, out: Path, images: int) -> tuple[Path, Path, list]:
    """The world's val annotations, its maps folder (computed where missing) and its first ``images`` items."""
    files = detector_files(world)
    if files is None:
        raise SystemExit(f"[{world}] no detector: run `make detector WORLD={world}` first")
    ann = val_split(world)
    coco = first_images(read_coco(ann, CLASSES), images)
    work = out / "maps" / world
    compute_maps(BBAM(load_detector(*files)), coco, ann.parent / "images", work, BBAMSettings())
    return ann, work, coco.items


def native_scenes(world: str, out: Path, count: int) -> list[tuple[np.ndarray, ...]]:
    """``count`` scenes of the world drawn at :data:`LARGE` px, each ``(image, maps, boxes, cells, true,
    classes)``: maps from the detector on the scene's area-downscale to 192 px, upscaled (cached)."""
    config = WORLDS[world]
    factor = LARGE / config.image_size
    bbam = BBAM(load_detector(*detector_files(world)))
    # cached by what shapes the maps: the detector and BBAM's settings
    key = hashlib.sha256(f"{detector_digest(bbam)} {BBAMSettings()!r}".encode()).hexdigest()[:12]
    cache = out / "maps" / f"{world}_{LARGE}_{key}"
    cache.mkdir(parents=True, exist_ok=True)
    scenes = []
    for index in range(NATIVE_FIRST_INDEX, NATIVE_FIRST_INDEX + count):
        image, objects = draw_image(VAL_SEED, index, config.at_size(LARGE))
        objects = [o for o in objects if o.mask.any()]
        if not objects:
            continue
        true = np.stack([o.mask for o in objects])
        classes = np.array([o.label for o in objects])
        boxes = np.array([o.bbox_xyxy for o in objects], dtype=np.float64)
        path = cache / f"{index}.npz"
        if not path.is_file():
            small = torch.nn.functional.interpolate(torch.from_numpy(image).permute(2, 0, 1)[None].float(),
                                                    size=(config.image_size,) * 2, mode="area")[0]
            maps, records = bbam.attribute(small, torch.from_numpy(boxes / factor).float(),
                                           target=torch.from_numpy(classes), settings=BBAMSettings(),
                                           return_records=True)
            np.savez_compressed(path, maps=maps[:, 0].numpy(), cells=np.array([r.stride for r in records], float))
        data = np.load(path)
        maps = torch.nn.functional.interpolate(torch.from_numpy(data["maps"])[:, None], size=(LARGE, LARGE),
                                               mode="bilinear", align_corners=False)[:, 0].numpy()
        scenes.append((image, maps, boxes, data["cells"] * factor, true, classes))
    return scenes


def score_world(world: str, out: Path, images: int, large_images: int, steps: dict[str, LabelStep]) -> dict:
    """Instance mIoU of each label step at 192 px, at 800 px upscaled and at 800 px drawn so; seconds per
    box at 800 px; agreement with the first step (the earlier code's where given)."""
    ann, work, items = world_maps(world, out, images)
    gt = json.loads(ann.read_text())
    class_of = dict(read_coco(ann, CLASSES).class_of_category)
    runs = {size: {name: {"score": MaskScore(CLASSES), "timer": Timed(fn), "masks": []} for name, fn in steps.items()}
            for size in SIZES}

    def run_steps(size: str, turn: int, image: np.ndarray, maps: np.ndarray, true: np.ndarray, boxes: np.ndarray,
                  cells: np.ndarray, classes: np.ndarray) -> None:
        blank = np.zeros(image.shape[:2], np.uint8)  # instance masks only: no semantic score
        for name in list(steps) if turn % 2 == 0 else list(steps)[::-1]:  # turns: neither always runs first
            run = runs[size][name]
            instance = run["timer"](maps, boxes, image, cells)
            run["masks"].append(instance)
            run["score"].add(instance, true, blank, blank, classes)

    for index, item in enumerate(items):
        data = np.load(RunLayout(work).maps_file(item.image_id))
        maps, boxes, classes = data["maps"].astype(np.float32), data["boxes"], data["classes"]
        true, _ = true_masks(gt, item.image_id, data["ann_ids"], item.height, item.width, class_of)
        image = np.ascontiguousarray(read_image(ann.parent / "images" / item.file_name).permute(1, 2, 0).numpy())
        cells = map_cells(data, item.height, item.width)
        run_steps("small", index, image, maps, true, boxes, cells, classes)
        if index < large_images:
            big, big_maps, big_true, big_boxes = upscale(image, maps, true, boxes, LARGE)
            run_steps("large", index, big, big_maps, big_true, big_boxes, cells * LARGE / image.shape[0], classes)
            print(f"[{world}] image {item.image_id} upscaled to {LARGE} px: " + _speeds(runs["large"]), flush=True)
    for index, (image, maps, boxes, cells, true, classes) in enumerate(native_scenes(world, out, large_images)):
        run_steps("native", index, image, maps, true, boxes, cells, classes)
        print(f"[{world}] scene {index + 1} drawn at {LARGE} px: " + _speeds(runs["native"]), flush=True)
    return {"world": world, "images": len(items), "large_images": min(large_images, len(items)),
            "native_images": large_images, **{size: _summary(by_step) for size, by_step in runs.items()}}


def _speeds(by_step: dict[str, dict]) -> str:
    return ", ".join(f"{name} {r['timer'].seconds / max(boxes_seen(r), 1):.2f} s/box" for name, r in by_step.items())


def _summary(runs: dict[str, dict]) -> dict[str, dict]:
    reference = next(iter(runs.values()))["masks"]
    out = {}
    for name, run in runs.items():
        mean_iou, identical = agreement(run["masks"], reference)
        out[name] = {"boxes": boxes_seen(run), "seconds_per_box": run["timer"].seconds / max(boxes_seen(run), 1),
                     "instance_miou": run["score"].result()["instance_miou"] if run["masks"] else None,
                     "mean_iou_with_first": mean_iou, "same_masks_as_first": identical}
    return out


def write_report(path: Path, results: list[dict], meta: dict) -> str:
    """``label_scale.md``: a row per world and code at each size; returns the text."""
    first = meta["steps"][0]
    lines = [f"# The default label step at scale\n\n`{meta['command']}`; {meta['machine']}; {meta['date']}; "
             f"{meta['minutes']} min. The whole default label step (`pseudo_masks` with `LabelSettings()`: both CRF "
             f"masks and Eq. 4), one thread beside other jobs; codes timed in turns on the same images in one "
             f"process. {meta['before_note']} 'IoU with {first}': mean IoU of each box's mask with {first}'s.", ""]
    titles = {"native": f"{LARGE} px, scenes drawn at {LARGE} px", "large": f"{LARGE} px (the val images upscaled "
              f"{LARGE}/192: no detail past 192 px)", "small": "192 px (val split)"}
    counts = {"native": "native_images", "large": "large_images", "small": "images"}
    for size in SIZES:
        lines += [f"## {titles[size]}", ""]
        lines += markdown_table(
            ["world", "code", "images", "boxes", "s / box", "instance mIoU", f"IoU with {first}", "same masks"],
            [[r["world"], name, r.get(counts[size], "-"), row["boxes"],
              f"{row['seconds_per_box']:.3f}", f"{row['instance_miou']:.4f}", f"{row['mean_iou_with_first']:.4f}",
              "yes" if row["same_masks_as_first"] else "no"]
             for r in results for name, row in r.get(size, {}).items()])
        lines.append("")
    return write_markdown(path, lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, type=Path, help="results, and the maps cache under maps/")
    parser.add_argument("--before", type=Path, help="a checkout of the code to compare with (its bbam_captum)")
    parser.add_argument("--before-name", default="before", help="its name in the report (e.g. its commit)")
    parser.add_argument("--worlds", nargs="+", default=list(WORLDS), choices=list(WORLDS))
    parser.add_argument("--images", type=int, default=12, help="val images per world at 192 px (default: 12)")
    parser.add_argument("--large-images", type=int, default=4,
                        help=f"of them, at {LARGE} px; as many scenes drawn at {LARGE} px (default: 4)")
    args = parser.parse_args(argv)
    if args.images < 1 or args.large_images < 0:
        parser.error(f"--images must be >= 1 and --large-images >= 0, got {args.images} and {args.large_images}")
    torch.set_num_threads(1)
    run = start_run("benchmarks.label_scale", argv)
    steps = {args.before_name: load_before(args.before)} if args.before else {}
    steps["this code"] = label_step(importlib.import_module("bbam_captum.labels.chain"))
    args.out.mkdir(parents=True, exist_ok=True)
    results = [score_world(world, args.out, args.images, args.large_images, steps) for world in args.worlds]
    note = (f"'{args.before_name}': the checkout given as `--before`." if args.before else "No earlier code compared.")
    meta = {**run.meta(), "size": LARGE, "steps": list(steps), "before_note": note,
            "label_settings": str(LabelSettings())}
    write_json_atomic(args.out / "label_scale.json", {"meta": meta, "worlds": results}, indent=1)
    print(write_report(args.out / "label_scale.md", results, meta))


if __name__ == "__main__":
    main()
