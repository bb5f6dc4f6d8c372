// End-to-end tests with real browsers: Chromium pages running JsSIP register
// to a running callgate over WSS, call each other, exchange MESSAGEs, and
// talk to plain SIP phones played by sipp over UDP.
//
// Run through tests/e2e/browser.sh, which builds and starts callgate inside a
// loopback-only network namespace. To run against a callgate started by
// hand (config as in browser.sh):
//
//   node tests/e2e/browser.mjs
//
// Environment (defaults in brackets):
//   E2E_WSS_URL     [wss://127.0.0.1:7443]  callgate's WSS listener
//   E2E_DOMAIN      [127.0.0.1]             SIP domain (digest realm)
//   E2E_SIP_UDP     [127.0.0.1:5060]        callgate's UDP listener (where sipp sends)
//   E2E_ARTIFACTS   [a new /tmp dir]        JsSIP traces (phone-*.log), sipp traces
//   CHROMIUM        [/usr/bin/chromium]
//
// Users (provisioned by browser.sh): 1000, 1001, 1002 with passwords
// secret1000, secret1001, secret1002.

import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { appendFileSync, mkdirSync, mkdtempSync, readFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { after, afterEach, before, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';
import { bundleCommonJs } from './lib/bundle.mjs';
import {
  SCENARIOS,
  headerValues,
  readSippMessages,
  runSipp,
  sippAvailable,
  splitCommaList,
  startLine,
  summarizeSippOutput,
} from './lib/sipp.mjs';

const here = dirname(fileURLToPath(import.meta.url));
const WSS_URL = process.env.E2E_WSS_URL ?? 'wss://127.0.0.1:7443';
const DOMAIN = process.env.E2E_DOMAIN ?? '127.0.0.1';
const SIP_UDP = process.env.E2E_SIP_UDP ?? '127.0.0.1:5060';
const ARTIFACTS = process.env.E2E_ARTIFACTS ?? mkdtempSync(join(tmpdir(), 'callgate-e2e-browser-'));
const CHROMIUM = process.env.CHROMIUM ?? '/usr/bin/chromium';
mkdirSync(ARTIFACTS, { recursive: true });

const PASSWORDS = { 1000: 'secret1000', 1001: 'secret1001', 1002: 'secret1002' };

// Ports of the sipp phone (user 1002) on loopback.
const SIPP_UAS_PORT = 5080;
const SIPP_UAC_PORT = 5082;
const SIPP_MEDIA_PORT_UAS = 16000;
const SIPP_MEDIA_PORT_UAC = 16010;

// How long each kind of wait may take before the test fails.
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
  // Several pages stay active side by side; none may be throttled.
  '--disable-background-timer-throttling',
  '--disable-renderer-backgrounding',
  '--disable-backgrounding-occluded-windows',
];

// --- the page ---------------------------------------------------------------

const JSSIP_BUNDLE = bundleCommonJs(join(here, '..', 'node_modules', 'jssip', 'lib', 'JsSIP.js'), 'JsSIP');
const PHONE_JS = readFileSync(join(here, 'lib', 'phone.js'), 'utf8');
const PHONE_HTML = `<!doctype html>
<meta charset="utf-8">
<title>callgate e2e phone</title>
<script src="/jssip.js"></script>
<script>
  // JsSIP traces without console colour codes; they are written to phone-USER.log.
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
  if (path === '/favicon.ico') {
    res.writeHead(204).end();
    return;
  }
  if (!file) {
    res.writeHead(404).end();
    return;
  }
  res.writeHead(200, { 'content-type': file[0], 'cache-control': 'no-store' });
  res.end(file[1]);
});

// --- node-side handle of one phone page ---------------------------------------

let browser;
let pageUrl;
const openPhones = new Set();

class Phone {
  constructor(user, context, page, logFile) {
    this.user = user;
    this.context = context;
    this.page = page;
    this.logFile = logFile;
  }

  static async open(user, label = user) {
    const context = await browser.newContext({ ignoreHTTPSErrors: true });
    const page = await context.newPage();
    const logFile = join(ARTIFACTS, `phone-${label}.log`);
    appendFileSync(logFile, `==== page opened ${new Date().toISOString()}\n`);
    page.on('console', (msg) => appendFileSync(logFile, `${new Date().toISOString()} ${msg.text()}\n`));
    page.on('pageerror', (err) => appendFileSync(logFile, `${new Date().toISOString()} PAGE ERROR ${err}\n`));
    await page.goto(pageUrl, { timeout: 10_000 });
    await page.waitForFunction(() => window.phone && window.JsSIP, null, { timeout: 10_000 });
    const phone = new Phone(user, context, page, logFile);
    openPhones.add(phone);
    return phone;
  }

  eval(fn, arg) {
    return this.page.evaluate(fn, arg);
  }

  /** Starts JsSIP; resolves with the 'registered' / 'registrationFailed' / 'timeout' event. */
  start({ password = PASSWORDS[this.user], instanceId, register = true } = {}) {
    return this.eval((cfg) => window.phone.start(cfg), {
      wsUrl: WSS_URL,
      domain: DOMAIN,
      user: this.user,
      password,
      instanceId,
      register,
      timeoutMs: T_REGISTER,
    });
  }

  cursor() {
    return this.eval(() => window.phone.events.length);
  }

  events(since = 0) {
    return this.eval((s) => window.phone.events.slice(s), since);
  }

  /** Waits for the first event of `types` (filtered by session id if given) after `since`. */
  async expect(types, since, timeoutMs, what, { id } = {}) {
    types = [].concat(types);
    const hit = await this.eval(
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
      assert.fail(
        `${what}: phone ${this.user} saw no ${types.join('/')} event${id ? ` for ${id}` : ''} within ${timeoutMs} ms.\n` +
          `  its events since then: ${await this.describeEvents(since)}\n  JsSIP trace: ${this.logFile}`,
      );
    }
    return hit;
  }

  async describeEvents(since) {
    const evs = await this.events(since);
    if (!evs.length) return '(none)';
    return evs
      .map((e) => {
        const { seq, t, type, ...rest } = e;
        return `${type}${Object.keys(rest).length ? ` ${JSON.stringify(rest)}` : ''}`;
      })
      .join(' | ');
  }

  setIncoming(policy) {
    return this.eval((p) => window.phone.setIncoming(p), policy);
  }

  call(target, opts = {}) {
    return this.eval(({ target, opts }) => window.phone.call(target, opts), { target, opts });
  }

  answer(id, opts = {}) {
    return this.eval(({ id, opts }) => window.phone.answer(id, opts), { id, opts });
  }

  hangup(id) {
    return this.eval((id) => window.phone.hangup(id), id);
  }

  hangupAll() {
    return this.eval(() => window.phone.hangupAll());
  }

  /** SIP requests the page sent (see phone.sent in lib/phone.js). */
  sentRequests() {
    return this.eval(() => window.phone.sent.slice());
  }

  stats(id) {
    return this.eval((id) => window.phone.stats(id), id);
  }

  sessionState(id) {
    return this.eval((id) => window.phone.sessionState(id), id);
  }

  sendMessage(target, body) {
    return this.eval(({ target, body }) => window.phone.sendMessage(target, body, 10_000), { target, body });
  }

  dropSocket() {
    return this.eval(() => window.phone.dropSocket());
  }

  stop() {
    return this.eval(() => window.phone.stop(5000));
  }

  async close() {
    openPhones.delete(this);
    await this.context.close().catch(() => {});
  }
}

async function registrationProblem(phone, result) {
  let hint = '';
  if (result.type === 'registrationFailed' && result.status === 401 && result.challenges?.length) {
    hint =
      `\n  the 401 challenged with: ${JSON.stringify(result.challenges)}` +
      '\n  (JsSIP keeps only the LAST WWW-Authenticate/Proxy-Authenticate header of a response, and answers only MD5)';
  }
  return (
    `${phone.user} did not register with the right password: ${JSON.stringify(result)}${hint}\n` +
    `  its events: ${await phone.describeEvents(0)}\n  JsSIP trace: ${phone.logFile}`
  );
}

// The two browser phones most tests use, registered once.
const phones = { a: null, b: null }; // a = 1000, b = 1001
let phonesBroken = null;
const instanceB = randomUUID();

async function registeredPhones() {
  if (phonesBroken) assert.fail(`not run: ${phonesBroken}`);
  try {
    if (!phones.a) {
      const p = await Phone.open('1000');
      const r = await p.start();
      if (r.type !== 'registered') throw new Error(await registrationProblem(p, r));
      phones.a = p;
    }
    if (!phones.b) {
      const p = await Phone.open('1001');
      const r = await p.start({ instanceId: instanceB });
      if (r.type !== 'registered') throw new Error(await registrationProblem(p, r));
      phones.b = p;
    }
  } catch (err) {
    phonesBroken = `browser phones 1000/1001 could not register (${err.message})`;
    throw err;
  }
  return phones;
}

// --- media check --------------------------------------------------------------

/**
 * Asserts that inbound RTP of each `kinds` grows on every side, first
 * waiting (up to T_MEDIA_START) for ICE/DTLS to bring the first packets, then
 * measuring over MEDIA_WINDOW_MS.
 */
async function assertMediaFlows(sides, kinds) {
  const snapshot = () => Promise.all(sides.map((s) => s.phone.stats(s.id)));
  const deadline = Date.now() + T_MEDIA_START;
  let first = await snapshot();
  while (!first.every((st) => kinds.every((k) => st[k].inbound > 0)) && Date.now() < deadline) {
    await sleep(250);
    first = await snapshot();
  }
  await sleep(MEDIA_WINDOW_MS);
  const second = await snapshot();
  const problems = [];
  sides.forEach((s, i) => {
    for (const k of kinds) {
      const before = first[i][k];
      const afterStats = second[i][k];
      if (!(afterStats.inbound > before.inbound)) {
        problems.push(
          `${s.label}: inbound ${k} RTP packets did not grow over ${MEDIA_WINDOW_MS} ms ` +
            `(${before.inbound} -> ${afterStats.inbound}; outbound ${before.outbound} -> ${afterStats.outbound}; ` +
            `ICE ${second[i].ice}, connection ${second[i].connection})`,
        );
      }
    }
  });
  if (problems.length) {
    for (const s of sides) {
      const st = await s.phone.sessionState(s.id);
      console.error(`--- ${s.label} local SDP ---\n${st?.localSdp}\n--- ${s.label} remote SDP ---\n${st?.remoteSdp}`);
    }
    assert.fail(problems.join('\n'));
  }
  return second;
}

// --- a call between the two browser phones -----------------------------------

async function browserCall({ video, bundlePolicy }) {
  const { a, b } = await registeredPhones();
  await b.setIncoming({ mode: 'answer', bundlePolicy });
  const ca = await a.cursor();
  const cb = await b.cursor();
  const id = await a.call('1001', { video, bundlePolicy });
  const incoming = await b.expect('incoming', cb, T_CALL_SETUP, '1000 calls 1001');
  assert.equal(incoming.video, video, `1001 got an offer ${incoming.video ? 'with' : 'without'} video`);
  await a.expect(['confirmed', 'failed', 'ended'], ca, T_CALL_SETUP, '1000 calls 1001', { id }).then((e) =>
    assert.equal(e.type, 'confirmed', `caller 1000: call not established: ${JSON.stringify(e)}`),
  );
  await b.expect(['confirmed', 'failed', 'ended'], cb, T_CALL_SETUP, '1001 answers', { id: incoming.id }).then((e) =>
    assert.equal(e.type, 'confirmed', `callee 1001: call not established: ${JSON.stringify(e)}`),
  );

  const kinds = video ? ['audio', 'video'] : ['audio'];
  const stats = await assertMediaFlows(
    [
      { phone: a, id, label: 'caller 1000' },
      { phone: b, id: incoming.id, label: 'callee 1001' },
    ],
    kinds,
  );
  // An audio-only call must not carry video.
  if (!video) for (const st of stats) assert.equal(st.video.inbound, 0, 'audio-only call received video RTP');

  const ca2 = await a.cursor();
  const cb2 = await b.cursor();
  await a.hangup(id);
  const endA = await a.expect(['ended', 'failed'], ca2, T_END, 'caller hangs up', { id });
  const endB = await b.expect(['ended', 'failed'], cb2, T_END, 'callee sees the hang-up', { id: incoming.id });
  assert.equal(endA.type, 'ended', `caller: ${JSON.stringify(endA)}`);
  assert.equal(endB.type, 'ended', `callee: ${JSON.stringify(endB)}`);
  assert.equal(endB.originator, 'remote', `callee: the BYE should come from the caller: ${JSON.stringify(endB)}`);
}

// --- sipp helpers ---------------------------------------------------------------

function sippCommon(port, mediaPort) {
  return ['-t', 'u1', '-i', '127.0.0.1', '-p', String(port), '-mp', String(mediaPort), '-m', '1', '-key', 'domain', DOMAIN];
}

function sippTail(r) {
  return summarizeSippOutput(`${r.stdout}\n${r.stderr}`)
    .split('\n')
    .map((l) => `    ${l}`)
    .join('\n');
}

async function registerSippPhone(user, port, expires = 300) {
  const r = await runSipp(
    [
      '-sf', join(SCENARIOS, 'register.xml'), SIP_UDP,
      ...sippCommon(port, SIPP_MEDIA_PORT_UAS + 4),
      '-s', user, '-au', user, '-ap', PASSWORDS[user], '-auth_uri', DOMAIN,
      '-key', 'expires', String(expires),
      '-default_behaviors', 'abortunexp,pingreply', // no BYE after a failed REGISTER
      '-timeout', '10s', '-timeout_error',
      '-trace_msg', '-message_file', join(ARTIFACTS, `sipp-register-${user}-${expires}.log`),
    ],
    { deadlineMs: 20_000 },
  );
  assert.equal(
    r.code,
    0,
    `sipp REGISTER of ${user} over UDP (expires ${expires}) failed: exit ${r.code}${r.timedOut ? ' (killed)' : ''}\n` +
      `${sippTail(r)}\n  trace: ${join(ARTIFACTS, `sipp-register-${user}-${expires}.log`)}`,
  );
}

/** Which side of callgate a Record-Route entry of ours stands for: 'wss' or 'udp'. */
function rrSide(v) {
  if (/;\s*transport=wss\b/i.test(v)) return 'wss';
  if (/;\s*transport=(?!udp\b)/i.test(v)) return 'other';
  return 'udp';
}

/**
 * What is wrong with Record-Route entries `rr` (null if nothing): callgate
 * between a WSS and a UDP phone adds two (RFC 5658 double Record-Route), both
 * with r2=on, one per side. `sides` is their expected order, e.g.
 * ['udp', 'wss']: the entry of the callee's side comes first, in the INVITE
 * and in its responses alike.
 */
function recordRouteProblem(rr, what, sides) {
  if (rr.length !== 2) {
    return `${what} should carry two Record-Route entries (one per side, r2=on), got ${rr.length}: ${JSON.stringify(rr)}`;
  }
  const bad = rr.filter((v) => !/;\s*r2=on\b/i.test(v));
  if (bad.length) return `${what}: Record-Route without r2=on: ${JSON.stringify(bad)}`;
  const got = rr.map(rrSide);
  if (got.join() !== sides.join()) {
    return `${what}: Record-Route entries should be [${sides.join(', ')}] side, got [${got.join(', ')}]: ${JSON.stringify(rr)}`;
  }
  return null;
}

/** The first message of a sipp trace matching `pick`, or a problem string. */
function sippMessage(trace, pick, what) {
  const m = readSippMessages(trace).find(pick);
  return m ?? `${what}: no such message in the sipp trace ${trace}`;
}

/** recordRouteProblem for the first message of a sipp trace matching `pick`. */
function sippRecordRouteProblem(trace, pick, what, sides) {
  const m = sippMessage(trace, pick, what);
  if (typeof m === 'string') return m;
  return recordRouteProblem(headerValues(m.text, 'Record-Route'), `${what} ("${startLine(m.text)}")`, sides);
}

const isRequest = (method) => (m) => new RegExp(`^${method} `).test(m.text);
const isInvite200 = (m) => /^SIP\/2\.0 200 /.test(m.text) && /^CSeq:\s*\d+\s+INVITE/im.test(m.text);

/**
 * An in-dialog request that sipp received from callgate: it must come from
 * the proxy (top Via 127.0.0.1:5060) with callgate's own Route entries
 * consumed.
 */
function relayedRequestProblem(trace, method, what) {
  const m = sippMessage(trace, (m) => m.dir === 'received' && isRequest(method)(m), what);
  if (typeof m === 'string') return m;
  const via = headerValues(m.text, 'Via')[0] ?? '';
  const route = headerValues(m.text, 'Route');
  const problems = [];
  if (!/^SIP\/2\.0\/UDP\s+127\.0\.0\.1:5060\b/i.test(via)) problems.push(`top Via is not callgate's UDP side: ${via}`);
  if (route.length) problems.push(`Route entries left after callgate: ${JSON.stringify(route)}`);
  return problems.length ? `${what} ("${startLine(m.text)}"): ${problems.join('; ')}` : null;
}

