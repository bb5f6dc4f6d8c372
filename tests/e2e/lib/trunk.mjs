// End-to-end tests of SIP trunking: callgate (relay on) between Chromium +
// JsSIP phones and a PSTN trunk played by sipp on its own loopback address.
//
//   1. browser -> PSTN: number normalised, caller ID, plain RTP to the trunk,
//      audio both ways; trunk without auth, with 407 (Proxy-Authorization,
//      digest checked here) and with 401 (Authorization, sipp verifyauth);
//      the BYE completes
//   2. PSTN -> browser: a DID call from the trunk's address rings the user,
//      audio both ways, the trunk hangs up; one from an inbound_trust
//      address rings too
//   3. browser <-> browser through the relay with audio and video, bundle
//      policies max-bundle and balanced
//   4. RFC 4733 DTMF from the browser reaches the trunk with the trunk's
//      telephone-event payload type
//   5. hold / resume by re-INVITE toward the trunk
//   6. toll fraud: unauthenticated INVITEs for PSTN numbers from an
//      untrusted host are refused and nothing reaches the trunk
//   7. trunk registration with digest auth and refresh, state in the API
//   8. CDRs: the trunk calls with their disposition and trunk
//
// Run through tests/e2e/trunk.sh (loopback-only network namespace, the
// config it writes). What reaches the trunk on the wire is read from a
// tcpdump capture of 127.0.0.2/.3/.4 traffic (artifacts/trunk.pcap).
//
// Environment (set by trunk.sh; defaults in brackets):
//   E2E_WSS_URL [wss://127.0.0.1:7443]   E2E_DOMAIN [127.0.0.1]
//   E2E_RELAY_PORTS [41000-41999]        E2E_ADMIN [127.0.0.1:8443]
//   E2E_CONFIG, E2E_DATA_DIR, CALLGATE_BIN  the running server's
//   E2E_REGISTRAR_RC, E2E_REGISTRAR_TRACE   the registrar sipp trunk.sh started
//   E2E_ARTIFACTS [a new /tmp dir]       JsSIP, sipp traces, the capture
//   CHROMIUM [/usr/bin/chromium]

import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { appendFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { after, before, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';
import { bundleCommonJs } from './bundle.mjs';
import { SCENARIOS, headerValues, readSippMessages, runSipp, sippAvailable, startLine, summarizeSippOutput } from './sipp.mjs';

const here = dirname(fileURLToPath(import.meta.url));
const env = process.env;
const WSS_URL = env.E2E_WSS_URL ?? 'wss://127.0.0.1:7443';
const DOMAIN = env.E2E_DOMAIN ?? '127.0.0.1';
const SIP_UDP = '127.0.0.1:5060';
const [PORT_MIN, PORT_MAX] = (env.E2E_RELAY_PORTS ?? '41000-41999').split('-').map(Number);
const ADMIN = env.E2E_ADMIN ?? '127.0.0.1:8443';
const ARTIFACTS = env.E2E_ARTIFACTS ?? mkdtempSync(join(tmpdir(), 'callgate-e2e-trunk-'));
const CHROMIUM = env.CHROMIUM ?? '/usr/bin/chromium';
mkdirSync(ARTIFACTS, { recursive: true });

const PASSWORDS = { 1000: 'secret1000', 1001: 'secret1001', 1002: 'secret1002' };
// The [[trunks]] entries trunk.sh writes.
const TRUNK = {
  name: 'pstn',
  ip: '127.0.0.2',
  port: 5080,
  username: env.E2E_TRUNK_USER ?? 'gw-account',
  password: env.E2E_TRUNK_PASSWORD ?? 'trunk-secret-1',
  callerId: '+4930999000',
  fromDomain: 'gw.callgate.test',
};
const REG_TRUNK = {
  name: 'pstn-reg',
  port: 5090,
  username: env.E2E_REG_USER ?? 'reg-account',
  expiry: 300,
  granted: 600, // what the registrar grants on the refresh
};
// Dialled by the browser; the trunk's number rule "0>+49" makes it +49301234.
const DIALLED = '0301234';
const NORMALIZED = '+49301234';
const DID = '+4930777'; // [[dids]] -> user 1001
const PSTN_CALLER = '+4917612345';
const DID_UAC_PORT = 5082;
const FRAUD_IP = '127.0.0.3';
const TRUSTED_IP = '127.0.0.4'; // the trunk's inbound_trust
const REALM = 'pstn.test'; // the sipp trunk's digest realm

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
  '--autoplay-policy=no-user-gesture-required',
  '--ignore-certificate-errors',
  '--allow-loopback-in-peer-connection',
  '--disable-background-timer-throttling',
  '--disable-renderer-backgrounding',
  '--disable-backgrounding-occluded-windows',
];

// ---------------------------------------------------------------------------
// Browser phones (lib/phone.js in a page served from here)

const JSSIP_BUNDLE = bundleCommonJs(join(here, '..', '..', 'node_modules', 'jssip', 'lib', 'JsSIP.js'), 'JsSIP');
const PHONE_JS = readFileSync(join(here, 'phone.js'), 'utf8');
const PHONE_HTML = `<!doctype html>
<meta charset="utf-8">
<title>callgate e2e trunk phone</title>
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
  const phone = { user, logFile, context, eval: (fn, arg) => page.evaluate(fn, arg) };
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
const stats = (p, id) => p.eval((id) => window.phone.stats(id), id);
const sessionState = (p, id) => p.eval((id) => window.phone.sessionState(id), id);
const eventsSince = (p, since) => p.eval((s) => window.phone.events.slice(s), since);

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
    const evs = await eventsSince(p, since);
    assert.fail(`${what}: ${p.user} saw no ${types.join('/')} within ${timeoutMs} ms; events: ${JSON.stringify(evs)}; trace ${p.logFile}`);
  }
  return hit;
}

/** The relay's SDP toward a browser: ICE-lite, host candidates on relay ports only. */
function assertRelaySdp(sdp, label) {
  assert.ok(sdp, `${label}: no remote SDP`);
  assert.match(sdp, /a=ice-lite/, `${label}: remote SDP is not the relay's (no a=ice-lite):\n${sdp}`);
  const ports = [...sdp.matchAll(/a=candidate:\S+ \d+ udp \d+ \S+ (\d+) typ host/gi)].map((m) => Number(m[1]));
  assert.ok(ports.length > 0, `${label}: no host candidate in the remote SDP:\n${sdp}`);
  for (const port of ports) {
    assert.ok(port >= PORT_MIN && port <= PORT_MAX, `${label}: candidate port ${port} outside the relay range ${PORT_MIN}-${PORT_MAX}:\n${sdp}`);
  }
}

const inRelayRange = (port) => port >= PORT_MIN && port <= PORT_MAX;

// ---------------------------------------------------------------------------
// Packet capture: tcpdump on lo writes a pcap that is read back here.

const PCAP = join(ARTIFACTS, 'trunk.pcap');
let tcpdump;
let tcpdumpLog = '';

