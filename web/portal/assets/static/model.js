/* statscache portal: one model's feed. Description and columns, a range
   picker, a chart with one line per key value and drill-down, a table
   with infinite scroll over the paged API, grouping by the model's layout,
   and downloads of the whole selection. The range lives in the URL, so a
   view can be shared and the Back button undoes a drill-down. */
'use strict';

(function () {
  var el = SC.el, $ = SC.$;
  var PAGE = 100;          // the API's largest page
  var CHART_PAGES = 20;    // the chart reads at most this many pages (2000 rows)
  var TOP_N = 6;           // series shown by default
  var ident = $('#main').getAttribute('data-ident');
  var base = SC.apiPath(ident);

  var st = { start: null, stop: null, order: 'desc', anchor: 'data', value: null, keys: null };
  var meta = null, sh = null, layout = null, newest = null, gen = 0, ctrl = null;
  var chartRows = [], tableState = null;

  function banner(msg, info) {
    var b = $('#banner');
    b.className = 'banner' + (info ? ' info' : '');
    b.textContent = msg;
    b.hidden = !msg;
  }

  // --- URL state -------------------------------------------------------
  function readURL() {
    var p = new URLSearchParams(location.search);
    var num = function (k) { var v = p.get(k); return v !== null && v !== '' && isFinite(+v) ? +v : null; };
    st.start = num('start'); st.stop = num('stop');
    st.order = p.get('order') === 'asc' ? 'asc' : 'desc';
    st.anchor = p.get('anchor') === 'now' ? 'now' : 'data';
    st.value = p.get('value');
    st.keys = p.has('key') ? p.getAll('key') : null;
  }
  function writeURL(push) {
    var p = new URLSearchParams();
    if (st.start !== null) p.set('start', String(st.start));
    if (st.stop !== null) p.set('stop', String(st.stop));
    if (st.order !== 'desc') p.set('order', st.order);
    if (st.anchor !== 'data') p.set('anchor', st.anchor);
    if (st.value) p.set('value', st.value);
    if (st.keys) st.keys.forEach(function (k) { p.append('key', k); });
    var s = p.toString(), url = location.pathname + (s ? '?' + s : '');
    if (url !== location.pathname + location.search) history[push ? 'pushState' : 'replaceState'](null, '', url);
  }
  // viewQuery is this view's query string (range, order, series), for
  // links to the same view of another interval.
  function viewQuery() {
    var s = new URLSearchParams(location.search).toString(); // the same script: the same columns

    return s ? '?' + s : '';
  }
  function selection(extra) {
    var o = { start: st.start, stop: st.stop, order: st.order };
    Object.keys(extra || {}).forEach(function (k) { o[k] = extra[k]; });
    return SC.query(o);
  }

  // --- header ----------------------------------------------------------
  function renderHead() {
    document.title = meta.name + (meta.interval_text ? ' (' + meta.interval_text + ')' : '') + ' · statscache';
    $('#title').textContent = meta.ident;
    $('#summary').textContent = meta.summary || '';
    $('#description').textContent = meta.description || 'No description.';
    var tb = $('#columns tbody');
    SC.clear(tb);
    meta.columns.forEach(function (c) {
      tb.appendChild(el('tr', null, el('td', null, el('code', { text: c.name })), el('td', { text: c.type + (c.not_null ? ', not null' : '') + (c.aggregate && c.aggregate !== 'none' ? '; combines by ' + c.aggregate : '') }),
        el('td', { text: c.key ? 'yes' : '' }), el('td', { text: c.doc || '' })));
    });
    var h = SC.clear($('#health'));
    var item = function (label, value, title) { h.appendChild(el('span', { title: title || null }, label + ' ', el('strong', { text: value }))); };
    item('Interval', meta.interval_text || 'none (one row per event)');
    item('Cursor', meta.cursor && meta.cursor.time !== null ? SC.fmtTime(meta.cursor.time) : 'not started', meta.cursor && meta.cursor.id);
    item('Lag', SC.fmtDuration(meta.lag_seconds));
    item('Processed', SC.fmtNum(meta.processed));
    item('Errors', SC.fmtNum(meta.errors), meta.last_error ? meta.last_error.error : null);
    item('Status', meta.status === 'failed' ? 'failed: ' + meta.status_reason : 'ok');
    if (meta.queued > 0) item('Queued', SC.fmtNum(meta.queued), 'work items committed and waiting for their outcome');
    if (meta.topics && meta.topics.length) item('Topics', meta.topics.join(', '));
  }

  // siblings links every interval of the same script, shortest first, each
  // link carrying the current range (kept up to date by syncForm), so that
  // a copied link opens the same range.
  function renderSiblings() {
    SC.get('/api/').then(function (r) {
      var mine = SC.baseIdent(ident, meta.interval_text);
      var all = (r.data || []).filter(function (x) { return SC.baseIdent(x) === mine && x.length > mine.length; });
      if (all.length < 2 || !meta.interval_text) return;
      all.sort(function (a, b) {
        return SC.intervalSeconds(a.slice(mine.length + 1)) - SC.intervalSeconds(b.slice(mine.length + 1)) || (a < b ? -1 : 1);
      });
      var box = SC.clear($('#siblings'));
      box.appendChild(el('span', { class: 'muted', text: 'Same range at another interval:' }));
      all.forEach(function (x) {
        var text = x.slice(mine.length + 1) || x;
        if (x === ident) { box.appendChild(el('span', { class: 'chip active', 'aria-current': 'page', text: text, title: x })); return; }
        box.appendChild(el('a', { class: 'chip sibling', href: SC.pagePath(x), 'data-ident': x, text: text, title: x }));
      });
      box.hidden = false;
      syncForm();
    }).catch(function () { /* the links are a convenience */ });
  }

  // --- range form ------------------------------------------------------
  function syncForm() {
    $('#start').value = SC.inputValue(st.start);
    $('#stop').value = SC.inputValue(st.stop);
    $('#order').value = st.order;
    $('#anchor').value = st.anchor;
    document.querySelectorAll('[data-range]').forEach(function (b) {
      var r = b.getAttribute('data-range'), q = r === 'all' ? null : quickRange(+r);
      var on = r === 'all' ? st.start === null && st.stop === null : st.start === q.start && st.stop === q.stop;
      b.classList.toggle('active', on);
    });
    $('#api-link').href = base + selection({ rows_per_page: PAGE });
    $('#dl-csv').href = base + selection({ rows_per_page: PAGE, format: 'csv' });
    $('#dl-json').href = base + selection({ rows_per_page: PAGE, format: 'json' });
    document.querySelectorAll('#siblings a.sibling').forEach(function (a) {
      a.href = SC.pagePath(a.getAttribute('data-ident')) + viewQuery();
    });
  }
  // anchorTime is where quick ranges end: the end of the newest bucket (or
  // the newest row), or with "now", the end of the bucket holding now.
  function anchorTime() {
    var now = Date.now() / 1000, iv = meta && SC.fixedBuckets(meta) ? meta.interval : 0;
    if (st.anchor === 'now' || newest === null) return iv ? Math.floor(now / iv) * iv + iv : Math.ceil(now);
    return newest;
  }
  // quickRange is the last r seconds as whole buckets: a row's timestamp is
  // its bucket's end and both bounds are included, so the last hour of
  // one-minute buckets is the 60 ending in (stop - 3600, stop].
  function quickRange(r) {
    var stop = anchorTime(), iv = meta && SC.fixedBuckets(meta) ? meta.interval : 0;
    return { start: iv && iv < r ? stop - r + iv : stop - r, stop: stop };
  }
  $('#range').addEventListener('submit', function (e) { e.preventDefault(); });
  // The boxes take 24-hour UTC times; something else is said, not guessed.
  function typed(box, key) {
    var v = SC.parseInput(box.value);
    if (v === null && box.value.trim() !== '') {
      banner('Write the time as YYYY-MM-DD HH:MM:SS, 24-hour UTC (for example 2015-08-09 14:05:00).');
      return;
    }
    st[key] = v;
    reload(true);
  }
  $('#start').addEventListener('change', function () { typed(this, 'start'); });
  $('#stop').addEventListener('change', function () { typed(this, 'stop'); });
  $('#order').addEventListener('change', function () { st.order = this.value; reload(false); });
  $('#anchor').addEventListener('change', function () { st.anchor = this.value; syncForm(); writeURL(false); });
  document.querySelectorAll('[data-range]').forEach(function (b) {
    b.addEventListener('click', function () {
      var r = b.getAttribute('data-range');
      if (r === 'all') { st.start = null; st.stop = null; } else { var q = quickRange(+r); st.start = q.start; st.stop = q.stop; }
      reload(true);
    });
  });
  window.addEventListener('popstate', function () { readURL(); reload(null); });

  // reload starts over the chart and the table for the current range.
  // push: true adds a history entry, false replaces it, null leaves it.
  function reload(push) {
    if (st.start !== null && st.stop !== null && st.start > st.stop) {
      banner('The start of the range is after its end: change one of them.');
      syncForm();
      return;
    }
    banner('');
    if (push !== null) writeURL(push);
    syncForm();
    gen++;
    if (ctrl) ctrl.abort();
    ctrl = typeof AbortController === 'function' ? new AbortController() : null;
    loadChart(gen);
    startTable(gen);
  }
  function signal() { return ctrl ? ctrl.signal : undefined; }
  function aborted(e) { return e && e.name === 'AbortError'; }

  // --- chart -----------------------------------------------------------
  function chartStatus(msg, error) {
    var s = $('#chart-status');
    s.textContent = msg;
    s.className = 'placeholder' + (error ? ' error' : '');
    s.hidden = !msg;
  }
  function loadChart(g) {
    if (!sh.timeSeries) {
      chartStatus('');
      SC.clear($('#chart')); SC.clear($('#legend'));
      $('#chart-panel').hidden = true;
      return;
    }
    chartStatus('Loading the chart…');
    document.body.setAttribute('data-chart', 'loading');
    var rows = [], pages = 0, url = base + selection({ rows_per_page: PAGE, page: 1, order: 'desc' }), more = false, count = 0;
    function step() {
      return SC.get(url, { signal: signal() }).then(function (r) {
        if (g !== gen) return;
        rows = rows.concat(r.data || []);
        pages++;
        count = +r.res.headers.get('X-Link-Count') || 0;
        var ls = SC.links(r.res.headers.get('Link')), next = ls.next;
        if (pages === 1) document.body.setAttribute('data-chart-end', new URLSearchParams((ls.first || '').split('?')[1] || '').get('end') || '');
        if (next && pages < CHART_PAGES) { url = next; return step(); }
        more = !!next;
      });
    }
    step().then(function () {
      if (g !== gen) return;
      chartRows = rows.reverse();
      var hint = 'Click a point to narrow the range to its ' + (meta.interval_text ? meta.interval_text + ' bucket' : 'moment') + '.';
      var agg = sh.agg[st.value && sh.values.indexOf(st.value) >= 0 ? st.value : sh.values[0]];
      if (agg === 'last') hint = 'Each point is the value of the row listed last at that time (a running total or gauge: never added up). ' + hint;
      else if (agg === 'sum' && meta.interval) hint = 'A bucket without a row counts 0. ' + hint;
      if (more) hint = 'The chart shows the newest ' + SC.fmtNum(rows.length) + ' of about ' + SC.fmtNum(count * PAGE) + ' rows: narrow the range to see the rest. ' + hint;
      $('#chart-hint').textContent = hint;
      drawChart();
      document.body.setAttribute('data-chart', 'ready');
    }).catch(function (e) {
      if (aborted(e) || g !== gen) return;
      SC.clear($('#chart')); SC.clear($('#legend'));
      chartStatus('The chart could not be loaded: ' + e.message, true);
      document.body.setAttribute('data-chart', 'error');
    });
  }

  // series groups the chart rows by the series column and combines the
  // rows of one series and bucket as the column's aggregate says: counts
  // add up, peaks take the largest, running totals and gauges take the
  // value of the row the API lists last (never a sum). A series' summary
  // number (legend, ranking) is made the same way over the whole range.
  // For counts of a bucketed model, a bucket without a row is a 0.
  function buildSeries() {
    var vcol = st.value && sh.values.indexOf(st.value) >= 0 ? st.value : sh.values[0];
    var agg = sh.agg[vcol];
    var by = new Map();
    chartRows.forEach(function (r) {
      var v = r[vcol];
      if (typeof v !== 'number' || !isFinite(v)) return;
      var k = sh.series ? (r[sh.series] === null || r[sh.series] === undefined ? '(none)' : String(r[sh.series])) : vcol;
      var s = by.get(k);
      if (!s) { s = { name: k, total: undefined, map: new Map() }; by.set(k, s); }
      s.total = SC.combine(agg, s.total, v);
      s.map.set(r.timestamp, SC.combine(agg, s.map.get(r.timestamp), v));
    });
    var span = chartRows.length ? [chartRows[0].timestamp, chartRows[chartRows.length - 1].timestamp] : null;
    var zeros = agg === 'sum' && SC.fixedBuckets(meta) && span;
    var all = Array.from(by.values()).sort(function (a, b) { return b.total - a.total || (a.name < b.name ? -1 : 1); });
    all.forEach(function (s, i) {
      s.points = Array.from(s.map, function (e) { return { t: e[0], v: e[1], partial: SC.isPartial(meta, e[0]) }; });
      if (zeros) s.points = SC.fillZeros(s.points, meta.interval, span[0], span[1]);
      s.rank = i;
    });
    return { vcol: vcol, agg: agg, all: all, zeros: !!zeros };
  }

  function drawChart() {
    var box = $('#chart');
    $('#chart-panel').hidden = false;
    var b = buildSeries();
    var pick = $('#value-pick'), sel = $('#value-col');
    if (sh.values.length > 1) {
      SC.clear(sel);
      sh.values.forEach(function (v) { sel.appendChild(el('option', { value: v, text: v, selected: v === b.vcol })); });
      pick.hidden = false;
    }
    if (!b.all.length) {
      SC.clear(box); SC.clear($('#legend')); $('#keys').hidden = true;
      $('#chart-hint').textContent = '';
      chartStatus(st.start === null && st.stop === null ? 'This model has no rows yet.' : 'No rows in this range. Try a wider range, or “All”.');
      return;
    }
    chartStatus('');
    var chosen = st.keys ? b.all.filter(function (s) { return st.keys.indexOf(s.name) >= 0; }) : b.all.slice(0, TOP_N);
    if (!chosen.length) chosen = b.all.slice(0, TOP_N);
    chosen.forEach(function (s) { s.color = SC.PALETTE[s.rank % SC.PALETTE.length]; });
    var span = chartRows.length ? [chartRows[0].timestamp, chartRows[chartRows.length - 1].timestamp] : null;
    SCChart.lineChart(box, chosen, { interval: b.zeros ? null : meta.interval, domain: span, onPick: drill, integer: sh.ints[b.vcol],
      label: meta.ident + ': ' + b.vcol + (sh.series ? ' per ' + sh.series : '') });
    box.setAttribute('data-agg', b.agg);
    var legend = SC.clear($('#legend'));
    var word = SC.aggWord(b.agg);
    chosen.forEach(function (s) {
      legend.appendChild(el('span', { title: s.name, 'data-series': s.name, 'data-total': word ? s.total : null }, el('i', { class: 'swatch', 'data-color': s.color }),
        s.name + (word ? ' (' + word + ' ' + SC.fmtNum(s.total) + ')' : '')));
    });
    if (chosen.some(function (s) { return s.points.some(function (p) { return p.partial; }); })) {
      legend.appendChild(el('span', { class: 'partial-key' }, el('i', { class: 'swatch hollow' }), 'hollow point: the bucket is still filling (partial)'));
    }
    legend.querySelectorAll('i[data-color]').forEach(function (i) { i.style.background = i.getAttribute('data-color'); });
    renderKeyPicker(b.all, chosen);
  }

  function renderKeyPicker(all, chosen) {
    var box = $('#keys');
    if (!sh.series || all.length <= 1) { box.hidden = true; return; }
    box.hidden = false;
    box.querySelector('summary').textContent = 'Choose series (' + chosen.length + ' of ' + all.length + ' ' + sh.series + ' values shown)';
    var list = SC.clear($('#key-list'));
    var on = new Set(chosen.map(function (s) { return s.name; }));
    all.forEach(function (s) {
      var cb = el('input', { type: 'checkbox', value: s.name, checked: on.has(s.name) });
      cb.addEventListener('change', function () {
        var keys = Array.from(list.querySelectorAll('input:checked')).map(function (x) { return x.value; });
        st.keys = keys.length ? keys : null;
        writeURL(false);
        drawChart();
      });
      list.appendChild(el('label', { 'data-name': s.name.toLowerCase() }, cb, el('span', { text: s.name }), el('span', { class: 'n', text: SC.aggWord(sh.agg[st.value && sh.values.indexOf(st.value) >= 0 ? st.value : sh.values[0]]) ? SC.fmtNum(s.total) : '' })));
    });
    filterKeys();
  }
  function filterKeys() {
    var f = $('#key-filter').value.trim().toLowerCase();
    $('#key-list').querySelectorAll('label').forEach(function (l) { l.hidden = f !== '' && l.getAttribute('data-name').indexOf(f) < 0; });
  }
  $('#key-filter').addEventListener('input', filterKeys);
  $('#value-col').addEventListener('change', function () { st.value = this.value; writeURL(false); drawChart(); });
  window.addEventListener('resize', function () {
    clearTimeout(drawChart.t);
    drawChart.t = setTimeout(function () { if (meta && sh.timeSeries && chartRows.length) drawChart(); }, 150);
  });

  // drill narrows the range to the bucket of the picked point. A row's
  // timestamp is the END of its bucket and the API's bounds are inclusive,
  // so the bucket's rows are those in (start, t]: start is put one
  // millisecond after the previous bucket's end (a calendar month's start
  // comes from the calendar). Models without an interval narrow to the
  // span since the previous point.
  function drill(t) {
    var start;
    if (meta.interval) {
      start = +(SC.bucketStart(meta, t) + 0.001).toFixed(3);
    } else {
      var prev = null;
      chartRows.forEach(function (r) { if (r.timestamp < t && (prev === null || r.timestamp > prev)) prev = r.timestamp; });
      start = prev === null ? t : +(prev + 0.001).toFixed(3);
    }
    if (st.start === start && st.stop === t) return;
    st.start = start;
    st.stop = t;
    reload(true);
  }

  // --- table -----------------------------------------------------------
  function tableColumns() {
    var cols = meta.columns.slice();
    var rank = function (c) { return c.name === 'timestamp' ? 0 : c.key ? 1 : 2; };
    return cols.map(function (c, i) { return { c: c, i: i }; })
      .sort(function (a, b) { return rank(a.c) - rank(b.c) || a.i - b.i; })
      .map(function (x) { return x.c; });
  }

  // cell is one value of the table; data-label names its column on a
  // phone, where rows become cards. A row of a bucket still filling is
  // marked partial.
  function cell(c, v) {
    var lab = c.name;
    if (v === null || v === undefined) return el('td', { class: 'null', 'data-label': lab, text: '—' });
    if (c.name === 'timestamp' && typeof v === 'number') {
      var part = SC.isPartial(meta, v);
      return el('td', { title: String(v), 'data-label': lab, class: part ? 'partial' : null }, SC.fmtTime(v),
        part ? el('span', { class: 'tag-partial', title: 'the bucket is still filling: its numbers will grow', text: 'partial' }) : null);
    }
    if (typeof v === 'number') return el('td', { class: 'num', 'data-label': lab, text: SC.fmtNum(v) });
    if (typeof v === 'object') { var j = JSON.stringify(v); return el('td', { title: j.length > 60 ? j : null, 'data-label': lab, text: j }); }
    var s = String(v);
    return el('td', { title: s.length > 60 ? s : null, 'data-label': lab, text: s });
  }

  // normLayout reads a layout of groups of categories, tolerating the
  // usual spellings: {groups: [{name|title, categories|items: [name |
  // {category|name, title}]}], column?}.
  function normLayout(L) {
    if (!L || typeof L !== 'object' || !Array.isArray(L.groups)) return null;
    var colNames = meta.columns.map(function (c) { return c.name; });
    var col = [L.column, L.by, L.category_column, 'category', sh.series].filter(function (c) { return c && colNames.indexOf(c) >= 0; })[0];
    if (!col) return null;
    var groups = L.groups.map(function (g, i) {
      if (typeof g === 'string') g = { name: g };
      var items = g.categories || g.items || g.members || [];
      if (!Array.isArray(items)) items = Object.keys(items).map(function (k) { var o = items[k]; return typeof o === 'object' ? Object.assign({ category: k }, o) : { category: k, title: String(o) }; });
      return {
        title: g.title || g.label || g.name || 'Group ' + (i + 1),
        cats: items.map(function (c) {
          if (typeof c === 'string') return { id: c, title: c };
          var id = c.category || c.name || c.key || c.id;
          return { id: String(id), title: c.title || c.label || c.name || String(id) };
        })
      };
    });
    return { column: col, title: L.title || null, groups: groups };
  }

  function startTable(g) {
    var table = $('#rows');
    var cols = tableColumns();
    var thead = SC.clear(table.querySelector('thead'));
    thead.appendChild(el('tr', null, cols.map(function (c) {
      return el('th', { class: c.name !== 'timestamp' && (c.type === 'integer' || c.type === 'real') ? 'num' : null, title: c.doc || null, text: c.name });
    })));
    table.querySelectorAll('tbody').forEach(function (b) { b.remove(); });
    var t = { gen: g, cols: cols, next: null, loading: false, done: false, loaded: 0, total: null };
    if (layout) {
      t.cats = new Map();
      layout.groups.concat([{ title: 'Other', cats: [], other: true }]).forEach(function (gr) {
        var head = el('tbody', { class: 'group' }, el('tr', { class: 'group-head' }, el('td', { colspan: cols.length, text: gr.title })));
        table.appendChild(head);
        gr.cats.forEach(function (c) {
          var body = el('tbody', { 'data-category': c.id }, el('tr', { class: 'cat-head' }, el('td', { colspan: cols.length, text: c.title + (c.title !== c.id ? ' (' + c.id + ')' : '') })));
          table.appendChild(body);
          t.cats.set(c.id, body);
        });
        if (gr.other) { t.other = el('tbody', { 'data-category': '' }); table.appendChild(t.other); t.otherHead = head; head.hidden = true; }
      });
    } else {
      t.body = el('tbody');
      table.appendChild(t.body);
    }
    tableState = t;
    document.body.removeAttribute('data-table-done');
    document.body.removeAttribute('data-total');
    document.body.setAttribute('data-rows', '0');
    $('#row-count').textContent = '';
    var s = $('#sentinel');
    s.className = 'sentinel';
    s.textContent = 'Loading…';
    // The exact row count (pages of one row), which also fixes the end of
    // the listing: the table's pages carry the same end, so rows committed
    // while the reader scrolls neither show twice nor change the count.
    SC.get(base + selection({ rows_per_page: 1 }), { signal: signal() }).then(function (r) {
      if (t.gen !== gen) return;
      t.total = +r.res.headers.get('X-Link-Count') || 0;
      var first = SC.links(r.res.headers.get('Link')).first || '';
      var end = new URLSearchParams(first.split('?')[1] || '').get('end');
      t.next = base + selection({ rows_per_page: PAGE, page: 1, end: end });
      document.body.setAttribute('data-end', end || '');
      document.body.setAttribute('data-total', String(t.total));
      countText();
      more();
    }).catch(function (e) {
      if (aborted(e) || t.gen !== gen) return;
      t.next = base + selection({ rows_per_page: PAGE, page: 1 });
      more();
    });
  }

  function countText() {
    var t = tableState;
    $('#row-count').textContent = t.total === null ? SC.fmtNum(t.loaded) + ' loaded' :
      SC.fmtNum(t.loaded) + ' of ' + SC.fmtNum(t.total) + (t.total === 1 ? ' row' : ' rows');
  }

  function more() {
    var t = tableState;
    if (!t || t.loading || t.done || !t.next) return;
    t.loading = true;
    var s = $('#sentinel');
    s.textContent = 'Loading…';
    SC.get(t.next, { signal: signal() }).then(function (r) {
      if (t.gen !== gen) return;
      var rows = r.data || [];
      rows.forEach(function (row) {
        var tr = el('tr', null, t.cols.map(function (c) { return cell(c, row[c.name]); }));
        if (t.cats) {
          var body = t.cats.get(String(row[layout.column]));
          if (!body) { body = t.other; t.otherHead.hidden = false; }
          body.appendChild(tr);
        } else {
          t.body.appendChild(tr);
        }
      });
      t.loaded += rows.length;
      t.next = SC.links(r.res.headers.get('Link')).next || null;
      t.done = !t.next || rows.length === 0;
      t.loading = false;
      if (t.total === null && t.done) t.total = t.loaded;
      countText();
      if (t.done) {
        s.textContent = t.loaded === 0 ? (st.start === null && st.stop === null ? 'This model has no rows yet.' : 'No rows in this range.') : 'End of the selection.';
        document.body.setAttribute('data-table-done', '1');
      } else {
        s.textContent = 'Scroll for more';
        var rect = s.getBoundingClientRect();
        if (rect.top < window.innerHeight + 300) more();
      }
      document.body.setAttribute('data-rows', String(t.loaded));
    }).catch(function (e) {
      if (aborted(e) || t.gen !== gen) return;
      t.loading = false;
      s.className = 'sentinel error';
      SC.clear(s).appendChild(document.createTextNode('Could not load rows: ' + e.message + ' '));
      s.appendChild(el('button', { type: 'button', class: 'chip', text: 'Retry', onclick: function () { s.className = 'sentinel'; more(); } }));
    });
  }
  if ('IntersectionObserver' in window) {
    new IntersectionObserver(function (entries) {
      if (entries.some(function (e) { return e.isIntersecting; })) more();
    }, { rootMargin: '300px 0px' }).observe($('#sentinel'));
  } else {
    window.addEventListener('scroll', function () { if ($('#sentinel').getBoundingClientRect().top < window.innerHeight + 300) more(); });
  }

  // --- downloads -------------------------------------------------------
  // download reads every page of the selection (rows_per_page=100, the
  // API's cap) following Link rel="next", joins them and saves one file.
  function download(fmt) {
    var btns = [$('#dl-csv'), $('#dl-json')], status = $('#dl-status');
    if (btns[0].getAttribute('aria-disabled') === 'true') return;
    btns.forEach(function (b) { b.setAttribute('aria-disabled', 'true'); });
    var url = base + selection({ rows_per_page: PAGE, page: 1, format: fmt === 'csv' ? 'csv' : null });
    var parts = [], rows = [], page = 0;
    function step() {
      status.textContent = 'reading page ' + (page + 1) + '…';
      var p = fmt === 'csv' ? SC.getText(url) : SC.get(url);
      return p.then(function (r) {
        page++;
        if (fmt === 'csv') {
          var text = r.text;
          if (page > 1) text = text.slice(text.indexOf('\n') + 1); // the header line (column names hold no newline)
          parts.push(text);
        } else {
          rows = rows.concat(r.data || []);
        }
        var next = SC.links(r.res.headers.get('Link')).next;
        if (next) { url = next; return step(); }
      });
    }
    step().then(function () {
      var blob = fmt === 'csv' ? new Blob(parts, { type: 'text/csv' }) : new Blob([JSON.stringify(rows, null, 1)], { type: 'application/json' });
      var a = el('a', { href: URL.createObjectURL(blob), download: ident.replace(/[^\w.-]+/g, '_') + '.' + fmt });
      document.body.appendChild(a);
      a.click();
      setTimeout(function () { URL.revokeObjectURL(a.href); a.remove(); }, 10000);
      status.textContent = 'saved ' + page + (page === 1 ? ' page' : ' pages') + (fmt === 'json' ? ', ' + SC.fmtNum(rows.length) + ' rows' : '');
    }).catch(function (e) {
      status.textContent = 'download failed: ' + e.message;
    }).then(function () { btns.forEach(function (b) { b.removeAttribute('aria-disabled'); }); });
  }
  // The buttons are links to the selection's first page in the API (a link
  // to share); a click downloads the whole selection instead.
  $('#dl-csv').addEventListener('click', function (e) { e.preventDefault(); download('csv'); });
  $('#dl-json').addEventListener('click', function (e) { e.preventDefault(); download('json'); });

  // --- start -----------------------------------------------------------
  readURL();
  syncForm();
  SC.get(base + '/meta').then(function (r) {
    meta = r.data;
    sh = SC.shape(meta);
    renderHead();
    renderSiblings();
    var waits = [SC.get(base + '?order=desc&rows_per_page=1').then(function (x) {
      newest = x.data && x.data.length ? x.data[0].timestamp : null;
    }).catch(function () { newest = null; })];
    if (meta.has_layout) {
      waits.push(SC.get(base + '/layout').then(function (x) {
        layout = normLayout(x.data);
        var note = $('#layout-note');
        note.textContent = layout ? 'Rows grouped as the model’s layout says' + (layout.title ? ' (“' + layout.title + '”)' : '') + ', by ' + layout.column + '.' :
          'This model declares a layout the portal cannot use to group its rows: ' + JSON.stringify(x.data).slice(0, 200);
        note.hidden = false;
      }).catch(function () { layout = null; }));
    }
    return Promise.all(waits);
  }).then(function () {
    document.body.setAttribute('data-model-ready', '1');
    reload(null);
  }).catch(function (e) {
    $('#model').querySelectorAll('.about, .range, .panel').forEach(function (n) { n.hidden = true; });
    if (e && e.status === 404) {
      $('#title').textContent = 'No such model';
      banner('There is no model called “' + ident + '”. The dashboard lists every model.', true);
      $('#summary').appendChild(el('a', { href: '/web/dashboard', text: 'Back to the dashboard' }));
    } else {
      banner('The model could not be loaded: ' + (e && e.message || e) + '. Reload the page to try again.');
    }
    document.body.setAttribute('data-model-ready', 'error');
  });
})();
