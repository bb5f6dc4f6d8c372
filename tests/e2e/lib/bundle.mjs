// Packs the CommonJS sources of a package from tests/node_modules into one
// classic <script> for the browser. The jssip npm package ships only its
// CommonJS `lib/` (no prebuilt dist/jssip.min.js), and the tests should not
// need a bundler, so this resolves the static require() calls itself: relative
// paths, JSON files and bare package names (honouring a package's string
// `browser` field, so `debug` gets its browser build).

import { existsSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';

const REQUIRE_RE = /\brequire\(\s*(['"])([^'"]+)\1\s*\)/g;

function isFile(p) {
  try {
    return statSync(p).isFile();
  } catch {
    return false;
  }
}

function resolveFile(base) {
  for (const candidate of [base, `${base}.js`, `${base}.json`, join(base, 'index.js')]) {
    if (isFile(candidate)) return candidate;
  }
  return null;
}

function resolvePackage(name, fromDir) {
  const parts = name.split('/');
  const pkgName = name.startsWith('@') ? parts.slice(0, 2).join('/') : parts[0];
  const subpath = parts.slice(name.startsWith('@') ? 2 : 1).join('/');
  for (let dir = fromDir; ; dir = dirname(dir)) {
    const pkgDir = join(dir, 'node_modules', pkgName);
    if (existsSync(join(pkgDir, 'package.json'))) {
      if (subpath) return resolveFile(join(pkgDir, subpath));
      const pkg = JSON.parse(readFileSync(join(pkgDir, 'package.json'), 'utf8'));
      const entry = (typeof pkg.browser === 'string' && pkg.browser) || pkg.main || 'index.js';
      return resolveFile(join(pkgDir, entry));
    }
    if (dirname(dir) === dir) return null;
  }
}

function resolveRequire(spec, fromFile) {
  const fromDir = dirname(fromFile);
  const found =
    spec.startsWith('./') || spec.startsWith('../') || spec.startsWith('/')
      ? resolveFile(resolve(fromDir, spec))
      : resolvePackage(spec, fromDir);
  if (!found) throw new Error(`bundle: cannot resolve require('${spec}') from ${fromFile}`);
  return found;
}

/**
 * Returns the source of a script that defines `globalName` on window as the
 * exports of `entryFile`.
 */
export function bundleCommonJs(entryFile, globalName) {
  const root = dirname(entryFile);
  const ids = new Map(); // absolute path -> numeric id
  const modules = []; // [id, path, body, {spec: id}]
  const queue = [resolve(entryFile)];
  ids.set(queue[0], 0);
  while (queue.length) {
    const file = queue.shift();
    const source = readFileSync(file, 'utf8');
    const deps = {};
    if (!file.endsWith('.json')) {
      for (const m of source.matchAll(REQUIRE_RE)) {
        const target = resolveRequire(m[2], file);
        if (!ids.has(target)) {
          ids.set(target, ids.size);
          queue.push(target);
        }
        deps[m[2]] = ids.get(target);
      }
    }
    const body = file.endsWith('.json') ? `module.exports = ${source.trim()};` : source;
    modules.push([ids.get(file), relative(root, file), body, deps]);
  }
  const defs = modules
    .map(
      ([id, path, body, deps]) =>
        `${id}: [function (require, module, exports) {\n// ${path}\n${body}\n}, ${JSON.stringify(deps)}]`,
    )
    .join(',\n');
  return `(function () {
'use strict';
var defs = {
${defs}
};
var cache = {};
function load(id) {
  if (cache[id]) return cache[id].exports;
  var module = (cache[id] = { exports: {} });
  var def = defs[id];
  def[0].call(module.exports, function (spec) {
    if (!(spec in def[1])) throw new Error('bundle: unknown module ' + spec);
    return load(def[1][spec]);
  }, module, module.exports);
  return module.exports;
}
window[${JSON.stringify(globalName)}] = load(0);
})();
`;
}
