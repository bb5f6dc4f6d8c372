// Builds jssip.min.js from the JsSIP npm package. The npm package ships
// CommonJS sources only (lib/), so this bundles them with their
// dependencies the way JsSIP's own release build does (esbuild, IIFE,
// global `JsSIP`, ES2015, minified), and puts the license texts of every
// bundled package at the top. Run through bundle.sh.
import esbuild from 'esbuild';
import fs from 'node:fs';
import path from 'node:path';
import { createRequire } from 'node:module';

const here = path.dirname(new URL(import.meta.url).pathname);
const require = createRequire(path.join(here, 'package.json'));

// Every package that ends up in the bundle, with its license file.
const packages = [
	['jssip', 'LICENSE.md'],
	['debug', 'LICENSE'],
	['ms', 'license.md'],
	['events', 'LICENSE'],
	['sdp-transform', 'LICENSE'],
];

const dir = (name) => path.join(here, 'node_modules', name);
const jssip = require('jssip/package.json');

let banner = `/*!
 * JsSIP ${jssip.version}
 * ${jssip.description}
 * ${jssip.contributors.join(' ')}
 * Homepage: ${jssip.homepage}
 * License: ${jssip.license}
 *
 * Bundled for the callgate softphone by web-ui/phone/bundle.sh. It contains
 * the following packages; their license texts follow.
`;
for (const [name, file] of packages) {
	const pkg = JSON.parse(fs.readFileSync(path.join(dir(name), 'package.json'), 'utf8'));
	const text = fs.readFileSync(path.join(dir(name), file), 'utf8')
		.replace(/\*\//g, '* /')
		.trimEnd()
		.split('\n')
		.map((l) => (l ? ` * ${l}` : ' *'))
		.join('\n');
	banner += ` *\n * ---- ${name} ${pkg.version} (${pkg.license}) ----\n *\n${text}\n`;
}
banner += ' */';

const result = await esbuild.build({
	entryPoints: [path.join(dir('jssip'), 'lib', 'JsSIP.js')],
	outfile: path.join(here, 'jssip.min.js'),
	bundle: true,
	minify: true,
	sourcemap: false,
	format: 'iife',
	globalName: 'JsSIP',
	platform: 'browser',
	target: ['es2015'],
	supported: { 'template-literal': false },
	legalComments: 'none',
	banner: { js: banner },
	logLevel: 'warning',
	metafile: true,
});

// Refuse to ship a bundle with something not listed above.
const bundled = new Set();
for (const input of Object.keys(result.metafile.inputs)) {
	const m = input.match(/node_modules\/((?:@[^/]+\/)?[^/]+)\//);
	if (m) bundled.add(m[1]);
}
const listed = new Set(packages.map(([n]) => n));
const unlisted = [...bundled].filter((n) => !listed.has(n));
if (unlisted.length) {
	console.error(`bundle.mjs: add the license of ${unlisted.join(', ')} to the list`);
	process.exit(1);
}
const size = fs.statSync(path.join(here, 'jssip.min.js')).size;
console.log(`jssip.min.js: JsSIP ${jssip.version}, ${size} bytes, packages: ${[...bundled].sort().join(', ')}`);
