"""bbam-captum as a plugin: its wheel installs beside an existing OpenMMLab stack and runs from
anywhere, and importing it changes nothing global."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from conftest import REPO

BIN = Path(sys.executable).parent
# what a wheel is built from (the rest of the checkout is not part of the package)
SOURCES = ("pyproject.toml", "README.md", "bbam_captum", "mm_configs")


def _env(**extra: str) -> dict[str, str]:
    """The environment without the checkout on PYTHONPATH, one thread per process."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    return {**env, "OMP_NUM_THREADS": "1", **extra}


def _run(cmd: list[str], cwd: Path, env: dict[str, str], timeout: int = 600) -> subprocess.CompletedProcess:
    result = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, f"{' '.join(cmd)}\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return result


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """The package's wheel, built from a copy of its sources and installed (not editable) into a
    folder of its own; the OpenMMLab stack is the one already installed."""
    root = tmp_path_factory.mktemp("plugin")
    src = root / "src"
    src.mkdir()
    for name in SOURCES:
        path = REPO / name
        if path.is_dir():
            shutil.copytree(path, src / name, symlinks=True, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy(path, src / name)
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(root / "dist"),
          str(src)], cwd=root, env=_env())
    wheel = next((root / "dist").glob("bbam_captum-*.whl"))
    target = root / "site"
    _run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(target), str(wheel)],
         cwd=root, env=_env())
    shutil.rmtree(src)  # nothing may point back at the sources the wheel was built from
    return target


@pytest.fixture(scope="module")
def plugin_run(installed, tmp_path_factory) -> Path:
    """``bbam-captum synth`` and ``generate`` of the installed wheel, run from a folder outside the checkout."""
    work = tmp_path_factory.mktemp("user")
    env = _env(PYTHONPATH=str(installed))
    cli = [str(installed / "bin" / "bbam-captum")]
    _run(cli + ["synth", "data", "--num-images", "2", "--seed", "7"], cwd=work, env=env)
    _run(cli + ["generate", "--ann", "data/annotations.json", "--img-dir", "data/images", "--out", "pseudo",
                "--steps", "4"], cwd=work, env=env)
    return work


@pytest.mark.slow
def test_wheel_is_what_gets_imported_and_carries_the_configs(installed, tmp_path):
    code = "import bbam_captum, bbam_captum.pipeline.writers as w; print(bbam_captum.__file__); print(w.CONFIG_DIR)"
    out = _run([sys.executable, "-c", code], cwd=tmp_path, env=_env(PYTHONPATH=str(installed))).stdout.split()
    assert Path(out[0]).is_relative_to(installed), f"imported {out[0]}, not the installed wheel"
    configs = Path(out[1])
    assert configs.is_relative_to(installed) and not configs.is_symlink()
    shipped = sorted(p.relative_to(configs).as_posix() for p in configs.rglob("*.py"))
    assert shipped == sorted(p.relative_to(REPO / "mm_configs").as_posix() for p in (REPO / "mm_configs").rglob("*.py"))


@pytest.mark.slow
@pytest.mark.parametrize("kind, folder", [("mmseg", "mmseg"), ("mmdet", "coco")])
def test_installed_wheel_labels_train_with_mim(plugin_run, installed, kind, folder):
    summary = json.loads((plugin_run / "pseudo" / "summary.json").read_text())
    assert summary["images_labelled"] == 2 and summary["failures"] == []
    config = plugin_run / "pseudo" / folder / "config.py"
    base = Path(next(line for line in config.read_text().splitlines() if line.startswith("_base_")).split("'")[1])
    assert base.is_file() and base.is_relative_to(installed), base
    work_dir = plugin_run / f"work_{kind}"
    _run([str(BIN / "mim"), "train", kind, str(config), "--work-dir", str(work_dir), "--cfg-options",
          "train_cfg.max_iters=2", "train_dataloader.num_workers=0", "train_dataloader.persistent_workers=False",
          "train_dataloader.batch_size=2", "default_hooks.logger.interval=1"],
         cwd=plugin_run, env=_env(PYTHONPATH=str(installed)))
    assert (work_dir / "iter_2.pth").is_file()


# Run in a fresh interpreter: what the process looks like before and after `import bbam_captum`
# (and everything a plugin user imports from it), with a backend that matplotlib.use("Agg") would change.
_SIDE_EFFECTS = r"""
import gc, json, sys
import matplotlib, torch
import mmengine.registry

def registries():
    found = {}
    for obj in gc.get_objects():
        if isinstance(obj, mmengine.registry.Registry):
            found[f"{obj.scope}.{obj.name}.{id(obj)}"] = sorted(obj.module_dict)
    return found

def state():
    return {"safe_globals": sorted(map(repr, torch.serialization.get_safe_globals())),
            "backend": dict.__getitem__(matplotlib.rcParams, "backend"),
            "registries": registries(),
            "default_scope": repr(mmengine.registry.DefaultScope.get_current_instance())}

before = state()
import bbam_captum
from bbam_captum import *
import bbam_captum.cli.main, bbam_captum.visualization, bbam_captum.pipeline.writers, bbam_captum.labels.crf
after = state()
print(json.dumps({"before": before, "after": after, "backend_in_use": matplotlib.get_backend(),
                  "mmdet_imported": "mmdet" in sys.modules}))
"""


