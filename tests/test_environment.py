"""The environment: the stack imports within the ranges of pyproject.toml, mmcv has its compiled ops, checkpoints
load. The exact versions of constraints.txt are the set-up's check (scripts/check_env.py), not the tests': the
plugin must work in any environment within its ranges."""
from __future__ import annotations

import runpy
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import torch
from packaging.requirements import Requirement

from bbam_captum.detectors import bundled_detector_files
from bbam_captum.utils.checkpoint_safety import mmengine_checkpoint_globals
from conftest import DETECTOR_CONFIG, REPO


@pytest.mark.slow  # a fresh interpreter in a subprocess
def test_stack_imports():
    code = ("import bbam_captum, mmdet, mmseg, mmcv.ops, captum, pycocotools, skimage, pytorch_grad_cam, "
            "pydensecrf.densecrf")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_mmcv_has_compiled_ops():
    from mmcv.utils import ext_loader

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

    # bbam_captum.mmlab (custom_imports) would change torch's allow-list for the whole session
    cfg = Config.fromfile(DETECTOR_CONFIG, import_custom_modules=False)
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


@pytest.mark.slow
def test_runner_checkpoint_loads_with_load_detector_and_in_openmmlab_runs(tiny_synth, tmp_path):
    ckpt = _train_two_iterations(tiny_synth, tmp_path / "work")
    # torch 2.14's weights-only loading refuses the runner's checkpoint as it is...
    refused = subprocess.run([sys.executable, "-c", f"import torch; torch.load({str(ckpt)!r})"],
                             capture_output=True, text=True)
    assert refused.returncode != 0 and "HistoryBuffer" in refused.stderr
    # ...load_detector reads it, with the extra globals allowed for that call only (a fresh process,
    # so that nothing else of the session has touched the allow-list)...
    config = bundled_detector_files()[0]  # the same architecture, without custom_imports
    code = f"""
import torch
from bbam_captum import load_detector
from bbam_captum.utils.checkpoint_safety import mmengine_checkpoint_globals
def foreign():  # torch allow-lists some of its own classes as their modules get imported
    return {{repr(g) for g in torch.serialization.get_safe_globals() if "torch." not in repr(g)}}
allowed = foreign()
model = load_detector({str(config)!r}, {str(ckpt)!r})
assert foreign() == allowed, f"load_detector left globals allowed: {{foreign() - allowed}}"
with mmengine_checkpoint_globals():
    state = torch.load({str(ckpt)!r}, map_location="cpu")
assert "message_hub" in state
name = "roi_head.bbox_head.fc_cls.weight"
assert torch.equal(model.state_dict()[name], state["state_dict"][name])
"""
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert loaded.returncode == 0, loaded.stderr[-3000:]
    # ...and an OpenMMLab process reads it after importing the module its configs name in custom_imports.
    loads = subprocess.run([sys.executable, "-c", "import bbam_captum.mmlab, torch; "
                            f"print(sorted(torch.load({str(ckpt)!r}, map_location='cpu')))"],
                           capture_output=True, text=True)
    assert loads.returncode == 0 and "message_hub" in loads.stdout, loads.stderr[-2000:]


@pytest.mark.parametrize("attribute, allowed", [("mean", True), ("__init__", False), ("update", False)])
def test_allowlist_getattr_reaches_only_statistics_methods(tmp_path, attribute, allowed):
    import pickle

    from mmengine.logging.history_buffer import HistoryBuffer

    class Lookup:
        def __reduce__(self):
            return (getattr, (HistoryBuffer, attribute))

    path = tmp_path / "lookup.pth"
    torch.save({"x": Lookup()}, path)
    with mmengine_checkpoint_globals():
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


def _requirements() -> list[Requirement]:
    return [Requirement(d) for d in tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]]


def _outside(requirements: list[Requirement], versions: dict[str, str]) -> dict[str, str]:
    """``name: version (range)`` for each requirement whose version lies outside its range."""
    return {r.name: f"{versions[r.name]} (pyproject.toml: {r.specifier})" for r in requirements
            if r.name in versions and not r.specifier.contains(versions[r.name], prereleases=True)}


def test_environment_lies_within_the_ranges_of_pyproject():
    """What the plugin needs of any user's environment (mmcv's 2.0.0rc4 is a release candidate, hence
    prereleases)."""
    from importlib.metadata import version

    requirements = _requirements()
    assert not _outside(requirements, {r.name: version(r.name) for r in requirements})


def test_constraints_pin_the_stack_within_the_ranges():
    """The versions the set-up installs (and scripts/check_env.py checks) are among those declared."""
    pins = runpy.run_path(str(REPO / "scripts" / "check_env.py"))["pinned"](REPO / "constraints.txt")
    assert {"torch", "mmcv", "mmdet", "mmsegmentation", "mmengine", "captum"} <= pins.keys()
    assert not _outside(_requirements(), pins)
    assert _outside([Requirement("torch>=99")], pins) == {"torch": f"{pins['torch']} (pyproject.toml: >=99)"}


def test_package_declares_ranges_not_pins():
    deps = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    assert deps and not [d for d in deps if "==" in d], "exact versions belong in constraints.txt"
