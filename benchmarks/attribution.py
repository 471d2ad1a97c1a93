"""Attribution benchmark: BBAM against Grad-CAM and peers, on data with true masks.

    .venv/bin/python -m benchmarks.attribution [--quick] --out DIR

Every method explains the bundled detector (or ``--config/--checkpoint``) for each true
box of the synthetic val split (or ``--ann/--img-dir``) and its true class. The images
are split in two: thresholds are calibrated on the first half, metrics reported on the
second. ``mask_miou`` scores each method's thresholded map (blurred, cut inside the box);
beside it, every method's maps go through the label pipeline's post-processing alike:
``mask_miou_refined`` adds the mask-proposal refinement of Eq. 4, ``mask_miou_crf`` is the
pipeline's default chain (the box-wise dense CRF, its share of certain foreground calibrated
like the threshold, and Eq. 4 after it where the pipeline refines by default). Writes
``DIR/attribution.json`` (one row per method), ``DIR/attribution.md`` and ``DIR/attribution.png``.
Per-image results and maps are cached under ``DIR/cache``, so a stopped run resumes.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from tqdm import tqdm  # noqa: E402

from bbam_captum import load_detector  # noqa: E402
from bbam_captum.io import load_coco_image  # noqa: E402
from bbam_captum.labels import LabelSettings, instance_masks, refine_masks, segment_pools, smooth_maps  # noqa: E402
from bbam_captum.labels.crf import crf_masks  # noqa: E402
from bbam_captum.metrics import mask_iou  # noqa: E402
from bbam_captum.pipeline.generate import map_cells  # noqa: E402
from bbam_captum.utils.atomic import atomic_open  # noqa: E402
from bbam_captum.detectors import MMDetTwoStageAdapter  # noqa: E402

from .harness import DEFAULT_ANN, ensure_val_split, markdown_table, peak_memory, start_run, write_markdown  # noqa: E402
from .methods import box_score, default_methods  # noqa: E402
from .metrics import (calibrate_threshold, deletion_insertion_auc, energy_pointing_game,  # noqa: E402
                      mask_ious, size_bucket, THRESHOLDS)

FIGURE_OBJECTS = 4
# shares of a box's most-attributed pixels the CRF takes as certain foreground (the label
# pipeline's default, 0.15, among them); calibrated per method like the thresholds
CRF_SHARES = (0.05, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)
VARIANTS = {"thresholded": ("ious", THRESHOLDS), "refined": ("ious_refined", THRESHOLDS),
            "crf": ("ious_crf", CRF_SHARES)}  # mask variant: (cache key, the grid it is calibrated on)


def refined_masks(smoothed: torch.Tensor, boxes: torch.Tensor, threshold: float,
                  pools: list[np.ndarray]) -> np.ndarray:
    """Blurred maps ``Tensor[K, 1, H, W]`` thresholded inside their boxes and refined (Eq. 4):
    ``np.ndarray[K, H, W]`` bool."""
    return refine_masks(instance_masks(smoothed, boxes, threshold).numpy(), boxes.tolist(), pools)


def pipeline_masks(maps: torch.Tensor, boxes: torch.Tensor, image: torch.Tensor, share: float,
                   pools: list[np.ndarray]) -> np.ndarray:
    """The label pipeline's default chain on maps ``Tensor[K, 1, H, W]``: the dense CRF with
    ``share`` certain foreground, its prior blurred as the pipeline blurs maps without BBAM's records
    (``crf_blur`` of the default stride rule's cells), then Eq. 4 where the pipeline refines:
    ``np.ndarray[K, H, W]`` bool."""
    settings = LabelSettings()
    sigmas = settings.crf_blur * map_cells({"boxes": boxes.numpy()}, *image.shape[-2:])
    masks = crf_masks(maps[:, 0].numpy(), boxes.numpy(), np.ascontiguousarray(image.permute(1, 2, 0).numpy()), share,
                      blur_sigmas=sigmas)
    return refine_masks(masks, boxes.tolist(), pools) if settings.refine else masks


def scored_mask(map_: np.ndarray, box: torch.Tensor, row: dict) -> np.ndarray:
    """The mask ``mask_miou`` scores for one map ``np.ndarray[1, H, W]``: thresholded at the row's threshold."""
    smoothed = smooth_maps(torch.from_numpy(map_)[None], LabelSettings().blur_sigma)
    return instance_masks(smoothed, box[None], row["threshold"])[0].numpy()


def postprocess(maps: torch.Tensor, image: torch.Tensor, boxes: torch.Tensor, true: torch.Tensor,
                pools: list[np.ndarray]) -> dict:
    """Every mask variant's IoUs for one image's maps, one row per point of its grid
    (``Tensor[T, K]``), and the seconds Eq. 4 and the CRF took."""
    smoothed = smooth_maps(maps, LabelSettings().blur_sigma)
    start = time.perf_counter()
    refined = [refined_masks(smoothed, boxes, t, pools) for t in THRESHOLDS]
    refine_seconds = time.perf_counter() - start
    start = time.perf_counter()
    crf = [pipeline_masks(maps, boxes, image, share, pools) for share in CRF_SHARES]
    crf_seconds = time.perf_counter() - start
    ious = lambda masks: torch.stack([mask_iou(torch.from_numpy(m), true) for m in masks])  # noqa: E731
    return {"ious": mask_ious(smoothed, boxes, true), "ious_refined": ious(refined), "ious_crf": ious(crf),
            "refine_seconds": refine_seconds, "crf_seconds": crf_seconds}


def evaluate_image(method, adapter: MMDetTwoStageAdapter, image: torch.Tensor, boxes: torch.Tensor,
                   labels: torch.Tensor, true: torch.Tensor, pools: list[np.ndarray]) -> dict:
    """One method on one image: its maps (kept, so that post-processing can be redone from the
    cache), per-object metrics, time and memory. Every method's maps are post-processed alike
    (:func:`postprocess`)."""
    start = time.perf_counter()
    with peak_memory(adapter.device) as peak:
        maps = method(adapter, image, boxes, labels).float().cpu()
    seconds = time.perf_counter() - start
    maps = maps.half().float()  # scored as cached, so that post-processing redone from the cache agrees
    epg = energy_pointing_game(maps, true)
    del_ins = [deletion_insertion_auc(box_score(adapter, box, int(c)), image, m[0], adapter.pixel_mean())
               for box, c, m in zip(boxes, labels, maps)]
    return {**postprocess(maps, image, boxes, true, pools),
            "epg": epg, "deletion": torch.tensor([d for d, _ in del_ins]),
            "insertion": torch.tensor([i for _, i in del_ins]), "sizes": [size_bucket(b) for b in boxes],
            "seconds": seconds, "peak_mem_mb": peak.mb, "maps": maps.half()}


def _calibrated(variant: str, calib: list[dict], test: list[dict]) -> tuple[float, torch.Tensor]:
    """The grid point (threshold or CRF share) with the best mean IoU on the calibration images,
    and the test objects' IoUs at it."""
    key, grid = VARIANTS[variant]
    cat = lambda rs: torch.cat([r[key] for r in rs], -1)  # noqa: E731
    point = calibrate_threshold(cat(calib), grid) if calib else grid[len(grid) // 2]
    return point, cat(test)[grid.index(point)]


def summarise(name: str, calib: list[dict], test: list[dict]) -> dict:
    """One table row. ``mask_miou`` scores the thresholded maps; ``mask_miou_refined`` and
    ``mask_miou_crf`` the label pipeline's post-processing of them (each calibrated alike)."""
    cat = lambda key, rs: torch.cat([r[key] for r in rs], -1)  # noqa: E731
    sizes = [s for r in test for s in r["sizes"]]
    everything = calib + test
    objects = sum(len(r["sizes"]) for r in everything)
    per_object = lambda key: sum(r[key] for r in everything) / max(objects, 1)  # noqa: E731
    row = {"method": name}
    for variant in VARIANTS:
        point, ious = _calibrated(variant, calib, test)
        suffix = "" if variant == "thresholded" else f"_{variant}"
        row[f"mask_miou{suffix}"] = float(ious.mean())
        row["crf_share" if variant == "crf" else f"threshold{suffix}"] = point
        for bucket in ("small", "medium", "large"):
            picked = [float(i) for i, s in zip(ious, sizes) if s == bucket]
            row[f"mask_miou_{bucket}{suffix}"] = float(np.mean(picked)) if picked else None
            if variant == "thresholded":
                row[f"objects_{bucket}"] = len(picked)
    row.update({
        "energy_pointing_game": float(cat("epg", test).mean()),
        "deletion_auc": float(cat("deletion", test).mean()),
        "insertion_auc": float(cat("insertion", test).mean()),
        "sec_per_object": per_object("seconds"),
        "refine_sec_per_object": per_object("refine_seconds") / len(THRESHOLDS),
        "crf_sec_per_object": per_object("crf_seconds") / len(CRF_SHARES),
        "peak_mem_mb": max(r["peak_mem_mb"] for r in everything),
        "test_objects": len(sizes),
        "objects": objects,
    })
    return row


def write_table(rows: list[dict], path: Path, header: str) -> str:
    """``attribution.md``: the header and one table row per method; returns the text."""
    cols = ["method", "mask_miou", "mask_miou_small", "mask_miou_medium", "mask_miou_large", "mask_miou_refined",
            "mask_miou_crf", "mask_miou_small_crf", "energy_pointing_game", "deletion_auc", "insertion_auc",
            "sec_per_object", "peak_mem_mb", "threshold", "threshold_refined", "crf_share"]
    fmt = lambda v: "-" if v is None else f"{v:.3f}" if isinstance(v, float) else str(v)  # noqa: E731
    return write_markdown(path, [header, "", *markdown_table(cols, [[fmt(r.get(c)) for c in cols] for r in rows])])


def write_figure(examples: list[tuple], names: list[str], maps_by_method: dict, masks_by_method: dict,
                 path: Path) -> None:
    """Rows: test objects; columns: image with box, true mask, each method's map with the mask
    it is scored on outlined in white."""
    cols = 2 + len(names)
    fig, axes = plt.subplots(len(examples), cols, figsize=(1.6 * cols, 1.7 * len(examples)), squeeze=False)
    for row, (image, box, true, label, key) in enumerate(examples):
        rgb = image.permute(1, 2, 0).numpy()
        x1, y1, x2, y2 = box.tolist()
        axes[row, 0].imshow(rgb)
        axes[row, 0].add_patch(plt.Rectangle((x1, y1), x2 - x1, y2 - y1, fill=False, color="yellow", lw=1.2))
        axes[row, 1].imshow(true, cmap="gray")
        for col, name in enumerate(names):
            axes[row, 2 + col].imshow(rgb, alpha=0.35)
            axes[row, 2 + col].imshow(maps_by_method[name][key][0], cmap="jet", alpha=0.65, vmin=0, vmax=1)
            if masks_by_method[name][key].any():
                axes[row, 2 + col].contour(masks_by_method[name][key], levels=[0.5], colors="white", linewidths=0.6)
        if row == 0:
            for col, title in enumerate(["image", "true mask", *names]):
                axes[0, col].set_title(title.replace("_", " "), fontsize=6)
        axes[row, 0].set_ylabel(label, fontsize=6)
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    fig.tight_layout()
    fig.savefig(path, dpi=130)
    plt.close(fig)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True)
    parser.add_argument("--quick", action="store_true", help="a few images and fewer BBAM steps")
    parser.add_argument("--num-images", type=int, default=None, help="images used (default: 4 quick, 40 full)")
    parser.add_argument("--ann", default=str(DEFAULT_ANN))
    parser.add_argument("--img-dir", default=None, help="default: images/ beside --ann")
    parser.add_argument("--config", default=None)
    parser.add_argument("--checkpoint", default=None)
    parser.add_argument("--methods", nargs="*", default=None, help="only these methods")
    parser.add_argument("--bbam-steps", type=int, default=None, help="override BBAM's steps (for smoke tests)")
    args = parser.parse_args(argv)

    out = Path(args.out)
    (out / "cache").mkdir(parents=True, exist_ok=True)
    ann_path = ensure_val_split(Path(args.ann))
    img_dir = Path(args.img_dir) if args.img_dir else ann_path.parent / "images"
    ann = json.loads(ann_path.read_text())
    num = args.num_images or (4 if args.quick else 40)
    infos = [i for i in ann["images"] if any(a["image_id"] == i["id"] for a in ann["annotations"])][:num]
    calib_ids = {i["id"] for i in infos[: len(infos) // 2]}
    adapter = MMDetTwoStageAdapter(load_detector(args.config, args.checkpoint))
    run = start_run("benchmarks.attribution", argv, adapter.device)
    methods = [m for m in default_methods(args.quick, args.bbam_steps) if not args.methods or m.name in args.methods]
    data = {i["id"]: load_coco_image(ann, i, img_dir) for i in infos}
    figure_keys = [(i["id"], k) for i in infos if i["id"] not in calib_ids
                   for k in range(len(data[i["id"]][1]))][:FIGURE_OBJECTS]

    start = time.perf_counter()
    rows, maps_by_method, pools = [], {}, {}
    for method in methods:
        calib, test, kept = [], [], {}
        for info in tqdm(infos, desc=method.name, unit="img"):
            cache = out / "cache" / f"{method.name}_{info['id']}.pt"
            image, boxes, labels, true = data[info["id"]]
            result = torch.load(cache, weights_only=True) if cache.exists() else None
            fresh = result is None or result.get("maps") is None  # absent, or cached before maps were kept
            if fresh or any(key not in result for key, _ in VARIANTS.values()):
                if info["id"] not in pools:  # mask proposals for the refinement, shared by all methods
                    pools[info["id"]] = segment_pools(image.permute(1, 2, 0).numpy())
                if fresh:
                    result = evaluate_image(method, adapter, image, boxes, labels, true, pools[info["id"]])
                else:  # a post-processing added since: redone from the cached maps
                    result.update(postprocess(result["maps"].float(), image, boxes, true, pools[info["id"]]))
                with atomic_open(cache) as f:
                    torch.save(result, f)
            (calib if info["id"] in calib_ids else test).append(result)
            for (image_id, k) in figure_keys:
                if image_id == info["id"]:
                    kept[(image_id, k)] = result["maps"][k].float().numpy()
        rows.append(summarise(method.name, calib, test))
        maps_by_method[method.name] = kept
    elapsed = time.perf_counter() - start

    meta = {**run.meta(), "images": len(infos), "calibration_images": len(calib_ids),
            "seconds_this_invocation": round(elapsed, 1),
            # per-image results are cached, so a resumed run's wall time says little: this is the
            # methods' own time (maps only, metrics left out) summed over all images
            "method_seconds": round(sum(r["sec_per_object"] * r["objects"] for r in rows), 1)}
    (out / "attribution.json").write_text(json.dumps(rows, indent=1))
    (out / "attribution_meta.json").write_text(json.dumps(meta, indent=1))
    header = (f"Attribution benchmark: {meta['images']} images ({meta['calibration_images']} for threshold "
              f"calibration, the rest for the metrics), {meta['device']}, {meta['date']}; "
              "mask_miou: the thresholded maps, mask_miou_refined: with Eq. 4, mask_miou_crf: the label pipeline's "
              f"default (dense CRF{', then Eq. 4' if LabelSettings().refine else ''}); "
              f"the methods' own time {meta['method_seconds'] / 60:.0f} min, "
              f"this invocation {meta['seconds_this_invocation'] / 60:.0f} min "
              "(per-image results cached).")
    table = write_table(rows, out / "attribution.md", header)
    examples, masks_by_method = [], {row["method"]: {} for row in rows}
    for image_id, k in figure_keys:
        image, boxes, labels, true = data[image_id]
        examples.append((image, boxes[k], true[k].numpy(), f"img {image_id} #{k}", (image_id, k)))
        for row in rows:
            masks_by_method[row["method"]][(image_id, k)] = scored_mask(
                maps_by_method[row["method"]][(image_id, k)], boxes[k], row)
    if examples:
        write_figure(examples, [m.name for m in methods], maps_by_method, masks_by_method, out / "attribution.png")
    print(table)


if __name__ == "__main__":
    main()
