// Waits until a freshly started callgate serves: TCP connects to the WSS
// port and a UDP OPTIONS gets a SIP response (200 expected; anything else is
// reported but still counts as "up", the tests then say what is wrong).
// Fails early when the server process exits.
//
//   node wait-ready.mjs --pid PID [--wss 127.0.0.1:7443] [--udp 127.0.0.1:5060] [--timeout-ms 30000]

import { createSocket } from 'node:dgram';
import { randomBytes } from 'node:crypto';
import { connect } from 'node:net';
import { parseArgs } from 'node:util';
import { setTimeout as sleep } from 'node:timers/promises';

const { values } = parseArgs({
  options: {
    pid: { type: 'string' },
    wss: { type: 'string', default: '127.0.0.1:7443' },
    udp: { type: 'string', default: '127.0.0.1:5060' },
    'timeout-ms': { type: 'string', default: '30000' },
  },
});

const hostPort = (s) => {
  const i = s.lastIndexOf(':');
  return [s.slice(0, i), Number(s.slice(i + 1))];
};
const [wssHost, wssPort] = hostPort(values.wss);
const [udpHost, udpPort] = hostPort(values.udp);
const deadline = Date.now() + Number(values['timeout-ms']);

function alive() {
  if (!values.pid) return true;
  try {
    process.kill(Number(values.pid), 0);
    return true;
  } catch {
    return false;
  }
}

function tcpAccepts() {
  return new Promise((resolve) => {
    const s = connect({ host: wssHost, port: wssPort });
    const done = (ok) => {
      s.destroy();
      resolve(ok);
    };
    s.setTimeout(1000, () => done(false));
    s.once('connect', () => done(true));
    s.once('error', () => done(false));
  });
}

function options() {
  return new Promise((resolve) => {
    const sock = createSocket('udp4');
    const tag = randomBytes(6).toString('hex');
    const timer = setTimeout(() => {
      sock.close();
      resolve(null);
    }, 1000);
    sock.on('message', (buf) => {
      clearTimeout(timer);
      sock.close();
      resolve(buf.toString('utf8').split('\r\n', 1)[0]);
    });
    sock.on('error', () => {
      clearTimeout(timer);
      sock.close();
      resolve(null);
    });
    sock.bind(0, '127.0.0.1', () => {
      const port = sock.address().port;
      const msg = [
        `OPTIONS sip:${udpHost} SIP/2.0`,
        `Via: SIP/2.0/UDP 127.0.0.1:${port};branch=z9hG4bK${tag};rport`,
        'Max-Forwards: 70',
        `From: <sip:probe@${udpHost}>;tag=${tag}`,
        `To: <sip:${udpHost}>`,
        `Call-ID: ready-${tag}@127.0.0.1`,
        'CSeq: 1 OPTIONS',
        'Content-Length: 0',
        '',
        '',
      ].join('\r\n');
      sock.send(msg, udpPort, udpHost);
    });
  });
}

let tcpUp = false;
let udpStatus = null;
while (Date.now() < deadline) {
  if (!alive()) {
    console.error('callgate exited before it was ready');
    process.exit(1);
  }
  tcpUp ||= await tcpAccepts();
  if (!udpStatus) udpStatus = await options();
  if (tcpUp && udpStatus) {
    if (!/^SIP\/2\.0 200 /.test(udpStatus)) console.error(`note: OPTIONS to ${values.udp} answered "${udpStatus}", not 200`);
    console.error(`callgate is up (WSS ${values.wss} accepts, OPTIONS: ${udpStatus})`);
    process.exit(0);
  }
  await sleep(200);
}
console.error(
  `callgate not ready within ${values['timeout-ms']} ms: ` +
    `TCP ${values.wss} ${tcpUp ? 'accepts' : 'refuses'}, UDP OPTIONS to ${values.udp} ${udpStatus ? `got ${udpStatus}` : 'got no answer'}`,
);
process.exit(1);