/**
 * An in-dialog request that sipp sent: its Route set must be the Record-Route
 * of the 200 OK reversed (sipp's rrs), i.e. callgate's UDP side first.
 */
function routedRequestProblem(trace, method, what) {
  const msgs = readSippMessages(trace);
  const ok = msgs.find((m) => m.dir === 'received' && isInvite200(m));
  const req = msgs.find((m) => m.dir === 'sent' && isRequest(method)(m) && !/^CSeq:\s*1\s/im.test(m.text));
  if (!ok || !req) return `${what}: no 200 OK or no ${method} in the sipp trace ${trace}`;
  const want = headerValues(ok.text, 'Record-Route').reverse();
  const got = headerValues(req.text, 'Route');
  if (got.join(' ') !== want.join(' ')) {
    return `${what}: Route should be the 200's Record-Route reversed ${JSON.stringify(want)}, was ${JSON.stringify(got)}`;
  }
  return null;
}

function failIfAny(problems) {
  const list = problems.filter(Boolean);
  if (list.length) assert.fail(list.join('\n---\n'));
}

// --- the tests ----------------------------------------------------------------

before(async () => {
  await new Promise((ok) => httpServer.listen(0, '127.0.0.1', ok));
  pageUrl = `http://localhost:${httpServer.address().port}/phone.html`;
  browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: CHROMIUM_ARGS, timeout: 30_000 });
  console.log(`# chromium ${browser.version()}, JsSIP traces in ${ARTIFACTS}`);
});

