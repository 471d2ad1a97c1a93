"""BBAMSettings: the one place of BBAM's defaults (attribute's keywords only override them), every field
refuses a bad value by name, and the maps keys hold every setting's value, defaults included. Every
settings class raises SettingsError."""
from __future__ import annotations

import argparse
import dataclasses
import inspect
import pickle
from dataclasses import asdict

import numpy as np
import pytest
import torch

from bbam_captum import BBAM, BBAMSettings
from bbam_captum.attr.settings import FROM_SETTINGS
from bbam_captum.cli import explain_cmd, generate_cmd
from bbam_captum.cli._common import bbam_settings
from bbam_captum.cli.main import main
from bbam_captum.errors import InputError, SettingsError
from bbam_captum.labels import LabelSettings
from bbam_captum.pipeline import explain
from bbam_captum.pipeline.coco_input import ImageItem
from bbam_captum.pipeline.generate import maps_key, run_fingerprint
from bbam_captum.pipeline.outputs import check_not_an_input, check_output_folder
from bbam_captum.report import FlagSettings
from bbam_captum.synth import WorldConfig

# what attribute takes besides its settings' fields
NOT_SETTINGS = {"self", "inputs", "boxes", "target", "baselines", "settings", "show_progress", "return_records",
                "baseline"}


def test_attributes_keywords_are_the_fields_with_no_default_of_their_own():
    """The defaults are written once, on BBAMSettings: attribute's keywords only override them."""
    params = inspect.signature(BBAM.attribute).parameters
    names = [f.name for f in dataclasses.fields(BBAMSettings)]
    assert names == [p for p in params if p not in NOT_SETTINGS]
    assert {name: params[name].default for name in names} == dict.fromkeys(names, FROM_SETTINGS)
    assert params["settings"].default is None


def test_override_changes_the_fields_given_and_keeps_the_rest():
    base = BBAMSettings(steps=5, context=None)
    assert base.override(steps=FROM_SETTINGS, seed=FROM_SETTINGS) is base
    changed = base.override(seed=3, early_stop_patience=None)
    assert (changed.steps, changed.context, changed.seed, changed.early_stop_patience) == (5, None, 3, None)
    with pytest.raises(ValueError, match="steps must be at least 1, got 0"):
        base.override(steps=0)
    with pytest.raises(TypeError, match=r"unknown BBAM settings \['step'\]"):
        base.override(step=3)


FAST = BBAMSettings(steps=3, num_proposals=16, max_positives=8, max_memory_mb=None)
BOX = torch.tensor([[8.0, 6.0, 40.0, 44.0]])


def test_settings_object_and_keywords_give_the_same_maps(random_detector):
    image = torch.randint(0, 256, (3, 64, 80), generator=torch.Generator().manual_seed(0), dtype=torch.uint8)
    bbam = BBAM(random_detector)
    by_object, records = bbam.attribute(image, BOX, target=1, settings=FAST.override(context=None),
                                        return_records=True)
    by_keywords = bbam.attribute(image, BOX, target=1, steps=3, num_proposals=16, max_positives=8,
                                 max_memory_mb=None, context=None)  # None: a value (the whole image), not "unset"
    assert torch.equal(by_object, by_keywords)
    assert not torch.equal(by_object, bbam.attribute(image, BOX, target=1, settings=FAST))  # context 0.25
    # a keyword overrides the object's field
    assert bbam.attribute(image, BOX, target=1, settings=FAST, steps=1, return_records=True)[1][0].steps == 1
    assert records[0].steps == 3


def test_baseline_is_a_deprecated_name_of_baselines(random_detector):
    image = torch.randint(0, 256, (3, 64, 80), generator=torch.Generator().manual_seed(1), dtype=torch.uint8)
    bbam = BBAM(random_detector)
    grey = (128.0, 128.0, 128.0)
    with pytest.warns(DeprecationWarning, match="use baselines") as caught:
        old = bbam.attribute(image, BOX, target=1, baseline=grey, settings=FAST)
    assert caught[0].filename == __file__  # the warning points at the caller
    assert torch.equal(old, bbam.attribute(image, BOX, target=1, baselines=grey, settings=FAST))
    assert not torch.equal(old, bbam.attribute(image, BOX, target=1, settings=FAST))  # the pixel mean
    with pytest.raises(TypeError, match="not both"):
        bbam.attribute(image, BOX, target=1, baseline=grey, baselines=grey, settings=FAST)
    with pytest.warns(DeprecationWarning, match="explain's baseline is deprecated") as caught:
        result = explain(bbam, image, BOX, baseline=grey, settings=FAST)
    assert caught[0].filename == __file__
    assert torch.equal(result.maps, explain(bbam, image, BOX, baselines=grey, settings=FAST).maps)


