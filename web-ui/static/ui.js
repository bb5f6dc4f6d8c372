// Live pages (<body data-refresh="N">) reload every N seconds, unless the
// tab is hidden or the user is typing in a field.
(function () {
  'use strict';
  var secs = parseInt(document.body.getAttribute('data-refresh'), 10);
  if (!secs) return;
  setInterval(function () {
    var active = document.activeElement;
    var typing = active && /^(INPUT|SELECT|TEXTAREA)$/.test(active.tagName);
    if (!document.hidden && !typing) location.reload();
  }, secs * 1000);
})();
