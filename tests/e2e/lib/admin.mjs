// End-to-end tests of the admin side of callgate: the web admin UI (HTTPS
// admin listener), the built-in softphone page /phone and the plain-HTTP
// health listener, driven with Chromium (playwright-core) against a
// freshly started gateway with the media relay on and sipp as the PSTN
// trunk on 127.0.0.2:5080.
//
//   1. login: /dashboard without a session leads to /login; a wrong
//      password is refused (401, message, no session); the one-time
//      password (printed and in admin-password.txt) logs in with a
//      Secure, HttpOnly, SameSite=Strict session cookie
//   2. the forced password change; admin-password.txt goes away
//   3. the first-run wizard: domain and address, certificate (kept), first
//      trunk (sipp at 127.0.0.2:5080, dial pattern "0"; through the Trunks
//      page instead when the gateway has one), first user, finish ->
//      dashboard
//   4. Users page: a user whose display name is markup renders as text
//      (literal text shown, no element injected, no dialog)
//   5. CSRF: form posts without the session's token (none, wrong) are
//      refused with 403 and change nothing
//   6. /metrics: strictly parsed Prometheus text format
//   7. the wizard's user registers from /phone and calls a trunk number:
//      audio both ways (the page's inbound RTP grows, the trunk receives
//      RTP in the capture), metrics counters move, the call is listed on
//      the Calls page and hung up from there (the page sees the call end,
//      the trunk gets a BYE and sipp exits 0)
//   8. the CDR is in the call history (answered, with the trunk) and in
//      the CSV export
//   9. the audit log lists the changes made above
//  10. /healthz, and /readyz turns 503 naming the store while the database
//      cannot be written, and 200 again afterwards
//  11. screenshots of the remaining pages (Trunks, Certificates, Settings,
//      SIP trace when the gateway has them)
//
// Screenshots of every page visited go to E2E_SCREENSHOTS (admin.sh:
// target/e2e-screenshots/admin/), kept as CI artifacts.
//
// Run through tests/e2e/admin.sh (loopback-only network namespace, the
// config it writes). Environment (set by admin.sh; defaults in brackets):
//   E2E_ADMIN [127.0.0.1:8443]   E2E_HEALTH [127.0.0.1:9090]
//   E2E_RELAY_PORTS [42000-42999]
//   E2E_DATA_DIR, E2E_SERVER_LOG   the running server's data dir and log
//   E2E_ARTIFACTS [a new /tmp dir] softphone console log, sipp trace, capture
//   E2E_SCREENSHOTS [<repo>/target/e2e-screenshots/admin]
//   CHROMIUM [/usr/bin/chromium]

