"""Zoo check: BBAM on every two-stage detector config shipped with the installed MMDetection.

    .venv/bin/python -m benchmarks.zoo --out DIR [--steps 2] [--dedup model|architecture]
        [--test-scale N] [--only SUBSTRING] [--table-only]

No hand-kept list: every config under ``mmdet/.mim/configs`` (``_base_`` excluded) is
read, and those whose model is a ``TwoStageDetector`` are built with random weights
(every ``Pretrained`` init and ``pretrained`` checkpoint dropped, downloads blocked) and
run: ``BBAM(model)``, then ``attribute`` for ``--steps`` steps on an 800 x 600 image with
a small, a medium and a large box. Configs whose model dicts are equal (they differ in
schedule or data only) share one run; with ``--dedup architecture``, so do configs whose
models are made of the same component types (backbone, neck, RoI head and its parts,
data preprocessor; not the RPN, which BBAM never runs), whatever their depths, widths
and settings. ``--test-scale N``
replaces the test pipeline's Resize scale by (N, N), aspect kept, to save time. Each
result is written as it comes (``DIR/work/zoo_runs/*.json``), so an interrupted check
resumes where it stopped; each run is a child process with a memory cap and a time
limit. ``--table-only`` writes the tables from the results so far.

Outcomes: ``supported`` (maps of the right shape, finite), ``refused`` (``BBAM(model)``
raised :class:`~bbam_captum.detectors.UnsupportedDetectorError`: the reason is the
message), ``failed`` (any other error: the error and where it was raised), ``not
buildable here`` (the model needs a package, file or download that is absent, or more
memory or time than the check allows). Configs that cannot be read at all (a missing
package or file) are listed apart: whether they are two-stage is unknown.

Writes ``DIR/zoo.json`` (one row per config) and ``DIR/zoo.md`` (counts and the table).
"""
from __future__ import annotations

import argparse
import hashlib
import json
import logging
import multiprocessing
import os
import re
import resource
import time
import traceback
import warnings
from collections import Counter
from pathlib import Path

import torch
import torch.nn.functional as F
from mmengine.logging import MMLogger

from bbam_captum import BBAM
from bbam_captum.attr import optimise_masks
from bbam_captum.detectors import UnsupportedDetectorError
from bbam_captum.utils.atomic import write_json_atomic

from .harness import RunInfo, Timed, markdown_table, start_run, write_markdown

IMAGE_SIZE = (600, 800)  # height, width
BOXES = {"small": (100.0, 120.0, 132.0, 152.0), "medium": (300.0, 200.0, 460.0, 320.0),
         "large": (120.0, 90.0, 680.0, 510.0)}
MEMORY_CAP_GB = 12
MISSING = (ImportError, FileNotFoundError)


class DownloadBlockedError(RuntimeError):
    """A model asked for weights from outside while being built."""


def config_root() -> Path:
    """Where the installed MMDetection keeps its configs."""
    import mmdet

    return Path(mmdet.__file__).resolve().parent / ".mim" / "configs"


def shipped_configs(root: Path) -> list[str]:
    """Every config file under ``root``, relative, sorted, ``_base_`` folders left out."""
    return sorted(str(p.relative_to(root)) for p in root.rglob("*.py") if "_base_" not in p.relative_to(root).parts)


def neutralise(node):
    """A copy of a model dict with no pretrained weights: ``init_cfg`` entries of type
    ``Pretrained`` (or naming a checkpoint) dropped, ``pretrained`` keys emptied; and
    ``SyncBN`` and ``MMSyncBN`` built as ``BN`` (they cannot be built outside a process group; at inference
    they compute the same, as after mmdet's own ``revert_sync_batchnorm``)."""
    if isinstance(node, dict):
        out = {}
        for key, value in node.items():
            if key == "init_cfg" and _names_checkpoint(value):
                continue
            if key == "pretrained":
                value = False if isinstance(value, bool) else None
            if key == "type" and value in ("SyncBN", "MMSyncBN"):
                value = "BN"
            out[key] = neutralise(value)
        return out
    if isinstance(node, (list, tuple)):
        return type(node)(neutralise(v) for v in node)
    return node


def _names_checkpoint(init_cfg) -> bool:
    entries = init_cfg if isinstance(init_cfg, (list, tuple)) else [init_cfg]
    return any(isinstance(e, dict) and (e.get("type") == "Pretrained" or "checkpoint" in e) for e in entries)


def _block_downloads() -> None:
    """Random weights only: anything that would fetch a checkpoint raises instead."""
    import torch.hub
    from mmengine.runner.checkpoint import CheckpointLoader

    def refuse(*args, **kwargs):
        raise DownloadBlockedError(f"wants pretrained weights ({args[1] if len(args) > 1 else args or kwargs})")

    CheckpointLoader.load_checkpoint = classmethod(lambda cls, *a, **k: refuse(cls, *a, **k))
    torch.hub.load_state_dict_from_url = refuse
    torch.hub.download_url_to_file = refuse


