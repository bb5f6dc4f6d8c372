// End-to-end test of the media relay: two Chromium pages running JsSIP
// call each other through a callgate started with `[media] relay = true`,
// and RTP must flow both ways through the relay (the SDP each browser gets
// is the relay's: ICE-lite, a candidate on a relay port, its fingerprint).
//
// Run through tests/e2e/relay.sh (loopback-only network namespace); the
// page and sipp helpers are the browser suite's (phone.js, sipp.mjs).
//
// Environment (defaults in brackets):
//   E2E_WSS_URL        [wss://127.0.0.1:7443]
//   E2E_DOMAIN         [127.0.0.1]
//   E2E_RELAY_PORTS    [40000-40999]  the relay's [media] port range
//   E2E_SIP_UDP        [127.0.0.1:5060]  where sipp sends
//   E2E_ARTIFACTS      [a new /tmp dir]  JsSIP traces (phone-*.log), sipp traces
//   CHROMIUM           [/usr/bin/chromium]

import assert from 'node:assert/strict';
import { appendFileSync, mkdirSync, mkdtempSync, readFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { after, before, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';
import { bundleCommonJs } from './bundle.mjs';
import { SCENARIOS, readSippMessages, runSipp, sippAvailable, summarizeSippOutput } from './sipp.mjs';

const here = dirname(fileURLToPath(import.meta.url));
const WSS_URL = process.env.E2E_WSS_URL ?? 'wss://127.0.0.1:7443';
const DOMAIN = process.env.E2E_DOMAIN ?? '127.0.0.1';
const [PORT_MIN, PORT_MAX] = (process.env.E2E_RELAY_PORTS ?? '40000-40999').split('-').map(Number);
const ARTIFACTS = process.env.E2E_ARTIFACTS ?? mkdtempSync(join(tmpdir(), 'callgate-e2e-relay-'));
const CHROMIUM = process.env.CHROMIUM ?? '/usr/bin/chromium';
mkdirSync(ARTIFACTS, { recursive: true });

const PASSWORDS = { 1000: 'secret1000', 1001: 'secret1001', 1002: 'secret1002' };
const SIP_UDP = process.env.E2E_SIP_UDP ?? '127.0.0.1:5060';
const SIPP_PORT = 5080;
const SIPP_MEDIA_PORT = 16000;
const T_REGISTER = 10_000;
const T_CALL_SETUP = 15_000;
const T_END = 10_000;
const T_MEDIA_START = 10_000;
const MEDIA_WINDOW_MS = 2_000;

const CHROMIUM_ARGS = [
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--use-fake-ui-for-media-stream',
  '--use-fake-device-for-media-stream',
  '--ignore-certificate-errors',
  '--allow-loopback-in-peer-connection',
  '--disable-background-timer-throttling',
  '--disable-renderer-backgrounding',
  '--disable-backgrounding-occluded-windows',
];

const JSSIP_BUNDLE = bundleCommonJs(join(here, '..', '..', 'node_modules', 'jssip', 'lib', 'JsSIP.js'), 'JsSIP');
const PHONE_JS = readFileSync(join(here, 'phone.js'), 'utf8');
const PHONE_HTML = `<!doctype html>
<meta charset="utf-8">
<title>callgate e2e relay phone</title>
<script src="/jssip.js"></script>
<script>
  JsSIP.debug.formatArgs = function (args) { args[0] = this.namespace + ' ' + args[0]; };
  JsSIP.debug.log = function (fmt) {
    var rest = Array.prototype.slice.call(arguments, 1);
    var text = String(fmt).replace(/%[sdiofOjc]/g, function () {
      if (!rest.length) return '';
      var v = rest.shift();
      if (typeof v === 'string') return v;
      try { return JSON.stringify(v); } catch (_) { return String(v); }
    });
    console.log([text].concat(rest).join(' '));
  };
  JsSIP.debug.enable('JsSIP:*');
</script>
<script src="/phone.js"></script>
`;

const httpServer = createServer((req, res) => {
  const path = new URL(req.url, 'http://localhost').pathname;
  const files = {
    '/phone.html': ['text/html', PHONE_HTML],
    '/jssip.js': ['text/javascript', JSSIP_BUNDLE],
    '/phone.js': ['text/javascript', PHONE_JS],
  };
  const file = files[path];
  if (!file) {
    res.writeHead(path === '/favicon.ico' ? 204 : 404).end();
    return;
  }
  res.writeHead(200, { 'content-type': file[0], 'cache-control': 'no-store' });
  res.end(file[1]);
});

let browser;
let pageUrl;
const phones = [];

async function openPhone(user) {
  const context = await browser.newContext({ ignoreHTTPSErrors: true });
  const page = await context.newPage();
  const logFile = join(ARTIFACTS, `phone-${user}.log`);
  page.on('console', (msg) => appendFileSync(logFile, `${new Date().toISOString()} ${msg.text()}\n`));
  page.on('pageerror', (err) => appendFileSync(logFile, `${new Date().toISOString()} PAGE ERROR ${err}\n`));
  await page.goto(pageUrl, { timeout: 10_000 });
  await page.waitForFunction(() => window.phone && window.JsSIP, null, { timeout: 10_000 });
  const phone = {
    user,
    logFile,
    context,
    eval: (fn, arg) => page.evaluate(fn, arg),
  };
  phones.push(phone);
  const r = await phone.eval((cfg) => window.phone.start(cfg), {
    wsUrl: WSS_URL,
    domain: DOMAIN,
    user,
    password: PASSWORDS[user],
    register: true,
    timeoutMs: T_REGISTER,
  });
  assert.equal(r.type, 'registered', `${user} did not register: ${JSON.stringify(r)}`);
  return phone;
}

const cursor = (p) => p.eval(() => window.phone.events.length);

async function expectEvent(p, types, since, timeoutMs, what, id) {
  const hit = await p.eval(
    ({ types, since, timeoutMs, id }) =>
      new Promise((resolve) => {
        const deadline = Date.now() + timeoutMs;
        (function poll() {
          const e = window.phone.events.find(
            (e) => e.seq >= since && types.includes(e.type) && (id === undefined || e.id === id),
          );
          if (e) return resolve(e);
          if (Date.now() > deadline) return resolve(null);
          setTimeout(poll, 25);
        })();
      }),
    { types, since, timeoutMs, id },
  );
  if (!hit) {
    const evs = await p.eval((s) => window.phone.events.slice(s), since);
    assert.fail(`${what}: ${p.user} saw no ${types.join('/')} within ${timeoutMs} ms; events: ${JSON.stringify(evs)}; trace ${p.logFile}`);
  }
  return hit;
}

const stats = (p, id) => p.eval((id) => window.phone.stats(id), id);
const sessionState = (p, id) => p.eval((id) => window.phone.sessionState(id), id);

/** The relay's SDP: ICE-lite, host candidates on relay ports only. */
function assertRelaySdp(sdp, label) {
  assert.ok(sdp, `${label}: no remote SDP`);
  assert.match(sdp, /a=ice-lite/, `${label}: remote SDP is not the relay's (no a=ice-lite):\n${sdp}`);
  const ports = [...sdp.matchAll(/a=candidate:\S+ \d+ udp \d+ \S+ (\d+) typ host/gi)].map((m) => Number(m[1]));
  assert.ok(ports.length > 0, `${label}: no host candidate in the remote SDP:\n${sdp}`);
  for (const port of ports) {
    assert.ok(port >= PORT_MIN && port <= PORT_MAX, `${label}: candidate port ${port} outside the relay range:\n${sdp}`);
  }
}

before(async () => {
  await new Promise((ok) => httpServer.listen(0, '127.0.0.1', ok));
  pageUrl = `http://localhost:${httpServer.address().port}/phone.html`;
  browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: CHROMIUM_ARGS, timeout: 30_000 });
  console.log(`# chromium ${browser.version()}, JsSIP traces in ${ARTIFACTS}`);
});