@pytest.mark.parametrize("field, value, message", [
    ("box_head", 1, "box_head must be True or False, got 1"),
    ("cls_head", None, "cls_head must be True or False"),
    ("l1_coef", -0.1, "l1_coef must be a finite number >= 0, got -0.1"),
    ("l1_coef", float("nan"), "l1_coef must be a finite number"),
    ("tv_coef", float("inf"), "tv_coef must be a finite number >= 0, got inf"),
    ("tv_power", 0.0, "tv_power must be a finite number > 0, got 0.0"),
    ("stride", 0, "stride must be at least 1 or 'adaptive', got 0"),
    ("stride", "auto", "stride must be an int or 'adaptive', got 'auto'"),
    ("stride_range", (0.08, 0.02), "stride_range must be two finite numbers"),
    ("stride_range", (0.02,), "stride_range must be a sequence of 2 numbers, got (0.02,)"),
    ("stride_range", "ab", "stride_range must be a sequence of 2 numbers"),
    ("steps", 0, "steps must be at least 1, got 0"),
    ("steps", 2.5, "steps must be an int, got 2.5"),
    ("steps", True, "steps must be an int, got True"),
    ("lr", 0.0, "lr must be a finite number > 0, got 0.0"),
    ("lr", "0.1", "lr must be a finite number > 0, got '0.1'"),
    ("num_proposals", 0, "num_proposals must be at least 1"),
    ("max_shift", -0.3, "max_shift must be a finite number >= 0, got -0.3"),
    ("iou_thresholds", (), "iou_thresholds must be a non-empty sequence of values in (0, 1], got ()"),
    ("iou_thresholds", (0.9, 1.5), "iou_thresholds must be a non-empty sequence of values in (0, 1]"),
    ("iou_thresholds", 0.9, "iou_thresholds must be a sequence of numbers, got 0.9"),
    ("max_positives", 0, "max_positives must be at least 1"),
    ("early_stop_patience", 0, "early_stop_patience must be at least 1 or None, got 0"),
    ("early_stop_tol", -1e-3, "early_stop_tol must be a finite number >= 0"),
    ("context", -0.5, "context must be a finite number >= 0 or None, got -0.5"),
    ("seed", 1.0, "seed must be an int, got 1.0"),
    ("max_memory_mb", 0, "max_memory_mb must be a finite number > 0 (MiB), 'auto' or None, got 0"),
    ("max_memory_mb", "lots", "max_memory_mb must be a finite number > 0"),
])
def test_every_field_refuses_a_bad_value_by_name(field, value, message):
    with pytest.raises(ValueError) as err:
        BBAMSettings(**{field: value})
    assert message in str(err.value)


def test_both_heads_off_is_refused():
    with pytest.raises(ValueError, match="box_head and cls_head: at least one must be True"):
        BBAMSettings(box_head=False, cls_head=False)


def test_frozen_sequences_as_tuples():
    settings = BBAMSettings(True, steps=5, stride_range=[0.02, 0.08], max_memory_mb=None)
    assert settings.stride_range == (0.02, 0.08) and hash(settings) == hash(BBAMSettings(**asdict(settings)))
    assert settings == BBAMSettings(**asdict(settings))  # equality is by value, not by what was given
    assert pickle.loads(pickle.dumps(settings)) == settings
    with pytest.raises(dataclasses.FrozenInstanceError):
        settings.steps = 6  # type: ignore[misc]


def _cli_args(module, argv: list[str]) -> argparse.Namespace:
    subparsers = argparse.ArgumentParser().add_subparsers()
    return module.add_parser(subparsers).parse_args(argv)


GENERATE = ["--ann", "a.json", "--img-dir", "images", "--out", "out"]
ITEM = ImageItem(image_id=1, file_name="a.png", height=64, width=80, boxes=np.array([[8.0, 6.0, 40.0, 44.0]]),
                 classes=np.array([1]), ann_ids=np.array([7]))


def _key(settings: BBAMSettings) -> str:
    return maps_key(ITEM, "image-digest", run_fingerprint(settings, "detector-digest"))


@dataclasses.dataclass(frozen=True)
class _OtherDefault(BBAMSettings):
    """BBAM's settings as a later release might have them: one default changed."""

    num_proposals: int = 100


