// The technicians' console: small progressive enhancements (every page works without them;
// no inline script: the Content-Security-Policy forbids it).
"use strict";

const ciot = {
  lang: () => document.documentElement.lang,
  every(seconds, fn) {
    let busy = false;
    setInterval(async () => {
      if (busy || document.hidden) return;
      busy = true;
      try { await fn(); } finally { busy = false; }
    }, seconds * 1000);
  },
  async html(url) {
    const r = await fetch(url, { credentials: "same-origin", headers: { Accept: "text/html" } });
    if (!r.ok) throw new Error(`${url}: HTTP ${r.status}`);
    return r.text();
  },
};

// Fleet: the counts and the table refresh themselves (no reload, filters kept).
function fleetLive() {
  const live = document.getElementById("fleet-live");
  if (!live) return;
  ciot.every(Number(live.dataset.every) || 5, async () => {
    try {
      live.innerHTML = await ciot.html(live.dataset.src);
      live.classList.remove("stale");
    } catch (e) {
      live.classList.add("stale"); // shown dimmed: the figures may be old
    }
  });
}

// Board and mask pages: while something is on its way (a configuration the board has not
// answered, a command not finished), the sections marked data-follow are fetched again.
function follow() {
  const parts = [...document.querySelectorAll("[data-follow]")];
  if (!parts.length) return;
  const src = parts[0].dataset.follow;
  ciot.every(3, async () => {
    if (!document.querySelector("[data-pending='1']")) return;
    const doc = new DOMParser().parseFromString(await ciot.html(src), "text/html");
    for (const part of parts) {
      const fresh = doc.getElementById(part.id);
      if (fresh) {
        part.innerHTML = fresh.innerHTML;
        part.dataset.pending = fresh.dataset.pending || "0";
      }
    }
  });
}

// Forms that ask before they act (restart a board, end a maintenance window).
function confirmations() {
  document.addEventListener("submit", (ev) => { // delegated: followed sections are swapped in
    const form = ev.target.closest("form[data-confirm]");
    if (form && !window.confirm(form.dataset.confirm)) ev.preventDefault();
  });
}

// Maintenance: show the fields of the chosen repetition, suggest targets of the chosen
// kind, and preview the covered devices as the form is filled in.
function maintenanceForm() {
  const form = document.getElementById("window-form");
  if (!form) return;
  const kind = form.querySelector("[name=target_kind]");
  const target = form.querySelector("[name=target]");
  const modes = () => {
    const mode = form.querySelector("[name=mode]:checked")?.value || "weekly";
    document.getElementById("weekly-fields").hidden = mode !== "weekly";
    document.getElementById("once-fields").hidden = mode !== "once";
  };
  let timer = null;
  const preview = () => {
    clearTimeout(timer);
    timer = setTimeout(async () => {
      const params = new URLSearchParams(new FormData(form));
      params.delete("csrf_token");
      params.delete("action");
      try {
        document.getElementById("window-preview").innerHTML = await ciot.html(`${form.dataset.preview}?${params}`);
      } catch (e) { /* the preview button still works */ }
    }, 350);
  };
  kind.addEventListener("change", () => { target.setAttribute("list", `targets-${kind.value}`); target.value = ""; });
  for (const r of form.querySelectorAll("[name=mode]")) r.addEventListener("change", modes);
  form.addEventListener("input", preview);
  form.addEventListener("change", preview);
  modes();
}

