// A UDP+TCP relay in front of callgate for sipp builds without SHA-256
// digest support (Debian's sipp 3.6.1): it passes every message through
// unchanged except 401/407 responses, whose WWW-Authenticate /
// Proxy-Authenticate headers it reorders so the MD5 challenge comes first.
//
// callgate offers SHA-256 then MD5 (RFC 8760 order of preference); sipp 3.6
// only looks at the first challenge and gives up on SHA-256 ("createAuthHeader:
// authentication must use MD5 or AKAv1-MD5"). Newer sipp picks the first
// challenge it supports and needs no relay.
//
//   node md5-first-relay.mjs --listen 127.0.0.1:5160 --target 127.0.0.1:5060
//
// Only the sipp -> callgate direction goes through the relay (sipp's remote
// address); callgate reaches a registered sipp directly at its Contact.

import { createSocket } from 'node:dgram';
import { connect, createServer } from 'node:net';
import { parseArgs } from 'node:util';

const { values } = parseArgs({
  options: { listen: { type: 'string' }, target: { type: 'string' } },
});
const split = (s) => {
  const i = s.lastIndexOf(':');
  return [s.slice(0, i), Number(s.slice(i + 1))];
};
const [listenHost, listenPort] = split(values.listen);
const [targetHost, targetPort] = split(values.target);

/** MD5 (or algorithm-less) challenges first, order otherwise kept. */
function md5First(text) {
  if (!/^SIP\/2\.0 40[17] /.test(text)) return text;
  const end = text.indexOf('\r\n\r\n');
  if (end < 0) return text;
  const lines = text.slice(0, end).split('\r\n');
  const isChallenge = (l) => /^(WWW|Proxy)-Authenticate\s*:/i.test(l);
  const challenges = lines.filter(isChallenge);
  if (challenges.length < 2) return text;
  const md5 = (l) => !/algorithm\s*=\s*"?(?!MD5\b)[A-Za-z0-9-]+/i.test(l);
  const ordered = [...challenges.filter(md5), ...challenges.filter((l) => !md5(l))];
  let k = 0;
  const out = lines.map((l) => (isChallenge(l) ? ordered[k++] : l));
  return out.join('\r\n') + text.slice(end);
}

// --- UDP: one upstream socket per sipp address ---------------------------------
const udp = createSocket('udp4');
const upstreams = new Map();
udp.on('message', (msg, from) => {
  const key = `${from.address}:${from.port}`;
  let up = upstreams.get(key);
  if (!up) {
    up = createSocket('udp4');
    up.on('message', (reply) => {
      udp.send(Buffer.from(md5First(reply.toString('latin1')), 'latin1'), from.port, from.address);
    });
    up.bind(0, '127.0.0.1');
    upstreams.set(key, up);
  }
  up.send(msg, targetPort, targetHost);
});
udp.bind(listenPort, listenHost);

// --- TCP: per connection, frame the callgate -> sipp stream by Content-Length ---
function framer(onMessage) {
  let buf = Buffer.alloc(0);
  return (chunk) => {
    buf = Buffer.concat([buf, chunk]);
    for (;;) {
      // Keep-alive CRLFs pass as they are.
      if (buf.length >= 2 && buf[0] === 13 && buf[1] === 10) {
        onMessage(buf.subarray(0, 2).toString('latin1'));
        buf = buf.subarray(2);
        continue;
      }
      const end = buf.indexOf('\r\n\r\n');
      if (end < 0) return;
      const head = buf.subarray(0, end).toString('latin1');
      const m = head.match(/^(?:Content-Length|l)\s*:\s*(\d+)/im);
      const total = end + 4 + (m ? Number(m[1]) : 0);
      if (buf.length < total) return;
      onMessage(buf.subarray(0, total).toString('latin1'));
      buf = buf.subarray(total);
    }
  };
}

createServer((down) => {
  const up = connect({ host: targetHost, port: targetPort });
  down.on('data', (d) => up.write(d));
  up.on('data', framer((text) => down.write(Buffer.from(md5First(text), 'latin1'))));
  const close = () => {
    down.destroy();
    up.destroy();
  };
  down.on('close', close);
  up.on('close', close);
  down.on('error', close);
  up.on('error', close);
}).listen(listenPort, listenHost, () => console.error(`md5-first relay ${values.listen} -> ${values.target}`));

process.on('SIGTERM', () => process.exit(0));
