// SIP trace page: polls the entries after the last one shown every second
// and appends them; clicking a row shows the whole message beside the
// list. The JSON is read with the page's session cookie.
(function () {
  'use strict';
  var table = document.getElementById('trace');
  if (!table) return;
  var body = table.tBodies[0];
  var empty = body.querySelector('.trace-empty');
  var detailBox = document.querySelector('.trace-detail');
  var detail = document.getElementById('trace-detail');
  var detailTitle = document.getElementById('trace-detail-title');
  var count = document.getElementById('trace-count');
  var state = document.getElementById('trace-state');
  var after = parseInt(table.getAttribute('data-after'), 10) || 0;
  var source = table.getAttribute('data-source');
  var filterSeen = null;
  var busy = false;
  var kept = parseInt(count.textContent, 10) || 0;
  var MAX_ROWS = 2000;

  detailBox.hidden = false;
  document.getElementById('trace-live').hidden = false;

  function pad(n, w) { n = String(n); while (n.length < w) n = '0' + n; return n; }
  function clock(ms) {
    var d = new Date(ms);
    return pad(d.getUTCHours(), 2) + ':' + pad(d.getUTCMinutes(), 2) + ':' +
      pad(d.getUTCSeconds(), 2) + '.' + pad(d.getUTCMilliseconds(), 3);
  }
  function cell(row, text, cls) {
    var td = document.createElement('td');
    if (cls) td.className = cls;
    td.textContent = text;
    row.appendChild(td);
    return td;
  }

  function addRow(e) {
    var inbound = e.direction === 'in';
    var tr = document.createElement('tr');
    tr.setAttribute('data-seq', e.seq);
    tr.className = inbound ? 'trace-in' : 'trace-out';
    cell(tr, clock(e.at_ms), 'mono');
    cell(tr, inbound ? '◀──────' : '──────▶', 'trace-arrow mono');
    cell(tr, e.peer, 'mono');
    cell(tr, String(e.transport).toUpperCase());
    var td = cell(tr, '');
    var details = document.createElement('details');
    var summary = document.createElement('summary');
    summary.className = 'mono';
    summary.textContent = e.summary;
    var pre = document.createElement('pre');
    pre.textContent = e.message;
    details.appendChild(summary);
    details.appendChild(pre);
    td.appendChild(details);
    body.insertBefore(tr, empty);
  }

  function select(tr) {
    var pre = tr.querySelector('pre');
    if (!pre) return;
    var old = body.querySelector('tr.selected');
    if (old) old.classList.remove('selected');
    tr.classList.add('selected');
    var cells = tr.cells;
    detailTitle.textContent = cells[0].textContent + '  ' +
      (tr.classList.contains('trace-in') ? 'from ' : 'to ') + cells[2].textContent +
      ' over ' + cells[3].textContent;
    detail.textContent = pre.textContent;
  }

  body.addEventListener('click', function (ev) {
    var tr = ev.target.closest('tr[data-seq]');
    if (!tr) return;
    // The message opens in the pane, not inside the row.
    if (ev.target.closest('summary')) ev.preventDefault();
    select(tr);
  });

  function clear() {
    Array.prototype.slice.call(body.querySelectorAll('tr[data-seq]')).forEach(function (tr) {
      tr.remove();
    });
    kept = 0;
    detail.textContent = 'Click a message to see it whole.';
    detailTitle.textContent = 'Message';
  }

  function poll() {
    if (busy || document.hidden) return;
    busy = true;
    fetch(source + '?after=' + after, { credentials: 'same-origin', cache: 'no-store' })
      .then(function (r) {
        if (!r.ok || (r.headers.get('content-type') || '').indexOf('json') < 0) throw new Error(r.status);
        return r.json();
      })
      .then(function (data) {
        var filter = JSON.stringify(data.filter);
        // Started again elsewhere (or stopped): what is listed is gone.
        if (filterSeen !== null && filter !== filterSeen) clear();
        filterSeen = filter;
        var atBottom = window.innerHeight + window.scrollY >= document.body.offsetHeight - 40;
        data.entries.forEach(function (e) {
          addRow(e);
          after = Math.max(after, e.seq);
        });
        var rows = body.querySelectorAll('tr[data-seq]');
        for (var i = 0; i < rows.length - MAX_ROWS; i++) rows[i].remove();
        var shown = body.querySelectorAll('tr[data-seq]').length;
        empty.hidden = shown > 0;
        kept = Math.min(kept + data.entries.length, data.max_entries);
        count.textContent = String(kept);
        if (state) {
          state.textContent = data.enabled ? 'On' : 'Off';
          state.className = 'badge ' + (data.enabled ? 'ok' : 'muted');
        }
        if (atBottom && data.entries.length) window.scrollTo(0, document.body.scrollHeight);
        busy = false;
        if (data.more) poll();
      })
      .catch(function () { busy = false; });
  }

  setInterval(poll, 1000);
  poll();
})();
