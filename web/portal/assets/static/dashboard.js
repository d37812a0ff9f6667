/* statscache portal: the dashboard. Every model as a card (latest values,
   sparkline, health), grouped by script, filtered by name, refreshed by
   polling the API every POLL_MS without reloading the page. */
'use strict';

(function () {
  var el = SC.el, $ = SC.$;
  var POLL_MS = 10000, HISTORY = 50, PARALLEL = 4;
  var groupsEl = $('#groups'), filterEl = $('#filter'), liveEl = $('#live'), bannerEl = $('#banner'), nomatchEl = $('#nomatch');
  var cards = new Map(); // ident -> card
  var groups = new Map(); // group name -> {root, list, count}
  var timer = null, busy = false, loadedOnce = false;

  var params = new URLSearchParams(location.search);
  var q = params.get('q');
  if (q) filterEl.value = q;
  // ?refresh=N polls every N seconds instead (1 to 3600), e.g. for tests.
  var refreshSecs = +params.get('refresh');
  if (refreshSecs >= 1 && refreshSecs <= 3600) POLL_MS = refreshSecs * 1000;
  liveEl.title = 'Refreshes every ' + POLL_MS / 1000 + ' s';

  // pool runs fn over items, at most n at a time, in order of results.
  function pool(items, n, fn) {
    var out = new Array(items.length), next = 0;
    function worker() {
      if (next >= items.length) return Promise.resolve();
      var i = next++;
      return fn(items[i]).then(function (r) { out[i] = r; return worker(); });
    }
    var ws = [];
    for (var k = 0; k < Math.min(n, items.length); k++) ws.push(worker());
    return Promise.all(ws).then(function () { return out; });
  }

  // load reads a model's meta, its newest rows and, for a bucketed model
  // whose numbers add up, every row of its last complete bucket (the
  // headline), which the newest rows may not all hold.
  function load(ident) {
    var base = SC.apiPath(ident);
    return SC.get(base + '/meta').then(function (m) {
      return SC.get(base + '?order=desc&rows_per_page=100').then(function (r) {
        var out = { ident: ident, meta: m.data, rows: r.data || [] };
        var sh = SC.shape(m.data), L = SC.lastComplete(m.data, out.rows.slice().reverse());
        var agg = sh.values.length ? sh.agg[sh.values[0]] : 'none';
        if (L === null || !out.rows.length || (agg !== 'sum' && agg !== 'max')) return out;
        out.complete = L;
        return readAll(base + SC.query({ start: L, stop: L, order: 'asc', rows_per_page: 100 }), 10).then(function (rows) {
          out.headRows = rows;
          return out;
        });
      });
    }).catch(function (e) { return { ident: ident, error: e }; });
  }

  // readAll follows the Link header from url for at most max pages.
  function readAll(url, max) {
    var rows = [], n = 0;
    function step(u) {
      return SC.get(u).then(function (r) {
        rows = rows.concat(r.data || []);
        var next = SC.links(r.res.headers.get('Link')).next;
        if (next && ++n < max) return step(next);
        return rows;
      });
    }
    return step(url);
  }

  function groupFor(name) {
    var g = groups.get(name);
    if (g) return g;
    var count = el('span', { class: 'count' });
    var list = el('div', { class: 'cards' });
    var root = el('section', { class: 'group', 'data-group': name }, el('h2', null, name, count), list);
    g = { root: root, list: list, count: count, name: name };
    groups.set(name, g);
    return g;
  }

  function newCard(ident) {
    var c = { ident: ident };
    c.link = el('a', { href: SC.pagePath(ident), text: ident });
    c.badges = el('span', { class: 'badges' });
    c.summary = el('p', { class: 'summary' });
    c.latest = el('div', { class: 'latest' });
    c.spark = el('div', { class: 'spark-box' });
    c.stats = el('dl', { class: 'stats' });
    c.err = el('p', { class: 'err', hidden: true });
    c.root = el('article', { class: 'card', 'data-ident': ident },
      el('div', { class: 'card-head' }, el('h3', null, c.link), c.badges), c.summary, c.latest, c.spark, c.stats, c.err);
    return c;
  }

  function badge(text, cls, title) { return el('span', { class: 'badge ' + (cls || ''), title: title || null, text: text }); }
  function stat(label, value, title, cls) {
    return el('div', { class: cls || null }, el('dt', { text: label }), el('dd', { text: value, title: title || null }));
  }

  function fill(c, r) {
    SC.clear(c.badges); SC.clear(c.latest); SC.clear(c.spark); SC.clear(c.stats);
    c.err.hidden = true;
    if (r.error) {
      c.summary.textContent = '';
      c.badges.appendChild(badge('unavailable', 'error'));
      c.err.textContent = r.error.status === 404 ? 'This model is no longer served.' : 'Could not load: ' + r.error.message;
      c.err.hidden = false;
      c.search = c.ident.toLowerCase();
      return;
    }
    var m = r.meta, rows = r.rows, sh = SC.shape(m);
    c.meta = m;
    c.search = [m.ident, m.name, m.summary, SC.group(m)].join(' ').toLowerCase();
    c.summary.textContent = m.summary || '';
    if (m.interval_text) c.badges.appendChild(badge('every ' + m.interval_text, 'interval'));
    var behind = m.lag_seconds > Math.max(300, 2 * (m.interval || 0));
    if (m.status === 'failed') c.badges.appendChild(badge('failed', 'failed', m.status_reason));
    else if (behind) c.badges.appendChild(badge('catching up', 'behind', 'lag ' + SC.fmtDuration(m.lag_seconds)));
    else c.badges.appendChild(badge(m.status || 'ok', 'ok'));

    var newest = rows.length ? rows[0].timestamp : null;
    if (!rows.length) {
      c.latest.appendChild(el('span', { class: 'label', text: 'No rows yet' }));
      c.spark.appendChild(el('div', { class: 'spark-empty', text: 'No data yet' }));
    } else if (sh.timeSeries) {
      headline(c, r, sh);
    } else {
      var cols = (m.columns || []).filter(function (x) { return x.name !== 'timestamp'; }).slice(0, 3);
      c.latest.appendChild(el('span', { class: 'label', text: cols.map(function (x) {
        var v = rows[0][x.name];
        return x.name + ': ' + (v === null || v === undefined ? '—' : typeof v === 'object' ? JSON.stringify(v) : String(v));
      }).join(' · ') }));
      c.spark.appendChild(el('div', { class: 'spark-empty', text: 'Not a numeric series: open the model for its table' }));
    }
    var short = function (t) { return SC.fmtTime(t, { noSeconds: true }).replace(' UTC', ''); };
    if (newest === null) {
      c.stats.appendChild(stat('Newest row (UTC)', '—', null, 'wide'));
    } else if (m.interval && SC.fixedBuckets(m)) {
      // A bucket is labelled with its end: say which span it covers.
      var part = SC.isPartial(m, newest);
      c.stats.appendChild(stat('Newest bucket (UTC)', SC.fmtRange(newest, m.interval) + (part ? ' (partial)' : ''),
        'the bucket from ' + SC.fmtTime(newest - m.interval) + ' to ' + SC.fmtTime(newest) + (part ? ', still filling' : ''), 'wide' + (part ? ' partial' : '')));
    } else {
      c.stats.appendChild(stat('Newest row (UTC)', short(newest), SC.fmtTime(newest), 'wide'));
    }
    c.stats.appendChild(stat('Lag', SC.fmtDuration(m.lag_seconds), 'how far the cursor trails the newest journaled message'));
    c.stats.appendChild(stat('Cursor (UTC)', m.cursor && m.cursor.time !== null ? short(m.cursor.time) : 'not started',
      m.cursor && m.cursor.id ? 'last committed message ' + m.cursor.id : null, 'wide'));
    // Processed is about the same for every model (they read one journal):
    // the header says it once; a card's lag tells a model that trails.
    c.stats.appendChild(stat('Errors', SC.fmtNum(m.errors), m.last_error ? m.last_error.error : null, m.errors > 0 ? 'bad' : null));
    c.stats.appendChild(stat('Status', m.status === 'failed' ? 'failed' : 'ok', m.status_reason || null, m.status === 'failed' ? 'bad' : null));
    if (m.queued > 0) c.stats.appendChild(stat('Queued', SC.fmtNum(m.queued), 'work items committed and waiting for their outcome'));
    if (m.status === 'failed' && m.status_reason) {
      c.err.textContent = 'Stopped: ' + m.status_reason;
      c.err.hidden = false;
    } else if (m.last_error) {
      c.err.textContent = 'Last error (' + m.last_error.msg_id + '): ' + m.last_error.error;
      c.err.hidden = false;
    }
  }

  // headline shows a numeric model's number as its first value column's
  // aggregate says: for counts (sum) and peaks (max), the last complete
  // bucket, labelled with its span, and the bucket still filling marked
  // partial; for running totals and gauges (last), the newest row's value.
  function headline(c, r, sh) {
    var m = r.meta, rows = r.rows, asc = rows.slice().reverse();
    var vcol = sh.values[0], agg = sh.agg[vcol];
    var value = function (v, cls) { c.latest.appendChild(el('span', { class: 'value' + (cls ? ' ' + cls : ''), text: SC.fmtNum(v) })); };
    var label = function (t, cls) { c.latest.appendChild(el('span', { class: cls || 'label', title: t, text: t })); };
    var pts;
    if (agg === 'last' || agg === 'none' || !m.interval) {
      var nr = rows[0], who = sh.series ? nr[sh.series] : null;
      value(nr[vcol]);
      label(vcol + ' in the newest row' + (who !== null ? ', ' + sh.series + ' ' + who : '') + ' (' + SC.fmtTime(nr.timestamp, { noSeconds: false }) + ')');
      // The history of that one series: values that must not be added up.
      pts = SC.aggregate(asc.filter(function (x) { return !sh.series || x[sh.series] === who; }), vcol, 'last');
      c.latest.setAttribute('data-agg', agg);
    } else {
      var L = r.complete !== undefined ? r.complete : SC.lastComplete(m, asc);
      var bucket = m.interval_text ? SC.intervalWord(m.interval_text) : 'bucket';
      pts = SC.aggregate(asc, vcol, agg);
      // The sparkline is the last HISTORY buckets, an idle one drawn as 0.
      if (agg === 'sum' && SC.fixedBuckets(m) && pts.length) {
        var to = pts[pts.length - 1].t, from = to - (HISTORY - 1) * m.interval;
        pts = SC.fillZeros(pts.filter(function (p) { return p.t >= from; }), m.interval, from, to);
      }
      pts.forEach(function (p) { p.partial = SC.isPartial(m, p.t); });
      if (L !== null) {
        var head = SC.aggregate(r.headRows || asc.filter(function (x) { return x.timestamp === L; }), vcol, agg)[0];
        value(head ? head.v : 0);
        label(vcol + ', ' + SC.fmtRange(L, L - SC.bucketStart(m, L)) + ' UTC: the last complete ' + bucket + (agg === 'max' ? ' (peak)' : ''));
        c.latest.setAttribute('data-complete', String(L));
        if (sh.series && r.headRows && r.headRows.length) {
          var top = r.headRows.slice().sort(function (a, b) { return (b[vcol] || 0) - (a[vcol] || 0); })[0];
          var tl = 'top ' + sh.series + ': ' + String(top[sh.series]) + ' (' + SC.fmtNum(top[vcol]) + ')';
          label(tl, 'top');
        }
      }
      var fill = pts.length && pts[pts.length - 1].partial ? pts[pts.length - 1] : null;
      if (fill) {
        label('now filling ' + SC.fmtRange(fill.t, fill.t - SC.bucketStart(m, fill.t)) + ': ' + SC.fmtNum(fill.v) + ' so far (partial)', 'partial-note');
      }
      c.latest.setAttribute('data-agg', agg);
    }
    c.spark.appendChild(SCChart.sparkline(pts.slice(-HISTORY)));
  }

  function order(a, b) {
    var ia = a.meta && a.meta.interval || 0, ib = b.meta && b.meta.interval || 0;
    return ia - ib || (a.ident < b.ident ? -1 : a.ident > b.ident ? 1 : 0);
  }

  function render(results) {
    renderHeader(results);
    var seen = new Set();
    results.forEach(function (r) {
      seen.add(r.ident);
      var c = cards.get(r.ident);
      if (!c) { c = newCard(r.ident); cards.set(r.ident, c); }
      fill(c, r);
      c.group = r.meta ? SC.group(r.meta) : SC.baseIdent(r.ident);
    });
    cards.forEach(function (c, ident) {
      if (!seen.has(ident)) { c.root.remove(); cards.delete(ident); }
    });
    // Place the cards: groups sorted by name, cards by interval.
    var byGroup = new Map();
    cards.forEach(function (c) {
      if (!byGroup.has(c.group)) byGroup.set(c.group, []);
      byGroup.get(c.group).push(c);
    });
    var names = Array.from(byGroup.keys()).sort();
    groups.forEach(function (g, name) { if (!byGroup.has(name)) { g.root.remove(); groups.delete(name); } });
    var placeholder = groupsEl.querySelector('.placeholder');
    if (placeholder) placeholder.remove();
    names.forEach(function (name) {
      var g = groupFor(name);
      groupsEl.appendChild(g.root);
      byGroup.get(name).sort(order).forEach(function (c) { g.list.appendChild(c.root); });
    });
    if (!cards.size) {
      SC.clear(groupsEl).appendChild(el('div', { class: 'placeholder empty' },
        el('p', null, el('strong', { text: 'No models yet.' })),
        el('p', null, 'The database has no model. Drop a Lua script into the scripts directory and run the processing (see ',
          el('a', { href: '/web/getting-started#add', text: 'adding a model' }), ').')));
    }
    applyFilter();
  }

  // --- the header: how busy the bus is -------------------------------------
  // The bus rate is read from a volume model (the count of every message per
  // bucket): messages per minute over the last hour of complete buckets.
  function rateModel(results) {
    var ok = results.filter(function (r) { return r.meta && r.meta.interval && SC.fixedBuckets(r.meta) && 3600 % r.meta.interval === 0; });
    var pick = function (f) { return ok.filter(f).sort(function (a, b) { return b.meta.interval - a.meta.interval; })[0]; };
    return pick(function (r) { return r.meta.name === 'volume' && r.meta.interval <= 60; }) ||
      pick(function (r) { return r.meta.name === 'volume'; }) ||
      pick(function (r) { return /^volume/.test(r.meta.name) && r.meta.interval <= 60; }) || null;
  }
  var headerGen = 0;
  function renderHeader(results) {
    var metas = results.filter(function (r) { return r.meta; }).map(function (r) { return r.meta; });
    var facts = SC.clear($('#bus-facts'));
    var fact = function (label, value, title) { facts.appendChild(el('div', null, el('dt', { text: label }), el('dd', { text: value, title: title || null }))); };
    var j = metas.length ? metas[0].journal : null;
    fact('Journal', j ? SC.fmtNum(j.messages) + ' messages' : '—', j && j.newest ? 'newest message ' + SC.fmtTime(j.newest) : null);
    fact('Newest message', j && j.newest ? SC.fmtTime(j.newest) : '—');
    var lag = metas.reduce(function (a, m) { return Math.max(a, m.lag_seconds || 0); }, 0);
    fact('Lag', metas.length ? (lag === 0 ? 'every model caught up' : 'up to ' + SC.fmtDuration(lag)) : '—', 'how far the slowest model trails the journal');
    // What the models have processed: the same journal, so nearly the same
    // number; shown once here rather than on every card.
    var done = metas.map(function (m) { return m.processed; });
    var lo = Math.min.apply(null, done), hi = Math.max.apply(null, done);
    fact('Processed', !metas.length ? '—' : lo === hi ? SC.fmtNum(hi) + ' messages by every model' : SC.fmtNum(lo) + '–' + SC.fmtNum(hi) + ' messages per model',
      'messages each model has processed (models wanting only some topics count only those)');
    var failed = metas.filter(function (m) { return m.status === 'failed'; }).length;
    fact('Models', metas.length + (failed ? ', ' + failed + ' failed' : ''));

    var vm = rateModel(results), rateEl = $('#bus-rate'), labelEl = $('#bus-rate-label'), spark = $('#bus-spark');
    if (!vm) {
      rateEl.textContent = '—';
      labelEl.textContent = 'no volume model runs: the bus rate is read from the volume model';
      SC.clear(spark);
      return;
    }
    var m = vm.meta, iv = m.interval, L = SC.lastComplete(m, []);
    if (L === null) { rateEl.textContent = '—'; labelEl.textContent = m.ident + ' has not started'; return; }
    var g = ++headerGen;
    var vcol = SC.shape(m).values[0];
    readAll(SC.apiPath(m.ident) + SC.query({ start: L - 3600 + iv, stop: L + iv, order: 'asc', rows_per_page: 100 }), 80).then(function (rows) {
      if (g !== headerGen) return;
      var pts = SC.fillZeros(SC.aggregate(rows, vcol, 'sum'), iv, L - 3600 + iv, L + iv);
      var total = 0;
      pts.forEach(function (p) { p.partial = p.t > L; if (!p.partial) total += p.v; });
      rateEl.textContent = SC.fmtNum(Math.round(total / 60 * 10) / 10);
      rateEl.setAttribute('data-total', String(total));
      rateEl.setAttribute('data-from', String(L - 3600));
      rateEl.setAttribute('data-to', String(L));
      labelEl.textContent = 'messages per minute over the hour ' + SC.fmtRange(L, 3600) + ' UTC (' + SC.fmtNum(total) + ' messages in ' +
        3600 / iv + ' complete ' + SC.intervalWord(m.interval_text) + 's of ' + m.ident + ')';
      SC.clear(spark).appendChild(SCChart.sparkline(pts));
    }).catch(function (e) {
      labelEl.textContent = 'the bus rate could not be read: ' + e.message;
    });
  }

  function applyFilter() {
    var needle = filterEl.value.trim().toLowerCase();
    var shown = 0;
    groups.forEach(function (g) {
      var n = 0, total = 0;
      g.list.childNodes.forEach(function (node) {
        var c = cards.get(node.getAttribute('data-ident'));
        var ok = !needle || (c && (c.search || '').indexOf(needle) >= 0);
        node.hidden = !ok;
        total++;
        if (ok) n++;
      });
      g.root.hidden = n === 0;
      g.count.textContent = needle ? n + ' of ' + total : total + (total === 1 ? ' model' : ' models');
      shown += n;
    });
    nomatchEl.hidden = !(cards.size && shown === 0);
  }

  filterEl.addEventListener('input', function () {
    applyFilter();
    var u = new URL(location.href);
    if (filterEl.value) u.searchParams.set('q', filterEl.value); else u.searchParams.delete('q');
    history.replaceState(null, '', u.pathname + u.search);
  });

  function refresh() {
    if (busy) return;
    busy = true;
    clearTimeout(timer);
    SC.get('/api/').then(function (r) {
      var idents = Array.isArray(r.data) ? r.data : [];
      return pool(idents, PARALLEL, load);
    }).then(function (results) {
      render(results);
      bannerEl.hidden = true;
      loadedOnce = true;
      liveEl.className = 'live on';
      liveEl.textContent = 'updated ' + SC.fmtTime(Date.now() / 1000).slice(11);
      document.body.setAttribute('data-refreshed', String(Date.now()));
    }).catch(function (e) {
      bannerEl.textContent = 'Cannot load the models: ' + (e && e.message || e) + '. Retrying in ' + POLL_MS / 1000 + ' s.';
      bannerEl.hidden = false;
      liveEl.className = 'live err';
      liveEl.textContent = 'offline';
      if (!loadedOnce) SC.clear(groupsEl);
    }).then(function () {
      busy = false;
      schedule();
    });
  }
  function schedule() {
    clearTimeout(timer);
    if (!document.hidden) timer = setTimeout(refresh, POLL_MS);
  }
  document.addEventListener('visibilitychange', function () {
    if (!document.hidden) refresh(); else clearTimeout(timer);
  });
  refresh();
})();