async function startCapture() {
  tcpdump = spawn(
    'tcpdump',
    ['-i', 'lo', '-n', '-U', '-s', '400', '-Z', 'root', '-w', PCAP, `udp and (host ${TRUNK.ip} or host ${FRAUD_IP} or host ${TRUSTED_IP})`],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  );
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
  // Classic pcap, either byte order, microsecond or nanosecond stamps.
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
    const ihl = (ip[0] & 0x0f) * 4;
    const udp = ip.subarray(ihl);
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

/** An RTP header (not RTCP, not STUN): { pt, marker, seq, ts, ssrc, payload }. */
function parseRtp(data) {
  if (data.length < 12 || data[0] >> 6 !== 2) return null;
  const pt = data[1] & 0x7f;
  if (pt >= 72 && pt <= 76) return null; // RTCP 200-204
  let off = 12 + 4 * (data[0] & 0x0f);
  if (data[0] & 0x10) {
    if (data.length < off + 4) return null;
    off += 4 + 4 * data.readUInt16BE(off + 2);
  }
  if (off > data.length) return null;
  return {
    pt,
    marker: !!(data[1] & 0x80),
    seq: data.readUInt16BE(2),
    ts: data.readUInt32BE(4),
    ssrc: data.readUInt32BE(8),
    payload: data.subarray(off),
  };
}

/** RTP packets in the capture matching `f(packet)` between two times (ms). */
function rtpPackets(f, since = 0, until = Infinity) {
  return readCapture()
    .filter((p) => p.t >= since && p.t <= until && f(p))
    .map((p) => ({ ...p, rtp: parseRtp(p.data) }))
    .filter((p) => p.rtp);
}

/** RTP the relay sent to the trunk's media port `port`. */
const toTrunk = (port) => (p) => p.dst === TRUNK.ip && p.dport === port && inRelayRange(p.sport);
/** RTP the trunk sent from its media port `port` to the relay. */
const fromTrunk = (port) => (p) => p.src === TRUNK.ip && p.sport === port && inRelayRange(p.dport);

const countBy = (list, key) => list.reduce((m, x) => ((m[key(x)] = (m[key(x)] ?? 0) + 1), m), {});

/** Waits for the capture file to catch up with the last few ms (tcpdump -U). */
const settleCapture = () => sleep(300);

// ---------------------------------------------------------------------------
// SIP helpers

/** A SIP message's body. */
const bodyOf = (text) => text.split(/\r?\n\r?\n/).slice(1).join('\n\n');
const cseqOf = (text) => {
  const m = /^(\d+)\s+(\S+)/.exec(headerValues(text, 'CSeq')[0] ?? '');
  return m ? { seq: Number(m[1]), method: m[2] } : null;
};
const header1 = (text, name) => headerValues(text, name).join(', ');
/** Whole header field values (not split at commas, as digest credentials must not be). */
function rawHeaders(text, name) {
  const lines = text.split(/\r?\n\r?\n/)[0].split(/\r?\n/).slice(1);
  const out = [];
  for (let i = 0; i < lines.length; i++) {
    const idx = lines[i].indexOf(':');
    if (idx < 0 || lines[i].slice(0, idx).trim().toLowerCase() !== name.toLowerCase()) continue;
    let value = lines[i].slice(idx + 1).trim();
    while (i + 1 < lines.length && /^[ \t]/.test(lines[i + 1])) value += ` ${lines[++i].trim()}`;
    out.push(value);
  }
  return out;
}
const branchOf = (text) => /branch=([^;,\s]+)/.exec(headerValues(text, 'Via')[0] ?? '')?.[1];

/** `Digest k=v, ...` parameters. */
function digestParams(value) {
  const out = {};
  for (const m of value.replace(/^\s*Digest\s+/i, '').matchAll(/([A-Za-z-]+)\s*=\s*(?:"([^"]*)"|([^,\s]+))/g)) {
    out[m[1].toLowerCase()] = m[2] ?? m[3];
  }
  return out;
}

/**
 * Checks a digest response against the challenge (RFC 2617/8760, MD5 or
 * SHA-256, with or without qop=auth) and returns the parameters.
 */
function checkDigest(value, { challenge, method, uri, username, password, label }) {
  const d = digestParams(value);
  const c = digestParams(challenge);
  assert.equal(d.username, username, `${label}: digest username`);
  assert.equal(d.realm, c.realm, `${label}: digest realm is not the challenge's`);
  assert.equal(d.nonce, c.nonce, `${label}: digest nonce is not the challenge's`);
  if (c.opaque !== undefined) assert.equal(d.opaque, c.opaque, `${label}: opaque not echoed`);
  assert.equal(d.uri, uri, `${label}: digest uri is not the Request-URI`);
  const algorithm = (d.algorithm ?? 'MD5').toUpperCase();
  assert.ok(['MD5', 'SHA-256'].includes(algorithm), `${label}: unexpected algorithm ${algorithm}`);
  const h = (s) => createHash(algorithm === 'MD5' ? 'md5' : 'sha256').update(s).digest('hex');
  const ha1 = h(`${username}:${d.realm}:${password}`);
  const ha2 = h(`${method}:${d.uri}`);
  let expected;
  if (c.qop) {
    assert.equal(d.qop, 'auth', `${label}: the challenge offered qop="${c.qop}", the answer has qop=${d.qop}`);
    assert.match(d.nc ?? '', /^[0-9a-f]{8}$/i, `${label}: nc`);
    assert.ok(d.cnonce, `${label}: no cnonce`);
    expected = h(`${ha1}:${d.nonce}:${d.nc}:${d.cnonce}:${d.qop}:${ha2}`);
  } else {
    expected = h(`${ha1}:${d.nonce}:${ha2}`);
  }
  assert.equal(d.response, expected, `${label}: the digest response does not verify with the trunk password (${value})`);
  return d;
}

// ---------------------------------------------------------------------------
// The admin API (HTTPS, self-signed) and the CLI

function apiToken() {
  return readFileSync(join(env.E2E_DATA_DIR, 'api-token'), 'utf8').trim();
}

function api(path) {
  const [host, port] = ADMIN.split(':');
  return new Promise((resolve, reject) => {
    const req = httpsRequest(
      { host, port: Number(port), path, method: 'GET', rejectUnauthorized: false, headers: { authorization: `Bearer ${apiToken()}` }, timeout: 5000 },
      (res) => {
        let body = '';
        res.on('data', (d) => (body += d));
        res.on('end', () => resolve({ status: res.statusCode, body }));
      },
    );
    req.on('timeout', () => req.destroy(new Error(`GET ${path}: timeout`)));
    req.on('error', reject);
    req.end();
  });
}

/** RFC 4180 CSV into objects keyed by the header row. */
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
// A browser call to the PSTN through the trunk (tests 1, 4, 5)

const calls = {}; // label -> the call's context, for the tests that follow

/**
 * Starts sipp in the background: { done (resolves like runSipp), kill() }.
 * A test that fails kills its sipp so the next one can bind the trunk port.
 */
function startSipp(args, { deadlineMs }) {
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
      resolve({ code: -1, signal: null, stdout, stderr: `${stderr}${err}`, timedOut });
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

/** Runs `body`; when it throws, hangs up the browsers' calls and kills the call's sipp first. */
async function cleanOnFailure(label, body) {
  try {
    return await body();
  } catch (err) {
    for (const p of phones) await p.eval(() => window.phone.hangupAll()).catch(() => {});
    await calls[label]?.sipp?.kill();
    throw err;
  }
}

/**
 * Starts the sipp trunk with `scenario`, has browser 1000 dial DIALLED and
 * waits for the call to be confirmed. The returned context's `uas` promise
 * resolves with sipp's result.
 */
async function placeTrunkCall(label, scenario, mediaPort, extraArgs = []) {
  assert.ok(sippAvailable(), 'sipp is not installed (apt-get install sip-tester)');
  const a = await phone1000();
  const trace = join(ARTIFACTS, `sipp-trunk-${label}.log`);
  const sipp = startSipp(
    [
      '-sf', join(SCENARIOS, scenario),
      '-t', 'u1', '-i', TRUNK.ip, '-p', String(TRUNK.port), '-mp', String(mediaPort), '-m', '1',
      '-rtp_echo', ...extraArgs,
      '-timeout', '60s', '-timeout_error',
      '-trace_msg', '-message_file', trace,
    ],
    { deadlineMs: 70_000 },
  );
  const uas = sipp.done;
  const ctx = { label, a, uas, sipp, trace, mediaPort, scenario };
  calls[label] = ctx;
  // sipp binds its ports; one that already exited (a scenario error) says why.
  const early = await Promise.race([uas, sleep(700).then(() => null)]);
  if (early) assert.fail(`sipp trunk (${scenario}) exited at start: ${early.code}\n${early.stderr}\n${summarizeSippOutput(early.stdout)}`);
  const since = await cursor(a);
  const id = await a.eval(({ target, opts }) => window.phone.call(target, opts), {
    target: DIALLED,
    opts: { video: false, bundlePolicy: 'max-bundle' },
  });
  ctx.id = id;
  const e = await expectEvent(a, ['confirmed', 'failed', 'ended'], since, T_CALL_SETUP, `1000 dials ${DIALLED} (${label})`, id);
  if (e.type !== 'confirmed') {
    const r = await Promise.race([uas, sleep(100).then(() => null)]);
    assert.fail(
      `browser -> PSTN (${label}): ${JSON.stringify(e)}\n` +
        (r ? `sipp trunk: exit ${r.code}\n${summarizeSippOutput(`${r.stdout}\n${r.stderr}`)}` : 'sipp trunk still running') +
        `\n  trunk trace: ${trace}`,
    );
  }
  ctx.confirmedAt = Date.now();
  return ctx;
}

/** The INVITEs the trunk received and what it answered each with. */
function trunkExchange(trace) {
  const msgs = readSippMessages(trace);
  const received = msgs.filter((m) => m.dir === 'received');
  const sent = msgs.filter((m) => m.dir === 'sent');
  const invites = received.filter((m) => /^INVITE /.test(m.text));
  const answerTo = (req) => {
    const cs = cseqOf(req.text);
    return sent.filter((s) => /^SIP\/2\.0 [2-6]\d\d/.test(s.text) && header1(s.text, 'Call-ID') === header1(req.text, 'Call-ID')).find((s) => {
      const c = cseqOf(s.text);
      return c && cs && c.seq === cs.seq && c.method === 'INVITE';
    });
  };
  return { msgs, received, sent, invites, answerTo };
}

/** What the trunk got in the (final) INVITE of a call: routing, caller ID, plain SDP. */
function assertTrunkInvite(invite, label) {
  const text = invite.text;
  const ruri = startLine(text).split(' ')[1];
  assert.equal(
    ruri,
    `sip:${NORMALIZED}@${TRUNK.ip}:${TRUNK.port}`,
    `${label}: Request-URI at the trunk: the dialled ${DIALLED} should arrive normalised by the rule "0>+49"`,
  );
  assert.match(header1(text, 'To'), new RegExp(`sip:\\${NORMALIZED}@${TRUNK.ip.replaceAll('.', '\\.')}`), `${label}: To at the trunk`);
  assert.match(
    header1(text, 'From'),
    new RegExp(`<sip:\\${TRUNK.callerId}@${TRUNK.fromDomain.replaceAll('.', '\\.')}>;tag=`),
    `${label}: From at the trunk should carry the fixed caller ID ${TRUNK.callerId} @ from_domain ${TRUNK.fromDomain}`,
  );
  assert.doesNotMatch(text, /^Proxy-Authorization:.*1000/im, `${label}: the browser's own credentials leaked to the trunk`);
  assert.ok(
    headerValues(text, 'Record-Route').some((r) => /sip:127\.0\.0\.1:5060[;>]/.test(r)),
    `${label}: the gateway does not Record-Route its UDP side toward the trunk (in-dialog requests would bypass it): ${header1(text, 'Record-Route')}`,
  );
  const sdp = bodyOf(text);
  const m = sdp.match(/^m=audio (\d+) RTP\/AVP ([\d ]+)$/m);
  assert.ok(m, `${label}: the trunk's offer is not plain RTP/AVP audio:\n${sdp}`);
  assert.ok(inRelayRange(Number(m[1])), `${label}: offer port ${m[1]} outside the relay range`);
  assert.match(sdp, /^c=IN IP4 127\.0\.0\.1$/m, `${label}: offer's c= is not the advertised relay address`);
  assert.match(sdp, /^a=rtpmap:0 PCMU\/8000$/m, `${label}: PCMU not offered to the trunk:\n${sdp}`);
  assert.match(sdp, /^a=rtpmap:\d+ telephone-event\/8000$/m, `${label}: telephone-event/8000 not offered to the trunk:\n${sdp}`);
  assert.doesNotMatch(sdp, /a=(ice-ufrag|ice-pwd|fingerprint|candidate|setup|rtcp-mux|mid|group)/, `${label}: WebRTC attributes reached the trunk:\n${sdp}`);
  assert.doesNotMatch(sdp, /^m=(?!audio)\S+ [1-9]/m, `${label}: a non-audio stream was offered to the trunk:\n${sdp}`);
}

/**
 * Media both ways on a browser <-> trunk call: the browser's inbound packets
 * and audio energy grow, its outbound packets grow, and RTP arrives at the
 * trunk's media port from a relay port (and goes back from it).
 */
async function assertTrunkMedia(ctx, { what, window = MEDIA_WINDOW_MS, trunkPts } = {}) {
  const { a, id, mediaPort, label } = ctx;
  const deadline = Date.now() + T_MEDIA_START;
  let first = await stats(a, id);
  while ((first.audio.inbound === 0 || first.audio.energy === 0) && Date.now() < deadline) {
    await sleep(250);
    first = await stats(a, id);
  }
  const t1 = Date.now();
  await sleep(window);
  const second = await stats(a, id);
  const t2 = Date.now();
  await settleCapture();
  const sent = rtpPackets(toTrunk(mediaPort), t1, t2);
  const back = rtpPackets(fromTrunk(mediaPort), t1, t2);
  const [x, y] = [first.audio, second.audio];
  console.log(
    `# ${label}${what ? ` ${what}` : ''}: browser audio in ${x.inbound} -> ${y.inbound}, energy ${x.energy.toFixed(4)} -> ${y.energy.toFixed(4)}, ` +
      `out ${x.outbound} -> ${y.outbound}; at the trunk in ${window} ms: ${sent.length} RTP received (PT ${JSON.stringify(countBy(sent, (p) => p.rtp.pt))}), ${back.length} sent`,
  );
  const problems = [];
  if (!(y.inbound > x.inbound && x.inbound > 0)) problems.push(`browser inbound audio did not grow (${x.inbound} -> ${y.inbound}; ICE ${second.ice})`);
  if (!(y.energy > x.energy)) problems.push(`browser inbound totalAudioEnergy did not rise (${x.energy} -> ${y.energy}): silence or nothing played out`);
  if (!(y.outbound > x.outbound)) problems.push(`browser outbound audio did not grow (${x.outbound} -> ${y.outbound})`);
  // 20 ms packets: ~100 in 2 s; ask for a third of that.
  const min = Math.floor(window / 20 / 3);
  if (sent.length < min) problems.push(`the trunk received ${sent.length} RTP packets from the relay in ${window} ms (want >= ${min}) at ${TRUNK.ip}:${mediaPort}`);
  if (back.length < min) problems.push(`the trunk sent ${back.length} RTP packets to the relay in ${window} ms (want >= ${min}): its echo went nowhere`);
  if (trunkPts) {
    const bad = sent.filter((p) => !trunkPts.includes(p.rtp.pt));
    if (bad.length) problems.push(`the trunk received payload types it did not negotiate: ${JSON.stringify(countBy(bad, (p) => p.rtp.pt))} (negotiated ${trunkPts.join(', ')})`);
  }
  if (problems.length) {
    const st = await sessionState(a, id);
    assert.fail(`${label}: ${problems.join('\n')}\n--- browser remote SDP ---\n${st?.remoteSdp}\n  trunk trace ${ctx.trace}, capture ${PCAP}`);
  }
  return { first, second, sent, back };
}

/** Browser hangs up; the trunk's scenario must end with exit 0. */
async function hangUpTrunkCall(ctx) {
  const { a, id, uas, trace, label } = ctx;
  const since = await cursor(a);
  await a.eval((id) => window.phone.hangup(id), id);
  const end = await expectEvent(a, ['ended', 'failed'], since, T_END, `browser hangs up (${label})`, id);
  assert.equal(end.type, 'ended', `${label}: ${JSON.stringify(end)}`);
  const r = await uas;
  assert.equal(
    r.code,
    0,
    `${label}: the sipp trunk did not complete (exit ${r.code}${r.timedOut ? ', killed at the deadline' : ''}): the BYE did not arrive or was not answered\n` +
      `${summarizeSippOutput(`${r.stdout}\n${r.stderr}`)}\n  trunk trace: ${trace}`,
  );
  const { received, sent } = trunkExchange(trace);
  const bye = received.find((m) => /^BYE /.test(m.text));
  assert.ok(bye, `${label}: the trunk got no BYE (trace ${trace})`);
  assert.ok(sent.some((m) => /^SIP\/2\.0 200/.test(m.text) && cseqOf(m.text)?.method === 'BYE'), `${label}: the trunk did not answer the BYE`);
  ctx.ended = true;
  return bye;
}

let a1000;
let b1001;
const phone1000 = async () => (a1000 ??= await openPhone('1000'));
const phone1001 = async () => (b1001 ??= await openPhone('1001'));

// ---------------------------------------------------------------------------

before(async () => {
  await new Promise((ok) => httpServer.listen(0, '127.0.0.1', ok));
  pageUrl = `http://localhost:${httpServer.address().port}/phone.html`;
  await startCapture();
  browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: CHROMIUM_ARGS, timeout: 30_000 });
  console.log(`# chromium ${browser.version()}; traces and capture in ${ARTIFACTS}`);
});