after(async () => {
  for (const p of [...openPhones]) {
    await p.stop().catch(() => {});
    await p.close();
  }
  await browser?.close().catch(() => {});
  httpServer.close();
});

afterEach(async () => {
  // Leave no call behind for the next test.
  for (const p of openPhones) {
    await p.hangupAll().catch(() => {});
    await p.setIncoming({ mode: 'manual' }).catch(() => {});
  }
  await sleep(300);
});

test('1. REGISTER: the right password is accepted, a wrong one is rejected', { timeout: 60_000 }, async () => {
  const { a } = await registeredPhones(); // throws with the registration failure
  const registered = (await a.events()).find((e) => e.type === 'registered');
  assert.ok(registered, '1000 registered');

  const bad = await Phone.open('1001', '1001-wrong-password');
  try {
    const r = await bad.start({ password: 'not-the-password' });
    if (r.type === 'timeout') assert.fail(`wrong password: no answer to REGISTER: ${await bad.describeEvents(0)}`);
    assert.equal(r.type, 'registrationFailed', `a wrong password must not register: got ${JSON.stringify(r)}`);
    assert.ok([401, 403].includes(r.status), `wrong password: expected a final 401 or 403, got ${r.status} (${r.cause})`);
    assert.ok(
      ['Authentication Error', 'Rejected'].includes(r.cause),
      `wrong password: expected cause Authentication Error or Rejected, got ${r.cause}`,
    );
  } finally {
    await bad.stop().catch(() => {});
    await bad.close();
  }
});

