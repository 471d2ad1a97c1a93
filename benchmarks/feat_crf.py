"""Probe: the dense CRF's appearance kernel on the detector's own FPN features (issue 26, third lead).

    .venv/bin/python -m benchmarks.feat_crf --out DIR [--images N] [--worlds ...]

The label chain decides object extent from colour (the CRF's bilateral kernel on RGB), which
fails where fills look like the background; the detector tells such objects apart, so its
features might separate them where colour does not. For every image of the worlds benchmark
(``benchmarks.worlds``: the first N val images of each world, its own detector, BBAM's maps
of the default variant cached under ``DIR/work``), the finest FPN level is reduced to a few
channels by PCA over the image's pixels and upsampled to the image; the CRF's pairwise terms
are then built from ``[xy / sxy, features / sfeat]`` in place of, or beside, the RGB kernel,
with the RGB kernel's reach (80 px) or a short one (5 px, the ``xy5`` variants).
Everything else is the default chain (``LabelSettings()``: shares 0.15 / 0.8, blur 1 cell,
Eq. 4 on RGB segments). BBAM and the filled box go through each variant; variants are chosen
by leave-one-world-out on BBAM's instance mIoU.

Writes ``DIR/NAME.json`` (scores per world, source and variant, per class) and ``DIR/NAME.md``
(``--name``, default ``feat_crf``). Features are cached under ``DIR/features`` (PCA dims at feature stride).
"""
from __future__ import annotations

import argparse
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from bbam_captum import load_detector
from bbam_captum.detectors.adapt import as_adapter
from bbam_captum.io import read_image
from bbam_captum.labels import LabelSettings, pseudo_masks, semantic_label
from bbam_captum.labels.crf import box_extent, box_posterior, crf_grid, densecrf_foreground
from bbam_captum.labels.settings import DenseCRFSettings
from bbam_captum.pipeline import RunLayout, read_coco
from bbam_captum.pipeline.generate import map_cells
from bbam_captum.utils.atomic import write_json_atomic

from .harness import markdown_table, start_run, write_markdown
from .worlds import BOX_VARIANT, MaskScore, box_maps, detector_files, first_images, true_masks, val_split

MAX_DIMS = 8  # PCA dims cached per image; variants take the leading ones


@dataclass(frozen=True)
class FeatureKernel:
    """The CRF's appearance terms: the RGB bilateral kernel (weight ``rgb_weight``, 0: none) and a
    bilateral kernel on ``dims`` PCA dims of the detector's features (width ``feat_std`` in units of
    the first component's spread, weight ``feat_weight``, 0: none), the feature kernel with the
    spatial width ``feat_xy_std`` (None: the RGB kernel's, ``DenseCRFSettings.bi_xy_std``)."""

    rgb_weight: float = DenseCRFSettings().bi_weight
    dims: int = 3
    feat_std: float = 0.3
    feat_weight: float = 0.0
    feat_xy_std: float | None = None


VARIANTS: dict[str, FeatureKernel] = {
    "rgb (default)": FeatureKernel(),
    "feat3 s0.1 (replaces rgb)": FeatureKernel(rgb_weight=0, dims=3, feat_std=0.1, feat_weight=4),
    "feat3 s0.3 (replaces rgb)": FeatureKernel(rgb_weight=0, dims=3, feat_std=0.3, feat_weight=4),
    "feat8 s0.3 (replaces rgb)": FeatureKernel(rgb_weight=0, dims=8, feat_std=0.3, feat_weight=4),
    "rgb + feat3 s0.1 w4": FeatureKernel(dims=3, feat_std=0.1, feat_weight=4),
    "rgb + feat3 s0.3 w4": FeatureKernel(dims=3, feat_std=0.3, feat_weight=4),
    "rgb + feat3 s0.3 w2": FeatureKernel(dims=3, feat_std=0.3, feat_weight=2),
    "rgb + feat8 s0.3 w4": FeatureKernel(dims=8, feat_std=0.3, feat_weight=4),
    # short reach: stride-4 features are smooth across edges, so the long kernel joins objects to their surround
    "rgb + feat3 s0.1 w4 xy5": FeatureKernel(dims=3, feat_std=0.1, feat_weight=4, feat_xy_std=5),
    "rgb + feat3 s0.3 w4 xy5": FeatureKernel(dims=3, feat_std=0.3, feat_weight=4, feat_xy_std=5),
    "rgb + feat8 s0.3 w4 xy5": FeatureKernel(dims=8, feat_std=0.3, feat_weight=4, feat_xy_std=5),
}
THIN_CLASSES = ("ring", "frame")