after(async () => {
  for (const p of phones) {
    await p.eval(() => window.phone.hangupAll()).catch(() => {});
    await p.eval(() => window.phone.stop(5000)).catch(() => {});
    await p.context.close().catch(() => {});
  }
  await browser?.close().catch(() => {});
  httpServer.close();
  for (const ctx of Object.values(calls)) await ctx.sipp?.kill().catch(() => {});
  tcpdump?.kill('SIGINT');
});

// 1a / 4 / 5 share one call to a trunk without authentication.

test('1a. browser -> PSTN, trunk without auth: routed to the trunk with the normalised number and caller ID, plain RTP, audio both ways', { timeout: 60_000 }, async () => {
  await cleanOnFailure('noauth', async () => {
    const ctx = await placeTrunkCall('noauth', 'trunk_uas.xml', 16000);
    assertRelaySdp((await sessionState(ctx.a, ctx.id))?.remoteSdp, 'browser 1000');
    const { invites, answerTo } = trunkExchange(ctx.trace);
    assert.equal(invites.length, 1, `the trunk got ${invites.length} INVITEs, expected 1 (no auth)`);
    assertTrunkInvite(invites[0], '1a');
    const ok = answerTo(invites[0]);
    assert.ok(ok && /^SIP\/2\.0 200/.test(ok.text), 'the trunk did not answer 200');
    ctx.tePt = Number(/^a=rtpmap:(\d+) telephone-event\/8000$/m.exec(bodyOf(ok.text))?.[1]);
    ctx.offerTePt = Number(/^a=rtpmap:(\d+) telephone-event\/8000$/m.exec(bodyOf(invites[0].text))?.[1]);
    assert.ok(await ctx.a.eval((id) => window.phone.playRemote(id), ctx.id) > 0, 'no remote track to play');
    await assertTrunkMedia(ctx, { trunkPts: [0, ctx.tePt] });
  });
});