test('2a. browser -> browser audio call (bundlePolicy balanced): RTP both ways, hang-up', { timeout: 60_000 }, () =>
  browserCall({ video: false, bundlePolicy: 'balanced' }),
);

test('2b. browser -> browser audio call (bundlePolicy max-bundle): RTP both ways, hang-up', { timeout: 60_000 }, () =>
  browserCall({ video: false, bundlePolicy: 'max-bundle' }),
);

test('3a. browser -> browser audio+video call (bundlePolicy balanced): RTP both ways', { timeout: 60_000 }, () =>
  browserCall({ video: true, bundlePolicy: 'balanced' }),
);

test('3b. browser -> browser audio+video call (bundlePolicy max-bundle): RTP both ways', { timeout: 60_000 }, () =>
  browserCall({ video: true, bundlePolicy: 'max-bundle' }),
);

test('4. MESSAGE 1000 -> 1001 is delivered with its body', { timeout: 30_000 }, async () => {
  const { a, b } = await registeredPhones();
  const body = `hello 1001, it is 1000 (${randomUUID()})`;
  const cb = await b.cursor();
  const r = await a.sendMessage('1001', body);
  assert.ok(r.ok, `MESSAGE 1000 -> 1001 failed: ${JSON.stringify(r)}`);
  assert.ok(r.status >= 200 && r.status < 300, `MESSAGE answered ${r.status}`);
  const got = await b.expect('message', cb, 5_000, 'MESSAGE delivery');
  assert.equal(got.body, body, 'MESSAGE body changed on the way');
  assert.match(got.from, /^sip:1000@/, `MESSAGE From should be 1000, was ${got.from}`);
});

