// @ts-check
/**
 * The view of one desktop: a noVNC client connected through the Jupyter
 * server's authenticated route `{baseUrl}desktop-widget/<id>/` or, where the
 * page has no such route (no Jupyter server page, a server without our
 * extension, a kernel elsewhere), through the widget's comm and the kernel
 * (comm_channel.js). The `transport` trait picks: "auto", "server" or "comm".
 *
 * Everything a view creates (the RFB client, DOM listeners, timers) is tied to
 * one AbortController and released by the cleanup that `render` returns.
 */
import RFB from "@novnc/novnc";
import { CommChannel } from "./comm_channel.js";
import { last_frame_layer, saved_page } from "./last_frame.js";

/**
 * What the view uses of the widget's model (anywidget's AnyModel; page.js has a stand-in).
 * @typedef {object} Model
 * @property {(name: string) => any} get
 * @property {(name: string, value: any) => void} set
 * @property {() => void} save_changes
 * @property {(content: any, callbacks?: any, buffers?: ArrayBuffer[] | ArrayBufferView[]) => void} send
 * @property {(event: string, callback: (...args: any[]) => void) => void} on
 * @property {(event: string, callback?: (...args: any[]) => void) => void} off
 */

/** What a view says once its kernel has restarted and nothing can reach the desktop for it. */
const KERNEL_GONE = "The kernel behind this view has restarted or stopped: run the cell again for a live desktop.";

/** Delays between reconnection attempts, in ms; the last one repeats. */
const BACKOFF = [250, 500, 1000, 2000, 4000, 8000];

/**
 * The open views of each desktop in this page, oldest first. The first one
 * (the primary) sizes the remote screen, the others scale; when it goes, the
 * next one takes over at once.
 * @type {Map<string, Array<{ token: symbol, promote: () => void }>>}
 */
const views_of = new Map();

/** What the status line and tooltip call each transport. */
const TRANSPORT_LABEL = {
	server: "through the Jupyter server",
	comm: "through the kernel (widget comm)",
};

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
 * @typedef {object} RouteAnswer
 * @property {boolean} ok the route serves this desktop: a WebSocket should work
 * @property {boolean} permanent retrying will not help (another transport might)
 * @property {string} reason why not, naming the cause
 * @property {boolean} [missing] the route runs here but knows no such desktop: either it
 *   runs elsewhere or (for a desktop this view was connected to here) it has stopped
 */

/**
 * Ask the route whether the desktop is reachable, after a WebSocket failed
 * (browsers report a refused WebSocket only as code 1006). Redirects are
 * followed: a server without our extension redirects `…/<id>/` to `…/<id>`
 * (its trailing-slash rule) and then answers 404, while an expired login ends
 * on a login page.
 * @param {string} url
 * @param {AbortSignal} signal
 * @returns {Promise<RouteAnswer>}
 */
export async function probe(url, signal) {
	let xsrf = xsrf_cookie();
	let response;
	try {
		response = await fetch(url, {
			signal,
			credentials: "same-origin",
			redirect: "follow",
			cache: "no-store",
			headers: xsrf ? { "X-XSRFToken": xsrf } : {},
		});
	} catch (error) {
		return { ok: false, permanent: false, reason: "the Jupyter server cannot be reached" };
	}
	let status = response.status;
	if (status === 204) return { ok: true, permanent: false, reason: "" };
	let body = "";
	try {
		body = await response.text();
	} catch {
		// the status says enough
	}
	if (status === 404 && (response.statusText === "No Such Desktop" || body.includes("No Such Desktop"))) {
		return {
			ok: false,
			permanent: true,
			missing: true,
			reason: "this desktop does not run where this Jupyter server runs (its kernel is elsewhere)",
		};
	}
	// Our route never redirects: a 404, or a 403 after a redirect (standalone Voila sends
	// `…/<id>/` to its file handler, which forbids it), means there is no route here.
	if (status === 404 || (status === 403 && response.redirected)) {
		return {
			ok: false,
			permanent: true,
			reason:
				"this Jupyter server has no desktop_widget route: install desktop_widget in the " +
				"Jupyter server's environment and restart it, or use transport=\"comm\"",
		};
	}
	if (status === 403) {
		return {
			ok: false,
			permanent: true,
			reason: "this Jupyter server does not let you use desktops (the right to execute terminals is needed)",
		};
	}
	if (response.redirected) {
		return { ok: false, permanent: true, reason: "not logged in to this Jupyter server: log in and reload the page" };
	}
	return { ok: false, permanent: false, reason: `the Jupyter server answered ${status}` };
}

/**
 * @param {{ model: Model, el: HTMLElement }} context
 * @returns {() => void}
 */