def reduce_features(fmap: torch.Tensor, dims: int) -> np.ndarray:
    """PCA of one feature map over its pixels: Tensor[C, h, w] -> np.ndarray[dims, h, w] float32,
    the leading components, all divided by the first one's standard deviation (so that widths are
    in units of the main spread and the components keep their relative weight)."""
    c, h, w = fmap.shape
    x = fmap.reshape(c, h * w).double()
    x = x - x.mean(1, keepdim=True)
    eigvals, eigvecs = torch.linalg.eigh(x @ x.T / (h * w))  # ascending
    top = eigvecs[:, -dims:].flip(1)  # [C, dims], largest first
    proj = top.T @ x
    proj = proj / proj[0].std().clamp_min(1e-12)
    return proj.reshape(dims, h, w).float().numpy()


@torch.no_grad()
def detector_features(adapter, image: torch.Tensor, dims: int = MAX_DIMS) -> np.ndarray:
    """The finest FPN level of the detector's input for ``image`` (Tensor[3, H, W] uint8 RGB, as BBAM
    preprocesses it), cut to the image's cells and reduced by :func:`reduce_features`:
    np.ndarray[dims, h, w] float32 (h, w: the image's extent at the level's stride)."""
    height, width = image.shape[-2:]
    features = adapter.features(image[None].float())
    fmap = features.maps[0][0]
    sx, sy = features.scale
    stride_y = features.input_shape[0] / fmap.shape[-2]
    stride_x = features.input_shape[1] / fmap.shape[-1]
    # the padding the divisor adds is no part of the image
    rows, cols = int(np.ceil(height * sy / stride_y)), int(np.ceil(width * sx / stride_x))
    return reduce_features(fmap[:, :rows, :cols].cpu(), dims)


def upsample_features(features: np.ndarray, height: int, width: int) -> np.ndarray:
    """Features at stride (D, h, w) -> (D, H, W) float32, bilinear."""
    up = F.interpolate(torch.from_numpy(features.astype(np.float32))[None], size=(height, width), mode="bilinear",
                       align_corners=False)
    return up[0].numpy()


class _FeatureCRF:
    """:class:`bbam_captum.labels.crf.ForegroundCRF` with the appearance terms of a :class:`FeatureKernel`."""

    def __init__(self, image: np.ndarray, features: np.ndarray, kernel: FeatureKernel,
                 settings: DenseCRFSettings) -> None:
        import pydensecrf.densecrf as dcrf

        h, w = image.shape[:2]
        self.iterations = settings.iterations
        self.crf = dcrf.DenseCRF2D(w, h, 2)
        self.crf.addPairwiseGaussian(sxy=settings.pos_xy_std, compat=settings.pos_weight)
        if kernel.rgb_weight:
            self.crf.addPairwiseBilateral(sxy=settings.bi_xy_std, srgb=settings.bi_rgb_std,
                                          rgbim=np.ascontiguousarray(image), compat=kernel.rgb_weight)
        if kernel.feat_weight:
            ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
            xy_std = settings.bi_xy_std if kernel.feat_xy_std is None else kernel.feat_xy_std
            feats = np.concatenate([np.stack([xs, ys]) / xy_std,
                                    features[:kernel.dims] / kernel.feat_std]).reshape(-1, h * w)
            self.crf.addPairwiseEnergy(np.ascontiguousarray(feats, dtype=np.float32), compat=kernel.feat_weight)

    def foreground(self, prob: np.ndarray) -> np.ndarray:
        return densecrf_foreground(self.crf, prob, self.iterations)