def read_config(root: Path, rel: str):
    """(Config, None) or (None, why it cannot be read here)."""
    from mmengine.config import Config

    try:
        return Config.fromfile(str(root / rel)), None
    except Exception as error:  # noqa: BLE001 - any reason a config cannot be read here is reported
        message = re.sub(r"/\S*/site-packages/", "", str(error).splitlines()[0])  # no paths of this machine
        return None, f"{type(error).__name__}: {message[:200]}"


def model_class(cfg):
    """The class that ``cfg.model`` builds, or None."""
    from mmdet.registry import MODELS

    model = cfg.get("model")
    if not isinstance(model, dict) or "type" not in model:
        return None
    return MODELS.get(model["type"]) if isinstance(model["type"], str) else model["type"]


def model_key(model_dict: dict, dedup: str) -> str:
    """Equal for configs whose (neutralised) model dicts are equal, or, with ``dedup ==
    "architecture"``, whose models are made of the same component types."""
    if dedup == "architecture":
        model_dict = {part: sorted(set(_types(model_dict.get(part)))) for part in
                      ("type", "data_preprocessor", "backbone", "neck", "roi_head")}
    return hashlib.sha1(json.dumps(model_dict, sort_keys=True, default=str).encode()).hexdigest()[:12]


def _types(node) -> list[str]:
    """The ``type`` of every component in a config node (losses, coders and layer settings left out)."""
    if isinstance(node, str):
        return [node]
    if isinstance(node, (list, tuple)):
        return [t for item in node for t in _types(item)]
    if not isinstance(node, dict):
        return []
    found = [node["type"]] if isinstance(node.get("type"), str) else []
    for key, value in node.items():
        if key != "type" and not key.startswith(("loss", "init_cfg", "train_cfg", "test_cfg")) \
                and not key.endswith(("_coder", "anchor_generator", "norm_cfg", "act_cfg", "conv_cfg")):
            found += _types(value) if isinstance(value, (dict, list, tuple)) else []
    return found


def set_test_scale(cfg, scale: int) -> None:
    """Every Resize of the test pipeline resizes to (scale, scale), aspect kept."""
    from mmdet.utils import get_test_pipeline_cfg

    for step in get_test_pipeline_cfg(cfg):
        for inner in [step, *(step.get("transforms") or [])]:
            if isinstance(inner, dict) and inner.get("type") == "Resize":
                inner.update(scale=(scale, scale), keep_ratio=True)


def test_image() -> torch.Tensor:
    """A smooth random RGB image, 0..255, Tensor[3, 600, 800]."""
    g = torch.Generator().manual_seed(0)
    coarse = torch.rand(1, 3, 12, 16, generator=g) * 255
    return F.interpolate(coarse, size=IMAGE_SIZE, mode="bilinear", align_corners=False)[0]


def _where(error: BaseException) -> str:
    """The innermost frame of ``error``'s traceback, as ``package/file.py:line in function``."""
    frame = traceback.extract_tb(error.__traceback__)[-1]
    parts = Path(frame.filename).parts
    for anchor in ("site-packages", "bbam_captum", "benchmarks"):
        if anchor in parts:
            parts = parts[parts.index(anchor) + (anchor == "site-packages"):]
            break
    return f"{'/'.join(parts)}:{frame.lineno} in {frame.name}"


