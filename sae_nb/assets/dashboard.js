/* sae_nb feature dashboard: renders the data embedded by sae_nb.dashboard.generate_dashboard.
   Data layout (JSON script blocks, type application/json):
     #sae-meta   {version, title, meta, vocab:[str], chunk_size, n_chunks, n_full, dense}
     #sae-index  columns over the features in file order: f (feature index), fr (frequency), c (count),
                 mu (mean activation), mx (max activation), ne (number of examples), lb (vocab id of the
                 list label or -1), s (vocab ids searched: top tokens and activating example tokens)
     #sae-chunk-K  the full records of features K*chunk_size ... (K+1)*chunk_size-1, parsed on demand:
                 {h:[edges,counts,scale]|null, tt:[[vid,count]], lp:[[vid,v]], ls:[[vid,v]], nd:[[idx,v]], nc:[[idx,v]],
                  ex:[[vids], [acts], target, text_idx, position, max]}
   Token text only ever reaches the page through textContent / attributes, never innerHTML. */
(() => {
  "use strict";
  const D = document, $ = (id) => D.getElementById(id);
  const POS = "249,115,22", NEG = "37,99,235", ROW = 40, SVG = "http://www.w3.org/2000/svg";

  function el(tag, cls, text) {
    const e = D.createElement(tag);
    if (cls) e.className = cls;
    if (text != null) e.textContent = text;
    return e;
  }
  function fail(msg) {
    console.error("sae_nb dashboard: " + msg);
    const d = $("sae-detail") || D.body;
    d.textContent = "";
    d.append(el("div", "sae-error", "The dashboard could not start: " + msg));
  }
  function readJSON(id) {
    const s = $(id);
    if (!s) throw new Error("the embedded data block #" + id + " is missing; regenerate the file with sae_nb.dashboard.generate_dashboard");
    return JSON.parse(s.textContent);
  }

  // ---- formatting (mirrored by the Python renderer in sae_nb.dashboard) ----
  const CTRL = /[\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f]/g, WS = /^[ \u00a0\t\r\n]+$/;
  function showTok(s) {
    if (s === "") return "\u2205";
    let t = s.replace(/\r\n|\n|\r/g, "\u21b5").replace(/\t/g, "\u21e5")
             .replace(CTRL, (c) => "\\x" + c.charCodeAt(0).toString(16).padStart(2, "0"));
    if (WS.test(s)) t = t.replace(/[ \u00a0]/g, "\u2423");
    return t;
  }
  const isWs = (s) => s === "" || WS.test(s);
  function tokBg(a, scale) {
    if (!a || !(scale > 0)) return "";
    const x = Math.min(1, Math.abs(a) / scale), al = Math.round(Math.max(0.08, x) * 1000) / 1000;
    return "rgba(" + (a > 0 ? POS : NEG) + "," + al + ")";
  }
  function fmt(x) {
    if (x == null || Number.isNaN(x)) return "\u2013";
    if (x === 0) return "0";
    const a = Math.abs(x);
    if (a >= 1e5 || a < 1e-3) return x.toExponential(2);
    return String(Number(x.toPrecision(4)));
  }
  function pct(f) {
    if (f == null || Number.isNaN(f)) return "\u2013";
    if (f === 0) return "0%";
    const p = f * 100;
    return (p >= 0.01 ? String(Number(p.toPrecision(3))) : p.toExponential(1)) + "%";
  }
  const intf = (n) => (n == null ? "\u2013" : Number(n).toLocaleString("en-US"));

  // ---- data ----
  let M, IX;
  try { M = readJSON("sae-meta"); IX = readJSON("sae-index"); }
  catch (e) { fail(e.message); return; }
  const V = M.vocab, N = IX.f.length, posOf = new Map();
  for (let i = 0; i < N; i++) posOf.set(IX.f[i], i);
  const chunks = new Map();
  function record(i) {
    const k = Math.floor(i / M.chunk_size);
    let c = chunks.get(k);
    if (!c) { c = readJSON("sae-chunk-" + k); chunks.set(k, c); }
    return c[i - k * M.chunk_size];
  }
  const label = (i) => (IX.lb[i] >= 0 ? showTok(V[IX.lb[i]]) : "");

  // ---- search and filters ----
  let vocabLower = null, view = [], current = null;
  function vocabHits(q) {
    if (!vocabLower) vocabLower = V.map((s) => s.toLowerCase());
    const hit = new Set(), ql = q.toLowerCase();
    for (let v = 0; v < vocabLower.length; v++) if (vocabLower[v].includes(ql)) hit.add(v);
    return hit;
  }
  function hasTok(i, hits, ctx) {
    if (!hits.size) return false;
    for (const v of IX.s[i]) if (hits.has(v)) return true;
    if (ctx) for (const ex of record(i).ex) for (const v of ex[0]) if (hits.has(v)) return true;
    return false;
  }
  function computeView() {
    const qt = $("sae-q").value.trim(), full = $("sae-full").checked, kind = $("sae-kind").value;
    const ctx = $("sae-ctx").checked, sort = $("sae-sort").value;
    const fmin = parseFloat($("sae-fmin").value), fmax = parseFloat($("sae-fmax").value);
    let idxHit = null, idxOnly = false, hits = null;
    if (qt) {
      const m = /^#\s*(\d+)$/.exec(qt);
      if (m) { idxOnly = true; idxHit = +m[1]; }
      else { if (/^\d+$/.test(qt)) idxHit = +qt; hits = vocabHits(qt); }
    }
    const out = [];
    for (let i = 0; i < N; i++) {
      const fr = IX.fr[i];
      if (full && IX.ne[i] < M.n_full) continue;
      if (kind === "dead" && fr > 0) continue;
      if (kind === "alive" && !(fr > 0)) continue;
      if (kind === "dense" && !(fr >= M.dense)) continue;
      if (!Number.isNaN(fmin) && !(fr * 100 >= fmin)) continue;
      if (!Number.isNaN(fmax) && !(fr * 100 <= fmax)) continue;
      if (qt && !(IX.f[i] === idxHit || (!idxOnly && hasTok(i, hits, ctx)))) continue;
      out.push(i);
    }
    const by = { "freq": (a, b) => IX.fr[b] - IX.fr[a], "freq-asc": (a, b) => IX.fr[a] - IX.fr[b],
                 "max": (a, b) => IX.mx[b] - IX.mx[a], "index": () => 0 }[sort] || (() => 0);
    out.sort((a, b) => by(a, b) || IX.f[a] - IX.f[b]);
    view = out;
    $("sae-count").textContent = "showing " + intf(view.length) + " of " + intf(N) + " features";
    $("sae-list").scrollTop = 0;
    renderList();
  }

  // ---- the virtualised list: only the rows in sight exist in the DOM ----
  const list = $("sae-list"), inner = $("sae-list-inner");
  function row(i, r) {
    const d = el("div", "sae-item"), f = IX.f[i];
    d.style.top = r * ROW + "px";
    d.dataset.feature = f;
    if (!(IX.fr[i] > 0)) d.classList.add("sae-dead");
    if (f === current) d.classList.add("sae-active");
    d.append(el("span", "sae-idx", "#" + f), el("span", "sae-lbl", IX.fr[i] > 0 ? label(i) : "dead"), el("span", "sae-fr", pct(IX.fr[i])));
    const bar = el("span", "sae-bar"), fill = el("i");
    fill.style.width = (IX.fr[i] > 0 ? Math.max(2, Math.min(100, (Math.log10(IX.fr[i]) + 6) / 6 * 100)) : 0) + "%";
    bar.append(fill); d.append(bar);
    d.title = "feature " + f + " \u00b7 frequency " + pct(IX.fr[i]) + " \u00b7 max " + fmt(IX.mx[i]) + " \u00b7 " + IX.ne[i] + " examples";
    return d;
  }
  function renderList() {
    inner.style.height = view.length * ROW + "px";
    const top = list.scrollTop, h = list.clientHeight || 800;
    const a = Math.max(0, Math.floor(top / ROW) - 6), b = Math.min(view.length, Math.ceil((top + h) / ROW) + 6);
    const frag = D.createDocumentFragment();
    for (let r = a; r < b; r++) frag.append(row(view[r], r));
    inner.replaceChildren(frag);
    if (!view.length) inner.append(el("div", "sae-empty", "No feature matches."));
  }
  let raf = 0;
  list.addEventListener("scroll", () => { if (!raf) raf = requestAnimationFrame(() => { raf = 0; renderList(); }); });
  inner.addEventListener("click", (e) => {
    const it = e.target.closest(".sae-item");
    if (it) location.hash = "feature-" + it.dataset.feature;
  });

  // ---- one feature ----
  function stat(k, v) { const s = el("div", "sae-stat"); s.append(el("div", "sae-k", k), el("div", "sae-v", v)); return s; }
  function section(title) { const s = el("section", "sae-sec"); s.append(el("h3", null, title)); return s; }
  function none(text) { return el("div", "sae-none", text); }
  function svg(tag, attrs) { const e = D.createElementNS(SVG, tag); for (const k in attrs) e.setAttribute(k, attrs[k]); return e; }
  function histogram(h) {
    const s = section("Activation histogram" + (h && h[2] === "log" ? " (log x)" : ""));
    s.classList.add("sae-hist");
    if (!h || !h[1] || !h[1].length) { s.append(none("no histogram")); return s; }
    const [edges, counts] = h, W = 420, H = 120, L = 34, B = 18, n = counts.length, cmax = Math.max(1, ...counts);
    const g = svg("svg", { viewBox: "0 0 " + W + " " + H, preserveAspectRatio: "none", role: "img" });
    const bw = (W - L - 4) / n;
    counts.forEach((c, k) => {
      const bh = c > 0 ? Math.max(1, (H - B - 6) * c / cmax) : 0;
      const r = svg("rect", { x: L + k * bw + 0.5, y: H - B - bh, width: Math.max(0.5, bw - 1), height: bh });
      r.append(svg("title", {})); r.firstChild.textContent = "[" + fmt(edges[k]) + ", " + fmt(edges[k + 1]) + "): " + intf(c);
      g.append(r);
    });
    const t = (x, y, txt, anchor) => { const e = svg("text", { x, y, "text-anchor": anchor }); e.textContent = txt; g.append(e); };
    g.append(svg("line", { x1: L, x2: W - 4, y1: H - B + 0.5, y2: H - B + 0.5, stroke: "#adb5bd" }));
    t(L, H - 4, fmt(edges[0]), "start"); t(W - 4, H - 4, fmt(edges[n]), "end");
    t(L - 4, 12, intf(cmax), "end"); t(L - 4, H - B, "0", "end");
    s.append(g);
    return s;
  }
  function tokenTable(title, rows, isCount) {
    const s = section(title);
    if (!rows || !rows.length) { s.append(none("none")); return s; }
    const tb = el("table", "sae-tl"), m = Math.max(...rows.map((r) => Math.abs(r[1]))) || 1;
    for (const [vid, v] of rows) {
      const tr = el("tr"), c1 = el("td"), c2 = el("td", "sae-b"), c3 = el("td", "sae-n", isCount ? intf(v) : fmt(v));
      const chip = el("span", "sae-chip", showTok(V[vid]));
      chip.title = JSON.stringify(V[vid]);
      c1.append(chip);
      const bb = el("div", "sae-bb" + (v < 0 ? " sae-neg" : ""));
      bb.style.width = Math.max(1, 100 * Math.abs(v) / m) + "%";
      c2.append(bb); tr.append(c1, c2, c3); tb.append(tr);
    }
    s.append(tb);
    return s;
  }
  function neighbours(title, rows) {
    const s = section(title);
    if (!rows || !rows.length) { s.append(none("none")); return s; }
    const ul = el("ul", "sae-nb");
    for (const [j, v] of rows) {
      const li = el("li"), k = posOf.get(j);
      if (k === undefined) { li.append(el("span", "sae-missing", "#" + j)); li.title = "feature " + j + " is not in this dashboard"; }
      else {
        const a = el("a", null, "#" + j);
        a.href = "#feature-" + j;
        li.append(a);
        const lb = label(k);
        if (lb) li.append(el("span", "sae-chip", lb));
      }
      li.append(el("span", "sae-n", fmt(v)));
      ul.append(li);
    }
    s.append(ul);
    return s;
  }
  function examples(rec, scale, nTotal) {
    const s = section("Top activating examples");
    const lg = el("span", "sae-legend"); lg.append("0", el("i"), fmt(scale));
    s.firstChild.append(lg);
    if (!rec.ex.length) { s.append(none(nTotal ? "no examples were collected for this feature" : "no examples: the feature never fired")); return s; }
    for (const [toks, acts, tgt, tix, pos, mx] of rec.ex) {
      const row = el("div", "sae-ex"), m = el("div", "sae-exm"), tk = el("div", "sae-toks");
      m.append(el("b", null, fmt(mx)), el("br"), "text " + (tix == null ? "?" : tix) + " \u00b7 pos " + (pos == null ? "?" : pos));
      toks.forEach((vid, k) => {
        const raw = V[vid], a = acts[k], sp = el("span", "sae-t" + (k === tgt ? " sae-tgt" : "") + (isWs(raw) ? " sae-ws" : ""), showTok(raw));
        const bg = tokBg(a, scale);
        if (bg) sp.style.backgroundColor = bg;
        sp.title = "activation " + a + "\ntoken " + JSON.stringify(raw);
        sp.dataset.act = a;
        tk.append(sp);
      });
      row.append(m, tk);
      s.append(row);
    }
    return s;
  }
  function renderFeature(i) {
    const rec = record(i), f = IX.f[i], fr = IX.fr[i];
    const root = el("article", "sae-feature");
    root.id = "sae-feature-view";
    root.dataset.feature = f;
    const h = el("h2", null, "Feature #" + f);
    if (!(fr > 0)) h.append(el("span", "sae-badge sae-dead-b", "dead"));
    else if (fr >= M.dense) h.append(el("span", "sae-badge sae-dense-b", "dense"));
    root.append(h);
    const st = el("div", "sae-stats");
    st.append(stat("frequency", pct(fr)), stat("count", intf(IX.c[i])), stat("mean act.", fmt(IX.mu[i])),
              stat("max act.", fmt(IX.mx[i])), stat("examples", String(IX.ne[i])));
    root.append(st);
    const g = el("div", "sae-grid");
    g.append(histogram(rec.h), tokenTable("Top tokens (count)", rec.tt, true),
             tokenTable("Logit lens: promoted", rec.lp, false), tokenTable("Logit lens: suppressed", rec.ls, false),
             neighbours("Neighbours: decoder cosine", rec.nd), neighbours("Neighbours: co-occurrence", rec.nc));
    root.append(g);
    const scale = IX.mx[i] > 0 ? IX.mx[i] : Math.max(0, ...rec.ex.map((e) => e[5] || 0));
    root.append(examples(rec, scale, IX.c[i]));
    return root;
  }
  function showFeature(f) {
    const det = $("sae-detail"), i = posOf.get(f);
    det.textContent = "";
    det.scrollTop = 0;
    if (i === undefined) {
      current = null;
      det.append(el("div", "sae-empty", "Feature #" + f + " is not in this dashboard (it holds " + intf(N) + " features)."));
      return;
    }
    current = f;
    det.append(renderFeature(i));
    D.title = "#" + f + " \u00b7 " + M.title;
    const r = view.indexOf(i);
    if (r >= 0 && (r * ROW < list.scrollTop || (r + 1) * ROW > list.scrollTop + list.clientHeight)) list.scrollTop = Math.max(0, r * ROW - list.clientHeight / 2);
    renderList();
  }
  function fromHash() {
    const m = /^#feature-(\d+)$/.exec(location.hash);
    return m ? +m[1] : null;
  }

  // ---- wiring ----
  try {
    const meta = M.meta || {}, line = $("sae-meta-line");
    const kv = [["model", meta.model_name], ["hook", meta.hook_spec], ["d_sae", meta.d_sae != null ? intf(meta.d_sae) : null],
                ["tokens", meta.n_tokens != null ? intf(meta.n_tokens) : null], ["features shown", intf(N)]];
    for (const [k, v] of kv) if (v != null) { const s = el("span", null, k + " "); s.append(el("b", null, String(v))); line.append(s); }
    let deb = 0;
    $("sae-q").addEventListener("input", () => { clearTimeout(deb); deb = setTimeout(computeView, 120); });
    for (const id of ["sae-full", "sae-kind", "sae-fmin", "sae-fmax", "sae-sort", "sae-ctx"]) $(id).addEventListener("change", computeView);
    window.addEventListener("hashchange", () => { const f = fromHash(); if (f !== null) showFeature(f); });
    D.addEventListener("keydown", (e) => {
      if (e.target.closest("input,select,textarea") || e.ctrlKey || e.metaKey || e.altKey) return;
      const step = { ArrowDown: 1, j: 1, ArrowUp: -1, k: -1 }[e.key];
      if (!step || !view.length) return;
      const r = view.indexOf(posOf.get(current));
      const n = view[Math.min(view.length - 1, Math.max(0, r < 0 ? 0 : r + step))];
      location.hash = "feature-" + IX.f[n];
      e.preventDefault();
    });
    computeView();
    const f0 = fromHash();
    if (f0 !== null) showFeature(f0);
    else if (view.length) showFeature(IX.f[view[0]]);
    else $("sae-detail").replaceChildren(el("div", "sae-empty", "This dashboard holds no features."));
    window.saeDashboard = { ready: performance.now(), n: N, show: showFeature, record, view: () => view.map((i) => IX.f[i]) };
    D.body.dataset.ready = "1";
  } catch (e) { fail(e && e.stack ? e.stack : String(e)); }
})();
