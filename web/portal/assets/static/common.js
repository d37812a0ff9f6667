/* statscache portal: helpers shared by the pages (DOM building, API calls,
   formatting, what a model's columns mean for charts). Hand-written, no
   dependencies; every request goes to this server's /api/. */
'use strict';

var SC = (function () {
  // The SVG namespace is an identifier, not a location: nothing is fetched.
  var SVGNS = 'http://www.w3.org/2000/svg';

  function setAttrs(e, attrs) {
    if (!attrs) return;
    Object.keys(attrs).forEach(function (k) {
      var v = attrs[k];
      if (v === null || v === undefined || v === false) return;
      if (k === 'text') e.textContent = String(v);
      else if (k.slice(0, 2) === 'on' && typeof v === 'function') e.addEventListener(k.slice(2), v);
      else e.setAttribute(k, v === true ? '' : String(v));
    });
  }
  function appendKids(e, kids) {
    kids.forEach(function (k) {
      if (k === null || k === undefined || k === false) return;
      if (Array.isArray(k)) { appendKids(e, k); return; }
      e.appendChild(typeof k === 'object' ? k : document.createTextNode(String(k)));
    });
  }
  // el('a', {href: '/x', class: 'y'}, 'text', child...) builds an element.
  function el(tag, attrs) {
    var e = document.createElement(tag);
    setAttrs(e, attrs);
    appendKids(e, Array.prototype.slice.call(arguments, 2));
    return e;
  }
  // svg('path', {d: ...}) builds an SVG element.
  function svg(tag, attrs) {
    var e = document.createElementNS(SVGNS, tag);
    setAttrs(e, attrs);
    appendKids(e, Array.prototype.slice.call(arguments, 2));
    return e;
  }
  function $(sel, root) { return (root || document).querySelector(sel); }
  function clear(e) { while (e.firstChild) e.removeChild(e.firstChild); return e; }

  // ApiError is a failed API call: status 0 when the server was not reached.
  function ApiError(status, message, body) {
    this.name = 'ApiError';
    this.status = status;
    this.message = message;
    this.body = body;
  }
  ApiError.prototype = Object.create(Error.prototype);

  // get fetches a JSON resource of the API and resolves to {data, res};
  // an HTTP error rejects with an ApiError carrying the API's message.
  function get(url, opts) {
    opts = opts || {};
    return fetch(url, { headers: { Accept: 'application/json' }, cache: 'no-store', signal: opts.signal })
      .catch(function (e) {
        if (e && e.name === 'AbortError') throw e;
        throw new ApiError(0, 'cannot reach the server (' + (e && e.message || e) + ')');
      })
      .then(function (res) {
        return res.text().then(function (text) {
          var body = null, bad = false;
          try { body = text ? JSON.parse(text) : null; } catch (e) { bad = true; }
          if (!res.ok) {
            var msg = body && body.error ? body.error : res.status + ' ' + res.statusText;
            throw new ApiError(res.status, msg, body);
          }
          if (bad) throw new ApiError(res.status, 'the server answered with something that is not JSON');
          return { data: body, res: res };
        });
      });
  }

  // getText fetches any API resource as text (for CSV downloads).
  function getText(url, opts) {
    opts = opts || {};
    return fetch(url, { cache: 'no-store', signal: opts.signal }).then(function (res) {
      return res.text().then(function (text) {
        if (!res.ok) {
          var msg = res.status + ' ' + res.statusText;
          try { msg = JSON.parse(text).error || msg; } catch (e) { /* keep the status */ }
          throw new ApiError(res.status, msg);
        }
        return { text: text, res: res };
      });
    });
  }

  // links parses a Link header into {rel: url}.
  function links(header) {
    var out = {};
    if (!header) return out;
    header.split(',').forEach(function (part) {
      var m = /<([^>]*)>\s*;\s*rel="?([^";]+)"?/.exec(part);
      if (m) out[m[2]] = m[1];
    });
    return out;
  }

  function apiPath(ident) { return '/api/' + encodeURIComponent(ident); }
  function pagePath(ident) { return '/web/dashboard/' + encodeURIComponent(ident); }

  // query builds a query string from the defined values of obj.
  function query(obj) {
    var parts = [];
    Object.keys(obj).forEach(function (k) {
      var v = obj[k];
      if (v === null || v === undefined || v === '') return;
      parts.push(encodeURIComponent(k) + '=' + encodeURIComponent(String(v)));
    });
    return parts.length ? '?' + parts.join('&') : '';
  }

  function pad(n) { return n < 10 ? '0' + n : String(n); }
  // fmtTime writes Unix seconds as a UTC date and time.
  function fmtTime(sec, opts) {
    if (sec === null || sec === undefined || !isFinite(sec)) return '—';
    var d = new Date(sec * 1000);
    var s = d.getUTCFullYear() + '-' + pad(d.getUTCMonth() + 1) + '-' + pad(d.getUTCDate());
    if (opts && opts.dateOnly) return s;
    s += ' ' + pad(d.getUTCHours()) + ':' + pad(d.getUTCMinutes());
    if (!(opts && opts.noSeconds)) s += ':' + pad(d.getUTCSeconds());
    return s + ' UTC';
  }
  // inputValue writes sec as the range boxes show it: 24-hour UTC.
  function inputValue(sec) {
    if (sec === null || sec === undefined || !isFinite(sec)) return '';
    var d = new Date(Math.floor(sec) * 1000);
    return d.getUTCFullYear() + '-' + pad(d.getUTCMonth() + 1) + '-' + pad(d.getUTCDate()) + ' ' +
      pad(d.getUTCHours()) + ':' + pad(d.getUTCMinutes()) + ':' + pad(d.getUTCSeconds());
  }
  // parseInput reads a time typed as UTC ("2015-08-09 14:05:00", or with a
  // T, seconds optional); null when empty or bad.
  function parseInput(v) {
    var m = /^\s*(\d{4})-(\d\d)-(\d\d)[T ](\d\d):(\d\d)(?::(\d\d)(?:\.\d+)?)?\s*(?:UTC|Z)?\s*$/i.exec(v || '');
    if (!m) return null;
    return Date.UTC(+m[1], +m[2] - 1, +m[3], +m[4], +m[5], +(m[6] || 0)) / 1000;
  }
  // fmtDuration writes seconds as a short duration.
  function fmtDuration(sec) {
    if (sec === null || sec === undefined || !isFinite(sec)) return '—';
    sec = Math.max(0, sec);
    if (sec < 1) return sec === 0 ? '0 s' : '< 1 s';
    if (sec < 60) return Math.round(sec) + ' s';
    if (sec < 3600) return Math.floor(sec / 60) + ' min' + (sec % 60 >= 1 && sec < 600 ? ' ' + Math.floor(sec % 60) + ' s' : '');
    if (sec < 86400) return Math.floor(sec / 3600) + ' h' + (sec % 3600 >= 60 ? ' ' + Math.floor(sec % 3600 / 60) + ' min' : '');
    if (sec < 86400 * 365) return Math.floor(sec / 86400) + ' d' + (sec % 86400 >= 3600 ? ' ' + Math.floor(sec % 86400 / 3600) + ' h' : '');
    return (sec / (86400 * 365.25)).toFixed(1) + ' years';
  }
  var nf = new Intl.NumberFormat('en-US', { maximumFractionDigits: 3 });
  function fmtNum(v) {
    if (typeof v !== 'number' || !isFinite(v)) return v === null || v === undefined ? '—' : String(v);
    if (Math.abs(v) >= 1e15) return v.toExponential(3);
    return nf.format(v);
  }
  // fmtCompact writes a number in few characters, for axes.
  function fmtCompact(v) {
    var a = Math.abs(v);
    if (a >= 1e9) return +(v / 1e9).toFixed(1) + 'G';
    if (a >= 1e6) return +(v / 1e6).toFixed(1) + 'M';
    if (a >= 1e4) return +(v / 1e3).toFixed(1) + 'k';
    return String(+v.toFixed(3));
  }

  // shape tells how a model's table can be charted: the numeric columns
  // that are not part of the key (the values), how each combines (agg:
  // the column's declared aggregate, see /api/<ident>/meta), whether each
  // is an integer, and the key column that tells series apart (category,
  // topic, user...), if any.
  function shape(meta) {
    var cols = meta.columns || [];
    var agg = {}, ints = {};
    var values = cols.filter(function (c) {
      return c.name !== 'timestamp' && !c.key && (c.type === 'integer' || c.type === 'real');
    }).map(function (c) {
      agg[c.name] = c.aggregate || (meta.interval ? 'sum' : 'none');
      ints[c.name] = c.type === 'integer';
      return c.name;
    });
    var keyCols = cols.filter(function (c) { return c.name !== 'timestamp' && c.key; });
    var series = keyCols.filter(function (c) { return c.type === 'text'; })[0] || keyCols[0] || null;
    return { values: values, agg: agg, ints: ints, series: series ? series.name : null, timeSeries: values.length > 0 };
  }

  // combine folds a value into what is already there, as the column's
  // aggregate says. Rows come in the API's ascending order, so "last" is
  // the value of the row the API lists last; "none" keeps the last too
  // (such values are never added up).
  function combine(agg, had, v) {
    if (had === undefined) return v;
    if (agg === 'sum') return had + v;
    if (agg === 'max') return Math.max(had, v);
    return v;
  }
  // aggWord says in words how a range's value is made.
  function aggWord(agg) {
    return { sum: 'total', last: 'last', max: 'peak', none: '' }[agg] || '';
  }

  // intervalSeconds reads an interval text (15s, 1m, 1h, 1d, 1w, 1mo) as
  // seconds, for ordering (a month counts 30 days).
  function intervalSeconds(text) {
    var m = /^(\d+)(mo|w|d|h|m|s)$/.exec(text || '');
    if (!m) return Infinity;
    return +m[1] * { s: 1, m: 60, h: 3600, d: 86400, w: 604800, mo: 2592000 }[m[2]];
  }
  // intervalWord names a bucket of an interval text: "minute" for 1m,
  // "15 s bucket" for 15s.
  function intervalWord(text) {
    return { '1s': 'second', '1m': 'minute', '1h': 'hour', '1d': 'day', '1w': 'week', '1mo': 'month' }[text] || text + ' bucket';
  }
  // fixedBuckets: whether buckets are a fixed number of seconds long
  // counted from the epoch, so that bucket ends can be computed. The
  // calendar intervals are not: a month's length varies, and ISO weeks
  // start on Mondays while the epoch was a Thursday (meta.calendar).
  function fixedBuckets(meta) {
    return !!meta.interval && !meta.calendar && !/mo$/.test(meta.interval_text || '');
  }
  // bucketStart is the start of the bucket that ends at end: end minus the
  // interval, or for a calendar month the first of the month before.
  function bucketStart(meta, end) {
    if (meta.calendar === 'month') {
      var d = new Date((end - 1) * 1000);
      return Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), 1) / 1000;
    }
    return end - meta.interval;
  }
  // lastComplete is the end of the newest bucket the model has finished:
  // its cursor (the last message committed) is at or past that end. The
  // bucket after it is still filling (partial). null when unknown.
  function lastComplete(meta, rows) {
    var c = meta.cursor && meta.cursor.time;
    if (!meta.interval || c === null || c === undefined) return null;
    if (fixedBuckets(meta)) return Math.floor(c / meta.interval) * meta.interval;
    var best = null;
    (rows || []).forEach(function (r) { if (r.timestamp <= c && (best === null || r.timestamp > best)) best = r.timestamp; });
    return best;
  }
  // isPartial: a bucket the model has not finished (its end is past the
  // cursor), so its numbers will still grow.
  function isPartial(meta, t) {
    if (!meta.interval) return false;
    var c = meta.cursor && meta.cursor.time;
    return c === null || c === undefined || t > c;
  }
  // fmtRange writes the bucket ending at end as "14:23–14:24" (UTC), with
  // the date when the bucket is a day or longer or spans midnight.
  function fmtRange(end, interval) {
    var a = fmtTime(end - interval).replace(' UTC', ''), b = fmtTime(end).replace(' UTC', '');
    var secs = interval % 60 !== 0;
    var cut = function (x) { return secs ? x.slice(11, 19) : x.slice(11, 16); };
    if (interval >= 86400) return a.slice(0, 10) + ' – ' + b.slice(0, 10);
    if (a.slice(0, 10) !== b.slice(0, 10)) return a.slice(0, 16) + '–' + b.slice(0, 16);
    return cut(a) + '–' + cut(b);
  }
  // fillZeros gives a bucketed sum series a 0 for every bucket without a
  // row between from and to (bucket ends), so that charts show an idle
  // bucket as 0 rather than a gap or a slope. Too many buckets (over max)
  // are left as they are.
  function fillZeros(points, interval, from, to, max) {
    if (!interval || from === null || to === null || (to - from) / interval > (max || 5000)) return points;
    var have = new Map(points.map(function (p) { return [p.t, p]; }));
    var out = [];
    for (var t = from; t <= to + interval / 1e6; t += interval) {
      var k = Math.round(t * 1000) / 1000;
      out.push(have.get(k) || { t: k, v: 0, filled: true });
      have.delete(k);
    }
    have.forEach(function (p) { out.push(p); }); // off the grid: keep it
    return out.sort(function (a, b) { return a.t - b.t; });
  }

  // group is the dashboard group of a model: its script's file name, or
  // the ident without its interval suffix.
  function group(meta) {
    if (meta.script) {
      var base = meta.script.split(/[\\/]/).pop();
      if (base) return base;
    }
    return baseIdent(meta.ident, meta.interval_text);
  }
  function baseIdent(ident, intervalText) {
    if (intervalText && ident.slice(-intervalText.length - 1) === '-' + intervalText) {
      return ident.slice(0, -intervalText.length - 1);
    }
    return ident.replace(/-((\d+[dhms])+|1w|1mo)$/, ''); // fixed or calendar (1w, 1mo) intervals
  }

  // aggregate combines a value column per timestamp, as agg says (rows in
  // ascending API order): [{t, v}] in time order.
  function aggregate(rows, valueCol, agg) {
    var by = new Map();
    rows.forEach(function (r) {
      var v = r[valueCol];
      if (typeof v !== 'number' || !isFinite(v) || typeof r.timestamp !== 'number') return;
      by.set(r.timestamp, combine(agg || 'sum', by.get(r.timestamp), v));
    });
    return Array.from(by, function (e) { return { t: e[0], v: e[1] }; }).sort(function (a, b) { return a.t - b.t; });
  }

  var PALETTE = ['#1f6fb4', '#e8710a', '#2e9e44', '#d1342b', '#8a5cc2', '#8c564b', '#d45ba8', '#5f6b7a', '#a9a51b', '#159fb3'];

  return {
    el: el, svg: svg, $: $, clear: clear, get: get, getText: getText, links: links, ApiError: ApiError,
    apiPath: apiPath, pagePath: pagePath, query: query, fmtTime: fmtTime, fmtDuration: fmtDuration,
    fmtNum: fmtNum, fmtCompact: fmtCompact, inputValue: inputValue, parseInput: parseInput,
    shape: shape, group: group, baseIdent: baseIdent, aggregate: aggregate, PALETTE: PALETTE,
    intervalWord: intervalWord, combine: combine, aggWord: aggWord, intervalSeconds: intervalSeconds, fixedBuckets: fixedBuckets, bucketStart: bucketStart,
    lastComplete: lastComplete, isPartial: isPartial, fmtRange: fmtRange, fillZeros: fillZeros
  };
})();