def run_one(cfg, steps: int) -> dict:
    """Builds the model of ``cfg`` with random weights and runs BBAM on it; a result row."""
    from mmdet.registry import MODELS

    row: dict = {}
    torch.manual_seed(0)
    start = time.perf_counter()
    try:
        cfg.model = neutralise(cfg.model.to_dict())
        cfg.load_from = None
        model = MODELS.build(cfg.model)
        model.init_weights()
    except (*MISSING, DownloadBlockedError, MemoryError) as error:
        return {"outcome": "not buildable here", "reason": f"{type(error).__name__}: {str(error)[:300]}"}
    except Exception as error:  # noqa: BLE001 - reported
        return {"outcome": "failed", "reason": f"building: {type(error).__name__}: {str(error)[:300]}",
                "where": _where(error)}
    model.cfg = cfg
    model.eval()
    row["build_s"] = round(time.perf_counter() - start, 2)
    roi_head = getattr(model, "roi_head", None)
    row["roi_head"] = type(roi_head).__name__
    bbox_head = getattr(roi_head, "bbox_head", None)
    heads = bbox_head if isinstance(bbox_head, torch.nn.ModuleList) else [bbox_head]
    row["bbox_head"] = type(heads[-1]).__name__
    optimise = Timed(optimise_masks)  # the seconds of the optimisation steps (without proposal selection)
    try:
        bbam = BBAM(model, optimise_masks=optimise)
    except UnsupportedDetectorError as error:
        return {**row, "outcome": "refused", "reason": str(error)}
    except Exception as error:  # noqa: BLE001 - reported
        return {**row, "outcome": "failed", "reason": f"BBAM(model): {type(error).__name__}: {str(error)[:300]}",
                "where": _where(error)}
    row["box_kind"] = bbam.adapter._box_kind
    image, boxes = test_image(), torch.tensor(list(BOXES.values()))
    start = time.perf_counter()
    try:
        maps = bbam.attribute(image, boxes, steps=steps)
    except MemoryError as error:
        return {**row, "outcome": "not buildable here", "reason": f"MemoryError over {MEMORY_CAP_GB} GB: {error}"}
    except RuntimeError as error:
        if "implementation for device cpu not found" in str(error):  # an mmcv op with a CUDA kernel only
            return {**row, "outcome": "not buildable here", "reason": f"needs a GPU: {str(error).splitlines()[0]}"}
        return {**row, "outcome": "failed", "reason": f"attribute: {type(error).__name__}: {str(error)[:300]}",
                "where": _where(error)}
    except Exception as error:  # noqa: BLE001 - reported
        return {**row, "outcome": "failed", "reason": f"attribute: {type(error).__name__}: {str(error)[:300]}",
                "where": _where(error)}
    row["attribute_s"] = round(time.perf_counter() - start, 2)
    row["s_per_step"] = round(optimise.seconds / steps, 2)
    if maps.shape != (len(boxes), 1, *IMAGE_SIZE) or not torch.isfinite(maps).all():
        return {**row, "outcome": "failed", "reason": f"maps of shape {tuple(maps.shape)} or not finite"}
    return {**row, "outcome": "supported"}


def _child(root: Path, rel: str, steps: int, test_scale: int | None, path: Path) -> None:
    """Runs one config in a child process and writes its row to ``path``."""
    limit = MEMORY_CAP_GB * 1024 ** 3
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    torch.set_num_threads(1)
    warnings.filterwarnings("ignore")
    MMLogger.get_current_instance().setLevel(logging.WARNING)  # init_weights logs every parameter
    _block_downloads()
    cfg, _ = read_config(root, rel)
    if test_scale is not None:
        set_test_scale(cfg, test_scale)
    write_json_atomic(path, run_one(cfg, steps))


def list_configs(root: Path, dedup: str, only: str | None, base: type) -> tuple[list[dict], list[dict], int]:
    """Rows for the configs whose model is a ``base`` (config, detector, model_key), the
    configs that cannot be read, and how many others there are."""
    rows, unreadable, others = [], [], 0
    for rel in shipped_configs(root):
        if only and only not in rel:
            continue
        cfg, why = read_config(root, rel)
        if cfg is None:
            unreadable.append({"config": rel, "reason": why})
            continue
        cls = model_class(cfg)
        if not (isinstance(cls, type) and issubclass(cls, base)):
            others += 1
            continue
        rows.append({"config": rel, "detector": cls.__name__,
                     "model_key": model_key(neutralise(cfg.model.to_dict()), dedup)})
    return rows, unreadable, others


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--timeout", type=float, default=1200.0, help="seconds per model before it is given up")
    parser.add_argument("--dedup", choices=("model", "architecture"), default="model",
                        help="configs that share a run: equal model dicts, or equal component types")
    parser.add_argument("--test-scale", type=int, default=None, help="test Resize to (N, N), aspect kept")
    parser.add_argument("--only", default=None, help="only configs whose path contains this")
    parser.add_argument("--table-only", action="store_true", help="write the tables from the results so far")
    args = parser.parse_args(argv)
    run = start_run("benchmarks.zoo", argv, threads=1)  # each config runs in a child process on one thread
    warnings.filterwarnings("ignore")

    from mmdet.models.detectors import TwoStageDetector
    from mmdet.utils import register_all_modules

    register_all_modules()
    root = config_root()
    runs = args.out / "work" / "zoo_runs"
    runs.mkdir(parents=True, exist_ok=True)
    # reading every config takes minutes: the listing is kept for resumed runs
    selection = re.sub(r"\W", "_", args.only or "all")
    listing = args.out / "work" / f"zoo_configs_{args.dedup}_{selection}.json"
    if listing.exists():
        rows, unreadable, not_two_stage = json.loads(listing.read_text())
    else:
        rows, unreadable, not_two_stage = list_configs(root, args.dedup, args.only, TwoStageDetector)
        write_json_atomic(listing, [rows, unreadable, not_two_stage])
    print(f"{len(rows)} two-stage configs, {len({r['model_key'] for r in rows})} distinct models, "
          f"{len(unreadable)} unreadable, {not_two_stage} others", flush=True)

    first: dict[str, str] = {}
    for row in rows:
        first.setdefault(row["model_key"], row["config"])
    context = multiprocessing.get_context("fork")
    for index, (key, rel) in enumerate(first.items()):
        path = runs / f"{key}.json"
        if path.exists() or args.table_only:
            continue
        start = time.perf_counter()
        child = context.Process(target=_child, args=(root, rel, args.steps, args.test_scale, path))
        child.start()
        child.join(args.timeout)
        if child.is_alive():
            child.kill()
            child.join()
            write_json_atomic(path, {"outcome": "not buildable here",
                                     "reason": f"not done within the check's {args.timeout:.0f} s"})
        elif not path.exists():
            write_json_atomic(path, {"outcome": "failed", "reason": f"the run's process died (exit {child.exitcode})"})
        outcome = json.loads(path.read_text())
        print(f"[{index + 1}/{len(first)}] {rel}: {outcome['outcome']} ({time.perf_counter() - start:.0f} s) "
              f"{outcome.get('reason', '')[:120]}", flush=True)

    for row in rows:
        path = runs / f"{row['model_key']}.json"
        row.update(json.loads(path.read_text()) if path.exists() else {"outcome": "not run yet"})
        if first[row["model_key"]] != row["config"]:
            row["same_model_as"] = first[row["model_key"]]
    write_tables(args.out, rows, unreadable, args, run)


