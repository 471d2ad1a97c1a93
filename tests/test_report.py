"""``bbam-captum report``: the review page, its flags, its cache, and the page in a real browser."""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from _chromium import Chromium, find_chromium
from bbam_captum.cli.main import main
from bbam_captum.report import FlagSettings, box_flags
from bbam_captum.report.flags import class_fills


@pytest.fixture(scope="module")
def boxes_file(tiny_synth, tmp_path_factory) -> Path:
    """The first 3 images of the tiny set (6 boxes of 5 classes) with their true masks."""
    ann = json.loads((tiny_synth / "annotations.json").read_text())
    ann["images"] = ann["images"][:3]
    keep = {i["id"] for i in ann["images"]}
    ann["annotations"] = [a for a in ann["annotations"] if a["image_id"] in keep]
    path = tmp_path_factory.mktemp("report_boxes") / "annotations.json"
    path.write_text(json.dumps(ann))
    return path


@pytest.fixture(scope="module")
def run_dir(tiny_synth, boxes_file, tmp_path_factory) -> Path:
    """A generate run (bundled detector, 4 steps) on those images, scored, with its report."""
    out = tmp_path_factory.mktemp("report_run") / "out"
    assert main(["generate", "--ann", str(boxes_file), "--img-dir", str(tiny_synth / "images"),
                 "--out", str(out), "--steps", "4"]) == 0
    assert main(["evaluate", "--pred", str(out), "--gt", str(boxes_file)]) == 0
    assert main(["report", str(out), "--gt", str(boxes_file)]) == 0
    return out


def _data(out: Path) -> dict:
    text = (out / "report" / "data.js").read_text()
    return json.loads(text[text.index("=") + 1:].rstrip().rstrip(";"))


def test_report_has_every_box_and_its_thumbnails(run_dir, boxes_file):
    data, truth = _data(run_dir), json.loads(boxes_file.read_text())
    assert len(data["images"]) == len(truth["images"])
    assert sorted(r["ann_id"] for r in data["rows"]) == sorted(a["id"] for a in truth["annotations"])
    for path in [i["thumb"] for i in data["images"]] + [i["label_thumb"] for i in data["images"]] + \
            [r["thumb"] for r in data["rows"]]:
        assert (run_dir / "report" / path).is_file(), path
    # The IoU column agrees with evaluate (every object has a pseudo mask here).
    scores = json.loads((run_dir / "eval.json").read_text())
    assert np.mean([r["iou"] for r in data["rows"]]) == pytest.approx(scores["instance_miou"], abs=1e-3)
    records = [r for p in sorted((run_dir / "maps").glob("*.npz")) for r in json.loads(str(np.load(p)["records"]))]
    assert sum(r["fallback"] for r in data["rows"]) == sum(r["fallback"] for r in records)
    assert [r["rank"] for r in data["rows"]] == list(range(1, len(data["rows"]) + 1))
    suspicion = [r["suspicion"] for r in data["rows"]]
    assert suspicion == sorted(suspicion, reverse=True) and all((s > 0) == bool(r["flags"])
                                                                for s, r in zip(suspicion, data["rows"]))


def test_flags():
    settings = FlagSettings(full_fill=0.9, empty_fill=0.1, claimed=0.5, min_positives=5, odd_fill=0.15)
    plain = {"class": "ring", "fallback": False, "positives": 20, "fill": 0.5, "claimed": 0.0, "covers": 0.0}
    assert box_flags(plain, settings) == []
    assert box_flags({**plain, "fallback": True, "positives": 1}, settings) == ["fallback"]
    assert box_flags({**plain, "positives": 4}, settings) == ["few-positives"]
    assert box_flags({**plain, "fill": 0.95}, settings) == ["fills-box"]
    assert box_flags({**plain, "fill": 0.02}, settings) == ["nearly-empty"]
    assert box_flags({**plain, "claimed": 0.8, "fallback": True}, settings) == ["fallback", "claimed"]
    assert box_flags({**plain, "covers": 0.6}, settings) == ["covers-other"]
    assert box_flags(plain, settings, class_fill=0.7) == ["odd-fill"]
    assert box_flags(plain, settings, class_fill=0.6) == []
    # The class median counts only with enough boxes of the class.
    rows = [{**plain, "fill": f} for f in (0.2, 0.3, 0.4, 0.9)] + [{**plain, "class": "star", "fill": 0.5}] * 5
    assert class_fills(rows, FlagSettings(min_class_boxes=5)) == {"star": 0.5}
    assert class_fills(rows, FlagSettings(min_class_boxes=4)) == pytest.approx({"ring": 0.35, "star": 0.5})
    with pytest.raises(ValueError, match="empty_fill"):
        FlagSettings(full_fill=0.1, empty_fill=0.2)