test('4. DTMF: RFC 4733 events from the browser reach the trunk as its telephone-event payload type, digits 1 2 3 4', { timeout: 30_000 }, async () => {
  const ctx = calls.noauth;
  assert.ok(ctx?.confirmedAt && !ctx.ended, 'no call up from test 1a');
  assert.ok(ctx.tePt, 'the trunk answered no telephone-event payload type');
  const t0 = Date.now();
  const r = await ctx.a.eval(
    ({ id }) => window.phone.sendDTMF(id, '1234', { transportType: 'RFC2833', duration: 120, interToneGap: 80 }),
    { id: ctx.id },
  );
  assert.ok(r.ok, `sendDTMF failed: ${JSON.stringify(r)}`);
  // 4 x (120 + 80) ms, plus the end packets' redundancy and slack.
  await sleep(2_000);
  await settleCapture();
  const pkts = rtpPackets(toTrunk(ctx.mediaPort), t0);
  const pts = countBy(pkts, (p) => p.rtp.pt);
  const events = pkts.filter((p) => p.rtp.pt === ctx.tePt);
  console.log(
    `# DTMF: trunk telephone-event PT ${ctx.tePt} (offered to it as ${ctx.offerTePt}); packets at the trunk by PT: ${JSON.stringify(pts)}`,
  );
  assert.ok(
    events.length > 0,
    `no RTP with the trunk's telephone-event PT ${ctx.tePt} reached the trunk after sendDTMF (PTs seen: ${JSON.stringify(pts)}; ` +
      `a PT of ${ctx.offerTePt} would be the browser's numbering passed through unmapped); capture ${PCAP}`,
  );
  // One event per RTP timestamp (RFC 4733 §2.5.1.2); its code is the first payload byte.
  const byTs = new Map();
  for (const p of events) {
    if (p.rtp.payload.length < 4) continue;
    const key = `${p.rtp.ssrc}/${p.rtp.ts}`;
    const e = byTs.get(key) ?? { code: p.rtp.payload[0], end: false, n: 0, firstSeq: p.rtp.seq };
    e.end ||= !!(p.rtp.payload[1] & 0x80);
    e.n++;
    byTs.set(key, e);
  }
  const digits = [...byTs.values()].map((e) => e.code);
  console.log(`# DTMF events at the trunk: ${JSON.stringify([...byTs.values()])}`);
  assert.deepEqual(digits, [1, 2, 3, 4], `the trunk received telephone events ${JSON.stringify(digits)}, expected [1,2,3,4]`);
  assert.ok([...byTs.values()].every((e) => e.end), 'an event had no end packet (E bit)');
  const wrong = pkts.filter((p) => p.rtp.pt !== 0 && p.rtp.pt !== ctx.tePt);
  assert.equal(wrong.length, 0, `the trunk received payload types it did not negotiate: ${JSON.stringify(countBy(wrong, (p) => p.rtp.pt))}`);
});

/**
 * Hold and resume on a call to the trunk. Returns the measurements; the
 * assertions on media are the caller's.
 */
async function holdAndResume(ctx) {
  const { a, id, trace, mediaPort } = ctx;
  const invitesBefore = trunkExchange(trace).invites.length;
  const r1 = await a.eval((id) => window.phone.hold(id, 10_000), id);
  assert.ok(r1.ok, `hold re-INVITE did not succeed: ${JSON.stringify(r1)} (trace ${a.logFile})`);
  const held = trunkExchange(trace);
  const holdInvite = held.invites[invitesBefore];
  assert.ok(holdInvite, `the trunk got no re-INVITE for hold (trace ${trace})`);
  assert.match(bodyOf(holdInvite.text), /^a=sendonly$/m, `hold: the trunk's re-INVITE offer is not sendonly:\n${bodyOf(holdInvite.text)}`);
  const holdAnswer = held.answerTo(holdInvite);
  assert.ok(holdAnswer && /^SIP\/2\.0 200/.test(holdAnswer.text), 'the trunk did not answer the hold re-INVITE with 200');
  const remote = (await sessionState(a, id))?.remoteSdp ?? '';
  assert.match(remote, /^a=recvonly$/m, `hold: the browser's answer is not recvonly (the trunk answered recvonly):\n${remote}`);
  assertRelaySdp(remote, 'browser 1000 after hold');
  await sleep(500); // in flight before the hold
  const h1 = { st: await stats(a, id), t: Date.now() };
  await sleep(MEDIA_WINDOW_MS);
  const h2 = { st: await stats(a, id), t: Date.now() };

  const r2 = await a.eval((id) => window.phone.unhold(id, 10_000), id);
  assert.ok(r2.ok, `resume re-INVITE did not succeed: ${JSON.stringify(r2)} (trace ${a.logFile})`);
  const resumed = trunkExchange(trace);
  const resumeInvite = resumed.invites[invitesBefore + 1];
  assert.ok(resumeInvite, `the trunk got no re-INVITE for resume (trace ${trace})`);
  assert.doesNotMatch(bodyOf(resumeInvite.text), /^a=(sendonly|recvonly|inactive)$/m, `resume: the trunk's re-INVITE offer is still on hold:\n${bodyOf(resumeInvite.text)}`);
  const after = (await sessionState(a, id))?.remoteSdp ?? '';
  assert.doesNotMatch(after, /^a=(sendonly|recvonly|inactive)$/m, `resume: the browser's answer is not sendrecv:\n${after}`);
  await sleep(500);
  const u1 = { st: await stats(a, id), t: Date.now() };
  await sleep(MEDIA_WINDOW_MS);
  const u2 = { st: await stats(a, id), t: Date.now() };
  await settleCapture();
  // Media the trunk got during each window: all packets, and the ones that
  // carry sound (PCMU silence is 0xFF/0x7F; JsSIP mutes the track on hold).
  const loud = (p) => p.rtp.pt === 0 && p.rtp.payload.some((b) => b !== 0xff && b !== 0x7f && b !== 0xfe && b !== 0x7e);
  const atTrunk = (x, y) => {
    const pk = rtpPackets(toTrunk(mediaPort), x.t, y.t);
    return { packets: pk.length, loud: pk.filter(loud).length };
  };
  const m = {
    held: { inbound: h2.st.audio.inbound - h1.st.audio.inbound, energy: h2.st.audio.energy - h1.st.audio.energy, trunk: atTrunk(h1, h2) },
    resumed: { inbound: u2.st.audio.inbound - u1.st.audio.inbound, energy: u2.st.audio.energy - u1.st.audio.energy, trunk: atTrunk(u1, u2) },
    invites: [holdInvite, resumeInvite],
  };
  console.log(`# hold: ${JSON.stringify(m.held)}; resumed: ${JSON.stringify(m.resumed)} (over ${MEDIA_WINDOW_MS} ms each)`);
  return m;
}

