"""The environment: the pinned stack imports, mmcv has its compiled ops, checkpoints load."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

from conftest import DETECTOR_CONFIG, REPO


def test_stack_imports():
    code = ("import bbam_captum, mmdet, mmseg, mmcv.ops, captum, pycocotools, skimage, pytorch_grad_cam, "
            "pydensecrf.densecrf")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_mmcv_has_compiled_ops():
    import mmcv
    from mmcv.utils import ext_loader

    assert mmcv.__version__ == "2.1.0"
    ext = ext_loader.load_ext("_ext", ["roi_align_forward", "nms"])  # raises without compiled ops
    assert hasattr(ext, "roi_align_forward")
    from mmcv.ops import RoIAlign, nms

    feats = torch.arange(64.0).reshape(1, 1, 8, 8)
    rois = torch.tensor([[0.0, 0.0, 0.0, 4.0, 4.0]])
    out = RoIAlign((2, 2), spatial_scale=1.0, sampling_ratio=2, aligned=True)(feats, rois)
    assert out.shape == (1, 1, 2, 2) and torch.isfinite(out).all()
    boxes = torch.tensor([[0.0, 0.0, 10.0, 10.0], [1.0, 1.0, 10.0, 10.0], [20.0, 20.0, 30.0, 30.0]])
    _, keep = nms(boxes, torch.tensor([0.9, 0.8, 0.7]), iou_threshold=0.5)
    assert keep.tolist() == [0, 2]


def _train_two_iterations(tiny_synth: Path, work_dir: Path) -> Path:
    from mmengine.config import Config
    from mmengine.runner import Runner

    cfg = Config.fromfile(DETECTOR_CONFIG)
    cfg.work_dir = str(work_dir)
    for loader in ("train_dataloader",):
        cfg[loader].dataset.data_root = str(tiny_synth)
        cfg[loader].dataset.ann_file = "annotations.json"
        cfg[loader].dataset.data_prefix = dict(img="images/")
        cfg[loader].num_workers = 0
        cfg[loader].persistent_workers = False
        cfg[loader].batch_size = 2
    cfg.train_cfg = dict(type="IterBasedTrainLoop", max_iters=2, val_interval=100)
    cfg.val_dataloader = cfg.val_evaluator = cfg.val_cfg = None
    cfg.test_dataloader = cfg.test_evaluator = cfg.test_cfg = None
    cfg.default_hooks.checkpoint = dict(type="CheckpointHook", by_epoch=False, interval=2)
    cfg.default_hooks.logger.interval = 1
    cfg.param_scheduler = None
    Runner.from_cfg(cfg).train()
    return work_dir / "iter_2.pth"


def test_runner_checkpoint_loads_with_init_detector(tiny_synth, tmp_path):
    ckpt = _train_two_iterations(tiny_synth, tmp_path / "work")
    # Without bbam-captum's allow-list, torch 2.14's weights-only loading refuses it...
    refused = subprocess.run([sys.executable, "-c", f"import torch; torch.load({str(ckpt)!r})"],
                             capture_output=True, text=True)
    assert refused.returncode != 0 and "HistoryBuffer" in refused.stderr
    # ...with it (imported with bbam_captum), mmdet's own init_detector loads it.
    from mmdet.apis import init_detector

    import bbam_captum  # noqa: F401

    model = init_detector(str(DETECTOR_CONFIG), str(ckpt), device="cpu")
    state = torch.load(ckpt, map_location="cpu")["state_dict"]
    name = "roi_head.bbox_head.fc_cls.weight"
    assert torch.equal(model.state_dict()[name], state[name])
    assert "message_hub" in torch.load(ckpt, map_location="cpu")


@pytest.mark.parametrize("attribute, allowed", [("mean", True), ("__init__", False), ("update", False)])
def test_allowlist_getattr_reaches_only_statistics_methods(tmp_path, attribute, allowed):
    import pickle

    from mmengine.logging.history_buffer import HistoryBuffer

    import bbam_captum  # noqa: F401

    class Lookup:
        def __reduce__(self):
            return (getattr, (HistoryBuffer, attribute))

    path = tmp_path / "lookup.pth"
    torch.save({"x": Lookup()}, path)
    if allowed:
        assert torch.load(path)["x"] is HistoryBuffer.mean
    else:
        with pytest.raises(pickle.UnpicklingError, match="refused getattr"):
            torch.load(path)


def test_ci_runs_the_readme_test_command():
    ci = (REPO / ".ci" / "run").read_text()
    readme = (REPO / "README.md").read_text()
    assert "make test" in ci.splitlines()[-1]
    assert "make test" in readme
