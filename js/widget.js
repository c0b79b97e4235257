// @ts-check
/**
 * The view of one desktop: a noVNC client connected through the Jupyter
 * server's authenticated route `{baseUrl}desktop-widget/<id>/`.
 *
 * Everything a view creates (the RFB client, DOM listeners, timers) is tied to
 * one AbortController and released by the cleanup that `render` returns.
 */
import RFB from "@novnc/novnc";
import { last_frame_layer } from "./last_frame.js";

/**
 * @typedef {object} Model
 * @property {(name: string) => any} get
 * @property {(event: string, callback: (...args: any[]) => void) => void} on
 * @property {(event: string, callback?: (...args: any[]) => void) => void} off
 */

/** Delays between reconnection attempts, in ms; the last one repeats. */
const BACKOFF = [250, 500, 1000, 2000, 4000, 8000];

/** One view per desktop in this page sizes the remote screen; the others scale. */
const primary_views = new Map();

/**
 * The Jupyter server's base URL as the page knows it (JupyterLab, Notebook 7,
 * JupyterHub's `/user/<name>/`, classic Notebook), or null outside Jupyter.
 * @returns {string | null}
 */
export function page_base_url() {
	let config = document.getElementById("jupyter-config-data");
	if (config?.textContent) {
		try {
			let base = JSON.parse(config.textContent).baseUrl;
			if (typeof base === "string") return base.endsWith("/") ? base : `${base}/`;
		} catch {
			// fall through to the classic notebook's attribute
		}
	}
	let base = document.body?.dataset?.baseUrl;
	if (base) return base.endsWith("/") ? base : `${base}/`;
	return null;
}

/**
 * @param {string} base
 * @param {string} path
 * @returns {{ http: string, ws: string }}
 */
export function route_urls(base, path) {
	let http = new URL(base + path, window.location.href);
	let ws = new URL(http.href);
	ws.protocol = http.protocol === "https:" ? "wss:" : "ws:";
	return { http: http.href, ws: ws.href };
}

/**
 * The page's `_xsrf` cookie, which a script's requests send back as the
 * `X-XSRFToken` header (as JupyterLab's own requests do). A JupyterHub
 * single-user server (JupyterHub >= 4.1) accepts its login cookie on a
 * fetch() only with it, even on a GET: without it the user is anonymous.
 * @returns {string | null}
 */
function xsrf_cookie() {
	let match = document.cookie.match(/(?:^|;\s*)_xsrf=([^;]*)/);
	return match ? match[1] : null;
}

/**
 * Ask the route whether the desktop is reachable before opening a WebSocket,
 * whose failures the browser reports only as code 1006.
 * @param {string} url
 * @param {AbortSignal} signal
 * @returns {Promise<string | null>} null when a WebSocket should succeed, else why not
 */
async function probe(url, signal) {
	let xsrf = xsrf_cookie();
	let response;
	try {
		response = await fetch(url, {
			signal,
			credentials: "same-origin",
			redirect: "manual",
			cache: "no-store",
			headers: xsrf ? { "X-XSRFToken": xsrf } : {},
		});
	} catch (error) {
		if (signal.aborted) return "closed";
		return "the Jupyter server cannot be reached";
	}
	if (response.status === 204) return null; // the desktop is there
	if (response.status === 404) return "this desktop is not running on this Jupyter server";
	if (response.status === 403 || response.type === "opaqueredirect") return "not logged in to this Jupyter server";
	return `the Jupyter server answered ${response.status}`;
}

/**
 * @param {{ model: Model, el: HTMLElement }} context
 * @returns {() => void}
 */
