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

  function load(ident) {
    var base = SC.apiPath(ident);
    return SC.get(base + '/meta').then(function (m) {
      return SC.get(base + '?order=desc&rows_per_page=100').then(function (r) {
        return { ident: ident, meta: m.data, rows: r.data || [] };
      });
    }).catch(function (e) { return { ident: ident, error: e }; });
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
      var vcol = sh.values[0];
      var pts = SC.aggregate(rows, vcol);
      var last = pts[pts.length - 1];
      c.latest.appendChild(el('span', { class: 'value', text: SC.fmtNum(last.v) }));
      c.latest.appendChild(el('span', { class: 'label', text: vcol + (m.interval ? ' in the newest bucket' : ' in the newest row') +
        (sh.series ? ', all ' + sh.series + ' values' : '') }));
      if (sh.series) {
        var top = rows.filter(function (x) { return x.timestamp === last.t; })
          .sort(function (a, b) { return (b[vcol] || 0) - (a[vcol] || 0); })[0];
        if (top) {
          var tl = 'top ' + sh.series + ': ' + String(top[sh.series]) + ' (' + SC.fmtNum(top[vcol]) + ')';
          c.latest.appendChild(el('span', { class: 'top', title: tl, text: tl }));
        }
      }
      c.spark.appendChild(SCChart.sparkline(pts.slice(-HISTORY)));
    } else {
      var cols = (m.columns || []).filter(function (x) { return x.name !== 'timestamp'; }).slice(0, 3);
      c.latest.appendChild(el('span', { class: 'label', text: cols.map(function (x) {
        var v = rows[0][x.name];
        return x.name + ': ' + (v === null || v === undefined ? '—' : typeof v === 'object' ? JSON.stringify(v) : String(v));
      }).join(' · ') }));
      c.spark.appendChild(el('div', { class: 'spark-empty', text: 'Not a numeric series: open the model for its table' }));
    }
    var short = function (t) { return SC.fmtTime(t, { noSeconds: true }).replace(' UTC', ''); };
    c.stats.appendChild(stat('Newest row (UTC)', newest === null ? '—' : short(newest), newest === null ? null : SC.fmtTime(newest), 'wide'));
    c.stats.appendChild(stat('Lag', SC.fmtDuration(m.lag_seconds), 'how far the cursor trails the newest journaled message'));
    c.stats.appendChild(stat('Cursor (UTC)', m.cursor && m.cursor.time !== null ? short(m.cursor.time) : 'not started',
      m.cursor && m.cursor.id ? 'last committed message ' + m.cursor.id : null, 'wide'));
    c.stats.appendChild(stat('Processed', SC.fmtNum(m.processed)));
    c.stats.appendChild(stat('Errors', SC.fmtNum(m.errors), m.last_error ? m.last_error.error : null, m.errors > 0 ? 'bad' : null));
    c.stats.appendChild(stat('Status', m.status === 'failed' ? 'failed' : 'ok', m.status_reason || null, m.status === 'failed' ? 'bad' : null));
    c.stats.appendChild(stat('Interval', m.interval_text || 'none'));
    if (m.queued > 0) c.stats.appendChild(stat('Queued', SC.fmtNum(m.queued), 'work items committed and waiting for their outcome'));
    if (m.status === 'failed' && m.status_reason) {
      c.err.textContent = 'Stopped: ' + m.status_reason;
      c.err.hidden = false;
    } else if (m.last_error) {
      c.err.textContent = 'Last error (' + m.last_error.msg_id + '): ' + m.last_error.error;
      c.err.hidden = false;
    }
  }

  function order(a, b) {
    var ia = a.meta && a.meta.interval || 0, ib = b.meta && b.meta.interval || 0;
    return ia - ib || (a.ident < b.ident ? -1 : a.ident > b.ident ? 1 : 0);
  }

  function render(results) {
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
      liveEl.textContent = 'updated ' + new Date().toLocaleTimeString();
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
