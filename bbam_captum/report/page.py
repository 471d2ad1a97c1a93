"""The review page: ``index.html`` with the project's stylesheet and script, and ``data.js``.

The data is a script (``window.BBAM_REPORT = ...``) rather than JSON fetched at run time,
because browsers refuse ``fetch`` from ``file://`` pages; the page then works opened from disk.
"""
from __future__ import annotations

import hashlib
import html
import json
import shutil
from dataclasses import asdict
from pathlib import Path

from ..io.layout import RunLayout
from ..utils.atomic import atomic_open
from .flags import FLAG_HELP, FlagSettings, box_flags, class_fills, suspicion

STATIC = Path(__file__).resolve().parents[1] / "assets" / "report"
STATIC_FILES = ("report.css", "report.js")

_INDEX = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<link rel="stylesheet" href="report.css">
</head>
<body>
<header>
  <h1>{title}</h1>
  <p id="summary"></p>
</header>
<nav id="controls">
  <label>class <select id="class-filter"><option value="">all</option></select></label>
  <label>flag <select id="flag-filter"><option value="">all boxes</option>
    <option value="*">any flag</option><option value="-">no flag</option></select></label>
  <button id="reset-order" type="button">worst first</button>
  <span class="tabs"><button type="button" data-tab="boxes" class="active">boxes</button><button
    type="button" data-tab="images">images</button></span>
  <span id="count"></span>
</nav>
<main>
  <section id="boxes">
    <table id="box-table"><thead><tr></tr></thead><tbody></tbody></table>
  </section>
  <section id="images" hidden></section>
  <div class="pager" id="pager"></div>
</main>
<footer id="legend"></footer>
<script src="{data}?v={version}"></script>
<script src="report.js?v={version}"></script>
</body>
</html>
"""


def ranked_rows(entries: list[dict], flags: FlagSettings) -> list[dict]:
    """Every box row with its flags and ``rank`` (1 = reviewed first: most and clearest flags)."""
    rows = [row for entry in entries for row in entry["rows"]]
    medians = class_fills(rows, flags)
    rows = [{**row, "flags": box_flags(row, flags, medians.get(row["class"])),
             "suspicion": round(suspicion(row, flags, medians.get(row["class"])), 4)} for row in rows]
    rows.sort(key=lambda r: (-r["suspicion"], r["image_id"], r["index"]))
    for rank, row in enumerate(rows, 1):
        row["rank"] = rank
    return rows


def flag_recall(rows: list[dict], share: float = 0.1) -> dict | None:
    """How well the flags find the worst masks, where the true masks are known.

    Returns ``worst`` (how many boxes make the ``share`` of lowest IoU, at least one),
    ``worst_flagged`` (the share of them that carry a flag), ``flagged_in_worst`` (the share
    of flagged boxes that are among them) and ``worst_iou`` (the highest IoU among them);
    None without IoUs.
    """
    scored = sorted((r for r in rows if r["iou"] is not None), key=lambda r: r["iou"])
    if not scored:
        return None
    worst = scored[:max(1, round(share * len(scored)))]
    flagged = [r for r in scored if r["flags"]]
    worst_ids = {r["ann_id"] for r in worst}
    return {"share": share, "worst": len(worst), "worst_iou": worst[-1]["iou"],
            "worst_flagged": round(sum(1 for r in worst if r["flags"]) / len(worst), 4),
            "flagged_in_worst": round(sum(1 for r in flagged if r["ann_id"] in worst_ids) / len(flagged), 4)
            if flagged else None}


def page_data(entries: list[dict], failures: list[dict], flags: FlagSettings, title: str,
              class_names: list[str], has_gt: bool) -> dict:
    rows = ranked_rows(entries, flags)
    worst = {}
    for row in rows:
        worst.setdefault(row["image_id"], row["rank"])
    images = [{k: e[k] for k in ("id", "file", "width", "height", "thumb", "label_thumb", "ignored")}
              | {"worst": worst.get(e["id"], len(rows) + 1)} for e in entries]
    ious = [r["iou"] for r in rows if r["iou"] is not None]
    summary = {"images": len(entries), "boxes": len(rows), "flagged": sum(1 for r in rows if r["flags"]),
               "per_flag": {f: sum(1 for r in rows if f in r["flags"]) for f in FLAG_HELP},
               "mean_iou": round(sum(ious) / len(ious), 4) if ious else None, "not_shown": len(failures),
               "flag_recall": flag_recall(rows)}
    return {"title": title, "classes": class_names, "flags": FLAG_HELP, "flag_settings": asdict(flags),
            "has_gt": has_gt, "summary": summary, "images": images, "rows": rows, "failures": failures}


def write_page(layout: RunLayout, data: dict) -> Path:
    """Writes ``index.html``, ``data.js`` and the static files into the run's report folder;
    returns the path of ``index.html``."""
    payload = json.dumps(data, separators=(",", ":"))
    version = hashlib.sha1(payload.encode()).hexdigest()[:10]  # defeats a browser's cache of an older data.js
    with atomic_open(layout.report_data, "w") as f:
        f.write(f"window.BBAM_REPORT = {payload};\n")
    for name in STATIC_FILES:
        shutil.copyfile(STATIC / name, layout.report_dir / name)
    with atomic_open(layout.report_index, "w") as f:
        f.write(_INDEX.format(title=html.escape(data["title"]), data=layout.report_data.name, version=version))
    return layout.report_index