import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { appendFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, unlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { after, before, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';
import { SCENARIOS, readSippMessages, sippAvailable, summarizeSippOutput } from './sipp.mjs';

const here = dirname(fileURLToPath(import.meta.url));
const env = process.env;
const ADMIN = env.E2E_ADMIN ?? '127.0.0.1:8443';
const BASE = `https://${ADMIN}`;
const HEALTH = `http://${env.E2E_HEALTH ?? '127.0.0.1:9090'}`;
const [PORT_MIN, PORT_MAX] = (env.E2E_RELAY_PORTS ?? '42000-42999').split('-').map(Number);
const ARTIFACTS = env.E2E_ARTIFACTS ?? mkdtempSync(join(tmpdir(), 'callgate-e2e-admin-'));
const SCREENSHOTS = env.E2E_SCREENSHOTS ?? join(here, '..', '..', '..', 'target', 'e2e-screenshots', 'admin');
const CHROMIUM = env.CHROMIUM ?? '/usr/bin/chromium';
const DATA_DIR = env.E2E_DATA_DIR;
mkdirSync(ARTIFACTS, { recursive: true });
mkdirSync(SCREENSHOTS, { recursive: true });
for (const f of readdirSync(SCREENSHOTS)) if (f.endsWith('.png')) unlinkSync(join(SCREENSHOTS, f));

const NEW_ADMIN_PASSWORD = 'e2e-admin-password-1';
const DOMAIN = '127.0.0.1';
// The trunk the wizard (or the Trunks page) creates: sipp on 127.0.0.2:5080.
const TRUNK = { name: 'pstn', ip: '127.0.0.2', port: 5080, mediaPort: 16000, pattern: '0' };
// The user the wizard creates; it registers from /phone.
const USER = { name: 'alice', password: 'alice-secret-1', extension: '2001', display: 'Alice Example' };
// The user created on the Users page with markup as its display name.
const XSS = '<script>alert(1)</script><img src=x onerror=alert(2)>';
const XSS_USER = { name: 'xss-probe', password: 'xss-secret-1' };
const DIALLED = '0301234'; // matches the trunk's dial pattern "0"

const T_NAV = 15_000;
const T_REGISTER = 10_000;
const T_CALL_SETUP = 15_000;
const T_END = 10_000;
const MEDIA_WINDOW_MS = 2_000;

// As tests/e2e/lib/phone.js / trunk.mjs run Chromium: fake media devices,
// no prompts, loopback ICE, no throttling of background pages.
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
  '--autoplay-policy=no-user-gesture-required',
  '--ignore-certificate-errors',
  '--allow-loopback-in-peer-connection',
  '--disable-background-timer-throttling',
  '--disable-renderer-backgrounding',
  '--disable-backgrounding-occluded-windows',
];

// ---------------------------------------------------------------------------
// Browser: one context for the administrator, one for the softphone

let browser;
let admin; // { context, page }
let phone; // { context, page, logFile }
const dialogs = []; // every alert/confirm/prompt any page opened
const state = {}; // what earlier tests established, for the later ones
let shot = 0;

async function newPage(label) {
  const context = await browser.newContext({ ignoreHTTPSErrors: true, viewport: { width: 1280, height: 860 } });
  const page = await context.newPage();
  const logFile = join(ARTIFACTS, `${label}-console.log`);
  page.on('console', (msg) => appendFileSync(logFile, `${new Date().toISOString()} ${msg.type()} ${msg.text()}\n`));
  page.on('pageerror', (err) => appendFileSync(logFile, `${new Date().toISOString()} PAGE ERROR ${err}\n`));
  page.on('dialog', async (d) => {
    dialogs.push(`${label}: ${d.type()} ${d.message()}`);
    await d.dismiss().catch(() => {});
  });
  page.setDefaultTimeout(T_NAV);
  return { context, page, logFile };
}

/** A full-page screenshot into SCREENSHOTS, numbered in visiting order. */
async function screenshot(page, name) {
  shot += 1;
  const file = join(SCREENSHOTS, `${String(shot).padStart(2, '0')}-${name}.png`);
  await page.screenshot({ path: file, fullPage: true }).catch((e) => console.log(`# screenshot ${name} failed: ${e}`));
}

const path = (page) => {
  const u = new URL(page.url());
  return u.pathname + u.search;
};

/**
 * Clicks `selector` (a form's submit button or a link) and waits for the
 * navigation. Returns the status of the first response (the POST's, before
 * any redirect) and where the page ended up.
 */
async function submit(page, selector) {
  const [final] = await Promise.all([page.waitForNavigation({ timeout: T_NAV }), page.click(selector)]);
  let req = final.request();
  while (req.redirectedFrom()) req = req.redirectedFrom();
  const first = await req.response();
  return { status: first?.status(), method: req.method(), finalStatus: final.status(), path: path(page) };
}

async function goto(page, p) {
  const r = await page.goto(`${BASE}${p}`, { timeout: T_NAV });
  return { status: r?.status(), path: path(page) };
}

const bodyText = (page) => page.evaluate(() => document.body.innerText);

/** The text of the flash notice, or null. */
const flash = (page) => page.evaluate(() => document.querySelector('p.flash')?.textContent ?? null);

/** A form post from the logged-in admin page with fetch (not following redirects). */
function pagePost(page, url, fields, { multipart = false } = {}) {
  return page.evaluate(
    async ({ url, fields, multipart }) => {
      let body;
      const headers = {};
      if (multipart) {
        body = new FormData();
        for (const [k, v] of Object.entries(fields)) body.append(k, v);
      } else {
        body = new URLSearchParams(fields).toString();
        headers['content-type'] = 'application/x-www-form-urlencoded';
      }
      const r = await fetch(url, { method: 'POST', body, headers, redirect: 'manual', credentials: 'same-origin' });
      return { status: r.status, type: r.type, text: await r.text() };
    },
    { url, fields, multipart },
  );
}

/** RFC 4180 CSV into objects keyed by the header row (as in trunk.mjs). */
function parseCsv(text) {
  const rows = [];
  let row = [];
  let field = '';
  let quoted = false;
  for (let i = 0; i < text.length; i++) {
    const ch = text[i];
    if (quoted) {
      if (ch === '"' && text[i + 1] === '"') {
        field += '"';
        i++;
      } else if (ch === '"') quoted = false;
      else field += ch;
    } else if (ch === '"') quoted = true;
    else if (ch === ',') {
      row.push(field);
      field = '';
    } else if (ch === '\n' || ch === '\r') {
      if (ch === '\r' && text[i + 1] === '\n') i++;
      row.push(field);
      rows.push(row);
      row = [];
      field = '';
    } else field += ch;
  }
  if (field || row.length) {
    row.push(field);
    rows.push(row);
  }
  const [head, ...data] = rows.filter((r) => r.length > 1 || r[0] !== '');
  return (data ?? []).map((r) => Object.fromEntries(head.map((k, i) => [k, r[i] ?? ''])));
}

// ---------------------------------------------------------------------------
// Prometheus text format (0.0.4), parsed strictly

const METRIC_NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*$/;
const TYPES = ['counter', 'gauge', 'histogram', 'summary', 'untyped'];

function parseValue(s) {
  if (s === '+Inf' || s === 'Inf') return Infinity;
  if (s === '-Inf') return -Infinity;
  if (s === 'NaN') return NaN;
  if (!/^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/.test(s)) throw new Error(`bad value "${s}"`);
  return Number(s);
}

/**
 * Parses an exposition: every line is a HELP, a TYPE or a sample; names,
 * labels, escapes, values and timestamps are well-formed; each sample's
 * family has a # TYPE before it (histogram/summary samples with their
 * _bucket/_sum/_count suffixes, buckets with `le`); a family's lines are one
 * group; no series repeats; counters are not negative. Throws on the first
 * problem with its line number.
 */
export function parsePrometheus(text) {
  const types = new Map();
  const helps = new Map();
  const samples = [];
  const series = new Set();
  const done = new Set(); // families whose group ended
  let current = null;
  if (text.length && !text.endsWith('\n')) throw new Error('metrics: no newline at the end');
  const lines = text.split('\n').slice(0, -1);
  const enter = (family, n) => {
    if (family === current) return;
    if (done.has(family)) throw new Error(`metrics line ${n}: family ${family} continues after other families (not one group)`);
    if (current) done.add(current);
    current = family;
  };
  lines.forEach((line, i) => {
    const n = i + 1;
    const fail = (why) => {
      throw new Error(`metrics line ${n}: ${why}: ${JSON.stringify(line)}`);
    };
    let m;
    if ((m = /^# HELP (\S+) (.*)$/.exec(line))) {
      if (!METRIC_NAME.test(m[1])) fail('bad metric name in HELP');
      if (helps.has(m[1])) fail('second HELP');
      if (/\\[^\\n]|\\$/.test(m[2])) fail('bad escape in HELP');
      helps.set(m[1], m[2]);
      enter(m[1], n);
      return;
    }
    if ((m = /^# TYPE (\S+) (\S+)$/.exec(line))) {
      if (!METRIC_NAME.test(m[1])) fail('bad metric name in TYPE');
      if (!TYPES.includes(m[2])) fail(`unknown type ${m[2]}`);
      if (types.has(m[1])) fail('second TYPE');
      if (samples.some((s) => s.family === m[1])) fail('TYPE after samples of the family');
      types.set(m[1], m[2]);
      enter(m[1], n);
      return;
    }
    if (line.startsWith('#')) fail('comment that is neither HELP nor TYPE (e.g. OpenMetrics "# EOF")');
    if (line === '') fail('empty line');
    // name{labels} value [timestamp]
    m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? (\S+)( (-?\d+))?$/.exec(line);
    if (!m) fail('not a sample line');
    const [, name, , labelText, valueText] = m;
    const labels = {};
    if (labelText !== undefined && labelText !== '') {
      let rest = labelText;
      for (;;) {
        const lm = /^([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\\n]|\\[\\"n])*)"/.exec(rest);
        if (!lm) fail('bad label');
        if (!LABEL_NAME.test(lm[1]) || lm[1].startsWith('__')) fail(`bad label name ${lm[1]}`);
        if (lm[1] in labels) fail(`label ${lm[1]} twice`);
        labels[lm[1]] = lm[2].replace(/\\(.)/g, (_, c) => (c === 'n' ? '\n' : c));
        rest = rest.slice(lm[0].length);
        if (rest === '' || rest === ',') break;
        if (!rest.startsWith(',')) fail('labels not separated by ","');
        rest = rest.slice(1);
      }
    }
    let value;
    try {
      value = parseValue(valueText);
    } catch (e) {
      fail(e.message);
    }
    // The family: the sample's own name, or a histogram/summary's.
    let family = types.has(name) ? name : null;
    if (!family) {
      const sm = /^(.*)_(bucket|sum|count)$/.exec(name);
      const t = sm && types.get(sm[1]);
      if (t === 'histogram' || (t === 'summary' && sm[2] !== 'bucket')) family = sm[1];
    }
    if (!family) fail(`sample of a family without # TYPE`);
    const type = types.get(family);
    if (type === 'histogram' && name.endsWith('_bucket') && !('le' in labels)) fail('histogram bucket without le');
    if (type === 'histogram' && name === family) fail('histogram sample without _bucket/_sum/_count');
    if (type === 'counter' && !(value >= 0)) fail('negative or NaN counter');
    const key = `${name}{${Object.keys(labels).sort().map((k) => `${k}=${JSON.stringify(labels[k])}`).join(',')}}`;
    if (series.has(key)) fail('series repeated');
    series.add(key);
    enter(family, n);
    samples.push({ name, family, labels, value });
  });
  for (const [family, type] of types) {
    if (type !== 'histogram') continue;
    const inf = samples.find((s) => s.name === `${family}_bucket` && s.labels.le === '+Inf');
    const count = samples.find((s) => s.name === `${family}_count`);
    if (!inf || !count || inf.value !== count.value) throw new Error(`metrics: histogram ${family}: +Inf bucket ${inf?.value} != _count ${count?.value}`);
  }
  return { types, helps, samples };
}

/** The sum of the samples named `name` whose labels include `match`. */
function total(expo, name, match = {}) {
  return expo.samples
    .filter((s) => s.name === name && Object.entries(match).every(([k, v]) => s.labels[k] === v))
    .reduce((a, s) => a + s.value, 0);
}

async function scrape() {
  const r = await fetch(`${HEALTH}/metrics`);
  const text = await r.text();
  assert.equal(r.status, 200, `GET ${HEALTH}/metrics: ${r.status} ${text.slice(0, 300)}`);
  return { text, contentType: r.headers.get('content-type'), expo: parsePrometheus(text) };
}

// ---------------------------------------------------------------------------
// Packet capture (tcpdump -w, read back here; as in trunk.mjs)

const PCAP = join(ARTIFACTS, 'trunk.pcap');
let tcpdump;
let tcpdumpLog = '';

async function startCapture() {
  tcpdump = spawn('tcpdump', ['-i', 'lo', '-n', '-U', '-s', '400', '-Z', 'root', '-w', PCAP, `udp and host ${TRUNK.ip}`], {
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  tcpdump.stderr.on('data', (d) => {
    tcpdumpLog = (tcpdumpLog + d).slice(-4000);
  });
  const deadline = Date.now() + 10_000;
  while (!/listening on/.test(tcpdumpLog)) {
    if (tcpdump.exitCode !== null) assert.fail(`tcpdump exited (${tcpdump.exitCode}): ${tcpdumpLog}`);
    if (Date.now() > deadline) assert.fail(`tcpdump did not start listening: ${tcpdumpLog}`);
    await sleep(50);
  }
}

/** UDP/IPv4 datagrams of the capture: { t (ms), src, sport, dst, dport, data }. */
function readCapture() {
  if (!existsSync(PCAP)) return [];
  const buf = readFileSync(PCAP);
  if (buf.length < 24) return [];
  const MICRO = 0xa1b2c3d4;
  const NANO = 0xa1b23c4d;
  const le = [MICRO, NANO].includes(buf.readUInt32LE(0));
  if (!le && ![MICRO, NANO].includes(buf.readUInt32BE(0))) throw new Error(`${PCAP}: not a pcap file`);
  const u32 = (o) => (le ? buf.readUInt32LE(o) : buf.readUInt32BE(o));
  const nanos = u32(0) === NANO;
  const linktype = u32(20) & 0xffff;
  const out = [];
  let off = 24;
  while (off + 16 <= buf.length) {
    const sec = u32(off);
    const frac = u32(off + 4);
    const incl = u32(off + 8);
    if (off + 16 + incl > buf.length) break; // a record still being written
    const frame = buf.subarray(off + 16, off + 16 + incl);
    off += 16 + incl;
    let ip;
    if (linktype === 1 && frame.length >= 14 && frame.readUInt16BE(12) === 0x0800) ip = frame.subarray(14);
    else if (linktype === 113 && frame.length >= 16 && frame.readUInt16BE(14) === 0x0800) ip = frame.subarray(16);
    else if (linktype === 276 && frame.length >= 20 && frame.readUInt16BE(0) === 0x0800) ip = frame.subarray(20);
    else if (linktype === 0 && frame.length >= 4) ip = frame.subarray(4);
    else if (linktype === 101 || linktype === 12) ip = frame;
    if (!ip || ip.length < 28 || ip[0] >> 4 !== 4 || ip[9] !== 17) continue;
    const udp = ip.subarray((ip[0] & 0x0f) * 4);
    if (udp.length < 8) continue;
    out.push({
      t: sec * 1000 + (nanos ? frac / 1e6 : frac / 1e3),
      src: `${ip[12]}.${ip[13]}.${ip[14]}.${ip[15]}`,
      dst: `${ip[16]}.${ip[17]}.${ip[18]}.${ip[19]}`,
      sport: udp.readUInt16BE(0),
      dport: udp.readUInt16BE(2),
      data: udp.subarray(8),
    });
  }
  return out;
}

/** Whether a datagram is RTP (version 2, not RTCP). */
function isRtp(data) {
  if (data.length < 12 || data[0] >> 6 !== 2) return false;
  const pt = data[1] & 0x7f;
  return !(pt >= 72 && pt <= 76);
}

const inRelayRange = (port) => port >= PORT_MIN && port <= PORT_MAX;

/** RTP datagrams of the capture matching `f` between two times (ms). */
const rtpPackets = (f, since, until) => readCapture().filter((p) => p.t >= since && p.t <= until && isRtp(p.data) && f(p));

// ---------------------------------------------------------------------------
// sipp as the trunk

/** Starts sipp in the background: { done (resolves with its exit), kill() }. */
function startSipp(args, deadlineMs) {
  const child = spawn('sipp', ['-nostdin', ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  let timedOut = false;
  child.stdout.on('data', (d) => (stdout = (stdout + d).slice(-20_000)));
  child.stderr.on('data', (d) => (stderr = (stderr + d).slice(-20_000)));
  const timer = setTimeout(() => {
    timedOut = true;
    child.kill('SIGKILL');
  }, deadlineMs);
  const done = new Promise((resolve) => {
    child.on('error', (err) => {
      clearTimeout(timer);
      resolve({ code: -1, stdout, stderr: `${stderr}${err}`, timedOut });
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr, timedOut });
    });
  });
  const kill = async () => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    return done;
  };
  return { done, kill };
}

// ---------------------------------------------------------------------------
// The softphone page

async function phoneState() {
  return phone.page.evaluate(() => ({
    reg: document.getElementById('state').dataset.state,
    regText: document.getElementById('state').textContent,
    call: document.getElementById('call-state').dataset.state,
    callText: document.getElementById('call-state').textContent,
    error: document.getElementById('login-error').textContent,
  }));
}

/** Audio RTP counters of the page's current call (getStats). */
function phoneStats() {
  return phone.page.evaluate(async () => {
    const pc = window.softphone.session?.connection;
    if (!pc) return null;
    const out = { inbound: 0, outbound: 0, energy: 0, ice: pc.iceConnectionState };
    (await pc.getStats()).forEach((s) => {
      if (s.type === 'inbound-rtp' && s.kind === 'audio') {
        out.inbound += s.packetsReceived ?? 0;
        out.energy += s.totalAudioEnergy ?? 0;
      }
      if (s.type === 'outbound-rtp' && s.kind === 'audio') out.outbound += s.packetsSent ?? 0;
    });
    return out;
  });
}

async function waitPhone(selector, timeout, what) {
  try {
    await phone.page.waitForSelector(selector, { timeout, state: 'attached' });
  } catch {
    assert.fail(`${what}: the softphone did not reach ${selector} within ${timeout} ms: ${JSON.stringify(await phoneState())}; console log ${phone.logFile}`);
  }
}

// ---------------------------------------------------------------------------

before(async () => {
  await startCapture();
  browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: CHROMIUM_ARGS, timeout: 30_000 });
  admin = await newPage('admin');
  console.log(`# chromium ${browser.version()}; screenshots in ${SCREENSHOTS}; artifacts in ${ARTIFACTS}`);
});

after(async () => {
  if (phone) {
    await phone.page.evaluate(() => window.softphone?.unregister()).catch(() => {});
    await sleep(300);
  }
  await browser?.close().catch(() => {});
  await state.sipp?.kill().catch(() => {});
  tcpdump?.kill('SIGINT');
});

test('1. login: no session leads to /login, a wrong password is refused, the one-time password logs in', { timeout: 60_000 }, async () => {
  const { page, context } = admin;
  assert.ok(DATA_DIR, 'E2E_DATA_DIR not set: run through tests/e2e/admin.sh');
  const file = join(DATA_DIR, 'admin-password.txt');
  assert.ok(existsSync(file), `${file} does not exist after the first start`);
  const password = readFileSync(file, 'utf8').trim();
  if (env.E2E_SERVER_LOG) {
    const printed = /admin UI password \(change it at first login\): (\S+)/.exec(readFileSync(env.E2E_SERVER_LOG, 'utf8'))?.[1];
    assert.equal(printed, password, 'the password printed at first start differs from admin-password.txt');
  }

  const start = await goto(page, '/dashboard');
  assert.equal(start.path, '/login', `/dashboard without a session should lead to /login, got ${start.path}`);
  await screenshot(page, 'login');

  await page.fill('#username', 'admin');
  await page.fill('#password', `${password}-wrong`);
  const wrong = await submit(page, 'form[action="/login"] button[type=submit]');
  assert.equal(wrong.status, 401, `a wrong password: POST /login answered ${wrong.status}`);
  assert.equal(wrong.path, '/login');
  assert.match(await page.textContent('.error-box'), /Wrong user name or password/);
  assert.ok(!(await context.cookies()).some((c) => c.name === '__Host-cg_session' && c.value), 'a session cookie after a wrong password');
  await screenshot(page, 'login-wrong-password');

  await page.fill('#username', 'admin');
  await page.fill('#password', password);
  const ok = await submit(page, 'form[action="/login"] button[type=submit]');
  assert.equal(ok.status, 303, `login: POST /login answered ${ok.status}`);
  assert.equal(ok.path, '/password', 'the first login must lead to the forced password change');
  const cookie = (await context.cookies()).find((c) => c.name === '__Host-cg_session');
  assert.ok(cookie?.value, 'no __Host-cg_session cookie after the login');
  assert.equal(cookie.secure, true, 'session cookie not Secure');
  assert.equal(cookie.httpOnly, true, 'session cookie not HttpOnly');
  assert.equal(cookie.sameSite, 'Strict', 'session cookie not SameSite=Strict');
  assert.equal(cookie.path, '/', 'session cookie path');
  state.oneTimePassword = password;
});

test('2. the forced password change; then admin-password.txt is gone', { timeout: 30_000 }, async () => {
  const { page } = admin;
  assert.ok(state.oneTimePassword, 'needs the login (test 1)');
  // Any other page leads back here until the password is changed.
  assert.equal((await goto(page, '/users')).path, '/password', 'pages are reachable before the forced change');
  assert.match(await bodyText(page), /must be replaced before you continue/);
  await screenshot(page, 'password-change');
  await page.fill('#current', state.oneTimePassword);
  await page.fill('#new', NEW_ADMIN_PASSWORD);
  await page.fill('#confirm', NEW_ADMIN_PASSWORD);
  const r = await submit(page, 'form[action="/password"] button[type=submit]');
  assert.equal(r.status, 303, `POST /password answered ${r.status}: ${await bodyText(page)}`);
  assert.match(r.path, /^\/wizard/, `after the change: ${r.path}, expected the first-run wizard`);
  const file = join(DATA_DIR, 'admin-password.txt');
  const deadline = Date.now() + 5_000;
  while (existsSync(file) && Date.now() < deadline) await sleep(200);
  assert.ok(!existsSync(file), `${file} still exists 5 s after the password was changed`);
  state.passwordChanged = true;
});

/** Creates the trunk on the Trunks page (New trunk -> form -> its edit page). */
async function createTrunkOnTrunksPage(page) {
  await goto(page, '/trunks');
  await screenshot(page, 'trunks-empty');
  let r = await submit(page, 'a[href="/trunks/new"]');
  assert.equal(r.path, '/trunks/new', `"New trunk" on the Trunks page led to ${r.path}`);
  await screenshot(page, 'trunk-new');
  const form = 'form[action="/trunks/new"]';
  await page.fill(`${form} #name`, TRUNK.name);
  await page.fill(`${form} #host`, TRUNK.ip);
  await page.fill(`${form} #port`, String(TRUNK.port));
  await page.selectOption(`${form} #transport`, 'udp');
  await page.fill(`${form} #username`, '');
  await page.uncheck(`${form} input[name="register"]`);
  await page.fill(`${form} #dial_patterns`, TRUNK.pattern);
  await page.check(`${form} input[name="enabled"]`);
  r = await submit(page, `${form} button[type=submit]`);
  assert.equal(r.status, 303, `POST /trunks/new answered ${r.status}: ${await bodyText(page)}`);
  assert.match((await flash(page)) ?? '', new RegExp(`Trunk ${TRUNK.name} created`), `after creating the trunk: ${r.path}`);
  await goto(page, '/trunks');
  const row = page.locator('table.grid tbody tr', { hasText: TRUNK.name });
  assert.equal(await row.count(), 1, `the Trunks page does not list ${TRUNK.name}:\n${await bodyText(page)}`);
  const cells = await row.locator('td').allInnerTexts();
  // Trunk, Address, Transport, Account, Registration, Calls, Dial patterns, DIDs, Status
  assert.equal(cells[1], `${TRUNK.ip}:${TRUNK.port}`, `trunk address: ${JSON.stringify(cells)}`);
  assert.match(cells[2], /udp/i, `trunk transport: ${JSON.stringify(cells)}`);
  assert.equal(cells[6].trim(), TRUNK.pattern, `dial patterns: ${JSON.stringify(cells)}`);
  assert.match(cells[8], /Enabled/, `trunk status: ${JSON.stringify(cells)}`);
  await screenshot(page, 'trunks');
}

/** Fills and sends the wizard's trunk step. */
async function wizardTrunk(page) {
  await page.fill('form[action="/wizard/trunk"] #name', TRUNK.name);
  await page.fill('form[action="/wizard/trunk"] #host', TRUNK.ip);
  await page.fill('form[action="/wizard/trunk"] #port', String(TRUNK.port));
  await page.selectOption('form[action="/wizard/trunk"] #transport', 'udp');
  await page.fill('form[action="/wizard/trunk"] #username', '');
  await page.uncheck('form[action="/wizard/trunk"] input[name="register"]');
  await page.fill('form[action="/wizard/trunk"] #dial_patterns', TRUNK.pattern);
  return submit(page, 'form[action="/wizard/trunk"] button[type=submit]');
}

test('3. first-run wizard (domain and address, certificate, user, finish) and the trunk: Trunks page, or the wizard step without one', { timeout: 60_000 }, async () => {
  const { page, context } = admin;
  assert.ok(state.passwordChanged, 'needs the password change (test 2)');
  // Until the wizard is finished every page leads to it.
  assert.match((await goto(page, '/dashboard')).path, /^\/wizard/, 'the dashboard is reachable before the wizard is finished');
  // Whether the gateway has a Trunks page: an existing protected route
  // redirects to the wizard now, a missing one is 404.
  const probe = await context.request.get(`${BASE}/trunks`, { maxRedirects: 0 });
  state.trunksPage = probe.status() !== 404;
  console.log(`# GET /trunks during the wizard: ${probe.status()} (${state.trunksPage ? 'Trunks page present' : 'no Trunks page: the trunk is created by the wizard'})`);

  await goto(page, '/wizard?step=network');
  await screenshot(page, 'wizard-network');
  assert.equal(await page.inputValue('#sip_domain'), DOMAIN, 'the wizard does not show the configured SIP domain');
  await page.fill('#advertised_address', '127.0.0.1');
  let r = await submit(page, 'form[action="/wizard/network"] button[type=submit]');
  assert.equal(r.status, 303, `network step: ${r.status} ${await bodyText(page)}`);
  assert.equal(r.path, '/wizard?step=certificate');
  assert.match((await flash(page)) ?? '', /Saved/);
  await screenshot(page, 'wizard-certificate');
  assert.match(await bodyText(page), /Currently:/, 'the certificate step does not show the current certificate');

  r = await submit(page, 'form[action="/wizard/certificate"] a[href="/wizard?step=trunk"]');
  assert.equal(r.path, '/wizard?step=trunk');
  await screenshot(page, 'wizard-trunk');
  if (state.trunksPage) {
    r = await submit(page, 'form[action="/wizard/trunk"] a[href="/wizard?step=user"]');
  } else {
    r = await wizardTrunk(page);
    assert.equal(r.status, 303, `trunk step: POST answered ${r.status}: ${await bodyText(page)}`);
    assert.match((await flash(page)) ?? '', new RegExp(`Trunk ${TRUNK.name} created`));
    state.trunkVia = 'the wizard';
  }
  assert.equal(r.path, '/wizard?step=user');
  await screenshot(page, 'wizard-user');

  await page.fill('form[action="/wizard/user"] #username', USER.name);
  await page.fill('form[action="/wizard/user"] #password', USER.password);
  await page.fill('form[action="/wizard/user"] #extension', USER.extension);
  await page.fill('form[action="/wizard/user"] #display_name', USER.display);
  r = await submit(page, 'form[action="/wizard/user"] button[type=submit]');
  assert.equal(r.status, 303, `user step: POST answered ${r.status}: ${await bodyText(page)}`);
  assert.equal(r.path, '/wizard?step=done');
  assert.match((await flash(page)) ?? '', new RegExp(`User ${USER.name} created`));
  await screenshot(page, 'wizard-finish');

  r = await submit(page, 'form[action="/wizard/finish"] button[type=submit]');
  assert.equal(r.status, 303, `finish: POST answered ${r.status}`);
  assert.equal(r.path, '/dashboard');
  assert.match((await flash(page)) ?? '', /Setup finished/);
  await screenshot(page, 'dashboard');
  assert.equal((await goto(page, '/users')).path, '/users', 'after the wizard the pages are reachable');

  if (state.trunksPage) {
    await createTrunkOnTrunksPage(page);
    state.trunkVia = 'the Trunks page';
  }
  console.log(`# trunk ${TRUNK.name} created through ${state.trunkVia}`);
  state.wizardDone = true;
});

test('4. Users page: a display name with markup is shown as text, nothing injected', { timeout: 30_000 }, async () => {
  const { page } = admin;
  assert.ok(state.wizardDone, 'needs the wizard (test 3)');
  await goto(page, '/users');
  assert.ok((await bodyText(page)).includes(USER.name), 'the wizard user is not listed');
  await goto(page, '/users/new');
  await screenshot(page, 'user-new');
  await page.fill('#username', XSS_USER.name);
  await page.fill('#password', XSS_USER.password);
  await page.fill('#display_name', XSS);
  const r = await submit(page, 'form[action="/users/new"] button[type=submit]');
  assert.equal(r.status, 303, `POST /users/new answered ${r.status}: ${await bodyText(page)}`);
  assert.equal(await page.inputValue('#display_name'), XSS, 'the edit form does not show the display name as typed');

  await goto(page, '/users');
  await screenshot(page, 'users');
  const cells = await page.$$eval('table.grid td', (tds) => tds.map((td) => td.textContent));
  assert.ok(cells.includes(XSS), `no cell shows the display name as literal text; cells: ${JSON.stringify(cells)}`);
  const dom = await page.evaluate(() => ({
    inlineScripts: document.querySelectorAll('script:not([src])').length,
    scripts: [...document.scripts].map((s) => s.getAttribute('src')),
    injectedImg: document.querySelectorAll('img[src="x"]').length,
    inTable: document.querySelectorAll('table script, table img').length,
  }));
  assert.equal(dom.inlineScripts, 0, `an inline <script> element exists: ${JSON.stringify(dom)}`);
  assert.equal(dom.injectedImg + dom.inTable, 0, `markup from the display name became elements: ${JSON.stringify(dom)}`);
  const raw = await (await admin.context.request.get(`${BASE}/users`)).text();
  assert.ok(!raw.includes('<script>alert(1)'), 'the raw HTML of /users contains the <script> unescaped');
  assert.ok(!raw.includes('<img src=x'), 'the raw HTML of /users contains the <img> unescaped');
  // Escaped as named or numeric character references, as the template engine chooses.
  const lt = '(?:&lt;|&#60;|&#x0*3c;)';
  const gt = '(?:&gt;|&#62;|&#x0*3e;)';
  const sl = '(?:/|&#47;|&#x0*2f;)';
  const at = raw.indexOf('alert(1)');
  assert.match(
    raw,
    new RegExp(`${lt}script${gt}alert\\(1\\)${lt}${sl}script${gt}${lt}img src=x onerror=alert\\(2\\)${gt}`, 'i'),
    `the raw HTML of /users does not contain the display name escaped: ${raw.slice(Math.max(0, at - 60), at + 80)}`,
  );
  await sleep(300);
  assert.deepEqual(dialogs, [], `a dialog opened: ${dialogs.join('; ')}`);
});

test('5. CSRF: form posts without the session token are refused (403) and change nothing', { timeout: 30_000 }, async () => {
  const { page } = admin;
  assert.ok(state.wizardDone, 'needs a logged-in session (test 3)');
  await goto(page, '/users');
  const fields = { username: 'csrf-probe', password: 'csrf-secret-1', display_name: 'csrf' };
  const none = await pagePost(page, '/users/new', fields);
  assert.equal(none.status, 403, `POST /users/new without csrf: ${none.status} ${none.text.slice(0, 200)}`);
  assert.match(none.text, /Form refused/);
  const wrong = await pagePost(page, '/users/new', { ...fields, csrf: '0'.repeat(64) });
  assert.equal(wrong.status, 403, `POST /users/new with a wrong csrf: ${wrong.status}`);
  const multipart = await pagePost(page, '/wizard/certificate', { cert_pem: 'x', key_pem: 'y' }, { multipart: true });
  assert.equal(multipart.status, 403, `multipart POST /wizard/certificate without csrf: ${multipart.status}`);
  const hangup = await pagePost(page, '/calls/hangup', { call_id: 'nothing' });
  assert.equal(hangup.status, 403, `POST /calls/hangup without csrf: ${hangup.status}`);
  // The page's own token is accepted (the control case): the form works.
  const token = await page.inputValue('input[name="csrf"]');
  const control = await pagePost(page, '/users/disable', { csrf: token, username: 'no-such-user' });
  assert.notEqual(control.status, 403, 'a post with the page token was refused');
  await goto(page, '/users?q=csrf-probe');
  assert.match(await bodyText(page), /No user matches/, 'a refused post created the user');
});

test('6. /metrics parses as Prometheus text format', { timeout: 15_000 }, async () => {
  const m = await scrape();
  assert.match(m.contentType ?? '', /^text\/plain; version=0\.0\.4/, `content-type ${m.contentType}`);
  for (const family of ['callgate_calls', 'callgate_sip_registrations', 'callgate_media_packets_total', 'callgate_build_info']) {
    assert.ok(m.expo.types.has(family), `no # TYPE ${family}`);
  }
  assert.equal(m.expo.types.get('callgate_media_packets_total'), 'counter');
  assert.equal(m.expo.types.get('callgate_calls'), 'gauge');
  console.log(`# /metrics: ${m.expo.types.size} families, ${m.expo.samples.length} samples`);
  state.metricsOk = true;
});

test('7. the wizard user registers on /phone, calls the trunk (audio both ways), the call is hung up from the Calls page', { timeout: 90_000 }, async () => {
  assert.ok(state.wizardDone && state.trunkVia, 'needs the user and the trunk (test 3)');
  assert.ok(sippAvailable(), 'sipp is not installed (apt-get install sip-tester)');
  const trace = join(ARTIFACTS, 'sipp-trunk.log');
  const sipp = startSipp(
    [
      '-sf', join(SCENARIOS, 'trunk_uas.xml'),
      '-t', 'u1', '-i', TRUNK.ip, '-p', String(TRUNK.port), '-mp', String(TRUNK.mediaPort), '-m', '1',
      '-rtp_echo', '-timeout', '60s', '-timeout_error',
      '-trace_msg', '-message_file', trace,
    ],
    70_000,
  );
  state.sipp = sipp;
  const early = await Promise.race([sipp.done, sleep(700).then(() => null)]);
  if (early) assert.fail(`sipp trunk exited at start: ${early.code}\n${early.stderr}\n${summarizeSippOutput(early.stdout)}`);

  phone = await newPage('softphone');
  const pageResp = await phone.page.goto(`${BASE}/phone`, { timeout: T_NAV });
  assert.equal(pageResp?.status(), 200, `GET /phone: ${pageResp?.status()}`);
  await phone.page.waitForFunction(() => window.softphone && window.JsSIP, null, { timeout: T_NAV });
  await screenshot(phone.page, 'softphone');
  await phone.page.fill('#user', USER.name);
  await phone.page.fill('#password', USER.password);
  await phone.page.click('#register');
  await waitPhone('#state[data-state="registered"]', T_REGISTER, `${USER.name} registers`);
  await screenshot(phone.page, 'softphone-registered');

  const { page } = admin;
  await goto(page, '/registrations');
  await screenshot(page, 'registrations');
  const regs = await bodyText(page);
  assert.ok(regs.includes(`sip:${USER.name}@${DOMAIN}`), `the Registrations page does not list ${USER.name}:\n${regs}`);
  assert.match(regs, /WSS/i, 'the registration is not shown as WSS');

  const before = await scrape();
  await phone.page.fill('#number', DIALLED);
  await phone.page.click('#call');
  await waitPhone('#call-state[data-state="active"]', T_CALL_SETUP, `${USER.name} calls ${DIALLED}`);

  // Media: the page's inbound audio grows, and RTP reaches the trunk.
  const deadline = Date.now() + 10_000;
  let first = await phoneStats();
  while (!(first?.inbound > 0) && Date.now() < deadline) {
    await sleep(250);
    first = await phoneStats();
  }
  const t1 = Date.now();
  await sleep(MEDIA_WINDOW_MS);
  const second = await phoneStats();
  const t2 = Date.now();
  await sleep(300); // tcpdump -U: let the file catch up
  const toTrunk = rtpPackets((p) => p.dst === TRUNK.ip && p.dport === TRUNK.mediaPort && inRelayRange(p.sport), t1, t2);
  const fromTrunk = rtpPackets((p) => p.src === TRUNK.ip && p.sport === TRUNK.mediaPort && inRelayRange(p.dport), t1, t2);
  console.log(
    `# softphone audio in ${first?.inbound} -> ${second?.inbound} (energy ${first?.energy?.toFixed(4)} -> ${second?.energy?.toFixed(4)}), ` +
      `out ${first?.outbound} -> ${second?.outbound}; at the trunk in ${MEDIA_WINDOW_MS} ms: ${toTrunk.length} RTP received, ${fromTrunk.length} sent`,
  );
  assert.ok(first && second, `no peer connection on window.softphone.session: ${JSON.stringify(await phoneState())}`);
  assert.ok(first.inbound > 0 && second.inbound > first.inbound, `the softphone's inbound audio did not grow: ${first.inbound} -> ${second.inbound} (ICE ${second.ice})`);
  assert.ok(second.outbound > first.outbound, `the softphone's outbound audio did not grow: ${first.outbound} -> ${second.outbound}`);
  const min = Math.floor(MEDIA_WINDOW_MS / 20 / 3);
  assert.ok(toTrunk.length >= min, `the trunk received ${toTrunk.length} RTP packets from the relay in ${MEDIA_WINDOW_MS} ms (want >= ${min}); capture ${PCAP}`);
  assert.ok(fromTrunk.length >= min, `the trunk echoed ${fromTrunk.length} RTP packets to the relay (want >= ${min})`);

  // Metrics move during the call.
  const during = await scrape();
  const delta = (name, match) => total(during.expo, name, match) - total(before.expo, name, match);
  const invitesIn = delta('callgate_sip_messages_total', { kind: 'INVITE', direction: 'in' });
  const invitesOut = delta('callgate_sip_messages_total', { kind: 'INVITE', direction: 'out' });
  const pktIn = delta('callgate_media_packets_total', { direction: 'in' });
  const pktOut = delta('callgate_media_packets_total', { direction: 'out' });
  console.log(
    `# metrics during the call: INVITE in +${invitesIn}, out +${invitesOut}; media packets in +${pktIn}, out +${pktOut}; ` +
      `calls ${total(during.expo, 'callgate_calls')}, media sessions ${total(during.expo, 'callgate_media_sessions')}`,
  );
  assert.ok(invitesIn >= 1, `callgate_sip_messages_total{kind="INVITE",direction="in"} did not grow (+${invitesIn})`);
  assert.ok(invitesOut >= 1, `callgate_sip_messages_total{kind="INVITE",direction="out"} did not grow (+${invitesOut})`);
  assert.ok(pktIn > 50 && pktOut > 50, `callgate_media_packets_total did not grow enough: in +${pktIn}, out +${pktOut}`);
  assert.equal(total(during.expo, 'callgate_calls'), 1, 'callgate_calls during the call');
  assert.equal(total(during.expo, 'callgate_trunk_active_calls', { trunk: TRUNK.name }), 1, `callgate_trunk_active_calls{trunk="${TRUNK.name}"}`);

  // The Calls page lists the call; its Hang up button ends it.
  await goto(page, '/calls');
  const row = page.locator('table.grid tbody tr', { hasText: DIALLED });
  assert.equal(await row.count(), 1, `the Calls page does not list one call to ${DIALLED}:\n${await bodyText(page)}`);
  const rowText = await row.innerText();
  assert.ok(rowText.includes(TRUNK.name), `the call's row does not name the trunk: ${rowText}`);
  assert.match(rowText, /outbound/i, `the call's row: ${rowText}`);
  await screenshot(page, 'calls');
  const [resp] = await Promise.all([
    page.waitForResponse((r) => r.url().endsWith('/calls/hangup') && r.request().method() === 'POST', { timeout: T_NAV }),
    row.locator('button', { hasText: 'Hang up' }).click(),
  ]);
  assert.equal(resp.status(), 303, `POST /calls/hangup answered ${resp.status()}`);
  await page.waitForSelector('p.flash', { timeout: T_NAV });
  assert.equal(await flash(page), 'Call hung up.');

  await waitPhone('#call-state[data-state="ended"]', T_END, 'the softphone sees the call end');
  const ended = await phoneState();
  assert.match(ended.callText, /other party hung up/i, `the softphone's end state: ${JSON.stringify(ended)}`);
  await screenshot(phone.page, 'softphone-ended');
  const r = await sipp.done;
  assert.equal(
    r.code,
    0,
    `the sipp trunk did not complete (exit ${r.code}${r.timedOut ? ', killed at the deadline' : ''}): no BYE, or not answered\n${summarizeSippOutput(`${r.stdout}\n${r.stderr}`)}\n  trace ${trace}`,
  );
  const msgs = readSippMessages(trace);
  assert.ok(msgs.some((m) => m.dir === 'received' && /^BYE /.test(m.text)), `the trunk got no BYE (trace ${trace})`);

  await goto(page, '/calls');
  assert.match(await bodyText(page), /No active calls/, 'the call is still listed after the hang-up');
  state.callDone = true;
});

test('8. call history: the CDR of the call, answered, with the trunk; also in the CSV export', { timeout: 30_000 }, async () => {
  assert.ok(state.callDone, 'needs the call (test 7)');
  const { page } = admin;
  let row;
  const deadline = Date.now() + 5_000;
  for (;;) {
    await goto(page, '/calls/history');
    row = page.locator('table.grid tbody tr', { hasText: DIALLED });
    if ((await row.count()) > 0 || Date.now() > deadline) break;
    await sleep(500);
  }
  await screenshot(page, 'history');
  assert.equal(await row.count(), 1, `the history does not list one call to ${DIALLED}:\n${await bodyText(page)}`);
  const cells = await row.locator('td').allInnerTexts();
  // Started, Caller, Callee, Direction, Result, Duration, Trunk, legs
  assert.equal(cells[2], DIALLED, `callee: ${JSON.stringify(cells)}`);
  assert.equal(cells[3], 'outbound', `direction: ${JSON.stringify(cells)}`);
  assert.equal(cells[4], 'answered', `result: ${JSON.stringify(cells)}`);
  assert.equal(cells[6], TRUNK.name, `trunk: ${JSON.stringify(cells)}`);
  assert.ok(cells[1].includes(USER.name) || cells[1].includes(USER.extension), `caller: ${JSON.stringify(cells)}`);

  const csv = await page.evaluate(async () => {
    const r = await fetch('/calls/cdrs.csv');
    return { status: r.status, type: r.headers.get('content-type'), text: await r.text() };
  });
  assert.equal(csv.status, 200, `GET /calls/cdrs.csv: ${csv.status}`);
  const rows = parseCsv(csv.text);
  const cdr = rows.find((x) => x.callee === DIALLED);
  assert.ok(cdr, `the CSV export has no row for ${DIALLED}:\n${csv.text}`);
  assert.equal(cdr.disposition, 'answered');
  assert.equal(cdr.trunk, TRUNK.name);
  assert.equal(cdr.caller_user, USER.name);
});

test('9. audit log: the changes made through the UI', { timeout: 15_000 }, async () => {
  assert.ok(state.wizardDone, 'needs the wizard (test 3)');
  const { page } = admin;
  await goto(page, '/audit');
  await screenshot(page, 'audit');
  const text = await bodyText(page);
  const expected = ['login', 'admin.password', 'settings.network', 'trunk.create', 'user.create', 'wizard.finish'];
  if (state.callDone) expected.push('call.hangup');
  const missing = expected.filter((a) => !new RegExp(`(^|\\s)${a.replace('.', '\\.')}(\\s|$)`, 'm').test(text));
  assert.deepEqual(missing, [], `audit actions missing: ${missing.join(', ')}\n${text}`);
  assert.ok(text.includes(`created user ${XSS_USER.name}`), 'the Users page creation is not audited');
});

/** /readyz from the health listener: { status, body }. */
async function readyz() {
  const r = await fetch(`${HEALTH}/readyz`);
  const text = await r.text();
  let body;
  try {
    body = JSON.parse(text);
  } catch {
    assert.fail(`/readyz is not JSON: ${r.status} ${text}`);
  }
  return { status: r.status, body };
}

const storeCheck = (body) => body.checks?.find((c) => c.name === 'store');

test('10. /healthz; /readyz turns 503 naming the store while the database cannot be written, 200 again after', { timeout: 60_000 }, async () => {
  assert.ok(DATA_DIR, 'E2E_DATA_DIR not set: run through tests/e2e/admin.sh');
  const h = await fetch(`${HEALTH}/healthz`);
  assert.equal(h.status, 200);
  assert.equal((await h.text()).trim(), 'ok');

  // The softphone's re-registrations would fail too: log it out first.
  if (phone) {
    await phone.page.evaluate(() => window.softphone.unregister()).catch(() => {});
    await sleep(500);
  }
  let r = await readyz();
  assert.equal(r.status, 200, `/readyz before: ${r.status} ${JSON.stringify(r.body)}`);
  assert.equal(r.body.ready, true);
  assert.equal(storeCheck(r.body)?.ok, true, `store check before: ${JSON.stringify(r.body)}`);

  // SQLite's mapped -shm file stays writable (see admin.sh).
  const files = ['callgate.db', 'callgate.db-wal'].map((f) => join(DATA_DIR, f)).filter((f) => existsSync(f));
  const chattr = (flag) => {
    const c = spawnSync('chattr', [flag, ...files], { encoding: 'utf8' });
    assert.equal(c.status, 0, `chattr ${flag} ${files.join(' ')}: ${c.stderr}`);
  };
  chattr('+i');
  let notReadyAfter;
  try {
    const t0 = Date.now();
    for (;;) {
      r = await readyz();
      if (r.status === 503 || Date.now() - t0 > 10_000) break;
      await sleep(250);
    }
    notReadyAfter = Date.now() - t0;
    console.log(`# /readyz with the store immutable after ${notReadyAfter} ms: ${r.status} ${JSON.stringify(storeCheck(r.body))}`);
    assert.equal(r.status, 503, `/readyz stayed ${r.status} for 10 s with the database immutable: ${JSON.stringify(r.body)}`);
    assert.equal(r.body.ready, false);
    const failing = r.body.checks.filter((c) => !c.ok);
    const store = failing.find((c) => c.name === 'store');
    assert.ok(store, `the store check is not failing: ${JSON.stringify(r.body)}`);
    assert.match(store.reason ?? '', /test write failed/, `store check reason: ${JSON.stringify(store)}`);
    const others = failing.filter((c) => c !== store);
    if (others.length) console.log(`# other failing checks meanwhile: ${JSON.stringify(others)}`);
    // The dashboard says so too.
    await goto(admin.page, '/dashboard');
    await screenshot(admin.page, 'dashboard-store-failing');
    const storeRow = await admin.page.locator('table.grid tr', { hasText: 'SQLite' }).innerText();
    assert.match(storeRow, /Failing/, `the dashboard's store row: ${storeRow}`);
  } finally {
    chattr('-i');
  }
  const t0 = Date.now();
  for (;;) {
    r = await readyz();
    if (r.status === 200 || Date.now() - t0 > 10_000) break;
    await sleep(250);
  }
  console.log(`# /readyz after restoring: ${r.status} after ${Date.now() - t0} ms`);
  assert.equal(r.status, 200, `/readyz did not recover within 10 s: ${JSON.stringify(r.body)}`);
  assert.equal(storeCheck(r.body)?.ok, true);
  // And the store takes writes through the UI again.
  await goto(admin.page, '/users/new');
  await admin.page.fill('#username', 'after-readonly');
  await admin.page.fill('#password', 'after-secret-1');
  const created = await submit(admin.page, 'form[action="/users/new"] button[type=submit]');
  assert.equal(created.status, 303, `creating a user after the store recovered: ${created.status} ${await bodyText(admin.page)}`);
});

test('11. the remaining admin pages (Trunks, Certificates, Settings, SIP trace) when present', { timeout: 30_000 }, async () => {
  assert.ok(state.wizardDone, 'needs a logged-in session (test 3)');
  const { page } = admin;
  const seen = [];
  for (const [p, name] of [
    ['/trunks', 'trunks'],
    ['/certificates', 'certificates'],
    ['/settings', 'settings'],
    ['/sip-trace', 'sip-trace'],
  ]) {
    // Chromium refuses to show an empty 404 body, so ask first.
    const status = (await admin.context.request.get(`${BASE}${p}`, { maxRedirects: 0 })).status();
    if (status === 404) {
      seen.push(`${p}: not present`);
      continue;
    }
    const r = await goto(page, p);
    assert.equal(r.status, 200, `GET ${p}: ${status}, then ${r.status} at ${r.path}`);
    await screenshot(page, name);
    seen.push(`${p}: 200`);
  }
  console.log(`# ${seen.join(', ')}`);
  await goto(page, '/dashboard');
  await screenshot(page, 'dashboard-end');
  assert.deepEqual(dialogs, [], `a dialog opened: ${dialogs.join('; ')}`);
});