test('5. hold / resume by re-INVITE toward the trunk: sendonly offered, recvonly answered, media stops while held and flows again after', { timeout: 40_000 }, async () => {
  const ctx = calls.noauth;
  assert.ok(ctx?.confirmedAt && !ctx.ended, 'no call up from test 1a');
  const m = await holdAndResume(ctx);
  // Held (browser sendonly, trunk recvonly): the browser takes in no audio
  // (the sipp trunk echoes whatever it gets, as a trunk playing music on
  // hold would, but the browser's receive direction is off) and, as JsSIP
  // mutes the microphone on hold, only silence reaches the trunk: the
  // browser keeps sending RTP, so the trunk's packet count is no measure.
  assert.ok(m.held.inbound <= 5, `the browser kept receiving audio while on hold: ${m.held.inbound} packets in ${MEDIA_WINDOW_MS} ms`);
  assert.ok(m.held.energy < 1e-6, `audio was played out while on hold (energy +${m.held.energy})`);
  assert.equal(m.held.trunk.loud, 0, `the trunk received ${m.held.trunk.loud} non-silent RTP packets while on hold`);
  assert.ok(m.resumed.inbound > 0, 'no inbound audio at the browser after resume');
  assert.ok(m.resumed.energy > 0, 'no audio energy at the browser after resume');
  assert.ok(m.resumed.trunk.loud > 0, `no sound reached the trunk after resume (${JSON.stringify(m.resumed.trunk)})`);
});

test('1a. (end) the browser hangs up: BYE reaches the trunk, its scenario completes', { timeout: 40_000 }, async () => {
  await cleanOnFailure('noauth', async () => {
    const ctx = calls.noauth;
    assert.ok(ctx?.confirmedAt, 'no call from test 1a');
    await hangUpTrunkCall(ctx);
  });
});

test('1b. browser -> PSTN, trunk demanding digest auth with 407: INVITE re-sent with Proxy-Authorization and CSeq+1, audio both ways, in-dialog CSeqs shifted', { timeout: 70_000 }, async () => {
  await cleanOnFailure('auth407', async () => {
    const ctx = await placeTrunkCall('auth407', 'trunk_uas_auth.xml', 16010);
    const { invites, answerTo } = trunkExchange(ctx.trace);
    assert.equal(invites.length, 2, `the trunk got ${invites.length} INVITEs, expected 2 (challenged, then with credentials)`);
    const [first, second] = invites;
    const challenge = answerTo(first);
    assert.ok(challenge && /^SIP\/2\.0 407/.test(challenge.text), 'the first INVITE was not answered 407');
    assert.ok(!rawHeaders(first.text, 'Proxy-Authorization').length, 'the first INVITE already carried Proxy-Authorization');
    assertTrunkInvite(second, '1b (authenticated INVITE)');
    assert.equal(header1(second.text, 'Call-ID'), header1(first.text, 'Call-ID'), 'the authenticated INVITE has another Call-ID');
    assert.equal(/tag=([^;>\s]+)/.exec(header1(second.text, 'From'))?.[1], /tag=([^;>\s]+)/.exec(header1(first.text, 'From'))?.[1], 'the authenticated INVITE has another From tag');
    const c1 = cseqOf(first.text);
    const c2 = cseqOf(second.text);
    assert.equal(c2.seq, c1.seq + 1, `CSeq of the authenticated INVITE: ${c2.seq}, expected ${c1.seq + 1}`);
    assert.notEqual(branchOf(second.text), branchOf(first.text), 'the authenticated INVITE reused the Via branch');
    const auth = rawHeaders(second.text, 'Proxy-Authorization');
    assert.equal(auth.length, 1, `Proxy-Authorization headers: ${auth.length}`);
    assert.equal(rawHeaders(second.text, 'Authorization').length, 0, 'an Authorization header was sent to a 407');
    const d = checkDigest(auth[0], {
      challenge: rawHeaders(challenge.text, 'Proxy-Authenticate')[0],
      method: 'INVITE',
      uri: startLine(second.text).split(' ')[1],
      username: TRUNK.username,
      password: TRUNK.password,
      label: '1b Proxy-Authorization',
    });
    console.log(`# 407 answered: CSeq ${c1.seq} -> ${c2.seq}, digest ${d.algorithm ?? 'MD5'} qop=${d.qop} verified`);
    assert.ok(await ctx.a.eval((id) => window.phone.playRemote(id), ctx.id) > 0, 'no remote track to play');
    await assertTrunkMedia(ctx);

    // In-dialog requests after the challenge use CSeqs above the
    // authenticated INVITE's (the browser's own numbering is one lower).
    const m = await holdAndResume(ctx);
    const [hold, resume] = m.invites.map((x) => cseqOf(x.text).seq);
    assert.ok(hold > c2.seq, `hold re-INVITE CSeq ${hold} is not above the authenticated INVITE's ${c2.seq}: the trunk would refuse it`);
    assert.ok(resume > hold, `resume re-INVITE CSeq ${resume} is not above the hold re-INVITE's ${hold}`);
    const bye = await hangUpTrunkCall(ctx);
    const byeSeq = cseqOf(bye.text).seq;
    assert.ok(byeSeq > resume, `BYE CSeq ${byeSeq} is not above the last re-INVITE's ${resume}`);
    // ACKs of 2xx carry their INVITE's CSeq number.
    const { received } = trunkExchange(ctx.trace);
    const inviteSeqs = new Set([c2.seq, hold, resume]);
    const acks = received.filter((x) => /^ACK /.test(x.text)).map((x) => cseqOf(x.text).seq);
    for (const s of inviteSeqs) assert.ok(acks.includes(s), `no ACK with CSeq ${s} at the trunk (ACKs: ${acks})`);
    console.log(`# CSeqs at the trunk: INVITE ${c1.seq}/${c2.seq}, re-INVITEs ${hold}/${resume}, BYE ${byeSeq}, ACKs ${acks}`);
  });
});

test('1c. browser -> PSTN, trunk demanding digest auth with 401: INVITE re-sent with Authorization that sipp verifies, audio both ways, BYE', { timeout: 60_000 }, async () => {
  await cleanOnFailure('auth401', async () => {
    const ctx = await placeTrunkCall('auth401', 'trunk_uas_auth401.xml', 16020, ['-key', 'username', TRUNK.username, '-key', 'password', TRUNK.password]);
    const { invites, answerTo } = trunkExchange(ctx.trace);
    assert.equal(invites.length, 2, `the trunk got ${invites.length} INVITEs, expected 2`);
    const challenge = answerTo(invites[0]);
    assert.ok(challenge && /^SIP\/2\.0 401/.test(challenge.text), 'the first INVITE was not answered 401');
    assertTrunkInvite(invites[1], '1c (authenticated INVITE)');
    assert.equal(cseqOf(invites[1].text).seq, cseqOf(invites[0].text).seq + 1, 'CSeq of the authenticated INVITE is not the challenged one + 1');
    const auth = rawHeaders(invites[1].text, 'Authorization');
    assert.equal(auth.length, 1, `Authorization headers in the INVITE answering a 401: ${auth.length}`);
    checkDigest(auth[0], {
      challenge: rawHeaders(challenge.text, 'WWW-Authenticate')[0],
      method: 'INVITE',
      uri: startLine(invites[1].text).split(' ')[1],
      username: TRUNK.username,
      password: TRUNK.password,
      label: '1c Authorization',
    });
    assert.ok(await ctx.a.eval((id) => window.phone.playRemote(id), ctx.id) > 0, 'no remote track to play');
    await assertTrunkMedia(ctx);
    const bye = await hangUpTrunkCall(ctx);
    assert.ok(cseqOf(bye.text).seq > cseqOf(invites[1].text).seq, 'BYE CSeq is not above the authenticated INVITE');
  });
});

