"""Pseudo labels across worlds: every label chain on every synthetic world, BBAM against the box.

    .venv/bin/python -m benchmarks.worlds [--quick] [--images N] --out DIR

For each world of ``bbam_captum.synth.WORLDS`` with a detector (the bundled one for ``shapes``,
``bbam_captum/assets/worlds/NAME/`` for the others, made by ``make detector WORLD=NAME``),
BBAM explains every true box of the first N images of the world's val split (seed 1) with
the world's own detector. Every label chain (``CHAINS``) then turns the same maps into
instance masks and semantic labels, and the filled box goes through the same chain, so
that what the maps add can be told from what the chain gets from the box and the image.
Also reported: the raw maps cut at their best global threshold (an oracle: chosen on the
scored objects themselves, per world), and the filled box itself.

Defaults are chosen across worlds by leave-one-world-out: for each world, the chain with the
best mean instance mIoU on the other worlds is picked and scored on the world left out.

Writes ``DIR/worlds.json`` (one row per world, map variant and chain), ``DIR/worlds_meta.json``
(per world: detector, objects, box-fill IoU, raw-map oracle; the leave-one-world-out picks)
and ``DIR/worlds.md``. Maps and scores are cached under ``DIR/work``, so a stopped run resumes.
"""
from __future__ import annotations

import argparse
import hashlib
import json
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from bbam_captum import BBAM, BBAMSettings, load_detector
from bbam_captum.detectors import bundled_detector_files
from bbam_captum.io import decode_mask, read_image
from bbam_captum.labels import LabelSettings, pseudo_masks, semantic_label
from bbam_captum.labels.masks import smooth_maps
from bbam_captum.metrics import box_masks, mask_iou
from bbam_captum.metrics.pseudo_labels import box_fill_miou, confusion_miou
from bbam_captum.pipeline import RunLayout, compute_maps, read_coco
from bbam_captum.pipeline.coco_input import CocoInput
from bbam_captum.pipeline.generate import map_cells, recorded_seconds
from bbam_captum.synth import WORLDS, write_dataset
from bbam_captum.utils.atomic import write_json_atomic

from .harness import REPO, VAL_IMAGES, VAL_SEED, markdown_table, start_run, write_markdown
from .metrics import mask_ious

WORLD_ASSETS = REPO / "bbam_captum" / "assets" / "worlds"

# The label chains compared on every world; LabelSettings() is the pipeline's default.
# The CRF's prior is blurred by crf_blur mask cells of its box: 1 cell (the default) is the map's own
# resolution, 2/3 of BBAM's default cell the original's cell (its stride rule), 1/3 a narrower blur.
CRF_BLURS = {"1/3 cell": 1 / 3, "2/3 cell": 2 / 3, "1 cell": 1.0}
# The share of a box's most-attributed pixels that the CRF takes as certain foreground: chains without
# "top" in their name take the original's 0.15 (BBAM's masks keep what the detector needs, for a large
# solid object a small part of it, so larger shares are compared too).
ORIGINAL_FG_SHARE = 0.15
FG_SHARES = (0.25, 0.35)
# Chains whose name does not say "open holes" leave the masks' holes as the chain made them; those that
# do read the object's colours from a rim of the default width unless they name another (a share of
# the box's longer side: a wider rim keeps more of the object's edge out of the rule's reach).
DEFAULT_HOLE_RIM = LabelSettings().hole_rim
HOLE_RIMS = (0.12,)
_CRF = dict(crf=True, crf_fg_share=ORIGINAL_FG_SHARE, open_holes=False)
CHAINS: dict[str, LabelSettings] = {
    "thresholds": LabelSettings(crf=False, refine=False, open_holes=False),
    "thresholds + Eq. 4": LabelSettings(crf=False, refine=True, open_holes=False),
    **{f"dense CRF, blur {b}": LabelSettings(**_CRF, refine=False, crf_blur=v) for b, v in CRF_BLURS.items()},
    **{f"dense CRF + Eq. 4, blur {b}": LabelSettings(**_CRF, refine=True, crf_blur=v) for b, v in CRF_BLURS.items()},
    **{f"dense CRF + Eq. 4, blur 1 cell, top {share:g}": LabelSettings(**{**_CRF, "crf_fg_share": share},
                                                                       refine=True) for share in FG_SHARES},
    **{f"dense CRF + Eq. 4, blur 1 cell{top}, open holes{rim_name}": LabelSettings(
        **{**_CRF, "crf_fg_share": share, "open_holes": True, "hole_rim": rim}, refine=True)
       for top, share in (("", ORIGINAL_FG_SHARE), (", top 0.25", FG_SHARES[0]))
       for rim_name, rim in (("", DEFAULT_HOLE_RIM), *((f", rim {r:g}", r) for r in HOLE_RIMS))},
}
# BBAM settings compared on every world: the adaptive stride's range, i.e. how wide the mask
# cells are (the original's rule, 1.5 and 2 times it).
MAP_VARIANTS: dict[str, BBAMSettings] = {
    "cells x1": BBAMSettings(stride_range=(0.02, 0.08)),
    "cells x1.5": BBAMSettings(stride_range=(0.03, 0.12)),
    "cells x2": BBAMSettings(stride_range=(0.04, 0.16)),
}
RAW_THRESHOLDS = tuple(np.round(np.arange(0.02, 0.96, 0.02), 2).tolist())
RAW_BLURS = (0.0, 3.0)


