// Bundles the view module and its stylesheet into desktop_widget/static/.
// `node build.mjs` once, `node build.mjs --watch` while developing (with ANYWIDGET_HMR=1).
import * as esbuild from "esbuild";
import { fileURLToPath } from "node:url";

let here = fileURLToPath(new URL(".", import.meta.url));
let options = {
	absWorkingDir: here,
	entryPoints: ["widget.js", "widget.css", "page.js", "page.css"],
	outdir: "../desktop_widget/static",
	bundle: true,
	format: "esm",
	// noVNC 1.7.0 has a top-level await, which needs es2022.
	target: ["es2022"],
	minify: true,
	sourcemap: false,
	legalComments: "linked",
	logLevel: "info",
	// Keep UMD-style code from seeing JupyterLab's RequireJS `define`.
	define: { "define.amd": "false" },
};

if (process.argv.includes("--watch")) {
	let context = await esbuild.context(options);
	await context.watch();
} else {
	await esbuild.build(options);
}
