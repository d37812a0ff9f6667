/* statscache portal: the contributors page. Reads the contributors,
   contributor-retention and activity-by-category models through the API
   and draws stacked bars (new, returning, retained above the axis, churned
   below), a cohort grid and the week's categories ranked. */
'use strict';

(function () {
  var el = SC.el, svg = SC.svg, $ = SC.$;
  var WEEK = 604800;
  var COLORS = { new: '#2e9e44', returning: '#e8710a', retained: '#1f6fb4', churned: '#d1342b' };
  var STACK = ['retained', 'returning', 'new']; // bottom to top

  // getAll reads every page of a selection, following Link: rel="next".
  function getAll(ident, q) {
    var rows = [];
    function page(url, n) {
      return SC.get(url).then(function (r) {
        rows = rows.concat(r.data || []);
        var next = SC.links(r.res.headers.get('Link')).next;
        if (next && n < 200) return page(next, n + 1);
        return rows;
      });
    }
    q.rows_per_page = 100;
    return page(SC.apiPath(ident) + SC.query(q), 1);
  }
  function meta(ident) { return SC.get(SC.apiPath(ident) + '/meta').then(function (r) { return r.data; }); }

  // periodStart: a row's timestamp is the end of its period.
  function periodStart(m, end) { return SC.bucketStart(m, end); }
  function label(m, end) {
    var d = SC.fmtTime(periodStart(m, end), { dateOnly: true });
    return m.calendar === 'month' ? d.slice(0, 7) : d;
  }
  function placeholder(box, msg, cls) { SC.clear(box).appendChild(el('div', { class: 'placeholder' + (cls ? ' ' + cls : ''), text: msg })); }

  // stacked draws one bar per period: new, returning and retained stacked
  // above the axis, churned below it. A period still filling is drawn
  // lighter and says so.
  function stacked(box, m, rows) {
    SC.clear(box);
    if (!rows.length) { placeholder(box, 'No rows yet.', 'empty'); return; }
    var W = Math.max(320, Math.round(box.clientWidth || 900)), H = 300;
    var up = Math.max.apply(null, rows.map(function (r) { return r.active; }).concat([1]));
    var down = Math.max.apply(null, rows.map(function (r) { return r.churned; }).concat([0]));
    var M = { l: 48, r: 12, t: 12, b: 34 };
    var pw = W - M.l - M.r, ph = H - M.t - M.b;
    var scale = ph / (up + down), y0 = M.t + up * scale;
    var bw = pw / rows.length, gap = Math.min(6, bw * 0.2);
    var root = svg('svg', { viewBox: '0 0 ' + W + ' ' + H, width: W, height: H, role: 'img',
      'aria-label': 'Active contributors per ' + (m.calendar || 'period') + ', ' + rows.length + ' periods' });
    var grid = svg('g', { class: 'grid' }), axis = svg('g', { class: 'axis' }), bars = svg('g', { class: 'bars' });
    var step = niceStep((up + down) / 5);
    for (var v = -Math.floor(down / step) * step; v <= up; v += step) {
      var yy = y0 - v * scale;
      grid.appendChild(svg('line', { x1: M.l, x2: W - M.r, y1: yy, y2: yy }));
      axis.appendChild(svg('text', { x: M.l - 6, y: yy + 4, 'text-anchor': 'end', text: SC.fmtCompact(Math.abs(v)) }));
    }
    var every = Math.max(1, Math.ceil(rows.length / Math.max(2, Math.floor(pw / 80))));
    rows.forEach(function (r, i) {
      var x = M.l + i * bw + gap / 2, w = Math.max(1, bw - gap);
      var partial = SC.isPartial(m, r.timestamp);
      var g = svg('g', { class: 'period' + (partial ? ' partial' : ''), 'data-t': r.timestamp, tabindex: '0' });
      g.appendChild(svg('title', { text: label(m, r.timestamp) + (partial ? ' (still filling)' : '') + ': ' + r.active + ' active (' +
        r.new + ' new, ' + r.returning + ' returning, ' + r.retained + ' retained), ' + r.churned + ' churned' }));
      var top = y0;
      STACK.forEach(function (k) {
        var h = r[k] * scale;
        if (h <= 0) return;
        top -= h;
        g.appendChild(svg('rect', { class: 'seg ' + k, x: x, y: top, width: w, height: h, fill: COLORS[k] }));
      });
      if (r.churned > 0) {
        g.appendChild(svg('rect', { class: 'seg churned', x: x, y: y0, width: w, height: r.churned * scale, fill: COLORS.churned }));
      }
      bars.appendChild(g);
      if (i % every === 0) axis.appendChild(svg('text', { x: x + w / 2, y: H - 12, 'text-anchor': 'middle', text: label(m, r.timestamp) }));
    });
    axis.appendChild(svg('line', { class: 'zero', x1: M.l, x2: W - M.r, y1: y0, y2: y0, stroke: '#475569' }));
    root.appendChild(grid);
    root.appendChild(bars);
    root.appendChild(axis);
    box.appendChild(root);
  }
  function niceStep(raw) {
    if (raw <= 1) return 1;
    var p = Math.pow(10, Math.floor(Math.log10(raw))), f = raw / p;
    return (f <= 1 ? 1 : f <= 2 ? 2 : f <= 5 ? 5 : 10) * p;
  }

  // headline sums up the newest complete week.
  function headline(m, rows) {
    var box = SC.clear($('#headline'));
    var done = rows.filter(function (r) { return !SC.isPartial(m, r.timestamp); });
    var r = done.length ? done[done.length - 1] : rows[rows.length - 1];
    if (!r) return;
    var prev = rows[rows.indexOf(r) - 1];
    var change = prev ? r.active - prev.active : null;
    box.appendChild(el('div', { class: 'stat big' }, el('span', { class: 'value', text: SC.fmtNum(r.active) }),
      el('span', { class: 'label', text: 'active contributors in the week of ' + label(m, r.timestamp) +
        (change === null ? '' : ' (' + (change >= 0 ? '+' : '') + change + ' on the week before)') })));
    box.appendChild(el('div', { class: 'stat' }, el('span', { class: 'value', text: SC.fmtNum(r.new) }), el('span', { class: 'label', text: 'new' })));
    box.appendChild(el('div', { class: 'stat' }, el('span', { class: 'value', text: SC.fmtNum(r.returning) }), el('span', { class: 'label', text: 'returning' })));
    box.appendChild(el('div', { class: 'stat' }, el('span', { class: 'value', text: SC.fmtNum(r.churned) }), el('span', { class: 'label', text: 'churned' })));
  }

  // cohorts draws the newest cohorts by age, each cell shaded by the share
  // of the cohort active that week (its size is its age-0 count).
  var MAX_COHORTS = 20;
  function cohorts(box, rows, newest) {
    SC.clear(box);
    if (!rows.length) { placeholder(box, 'No rows yet.', 'empty'); return; }
    var by = new Map();
    rows.forEach(function (r) {
      if (!by.has(r.cohort)) by.set(r.cohort, {});
      by.get(r.cohort)[r.age] = r.active;
    });
    // The rows are those of the last MAX_COHORTS weeks, where older
    // cohorts show up too: keep the cohorts that started in them.
    var first = newest - (MAX_COHORTS - 1) * WEEK;
    var keys = Array.from(by.keys()).filter(function (c) { return c >= first; }).sort(function (a, b) { return a - b; });
    if (!keys.length) { placeholder(box, 'No new contributors in the last ' + MAX_COHORTS + ' weeks.', 'empty'); return; }
    var maxAge = Math.round((newest - keys[0]) / WEEK);
    var table = el('table', { class: 'cohorts' });
    var head = el('tr', null, el('th', { text: 'cohort (first week)' }), el('th', { text: 'size' }));
    for (var a = 1; a <= maxAge; a++) head.appendChild(el('th', { text: '+' + a }));
    table.appendChild(el('thead', null, head));
    var body = el('tbody');
    keys.forEach(function (c) {
      var cells = by.get(c), size = cells[0] || 0;
      var tr = el('tr', { 'data-cohort': c }, el('th', { text: SC.fmtTime(c - WEEK, { dateOnly: true }) }), el('td', { class: 'size', text: SC.fmtNum(size) }));
      var ages = Math.round((newest - c) / WEEK);
      for (var a = 1; a <= maxAge; a++) {
        if (a > ages) { tr.appendChild(el('td', { class: 'future' })); continue; }
        var n = cells[a] || 0, share = size ? n / size : 0;
        var td = el('td', { class: 'cell', 'data-age': a, 'data-share': share.toFixed(3),
          title: n + ' of ' + size + ' active in week +' + a + ' (' + Math.round(share * 100) + '%)', text: Math.round(share * 100) + '%' });
        // CSSOM, which the Content-Security-Policy allows (a style
        // attribute it would not).
        td.style.backgroundColor = 'rgba(31, 111, 180, ' + (0.08 + 0.92 * share).toFixed(3) + ')';
        if (share > 0.45) td.classList.add('dark');
        tr.appendChild(td);
      }
      body.appendChild(tr);
    });
    table.appendChild(body);
    box.appendChild(el('div', { class: 'table-wrap' }, table));
    box.appendChild(el('p', { class: 'small muted', text: 'The cohorts of the last ' + MAX_COHORTS + ' weeks; a cell is the share of the cohort active that many weeks after its first, darker for more.' }));
  }

  // week ranks the categories of one week by messages, with the change
  // from the week before.
  function week(box, m, end) {
    placeholder(box, 'Loading…');
    getAll('activity-by-category-1w', { start: end, stop: end }).then(function (rows) {
      SC.clear(box);
      if (!rows.length) { placeholder(box, 'No messages that week.', 'empty'); return; }
      rows.sort(function (a, b) { return b.messages - a.messages || (a.category < b.category ? -1 : 1); });
      var top = rows[0].messages || 1;
      var total = rows.reduce(function (s, r) { return s + r.messages; }, 0);
      box.appendChild(el('p', { class: 'small muted', text: 'Week of ' + label(m, end) + ' to ' + SC.fmtTime(end - 86400, { dateOnly: true }) +
        (SC.isPartial(m, end) ? ' (still filling)' : '') + ': ' + SC.fmtNum(total) + ' messages in ' + rows.length + ' categories.' }));
      var table = el('table', { class: 'rank' }, el('thead', null, el('tr', null, el('th', { text: '#' }), el('th', { text: 'category' }),
        el('th', { text: 'messages' }), el('th', { text: 'vs. the week before' }), el('th', { text: 'contributors' }))));
      var body = el('tbody');
      rows.forEach(function (r, i) {
        var d = r.messages - r.previous_messages;
        var pct = r.previous_messages ? Math.round(d / r.previous_messages * 100) : null;
        var bar = el('span', { class: 'rank-bar' });
        bar.style.width = Math.max(1, Math.round(r.messages / top * 100)) + '%';
        body.appendChild(el('tr', { 'data-category': r.category },
          el('td', { class: 'num', text: i + 1 }),
          el('td', null, r.category),
          el('td', { class: 'num msgs' }, el('span', { class: 'rank-num', text: SC.fmtNum(r.messages) }), bar),
          el('td', { class: 'num change ' + (d > 0 ? 'up' : d < 0 ? 'down' : 'same'),
            text: r.previous_messages ? (d > 0 ? '▲ +' : d < 0 ? '▼ ' : '= ') + SC.fmtNum(d) + (pct === null ? '' : ' (' + (pct > 0 ? '+' : '') + pct + '%)') : 'new this week' }),
          el('td', { class: 'num', text: SC.fmtNum(r.contributors) })));
      });
      table.appendChild(body);
      box.appendChild(el('div', { class: 'table-wrap' }, table));
      document.body.dataset.weekReady = String(end);
    }).catch(function (e) { placeholder(box, 'Cannot read activity-by-category-1w: ' + e.message, 'error'); });
  }

  function missing(e, ident, box) {
    var msg = e && e.status === 404 ? 'The model ' + ident + ' is not loaded (scripts/' + ident.replace(/-1w$|-1mo$/, '') + '.lua).' : 'Cannot read ' + ident + ': ' + (e && e.message || e);
    placeholder(box, msg, e && e.status === 404 ? 'empty' : 'error');
  }

  var weekly = Promise.all([meta('contributors-1w'), getAll('contributors-1w', { order: 'asc' })]).then(function (res) {
    var m = res[0], rows = res[1];
    stacked($('#weekly'), m, rows);
    headline(m, rows);
    var pick = SC.clear($('#week-pick'));
    rows.slice().reverse().forEach(function (r) {
      pick.appendChild(el('option', { value: r.timestamp, text: label(m, r.timestamp) + (SC.isPartial(m, r.timestamp) ? ' (filling)' : '') }));
    });
    if (rows.length) {
      week($('#week'), m, rows[rows.length - 1].timestamp);
      pick.addEventListener('change', function () { week($('#week'), m, +this.value); });
    } else {
      placeholder($('#week'), 'No rows yet.', 'empty');
    }
    return { m: m, rows: rows };
  }).catch(function (e) { missing(e, 'contributors-1w', $('#weekly')); placeholder($('#week'), 'No weeks to show.', 'empty'); return null; });

  var monthly = Promise.all([meta('contributors-1mo'), getAll('contributors-1mo', { order: 'asc' })]).then(function (res) {
    stacked($('#monthly'), res[0], res[1]);
  }).catch(function (e) { missing(e, 'contributors-1mo', $('#monthly')); });

  var grid = weekly.then(function (w) {
    var newest = w && w.rows.length ? w.rows[w.rows.length - 1].timestamp : null;
    if (newest === null) { placeholder($('#cohorts'), 'No rows yet.', 'empty'); return; }
    // Only what the grid shows: cohorts of the last MAX_COHORTS weeks.
    return getAll('contributor-retention-1w', { order: 'asc', start: newest - (MAX_COHORTS - 1) * WEEK })
      .then(function (rows) { cohorts($('#cohorts'), rows, newest); })
      .catch(function (e) { missing(e, 'contributor-retention-1w', $('#cohorts')); });
  });

  Promise.all([weekly, monthly, grid]).then(function () { document.body.dataset.contributorsReady = 'yes'; });
})();