/** 1000 calls 1001 (auto-answer), asserts exactly one INVITE reached `callee`, hangs up. */
async function assertCallArrivesOnce(a, callee, what) {
  await callee.setIncoming({ mode: 'answer' });
  const ca = await a.cursor();
  const cb = await callee.cursor();
  const id = await a.call('1001', {});
  const e = await a.expect(['confirmed', 'failed', 'ended'], ca, T_CALL_SETUP, what, { id });
  assert.equal(e.type, 'confirmed', `${what}: call 1000 -> 1001 not established: ${JSON.stringify(e)}`);
  await sleep(1_500); // room for a duplicate INVITE to show up
  const incoming = (await callee.events(cb)).filter((ev) => ev.type === 'incoming');
  assert.equal(incoming.length, 1, `${what}: the call should reach 1001 exactly once, got ${incoming.length} INVITEs`);
  const ca2 = await a.cursor();
  await a.hangup(id);
  await a.expect(['ended', 'failed'], ca2, T_END, `${what}: hang-up`, { id });
}

function assertOneBinding(registered, what) {
  assert.equal(
    registered.contacts.length,
    1,
    `${what}: the 200 OK to the re-REGISTER should list exactly one binding for 1001 (the old one replaced), ` +
      `got ${registered.contacts.length}: ${JSON.stringify(registered.contacts)}`,
  );
  assert.match(registered.contacts[0], new RegExp(instanceB, 'i'), `${what}: binding without our +sip.instance`);
}

