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
  // inputValue is the value of a datetime-local input showing sec in UTC.
  function inputValue(sec) {
    if (sec === null || sec === undefined || !isFinite(sec)) return '';
    var d = new Date(Math.floor(sec) * 1000);
    return d.getUTCFullYear() + '-' + pad(d.getUTCMonth() + 1) + '-' + pad(d.getUTCDate()) + 'T' +
      pad(d.getUTCHours()) + ':' + pad(d.getUTCMinutes()) + ':' + pad(d.getUTCSeconds());
  }
  // parseInput reads a datetime-local value as UTC; null when empty or bad.
  function parseInput(v) {
    var m = /^(\d{4})-(\d\d)-(\d\d)T(\d\d):(\d\d)(?::(\d\d)(?:\.\d+)?)?$/.exec(v || '');
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
  // that are not part of the key (the values), and the key column that
  // tells series apart (category, topic, user...), if any.
  function shape(meta) {
    var cols = meta.columns || [];
    var values = cols.filter(function (c) {
      return c.name !== 'timestamp' && !c.key && (c.type === 'integer' || c.type === 'real');
    }).map(function (c) { return c.name; });
    var keyCols = cols.filter(function (c) { return c.name !== 'timestamp' && c.key; });
    var series = keyCols.filter(function (c) { return c.type === 'text'; })[0] || keyCols[0] || null;
    return { values: values, series: series ? series.name : null, timeSeries: values.length > 0 };
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
    return ident.replace(/-(\d+[dhms])+$/, '');
  }

  // aggregate sums a value column per timestamp: [{t, v}] in time order.
  function aggregate(rows, valueCol) {
    var by = new Map();
    rows.forEach(function (r) {
      var v = r[valueCol];
      if (typeof v !== 'number' || !isFinite(v) || typeof r.timestamp !== 'number') return;
      by.set(r.timestamp, (by.get(r.timestamp) || 0) + v);
    });
    return Array.from(by, function (e) { return { t: e[0], v: e[1] }; }).sort(function (a, b) { return a.t - b.t; });
  }

  var PALETTE = ['#1f6fb4', '#e8710a', '#2e9e44', '#d1342b', '#8a5cc2', '#8c564b', '#d45ba8', '#5f6b7a', '#a9a51b', '#159fb3'];

  return {
    el: el, svg: svg, $: $, clear: clear, get: get, getText: getText, links: links, ApiError: ApiError,
    apiPath: apiPath, pagePath: pagePath, query: query, fmtTime: fmtTime, fmtDuration: fmtDuration,
    fmtNum: fmtNum, fmtCompact: fmtCompact, inputValue: inputValue, parseInput: parseInput,
    shape: shape, group: group, baseIdent: baseIdent, aggregate: aggregate, PALETTE: PALETTE
  };
})();
