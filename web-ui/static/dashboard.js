// Dashboard charts: polls the samples every 5 s and draws each series
// (data-series="calls" | "pps") of the last hour as an inline SVG line.
(function () {
  'use strict';
  var root = document.getElementById('charts');
  if (!root) return;
  var NS = 'http://www.w3.org/2000/svg';
  var HOUR = 3600, W = 600, H = 140, PAD_L = 40, PAD_B = 16, PAD_T = 8;

  function el(name, attrs, parent) {
    var e = document.createElementNS(NS, name);
    for (var k in attrs) e.setAttribute(k, attrs[k]);
    if (parent) parent.appendChild(e);
    return e;
  }

  function niceMax(v) {
    if (v <= 4) return 4;
    var p = Math.pow(10, Math.floor(Math.log10(v)));
    var steps = [1, 2, 2.5, 5, 10];
    for (var i = 0; i < steps.length; i++) if (steps[i] * p >= v) return steps[i] * p;
    return 10 * p;
  }

  function draw(box, samples, key, now) {
    var max = niceMax(samples.reduce(function (m, s) { return Math.max(m, s[key]); }, 0));
    var x = function (t) { return PAD_L + (W - PAD_L) * (1 - (now - t) / HOUR); };
    var y = function (v) { return PAD_T + (H - PAD_T - PAD_B) * (1 - v / max); };
    var svg = el('svg', { viewBox: '0 0 ' + W + ' ' + H, preserveAspectRatio: 'none', role: 'img' });
    el('title', {}, svg).textContent = box.parentNode.querySelector('figcaption').textContent;
    [0, max / 2, max].forEach(function (v) {
      el('line', { x1: PAD_L, x2: W, y1: y(v), y2: y(v), 'class': 'axis' }, svg);
      el('text', { x: PAD_L - 4, y: y(v) + 3, 'text-anchor': 'end' }, svg).textContent = Math.round(v);
    });
    ['-60 min', '-30 min', 'now'].forEach(function (label, i) {
      el('text', { x: PAD_L + (W - PAD_L) * i / 2, y: H - 3, 'text-anchor': ['start', 'middle', 'end'][i] }, svg).textContent = label;
    });
    var pts = samples.filter(function (s) { return now - s.t <= HOUR; })
      .map(function (s) { return x(s.t).toFixed(1) + ',' + y(s[key]).toFixed(1); });
    if (pts.length > 1) {
      var first = pts[0].split(',')[0], last = pts[pts.length - 1].split(',')[0];
      el('polygon', { points: first + ',' + y(0) + ' ' + pts.join(' ') + ' ' + last + ',' + y(0), 'class': 'area' }, svg);
      el('polyline', { points: pts.join(' '), 'class': 'line' }, svg);
    } else {
      el('text', { x: W / 2, y: H / 2, 'text-anchor': 'middle' }, svg).textContent = 'collecting samples (one every 10 s)…';
    }
    box.replaceChildren(svg);
  }

  function refresh() {
    fetch(root.getAttribute('data-source'), { credentials: 'same-origin', cache: 'no-store' })
      .then(function (r) { if (!r.ok) throw new Error(r.status); return r.json(); })
      .then(function (data) {
        root.querySelectorAll('.chart').forEach(function (box) {
          draw(box, data.samples, box.getAttribute('data-series'), data.now);
        });
        var last = data.samples[data.samples.length - 1];
        if (last) {
          var calls = document.getElementById('stat-calls');
          var regs = document.getElementById('stat-registrations');
          if (calls) calls.textContent = last.calls;
          if (regs) regs.textContent = last.registrations;
        }
      })
      .catch(function () { /* Keep the last drawing; the next poll retries. */ });
  }

  refresh();
  setInterval(refresh, 5000);
})();