// The mask and zone editor: polygons over the camera's picture, corners as fractions of the
// frame (0..1, what the camera's detector reads). Click to add corners, drag them to move,
// double-click or "close" to finish; click a shape to select it.
function maskEditor() {
  const stage = document.getElementById("stage");
  const box = document.getElementById("shapes-json");
  if (!stage || !box) return;
  const svg = document.getElementById("stage-svg");
  const layer = document.getElementById("shapes");
  const zoneName = document.getElementById("zone-name");
  const NS = "http://www.w3.org/2000/svg";
  let doc;
  try { doc = JSON.parse(box.value); } catch (e) { doc = { masks: [], zones: [] }; }
  // Every shape as {kind, name, points}; written back to the textarea on each change.
  const shapes = [
    ...(doc.masks || []).map((p) => ({ kind: "mask", name: "", points: p.map((xy) => [...xy]) })),
    ...(doc.zones || []).map((z) => ({ kind: "zone", name: z.name, points: z.polygon.map((xy) => [...xy]) })),
  ];
  let current = null; // the shape being drawn or selected
  let drawing = false; // current still takes new corners
  const kindNow = () => document.querySelector("[name=draw-kind]:checked").value;
  const round = (v) => Math.round(Math.min(1, Math.max(0, v)) * 10000) / 10000;
  const at = (ev) => {
    const r = svg.getBoundingClientRect();
    return [round((ev.clientX - r.left) / r.width), round((ev.clientY - r.top) / r.height)];
  };
  const save = () => {
    const done = shapes.filter((s) => s.points.length >= 3);
    box.value = JSON.stringify({
      masks: done.filter((s) => s.kind === "mask").map((s) => s.points),
      zones: done.filter((s) => s.kind === "zone").map((s) => ({ name: s.name, polygon: s.points })),
    });
  };
  const draw = () => {
    layer.replaceChildren();
    for (const h of stage.querySelectorAll(".handle")) h.remove();
    for (const s of shapes) {
      const poly = document.createElementNS(NS, s.points.length >= 3 && !(s === current && drawing) ? "polygon" : "polyline");
      poly.setAttribute("points", s.points.map((p) => p.join(",")).join(" "));
      poly.setAttribute("class", `shape ${s.kind}${s === current ? " selected" : ""}`);
      poly.dataset.kind = s.kind;
      poly.addEventListener("pointerdown", (ev) => {
        if (drawing) return;
        ev.stopPropagation();
        current = s;
        if (s.kind === "zone") zoneName.value = s.name;
        draw();
      });
      layer.append(poly);
      if (s !== current) continue;
      s.points.forEach((p, i) => {
        const h = document.createElement("span");
        h.className = `handle ${s.kind}`;
        h.style.left = `${p[0] * 100}%`;
        h.style.top = `${p[1] * 100}%`;
        h.dataset.index = i;
        h.addEventListener("pointerdown", (ev) => {
          ev.stopPropagation();
          ev.preventDefault();
          h.setPointerCapture(ev.pointerId);
          const move = (e) => {
            s.points[i] = at(e);
            h.style.left = `${s.points[i][0] * 100}%`;
            h.style.top = `${s.points[i][1] * 100}%`;
            layer.querySelector(".selected").setAttribute("points", s.points.map((q) => q.join(",")).join(" "));
          };
          h.addEventListener("pointermove", move);
          h.addEventListener("pointerup", () => { h.removeEventListener("pointermove", move); save(); draw(); }, { once: true });
        });
        stage.append(h);
      });
    }
    save();
  };
  const finish = () => {
    if (current) { // a double-click's second click adds the same corner again
      current.points = current.points.filter((p, i, all) => i === 0 || p[0] !== all[i - 1][0] || p[1] !== all[i - 1][1]);
    }
    if (current && current.points.length < 3) shapes.splice(shapes.indexOf(current), 1);
    drawing = false;
    draw();
  };
  stage.addEventListener("pointerdown", (ev) => {
    if (ev.button !== 0) return;
    if (!drawing) {
      const kind = kindNow();
      current = { kind, name: kind === "zone" ? zoneName.value : "", points: [] };
      shapes.push(current);
      drawing = true;
    }
    current.points.push(at(ev));
    draw();
  });
  stage.addEventListener("dblclick", finish);
  document.getElementById("close-shape").addEventListener("click", finish);
  document.getElementById("new-shape").addEventListener("click", () => {
    finish();
    const kind = kindNow();
    current = { kind, name: kind === "zone" ? zoneName.value : "", points: [] };
    shapes.push(current);
    drawing = true;
    draw();
  });
  document.getElementById("delete-shape").addEventListener("click", () => {
    if (current) shapes.splice(shapes.indexOf(current), 1);
    current = null;
    drawing = false;
    draw();
  });
  zoneName.addEventListener("input", () => { if (current && current.kind === "zone") { current.name = zoneName.value; save(); } });
  document.getElementById("show-boxes").addEventListener("change", (ev) => {
    document.getElementById("motion-boxes").style.display = ev.target.checked ? "" : "none";
  });
  box.addEventListener("change", () => { // typed coordinates win
    try {
      const d = JSON.parse(box.value);
      shapes.length = 0;
      for (const p of d.masks || []) shapes.push({ kind: "mask", name: "", points: p });
      for (const z of d.zones || []) shapes.push({ kind: "zone", name: z.name, points: z.polygon });
      current = null;
      draw();
    } catch (e) { /* the server says what is wrong */ }
  });
  document.getElementById("masks-form").addEventListener("submit", () => { finish(); });
  draw();
}

document.addEventListener("DOMContentLoaded", () => {
  fleetLive();
  follow();
  confirmations();
  maintenanceForm();
  maskEditor();
});