test('5a. WebSocket drops, JsSIP reconnects and re-registers: one binding, calls arrive once', { timeout: 60_000 }, async () => {
  const { a, b } = await registeredPhones();
  const cb = await b.cursor();
  assert.ok(await b.dropSocket(), 'could not reach the WebSocket under JsSIP');
  await b.expect('disconnected', cb, 5_000, 'WebSocket close');
  const reg = await b.expect(['registered', 'registrationFailed'], cb, 15_000, 'reconnect and re-REGISTER');
  assert.equal(reg.type, 'registered', `re-REGISTER after reconnect: ${JSON.stringify(reg)}`);
  assertOneBinding(reg, 'same UA on a new WebSocket');
  await assertCallArrivesOnce(a, b, 'after reconnect');
});

test('5b. page gone without un-REGISTER, a new UA with the same instance id replaces the binding', { timeout: 60_000 }, async () => {
  const { a, b } = await registeredPhones();
  // Closing the page closes the WebSocket without any un-REGISTER.
  await b.close();
  phones.b = null;
  const fresh = await Phone.open('1001', '1001-second-ua');
  const reg = await fresh.start({ instanceId: instanceB });
  assert.equal(reg.type, 'registered', `new UA with the same instance id: ${JSON.stringify(reg)}`);
  phones.b = fresh;
  assertOneBinding(reg, 'new UA, same +sip.instance');
  await assertCallArrivesOnce(a, fresh, 'after the new UA registered');
});

test('6. call to a user registered nowhere gets 480, to an unknown user 404', { timeout: 60_000 }, async () => {
  const { a } = await registeredPhones();
  for (const [target, status] of [
    ['1002', 480],
    ['9999', 404],
  ]) {
    const ca = await a.cursor();
    const id = await a.call(target, {});
    const e = await a.expect(['failed', 'confirmed', 'ended'], ca, T_CALL_SETUP, `call to ${target}`, { id });
    assert.equal(e.type, 'failed', `call to ${target} should fail: ${JSON.stringify(e)}`);
    assert.equal(e.status, status, `call to ${target}: expected ${status}, got ${e.status} (${e.cause})`);
  }
});

test('7a. busy callee: 1001 answers 486, the caller sees 486', { timeout: 60_000 }, async () => {
  const { a, b } = await registeredPhones();
  await b.setIncoming({ mode: 'reject', status: 486 });
  const ca = await a.cursor();
  const cb = await b.cursor();
  const id = await a.call('1001', {});
  await b.expect('incoming', cb, T_CALL_SETUP, '1000 calls busy 1001');
  const e = await a.expect(['failed', 'confirmed', 'ended'], ca, T_CALL_SETUP, 'busy 1001', { id });
  assert.equal(e.type, 'failed', `call to busy 1001: ${JSON.stringify(e)}`);
  assert.equal(e.status, 486, `call to busy 1001: expected 486, got ${e.status} (${e.cause})`);
  assert.equal(e.cause, 'Busy');
});

