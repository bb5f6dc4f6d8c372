// Captures real SDP from the Debian Chromium as fixtures for crates/sdp.
//
// Regenerate (as root, from the repository root; bash tests/sdp-capture/capture.sh
// does the same):
//
//   (cd tests && npm ci)
//   unshare --net sh -c 'ip link set lo up; node tests/sdp-capture/capture.mjs'
//
// The private network namespace has only loopback, so every ICE candidate is
// 127.0.0.1 and nothing about the capturing host ends up in the fixtures.
// The browser is /usr/bin/chromium (apt-get install chromium); playwright-core
// never downloads one.

import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const here = dirname(fileURLToPath(import.meta.url));
const outDir = resolve(here, '../../crates/sdp/tests/data');
const executablePath = process.env.CHROMIUM ?? '/usr/bin/chromium';
const GATHER_TIMEOUT_MS = 10_000;

const ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--use-fake-ui-for-media-stream',
  '--use-fake-device-for-media-stream',
  '--allow-loopback-in-peer-connection',
];

// What callgate offers a browser for a call from the PSTN: G.711 and DTMF as a
// trunk sends them, wrapped in the ICE-lite/DTLS-SRTP shape WebRTC requires.
// The fingerprint is arbitrary; no DTLS handshake happens here.
const PSTN_STYLE_OFFER = [
  'v=0',
  'o=callgate 4001 1 IN IP4 127.0.0.1',
  's=-',
  't=0 0',
  'a=ice-lite',
  'a=group:BUNDLE 0',
  'a=msid-semantic: WMS',
  'm=audio 30000 UDP/TLS/RTP/SAVPF 0 8 101',
  'c=IN IP4 127.0.0.1',
  'a=rtcp:30000 IN IP4 127.0.0.1',
  'a=ice-ufrag:cgLiteUfrag1',
  'a=ice-pwd:cgLitePasswordForFixtures0',
  'a=fingerprint:sha-256 ' +
    Array.from({ length: 32 }, (_, i) => ((i * 37 + 11) & 0xff).toString(16).padStart(2, '0').toUpperCase()).join(':'),
  'a=setup:actpass',
  'a=mid:0',
  'a=sendrecv',
  'a=rtcp-mux',
  'a=rtpmap:0 PCMU/8000',
  'a=rtpmap:8 PCMA/8000',
  'a=rtpmap:101 telephone-event/8000',
  'a=fmtp:101 0-16',
  'a=ptime:20',
  'a=candidate:1 1 udp 2130706431 127.0.0.1 30000 typ host',
  'a=end-of-candidates',
  '',
].join('\r\n');

// Runs in the page: one peer connection, local tracks added, description set,
// then waits for ICE gathering so the candidates are in the SDP.
async function negotiate({ audio, video, bundlePolicy, remoteOffer, timeoutMs }) {
  const stream = await navigator.mediaDevices.getUserMedia({ audio, video });
  const pc = new RTCPeerConnection({ bundlePolicy });
  for (const track of stream.getTracks()) pc.addTrack(track, stream);
  const gathered = new Promise((done) => {
    if (pc.iceGatheringState === 'complete') return done();
    pc.addEventListener('icegatheringstatechange', () => {
      if (pc.iceGatheringState === 'complete') done();
    });
  });
  if (remoteOffer) {
    await pc.setRemoteDescription({ type: 'offer', sdp: remoteOffer });
    await pc.setLocalDescription(await pc.createAnswer());
  } else {
    await pc.setLocalDescription(await pc.createOffer());
  }
  let timedOut = false;
  await Promise.race([gathered, new Promise((t) => setTimeout(() => { timedOut = true; t(); }, timeoutMs))]);
  const sdp = pc.localDescription.sdp;
  pc.close();
  stream.getTracks().forEach((t) => t.stop());
  return { sdp, timedOut };
}

const CAPTURES = [
  { file: 'chromium-audio-balanced.sdp', audio: true, video: false, bundlePolicy: 'balanced' },
  { file: 'chromium-audio-max-bundle.sdp', audio: true, video: false, bundlePolicy: 'max-bundle' },
  { file: 'chromium-audio-video-balanced.sdp', audio: true, video: true, bundlePolicy: 'balanced' },
  { file: 'chromium-audio-video-max-bundle.sdp', audio: true, video: true, bundlePolicy: 'max-bundle' },
  { file: 'chromium-answer-pstn.sdp', audio: true, video: false, bundlePolicy: 'max-bundle', remoteOffer: PSTN_STYLE_OFFER },
];

// getUserMedia needs a secure context; http://localhost is one.
const server = createServer((_, res) => {
  res.writeHead(200, { 'content-type': 'text/html' });
  res.end('<!doctype html><title>sdp capture</title>');
});
await new Promise((ok) => server.listen(0, '127.0.0.1', ok));
const url = `http://localhost:${server.address().port}/`;

const profile = mkdtempSync(join(tmpdir(), 'callgate-sdp-capture-'));
let context;
try {
  context = await chromium.launchPersistentContext(profile, { executablePath, headless: true, args: ARGS });
  const page = context.pages()[0] ?? (await context.newPage());
  await page.goto(url);
  console.log(`browser ${context.browser()?.version() ?? (await page.evaluate(() => navigator.userAgent))}`);
  for (const c of CAPTURES) {
    const { sdp, timedOut } = await page.evaluate(negotiate, { ...c, timeoutMs: GATHER_TIMEOUT_MS });
    if (!sdp.includes('a=candidate:')) throw new Error(`${c.file}: no ICE candidate gathered`);
    writeFileSync(join(outDir, c.file), sdp);
    console.log(`${c.file}: ${sdp.length} bytes${timedOut ? ' (ICE gathering timed out)' : ''}`);
  }
} finally {
  await context?.close();
  server.close();
  rmSync(profile, { recursive: true, force: true });
}