function render({ model, el }) {
	let controller = new AbortController();
	let { signal } = controller;
	let token = Symbol("view");

	let root = document.createElement("div");
	root.className = "dw-root";
	// Keys typed into the desktop must not trigger JupyterLab shortcuts.
	root.setAttribute("data-lm-suppress-shortcuts", "true");
	let screen = document.createElement("div");
	screen.className = "dw-screen";
	let status = document.createElement("div");
	status.className = "dw-status";
	status.setAttribute("role", "status");
	root.append(screen, status);
	el.append(root);
	let frame = last_frame_layer(model, root, signal);

	/** @type {any} */
	let rfb = null;
	let attempt = 0;
	/** @type {ReturnType<typeof setTimeout> | undefined} */
	let retry_timer;
	let connecting = false;
	/** The clipboard text the desktop last sent, so it is not pasted back to it. */
	let remote_clipboard = "";

	/** @param {string} text @param {string} kind */
	function show(text, kind) {
		status.textContent = text;
		status.dataset.kind = kind;
		root.dataset.state = kind;
		// A view still connected after the session ended shows the live (empty) screen.
		frame(kind === "session-exited" && rfb ? "connected" : kind, text);
	}

	function is_primary() {
		let id = model.get("_desktop_id");
		if (!primary_views.has(id)) primary_views.set(id, token);
		return primary_views.get(id) === token;
	}

	function apply_traits() {
		root.style.height = model.get("height");
		if (!rfb) return;
		let scale = model.get("scale") || !is_primary();
		rfb.viewOnly = model.get("view_only");
		rfb.qualityLevel = model.get("quality");
		rfb.compressionLevel = model.get("compression");
		rfb.scaleViewport = scale;
		rfb.resizeSession = !scale;
	}

	function disconnect() {
		clearTimeout(retry_timer);
		if (rfb) {
			let old = rfb;
			rfb = null;
			old.disconnect();
		}
	}

	function schedule_reconnect(reason) {
		if (signal.aborted || model.get("status") !== "running") return;
		let delay = BACKOFF[Math.min(attempt, BACKOFF.length - 1)];
		attempt += 1;
		show(`${reason} — reconnecting in ${(delay / 1000).toFixed(1)} s…`, "reconnecting");
		clearTimeout(retry_timer);
		retry_timer = setTimeout(connect, delay);
	}

	async function connect() {
		if (connecting || signal.aborted) return;
		disconnect();
		let state = model.get("status");
		if (state !== "running") {
			show(describe_state(state, model.get("status_detail")), state);
			return;
		}
		let base = page_base_url();
		if (base === null) {
			show("This front end has no Jupyter server page to connect through (try JupyterLab or Notebook 7).", "error");
			return;
		}
		let urls = route_urls(base, model.get("_ws_path"));
		show(attempt ? "Reconnecting…" : "Connecting…", "connecting");
		// The WebSocket goes first (the route answers 404/403 before any
		// handshake); only if it never connects is the route asked why over
		// HTTP, since browsers report a refused WebSocket only as code 1006.
		let client = new RFB(screen, urls.ws, { shared: true });
		let opened = false;
		rfb = client;
		client.background = "#20242a";
		client.focusOnClick = true;
		client.addEventListener("connect", () => {
			if (rfb !== client) return;
			opened = true;
			attempt = 0;
			show("Connected", "connected");
		});
		client.addEventListener("disconnect", async (/** @type {any} */ event) => {
			if (rfb !== client) return; // we closed it ourselves
			rfb = null;
			let reason = event.detail?.clean ? "Disconnected" : "Connection lost";
			if (!opened) {
				connecting = true;
				reason = (await probe(urls.http, signal)) ?? "The desktop did not answer";
				connecting = false;
				if (signal.aborted || rfb) return;
			}
			schedule_reconnect(reason);
		});
		client.addEventListener("clipboard", (/** @type {any} */ event) => {
			// The desktop's clipboard changed: mirror it into the kernel's trait.
			let text = event.detail?.text ?? "";
			remote_clipboard = text;
			if (is_primary() && model.get("clipboard") !== text) {
				model.set("clipboard", text);
				model.save_changes();
			}
		});
		client.addEventListener("securityfailure", (/** @type {any} */ event) => {
			show(`Refused by the desktop: ${event.detail?.reason || "security failure"}`, "error");
		});
		apply_traits();
	}

	// The notebook keeps scrolling while the pointer crosses a view that is not
	// focused: the wheel event is stopped before it reaches noVNC's canvas
	// handler (which would cancel it), and its default action, scrolling, stays.
	root.addEventListener(
		"wheel",
		(event) => {
			if (!root.contains(document.activeElement)) event.stopPropagation();
		},
		{ capture: true, signal },
	);
	root.addEventListener("focusin", () => root.classList.add("dw-focused"), { signal });
	root.addEventListener("focusout", () => root.classList.remove("dw-focused"), { signal });

	// The primary view tells the kernel its size, so that the next desktop
	// starts at it instead of being resized (and redrawn) once shown.
	/** @type {ReturnType<typeof setTimeout> | undefined} */
	let size_timer;
	let observer = new ResizeObserver(() => {
		clearTimeout(size_timer);
		size_timer = setTimeout(() => {
			if (!is_primary() || model.get("scale")) return;
			let size = [Math.round(screen.clientWidth), Math.round(screen.clientHeight)];
			let old = model.get("_view_size");
			if (size[0] > 0 && size[1] > 0 && (old?.[0] !== size[0] || old?.[1] !== size[1])) {
				model.set("_view_size", size);
				model.save_changes();
			}
		}, 200);
	});
	observer.observe(screen);
	signal.addEventListener("abort", () => {
		observer.disconnect();
		clearTimeout(size_timer);
	});

	let on_clipboard = () => {
		let text = model.get("clipboard");
		if (rfb && text !== remote_clipboard) rfb.clipboardPasteFrom(text);
	};
	model.on("change:clipboard", on_clipboard);

	/** @param {any} message */
	let on_message = (message) => {
		if (message?.type === "ctrl-alt-del") rfb?.sendCtrlAltDel();
	};
	model.on("msg:custom", on_message);

	let on_traits = () => apply_traits();
	let on_status = () => {
		let state = model.get("status");
		if (state === "running") {
			if (!rfb) {
				attempt = 0;
				connect();
			} else {
				show("Connected", "connected");
			}
		} else if (state === "session-exited") {
			// The X server still runs: stay connected, say what happened.
			show(describe_state(state, model.get("status_detail")), state);
		} else {
			disconnect();
			show(describe_state(state, model.get("status_detail")), state);
		}
	};
	let TRAITS = ["change:view_only", "change:scale", "change:height", "change:quality", "change:compression"];
	for (let name of TRAITS) model.on(name, on_traits);
	model.on("change:status", on_status);
	model.on("change:status_detail", on_status);

	apply_traits();
	connect();

	return () => {
		controller.abort();
		disconnect();
		for (let name of TRAITS) model.off(name, on_traits);
		model.off("change:status", on_status);
		model.off("change:status_detail", on_status);
		model.off("change:clipboard", on_clipboard);
		model.off("msg:custom", on_message);
		let id = model.get("_desktop_id");
		if (primary_views.get(id) === token) primary_views.delete(id);
		root.remove();
	};
}

/**
 * @param {string} state
 * @param {string} detail
 */
function describe_state(state, detail) {
	let why = detail ? ` (${detail})` : "";
	switch (state) {
		case "starting":
			return "Starting the desktop…";
		case "session-exited":
			return `The desktop session has ended${why}.\nRun d.restart() to start it again.`;
		case "stopped":
			return `This desktop is stopped${why}.`;
		case "failed":
			return `The desktop failed${why}.`;
		default:
			return `Desktop ${state}${why}`;
	}
}

export default { render };