class FeatureCRFMasks:
    """A ``crf=`` for :func:`~bbam_captum.labels.pseudo_masks`: the box-wise CRF of
    :func:`~bbam_captum.labels.crf.crf_masks` (full resolution only) with a :class:`FeatureKernel`;
    the image's pairwise terms are built on the first call and reused (BBAM and the box, both shares)."""

    def __init__(self, features: np.ndarray, kernel: FeatureKernel) -> None:
        self.features, self.kernel, self.crf = features, kernel, None

    def __call__(self, maps: np.ndarray, boxes: np.ndarray, image: np.ndarray, top_share: float,
                 settings: DenseCRFSettings, blur_sigmas: np.ndarray) -> np.ndarray:
        h, w = image.shape[:2]
        if crf_grid(h, w, settings.max_pixels) != (h, w):
            raise ValueError("the probe infers at full resolution only")
        if self.crf is None:
            self.crf = _FeatureCRF(image, self.features, self.kernel, settings)
        masks = np.zeros(maps.shape, dtype=bool)
        for k, (map_, box, sigma) in enumerate(zip(maps, np.asarray(boxes, np.float64), blur_sigmas)):
            extent = box_extent(box, h, w)
            masks[k][extent] = box_posterior(map_, box, self.crf, top_share, settings, float(sigma), h * w)[extent] \
                > settings.keep
        return masks


def cache_features(world: str, out: Path, images: int) -> tuple[Path, tuple[str, ...]]:
    """Each image's reduced features (``MAX_DIMS``, at stride, float16) under ``out/features/world``,
    from the world's own detector (the one that made its maps); the folder and the detector's classes."""
    folder = out / "features" / world
    ann = val_split(world)
    model = load_detector(*detector_files(world))
    coco = first_images(read_coco(ann, tuple(model.dataset_meta["classes"])), images)
    missing = [i for i in coco.items if not (folder / f"{i.image_id}.npy").is_file()]
    if missing:
        folder.mkdir(parents=True, exist_ok=True)
        adapter = as_adapter(model)
        for item in tqdm(missing, desc=f"{world} features", leave=False):
            feats = detector_features(adapter, read_image(ann.parent / "images" / item.file_name))
            np.save(folder / f"{item.image_id}.npy", feats.astype(np.float16))
    return folder, tuple(model.dataset_meta["classes"])


def score_world(world: str, out: Path, images: int, variants: dict[str, FeatureKernel]) -> dict:
    """{source: {variant: score}} of the world's cached maps (BBAM) and the filled box."""
    ann = val_split(world)
    gt = json.loads(ann.read_text())
    feat_dir, class_names = cache_features(world, out, images)
    coco = first_images(read_coco(ann, class_names), images)
    class_of = dict(coco.class_of_category)
    maps_dir = out / "work" / world / BOX_VARIANT
    settings = LabelSettings()
    scores = {s: {v: MaskScore(class_names) for v in variants} for s in ("bbam", "box")}
    for item in tqdm(coco.items, desc=f"{world} scoring", leave=False):
        data = np.load(RunLayout(maps_dir).maps_file(item.image_id))
        boxes, classes = data["boxes"], data["classes"]
        true, truth = true_masks(gt, item.image_id, data["ann_ids"], item.height, item.width, class_of)
        image = read_image(ann.parent / "images" / item.file_name).permute(1, 2, 0).numpy()
        feats = upsample_features(np.load(feat_dir / f"{item.image_id}.npy"), item.height, item.width)
        cells = map_cells(data, item.height, item.width)
        maps_of = {"bbam": data["maps"].astype(np.float32), "box": box_maps(boxes, item.height, item.width)}
        for name, kernel in variants.items():
            crf = None if kernel == FeatureKernel() else FeatureCRFMasks(feats, kernel)  # the default: the library's
            for source, maps in maps_of.items():
                instance, foreground, uncertain = pseudo_masks(maps, boxes, settings, image, cells, crf=crf)
                label = semantic_label(foreground, uncertain, boxes, classes)
                scores[source][name].add(instance, true, label, truth, classes)
    return {s: {v: sc.result() for v, sc in by.items()} for s, by in scores.items()}