test('7b. CANCEL: 1000 gives up while 1001 rings, 1001 sees Canceled', { timeout: 60_000 }, async () => {
  const { a, b } = await registeredPhones();
  await b.setIncoming({ mode: 'manual' });
  const ca = await a.cursor();
  const cb = await b.cursor();
  const id = await a.call('1001', {});
  const incoming = await b.expect('incoming', cb, T_CALL_SETUP, '1000 calls 1001');
  // CANCEL may only go out once a provisional response came back (JsSIP waits for it anyway).
  await a.expect('progress', ca, 5_000, '180 Ringing from 1001 reaches 1000', { id });
  const ca2 = await a.cursor();
  await a.hangup(id);
  const ea = await a.expect(['failed', 'ended'], ca2, T_END, 'caller cancels', { id });
  assert.equal(ea.cause, 'Canceled', `caller: ${JSON.stringify(ea)}`);
  const eb = await b.expect(['failed', 'ended', 'confirmed'], cb, T_END, 'callee sees the CANCEL', { id: incoming.id });
  assert.equal(eb.type, 'failed', `callee: ${JSON.stringify(eb)}`);
  assert.equal(eb.cause, 'Canceled', `callee: the ringing session should end with cause Canceled: ${JSON.stringify(eb)}`);
  assert.equal(eb.originator, 'remote');
});

// Scenario 8 is about signalling between a WSS browser and a UDP phone. callgate
// does not relay media yet and passes SDP through untouched, so sipp speaks
// WebRTC-shaped SDP (uas_answer_webrtc.xml, uac_call_webrtc.xml) that Chromium
// accepts; with no ICE candidates in it no media flows, and none is asserted.

test('8a. browser 1000 calls a UDP phone (sipp as 1002): confirmed, two Record-Routes, ACK and BYE through callgate', { timeout: 90_000 }, async () => {
  if (!sippAvailable()) assert.fail('sipp is not installed (apt-get install sip-tester)');
  const { a } = await registeredPhones();
  await registerSippPhone('1002', SIPP_UAS_PORT);
  const trace = join(ARTIFACTS, 'sipp-uas-1002.log');
  const uas = runSipp(
    [
      '-sf', join(SCENARIOS, 'uas_answer_webrtc.xml'),
      ...sippCommon(SIPP_UAS_PORT, SIPP_MEDIA_PORT_UAS),
      '-s', '1002', '-timeout', '20s', '-timeout_error',
      '-trace_msg', '-message_file', trace,
      '-trace_err', '-error_file', join(ARTIFACTS, 'sipp-uas-1002-errors.log'),
    ],
    { deadlineMs: 30_000 },
  );
  const problems = [];
  await sleep(700); // sipp binds its port
  const ca = await a.cursor();
  let accepted = null; // the browser's 'accepted' event: the 200 OK
  try {
    // Audio only, max-bundle: one m-line with mid 0, what the static answer of
    // uas_answer_webrtc.xml is made for.
    const id = await a.call('1002', { video: false, bundlePolicy: 'max-bundle' });
    const e = await a.expect(['confirmed', 'failed', 'ended'], ca, T_CALL_SETUP, '1000 calls UDP phone 1002', { id });
    if (e.type !== 'confirmed') {
      problems.push(`browser 1000 -> UDP phone: call not confirmed: ${JSON.stringify(e)}\n  browser events: ${await a.describeEvents(ca)}`);
    } else {
      accepted = (await a.events(ca)).find((ev) => ev.type === 'accepted' && ev.id === id);
      problems.push(
        accepted
          ? recordRouteProblem(accepted.recordRoutes.flatMap(splitCommaList), '200 OK from the UDP phone at browser 1000', ['udp', 'wss'])
          : `browser 1000: confirmed without an accepted event: ${await a.describeEvents(ca)}`,
      );
      await sleep(1_000);
      const ca2 = await a.cursor();
      await a.hangup(id);
      const end = await a.expect(['ended', 'failed'], ca2, T_END, 'browser hangs up the UDP phone', { id });
      if (end.type !== 'ended' || end.originator !== 'local') problems.push(`browser 1000 hang-up: ${JSON.stringify(end)}`);
    }
  } catch (err) {
    problems.push(err.message);
  }
  await a.hangupAll().catch(() => {});
  const r = await uas;
  if (r.code !== 0) {
    problems.push(
      `the UDP phone (sipp UAS) did not complete INVITE/180/200/ACK/BYE: exit ${r.code}${r.timedOut ? ' (killed)' : ''}\n${sippTail(r)}\n  trace: ${trace}`,
    );
  }
  if (accepted) {
    // The browser's ACK and BYE: Route = the 200's Record-Route reversed (WSS side first).
    const want = accepted.recordRoutes.flatMap(splitCommaList).reverse();
    const sent = (await a.sentRequests()).filter((q) => q.callId === accepted.callId);
    for (const method of ['ACK', 'BYE']) {
      // The last one: the ACK of the 407 goes first, outside the dialog.
      const q = sent.findLast((q) => q.method === method);
      const got = q ? q.routes.flatMap(splitCommaList) : null;
      if (!q) problems.push(`browser 1000 sent no ${method} for the call (Call-ID ${accepted.callId})`);
      else if (got.join(' ') !== want.join(' ')) {
        problems.push(`${method} from browser 1000: Route should be the 200's Record-Route reversed ${JSON.stringify(want)}, was ${JSON.stringify(got)}`);
      }
    }
  }
  const invite = readSippMessages(trace).find((m) => m.dir === 'received' && isRequest('INVITE')(m));
  if (invite) {
    const mids = invite.text.match(/^a=mid:.*$/gm) ?? [];
    const mlines = invite.text.match(/^m=.*$/gm) ?? [];
    if (mlines.length !== 1 || !/^m=audio /.test(mlines[0]) || mids.join() !== 'a=mid:0') {
      problems.push(
        `the browser's offer is not the one uas_answer_webrtc.xml answers (one m=audio, a=mid:0): ${JSON.stringify([...mlines, ...mids])}`,
      );
    }
  }
  problems.push(
    sippRecordRouteProblem(trace, (m) => m.dir === 'received' && isRequest('INVITE')(m), 'INVITE from browser 1000 at the UDP phone', ['udp', 'wss']),
    relayedRequestProblem(trace, 'ACK', 'ACK from browser 1000 at the UDP phone'),
    relayedRequestProblem(trace, 'BYE', 'BYE from browser 1000 at the UDP phone'),
  );
  failIfAny(problems);
});

