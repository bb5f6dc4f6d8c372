// Runs sipp (Debian package sip-tester) with a hard deadline and reads its
// message trace back, for the tests that put a plain SIP phone on the line.

import { spawn, spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const SCENARIOS = join(dirname(fileURLToPath(import.meta.url)), '..', 'sipp');

export function sippAvailable() {
  return spawnSync('sipp', ['-v'], { stdio: 'ignore' }).error === undefined;
}

/**
 * Runs sipp with `args` and resolves { code, signal, stdout, stderr, timedOut }.
 * `deadlineMs` is a safety net on top of sipp's own -timeout: past it the
 * child (and only it) gets SIGKILL.
 */
export function runSipp(args, { deadlineMs = 30_000 } = {}) {
  return new Promise((resolve) => {
    const child = spawn('sipp', ['-nostdin', ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    let timedOut = false;
    child.stdout.on('data', (d) => {
      stdout = (stdout + d).slice(-20_000);
    });
    child.stderr.on('data', (d) => {
      stderr = (stderr + d).slice(-20_000);
    });
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill('SIGKILL');
    }, deadlineMs);
    child.on('error', (err) => {
      clearTimeout(timer);
      resolve({ code: -1, signal: null, stdout, stderr: `${stderr}${err}`, timedOut });
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr, timedOut, pid: child.pid });
    });
  });
}

/**
 * The useful part of sipp's console output: the message flow of its last
 * scenario screen (counts per message, retransmissions, timeouts,
 * unexpected messages) and its error lines, without the statistics screens.
 */
export function summarizeSippOutput(text) {
  const lines = text.split(/\r?\n/);
  let flow = [];
  let current = null;
  for (const line of lines) {
    if (/Scenario Screen/.test(line)) current = [];
    else if (current && /Test Terminated|Statistics Screen/.test(line)) {
      if (current.length) flow = current;
      current = null;
    } else if (current && (/<-{4,}|-{4,}>|^\s*Pause \[|Messages\s+Retrans/.test(line))) {
      current.push(line.replace(/\s+$/, ''));
    }
  }
  if (current?.length) flow = current;
  // sipp's own complaints start with a timestamp.
  const errors = [...new Set(lines.filter((l) => /^\d{4}-\d{2}-\d{2}\s/.test(l)))];
  return [...flow, ...errors.map((l) => l.replace(/\s+$/, ''))].join('\n');
}

/** The SIP messages of a sipp -trace_msg file: [{ dir: 'sent'|'received', text }]. */
export function readSippMessages(file) {
  if (!existsSync(file)) return [];
  const log = readFileSync(file, 'utf8');
  const out = [];
  // Each entry starts with a line like
  //   ----------------------------------------------- 2025-01-01 12:00:00.000000
  //   UDP message received [543] bytes :
  // (or "message sent (543 bytes):"), followed by the message.
  const parts = log.split(/^-{10,}.*$/m);
  for (const part of parts) {
    const m = part.match(/^\s*(\S+) message (received|sent)[^\n]*\n\n?([\s\S]*)$/);
    if (!m) continue;
    out.push({ dir: m[2], transport: m[1], text: m[3].replace(/\s+$/, '') });
  }
  return out;
}

/** Header values of a SIP message (all lines of that header, comma lists split outside <>/quotes). */
export function headerValues(text, name) {
  const head = text.split(/\r?\n\r?\n/)[0];
  const lines = head.split(/\r?\n/);
  const values = [];
  const lname = name.toLowerCase();
  for (let i = 1; i < lines.length; i++) {
    const idx = lines[i].indexOf(':');
    if (idx < 0) continue;
    if (lines[i].slice(0, idx).trim().toLowerCase() !== lname) continue;
    let value = lines[i].slice(idx + 1);
    while (i + 1 < lines.length && /^[ \t]/.test(lines[i + 1])) value += ` ${lines[++i].trim()}`;
    values.push(...splitCommaList(value.trim()));
  }
  return values;
}

/** Splits a header value at the commas outside <> and quotes. */
export function splitCommaList(value) {
  const out = [];
  let depth = 0;
  let quoted = false;
  let cur = '';
  for (const ch of value) {
    if (ch === '"') quoted = !quoted;
    else if (!quoted && ch === '<') depth++;
    else if (!quoted && ch === '>') depth--;
    if (ch === ',' && !quoted && depth === 0) {
      if (cur.trim()) out.push(cur.trim());
      cur = '';
    } else cur += ch;
  }
  if (cur.trim()) out.push(cur.trim());
  return out;
}

/** First line of a SIP message. */
export function startLine(text) {
  return text.split(/\r?\n/, 1)[0];
}