def default_chain() -> str:
    default = LabelSettings()
    return next(name for name, settings in CHAINS.items() if settings == default)


def default_variant() -> str:
    """The map variant whose settings are BBAM's defaults."""
    return next(name for name, settings in MAP_VARIANTS.items() if settings == BBAMSettings())


BOX_VARIANT = default_variant()  # the filled box is scored once per world, beside BBAM's default maps


def detector_files(world: str) -> tuple[Path, Path] | None:
    """Config and checkpoint of the world's detector, or None when it has not been trained."""
    if world == "shapes":
        return bundled_detector_files()
    config, checkpoint = WORLD_ASSETS / world / "config.py", WORLD_ASSETS / world / "checkpoint.pth"
    return (config, checkpoint) if config.is_file() and checkpoint.is_file() else None


def val_split(world: str) -> Path:
    """The world's val split (seed 1, 300 images) under data/worlds/, drawn when missing."""
    ann = REPO / "data" / "worlds" / world / "val" / "annotations.json"
    if not ann.is_file():
        print(f"drawing the {world} val split ({VAL_IMAGES} images, seed {VAL_SEED})")
        write_dataset(ann.parent, VAL_IMAGES, VAL_SEED, WORLDS[world])
    return ann


def first_images(coco: CocoInput, count: int) -> CocoInput:
    """The ``count`` images of lowest id: the same subset on every run and machine."""
    return replace(coco, items=sorted(coco.items, key=lambda i: i.image_id)[:count])


class MaskScore:
    """Per-object IoUs (with each object's class) and a semantic confusion matrix, accumulated over images."""

    def __init__(self, class_names: tuple[str, ...]) -> None:
        self.class_names = class_names
        self.ious: list[float] = []
        self.classes: list[int] = []
        self.confusion = np.zeros((len(class_names) + 1, len(class_names) + 1), np.int64)

    def add(self, instance: np.ndarray, true: np.ndarray, label: np.ndarray, truth: np.ndarray,
            classes: np.ndarray) -> None:
        self.ious += mask_iou(torch.from_numpy(instance), torch.from_numpy(true)).tolist()
        self.classes += [int(c) for c in classes]
        n = len(self.confusion)
        as_background = np.where(label == 255, 0, label).astype(np.int64)  # ignored pixels count as background
        self.confusion += np.bincount(truth.ravel().astype(np.int64) * n + as_background.ravel(),
                                      minlength=n * n).reshape(n, n)

    def result(self) -> dict:
        ious, classes = np.array(self.ious), np.array(self.classes)
        by_class = {self.class_names[c]: float(ious[classes == c].mean()) for c in sorted(set(self.classes))}
        return {"instance_miou": float(np.mean(self.ious)), "semantic_miou": confusion_miou(self.confusion)[0],
                "class_instance_miou": by_class, "objects": len(self.ious), "ious": [round(v, 4) for v in self.ious]}