after(async () => {
  for (const p of phones) {
    await p.eval(() => window.phone.stop(5000)).catch(() => {});
    await p.context.close().catch(() => {});
  }
  await browser?.close().catch(() => {});
  httpServer.close();
});

let a;
let b;

for (const bundlePolicy of ['max-bundle', 'balanced']) {
  test(`browser -> browser audio through the relay (bundlePolicy ${bundlePolicy}): relay SDP, RTP both ways, hang-up`, { timeout: 90_000 }, async () => {
    a ??= await openPhone('1000');
    b ??= await openPhone('1001');
    await b.eval((p) => window.phone.setIncoming(p), { mode: 'answer', bundlePolicy });
    const ca = await cursor(a);
    const cb = await cursor(b);
    const id = await a.eval(({ target, opts }) => window.phone.call(target, opts), {
      target: '1001',
      opts: { video: false, bundlePolicy },
    });
    const incoming = await expectEvent(b, ['incoming'], cb, T_CALL_SETUP, '1000 calls 1001');
    const ea = await expectEvent(a, ['confirmed', 'failed', 'ended'], ca, T_CALL_SETUP, 'caller', id);
    assert.equal(ea.type, 'confirmed', `caller: ${JSON.stringify(ea)}`);
    const eb = await expectEvent(b, ['confirmed', 'failed', 'ended'], cb, T_CALL_SETUP, 'callee', incoming.id);
    assert.equal(eb.type, 'confirmed', `callee: ${JSON.stringify(eb)}`);

    const sides = [
      { p: a, id, label: 'caller 1000' },
      { p: b, id: incoming.id, label: 'callee 1001' },
    ];
    for (const s of sides) assertRelaySdp((await sessionState(s.p, s.id))?.remoteSdp, s.label);

    const snapshot = () => Promise.all(sides.map((s) => stats(s.p, s.id)));
    const deadline = Date.now() + T_MEDIA_START;
    let first = await snapshot();
    while (!first.every((st) => st.audio.inbound > 0) && Date.now() < deadline) {
      await sleep(250);
      first = await snapshot();
    }
    await sleep(MEDIA_WINDOW_MS);
    const second = await snapshot();
    const problems = [];
    sides.forEach((s, i) => {
      const [x, y] = [first[i].audio, second[i].audio];
      console.log(`# ${s.label}: audio in ${x.inbound} -> ${y.inbound}, out ${x.outbound} -> ${y.outbound}, ICE ${second[i].ice}`);
      if (!(y.inbound > x.inbound)) {
        problems.push(`${s.label}: inbound audio did not grow (${x.inbound} -> ${y.inbound}; ICE ${second[i].ice}, connection ${second[i].connection})`);
      }
    });
    if (problems.length) {
      for (const s of sides) {
        const st = await sessionState(s.p, s.id);
        console.error(`--- ${s.label} local SDP ---\n${st?.localSdp}\n--- ${s.label} remote SDP ---\n${st?.remoteSdp}`);
      }
      assert.fail(problems.join('\n'));
    }

    const ca2 = await cursor(a);
    const cb2 = await cursor(b);
    await a.eval((id) => window.phone.hangup(id), id);
    const endA = await expectEvent(a, ['ended', 'failed'], ca2, T_END, 'caller hangs up', id);
    const endB = await expectEvent(b, ['ended', 'failed'], cb2, T_END, 'callee sees the hang-up', incoming.id);
    assert.equal(endA.type, 'ended');
    assert.equal(endB.type, 'ended');
    await b.eval(() => window.phone.setIncoming({ mode: 'manual' }));
  });
}

