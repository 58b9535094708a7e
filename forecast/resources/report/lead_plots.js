// Interactive score-vs-lead charts of report.html (forecast/render/lead_plots.py writes LEAD_DATA before this).
// Plain SVG and DOM, no library, nothing fetched: the page stays self-contained and opens offline.
// One panel per variable; a view (RMSE, ACC, ...) and a region are chosen above them. Hover: the values and
// intervals of every shown series at the nearest lead. Drag across a panel: zoom every panel to that lead
// range (y follows); double-click or "reset": the whole range; the arrows pan. Click a legend entry: hide or
// show that series everywhere.
(function () {
  'use strict';
  const D = LEAD_DATA;
  const NS = 'http://www.w3.org/2000/svg';
  const W = 440, H = 270, M = {left: 70, right: 12, top: 24, bottom: 38};
  const root = document.getElementById('lead-plots');
  const viewSel = document.getElementById('lp-view');
  const regionSel = document.getElementById('lp-region');
  const legend = document.getElementById('lp-legend');
  const panels = document.getElementById('lp-panels');
  const tip = document.getElementById('lp-tip');
  const full = [D.hours[0], D.hours[D.hours.length - 1]];
  const hidden = {};
  let range = full.slice();

  function el(name, attrs, parent) {
    const e = document.createElementNS(NS, name);
    Object.keys(attrs).forEach(function (k) { e.setAttribute(k, attrs[k]); });
    if (parent) { parent.appendChild(e); }
    return e;
  }
  function option(select, value, text) {
    const o = document.createElement('option');
    o.value = value; o.textContent = text; select.appendChild(o);
  }
  function fmt(v) { return v === null ? '–' : Number(v.toPrecision(4)).toString(); }
  function view() { return D.views[Number(viewSel.value)]; }
  function region() { return Number(regionSel.value); }

  // Round steps (1, 2, 2.5, 5 x 10^k) giving about n ticks over [lo, hi].
  function ticks(lo, hi, n) {
    const raw = (hi - lo) / Math.max(n, 1);
    const mag = Math.pow(10, Math.floor(Math.log10(raw)));
    const step = [1, 2, 2.5, 5, 10].map(function (s) { return s * mag; }).find(function (s) { return s >= raw; });
    const out = [];
    for (let t = Math.ceil(lo / step) * step; t <= hi + step * 1e-9; t += step) { out.push(Number(t.toPrecision(12))); }
    return out;
  }

  // Indices of the leads inside the zoomed range.
  function visible() {
    const idx = [];
    D.hours.forEach(function (h, i) { if (h >= range[0] && h <= range[1]) { idx.push(i); } });
    return idx;
  }

  function yLimits(v, vi, idx) {
    let lo = Infinity, hi = -Infinity;
    v.series.forEach(function (s) {
      if (hidden[s.name]) { return; }
      idx.forEach(function (i) {
        [s.y, s.lo, s.hi].forEach(function (a) {
          const x = a ? a[region()][vi][i] : null;
          if (x !== null) { lo = Math.min(lo, x); hi = Math.max(hi, x); }
        });
      });
    });
    if (v.ref !== null) { lo = Math.min(lo, v.ref); hi = Math.max(hi, v.ref); }
    if (!isFinite(lo)) { return [0, 1]; }
    const pad = hi > lo ? 0.06 * (hi - lo) : Math.abs(hi) * 0.1 || 1;
    return [lo - pad, hi + pad];
  }

  function path(points) {  // "M x y L x y ...", breaking the line at missing values
    let d = '', pen = false;
    points.forEach(function (p) {
      if (p === null) { pen = false; return; }
      d += (pen ? 'L' : 'M') + p[0].toFixed(1) + ' ' + p[1].toFixed(1);
      pen = true;
    });
    return d;
  }

  function panel(v, vi) {
    const name = D.variables[vi];
    const idx = visible();
    const [y0, y1] = yLimits(v, vi, idx);
    const pw = W - M.left - M.right, ph = H - M.top - M.bottom;
    const sx = function (h) { return M.left + (h - range[0]) / (range[1] - range[0] || 1) * pw; };
    const sy = function (y) { return M.top + (y1 - y) / (y1 - y0) * ph; };
    const svg = el('svg', {width: W, height: H, viewBox: '0 0 ' + W + ' ' + H, class: 'lp-panel',
                           'data-variable': name, 'data-x0': range[0], 'data-x1': range[1]});
    const clip = 'lp-clip-' + vi;
    el('rect', {x: M.left, y: M.top, width: pw, height: ph}, el('clipPath', {id: clip}, el('defs', {}, svg)));
    ticks(range[0], range[1], 6).forEach(function (t) {
      el('line', {x1: sx(t), x2: sx(t), y1: M.top, y2: M.top + ph, class: 'lp-grid'}, svg);
      el('text', {x: sx(t), y: M.top + ph + 14, 'text-anchor': 'middle'}, svg).textContent = t;
    });
    ticks(y0, y1, 5).forEach(function (t) {
      el('line', {x1: M.left, x2: M.left + pw, y1: sy(t), y2: sy(t), class: 'lp-grid'}, svg);
      el('text', {x: M.left - 4, y: sy(t) + 4, 'text-anchor': 'end'}, svg).textContent = fmt(t);
    });
    el('rect', {x: M.left, y: M.top, width: pw, height: ph, class: 'lp-frame'}, svg);
    el('text', {x: M.left + pw / 2, y: H - 4, 'text-anchor': 'middle'}, svg).textContent = 'lead time [h]';
    el('text', {x: 12, y: M.top + ph / 2, 'text-anchor': 'middle',
                transform: 'rotate(-90 12 ' + (M.top + ph / 2) + ')'}, svg).textContent =
      v.label + (v.unitless ? '' : ' [' + D.units[vi] + ']');
    el('text', {x: M.left + pw / 2, y: 15, 'text-anchor': 'middle', class: 'lp-title'}, svg).textContent = name;
    const plot = el('g', {'clip-path': 'url(#' + clip + ')'}, svg);
    if (v.ref !== null) {
      el('line', {x1: M.left, x2: M.left + pw, y1: sy(v.ref), y2: sy(v.ref), class: 'lp-ref'}, plot);
    }
    v.series.forEach(function (s) {
      if (hidden[s.name]) { return; }
      const y = s.y[region()][vi];
      const g = el('g', {class: 'lp-series', 'data-series': s.name, stroke: s.color}, plot);
      if (s.lo) {
        const lo = s.lo[region()][vi], hi = s.hi[region()][vi];
        let d = '';
        idx.forEach(function (i) {
          if (lo[i] === null || hi[i] === null) { return; }
          const x = sx(D.hours[i]), a = sy(lo[i]).toFixed(1), b = sy(hi[i]).toFixed(1);
          d += 'M' + x.toFixed(1) + ' ' + a + 'V' + b;  // the bar, then its caps
          d += 'M' + (x - 2).toFixed(1) + ' ' + a + 'h4M' + (x - 2).toFixed(1) + ' ' + b + 'h4';
        });
        el('path', {d: d, class: 'lp-bars'}, g);
      }
      el('path', {d: path(D.hours.map(function (h, i) { return y[i] === null ? null : [sx(h), sy(y[i])]; })),
                  class: 'lp-line', 'stroke-width': s.width, 'stroke-dasharray': s.dash}, g);
    });
    const guide = el('line', {y1: M.top, y2: M.top + ph, class: 'lp-guide', visibility: 'hidden'}, svg);
    const band = el('rect', {y: M.top, height: ph, class: 'lp-band', visibility: 'hidden'}, svg);
    const over = el('rect', {x: M.left, y: M.top, width: pw, height: ph, class: 'lp-over'}, svg);
    interact(svg, over, guide, band, v, vi, sx);
    return svg;
  }

  function hoursAt(svg, event) {
    const box = svg.getBoundingClientRect();
    const px = (event.clientX - box.left) * W / box.width;
    const pw = W - M.left - M.right;
    return [px, range[0] + (px - M.left) / pw * (range[1] - range[0])];
  }

  function showTip(event, v, vi, i) {
    const r = region();
    const rows = v.series.filter(function (s) { return !hidden[s.name]; }).map(function (s) {
      const ci = s.lo ? ' [' + fmt(s.lo[r][vi][i]) + ', ' + fmt(s.hi[r][vi][i]) + ']' : '';
      return '<tr><td><span class="lp-swatch" style="background:' + s.color + '"></span>' + s.name + '</td><td>' +
        fmt(s.y[r][vi][i]) + ci + '</td></tr>';
    });
    tip.innerHTML = '<b>' + D.variables[vi] + ', +' + D.hours[i] + ' h</b> (' + D.regions[r] + ')' +
      (v.unitless ? '' : ' [' + D.units[vi] + ']') + '<table>' + rows.join('') + '</table>';
    tip.dataset.variable = D.variables[vi];
    tip.dataset.lead = String(D.hours[i]);
    tip.style.left = (event.pageX + 14) + 'px';
    tip.style.top = (event.pageY + 10) + 'px';
    tip.hidden = false;
  }

  function interact(svg, over, guide, band, v, vi, sx) {
    let start = null;
    over.addEventListener('mousemove', function (event) {
      const [px, h] = hoursAt(svg, event);
      const idx = visible();
      if (!idx.length) { return; }
      const i = idx.reduce(function (a, b) { return Math.abs(D.hours[b] - h) < Math.abs(D.hours[a] - h) ? b : a; });
      guide.setAttribute('x1', sx(D.hours[i])); guide.setAttribute('x2', sx(D.hours[i]));
      guide.setAttribute('visibility', 'visible');
      showTip(event, v, vi, i);
      if (start !== null) {
        band.setAttribute('x', Math.min(start[0], px)); band.setAttribute('width', Math.abs(px - start[0]));
        band.setAttribute('visibility', 'visible');
      }
    });
    over.addEventListener('mouseleave', function () {
      guide.setAttribute('visibility', 'hidden'); tip.hidden = true;
    });
    over.addEventListener('mousedown', function (event) { event.preventDefault(); start = hoursAt(svg, event); });
    over.addEventListener('mouseup', function (event) {
      if (start === null) { return; }
      const end = hoursAt(svg, event);
      const wide = Math.abs(end[0] - start[0]) > 6;
      const lo = Math.max(Math.min(start[1], end[1]), full[0]), hi = Math.min(Math.max(start[1], end[1]), full[1]);
      start = null;
      band.setAttribute('visibility', 'hidden');
      if (wide && hi > lo) { zoom([lo, hi]); }
    });
    over.addEventListener('dblclick', function () { zoom(full.slice()); });
  }

  function zoom(r) { range = r; draw(); }

  function pan(direction) {
    const width = range[1] - range[0];
    const lo = Math.min(Math.max(range[0] + direction * width / 2, full[0]), full[1] - width);
    zoom([lo, lo + width]);
  }

  function fillLegend() {
    legend.innerHTML = '';
    view().series.forEach(function (s) {
      const b = document.createElement('button');
      b.type = 'button';
      b.className = 'lp-toggle';
      b.dataset.series = s.name;
      b.setAttribute('aria-pressed', hidden[s.name] ? 'false' : 'true');
      b.innerHTML = '<span class="lp-swatch" style="background:' + s.color + '"></span>';
      b.appendChild(document.createTextNode(s.name));
      b.addEventListener('click', function () { hidden[s.name] = !hidden[s.name]; draw(); });
      legend.appendChild(b);
    });
    if (view().ref !== null) {
      const note = document.createElement('span');
      note.className = 'lp-refnote';
      note.textContent = '⋯ ' + view().refLabel;
      legend.appendChild(note);
    }
  }

  function draw() {
    fillLegend();
    panels.innerHTML = '';
    D.variables.forEach(function (_, vi) { panels.appendChild(panel(view(), vi)); });
    root.dataset.range = range[0] + '-' + range[1];
  }

  D.views.forEach(function (v, i) { option(viewSel, i, v.title); });
  D.regions.forEach(function (r, i) { option(regionSel, i, r); });
  viewSel.addEventListener('change', draw);
  regionSel.addEventListener('change', draw);
  document.getElementById('lp-reset').addEventListener('click', function () { zoom(full.slice()); });
  document.getElementById('lp-left').addEventListener('click', function () { pan(-1); });
  document.getElementById('lp-right').addEventListener('click', function () { pan(1); });
  draw();
})();
