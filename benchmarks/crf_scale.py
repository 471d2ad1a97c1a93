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

The CRFs: :func:`crf_masks` with ``max_pixels`` set to each of ``--budgets`` (the default budget
marked; 0: the whole image at full resolution). Each is compared with the full-resolution CRF
(``max_pixels=0``, run as the reference whether or not it is among the budgets): mean IoU of each
box's mask with it, and whether every mask is the same. Seconds per box: one ``crf_masks`` call
(the foreground share, the prior of one mask) per box, on one thread.

The committed run (``benchmarks/results/crf_scale.*``) also timed the CRF as it was at db87541
(the whole image at full resolution, the prior blurred over the whole image with a square kernel):
6-7 s per box at 800 px, against 0.9 s for the full-resolution CRF now, with masks of IoU 0.99998+
with it. That revision's code is not kept here, so that column is not rerun; its figures stay in
the committed results.

Writes ``DIR/crf_scale.json`` and ``DIR/crf_scale.md``.
"""
from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from bbam_captum.io.images import read_image
from bbam_captum.labels import CRFMasks, LabelSettings, pseudo_masks, semantic_label
from bbam_captum.labels.crf import DenseCRFSettings, crf_grid, crf_masks
from bbam_captum.labels.refine import refine_masks, segment_pools
from bbam_captum.pipeline import RunLayout, read_coco
from bbam_captum.pipeline.generate import map_cells
from bbam_captum.synth import CLASSES, WORLDS
from bbam_captum.utils.atomic import write_json_atomic

from .harness import Timed, markdown_table, start_run, write_markdown
from .worlds import MaskScore, default_variant, first_images, true_masks, val_split

LARGE = 800
BUDGETS = (0, 512 * 512)
REFERENCE = "full resolution"  # the CRF every other is compared with: max_pixels=0

#: ``(maps, boxes, image, top_share, blur_sigmas) -> masks``: a CRF compared here, with its own budget
CrfFn = Callable[[np.ndarray, np.ndarray, np.ndarray, float, np.ndarray], np.ndarray]


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


def budgeted(budget: int) -> CrfFn:
    """:func:`crf_masks` with ``max_pixels=budget``."""
    settings = replace(DenseCRFSettings(), max_pixels=budget)

    def crf(maps: np.ndarray, boxes: np.ndarray, image: np.ndarray, top_share: float,
            blur_sigmas: np.ndarray) -> np.ndarray:
        return crf_masks(maps, boxes, image, top_share, settings, blur_sigmas)

    return crf


def as_chain_crf(fn: CrfFn) -> CRFMasks:
    """``fn`` as the label chain's CRF (:func:`pseudo_masks`' ``crf``): each CRF compared here brings
    its own budget, so the chain's CRF settings are left aside; the blur widths are the chain's."""

    def crf(maps: np.ndarray, boxes: np.ndarray, image: np.ndarray, top_share: float, settings: DenseCRFSettings,
            blur_sigmas: np.ndarray) -> np.ndarray:
        return fn(maps, boxes, image, top_share, blur_sigmas)

    return crf


def score_world(world: str, maps_dir: Path, images: int, large_boxes: int, crfs: dict[str, CrfFn]) -> dict:
    ann = val_split(world)
    gt = json.loads(ann.read_text())
    coco = first_images(read_coco(ann, CLASSES), images)
    class_of = dict(coco.class_of_category)
    settings = LabelSettings()
    n = CLASSES
    small = {name: {"crf": MaskScore(n), "crf + Eq. 4": MaskScore(n), "default chain": MaskScore(n), "timer": Timed(fn),
                    "masks": []} for name, fn in crfs.items()}
    large = {name: {"crf": MaskScore(n), "crf + Eq. 4": MaskScore(n), "timer": Timed(fn), "masks": []}
             for name, fn in crfs.items()}
    large_images = 0
    for item in coco.items:
        data = np.load(RunLayout(maps_dir).maps_file(item.image_id))
        maps, boxes, classes = data["maps"].astype(np.float32), data["boxes"], data["classes"]
        true, truth = true_masks(gt, item.image_id, data["ann_ids"], item.height, item.width, class_of)
        image = np.ascontiguousarray(read_image(ann.parent / "images" / item.file_name).permute(1, 2, 0).numpy())
        pools = segment_pools(image)
        cells = map_cells(data, item.height, item.width)  # the label chain's blur: crf_blur of each map's cells
        sigmas = settings.crf_blur * cells
        for name, s in small.items():
            instance = s["timer"](maps, boxes, image, settings.crf_fg_share, sigmas)
            s["masks"].append(instance)
            s["crf"].add(instance, true, np.zeros_like(truth), truth, classes)
            s["crf + Eq. 4"].add(refine_masks(instance, boxes, pools), true, np.zeros_like(truth), truth, classes)
            instance, foreground, uncertain = pseudo_masks(maps, boxes, settings, image, cells,
                                                           crf=as_chain_crf(crfs[name]))
            label = semantic_label(foreground, uncertain, boxes, classes)
            s["default chain"].add(instance, true, label, truth, classes)
        if boxes_seen(large[next(iter(large))]) >= large_boxes:
            continue
        large_images += 1
        big, big_maps, big_true, big_boxes = upscale(image, maps, true, boxes, LARGE)
        pools = segment_pools(big)
        blank = np.zeros(big.shape[:2], np.uint8)  # no semantic score at this size
        big_sigmas = sigmas * big.shape[0] / image.shape[0]  # the cells grow with the image
        for name, s in large.items():
            instance = s["timer"](big_maps, big_boxes, big, settings.crf_fg_share, big_sigmas)
            s["masks"].append(instance)
            s["crf"].add(instance, big_true, blank, blank, classes)
            s["crf + Eq. 4"].add(refine_masks(instance, big_boxes, pools), big_true, blank, blank, classes)
        print(f"[{world}] image {item.image_id}: " + ", ".join(
            f"{name} {s['timer'].seconds / boxes_seen(s):.2f} s/box" for name, s in large.items()), flush=True)
    return {"world": world, "images": len(coco.items), "large_images": large_images,
            "small": _summary(small, semantic=True), "large": _summary(large, semantic=False) if large_images else {}}


def boxes_seen(run: dict) -> int:
    """The boxes a run's timer has seen: its ``masks`` hold one mask each."""
    return sum(len(masks) for masks in run["masks"])