@pytest.mark.slow  # a fresh interpreter in a subprocess
def test_import_changes_nothing_global(tmp_path):
    env = _env(PYTHONPATH=str(REPO), MPLBACKEND="svg")
    result = json.loads(_run([sys.executable, "-c", _SIDE_EFFECTS], cwd=tmp_path, env=env).stdout)
    before, after = result["before"], result["after"]
    assert before["registries"], "no mmengine registry found: the check would see nothing"
    # torch allow-lists some of its own classes when their modules are first imported (by captum,
    # torchvision): nothing from outside torch may join
    added = set(after["safe_globals"]) - set(before["safe_globals"])
    assert all(entry.startswith(("<class 'torch.", "<function torch.")) for entry in added), added
    assert set(before["safe_globals"]) <= set(after["safe_globals"])
    assert after["backend"] == before["backend"] and result["backend_in_use"] == "svg"
    assert after["registries"] == before["registries"]
    assert after["default_scope"] == before["default_scope"]
    assert not result["mmdet_imported"]


@pytest.mark.slow  # a fresh interpreter in a subprocess
def test_mmlab_module_is_what_allows_runner_checkpoints(tmp_path):
    """The module that configs name in custom_imports does change torch's allow-list, and only that."""
    code = """
import torch
from bbam_captum.utils.checkpoint_safety import mmengine_checkpoint_globals
allowed = lambda: len(torch.serialization.get_safe_globals())
n = allowed()
import bbam_captum.mmlab
installed = allowed()
with mmengine_checkpoint_globals():  # what load_detector does; the process-wide entries stay
    pass
print(installed - n, allowed() - installed)
"""
    out = _run([sys.executable, "-c", code], cwd=tmp_path, env=_env(PYTHONPATH=str(REPO))).stdout.split()
    added, lost = int(out[0]), int(out[1])
    assert added > 0 and lost == 0


def test_public_api_is_what_a_plugin_user_needs():
    import bbam_captum

    assert set(bbam_captum.__all__) == {"BBAM", "BBAMSettings", "BoxGradCAM", "BoxRecord", "DetectorAdapter",
                                        "MMDetTwoStageAdapter", "TorchvisionRCNNAdapter", "load_detector"}
    assert all(hasattr(bbam_captum, name) for name in bbam_captum.__all__)


def test_box_gradcam_gives_one_map_per_box(random_detector):
    from captum.attr import GradientAttribution

    from bbam_captum import BoxGradCAM

    cam = BoxGradCAM(random_detector)
    assert isinstance(cam, GradientAttribution) and cam.get_name() == "Box Grad-CAM"
    assert cam.forward_func == cam.adapter.roi_outputs
    image = torch.rand(3, 96, 96) * 255
    boxes = torch.tensor([[10.0, 10.0, 60.0, 70.0], [40.0, 30.0, 90.0, 90.0]])
    maps = BoxGradCAM(random_detector).attribute(image, boxes)  # target None: the detector's own classes
    assert maps.shape == (2, 1, 96, 96) and maps.min() >= 0 and maps.max() <= 1
    assert torch.equal(BoxGradCAM(random_detector).attribute(image, boxes, target=[1, 2]),
                       torch.cat([BoxGradCAM(random_detector).attribute(image, b[None], target=t)
                                  for b, t in zip(boxes, (1, 2))]))


TORCH_ONLY = """
import importlib.abc, sys
class Absent(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name.split(".")[0] in ("mmdet", "mmengine", "mmcv", "mmseg", "pydensecrf"):
            raise ImportError(f"{name} is absent here")
sys.meta_path.insert(0, Absent())
from bbam_captum import BBAM
from bbam_captum.detectors import TorchvisionRCNNAdapter
from bbam_captum.labels import LabelSettings
from bbam_captum.pipeline import explain, generate_labels
print("imported")
"""


@pytest.mark.slow  # a fresh interpreter in a subprocess
def test_torchvision_path_needs_no_openmmlab_and_no_crf():
    """BBAM on a torchvision detector, and labels without the CRF, import where neither OpenMMLab nor
    pydensecrf is installed (a GPU machine with only torch and torchvision, say)."""
    done = subprocess.run([sys.executable, "-c", TORCH_ONLY], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0 and "imported" in done.stdout, done.stderr[-2000:]