test('2. PSTN -> browser: the trunk calls DID +4930777, browser 1001 rings and answers, audio both ways, the trunk hangs up', { timeout: 60_000 }, async () => {
  const b = await phone1001();
  await b.eval(() => window.phone.setIncoming({ mode: 'answer', bundlePolicy: 'max-bundle' }));
  const since = await cursor(b);
  const mediaPort = 16100;
  const trace = join(ARTIFACTS, 'sipp-trunk-did.log');
  const callMs = 6_000;
  const uac = runSipp(
    [
      '-sf', join(SCENARIOS, 'trunk_uac_did.xml'), SIP_UDP,
      '-t', 'u1', '-i', TRUNK.ip, '-p', String(DID_UAC_PORT), '-mp', String(mediaPort), '-m', '1',
      '-key', 'did', DID, '-key', 'caller', PSTN_CALLER, '-d', String(callMs),
      '-timeout', '40s', '-timeout_error',
      '-trace_msg', '-message_file', trace,
    ],
    { deadlineMs: 50_000 },
  );
  calls.did = { uas: uac };
  try {
    const incoming = await expectEvent(b, ['incoming'], since, T_CALL_SETUP, `the trunk calls DID ${DID}`);
    assert.match(incoming.from, new RegExp(`sip:\\${PSTN_CALLER}@`), `1001 sees the call from ${incoming.from}, expected the PSTN caller ${PSTN_CALLER}`);
    const e = await expectEvent(b, ['confirmed', 'failed', 'ended'], since, T_CALL_SETUP, 'DID call answered', incoming.id);
    assert.equal(e.type, 'confirmed', `1001: ${JSON.stringify(e)}`);
    assertRelaySdp((await sessionState(b, incoming.id))?.remoteSdp, 'browser 1001 (DID call)');
    // What the trunk got back: a plain RTP/AVP answer with A-law from the relay.
    const ok = readSippMessages(trace).find((m) => m.dir === 'received' && /^SIP\/2\.0 200/.test(m.text) && cseqOf(m.text)?.method === 'INVITE');
    assert.ok(ok, `the trunk got no 200 for its INVITE (trace ${trace})`);
    const sdp = bodyOf(ok.text);
    const m = sdp.match(/^m=audio (\d+) RTP\/AVP ([\d ]+)$/m);
    assert.ok(m, `the answer to the trunk is not plain RTP/AVP audio:\n${sdp}`);
    assert.ok(inRelayRange(Number(m[1])), `answer port ${m[1]} outside the relay range`);
    assert.equal(m[2].split(' ')[0], '8', `the answer to the trunk does not pick PCMA (8) first:\n${sdp}`);
    assert.doesNotMatch(sdp, /a=(ice-ufrag|fingerprint|candidate)/, `WebRTC attributes reached the trunk:\n${sdp}`);

    assert.ok(await b.eval((id) => window.phone.playRemote(id), incoming.id) > 0, 'no remote track to play');
    // The trunk plays g711a.pcap (7 s of A-law) at 30 ms a packet; the
    // browser answers with 20 ms packets to the trunk's media port.
    const deadline = Date.now() + T_MEDIA_START;
    let first = await stats(b, incoming.id);
    while ((first.audio.inbound === 0 || first.audio.energy === 0) && Date.now() < deadline) {
      await sleep(250);
      first = await stats(b, incoming.id);
    }
    const t1 = Date.now();
    await sleep(MEDIA_WINDOW_MS);
    const second = await stats(b, incoming.id);
    const t2 = Date.now();
    await settleCapture();
    const atTrunk = rtpPackets(toTrunk(mediaPort), t1, t2);
    const fromTrunkPkts = rtpPackets((p) => p.src === TRUNK.ip && p.dst === '127.0.0.1' && inRelayRange(p.dport), t1, t2);
    console.log(
      `# DID call: browser audio in ${first.audio.inbound} -> ${second.audio.inbound}, energy ${first.audio.energy.toFixed(4)} -> ${second.audio.energy.toFixed(4)}, ` +
        `out ${first.audio.outbound} -> ${second.audio.outbound}; trunk received ${atTrunk.length} RTP (PT ${JSON.stringify(countBy(atTrunk, (p) => p.rtp.pt))}), sent ${fromTrunkPkts.length}`,
    );
    assert.ok(second.audio.inbound > first.audio.inbound && first.audio.inbound > 0, `no trunk audio at the browser (${first.audio.inbound} -> ${second.audio.inbound})`);
    assert.ok(second.audio.energy > first.audio.energy, `the trunk's audio played out silent at the browser (energy ${first.audio.energy} -> ${second.audio.energy})`);
    assert.ok(fromTrunkPkts.length >= 20, `the capture shows only ${fromTrunkPkts.length} RTP packets from the trunk to the relay`);
    assert.ok(atTrunk.length >= 30, `the trunk received only ${atTrunk.length} RTP packets from the relay in ${MEDIA_WINDOW_MS} ms`);
    const bad = atTrunk.filter((p) => p.rtp.pt !== 8 && p.rtp.pt !== 101);
    assert.equal(bad.length, 0, `the trunk received payload types it did not negotiate: ${JSON.stringify(countBy(bad, (p) => p.rtp.pt))}`);

    // The trunk hangs up after -d; the browser sees the session end.
    const end = await expectEvent(b, ['ended', 'failed'], since, callMs + T_END, 'the trunk hangs up', incoming.id);
    assert.equal(end.type, 'ended', `1001: ${JSON.stringify(end)}`);
    assert.equal(end.originator, 'remote', `1001: the call ended from the ${end.originator} side, expected the trunk's BYE`);
  } finally {
    await b.eval(() => window.phone.hangupAll()).catch(() => {});
    await b.eval(() => window.phone.setIncoming({ mode: 'manual' })).catch(() => {});
  }
  const r = await uac;
  assert.equal(
    r.code,
    0,
    `the sipp trunk's DID call did not complete (exit ${r.code}): the BYE was not answered 200?\n${summarizeSippOutput(`${r.stdout}\n${r.stderr}`)}\n  trace: ${trace}`,
  );
});

test('2b. PSTN -> browser from another address of the carrier, listed in the trunk\'s inbound_trust (127.0.0.4): rings 1001 without auth', { timeout: 40_000 }, async () => {
  const b = await phone1001();
  await b.eval(() => window.phone.setIncoming({ mode: 'answer', bundlePolicy: 'max-bundle' }));
  const since = await cursor(b);
  const trace = join(ARTIFACTS, 'sipp-trunk-did-trusted.log');
  const uac = runSipp(
    [
      '-sf', join(SCENARIOS, 'trunk_uac_did.xml'), SIP_UDP,
      '-t', 'u1', '-i', TRUSTED_IP, '-p', String(DID_UAC_PORT), '-mp', '16110', '-m', '1',
      '-key', 'did', DID.slice(1), '-key', 'caller', PSTN_CALLER, '-d', '1500',
      '-timeout', '30s', '-timeout_error',
      '-trace_msg', '-message_file', trace,
    ],
    { deadlineMs: 40_000 },
  );
  try {
    // The DID without its "+", as some carriers send it: still the DID.
    const incoming = await expectEvent(b, ['incoming'], since, T_CALL_SETUP, `${TRUSTED_IP} calls DID ${DID.slice(1)}`);
    const e = await expectEvent(b, ['confirmed', 'failed', 'ended'], since, T_CALL_SETUP, 'DID call answered', incoming.id);
    assert.equal(e.type, 'confirmed', `1001: ${JSON.stringify(e)}`);
    const end = await expectEvent(b, ['ended', 'failed'], since, 1_500 + T_END, 'the trunk hangs up', incoming.id);
    assert.equal(end.type, 'ended', `1001: ${JSON.stringify(end)}`);
  } finally {
    await b.eval(() => window.phone.hangupAll()).catch(() => {});
    await b.eval(() => window.phone.setIncoming({ mode: 'manual' })).catch(() => {});
  }
  const r = await uac;
  const status = readSippMessages(trace).filter((m) => m.dir === 'received' && /^SIP\/2\.0 /.test(m.text)).map((m) => startLine(m.text));
  assert.equal(r.code, 0, `the call from ${TRUSTED_IP} did not complete (exit ${r.code}; responses ${JSON.stringify(status)})\n${summarizeSippOutput(`${r.stdout}\n${r.stderr}`)}\n  trace: ${trace}`);
});