def agreement(masks: list[np.ndarray], reference: list[np.ndarray]) -> tuple[float, bool]:
    """Mean IoU of each box's mask with the reference's (per image ``(K, H, W)`` bool; NaN
    without boxes), and whether every mask is the same."""
    ious = [float((a & b).sum() / max((a | b).sum(), 1)) for m, r in zip(masks, reference) for a, b in zip(m, r)]
    return (float(np.mean(ious)) if ious else float("nan")), all(np.array_equal(m, r) for m, r in zip(masks, reference))


def _summary(runs: dict[str, dict], semantic: bool) -> dict[str, dict]:
    reference = runs[REFERENCE]["masks"]
    out = {}
    for name, s in runs.items():
        mean_iou, identical = agreement(s["masks"], reference)
        row = {"boxes": boxes_seen(s), "seconds_per_box": s["timer"].seconds / max(boxes_seen(s), 1),
               "crf_instance_miou": s["crf"].result()["instance_miou"],
               "crf_eq4_instance_miou": s["crf + Eq. 4"].result()["instance_miou"],
               "iou_with_full_resolution": mean_iou, "identical_to_full_resolution": identical}
        if semantic:
            chain = s["default chain"].result()
            row |= {"chain_instance_miou": chain["instance_miou"], "chain_semantic_miou": chain["semantic_miou"]}
        out[name] = row
    return out


def write_report(path: Path, results: list[dict], meta: dict) -> str:
    """``crf_scale.md``: one table per size, a row per world and CRF; returns the text."""
    lines = [f"# The dense CRF at scale\n\n`{meta['command']}`; {meta['machine']}; {meta['date']}; "
             f"{meta['minutes']} min. max_pixels=N: the CRF's pixel budget (0: full resolution; default "
             f"{meta['default_budget']}); grid: the pixels the CRF infers on. Seconds per box: one "
             f"CRF mask (foreground share) per box, one thread beside other jobs. 'IoU with full resolution': mean "
             f"IoU of each box's mask with the full-resolution CRF's.", ""]
    titles = (("large", f"{LARGE} px (the val images upscaled {LARGE}/192)"), ("small", "192 px (val split)"))
    for size, title in titles:
        side = LARGE if size == "large" else 192
        chain = ["default chain instance / semantic"] if size == "small" else []
        lines += [f"## {title}", ""]
        lines += markdown_table(
            ["world", "CRF", "grid", "boxes", "s / box", "CRF instance mIoU", "CRF + Eq. 4 instance mIoU", *chain,
             "IoU with full resolution", "same masks"],
            [[r["world"], name, "x".join(map(str, crf_grid(side, side, meta["budgets"][name]))), row["boxes"],
              f"{row['seconds_per_box']:.3f}", f"{row['crf_instance_miou']:.3f}", f"{row['crf_eq4_instance_miou']:.3f}",
              *([f"{row['chain_instance_miou']:.3f} / {row['chain_semantic_miou']:.3f}"] if chain else []),
              f"{row['iou_with_full_resolution']:.3f}", "yes" if row["identical_to_full_resolution"] else "no"]
             for r in results for name, row in r[size].items()])
        lines.append("")
    return write_markdown(path, lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, type=Path, help="the worlds benchmark's --out (maps under work/)")
    parser.add_argument("--worlds", nargs="+", default=list(WORLDS), choices=list(WORLDS))
    parser.add_argument("--images", type=int, default=40, help="val images per world at 192 px (default: 40)")
    parser.add_argument("--large-boxes", nargs="+", type=int, default=[36],
                        help=f"boxes per world at {LARGE} px, one number or one per world (default: 36)")
    parser.add_argument("--budgets", nargs="+", type=int, default=list(BUDGETS), help="max_pixels values")
    args = parser.parse_args(argv)
    large_boxes = args.large_boxes * len(args.worlds) if len(args.large_boxes) == 1 else args.large_boxes
    if len(large_boxes) != len(args.worlds):
        parser.error(f"--large-boxes takes one number or one per world ({len(args.worlds)}), got {args.large_boxes}")
    torch.set_num_threads(1)
    run = start_run("benchmarks.crf_scale", argv)
    default = DenseCRFSettings().max_pixels
    budgets = {REFERENCE: 0} | {f"max_pixels={b}" + (" (default)" if b == default else ""): b
                                for b in args.budgets if b != 0}
    crfs: dict[str, CrfFn] = {name: budgeted(budget) for name, budget in budgets.items()}
    results = [score_world(world, args.out / "work" / world / default_variant(), args.images, n, crfs)
               for world, n in zip(args.worlds, large_boxes)]
    meta = {**run.meta(), "reference": REFERENCE, "default_budget": default, "budgets": budgets,
            "map_variant": default_variant(), "size": LARGE}
    write_json_atomic(args.out / "crf_scale.json", {"meta": meta, "worlds": results}, indent=1)
    print(write_report(args.out / "crf_scale.md", results, meta))


if __name__ == "__main__":
    main()
