"""The dense CRF at scale: seconds per box and label mIoU, whole-image CRF against the grid CRF.

    .venv/bin/python -m benchmarks.crf_scale --out DIR [--worlds W ...] [--large-boxes N ...]

Uses the BBAM maps the worlds benchmark cached (``DIR/work/WORLD/VARIANT/maps``, default map
variant; run ``python -m benchmarks.worlds --out DIR`` first) for the first ``--images`` images
of each world's val split, and scores, for each CRF:

- at the split's own size (192 px): instance mIoU of the CRF's masks alone and after Eq. 4, and
  instance and semantic mIoU of the default label chain (:func:`pseudo_masks`);
- at about 800 px: the same images, maps and true masks upscaled (bilinear; masks cut at 0.5)
  by 800 / 192, for the first images holding ``--large-boxes`` boxes: instance mIoU of the
  CRF's masks alone and after Eq. 4. A proxy for images drawn at 800 px: the content has
  192-pixel detail, but the CRF works on 800 x 800 pixels exactly as it would on a real one.

The CRFs: ``before`` is :func:`crf_masks` as of ``--before`` (a git revision; the whole-image
CRF at full resolution), the others are this checkout's with ``max_pixels`` set to each of
``--budgets`` (the default budget marked; 0: the whole image at full resolution). Seconds per box:
one ``crf_masks`` call (the foreground share, the prior of one mask) per box, on one thread.

Writes ``DIR/crf_scale.json`` and ``DIR/crf_scale.md``.
"""
from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import time
import types
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from unittest import mock

import numpy as np
import torch
import torch.nn.functional as F

from bbam_captum.io.images import read_image
from bbam_captum.labels import LabelSettings, pseudo_masks, semantic_label
from bbam_captum.labels.crf import DenseCRFSettings, crf_grid, crf_masks
from bbam_captum.labels.refine import refine_masks, segment_pools
from bbam_captum.pipeline import RunLayout, read_coco
from bbam_captum.labels import chain as label_chain
from bbam_captum.synth import CLASSES, WORLDS
from bbam_captum.utils.atomic import write_json_atomic

from .worlds import _Score, _first_images, _truth, default_variant, val_split

REPO = Path(__file__).resolve().parent.parent
LARGE = 800
BEFORE = "db87541"  # the last revision whose CRF ran on the whole image at full resolution
BUDGETS = (0, 512 * 512)

CrfFn = Callable[[np.ndarray, np.ndarray, np.ndarray, float], np.ndarray]


def _module_at_revision(revision: str, name: str) -> types.ModuleType:
    """The module ``bbam_captum/labels/NAME.py`` as it was at ``revision``, its relative imports
    resolved against this checkout."""
    path = f"bbam_captum/labels/{name}.py"
    source = subprocess.run(["git", "show", f"{revision}:{path}"], cwd=REPO, check=True, capture_output=True,
                            text=True).stdout
    module = types.ModuleType(f"bbam_captum.labels._{name}_at_{revision}")
    module.__package__ = "bbam_captum.labels"
    sys.modules[module.__name__] = module  # its dataclasses look themselves up there
    exec(compile(source, f"{revision}:{path}", "exec"), module.__dict__)
    return module


def crf_at_revision(revision: str) -> CrfFn:
    """``crf_masks`` as it was at ``revision``, with the map blur of that revision too."""
    crf = _module_at_revision(revision, "crf")
    crf.smooth_maps = _module_at_revision(revision, "masks").smooth_maps
    return crf.crf_masks