function render({ model, el }) {
	let controller = new AbortController();
	let { signal } = controller;
	let token = Symbol("view");

	// Inside an ipywidgets container (a flex Box) the output element must
	// grow to the space it is given, not shrink to its content.
	el.classList.add("dw-host");
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

	/** @type {RFB | null} */
	let rfb = null;
	/** @type {"server" | "comm" | null} the transport of the current (or last) connection */
	let transport = null;
	/** Why the route cannot serve this view, once "auto" has found out: it then uses the comm. */
	let route_unusable = "";
	let attempt = 0;
	/** @type {ReturnType<typeof setTimeout> | undefined} */
	let retry_timer;
	let connecting = false;
	/**
	 * Counts disconnects (a status change, a new connection): an answer that arrives
	 * for an older one (a route probe in flight) is stale and must not overwrite
	 * what the view shows now (say "stopped").
	 */
	let generation = 0;
	/** The desktop this view was last connected to over the server route, so a 404 for it means it stopped. */
	let served_id = "";
	/**
	 * Whether no kernel is behind this widget any more: it restarted or went, or the
	 * notebook was reopened after (its state comes from the file). The widget manager
	 * marks the element of a view restored without a kernel, and tells a live model when
	 * the kernel restarts (`comm_live_update`). The comm cannot carry a connection then;
	 * the server route still may (a desktop that outlives its kernel).
	 */
	let comm_dead = false;
	let kernel_gone = () => comm_dead || el.classList.contains("jupyter-widgets-disconnected");
	/** The clipboard text the desktop last sent, so it is not pasted back to it. */
	let remote_clipboard = "";

	/** @param {string} text @param {string} kind */
	function show(text, kind) {
		status.textContent = text;
		status.dataset.kind = kind;
		root.dataset.state = kind;
		// The tooltip follows (show_connected then names the transport): never "connected" on a dead view.
		root.title = `Desktop ${model.get("_desktop_id")}: ${text}`;
		// A view still connected after the session ended shows the live (empty) screen.
		frame(kind === "session-exited" && rfb ? "connected" : kind, text);
	}

	/** @param {"server" | "comm"} how */
	function show_connected(how) {
		let label = TRANSPORT_LABEL[how];
		show(`Connected ${label}`, "connected");
		root.dataset.transport = how;
		let why = how === "comm" && route_unusable ? ` (the server route: ${route_unusable})` : "";
		root.title = `Desktop ${model.get("_desktop_id")}: connected ${label}${why}`;
	}

	let entry = { token, promote: () => on_promoted() };
	let desktop_id = model.get("_desktop_id");
	if (!views_of.has(desktop_id)) views_of.set(desktop_id, []);
	views_of.get(desktop_id)?.push(entry);

	function is_primary() {
		return views_of.get(desktop_id)?.[0]?.token === token;
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
		generation += 1;
		clearTimeout(retry_timer);
		if (rfb) {
			let old = rfb;
			rfb = null;
			old.disconnect();
		}
	}

	/** @param {string} reason @param {number} [delay] */
	function schedule_reconnect(reason, delay) {
		if (signal.aborted || model.get("status") !== "running") return;
		if (kernel_gone() && choose_transport() === "comm") {
			connect(); // says why, without a retry
			return;
		}
		delay ??= BACKOFF[Math.min(attempt, BACKOFF.length - 1)];
		attempt += 1;
		show(`${reason} — reconnecting in ${(delay / 1000).toFixed(1)} s…`, "reconnecting");
		clearTimeout(retry_timer);
		retry_timer = setTimeout(connect, delay);
	}

	/** @returns {"server" | "comm"} */
	function choose_transport() {
		let wanted = model.get("transport");
		if (wanted === "server" || wanted === "comm") return wanted;
		return page_base_url() === null || route_unusable ? "comm" : "server";
	}

	/**
	 * @param {RFB} client
	 * @param {"server" | "comm"} how
	 * @param {(opened: boolean, clean: boolean) => Promise<void> | void} on_end
	 */
	function watch(client, how, on_end) {
		let opened = false;
		rfb = client;
		transport = how;
		root.dataset.transport = how;
		client.background = "#20242a";
		client.focusOnClick = true;
		client.addEventListener("connect", () => {
			if (rfb !== client) return;
			opened = true;
			attempt = 0;
			if (how === "server") served_id = model.get("_desktop_id");
			show_connected(how);
		});
		client.addEventListener("disconnect", (/** @type {any} */ event) => {
			if (rfb !== client) return; // we closed it ourselves
			rfb = null;
			on_end(opened, Boolean(event.detail?.clean));
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

	function connect_server() {
		let base = page_base_url();
		if (base === null) {
			show(
				'This page is not a Jupyter server page, so transport="server" cannot work here: ' +
					'use transport="auto" or "comm".',
				"error",
			);
			return;
		}
		let urls = route_urls(base, model.get("_ws_path"));
		show(attempt ? "Reconnecting…" : "Connecting…", "connecting");
		// The WebSocket goes first (the route answers 404/403 before any
		// handshake); only if it never connects is the route asked why over
		// HTTP, since browsers report a refused WebSocket only as code 1006.
		let client = new RFB(screen, urls.ws, { shared: true });
		watch(client, "server", async (opened, clean) => {
			if (opened) {
				schedule_reconnect(clean ? "Disconnected" : "Connection lost");
				return;
			}
			connecting = true;
			let asked = generation;
			let answer = await probe(urls.http, signal);
			connecting = false;
			// Stopped (or reconnected) meanwhile: the status change has said so already.
			if (signal.aborted || rfb || asked !== generation) return;
			if (answer.ok) {
				schedule_reconnect("The desktop did not answer");
			} else if (answer.missing && served_id === model.get("_desktop_id")) {
				// It was served here and is gone: it stopped, not "elsewhere" (with its kernel, if that went).
				if (kernel_gone()) show(KERNEL_GONE, "kernel-gone");
				else show(describe_state("stopped", model.get("status_detail")), "stopped");
			} else if (answer.permanent && model.get("transport") === "auto") {
				// No route for this desktop here: the comm, silently.
				route_unusable = answer.reason;
				attempt = 0;
				connect();
			} else if (answer.permanent) {
				show(`Cannot connect: ${answer.reason}.`, "error");
			} else {
				schedule_reconnect(answer.reason);
			}
		});
	}

	function connect_comm() {
		show(attempt ? "Reconnecting through the kernel…" : "Connecting through the kernel…", "connecting");
		let channel = new CommChannel(model, signal);
		let client = new RFB(screen, channel, { shared: true });
		watch(client, "comm", (opened, clean) => {
			let why = channel.close_reason;
			if (opened) {
				schedule_reconnect(why ? `Connection lost: ${why}` : clean ? "Disconnected" : "Connection lost");
			} else {
				schedule_reconnect(why ? `The kernel could not connect: ${why}` : "The kernel did not answer");
			}
		});
	}

	function connect() {
		if (connecting || signal.aborted) return;
		disconnect();
		let state = model.get("status");
		if (state !== "running") {
			show(describe_state(state, model.get("status_detail")), state);
			return;
		}
		if (saved_page()) {
			// No kernel behind a saved copy, ever: no connection to try.
			show("A saved copy of the notebook: the desktop is not live here.", "saved");
			return;
		}
		let how = choose_transport();
		if (how === "comm" && kernel_gone()) {
			show(KERNEL_GONE, "kernel-gone");
		} else if (how === "comm") {
			connect_comm();
		} else {
			connect_server();
		}
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
	function report_size() {
		if (!is_primary() || model.get("scale")) return;
		let size = [Math.round(screen.clientWidth), Math.round(screen.clientHeight)];
		let old = model.get("_view_size");
		if (size[0] > 0 && size[1] > 0 && (old?.[0] !== size[0] || old?.[1] !== size[1])) {
			model.set("_view_size", size);
			model.save_changes();
		}
	}
	/** @type {ReturnType<typeof setTimeout> | undefined} */
	let size_timer;
	let observer = new ResizeObserver(() => {
		clearTimeout(size_timer);
		size_timer = setTimeout(report_size, 200);
	});
	observer.observe(screen);
	signal.addEventListener("abort", () => {
		observer.disconnect();
		clearTimeout(size_timer);
	});

	/** The primary view went away and this one is now first: size the desktop. */
	function on_promoted() {
		if (signal.aborted) return;
		apply_traits();
		report_size();
	}

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
			} else if (transport) {
				show_connected(transport);
			}
		} else if (state === "session-exited") {
			// The X server still runs: stay connected, say what happened.
			show(describe_state(state, model.get("status_detail")), state);
		} else {
			disconnect();
			show(describe_state(state, model.get("status_detail")), state);
		}
	};
	let on_transport = () => {
		// A new setting: connect again the way it says.
		route_unusable = "";
		attempt = 0;
		connect();
	};
	let on_comm_live = () => {
		// Fired after render only when the manager disconnects every model: the kernel restarts.
		comm_dead = true;
		if (transport === "comm" || !rfb) connect();
	};
	model.on("comm_live_update", on_comm_live);
	let TRAITS = ["change:view_only", "change:scale", "change:height", "change:quality", "change:compression"];
	for (let name of TRAITS) model.on(name, on_traits);
	model.on("change:status", on_status);
	model.on("change:status_detail", on_status);
	model.on("change:transport", on_transport);

	apply_traits();
	connect();

	return () => {
		controller.abort();
		disconnect();
		for (let name of TRAITS) model.off(name, on_traits);
		model.off("change:status", on_status);
		model.off("change:status_detail", on_status);
		model.off("change:clipboard", on_clipboard);
		model.off("change:transport", on_transport);
		model.off("msg:custom", on_message);
		model.off("comm_live_update", on_comm_live);
		let views = views_of.get(desktop_id) ?? [];
		let was_primary = views[0] === entry;
		views.splice(views.indexOf(entry), 1);
		if (views.length === 0) views_of.delete(desktop_id);
		else if (was_primary) views[0].promote();
		root.remove();
		el.classList.remove("dw-host");
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