def test_flag_recall_counts_the_worst_masks():
    from bbam_captum.report.page import flag_recall

    rows = [{"ann_id": i, "iou": iou, "flags": flags} for i, (iou, flags) in
            enumerate([(0.1, ["fallback"]), (0.2, []), (0.9, ["claimed"]), (0.95, [])] + [(0.99, [])] * 16)]
    recall = flag_recall(rows, share=0.1)  # the 2 worst of 20: one flagged; 1 of the 2 flagged is among them
    assert recall == {"share": 0.1, "worst": 2, "worst_iou": 0.2, "worst_flagged": 0.5, "flagged_in_worst": 0.5}
    assert flag_recall([{"ann_id": 1, "iou": None, "flags": []}]) is None


def test_report_is_remade_incrementally(run_dir, boxes_file, tmp_path):
    out = tmp_path / "out"
    shutil.copytree(run_dir, out)
    from bbam_captum.report import build_report

    first = build_report(out, boxes_file)
    assert first["drawn"] == 0  # the copied cache is keyed by content, not by place
    thumbs = {p.name: p.stat().st_mtime_ns for p in (out / "report" / "thumbs").glob("*.png")}
    # A changed map file redraws its image only, and its old thumbnails go.
    maps_file = sorted((out / "maps").glob("*.npz"))[0]
    saved = dict(np.load(maps_file))
    saved["maps"] = np.zeros_like(saved["maps"])
    np.savez_compressed(maps_file, **saved)
    second = build_report(out, boxes_file)
    assert second["drawn"] == 1
    now = {p.name: p.stat().st_mtime_ns for p in (out / "report" / "thumbs").glob("*.png")}
    image_id = maps_file.stem
    assert {n: t for n, t in now.items() if not n.startswith(f"{image_id}-")} == \
        {n: t for n, t in thumbs.items() if not n.startswith(f"{image_id}-")}
    assert not set(now) & {n for n in thumbs if n.startswith(f"{image_id}-")}
    assert len(now) == len(thumbs)


def test_report_rejects_unusable_input(run_dir, tmp_path, capsys):
    not_a_run = tmp_path / "empty"
    not_a_run.mkdir()
    assert main(["report", str(not_a_run)]) == 2
    assert "run.json" in capsys.readouterr().err
    assert not (not_a_run / "report").exists()
    foreign = tmp_path / "foreign.json"
    foreign.write_text(json.dumps({"images": [], "annotations": [{"id": 10**6, "segmentation": []}],
                                   "categories": []}))
    out = tmp_path / "out"
    shutil.copytree(run_dir, out, ignore=shutil.ignore_patterns("report"))
    assert main(["report", str(out), "--gt", str(foreign)]) == 2
    assert "no masks for any annotation id" in capsys.readouterr().err
    assert not (out / "report").exists()


def test_an_undecodable_true_mask_fails_its_image_only(run_dir, boxes_file, tmp_path):
    """A true segmentation that pycocotools cannot decode, or of another size than its image, fails
    the image it belongs to, named with the gt file and annotation; the other images are drawn."""
    from bbam_captum.report import build_report

    out = tmp_path / "out"
    shutil.copytree(run_dir, out, ignore=shutil.ignore_patterns("report"))
    truth = json.loads(boxes_file.read_text())
    first, second = (next(a for a in truth["annotations"] if a["image_id"] == i["id"]) for i in truth["images"][:2])
    first["segmentation"] = {"size": [4, 4], "counts": "not an RLE!"}
    second["segmentation"] = {"size": [3, 5], "counts": [15]}  # a valid RLE of another size
    gt = tmp_path / "gt.json"
    gt.write_text(json.dumps(truth))
    result = build_report(out, gt)
    reasons = {f["image_id"]: f["reason"] for f in result["failures"]}
    assert set(reasons) == {first["image_id"], second["image_id"]}
    assert f"annotation {first['id']}: cannot decode" in reasons[first["image_id"]]
    assert str(gt) in reasons[first["image_id"]]
    assert f"annotation {second['id']}: the segmentation is 5x3" in reasons[second["image_id"]]
    assert len(_data(out)["images"]) == len(truth["images"]) - 2

CHROMIUM = find_chromium()

