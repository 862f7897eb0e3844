// peerpigeon mesh view: draws a mesh graph (nodes, links, hubs, message pulses) in SVG.
//
// Self-contained ES module, no dependencies, no network. Used two ways:
//   - as an anywidget front end (default export `render`): the graph comes from the
//     widget's synced `graph` trait (see peerpigeon/widgets/graph.py, encode_snapshot);
//   - by the offline embed page: `createMeshView(el, options).update(graph)`.
// The layout is a small force-directed simulation (repulsion, springs along links, a pull
// to the centre), cooled after each structural change; a circle layout beyond
// `maxForceNodes` nodes. Message counters that grew since the last update become pulses
// that travel along the link.

const SVG_NS = "http://www.w3.org/2000/svg";
const STYLE_ID = "pp-meshview-style";

const CSS = `
.pp-mesh { font: 12px/1.4 system-ui, -apple-system, "Segoe UI", sans-serif; color: #202124;
  border: 1px solid #dadce0; border-radius: 6px; background: #fff; overflow: hidden; }
.pp-mesh-head { display: flex; flex-wrap: wrap; gap: 4px 14px; padding: 6px 10px;
  border-bottom: 1px solid #eceff1; background: #f8f9fa; }
.pp-mesh-title { font-weight: 600; }
.pp-mesh-counters span { margin-right: 12px; white-space: nowrap; }
.pp-mesh-svg { display: block; width: 100%; background: #fff; }
.pp-mesh-legend { display: flex; flex-wrap: wrap; gap: 4px 12px; padding: 4px 10px 6px;
  color: #5f6368; border-top: 1px solid #eceff1; }
.pp-mesh-legend i { display: inline-block; width: 9px; height: 9px; border-radius: 50%;
  margin-right: 4px; vertical-align: -1px; }
.pp-node { stroke: #fff; stroke-width: 1.2; }
.pp-node[data-status="online"] { fill: #34a853; }
.pp-node[data-status="connecting"] { fill: #f9ab00; }
.pp-node[data-status="offline"] { fill: #9aa0a6; }
.pp-node[data-status="known"] { fill: #d2e3fc; stroke: #8ab4f8; }
.pp-node[data-kind="hub"] { fill: #673ab7; stroke: #fff; stroke-width: 2; }
.pp-node[data-kind="hub"][data-status="offline"] { fill: #b39ddb; }
.pp-node[data-self="1"] { stroke: #d93025; stroke-width: 3; }
.pp-node.pp-flash { stroke: #ff6d00; stroke-width: 2.5; }
.pp-edge { stroke: #bdc1c6; stroke-width: 1; }
.pp-edge[data-kind="mesh"] { stroke: #4285f4; stroke-width: 1.6; }
.pp-edge[data-kind="hub"] { stroke: #673ab7; stroke-width: 3; }
.pp-edge[data-kind="discovered"] { stroke: #e8eaed; stroke-dasharray: 2 3; }
.pp-edge[data-status="connecting"] { stroke-dasharray: 5 4; }
.pp-edge[data-status="cut"] { stroke: #ea4335; stroke-dasharray: 2 4; stroke-width: 1.4; }
.pp-pulse { fill: #ff6d00; pointer-events: none; }
.pp-label { font-size: 10px; fill: #3c4043; pointer-events: none; paint-order: stroke;
  stroke: #fff; stroke-width: 3px; }
`;

const DEFAULTS = {
  height: 420,
  maxForceNodes: 600, // beyond this, a circle layout (the force step is O(n^2))
  labels: "auto", // "auto" (hubs, self, and all when small), "all", "none"
  animate: true, // message pulses
  maxPulses: 400,
  pulseMs: 600,
  frameBudgetMs: 8, // layout work per animation frame
};