def leave_one_world_out(results: dict[str, dict]) -> dict[str, dict]:
    """For each world, the variant with the best mean BBAM instance mIoU on the other worlds, its
    score on the world left out and the default's."""
    def miou(world: str, variant: str) -> float:
        return results[world]["bbam"][variant]["instance_miou"]

    picks = {}
    variants = list(next(iter(results.values()))["bbam"])
    for held_out in results:
        others = [w for w in results if w != held_out]
        mean = {v: float(np.mean([miou(w, v) for w in others])) for v in variants}
        pick = max(mean, key=mean.get)
        picks[held_out] = {"variant": pick, "mean_on_others": mean[pick], "instance_miou": miou(held_out, pick),
                           "default_instance_miou": miou(held_out, "rgb (default)")}
    return picks


def report(results: dict[str, dict], picks: dict[str, dict], header: str) -> list[str]:
    lines = [header, "", "Instance / semantic mIoU (BBAM, box through the same chain) and ring / frame instance mIoU:",
             ""]
    rows = []
    for world, by_source in results.items():
        for variant in by_source["bbam"]:
            b, x = by_source["bbam"][variant], by_source["box"][variant]
            thin = [f"{b['class_instance_miou'].get(c, float('nan')):.3f} / "
                    f"{x['class_instance_miou'].get(c, float('nan')):.3f}" for c in THIN_CLASSES]
            rows.append([world, variant, f"{b['instance_miou']:.3f}", f"{b['semantic_miou']:.3f}",
                         f"{x['instance_miou']:.3f}", f"{x['semantic_miou']:.3f}", *thin])
    lines += markdown_table(["world", "variant", "BBAM instance", "BBAM semantic", "box instance", "box semantic",
                             *(f"{c} BBAM / box" for c in THIN_CLASSES)], rows)
    lines += ["", "Leave-one-world-out (chosen on BBAM's mean instance mIoU of the other worlds):", ""]
    lines += markdown_table(["left out", "pick", "mean on others", "its instance mIoU", "default's", "change"],
                            [[w, p["variant"], f"{p['mean_on_others']:.3f}", f"{p['instance_miou']:.3f}",
                              f"{p['default_instance_miou']:.3f}",
                              f"{p['instance_miou'] - p['default_instance_miou']:+.3f}"] for w, p in picks.items()])
    return lines


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, type=Path, help="the worlds benchmark's --out (its maps are reused)")
    parser.add_argument("--images", type=int, default=40)
    parser.add_argument("--worlds", nargs="+", default=["shapes", "camouflage", "photo"])
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--name", default="feat_crf", help="the tables' name: DIR/NAME.{json,md} (default: feat_crf)")
    args = parser.parse_args(argv)
    if args.images < 1:
        parser.error(f"--images must be >= 1, got {args.images}")
    if not args.name or Path(args.name).name != args.name or args.name in (".", ".."):
        parser.error(f"--name must be a plain file name (the tables go into --out), got {args.name!r}")
    run = start_run("benchmarks.feat_crf", argv, threads=1)
    variants = {v: VARIANTS[v] for v in dict.fromkeys(["rgb (default)", *args.variants])}
    results = {}
    for world in args.worlds:
        cache = args.out / "feat_crf_work" / f"{world}.json"
        key = {"images": args.images, "variants": {n: vars(k) for n, k in variants.items()}}
        if cache.is_file() and json.loads(cache.read_text())["key"] == key:
            results[world] = json.loads(cache.read_text())["scores"]
            continue
        results[world] = score_world(world, args.out, args.images, variants)
        cache.parent.mkdir(parents=True, exist_ok=True)
        write_json_atomic(cache, {"key": key, "scores": results[world]})
    picks = leave_one_world_out(results) if len(results) > 1 else {}
    meta = run.meta()
    write_json_atomic(args.out / f"{args.name}.json", {"meta": meta, "results": results, "picks": picks}, indent=1)
    header = f"# Dense CRF on the detector's features\n\n`{meta['command']}`; {meta['machine']}; {meta['date']}"
    print(write_markdown(args.out / f"{args.name}.md", report(results, picks, header)))


if __name__ == "__main__":
    main()