def true_masks(gt: dict, image_id: int, ann_ids: np.ndarray, height: int, width: int,
           class_of: dict[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """True masks of the explained boxes (K, H, W) and the image's semantic truth (H, W)."""
    anns = {a["id"]: a for a in gt["annotations"] if a["image_id"] == image_id}
    truth = np.zeros((height, width), np.uint8)
    for ann in anns.values():
        truth[decode_mask(ann["segmentation"], height, width)] = class_of[ann["category_id"]] + 1
    masks = np.stack([decode_mask(anns[int(i)]["segmentation"], height, width) for i in ann_ids]) if len(ann_ids) \
        else np.zeros((0, height, width), bool)
    return masks, truth


def chain_code_digest() -> str:
    """sha256 of the label chain's sources: cached scores are redone when a rule changes, not only its settings."""
    digest = hashlib.sha256()
    for source in sorted((REPO / "bbam_captum" / "labels").glob("*.py")):
        digest.update(source.read_bytes())
    return digest.hexdigest()


def box_maps(boxes: np.ndarray, height: int, width: int) -> np.ndarray:
    """The filled boxes as maps (K, H, W) float32: 1 inside each box, 0 outside."""
    return box_masks(torch.from_numpy(boxes), height, width).numpy().astype(np.float32)


def score_chains(coco: CocoInput, gt: dict, img_dir: Path, maps_dir: Path, chains: dict[str, LabelSettings],
                 class_of: dict[int, int], class_names: tuple[str, ...], with_box: bool) -> dict[str, dict[str, dict]]:
    """{source: {chain: score}} for BBAM's maps in ``maps_dir`` (and the filled box through the
    same chains with ``with_box``), and BBAM's raw maps at their best global threshold."""
    sources = ("bbam", "box") if with_box else ("bbam",)
    scores = {source: {name: MaskScore(class_names) for name in chains} for source in sources}
    raw = {(b, t): [] for b in RAW_BLURS for t in RAW_THRESHOLDS}
    for item in tqdm(coco.items, desc="scoring chains", unit="img", leave=False):
        data = np.load(RunLayout(maps_dir).maps_file(item.image_id))
        boxes, classes = data["boxes"], data["classes"]
        true, truth = true_masks(gt, item.image_id, data["ann_ids"], item.height, item.width, class_of)
        image = read_image(img_dir / item.file_name).permute(1, 2, 0).numpy()
        maps_of = {"bbam": data["maps"].astype(np.float32)}
        if with_box:
            maps_of["box"] = box_maps(boxes, item.height, item.width)
        cells = map_cells(data, item.height, item.width)  # the box goes through BBAM's cells too
        for source, maps in maps_of.items():
            for name, settings in chains.items():
                instance, foreground, uncertain = pseudo_masks(maps, boxes, settings, image, cells)
                label = semantic_label(foreground, uncertain, boxes, classes)
                scores[source][name].add(instance, true, label, truth, classes)
        for blur in RAW_BLURS:
            smoothed = smooth_maps(torch.from_numpy(maps_of["bbam"])[:, None], blur)
            ious = mask_ious(smoothed, torch.from_numpy(boxes), torch.from_numpy(true), RAW_THRESHOLDS)  # [T, K]
            for t, row in zip(RAW_THRESHOLDS, ious.tolist()):
                raw[blur, t] += row
    out = {source: {name: s.result() for name, s in by_chain.items()} for source, by_chain in scores.items()}
    (best_blur, best_t), best = max(raw.items(), key=lambda kv: np.mean(kv[1]))
    out["raw"] = {"best_threshold": {"instance_miou": float(np.mean(best)), "blur": best_blur, "threshold": best_t,
                                     "objects": len(best)}}
    return out


def run_world(world: str, out: Path, images: int, threads: int, variants: list[str]) -> dict | None:
    files = detector_files(world)
    if files is None:
        print(f"[{world}] no detector: run `make detector WORLD={world}` first; skipped")
        return None
    ann = val_split(world)
    gt = json.loads(ann.read_text())
    img_dir = ann.parent / "images"
    model = load_detector(*files)
    class_names = tuple(model.dataset_meta["classes"])
    coco = first_images(read_coco(ann, class_names), images)
    class_of = dict(coco.class_of_category)
    bbam = BBAM(model)
    result = {"world": world, "detector": str(files[1].relative_to(REPO)), "images": len(coco.items),
              "box_fill_miou_val_split": box_fill_miou(ann),
              "variants": {}}
    metrics_file = files[0].parent / "metrics.json"
    if metrics_file.is_file():
        final = json.loads(metrics_file.read_text()).get("final") or {}
        result["detector_bbox_ap50"] = final.get("coco/bbox_mAP_50")
        result["detector_bbox_ap"] = final.get("coco/bbox_mAP")
    for variant in variants:
        settings = MAP_VARIANTS[variant]
        work = out / "work" / world / variant
        cache = work / "scores.json"
        key = {"chains": {n: asdict(s) for n, s in CHAINS.items()}, "chain_code": chain_code_digest(),
               "settings": asdict(settings), "images": images, "raw": [RAW_BLURS, RAW_THRESHOLDS]}
        if cache.is_file() and json.loads(cache.read_text())["key"] == json.loads(json.dumps(key)):
            result["variants"][variant] = json.loads(cache.read_text())["scores"]
            continue
        torch.set_num_threads(threads)
        compute_maps(bbam, coco, img_dir, work, settings)
        scores = score_chains(coco, gt, img_dir, work, CHAINS, class_of, class_names, with_box=variant == BOX_VARIANT)
        # each image's own time, as its maps were made: a rerun that reuses them does not count as their cost
        times = [recorded_seconds(work, item.image_id) for item in coco.items]
        scores["map_seconds"] = round(sum(t for t in times if t is not None), 1)
        write_json_atomic(cache, {"key": key, "scores": scores})
        result["variants"][variant] = scores
    return result


def leave_one_world_out(results: dict[str, dict]) -> dict[str, dict]:
    """For each world, the (map variant, chain) with the best mean BBAM instance mIoU on the other
    worlds, and its score on the world left out."""
    def miou(world: str, variant: str, chain: str) -> float:
        return results[world]["variants"][variant]["bbam"][chain]["instance_miou"]

    candidates = [(v, c) for v in MAP_VARIANTS for c in CHAINS
                  if all(v in r["variants"] for r in results.values())]
    picks = {}
    for held_out in results:
        others = [w for w in results if w != held_out]
        if not others:
            continue
        mean = {vc: float(np.mean([miou(w, *vc) for w in others])) for vc in candidates}
        variant, chain = max(mean, key=mean.get)
        box = results[held_out]["variants"][BOX_VARIANT]["box"][chain]
        picks[held_out] = {"map_variant": variant, "chain": chain, "chosen_on": others,
                           "mean_on_others": mean[variant, chain], "instance_miou": miou(held_out, variant, chain),
                           "box_instance_miou": box["instance_miou"]}
    return picks


def rows_of(results: dict[str, dict]) -> list[dict]:
    default = (default_variant(), default_chain())
    rows = []
    for world, result in results.items():
        for variant, scores in result["variants"].items():
            for chain in CHAINS:
                bbam, box = scores["bbam"][chain], result["variants"][BOX_VARIANT]["box"][chain]
                rows.append({"world": world, "map_variant": variant, "chain": chain,
                             "default": (variant, chain) == default,
                             "bbam_instance_miou": bbam["instance_miou"], "bbam_semantic_miou": bbam["semantic_miou"],
                             "box_instance_miou": box["instance_miou"], "box_semantic_miou": box["semantic_miou"],
                             "margin_over_box": bbam["instance_miou"] - box["instance_miou"],
                             "bbam_class_instance_miou": bbam["class_instance_miou"],
                             "box_class_instance_miou": box["class_instance_miou"], "objects": bbam["objects"]})
    return rows


def write_report(path: Path, results: dict[str, dict], rows: list[dict], picks: dict[str, dict],
                 header: str) -> str:
    """``worlds.md``: the scores of every world, variant and chain, each world's choice, and the
    scores by class; returns the text."""
    lines = [header, "", "Instance / semantic mIoU of BBAM's labels and of the filled box through the same chain "
             f"(default chain in bold; the CRF takes a box's most-attributed pixels as certain foreground, the share "
             f"{ORIGINAL_FG_SHARE:g} (the original's) where the chain names no other as \"top\"; \"open holes\": the "
             "inner segments of a mask whose colours are likelier under its surroundings' than under its rim's are "
             "taken out):", ""]
    lines += markdown_table(
        ["world", "map variant", "chain", "BBAM instance", "BBAM semantic", "box instance", "box semantic", "margin"],
        [[r["world"], *((f"**{r['map_variant']}**", f"**{r['chain']}** (default)") if r["default"]
                        else (r["map_variant"], r["chain"])),
          f"{r['bbam_instance_miou']:.3f}", f"{r['bbam_semantic_miou']:.3f}", f"{r['box_instance_miou']:.3f}",
          f"{r['box_semantic_miou']:.3f}", f"{r['margin_over_box']:+.3f}"] for r in rows])
    lines.append("")
    lines += markdown_table(
        ["world", "detector bbox AP50", "objects", "filled box (val split)", "raw maps, best global threshold "
         "(oracle)", "leave-one-world-out choice", "its instance mIoU"],
        [_world_cells(world, result, picks.get(world)) for world, result in results.items()])
    lines += _class_table(rows, picks)
    return write_markdown(path, lines)


def _world_cells(world: str, result: dict, pick: dict | None) -> list[str]:
    """One world's cells in the table of choices: its detector, the filled box, the raw maps' oracle
    threshold and its leave-one-world-out pick."""
    raw = result["variants"][default_variant()]["raw"]["best_threshold"]
    ap50 = result.get("detector_bbox_ap50")
    picked = ([f"{pick['map_variant']}, {pick['chain']}",
               f"{pick['instance_miou']:.3f} (box {pick['box_instance_miou']:.3f})"] if pick else ["-", "-"])
    return [world, "-" if ap50 is None else str(ap50), str(raw["objects"]), f"{result['box_fill_miou_val_split']:.3f}",
            f"{raw['instance_miou']:.3f} (blur {raw['blur']:g}, {raw['threshold']:g})", *picked]


def _class_table(rows: list[dict], picks: dict[str, dict]) -> list[str]:
    """Instance mIoU per class of the default chain and of each world's leave-one-world-out pick
    (BBAM, and the filled box through the same chain)."""
    chosen = [r for r in rows if r["default"] or (r["world"] in picks and (r["map_variant"], r["chain"]) == (
        picks[r["world"]]["map_variant"], picks[r["world"]]["chain"]))]
    names = sorted({c for r in chosen for c in r["bbam_class_instance_miou"]})
    lines = ["", "Instance mIoU by class, BBAM / box through the same chain (the default chain, and each world's "
             "leave-one-world-out pick where it differs):", ""]
    table = []
    for r in chosen:
        bbam, box = r["bbam_class_instance_miou"], r["box_class_instance_miou"]
        lowest = min(bbam, key=bbam.get)
        table.append([r["world"], f"{r['map_variant']}, {r['chain']} ({'default' if r['default'] else 'pick'})",
                      *(f"{bbam[c]:.2f} / {box[c]:.2f}" if c in bbam else "-" for c in names),
                      f"{lowest} {bbam[lowest]:.2f}"])
    return lines + markdown_table(["world", "chain", *names, "lowest"], table)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--images", type=int, default=40, help="val images per world (default: 40)")
    parser.add_argument("--quick", action="store_true", help="3 images per world")
    parser.add_argument("--worlds", nargs="+", default=list(WORLDS), choices=list(WORLDS))
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--variants", nargs="+", default=list(MAP_VARIANTS), choices=list(MAP_VARIANTS),
                        help=f"map variants (default: all; the filled box is scored beside {BOX_VARIANT!r}, "
                             "which is always run)")
    args = parser.parse_args(argv)
    run = start_run("benchmarks.worlds", argv, threads=args.threads)
    variants = [BOX_VARIANT] + [v for v in args.variants if v != BOX_VARIANT]
    images = 3 if args.quick else args.images
    args.out.mkdir(parents=True, exist_ok=True)
    results = {}
    for world in args.worlds:
        result = run_world(world, args.out, images, args.threads, variants)
        if result is not None:
            results[world] = result
    rows = rows_of(results)
    picks = leave_one_world_out(results)
    map_minutes = sum(v.get("map_seconds", 0.0) for r in results.values() for v in r["variants"].values()) / 60
    meta = {**run.meta(), "map_minutes": round(map_minutes, 1),
            "default_chain": default_chain(), "default_map_variant": default_variant(), "leave_one_world_out": picks,
            "worlds": {w: {k: v for k, v in r.items() if k != "variants"}
                       | {"raw_best_threshold": r["variants"][default_variant()]["raw"]["best_threshold"],
                          "map_seconds": r["variants"][default_variant()].get("map_seconds")}
                       for w, r in results.items()}}
    write_json_atomic(args.out / "worlds.json", rows, indent=1)
    write_json_atomic(args.out / "worlds_meta.json", meta, indent=1)
    header = (f"# Pseudo labels across worlds\n\n`{meta['command']}`; {meta['machine']}; {meta['date']}; "
              f"BBAM maps {meta['map_minutes']} min in all (each world and variant once; later runs reuse "
              f"the cache under `work/`), this run {meta['minutes']} min. Choice: leave-one-world-out over "
              f"map variants and chains; BBAM's defaults are the variant in bold.")
    print(write_report(args.out / "worlds.md", results, rows, picks, header))


if __name__ == "__main__":
    main()
