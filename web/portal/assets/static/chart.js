/* statscache portal: hand-written SVG charts (a sparkline and a
   multi-series time chart with hover, keyboard focus and click-to-pick). */
'use strict';

var SCChart = (function () {
  var svg = SC.svg, el = SC.el;

  // sparkline draws [{t, v}] (time order) as a small area chart; with
  // fewer than three points, as bars (a lone dot says nothing). A point
  // with partial set (a bucket still filling) is drawn hollow.
  function sparkline(points, color) {
    var W = 300, H = 48, P = 3;
    color = color || '#1f6fb4';
    var s = svg('svg', { class: 'spark', viewBox: '0 0 ' + W + ' ' + H, preserveAspectRatio: 'none', role: 'img',
      'aria-label': 'Recent history, ' + points.length + ' points' });
    if (!points.length) return s;
    if (points.length < 3) {
      var top = Math.max.apply(null, points.map(function (p) { return p.v; })) || 1;
      var bw = W / 3 - 8;
      points.forEach(function (p, i) {
        var h = Math.max(1, (H - 2 * P) * Math.max(0, p.v) / top);
        s.appendChild(svg('rect', { class: 'bar' + (p.partial ? ' partial' : ''), x: (W - points.length * (bw + 8)) / 2 + i * (bw + 8), y: H - P - h, width: bw, height: h,
          fill: p.partial ? 'none' : color, 'fill-opacity': '0.5', stroke: color, 'stroke-dasharray': p.partial ? '3 2' : null, 'vector-effect': 'non-scaling-stroke' }));
      });
      return s;
    }
    var t0 = points[0].t, t1 = points[points.length - 1].t;
    var vmax = Math.max.apply(null, points.map(function (p) { return p.v; }));
    var vmin = Math.min(0, Math.min.apply(null, points.map(function (p) { return p.v; })));
    var x = function (t) { return t1 === t0 ? W / 2 : P + (t - t0) / (t1 - t0) * (W - 2 * P); };
    var y = function (v) { return vmax === vmin ? H / 2 : H - P - (v - vmin) / (vmax - vmin) * (H - 2 * P); };
    var line = points.map(function (p, i) { return (i ? 'L' : 'M') + x(p.t).toFixed(1) + ' ' + y(p.v).toFixed(1); }).join(' ');
    if (points.length > 1) {
      s.appendChild(svg('path', { d: line + ' L' + x(t1).toFixed(1) + ' ' + H + ' L' + x(t0).toFixed(1) + ' ' + H + ' Z', fill: color, 'fill-opacity': '0.12', stroke: 'none' }));
      s.appendChild(svg('path', { d: line, fill: 'none', stroke: color, 'stroke-width': '1.6', 'vector-effect': 'non-scaling-stroke', 'stroke-linejoin': 'round' }));
    }
    var last = points[points.length - 1];
    s.appendChild(svg('circle', { class: last.partial ? 'partial' : null, cx: x(last.t).toFixed(1), cy: y(last.v).toFixed(1), r: '2.5',
      fill: last.partial ? '#fff' : color, stroke: color, 'vector-effect': 'non-scaling-stroke' }));
    return s;
  }

  // niceStep rounds a raw step to 1, 2 or 5 times a power of ten.
  function niceStep(raw) {
    var p = Math.pow(10, Math.floor(Math.log10(raw)));
    var f = raw / p;
    return (f <= 1 ? 1 : f <= 2 ? 2 : f <= 5 ? 5 : 10) * p;
  }
  var TIME_STEPS = [1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200,
    86400, 172800, 604800, 1209600, 2592000, 7776000, 15552000, 31536000, 63072000, 157680000];

  function timeLabel(t, span, step) {
    var full = SC.fmtTime(t).replace(' UTC', '');
    if (step >= 86400) return full.slice(0, 10);
    if (span > 86400) return full.slice(5, 16);
    if (step >= 60) return full.slice(11, 16);
    return full.slice(11, 19);
  }

  // lineChart draws series [{name, color, points: [{t, v}]}] into box.
  // opts.onPick(t) is called when a point (or the plot at a time) is
  // clicked; opts.valueLabel names the values in the tooltip.
  function lineChart(box, series, opts) {
    opts = opts || {};
    SC.clear(box);
    var all = [];
    series.forEach(function (s) { s.points.forEach(function (p) { all.push(p); }); });
    if (!all.length) return null;
    var W = Math.max(320, Math.round(box.clientWidth || 800));
    var H = Math.round(Math.min(380, Math.max(220, W * 0.36)));
    var times = Array.from(new Set(all.map(function (p) { return p.t; }))).sort(function (a, b) { return a - b; });
    var t0 = times[0], t1 = times[times.length - 1];
    if (opts.domain) { t0 = Math.min(t0, opts.domain[0]); t1 = Math.max(t1, opts.domain[1]); }
    if (t0 === t1) { var pad = opts.interval || 60; t0 -= pad; t1 += pad; }
    var vmax = Math.max.apply(null, all.map(function (p) { return p.v; }));
    var vmin = Math.min(0, Math.min.apply(null, all.map(function (p) { return p.v; })));
    if (vmax === vmin) vmax = vmin + 1;
    var ystep = niceStep((vmax - vmin) / 5);
    if (opts.integer) ystep = Math.max(1, ystep); // no tick at half a message
    var ylo = Math.floor(vmin / ystep) * ystep, yhi = Math.ceil(vmax / ystep) * ystep;
    var yticks = [];
    for (var v = ylo; v <= yhi + ystep / 2; v += ystep) yticks.push(+v.toFixed(10));
    var ml = 12 + 7 * Math.max.apply(null, yticks.map(function (v) { return SC.fmtCompact(v).length; }));
    var M = { l: Math.max(36, ml), r: 18, t: 12, b: 30 };
    var pw = W - M.l - M.r, ph = H - M.t - M.b;
    var x = function (t) { return M.l + (t - t0) / (t1 - t0) * pw; };
    var y = function (v) { return M.t + ph - (v - ylo) / (yhi - ylo) * ph; };

    var root = svg('svg', { viewBox: '0 0 ' + W + ' ' + H, width: W, height: H, role: 'img',
      'aria-label': opts.label || 'Chart' });
    var grid = svg('g', { class: 'grid' }), axis = svg('g', { class: 'axis' });
    yticks.forEach(function (v) {
      grid.appendChild(svg('line', { x1: M.l, x2: W - M.r, y1: y(v), y2: y(v) }));
      axis.appendChild(svg('text', { x: M.l - 6, y: y(v) + 4, 'text-anchor': 'end', text: SC.fmtCompact(v) }));
    });
    var span = t1 - t0, maxTicks = Math.max(2, Math.floor(pw / 110)), tstep = TIME_STEPS[TIME_STEPS.length - 1];
    for (var i = 0; i < TIME_STEPS.length; i++) if (span / TIME_STEPS[i] <= maxTicks) { tstep = TIME_STEPS[i]; break; }
    for (var tt = Math.ceil(t0 / tstep) * tstep; tt <= t1; tt += tstep) {
      grid.appendChild(svg('line', { x1: x(tt), x2: x(tt), y1: M.t, y2: M.t + ph }));
      axis.appendChild(svg('text', { x: x(tt), y: H - 10, 'text-anchor': 'middle', text: timeLabel(tt, span, tstep) }));
    }
    axis.appendChild(svg('line', { x1: M.l, x2: W - M.r, y1: M.t + ph, y2: M.t + ph, stroke: '#94a3b8' }));
    root.appendChild(grid);
    root.appendChild(axis);
    var hover = svg('line', { class: 'hover-line', y1: M.t, y2: M.t + ph, visibility: 'hidden' });
    root.appendChild(hover);

    var lines = svg('g', { class: 'series' }), dots = svg('g', { class: 'dots' });
    // Dots for the rows; buckets filled in as 0 get none.
    var showDots = all.filter(function (p) { return !p.filled; }).length <= 600;
    series.forEach(function (s) {
      var pts = s.points.slice().sort(function (a, b) { return a.t - b.t; });
      // A bucketed series has no row for a bucket without data: the line
      // breaks there rather than drawing a slope across the gap.
      var gap = opts.interval ? opts.interval * 1.5 : Infinity;
      var d = pts.map(function (p, i) {
        return (i && p.t - pts[i - 1].t <= gap ? 'L' : 'M') + x(p.t).toFixed(1) + ' ' + y(p.v).toFixed(1);
      }).join(' ');
      lines.appendChild(svg('path', { d: d, stroke: s.color, 'data-series': s.name }));
      pts.forEach(function (p) {
        if (p.filled || !(showDots || pts.length === 1 || p.partial)) return;
        // A bucket still filling is drawn hollow, and says so.
        var c = svg('circle', { class: 'pt' + (p.partial ? ' partial' : ''), cx: x(p.t).toFixed(1), cy: y(p.v).toFixed(1), r: pts.length > 150 && !p.partial ? 2.5 : 3.5,
            fill: p.partial ? '#fff' : s.color, stroke: s.color, tabindex: '0', 'data-t': p.t, 'data-v': p.v, 'data-series': s.name, role: 'button',
            'aria-label': s.name + ' ' + SC.fmtTime(p.t) + ': ' + SC.fmtNum(p.v) + (p.partial ? ' (partial: the bucket is still filling)' : '') });
        c.addEventListener('keydown', function (e) {
          if ((e.key === 'Enter' || e.key === ' ') && opts.onPick) { e.preventDefault(); opts.onPick(p.t); }
        });
        c.addEventListener('focus', function () { show(p.t); });
        c.addEventListener('blur', hide);
        dots.appendChild(c);
      });
    });
    root.appendChild(lines);
    root.appendChild(dots);
    box.appendChild(root);
    var tip = el('div', { class: 'tip', hidden: true });
    box.appendChild(tip);

    // nearest returns the data time closest to a plot x coordinate.
    function nearest(px) {
      var t = t0 + (px - M.l) / pw * (t1 - t0), lo = 0, hi = times.length - 1;
      while (hi - lo > 1) { var mid = (lo + hi) >> 1; if (times[mid] < t) lo = mid; else hi = mid; }
      return Math.abs(times[lo] - t) <= Math.abs(times[hi] - t) ? times[lo] : times[hi];
    }
    function px(e) {
      var r = root.getBoundingClientRect();
      return (e.clientX - r.left) * (W / r.width);
    }
    function show(t) {
      hover.setAttribute('x1', x(t)); hover.setAttribute('x2', x(t)); hover.setAttribute('visibility', 'visible');
      var parts = [SC.fmtTime(t)];
      var vals = [], partial = false;
      series.forEach(function (s) {
        s.points.forEach(function (p) { if (p.t === t) { vals.push([s.name, p.v]); partial = partial || p.partial; } });
      });
      if (partial) parts[0] += ' (partial: still filling)';
      vals.sort(function (a, b) { return b[1] - a[1]; });
      vals.slice(0, 6).forEach(function (nv) { parts.push(nv[0] + ': ' + SC.fmtNum(nv[1])); });
      if (vals.length > 6) parts.push('… ' + (vals.length - 6) + ' more');
      SC.clear(tip);
      parts.forEach(function (p, i) { if (i) tip.appendChild(el('br')); tip.appendChild(document.createTextNode(p)); });
      var r = root.getBoundingClientRect(), scale = r.width / W;
      var top = Math.min.apply(null, vals.map(function (nv) { return y(nv[1]); }).concat([M.t + ph]));
      tip.style.left = Math.min(Math.max(x(t) * scale, 90), r.width - 90) + 'px';
      tip.style.top = Math.max(top * scale, 40) + 'px';
      tip.hidden = false;
    }
    function hide() { hover.setAttribute('visibility', 'hidden'); tip.hidden = true; }
    root.addEventListener('mousemove', function (e) {
      var p = px(e);
      if (p < M.l || p > W - M.r) { hide(); return; }
      show(nearest(p));
    });
    root.addEventListener('mouseleave', hide);
    root.addEventListener('click', function (e) {
      var p = px(e);
      if (p < M.l - 8 || p > W - M.r + 8 || !opts.onPick) return;
      var t = e.target && e.target.getAttribute && e.target.getAttribute('data-t');
      opts.onPick(t !== null && t !== undefined && t !== '' ? +t : nearest(p));
    });
    return root;
  }

  return { sparkline: sparkline, lineChart: lineChart };
})();