function hashString(s) {
  // FNV-1a: stable per id, so a layout is the same on every run.
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

function svgEl(tag, attrs) {
  const e = document.createElementNS(SVG_NS, tag);
  if (attrs) for (const k in attrs) e.setAttribute(k, attrs[k]);
  return e;
}

function ensureStyle(doc) {
  if (doc.getElementById(STYLE_ID)) return;
  const style = doc.createElement("style");
  style.id = STYLE_ID;
  style.textContent = CSS;
  (doc.head || doc.documentElement).appendChild(style);
}

function fmt(n) {
  if (typeof n !== "number") return String(n);
  if (Number.isInteger(n)) return n.toLocaleString("en-US");
  return n.toFixed(2);
}

export function createMeshView(el, options = {}) {
  const opts = Object.assign({}, DEFAULTS, options);
  const doc = el.ownerDocument || document;
  ensureStyle(doc);

  const root = doc.createElement("div");
  root.className = "pp-mesh";
  const head = doc.createElement("div");
  head.className = "pp-mesh-head";
  const title = doc.createElement("span");
  title.className = "pp-mesh-title";
  const counters = doc.createElement("span");
  counters.className = "pp-mesh-counters";
  head.append(title, counters);
  const svg = svgEl("svg", { class: "pp-mesh-svg", viewBox: "-100 -100 200 200" });
  svg.style.height = `${opts.height}px`;
  svg.setAttribute("preserveAspectRatio", "xMidYMid meet");
  svg.dataset.nodes = "0";
  svg.dataset.edges = "0";
  svg.dataset.updates = "0";
  const gEdges = svgEl("g", { class: "pp-edges" });
  const gPulses = svgEl("g", { class: "pp-pulses" });
  const gNodes = svgEl("g", { class: "pp-nodes" });
  const gLabels = svgEl("g", { class: "pp-labels" });
  svg.append(gEdges, gPulses, gNodes, gLabels);
  const legend = doc.createElement("div");
  legend.className = "pp-mesh-legend";
  legend.innerHTML =
    '<span><i style="background:#34a853"></i>online</span>' +
    '<span><i style="background:#f9ab00"></i>connecting</span>' +
    '<span><i style="background:#9aa0a6"></i>offline</span>' +
    '<span><i style="background:#d2e3fc;border:1px solid #8ab4f8"></i>known</span>' +
    '<span><i style="background:#673ab7"></i>hub</span>' +
    '<span><i style="background:#fff;border:2px solid #d93025"></i>self</span>' +
    '<span><i style="background:#ea4335;border-radius:0;height:2px"></i>cut link</span>' +
    '<span><i style="background:#ff6d00"></i>message</span>';
  root.append(head, svg, legend);
  el.appendChild(root);

  const nodes = new Map(); // id -> node record
  const edges = new Map(); // key -> edge record
  let pulses = []; // {edge, t0, reverse, el}
  let alpha = 0;
  let frameHandle = 0;
  let destroyed = false;
  let view = { x: -100, y: -100, w: 200, h: 200 };
  let last = null; // {t, msgs, wall}
  const stats = { updates: 0, frames: 0, layoutTicks: 0, updateMs: 0, maxUpdateMs: 0,
                  frameMs: 0, pulsesSpawned: 0, pulsesDropped: 0 };

  function labelMode(n) {
    if (opts.labels === "none") return false;
    if (opts.labels === "all") return true;
    return n.data.kind === "hub" || n.data.self || nodes.size <= 40;
  }

  function placeNew(id, data, neighbourOf) {
    const h = hashString(id);
    const angle = ((h % 3600) / 3600) * 2 * Math.PI;
    const anchor = neighbourOf(id);
    if (anchor) {
      const r = 12 + ((h >>> 12) % 10);
      return { x: anchor.x + r * Math.cos(angle), y: anchor.y + r * Math.sin(angle) };
    }
    const r = data.kind === "hub" ? 10 + ((h >>> 8) % 20) : 60 + ((h >>> 8) % 60);
    return { x: r * Math.cos(angle), y: r * Math.sin(angle) };
  }

  function radius(d) {
    const small = nodes.size > 60;
    if (d.kind === "hub") return small ? 8 : 10;
    return (small ? 4 : 6) + (d.self ? 2 : 0);
  }

  function update(graph) {
    if (destroyed || !graph || !Array.isArray(graph.nodes)) return;
    const t0 = performance.now();
    let structural = false;
    const incoming = new Map();
    for (const d of graph.nodes) incoming.set(d.id, d);

    // Nodes: remove the gone, add the new, update the rest.
    for (const [id, n] of nodes) {
      if (!incoming.has(id)) {
        n.el.remove();
        if (n.label) n.label.remove();
        nodes.delete(id);
        structural = true;
      }
    }
    const adjacency = new Map();
    for (const e of graph.edges) {
      if (!adjacency.has(e.a)) adjacency.set(e.a, []);
      if (!adjacency.has(e.b)) adjacency.set(e.b, []);
      adjacency.get(e.a).push(e.b);
      adjacency.get(e.b).push(e.a);
    }
    const neighbourOf = (id) => {
      for (const other of adjacency.get(id) || []) {
        const n = nodes.get(other);
        if (n) return n;
      }
      return null;
    };
    const grown = []; // nodes whose message counter moved
    for (const d of graph.nodes) {
      let n = nodes.get(d.id);
      if (!n) {
        const p = placeNew(d.id, d, neighbourOf);
        const c = svgEl("circle", { class: "pp-node", "data-node": d.id });
        c.appendChild(svgEl("title"));
        gNodes.appendChild(c);
        n = { id: d.id, data: {}, x: p.x, y: p.y, vx: 0, vy: 0, el: c, label: null,
              msgs: d.msgs, flashUntil: 0 };
        nodes.set(d.id, n);
        structural = true;
      }
      const prev = n.data;
      if (prev.kind !== d.kind) n.el.setAttribute("data-kind", d.kind);
      if (prev.status !== d.status) n.el.setAttribute("data-status", d.status);
      if (prev.self !== d.self) n.el.setAttribute("data-self", d.self ? "1" : "0");
      if (prev.detail !== d.detail || prev.label !== d.label || prev.msgs !== d.msgs) {
        n.el.firstChild.textContent = `${d.label}: ${d.detail}  (${d.msgs} msgs)`;
      }
      if (d.msgs > n.msgs) {
        n.flashUntil = t0 + 250;
        grown.push(n);
      }
      n.msgs = d.msgs;
      n.data = d;
    }
    for (const n of nodes.values()) {
      n.el.setAttribute("r", radius(n.data));
      const want = labelMode(n);
      if (want && !n.label) {
        n.label = svgEl("text", { class: "pp-label", "data-label": n.id });
        gLabels.appendChild(n.label);
      } else if (!want && n.label) {
        n.label.remove();
        n.label = null;
      }
      if (n.label && n.label.textContent !== n.data.label) n.label.textContent = n.data.label;
    }

    // Edges.
    const seen = new Set();
    const pulsed = new Set(); // nodes at either end of a link that pulsed
    for (const e of graph.edges) {
      const [lo, hi] = e.a <= e.b ? [e.a, e.b] : [e.b, e.a];
      const key = `${lo}|${hi}|${e.kind}`;
      if (seen.has(key) || !nodes.has(lo) || !nodes.has(hi)) continue;
      seen.add(key);
      let r = edges.get(key);
      if (!r) {
        const line = svgEl("line", { class: "pp-edge", "data-edge": key, "data-kind": e.kind });
        gEdges.appendChild(line);
        r = { key, a: nodes.get(e.a), b: nodes.get(e.b), el: line, status: null, msgs: e.msgs,
              kind: e.kind };
        edges.set(key, r);
        structural = true;
      } else {
        r.a = nodes.get(e.a);
        r.b = nodes.get(e.b);
      }
      if (r.status !== e.status) {
        r.el.setAttribute("data-status", e.status);
        r.status = e.status;
      }
      const delta = e.msgs - r.msgs;
      if (delta > 0 && opts.animate) {
        spawnPulses(r, Math.min(delta, 3), t0, null);
        pulsed.add(r.a).add(r.b);
      }
      r.msgs = e.msgs;
    }
    for (const [key, r] of edges) {
      if (!seen.has(key)) {
        r.el.remove();
        edges.delete(key);
        structural = true;
      }
    }
    // Sources without per-link counts: a node that sent or received sends a pulse out
    // along up to two of its links (mesh links first).
    if (opts.animate && grown.length) {
      const incident = new Map();
      for (const r of edges.values()) {
        for (const end of [r.a, r.b]) {
          if (!incident.has(end)) incident.set(end, []);
          incident.get(end).push(r);
        }
      }
      for (const n of grown) {
        if (pulsed.has(n)) continue;
        const mine = (incident.get(n) || []).slice().sort(
          (x, y) => (x.kind === "mesh" ? 0 : 1) - (y.kind === "mesh" ? 0 : 1));
        const start = n.msgs % Math.max(1, mine.length);
        for (let i = 0; i < Math.min(2, mine.length); i++) {
          spawnPulses(mine[(start + i) % mine.length], 1, t0, n);
        }
      }
    }
    if (pulses.length) {
      const live = [];
      for (const p of pulses) {
        if (edges.get(p.edge.key) === p.edge) live.push(p);
        else p.el.remove(); // its link is gone
      }
      pulses = live;
    }

    // Header.
    title.textContent = graph.title || "mesh";
    let totalMsgs = 0; // what the peers sent and received (hubs would count it twice)
    for (const d of graph.nodes) if (d.kind !== "hub") totalMsgs += d.msgs;
    let rate = "";
    if (last && graph.t > last.t) {
      rate = ` (+${fmt(Math.round((totalMsgs - last.msgs) / (graph.t - last.t)))}/s)`;
    }
    last = { t: graph.t, msgs: totalMsgs };
    const parts = [`t=${Number(graph.t).toFixed(2)}s`, `${nodes.size} nodes`,
                   `${edges.size} edges`, `msgs ${fmt(totalMsgs)}${rate}`];
    for (const k in graph.counters || {}) parts.push(`${k} ${fmt(graph.counters[k])}`);
    counters.innerHTML = "";
    for (const p of parts) {
      const s = doc.createElement("span");
      s.textContent = p;
      counters.appendChild(s);
    }

    svg.dataset.nodes = String(nodes.size);
    svg.dataset.edges = String(edges.size);
    stats.updates += 1;
    svg.dataset.updates = String(stats.updates);

    if (structural) {
      alpha = Math.max(alpha, stats.updates === 1 ? 1 : 0.5);
      svg.dataset.settled = "0";
      if (stats.updates === 1) prewarm();
    }
    draw(t0);
    svg.dataset.ready = "1";
    const ms = performance.now() - t0;
    stats.updateMs = ms;
    stats.maxUpdateMs = Math.max(stats.maxUpdateMs, ms);
    schedule();
  }

  function spawnPulses(edge, count, now, from) {
    for (let i = 0; i < count; i++) {
      if (pulses.length >= opts.maxPulses) {
        stats.pulsesDropped += 1;
        continue;
      }
      const c = svgEl("circle", { class: "pp-pulse", r: 2.2 });
      gPulses.appendChild(c);
      const reverse = from ? edge.b === from : (edge.msgs + i) % 2 === 1;
      pulses.push({ edge, t0: now + i * 90, reverse, el: c });
      stats.pulsesSpawned += 1;
    }
  }

  // --- layout --------------------------------------------------------------------------------

  function useForce() {
    return nodes.size <= opts.maxForceNodes;
  }

  function circleLayout() {
    const list = [...nodes.values()];
    const peers = list.filter((n) => n.data.kind !== "hub");
    const hubs = list.filter((n) => n.data.kind === "hub");
    const R = Math.max(80, peers.length * 1.6);
    peers.sort((a, b) => (a.id < b.id ? -1 : 1));
    peers.forEach((n, i) => {
      const a = (i / peers.length) * 2 * Math.PI;
      n.x = R * Math.cos(a);
      n.y = R * Math.sin(a);
    });
    hubs.forEach((n, i) => {
      const a = (i / Math.max(1, hubs.length)) * 2 * Math.PI;
      n.x = hubs.length > 1 ? 20 * Math.cos(a) : 0;
      n.y = hubs.length > 1 ? 20 * Math.sin(a) : 0;
    });
    alpha = 0;
  }

  function tick() {
    const list = [...nodes.values()];
    const n = list.length;
    if (!n) {
      alpha = 0;
      return;
    }
    const hubs = list.filter((x) => x.data.kind === "hub");
    // Repulsion (all pairs): pushes nodes apart, strongest up close.
    const strength = 60 * alpha;
    for (let i = 0; i < n; i++) {
      const p = list[i];
      for (let j = i + 1; j < n; j++) {
        const q = list[j];
        let dx = q.x - p.x;
        let dy = q.y - p.y;
        let d2 = dx * dx + dy * dy;
        if (d2 < 0.01) {
          dx = (hashString(p.id + q.id) % 7) - 3 || 1;
          dy = 1;
          d2 = dx * dx + dy * dy;
        }
        if (d2 > 40000) continue;
        const f = strength / d2;
        p.vx -= dx * f;
        p.vy -= dy * f;
        q.vx += dx * f;
        q.vy += dy * f;
      }
    }
    // Springs along links; with mesh links present, signaling links barely pull (the
    // mesh's own shape should show, not a star around the hub).
    let hasMesh = false;
    for (const e of edges.values()) if (e.kind === "mesh") { hasMesh = true; break; }
    for (const e of edges.values()) {
      const { a, b } = e;
      if (!a || !b) continue;
      const dx = b.x - a.x;
      const dy = b.y - a.y;
      const d = Math.sqrt(dx * dx + dy * dy) || 0.01;
      const target = e.kind === "signaling" ? (n > 60 ? 70 : 45) : e.kind === "discovered" ? 60 : 28;
      const weak = e.kind === "discovered" || (hasMesh && e.kind === "signaling");
      const k = (weak ? (hasMesh ? 0.004 : 0.02) : 0.08) * alpha;
      const f = ((d - target) / d) * k;
      a.vx += dx * f;
      a.vy += dy * f;
      b.vx -= dx * f;
      b.vy -= dy * f;
    }
    // Pull to the centre; a lone hub stays at it.
    const g = 0.02 * alpha;
    for (const p of list) {
      p.vx -= p.x * g;
      p.vy -= p.y * g;
    }
    for (const p of list) {
      if (hubs.length === 1 && p === hubs[0]) {
        p.x = 0;
        p.y = 0;
        p.vx = p.vy = 0;
        continue;
      }
      p.vx *= 0.6;
      p.vy *= 0.6;
      const v = Math.hypot(p.vx, p.vy);
      if (v > 20) {
        p.vx *= 20 / v;
        p.vy *= 20 / v;
      }
      p.x += p.vx;
      p.y += p.vy;
    }
    alpha *= 0.95;
    if (alpha < 0.004) alpha = 0;
    stats.layoutTicks += 1;
  }

  function prewarm() {
    // First paint already laid out: up to ~120 ms of ticks.
    if (!useForce()) return;
    const start = performance.now();
    while (alpha > 0.05 && performance.now() - start < 120) tick();
  }

  function fitView() {
    let minX = Infinity, minY = Infinity, maxX = -Infinity, maxY = -Infinity;
    for (const n of nodes.values()) {
      if (n.x < minX) minX = n.x;
      if (n.y < minY) minY = n.y;
      if (n.x > maxX) maxX = n.x;
      if (n.y > maxY) maxY = n.y;
    }
    if (!Number.isFinite(minX)) return;
    const pad = 20;
    const target = { x: minX - pad, y: minY - pad, w: maxX - minX + 2 * pad,
                     h: maxY - minY + 2 * pad };
    const s = 0.35; // ease towards the target box
    view = { x: view.x + (target.x - view.x) * s, y: view.y + (target.y - view.y) * s,
             w: view.w + (target.w - view.w) * s, h: view.h + (target.h - view.h) * s };
    if (stats.frames < 2 || alpha === 0) view = target;
    svg.setAttribute("viewBox", `${view.x.toFixed(1)} ${view.y.toFixed(1)} ` +
                                `${Math.max(view.w, 1).toFixed(1)} ${Math.max(view.h, 1).toFixed(1)}`);
  }

  function draw(now) {
    for (const n of nodes.values()) {
      n.el.setAttribute("cx", n.x.toFixed(1));
      n.el.setAttribute("cy", n.y.toFixed(1));
      const flash = n.flashUntil > now;
      if (flash !== n.flashing) {
        n.el.classList.toggle("pp-flash", flash);
        n.flashing = flash;
      }
      if (n.label) {
        n.label.setAttribute("x", (n.x + 7).toFixed(1));
        n.label.setAttribute("y", (n.y - 7).toFixed(1));
      }
    }
    for (const e of edges.values()) {
      e.el.setAttribute("x1", e.a.x.toFixed(1));
      e.el.setAttribute("y1", e.a.y.toFixed(1));
      e.el.setAttribute("x2", e.b.x.toFixed(1));
      e.el.setAttribute("y2", e.b.y.toFixed(1));
    }
    if (pulses.length) {
      const keep = [];
      for (const p of pulses) {
        const f = (now - p.t0) / opts.pulseMs;
        if (f >= 1) {
          p.el.remove();
          continue;
        }
        keep.push(p);
        const u = Math.max(0, f);
        const [s, t] = p.reverse ? [p.edge.b, p.edge.a] : [p.edge.a, p.edge.b];
        p.el.setAttribute("cx", (s.x + (t.x - s.x) * u).toFixed(1));
        p.el.setAttribute("cy", (s.y + (t.y - s.y) * u).toFixed(1));
        p.el.style.opacity = f < 0 ? "0" : "1";
      }
      pulses = keep;
    }
    fitView();
  }

  function frame(now) {
    frameHandle = 0;
    if (destroyed) return;
    const start = performance.now();
    if (alpha > 0) {
      if (useForce()) {
        do tick();
        while (alpha > 0 && performance.now() - start < opts.frameBudgetMs);
      } else {
        circleLayout();
      }
      if (alpha === 0) svg.dataset.settled = "1";
    }
    draw(now);
    stats.frames += 1;
    stats.frameMs = performance.now() - start;
    schedule();
  }

  function schedule() {
    const flashing = [...nodes.values()].some((n) => n.flashing);
    if (!frameHandle && !destroyed && (alpha > 0 || pulses.length || flashing)) {
      frameHandle = requestAnimationFrame(frame);
    } else if (!frameHandle && alpha === 0) {
      svg.dataset.settled = "1";
    }
  }

  function destroy() {
    destroyed = true;
    if (frameHandle) cancelAnimationFrame(frameHandle);
    root.remove();
  }

  return {
    update,
    destroy,
    stats: () => Object.assign({ nodes: nodes.size, edges: edges.size, pulses: pulses.length,
                                 alpha }, stats),
    element: root,
    svg,
  };
}

// --- anywidget front end ----------------------------------------------------------------------

function render({ model, el }) {
  const view = createMeshView(el, model.get("options") || {});
  const onGraph = () => view.update(model.get("graph"));
  onGraph();
  model.on("change:graph", onGraph);
  // Report what the browser achieves (updates, frames), every 2 s while it changes.
  let reported = -1;
  const timer = setInterval(() => {
    const s = view.stats();
    if (s.frames + s.updates === reported) return;
    reported = s.frames + s.updates;
    model.set("frontend", { updates: s.updates, frames: s.frames, update_ms: s.updateMs,
                            max_update_ms: s.maxUpdateMs, frame_ms: s.frameMs,
                            nodes: s.nodes, edges: s.edges });
    model.save_changes();
  }, 2000);
  return () => {
    clearInterval(timer);
    model.off("change:graph", onGraph);
    view.destroy();
  };
}

export default { render };
