// The review page of bbam-captum: a sortable, filterable table of boxes and a gallery of images,
// both paginated, drawn from window.BBAM_REPORT (data.js). No network, no libraries.
(function () {
  "use strict";
  const data = window.BBAM_REPORT;
  const PAGE = { boxes: 50, images: 24 };
  const fmt = (digits) => (v) => (v === null || v === undefined ? "–" : Number(v).toFixed(digits));
  const COLUMNS = [
    { key: "rank", label: "#", title: "review order: most and clearest flags first" },
    { key: null, label: "map / mask", title: "BBAM map; pseudo mask white, true mask green, box cyan" },
    { key: "image_id", label: "image" },
    { key: "class", label: "class" },
    { key: "box_area", label: "box w×h", title: "box width × height in pixels (sorts by area)",
      show: (r) => `${Math.round(r.box_w)}×${Math.round(r.box_h)}` },
    { key: "positives", label: "positives", title: "jittered proposals in O+" },
    { key: "iou_threshold", label: "IoU thr", title: "IoU threshold that selected the positives", show: (r) => fmt(2)(r.iou_threshold) },
    { key: "fallback", label: "fallback", show: (r) => (r.fallback ? "yes" : "") },
    { key: "stride", label: "stride" },
    { key: "final_loss", label: "loss", title: "final BBAM loss", show: (r) => fmt(3)(r.final_loss) },
    { key: "fill", label: "mask / box", title: "mask area over box area", show: (r) => fmt(2)(r.fill) },
    { key: "claimed", label: "claimed", title: "share of the mask also in another box's mask", show: (r) => fmt(2)(r.claimed) },
    { key: "covers", label: "covers", title: "largest share of another box's mask that this mask covers", show: (r) => fmt(2)(r.covers) },
    { key: "iou", label: "IoU", title: "IoU of the pseudo mask with the true mask (--gt)", show: (r) => fmt(3)(r.iou), gt: true },
    { key: "flags", label: "flags", show: (r) => r.flags.map((f) => `<span class="flag" title="${data.flags[f]}">${f}</span>`).join(" ") },
  ].filter((c) => !c.gt || data.has_gt);

  const state = { sort: "rank", dir: 1, cls: "", flag: "", tab: "boxes", page: { boxes: 0, images: 0 } };
  const byImage = new Map(data.images.map((im) => [im.id, im]));
  data.rows.forEach((r) => { r.box_area = r.box_w * r.box_h; r.flag_count = r.flags.length; });
  const $ = (sel) => document.querySelector(sel);
  // Class names, file names and reasons come from the user's files: escape them.
  const esc = (text) => String(text).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

  function visibleRows() {
    return data.rows.filter((r) => (!state.cls || r.class === state.cls) &&
      (!state.flag || (state.flag === "*" ? r.flags.length > 0 : state.flag === "-" ? r.flags.length === 0
        : r.flags.includes(state.flag))));
  }

  function sortValue(r, key) { return key === "flags" ? r.flag_count : r[key]; }

  function sorted(rows) {
    const key = state.sort, dir = state.dir;
    return rows.slice().sort((a, b) => {
      const va = sortValue(a, key), vb = sortValue(b, key);
      const na = va === null || va === undefined, nb = vb === null || vb === undefined;
      if (na || nb) return na === nb ? a.rank - b.rank : na ? 1 : -1; // empty cells last either way
      if (va < vb) return -dir;
      if (va > vb) return dir;
      return a.rank - b.rank;
    });
  }

  function img(src, alt, cls) {
    return `<img class="${cls}" src="${src}" alt="${alt}" loading="lazy" decoding="async">`;
  }

  function renderHead() {
    const tr = $("#box-table thead tr");
    tr.innerHTML = COLUMNS.map((c) => {
      const sort = c.key === state.sort ? (state.dir > 0 ? "ascending" : "descending") : "none";
      return `<th${c.key ? ` data-key="${c.key}" aria-sort="${sort}" class="sortable"` : ""}` +
        `${c.title ? ` title="${c.title}"` : ""}>${c.label}</th>`;
    }).join("");
  }

  function cell(c, r) {
    if (c.key === null) return `<td class="thumb">${img(r.thumb, `box ${r.ann_id}`, "box-thumb")}</td>`;
    if (c.key === "image_id") return `<td><a href="#image-${r.image_id}" data-image="${r.image_id}">${r.image_id}</a></td>`;
    const value = c.show ? c.show(r) : r[c.key] === null || r[c.key] === undefined ? "–" : esc(r[c.key]);
    return `<td class="${c.key}">${value}</td>`;
  }

  function pageOf(items, tab) {
    const pages = Math.max(1, Math.ceil(items.length / PAGE[tab]));
    state.page[tab] = Math.min(state.page[tab], pages - 1);
    const start = state.page[tab] * PAGE[tab];
    return { items: items.slice(start, start + PAGE[tab]), pages };
  }

  function renderBoxes(rows) {
    const { items, pages } = pageOf(sorted(rows), "boxes");
    $("#box-table tbody").innerHTML = items.map((r) =>
      `<tr data-ann-id="${r.ann_id}" data-class="${esc(r.class)}" class="${r.flags.length ? "flagged" : ""}">` +
      COLUMNS.map((c) => cell(c, r)).join("") + "</tr>").join("");
    return pages;
  }

  function renderImages(rows) {
    const rowsOf = new Map();
    rows.forEach((r) => { if (!rowsOf.has(r.image_id)) rowsOf.set(r.image_id, []); rowsOf.get(r.image_id).push(r); });
    const images = [...rowsOf.keys()].map((id) => byImage.get(id))
      .sort((a, b) => Math.min(...rowsOf.get(a.id).map((r) => r.rank)) - Math.min(...rowsOf.get(b.id).map((r) => r.rank)));
    const { items, pages } = pageOf(images, "images");
    const shown = new Set(rows.map((r) => r.ann_id));
    $("#images").innerHTML = items.map((im) => {
      const boxes = data.rows.filter((r) => r.image_id === im.id).sort((a, b) => a.index - b.index);
      return `<article class="card" id="image-${im.id}"><h2>image ${im.id} <small>${esc(im.file)} · ` +
        `${im.width}×${im.height} · ignored ${(100 * im.ignored).toFixed(1)} %</small></h2>` +
        `<div class="views">${img(im.thumb, `image ${im.id}`, "image-thumb")}${img(im.label_thumb, `label ${im.id}`, "image-thumb")}</div>` +
        `<div class="strip">${boxes.map((r) => `<figure class="${shown.has(r.ann_id) ? "" : "dim"} ${r.flags.length ? "flagged" : ""}">` +
          `${img(r.thumb, `box ${r.ann_id}`, "box-thumb")}<figcaption><span class="swatch" style="background:${colour(r.index)}"></span>` +
          `#${r.rank} ${esc(r.class)} · fill ${fmt(2)(r.fill)}${r.iou !== null ? ` · IoU ${fmt(3)(r.iou)}` : ""}` +
          `${r.flags.map((f) => ` <span class="flag">${f}</span>`).join("")}</figcaption></figure>`).join("")}</div></article>`;
    }).join("");
    return pages;
  }

  const TAB10 = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"];
  function colour(i) { return TAB10[i % TAB10.length]; }

  function renderPager(pages) {
    const tab = state.tab, page = state.page[tab];
    $("#pager").innerHTML = pages > 1 ? `<button type="button" data-page="${page - 1}" ${page === 0 ? "disabled" : ""}>‹ previous</button>` +
      ` page ${page + 1} of ${pages} ` +
      `<button type="button" data-page="${page + 1}" ${page + 1 >= pages ? "disabled" : ""}>next ›</button>` : "";
  }

  function render() {
    const rows = visibleRows();
    renderHead();
    const pages = state.tab === "boxes" ? renderBoxes(rows) : renderImages(rows);
    $("#boxes").hidden = state.tab !== "boxes";
    $("#images").hidden = state.tab !== "images";
    document.querySelectorAll(".tabs button").forEach((b) => b.classList.toggle("active", b.dataset.tab === state.tab));
    $("#count").textContent = `${rows.length} of ${data.rows.length} boxes`;
    renderPager(pages);
  }

  function showImage(id) {
    state.tab = "images";
    state.cls = ""; state.flag = "";
    $("#class-filter").value = ""; $("#flag-filter").value = "";
    const rows = visibleRows();
    const order = [...new Set(sorted(rows).sort((a, b) => a.rank - b.rank).map((r) => r.image_id))];
    state.page.images = Math.floor(order.indexOf(id) / PAGE.images);
    render();
    const card = document.getElementById(`image-${id}`);
    if (card) { card.scrollIntoView(); card.classList.add("target"); }
  }

  function setup() {
    const s = data.summary;
    $("#summary").textContent = `${s.images} images, ${s.boxes} boxes, ${s.flagged} flagged` +
      (s.mean_iou !== null ? `, mean IoU with the true masks ${s.mean_iou.toFixed(3)}` : "") +
      (s.flag_recall ? `; ${Math.round(100 * s.flag_recall.worst_flagged)} % of the ${s.flag_recall.worst} masks of ` +
        `lowest IoU carry a flag` : "") +
      (s.not_shown ? `; ${s.not_shown} images not shown (see the legend)` : "");
    $("#class-filter").insertAdjacentHTML("beforeend", [...new Set(data.rows.map((r) => r.class))].sort()
      .map((c) => `<option value="${esc(c)}">${esc(c)}</option>`).join(""));
    $("#flag-filter").insertAdjacentHTML("beforeend", Object.keys(data.flags)
      .map((f) => `<option value="${f}">${f} (${s.per_flag[f]})</option>`).join(""));
    $("#legend").innerHTML = "<h2>flags</h2><dl>" + Object.entries(data.flags).map(([f, text]) => `<dt class="flag">${f}</dt><dd>${text}</dd>`).join("") +
      "</dl><p>Box thumbnails: BBAM map as heat, pseudo mask outlined white, true mask green (with --gt), box cyan. " +
      "Image thumbnails: boxes and masks in one colour per box; the semantic label with ignored pixels striped magenta.</p>" +
      (data.failures.length ? "<h2>not shown</h2><ul>" + data.failures.map((f) => `<li>image ${f.image_id}: ${esc(f.reason)}</li>`).join("") + "</ul>" : "");
    $("#box-table thead").addEventListener("click", (e) => {
      const th = e.target.closest("th[data-key]");
      if (!th) return;
      state.dir = th.dataset.key === state.sort ? -state.dir : 1;
      state.sort = th.dataset.key;
      state.page.boxes = 0;
      render();
    });
    $("#class-filter").addEventListener("change", (e) => { state.cls = e.target.value; state.page = { boxes: 0, images: 0 }; render(); });
    $("#flag-filter").addEventListener("change", (e) => { state.flag = e.target.value; state.page = { boxes: 0, images: 0 }; render(); });
    $("#reset-order").addEventListener("click", () => { state.sort = "rank"; state.dir = 1; render(); });
    $("#controls .tabs").addEventListener("click", (e) => {
      if (e.target.dataset.tab) { state.tab = e.target.dataset.tab; render(); }
    });
    $("#pager").addEventListener("click", (e) => {
      if (e.target.dataset.page !== undefined) { state.page[state.tab] = Number(e.target.dataset.page); render(); window.scrollTo(0, 0); }
    });
    $("#box-table tbody").addEventListener("click", (e) => {
      const a = e.target.closest("a[data-image]");
      if (a) { e.preventDefault(); showImage(Number(a.dataset.image)); }
    });
    render();
    const m = /^#image-(\d+)$/.exec(location.hash);
    if (m) showImage(Number(m[1]));
  }

  setup();
})();
