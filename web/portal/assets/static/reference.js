/* statscache portal: live examples of the API reference. Each example is
   a request to this server that the reader can edit and send. */
'use strict';

(function () {
  var el = SC.el, $ = SC.$;
  var select = $('#example-model');
  var SHOWN = ['Content-Type', 'Link', 'X-Link-Number', 'X-Link-Count', 'Allow', 'Access-Control-Allow-Origin',
    'Access-Control-Allow-Methods', 'Access-Control-Expose-Headers'];
  var MAX_BODY = 6000;
  var examples = Array.prototype.slice.call(document.querySelectorAll('.example'));

  var withLayout = null; // a model that declares a layout, for the layout example

  function urlFor(ex) {
    var ident = ex.getAttribute('data-needs') === 'layout' && withLayout ? withLayout : select.value || 'example';
    return ex.getAttribute('data-url').replace('{ident}', encodeURIComponent(ident));
  }

  examples.forEach(function (ex) {
    var method = ex.getAttribute('data-method') || 'GET';
    var input = el('input', { type: 'text', 'aria-label': 'Request URL', spellcheck: 'false' });
    var out = el('pre', { class: 'out', hidden: true });
    var form = el('form', null, el('span', { class: 'method', text: method }), input, el('button', { type: 'submit', class: 'chip', text: 'Send' }));
    form.addEventListener('submit', function (e) { e.preventDefault(); send(method, input.value, out); });
    ex.appendChild(form);
    ex.appendChild(out);
    ex._input = input;
  });

  function send(method, url, out) {
    out.hidden = false;
    SC.clear(out).textContent = 'sending…';
    if (url.charAt(0) !== '/' || url.charAt(1) === '/') {
      out.textContent = 'Only paths on this server (starting with /) can be sent from here.';
      return;
    }
    var began = performance.now();
    fetch(url, { method: method, cache: 'no-store' }).then(function (res) {
      return res.text().then(function (text) {
        SC.clear(out);
        out.appendChild(el('span', { class: 'status ' + (res.ok ? 'ok' : 'bad'), text: 'HTTP ' + res.status + ' ' + res.statusText }));
        out.appendChild(el('span', { class: 'hdr', text: '   ' + Math.round(performance.now() - began) + ' ms\n' }));
        SHOWN.forEach(function (h) {
          var v = res.headers.get(h);
          if (v !== null) out.appendChild(el('span', { class: 'hdr', text: h + ': ' + v + '\n' }));
        });
        var body = text;
        if (/json/.test(res.headers.get('Content-Type') || '')) {
          try { body = JSON.stringify(JSON.parse(text), null, 2); } catch (e) { /* show it as it came */ }
        }
        if (body.length > MAX_BODY) body = body.slice(0, MAX_BODY) + '\n… (' + (body.length - MAX_BODY) + ' more characters)';
        out.appendChild(document.createTextNode('\n' + (body || '(empty body)')));
      });
    }).catch(function (e) {
      out.textContent = 'The request failed: ' + (e && e.message || e);
    });
  }

  function fill() { examples.forEach(function (ex) { ex._input.value = urlFor(ex); }); }

  SC.get('/api/').then(function (r) {
    var idents = r.data || [];
    SC.clear(select);
    if (!idents.length) {
      select.appendChild(el('option', { value: 'example', text: '(no models yet: examples will answer 404)' }));
    }
    var prefer = ['volume-by-category-1h', 'volume-1m'].filter(function (x) { return idents.indexOf(x) >= 0; })[0] || idents[0];
    idents.forEach(function (x) { select.appendChild(el('option', { value: x, text: x, selected: x === prefer })); });
    fill();
    // The layout example needs a model with a layout: the chosen one if it
    // has one, else the first that does.
    return Promise.all(idents.map(function (x) {
      return SC.get(SC.apiPath(x) + '/meta').then(function (m) { return m.data.has_layout ? x : null; }, function () { return null; });
    })).then(function (has) {
      has = has.filter(Boolean);
      withLayout = has.indexOf(select.value) >= 0 ? select.value : has[0] || null;
      fill();
    });
  }).catch(function (e) {
    SC.clear(select).appendChild(el('option', { value: 'example', text: '(the model list failed: ' + e.message + ')' }));
    fill();
  });
  select.addEventListener('change', fill);
  fill();
})();