test('8b. a UDP phone (sipp as 1002, digest 407) calls browser 1000: 200 OK with two Record-Routes, ACK and BYE along the route set', { timeout: 90_000 }, async () => {
  if (!sippAvailable()) assert.fail('sipp is not installed (apt-get install sip-tester)');
  const { a } = await registeredPhones();
  await a.setIncoming({ mode: 'answer' });
  const ca = await a.cursor();
  const trace = join(ARTIFACTS, 'sipp-uac-1002.log');
  const r = await runSipp(
    [
      '-sf', join(SCENARIOS, 'uac_call_webrtc.xml'), SIP_UDP,
      ...sippCommon(SIPP_UAC_PORT, SIPP_MEDIA_PORT_UAC),
      '-s', '1000', '-key', 'caller', '1002',
      '-au', '1002', '-ap', PASSWORDS['1002'], '-auth_uri', `1000@${DOMAIN}`,
      '-d', '2000', '-timeout', '20s', '-timeout_error',
      '-trace_msg', '-message_file', trace,
      '-trace_err', '-error_file', join(ARTIFACTS, 'sipp-uac-1002-errors.log'),
    ],
    { deadlineMs: 30_000 },
  );
  const problems = [];
  if (r.code !== 0) {
    problems.push(
      `the UDP phone (sipp UAC) -> browser 1000 did not complete INVITE/407/INVITE/200/ACK/BYE: exit ${r.code}${r.timedOut ? ' (killed)' : ''}\n` +
        `${sippTail(r)}\n  trace: ${trace}\n  browser 1000 events: ${await a.describeEvents(ca)}`,
    );
  }
  const incoming = (await a.events(ca)).filter((e) => e.type === 'incoming');
  if (incoming.length !== 1) {
    problems.push(`browser 1000 should get the call exactly once, got ${incoming.length}: ${await a.describeEvents(ca)}`);
  } else {
    const id = incoming[0].id;
    // The same INVITE as the browser saw it: both entries too.
    problems.push(recordRouteProblem(incoming[0].recordRoutes.flatMap(splitCommaList), 'INVITE from the UDP phone at browser 1000', ['wss', 'udp']));
    if (r.code === 0) {
      // sipp held the call for 2 s after its ACK: the browser has it by now.
      const evs = await a.events(ca);
      if (!evs.some((e) => e.type === 'confirmed' && e.id === id)) {
        problems.push(`browser 1000 never saw the ACK (no confirmed event): ${await a.describeEvents(ca)}`);
      }
      const end = await a.expect(['ended', 'failed'], ca, T_END, 'BYE from the UDP phone', { id });
      if (end.type !== 'ended' || end.originator !== 'remote') problems.push(`browser 1000 after the BYE: ${JSON.stringify(end)}`);
    }
  }
  problems.push(
    sippRecordRouteProblem(trace, (m) => m.dir === 'received' && isInvite200(m), '200 OK from browser 1000 back to the UDP phone', ['wss', 'udp']),
    routedRequestProblem(trace, 'ACK', 'ACK of the 200 OK sent by the UDP phone'),
    routedRequestProblem(trace, 'BYE', 'BYE sent by the UDP phone'),
  );
  failIfAny(problems);
});