for (const bundlePolicy of ['max-bundle', 'balanced']) {
  test(`3. browser <-> browser through the relay with audio and video (bundlePolicy ${bundlePolicy}): relay SDP, audio and video RTP both ways`, { timeout: 60_000 }, async () => {
    const a = await phone1000();
    const b = await phone1001();
    await b.eval((p) => window.phone.setIncoming(p), { mode: 'answer', bundlePolicy });
    const ca = await cursor(a);
    const cb = await cursor(b);
    const id = await a.eval(({ target, opts }) => window.phone.call(target, opts), { target: '1001', opts: { video: true, bundlePolicy } });
    try {
      const incoming = await expectEvent(b, ['incoming'], cb, T_CALL_SETUP, '1000 calls 1001 with video');
      assert.equal(incoming.video, true, '1001 got an offer without video');
      const ea = await expectEvent(a, ['confirmed', 'failed', 'ended'], ca, T_CALL_SETUP, 'caller', id);
      assert.equal(ea.type, 'confirmed', `caller: ${JSON.stringify(ea)}`);
      const eb = await expectEvent(b, ['confirmed', 'failed', 'ended'], cb, T_CALL_SETUP, 'callee', incoming.id);
      assert.equal(eb.type, 'confirmed', `callee: ${JSON.stringify(eb)}`);
      const sides = [
        { p: a, id, label: 'caller 1000' },
        { p: b, id: incoming.id, label: 'callee 1001' },
      ];
      for (const s of sides) {
        const sdp = (await sessionState(s.p, s.id))?.remoteSdp;
        assertRelaySdp(sdp, s.label);
        assert.match(sdp, /^m=video [1-9]\d* /m, `${s.label}: the relay's SDP rejects or lacks video:\n${sdp}`);
      }
      const snapshot = () => Promise.all(sides.map((s) => stats(s.p, s.id)));
      const deadline = Date.now() + T_MEDIA_START;
      let first = await snapshot();
      while (!first.every((st) => st.audio.inbound > 0 && st.video.inbound > 0) && Date.now() < deadline) {
        await sleep(250);
        first = await snapshot();
      }
      await sleep(MEDIA_WINDOW_MS);
      const second = await snapshot();
      const problems = [];
      sides.forEach((s, i) => {
        const [x, y] = [first[i], second[i]];
        console.log(
          `# ${s.label}: audio in ${x.audio.inbound} -> ${y.audio.inbound}, video in ${x.video.inbound} -> ${y.video.inbound} ` +
            `(frames ${x.video.framesDecoded} -> ${y.video.framesDecoded}), ICE ${y.ice}`,
        );
        for (const kind of ['audio', 'video']) {
          if (!(y[kind].inbound > x[kind].inbound)) problems.push(`${s.label}: inbound ${kind} did not grow (${x[kind].inbound} -> ${y[kind].inbound}; ICE ${y.ice})`);
        }
        if (!(y.video.framesDecoded > x.video.framesDecoded)) problems.push(`${s.label}: no video frames decoded (${x.video.framesDecoded} -> ${y.video.framesDecoded})`);
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
      assert.equal((await expectEvent(a, ['ended', 'failed'], ca2, T_END, 'caller hangs up', id)).type, 'ended');
      assert.equal((await expectEvent(b, ['ended', 'failed'], cb2, T_END, 'callee sees the hang-up', incoming.id)).type, 'ended');
    } finally {
      await a.eval(() => window.phone.hangupAll()).catch(() => {});
      await b.eval(() => window.phone.hangupAll()).catch(() => {});
      await b.eval(() => window.phone.setIncoming({ mode: 'manual' })).catch(() => {});
    }
  });
}

test('6. toll fraud: unauthenticated INVITEs from an untrusted host (127.0.0.3) for PSTN numbers are refused, nothing reaches the trunk', { timeout: 60_000 }, async () => {
  const b = await phone1001(); // must not ring for the DID either
  await b.eval(() => window.phone.setIncoming({ mode: 'manual' }));
  const cb = await cursor(b);
  const t0 = Date.now();
  const targets = [
    ['pstn-number', 'sip:00441234@127.0.0.1'],
    ['pstn-plus', 'sip:+441234@127.0.0.1:5060'],
    ['did-untrusted', `sip:${DID}@127.0.0.1`],
    ['relay-to-trunk', `sip:00441234@${TRUNK.ip}:${TRUNK.port}`],
  ];
  const outcomes = [];
  for (const [name, target] of targets) {
    const trace = join(ARTIFACTS, `sipp-fraud-${name}.log`);
    const r = await runSipp(
      [
        '-sf', join(SCENARIOS, 'fraud_uac.xml'), SIP_UDP,
        '-t', 'u1', '-i', FRAUD_IP, '-p', '5070', '-mp', '16200', '-m', '1',
        '-key', 'target', target, '-key', 'caller', '1000',
        '-timeout', '15s', '-timeout_error',
        '-trace_msg', '-message_file', trace,
      ],
      { deadlineMs: 25_000 },
    );
    const answer = readSippMessages(trace).find((m) => m.dir === 'received' && /^SIP\/2\.0 [2-6]/.test(m.text));
    const status = answer ? startLine(answer.text) : '(no final answer)';
    outcomes.push(`${target}: ${status}`);
    assert.equal(
      r.code,
      0,
      `unauthenticated INVITE ${target} from ${FRAUD_IP} was not refused with 407/403: got ${status}\n${summarizeSippOutput(`${r.stdout}\n${r.stderr}`)}\n  trace: ${trace}`,
    );
  }
  console.log(`# fraud attempts: ${outcomes.join('; ')}`);
  await sleep(500); // anything forwarded would be on the wire by now
  await settleCapture();
  // Anything the gateway sent to the trunk's address (its registration
  // aside, on another port).
  const leaked = readCapture().filter((p) => p.t >= t0 && p.dst === TRUNK.ip && p.src !== TRUNK.ip && p.dport !== REG_TRUNK.port);
  assert.equal(
    leaked.length,
    0,
    `during the fraud attempts ${leaked.length} packets went to the trunk address: ` +
      JSON.stringify(leaked.slice(0, 5).map((p) => ({ src: `${p.src}:${p.sport}`, dst: `${p.dst}:${p.dport}`, head: p.data.subarray(0, 60).toString('latin1') }))),
  );
  const rang = (await eventsSince(b, cb)).filter((e) => e.type === 'incoming');
  assert.equal(rang.length, 0, `1001 rang for an untrusted caller: ${JSON.stringify(rang)}`);
});

test('7. trunk registration: REGISTER with digest auth to the registrar at 127.0.0.2:5090, refreshed, state "registered" in the API', { timeout: 60_000 }, async () => {
  const rcFile = env.E2E_REGISTRAR_RC;
  const trace = env.E2E_REGISTRAR_TRACE;
  assert.ok(rcFile && trace, 'E2E_REGISTRAR_RC / E2E_REGISTRAR_TRACE not set: run through tests/e2e/trunk.sh');
  const deadline = Date.now() + 40_000;
  while (!existsSync(rcFile) && Date.now() < deadline) await sleep(250);
  const regs = readSippMessages(trace).filter((m) => m.dir === 'received' && /^REGISTER /.test(m.text));
  const summary = regs.map((m) => `${cseqOf(m.text)?.seq} ${rawHeaders(m.text, 'Authorization').length ? 'with' : 'without'} credentials`).join(', ');
  assert.ok(existsSync(rcFile), `the registrar scenario did not finish within 40 s; REGISTERs so far: ${summary || 'none'} (trace ${trace})`);
  const rc = readFileSync(rcFile, 'utf8').trim();
  const out = existsSync(`${rcFile}.out`) ? readFileSync(`${rcFile}.out`, 'utf8') : '';
  assert.equal(rc, '0', `the sipp registrar failed (exit ${rc}); REGISTERs: ${summary}\n${summarizeSippOutput(out)}\n  trace: ${trace}`);
  console.log(`# REGISTERs at the registrar: ${summary}`);
  assert.ok(regs.length >= 3, `expected the REGISTER, its authenticated repeat and a refresh; got ${regs.length}`);
  const [r1, r2] = regs;
  assert.equal(rawHeaders(r1.text, 'Authorization').length, 0, 'the first REGISTER carried credentials before any challenge');
  assert.equal(startLine(r1.text).split(' ')[1], `sip:${TRUNK.ip}:${REG_TRUNK.port}`, 'REGISTER Request-URI');
  assert.match(header1(r1.text, 'To'), new RegExp(`<sip:${REG_TRUNK.username}@${TRUNK.ip.replaceAll('.', '\\.')}>`), 'REGISTER To (the trunk account)');
  assert.match(header1(r1.text, 'Contact'), /@127\.0\.0\.1:5060/, 'REGISTER Contact is not the gateway UDP listener');
  assert.equal(header1(r1.text, 'Expires'), String(REG_TRUNK.expiry), 'REGISTER Expires is not the configured expiry');
  const auth = rawHeaders(r2.text, 'Authorization');
  assert.equal(auth.length, 1, 'the REGISTER after the 401 has no Authorization');
  const d = digestParams(auth[0]);
  assert.equal(d.username, REG_TRUNK.username, 'REGISTER digest username');
  assert.equal(d.uri, `sip:${TRUNK.ip}:${REG_TRUNK.port}`, 'REGISTER digest uri');
  const callIds = new Set(regs.map((m) => header1(m.text, 'Call-ID')));
  assert.equal(callIds.size, 1, `the REGISTERs (refresh included) should share one Call-ID: ${[...callIds]}`);
  const seqs = regs.map((m) => cseqOf(m.text).seq);
  assert.ok(seqs.every((s, i) => i === 0 || s > seqs[i - 1]), `REGISTER CSeqs do not increase: ${seqs}`);

  const res = await api(`/api/v1/trunks/${REG_TRUNK.name}`);
  assert.equal(res.status, 200, `GET /api/v1/trunks/${REG_TRUNK.name}: ${res.status} ${res.body}`);
  const view = JSON.parse(res.body);
  console.log(`# API ${REG_TRUNK.name}: ${JSON.stringify(view.registration_state)}`);
  assert.equal(view.registration_state?.state, 'registered', `registration_state: ${JSON.stringify(view.registration_state)}`);
  const left = view.registration_state.expires_in;
  assert.ok(
    left > REG_TRUNK.expiry && left <= REG_TRUNK.granted,
    `expires_in ${left}: expected the ${REG_TRUNK.granted} s the registrar granted on the refresh (above the ${REG_TRUNK.expiry} s asked for)`,
  );
  const plain = JSON.parse((await api(`/api/v1/trunks/${TRUNK.name}`)).body);
  assert.equal(plain.registration_state?.state, 'disabled', `trunk ${TRUNK.name} does not register, its state: ${JSON.stringify(plain.registration_state)}`);
  assert.equal(plain.has_password, true, `trunk ${TRUNK.name} should show has_password`);
  assert.ok(!('password' in plain), 'the API shows the trunk password');
});

test('8. CDRs: `callgate cdr export` and /api/v1/cdrs.csv list the trunk calls, answered, with the trunk name', { timeout: 30_000 }, async () => {
  assert.ok(env.CALLGATE_BIN && env.E2E_CONFIG, 'CALLGATE_BIN / E2E_CONFIG not set: run through tests/e2e/trunk.sh');
  const trunkCalls = (rows) => rows.filter((r) => r.trunk === TRUNK.name);
  let rows = [];
  let csv = '';
  const deadline = Date.now() + 10_000;
  for (;;) {
    const r = spawnSync(env.CALLGATE_BIN, ['cdr', 'export', '--config', env.E2E_CONFIG], { encoding: 'utf8', timeout: 10_000 });
    assert.equal(r.status, 0, `callgate cdr export: exit ${r.status}\n${r.stderr}`);
    csv = r.stdout;
    rows = parseCsv(csv);
    if (trunkCalls(rows).length >= 5 || Date.now() > deadline) break;
    await sleep(500);
  }
  const show = (list) => list.map((r) => `${r.direction} ${r.caller}->${r.callee} ${r.disposition} trunk=${r.trunk} user=${r.caller_user}/${r.callee_user}`).join('\n  ');
  console.log(`# CDRs:\n  ${show(rows)}`);
  const outbound = rows.filter((r) => r.direction === 'outbound' && r.callee === DIALLED);
  const inbound = rows.filter((r) => r.direction === 'inbound' && r.callee === DID);
  assert.equal(outbound.length, 3, `expected 3 outbound CDRs to ${DIALLED} (tests 1a, 1b, 1c):\n  ${show(rows)}`);
  for (const r of outbound) {
    assert.equal(r.disposition, 'answered', `outbound CDR: ${show([r])}`);
    assert.equal(r.trunk, TRUNK.name, `outbound CDR trunk: ${show([r])}`);
    assert.equal(r.caller_user, '1000', `outbound CDR caller_user: ${show([r])}`);
    assert.ok(Number(r.duration_secs) >= 1, `outbound CDR duration ${r.duration_secs}`);
    assert.ok(Number(r.caller_rx_packets) > 0 && Number(r.callee_rx_packets) > 0, `outbound CDR without relay media counters: caller_rx ${r.caller_rx_packets}, callee_rx ${r.callee_rx_packets}`);
  }
  const inbound2 = rows.filter((r) => r.direction === 'inbound' && r.callee === DID.slice(1));
  assert.equal(inbound.length, 1, `expected 1 inbound CDR to ${DID} (test 2):\n  ${show(rows)}`);
  assert.equal(inbound2.length, 1, `expected 1 inbound CDR to ${DID.slice(1)} (test 2b):\n  ${show(rows)}`);
  for (const r of [...inbound, ...inbound2]) {
    assert.equal(r.disposition, 'answered', `inbound CDR: ${show([r])}`);
    assert.equal(r.trunk, TRUNK.name, `inbound CDR trunk: ${show([r])}`);
    assert.equal(r.callee_user, '1001', `inbound CDR callee_user: ${show([r])}`);
    assert.equal(r.caller, PSTN_CALLER, `inbound CDR caller: ${show([r])}`);
  }
  const fraud = rows.filter((r) => /0?0?441234/.test(r.callee) && r.disposition === 'answered');
  assert.equal(fraud.length, 0, `a fraud attempt shows as answered: ${show(fraud)}`);
  assert.equal(trunkCalls(rows).length, 5, `CDRs with trunk ${TRUNK.name} besides the 5 calls placed:\n  ${show(trunkCalls(rows))}`);

  const res = await api('/api/v1/cdrs.csv');
  assert.equal(res.status, 200, `GET /api/v1/cdrs.csv: ${res.status} ${res.body.slice(0, 200)}`);
  const viaApi = parseCsv(res.body);
  assert.deepEqual(
    trunkCalls(viaApi).map((r) => `${r.call_id} ${r.disposition}`).sort(),
    trunkCalls(rows).map((r) => `${r.call_id} ${r.disposition}`).sort(),
    '/api/v1/cdrs.csv and `callgate cdr export` disagree on the trunk calls',
  );
});