def upscale(image: np.ndarray, maps: np.ndarray, true: np.ndarray, boxes: np.ndarray,
            size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Image (H, W, 3) uint8, maps (K, H, W), true masks (K, H, W) bool and boxes (K, 4) of a
    square image resized to ``size`` pixels (bilinear; masks cut at 0.5)."""
    def resize(x: np.ndarray) -> np.ndarray:  # (C, H, W) -> (C, size, size) float32
        x = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))[None]
        return F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)[0].numpy()

    factor = size / image.shape[0]
    big = resize(image.transpose(2, 0, 1)).round().clip(0, 255).astype(np.uint8).transpose(1, 2, 0)
    return np.ascontiguousarray(big), resize(maps), resize(true) > 0.5, boxes * factor


class _Timer:
    """A CRF function that adds up its seconds and boxes."""

    def __init__(self, fn: CrfFn) -> None:
        self.fn, self.seconds, self.boxes = fn, 0.0, 0

    def __call__(self, maps: np.ndarray, boxes: np.ndarray, image: np.ndarray, top_share: float) -> np.ndarray:
        start = time.perf_counter()
        masks = self.fn(maps, boxes, image, top_share)
        self.seconds += time.perf_counter() - start
        self.boxes += len(boxes)
        return masks


def score_world(world: str, maps_dir: Path, images: int, large_boxes: int, crfs: dict[str, CrfFn]) -> dict:
    ann = val_split(world)
    gt = json.loads(ann.read_text())
    coco = _first_images(read_coco(ann, CLASSES), images)
    class_of = dict(coco.class_of_category)
    settings = LabelSettings()
    n = CLASSES
    small = {name: {"crf": _Score(n), "crf + Eq. 4": _Score(n), "default chain": _Score(n), "timer": _Timer(fn),
                    "masks": []} for name, fn in crfs.items()}
    large = {name: {"crf": _Score(n), "crf + Eq. 4": _Score(n), "timer": _Timer(fn), "masks": []}
             for name, fn in crfs.items()}
    large_images = 0
    for item in coco.items:
        data = np.load(RunLayout(maps_dir).maps_file(item.image_id))
        maps, boxes, classes = data["maps"].astype(np.float32), data["boxes"], data["classes"]
        true, truth = _truth(gt, item.image_id, data["ann_ids"], item.height, item.width, class_of)
        image = np.ascontiguousarray(read_image(ann.parent / "images" / item.file_name).permute(1, 2, 0).numpy())
        pools = segment_pools(image)
        for name, s in small.items():
            instance = s["timer"](maps, boxes, image, settings.crf_fg_share)
            s["masks"].append(instance)
            s["crf"].add(instance, true, np.zeros_like(truth), truth, classes)
            s["crf + Eq. 4"].add(refine_masks(instance, boxes, pools), true, np.zeros_like(truth), truth, classes)
            # the chain passes its own CRF settings; each CRF here brings its own budget
            # (at the original's cell rule, as the CRFs compared here blur)
            with mock.patch.object(label_chain, "crf_masks", lambda m, b, i, share, _=None, __=None, fn=crfs[name]:
                                   fn(m, b, i, share)):
                instance, foreground, uncertain = pseudo_masks(maps, boxes, settings, image, np.ones(len(boxes)))
            label = semantic_label(foreground, uncertain, boxes, classes)
            s["default chain"].add(instance, true, label, truth, classes)
        if sum(len(m) for m in large[next(iter(large))]["masks"]) >= large_boxes:
            continue
        large_images += 1
        big, big_maps, big_true, big_boxes = upscale(image, maps, true, boxes, LARGE)
        pools = segment_pools(big)
        blank = np.zeros(big.shape[:2], np.uint8)  # no semantic score at this size
        for name, s in large.items():
            instance = s["timer"](big_maps, big_boxes, big, settings.crf_fg_share)
            s["masks"].append(instance)
            s["crf"].add(instance, big_true, blank, blank, classes)
            s["crf + Eq. 4"].add(refine_masks(instance, big_boxes, pools), big_true, blank, blank, classes)
        print(f"[{world}] image {item.image_id}: " + ", ".join(
            f"{name} {s['timer'].seconds / s['timer'].boxes:.2f} s/box" for name, s in large.items()), flush=True)
    return {"world": world, "images": len(coco.items), "large_images": large_images,
            "small": _summary(small, semantic=True), "large": _summary(large, semantic=False) if large_images else {}}


def _summary(runs: dict[str, dict], semantic: bool) -> dict[str, dict]:
    before = runs["before"]["masks"]
    out = {}
    for name, s in runs.items():
        agree = [float((a & b).sum() / max((a | b).sum(), 1)) for m, r in zip(s["masks"], before) for a, b in zip(m, r)]
        row = {"boxes": s["timer"].boxes, "seconds_per_box": s["timer"].seconds / max(s["timer"].boxes, 1),
               "crf_instance_miou": s["crf"].result()["instance_miou"],
               "crf_eq4_instance_miou": s["crf + Eq. 4"].result()["instance_miou"],
               "iou_with_before": float(np.mean(agree)),
               "identical_to_before": all(np.array_equal(m, r) for m, r in zip(s["masks"], before))}
        if semantic:
            chain = s["default chain"].result()
            row |= {"chain_instance_miou": chain["instance_miou"], "chain_semantic_miou": chain["semantic_miou"]}
        out[name] = row
    return out


def write_markdown(path: Path, results: list[dict], meta: dict) -> None:
    lines = [f"# The dense CRF at scale\n\n`{meta['command']}`; {meta['machine']}; {meta['date']}; "
             f"{meta['minutes']} min. Before: `crf_masks` at {meta['before']} (whole image, full resolution); "
             f"max_pixels=N: this checkout (0: full resolution; default {meta['default_budget']}); grid: the "
             f"pixels the CRF infers on. Seconds per box: one "
             f"CRF mask (foreground share) per box, one thread beside other jobs. 'IoU with before': mean IoU of each "
             f"box's mask with the before mask.", ""]
    titles = (("large", f"{LARGE} px (the val images upscaled {LARGE}/192)"), ("small", "192 px (val split)"))
    for size, title in titles:
        lines += [f"## {title}", "", "| world | CRF | grid | boxes | s / box | CRF instance mIoU | CRF + Eq. 4 "
                  "instance mIoU |" + (" default chain instance / semantic |" if size == "small" else "")
                  + " IoU with before | same masks |",
                  "|---|---|---|---|---|---|---|" + ("---|" if size == "small" else "") + "---|---|"]
        for r in results:
            for name, row in r[size].items():
                side = LARGE if size == "large" else 192
                grid = "x".join(map(str, crf_grid(side, side, meta["budgets"].get(name, 0))))
                chain = (f" {row['chain_instance_miou']:.3f} / {row['chain_semantic_miou']:.3f} |"
                         if size == "small" else "")
                lines.append(f"| {r['world']} | {name} | {grid} | {row['boxes']} | {row['seconds_per_box']:.3f} | "
                             f"{row['crf_instance_miou']:.3f} | {row['crf_eq4_instance_miou']:.3f} |{chain} "
                             f"{row['iou_with_before']:.3f} | {'yes' if row['identical_to_before'] else 'no'} |")
        lines.append("")
    path.write_text("\n".join(lines))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, type=Path, help="the worlds benchmark's --out (maps under work/)")
    parser.add_argument("--worlds", nargs="+", default=list(WORLDS), choices=list(WORLDS))
    parser.add_argument("--images", type=int, default=40, help="val images per world at 192 px (default: 40)")
    parser.add_argument("--large-boxes", nargs="+", type=int, default=[36],
                        help=f"boxes per world at {LARGE} px, one number or one per world (default: 36)")
    parser.add_argument("--budgets", nargs="+", type=int, default=list(BUDGETS), help="max_pixels values")
    parser.add_argument("--before", default=BEFORE, help=f"git revision of the whole-image CRF (default: {BEFORE})")
    args = parser.parse_args()
    large_boxes = args.large_boxes * len(args.worlds) if len(args.large_boxes) == 1 else args.large_boxes
    if len(large_boxes) != len(args.worlds):
        parser.error(f"--large-boxes takes one number or one per world ({len(args.worlds)}), got {args.large_boxes}")
    torch.set_num_threads(1)
    default = DenseCRFSettings().max_pixels
    budgets = {f"max_pixels={b}" + (" (default)" if b == default else ""): b for b in args.budgets}
    crfs: dict[str, CrfFn] = {"before": crf_at_revision(args.before)}
    for name, budget in budgets.items():
        crfs[name] = lambda m, b, i, s, settings=replace(DenseCRFSettings(), max_pixels=budget): \
            crf_masks(m, b, i, s, settings)
    start = time.perf_counter()
    results = [score_world(world, args.out / "work" / world / default_variant(), args.images, n, crfs)
               for world, n in zip(args.worlds, large_boxes)]
    meta = {"command": "python -m benchmarks.crf_scale --out DIR " + " ".join(
                [f"--worlds {' '.join(args.worlds)}", f"--images {args.images}",
                 f"--large-boxes {' '.join(map(str, large_boxes))}", f"--budgets {' '.join(map(str, args.budgets))}"]),
            "machine": f"{platform.machine()}, 1 CPU thread", "date": time.strftime("%Y-%m-%d"),
            "minutes": round((time.perf_counter() - start) / 60, 1), "before": args.before,
            "default_budget": default, "budgets": budgets, "map_variant": default_variant(), "size": LARGE}
    write_json_atomic(args.out / "crf_scale.json", {"meta": meta, "worlds": results}, indent=1)
    write_markdown(args.out / "crf_scale.md", results, meta)
    print((args.out / "crf_scale.md").read_text())


if __name__ == "__main__":
    main()
