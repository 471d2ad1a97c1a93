"""How the self-training round should turn a trained Mask R-CNN's masks into the next labels.

    .venv/bin/python -m benchmarks.self_labels --out DIR [--worlds photo,camouflage,shapes]

Reads what ``benchmarks.pipeline --sources bbam,bbam_self --out DIR`` left under
``DIR/work/WORLD``: the train split, BBAM's maps (``labels/bbam``) and the masks that bbam's
Mask R-CNN gives for the same boxes (``labels/bbam_self``). Scores, against the true masks of the
train split, BBAM's maps through the default chain (the labels the Mask R-CNN learnt from) and
the model's masks through each rule of :data:`RULES`, per world and per class; then picks a rule
leave-one-world-out (each world's pick made on the other worlds). Writes ``DIR/self_labels.{json,md}``.
"""
from __future__ import annotations

import argparse
import json
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np
from tqdm import tqdm

from bbam_captum.io import read_image
from bbam_captum.labels import LabelSettings, pseudo_masks, semantic_label
from bbam_captum.pipeline import RunLayout, read_coco
from bbam_captum.pipeline.generate import map_cells
from bbam_captum.utils.atomic import write_json_atomic

from .harness import markdown_table, start_run, write_markdown
from .pipeline import detector_files
from .worlds import MaskScore, true_masks

# the model's own decision (probability 0.5), with the band down to 0.2
CUT = LabelSettings(theta_fg=0.5, theta_bg=0.2, instance_threshold=0.5, blur_sigma=0.0, refine=False, crf=False)
RULES = {
    "model, cut at 0.5": CUT,
    "model, cut at 0.5, Eq. 4": replace(CUT, refine=True),
    "model, dense CRF": LabelSettings(refine=False),
    "model, default chain (CRF, Eq. 4)": LabelSettings(),
}
REFERENCE = "BBAM, default chain"  # the labels the teacher learnt from


def score_world(work: Path) -> dict[str, dict]:
    """{rule: score} on the train split under ``work`` (``benchmarks.pipeline``'s folder of one world)."""
    ann = work / "data" / "train" / "annotations.json"
    gt = json.loads(ann.read_text())
    from bbam_captum import load_detector

    class_names = tuple(load_detector(*detector_files(work.name)).dataset_meta["classes"])
    coco = read_coco(ann, class_names)
    class_of = dict(coco.class_of_category)
    sources = {REFERENCE: (work / "labels" / "bbam", {REFERENCE: LabelSettings()}),
               "model": (work / "labels" / "bbam_self", RULES)}
    scores = {name: MaskScore(class_names) for _, rules in sources.values() for name in rules}
    for item in tqdm(coco.items, desc=f"{work.name}: scoring rules", unit="img"):
        image = read_image(ann.parent / "images" / item.file_name).permute(1, 2, 0).numpy()
        for folder, rules in sources.values():
            data = np.load(RunLayout(folder).maps_file(item.image_id))
            boxes, classes = data["boxes"], data["classes"]
            true, truth = true_masks(gt, item.image_id, data["ann_ids"], item.height, item.width, class_of)
            cells = map_cells(data, item.height, item.width)
            for name, settings in rules.items():
                instance, foreground, uncertain = pseudo_masks(data["maps"].astype(np.float32), boxes, settings, image,
                                                               cells)
                scores[name].add(instance, true, semantic_label(foreground, uncertain, boxes, classes), truth, classes)
    return {name: {k: v for k, v in s.result().items() if k != "ious"} for name, s in scores.items()}


def leave_one_world_out(results: dict[str, dict]) -> dict[str, str]:
    """Each world's rule, picked by the mean instance mIoU over the other worlds."""
    picks = {}
    for world in results:
        others = [w for w in results if w != world] or [world]
        picks[world] = max(RULES, key=lambda r: np.mean([results[w][r]["instance_miou"] for w in others]))
    return picks


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--worlds", default="photo,camouflage,shapes")
    args = parser.parse_args(argv)
    info = start_run("benchmarks.self_labels", argv)
    results = {}
    for world in [w for w in args.worlds.split(",") if w]:
        work = args.out / "work" / world
        if not RunLayout(work / "labels" / "bbam_self").maps_dir.is_dir():
            print(f"[{world}] no self-training maps: run benchmarks.pipeline --world {world} --sources bbam_self first")
            continue
        results[world] = score_world(work)
    picks = leave_one_world_out(results)
    write_json_atomic(args.out / "self_labels.json", {"results": results, "picks": picks,
                                                      "rules": {n: asdict(s) for n, s in RULES.items()},
                                                      **info.meta()}, indent=1)
    names = [REFERENCE, *RULES]
    lines = [f"Self-training labels on the train splits of benchmarks.pipeline ({info.device}, {info.meta()['date']}): "
             "instance mIoU against the true masks of the teacher's own train images.", ""]
    overall = [[w, *(f"{r[n]['instance_miou']:.3f}" for n in names), picks[w]] for w, r in results.items()]
    lines += markdown_table(["world", *names, "pick (other worlds)"], overall)
    lines += ["", "By class (instance mIoU):", ""]
    for world, result in results.items():
        classes = list(result[REFERENCE]["class_instance_miou"])
        lines += [f"{world}:", ""]
        by_class = [[n, *(f"{result[n]['class_instance_miou'][c]:.3f}" for c in classes)] for n in names]
        lines += markdown_table(["rule", *classes], by_class)
        lines += [""]
    print(write_markdown(args.out / "self_labels.md", lines))


if __name__ == "__main__":
    main()