test('browser -> UDP phone (sipp as 1002, G.711, echoing RTP) through the relay: plain SDP to the phone, RTP both ways', { timeout: 90_000 }, async () => {
  assert.ok(sippAvailable(), 'sipp is not installed (apt-get install sip-tester)');
  a ??= await openPhone('1000');
  const reg = await runSipp(
    [
      '-sf', join(SCENARIOS, 'register.xml'), SIP_UDP,
      '-t', 'u1', '-i', '127.0.0.1', '-p', String(SIPP_PORT), '-mp', String(SIPP_MEDIA_PORT + 4), '-m', '1',
      '-key', 'domain', DOMAIN, '-key', 'expires', '300',
      '-s', '1002', '-au', '1002', '-ap', PASSWORDS[1002], '-auth_uri', DOMAIN,
      '-default_behaviors', 'abortunexp,pingreply',
      '-timeout', '10s', '-timeout_error',
      '-trace_msg', '-message_file', join(ARTIFACTS, 'sipp-register-1002.log'),
    ],
    { deadlineMs: 20_000 },
  );
  assert.equal(reg.code, 0, `sipp REGISTER of 1002 failed: exit ${reg.code}\n${summarizeSippOutput(`${reg.stdout}\n${reg.stderr}`)}`);
  const trace = join(ARTIFACTS, 'sipp-uas-1002.log');
  const uas = runSipp(
    [
      '-sf', join(SCENARIOS, 'uas_answer.xml'),
      '-t', 'u1', '-i', '127.0.0.1', '-p', String(SIPP_PORT), '-mp', String(SIPP_MEDIA_PORT), '-m', '1',
      '-key', 'domain', DOMAIN, '-rtp_echo',
      '-s', '1002', '-timeout', '30s', '-timeout_error',
      '-trace_msg', '-message_file', trace,
    ],
    { deadlineMs: 40_000 },
  );
  await sleep(700); // sipp binds its ports
  const ca = await cursor(a);
  const id = await a.eval(({ target, opts }) => window.phone.call(target, opts), {
    target: '1002',
    opts: { video: false, bundlePolicy: 'max-bundle' },
  });
  try {
    const e = await expectEvent(a, ['confirmed', 'failed', 'ended'], ca, T_CALL_SETUP, '1000 calls UDP phone 1002', id);
    assert.equal(e.type, 'confirmed', `browser -> UDP phone: ${JSON.stringify(e)}`);
    assertRelaySdp((await sessionState(a, id))?.remoteSdp, 'browser 1000');

    // What the phone got: plain RTP/AVP on a relay port, no ICE or DTLS.
    const invite = readSippMessages(trace).find((m) => m.dir === 'received' && /^INVITE /.test(m.text));
    assert.ok(invite, `the UDP phone received no INVITE (trace ${trace})`);
    const m = invite.text.match(/^m=audio (\d+) RTP\/AVP [\d ]+$/m);
    assert.ok(m, `the phone's offer is not plain RTP/AVP audio:\n${invite.text}`);
    const port = Number(m[1]);
    assert.ok(port >= PORT_MIN && port <= PORT_MAX, `offer port ${port} outside the relay range`);
    assert.doesNotMatch(invite.text, /a=(ice-ufrag|fingerprint|candidate)/, 'WebRTC attributes reached the phone');

    // sipp echoes what it receives: inbound audio at the browser proves the
    // path browser -> relay -> phone -> relay -> browser.
    const deadline = Date.now() + T_MEDIA_START;
    let first = await stats(a, id);
    while (first.audio.inbound === 0 && Date.now() < deadline) {
      await sleep(250);
      first = await stats(a, id);
    }
    await sleep(MEDIA_WINDOW_MS);
    const second = await stats(a, id);
    console.log(`# browser 1000 <-> UDP phone: audio in ${first.audio.inbound} -> ${second.audio.inbound}, out ${first.audio.outbound} -> ${second.audio.outbound}, ICE ${second.ice}`);
    assert.ok(
      second.audio.inbound > first.audio.inbound && first.audio.inbound > 0,
      `no echoed RTP at the browser (in ${first.audio.inbound} -> ${second.audio.inbound}, out ${second.audio.outbound}, ICE ${second.ice})`,
    );
    const ca2 = await cursor(a);
    await a.eval((id) => window.phone.hangup(id), id);
    const end = await expectEvent(a, ['ended', 'failed'], ca2, T_END, 'browser hangs up the UDP phone', id);
    assert.equal(end.type, 'ended');
  } finally {
    await a.eval(() => window.phone.hangupAll()).catch(() => {});
    const r = await uas;
    assert.equal(r.code, 0, `sipp UAS did not complete: exit ${r.code}\n${summarizeSippOutput(`${r.stdout}\n${r.stderr}`)}\n  trace: ${trace}`);
  }
});