def write_tables(out: Path, rows: list[dict], unreadable: list[dict], args: argparse.Namespace,
                 run: RunInfo) -> None:
    """``zoo.json`` and ``zoo.md``."""
    import mmdet

    meta = {"mmdet": mmdet.__version__, "torch": torch.__version__, **run.meta(), "cpu": run.machine,
            "steps": args.steps, "image": list(IMAGE_SIZE), "boxes": BOXES, "dedup": args.dedup,
            "test_scale": args.test_scale}
    write_json_atomic(out / "zoo.json", {"meta": meta, "configs": rows, "unreadable": unreadable})
    counts = Counter(r["outcome"] for r in rows)
    models = Counter(r["outcome"] for r in rows if "same_model_as" not in r)
    shared = ("equal model dicts" if args.dedup == "model" else
              "models made of the same component types, the RPN's aside (depths, widths and settings aside)")
    resize = (f"the test Resize set to ({args.test_scale}, {args.test_scale}), aspect kept" if args.test_scale
              else "each config's own test Resize")
    lines = [
        "# Zoo check: BBAM on every two-stage config shipped with MMDetection",
        "",
        f"`{run.command}` with mmdet {mmdet.__version__}, torch {torch.__version__}, {run.device}. Random weights; "
        f"BBAM for {args.steps} steps on a {IMAGE_SIZE[1]} x {IMAGE_SIZE[0]} image with a small, a medium and a "
        f"large box, {resize}. Configs with {shared} share one run (`same model as`).",
        "",
    ]
    outcomes = ("supported", "refused", "failed", "not buildable here", "not run yet")
    lines += markdown_table(["outcome", "configs", "distinct models"],
                            [*([o, counts.get(o, 0), models.get(o, 0)] for o in outcomes),
                             ["**two-stage, in all**", len(rows), sum(models.values())]])
    lines += ["", "s/step: seconds per BBAM step for the three boxes (proposal selection excluded).", ""]
    lines += markdown_table(["config", "detector", "RoI head", "box head", "outcome", "s/step", "reason"],
                            [[f"`{r['config']}`", r["detector"], r.get("roi_head", ""), r.get("bbox_head", ""),
                              r["outcome"], r.get("s_per_step", ""), _reason(r).replace("|", "/")] for r in rows])
    lines += ["", f"Configs that cannot be read here ({len(unreadable)}; two-stage or not is unknown):", ""]
    lines += markdown_table(["config", "why"],
                            [[f"`{u['config']}`", u["reason"].replace("|", "/")] for u in unreadable])
    write_markdown(out / "zoo.md", lines)
    print(f"wrote {out / 'zoo.json'} and {out / 'zoo.md'}: {dict(counts)}")



def _reason(row: dict) -> str:
    """Why a config's run ended as it did, where it failed, and the config whose run it shares."""
    reason = row.get("reason", "")
    if row.get("where"):
        reason += f" (at {row['where']})"
    if "same_model_as" in row:
        reason = f"same model as `{row['same_model_as']}`" + (f"; {reason}" if reason else "")
    return reason


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    main()