# Waits for every image element (lazy ones made eager) and loads every thumbnail the data names.
_THUMBS_LOADED = """(async () => {
  const urls = [...new Set([...BBAM_REPORT.images.flatMap(i => [i.thumb, i.label_thumb]),
                            ...BBAM_REPORT.rows.map(r => r.thumb)])];
  const load = (u) => new Promise((res) => { const im = new Image(); im.onload = () => res(im.naturalWidth > 0);
                                              im.onerror = () => res(false); im.src = u; });
  const loaded = await Promise.all(urls.map(load));
  const dom = [...document.querySelectorAll("img")];
  dom.forEach((im) => { im.loading = "eager"; });
  await Promise.all(dom.map((im) => im.complete ? null : new Promise((res) => { im.onload = im.onerror = res; })));
  return {urls: urls.length, loaded: loaded.filter(Boolean).length, dom: dom.length,
          dom_loaded: dom.filter((im) => im.complete && im.naturalWidth > 0).length};
})()"""
_FIRST_ROWS = ("[...document.querySelectorAll('#box-table tbody tr')]"
               ".map(tr => [Number(tr.dataset.annId), tr.dataset.class])")


def _choose(browser: Chromium, select: str, value: str) -> None:
    """Picks ``value`` in the page's ``select`` as a user would (the change event included)."""
    browser.evaluate(f"(() => {{ const s = document.querySelector({json.dumps(select)}); "
                     f"s.value = {json.dumps(value)}; s.dispatchEvent(new Event('change')); }})()")


@pytest.mark.slow
@pytest.mark.skipif(CHROMIUM is None, reason="no Chromium found (run scripts/install_browser.sh, or set "
                                              "BBAM_CAPTUM_CHROMIUM to a Chromium or Chrome executable)")
def test_page_in_headless_chromium(run_dir, tmp_path):
    data = _data(run_dir)
    rows = data["rows"]
    with Chromium(CHROMIUM, width=1280, height=900) as browser:
        browser.open((run_dir / "report" / "index.html").resolve().as_uri())
        assert browser.evaluate("document.querySelectorAll('#box-table tbody tr').length") == len(rows)
        for tab in ("boxes", "images"):
            browser.evaluate(f"document.querySelector('.tabs button[data-tab={tab}]').click()")
            loaded = browser.evaluate(_THUMBS_LOADED)
            assert loaded["loaded"] == loaded["urls"] == 2 * len(data["images"]) + len(rows), loaded
            assert loaded["dom_loaded"] == loaded["dom"] > 0, (tab, loaded)
        assert browser.evaluate("document.querySelectorAll('#images .card').length") == len(data["images"])
        browser.evaluate("document.querySelector('.tabs button[data-tab=boxes]').click()")
        # Default order: worst first by the flags.
        assert [a for a, _ in browser.evaluate(_FIRST_ROWS)] == [r["ann_id"] for r in rows]

        browser.evaluate("document.querySelector('th[data-key=iou]').click()")
        shown = browser.evaluate(_FIRST_ROWS)
        worst = min(rows, key=lambda r: (r["iou"], r["rank"]))
        assert shown[0][0] == worst["ann_id"]
        ious = browser.evaluate("[...document.querySelectorAll('#box-table tbody td.iou')]"
                                ".map(td => Number(td.textContent))")
        assert ious == sorted(ious) and len(ious) == len(rows)
        browser.evaluate("document.querySelector('th[data-key=iou]').click()")
        assert browser.evaluate(_FIRST_ROWS)[0][0] == max(rows, key=lambda r: (r["iou"], -r["rank"]))["ann_id"]

        cls = max({r["class"] for r in rows}, key=lambda c: sum(r["class"] == c for r in rows))
        _choose(browser, "#class-filter", cls)
        shown = browser.evaluate(_FIRST_ROWS)
        assert {c for _, c in shown} == {cls} and len(shown) == sum(r["class"] == cls for r in rows) < len(rows)
        _choose(browser, "#class-filter", "")
        _choose(browser, "#flag-filter", "*")
        shown = browser.evaluate(_FIRST_ROWS)
        assert sorted(a for a, _ in shown) == sorted(r["ann_id"] for r in rows if r["flags"])

        _choose(browser, "#flag-filter", "")
        browser.evaluate("document.querySelector('#reset-order').click()")
        shot = Path(os.environ.get("BBAM_CAPTUM_REPORT_SCREENSHOT", tmp_path / "report.png"))
        browser.screenshot(shot)
    assert shot.stat().st_size > 10_000