def test_maps_key_holds_every_setting_value_defaults_included():
    default = _key(BBAMSettings())
    # a default passed explicitly (as the command line passes its options) is the same run as none passed
    assert _key(BBAMSettings(steps=40, l1_coef=0.007, context=0.25, seed=0)) == default
    assert _key(bbam_settings(_cli_args(generate_cmd, GENERATE))) == default
    # a changed default is another run: its maps are recomputed
    assert _OtherDefault().num_proposals == 100 and _key(_OtherDefault()) != default
    assert _key(BBAMSettings(num_proposals=100)) == _key(_OtherDefault())
    assert _key(BBAMSettings(max_shift=0.25)) != default


@pytest.mark.parametrize("argv, message", [
    (["--steps", "0"], "--steps must be at least 1, got 0"),
    (["--l1-coef", "nan"], "--l1-coef must be a finite number >= 0, got nan"),
    (["--early-stop", "0"], "--early-stop must be at least 1 or None, got 0"),
    (["--context", "nan"], "--context must be a finite number >= 0 or None, got nan"),
])
def test_cli_names_the_option(argv, message):
    with pytest.raises(InputError) as err:
        bbam_settings(_cli_args(generate_cmd, GENERATE + argv))
    assert message in str(err.value)


def test_cli_negative_context_is_the_whole_image_and_explain_sets_its_options():
    assert bbam_settings(_cli_args(generate_cmd, GENERATE + ["--context", "-1"])).context is None
    settings = bbam_settings(_cli_args(explain_cmd, ["image.png", "--out", "x.png", "--steps", "3"]))
    assert settings == BBAMSettings(steps=3)


@pytest.mark.parametrize("make, message", [
    (lambda: BBAMSettings(steps=0), "steps must be at least 1, got 0"),
    (lambda: LabelSettings(theta_fg=0.01, theta_bg=0.05), "thresholds must satisfy 0 <= theta_bg <= theta_fg <= 1"),
    (lambda: FlagSettings(odd_fill=0.0), "odd_fill must lie in (0, 1], got 0.0"),
    (lambda: WorldConfig(fill="solid"), "fill must be one of"),
])
def test_every_settings_class_raises_one_error_type(make, message):
    """SettingsError is both what Python callers catch (ValueError) and what the command line turns
    into exit code 2 (InputError)."""
    with pytest.raises(SettingsError) as err:
        make()
    assert message in str(err.value)
    assert isinstance(err.value, ValueError) and isinstance(err.value, InputError)


def test_label_settings_are_frozen_and_replaced():
    settings = LabelSettings()
    with pytest.raises(dataclasses.FrozenInstanceError):
        settings.crf = False  # type: ignore[misc]
    assert dataclasses.replace(settings, crf=False).crf is False and settings.crf is True
    with pytest.raises(SettingsError, match="crf_blur must lie in"):
        dataclasses.replace(settings, crf_blur=-1.0)
    with pytest.raises(SettingsError, match="hole_rim must lie in"):
        dataclasses.replace(settings, hole_rim=0.0)


def test_cli_turns_a_settings_error_into_exit_code_2(tmp_path, capsys):
    argv = ["generate", "--ann", str(tmp_path / "a.json"), "--img-dir", str(tmp_path), "--out", str(tmp_path / "o")]
    assert main(argv + ["--theta-fg", "0.01", "--theta-bg", "0.05"]) == 2
    assert "thresholds must satisfy" in capsys.readouterr().err
    assert main(argv + ["--l1-coef", "-1"]) == 2
    assert "error: --l1-coef must be a finite number >= 0, got -1.0" in capsys.readouterr().err


def test_library_errors_name_the_argument_not_a_flag(tmp_path):
    (tmp_path / "file").write_text("")
    with pytest.raises(InputError, match=r"^out .*file is an existing file; give a folder$"):
        check_output_folder(tmp_path / "file")
    with pytest.raises(InputError, match=r"^out .*is the input file"):
        check_not_an_input(tmp_path / "file", [tmp_path / "file"])


def test_label_defaults_are_those_the_worlds_benchmark_reports_as_default():
    """The committed worlds table marks one chain as the default; the library must run that chain
    (a field written twice once made the CRF's blur 2/3 cell while the table said 1 cell)."""
    import json
    import re

    from conftest import REPO

    rows = json.loads((REPO / "benchmarks/results/worlds.json").read_text())
    chains = {row["chain"] for row in rows if row["default"]}
    assert len(chains) == 1, chains
    chain = chains.pop()
    blur = re.search(r"blur (\d+)(?:/(\d+))? cell", chain)
    assert blur, chain
    cells = int(blur[1]) / int(blur[2] or 1)
    defaults = LabelSettings()
    assert defaults.crf_blur == pytest.approx(cells)
    assert defaults.crf and defaults.refine == ("Eq. 4" in chain)
