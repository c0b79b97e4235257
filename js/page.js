// @ts-check
/**
 * The full-page desktop behind the JupyterLab launcher tile: the widget's own
 * view module, driven by a small stand-in for the widget model whose state
 * comes from the server (`desktop/api/...`) instead of a kernel.
 *
 * With `config.standalone` it is the page of `Desktop.serve()` instead: no
 * Jupyter server behind it, so no Start/Stop, no links and no state polling;
 * the desktop's scaling and view-only setting come from the config.
 */
import view from "./widget.js";

/** @typedef {{ id: string, status: string, ws_path: string, display?: string, detail?: string }} DesktopState */

let config = JSON.parse(document.getElementById("jupyter-config-data")?.textContent ?? "{}");

/**
 * Enough of an anywidget model for the view: get/set/on/off/save_changes and custom messages.
 * @param {Record<string, any>} state
 * @returns {import("./widget.js").Model & { deliver: (message: any) => void }}
 */
function page_model(state) {
	/** @type {Map<string, Set<(...args: any[]) => void>>} */
	let listeners = new Map();
	let emit = (/** @type {string} */ event, /** @type {any[]} */ ...args) => {
		for (let callback of listeners.get(event) ?? []) callback(...args);
	};
	return {
		get: (/** @type {string} */ name) => state[name],
		set(/** @type {string} */ name, /** @type {any} */ value) {
			if (state[name] === value) return;
			state[name] = value;
			emit(`change:${name}`);
		},
		save_changes() {},
		send() {
			// No kernel behind this page: its view uses the server's route only (transport "server").
			throw new Error("the desktop page has no kernel to send to");
		},
		on(/** @type {string} */ event, /** @type {(...args: any[]) => void} */ callback) {
			if (!listeners.has(event)) listeners.set(event, new Set());
			listeners.get(event)?.add(callback);
		},
		off(/** @type {string} */ event, /** @type {any} */ callback) {
			if (callback) listeners.get(event)?.delete(callback);
			else listeners.delete(event);
		},
		/** Deliver a custom message to the view, as a kernel would. */
		deliver: (/** @type {any} */ message) => emit("msg:custom", message, []),
	};
}

/**
 * @param {string} action
 * @returns {Promise<DesktopState>}
 */
async function api(action) {
	let response = await fetch(`${config.baseUrl}desktop/api/${action}`, {
		method: action === "state" ? "GET" : "POST",
		credentials: "same-origin",
		headers: { "X-XSRFToken": config.xsrf },
	});
	if (!response.ok) {
		let text = await response.text();
		let message = text;
		try {
			message = JSON.parse(text).message ?? text;
		} catch {
			// not JSON (a proxy's error page): show it as it is
		}
		throw new Error(`${action}: ${message} (${response.status})`);
	}
	return response.json();
}

/**
 * @param {string} tag
 * @param {Record<string, string>} attributes
 * @param {string} [text]
 */
function element(tag, attributes = {}, text = "") {
	let node = document.createElement(tag);
	for (let [name, value] of Object.entries(attributes)) node.setAttribute(name, value);
	if (text) node.textContent = text;
	return node;
}

function main() {
	let page = /** @type {HTMLElement} */ (document.getElementById("dw-page"));
	let desktop = config.desktop ?? { id: "", status: "stopped", ws_path: "" };
	// Opening the page starts the desktop, by a POST with the XSRF token (a GET
	// from any other site could otherwise start one).
	if (config.autostart) desktop = { ...desktop, status: "starting" };
	let model = page_model({
		_desktop_id: desktop.id,
		_ws_path: desktop.ws_path,
		status: desktop.status,
		status_detail: config.error ?? "",
		view_only: Boolean(config.viewOnly),
		scale: Boolean(config.scale),
		height: "100%",
		quality: config.view.quality,
		compression: config.view.compression,
		clipboard: "",
		_view_size: [],
		transport: "server",
	});

	let bar = element("header", { class: "dw-bar" });
	let standalone = Boolean(config.standalone);
	let title = element("span", { class: "dw-title" }, "Desktop");
	let state = element("span", { class: "dw-state", role: "status" });
	let clipboard = /** @type {HTMLTextAreaElement} */ (
		element("textarea", { class: "dw-clipboard", rows: "1", placeholder: "Clipboard", "aria-label": "Clipboard" })
	);
	let cad = element("button", { type: "button", title: "Send Ctrl+Alt+Del" }, "Ctrl-Alt-Del");
	let full = element("button", { type: "button", title: "Full screen" }, "Full screen");
	let power = element("button", { type: "button", class: "dw-power" }, "Stop");
	let links = element("nav", { class: "dw-links" });
	if (config.labUrl) links.append(element("a", { href: config.labUrl }, "JupyterLab"));
	if (config.hubUrl) links.append(element("a", { href: config.hubUrl }, "Hub Control Panel"));
	bar.append(title, state, clipboard, cad, full);
	if (!standalone) bar.append(power, links);
	let screen = element("main", { class: "dw-page-screen" });
	page.append(bar, screen);

	let render_state = () => {
		let running = model.get("status") === "running";
		let detail = model.get("status_detail");
		// A long reason (an error) is shown by the view, in the middle; the bar keeps it short.
		let reason = detail && detail.length <= 40 ? ` (${detail})` : "";
		state.textContent = running ? `running on ${desktop.display ?? "?"}` : `${model.get("status")}${reason}`;
		state.title = detail ?? "";
		state.dataset.kind = model.get("status");
		power.textContent = running ? "Stop" : "Start";
		cad.toggleAttribute("disabled", !running);
	};
	model.on("change:status", render_state);
	model.on("change:clipboard", () => {
		if (document.activeElement !== clipboard) clipboard.value = model.get("clipboard");
	});
	clipboard.addEventListener("change", () => model.set("clipboard", clipboard.value));
	cad.addEventListener("click", () => model.deliver({ type: "ctrl-alt-del" }));
	full.addEventListener("click", () => {
		if (document.fullscreenElement) document.exitFullscreen();
		else page.requestFullscreen();
	});

	/** @param {DesktopState} next */
	let adopt = (next) => {
		desktop = next;
		model.set("_desktop_id", next.id);
		model.set("_ws_path", next.ws_path);
		model.set("status_detail", next.detail ?? "");
		model.set("status", next.status);
		render_state();
	};
	let busy = false;
	/** @param {"start" | "stop"} action */
	let act = async (action) => {
		busy = true;
		power.setAttribute("disabled", "");
		try {
			adopt(await api(action));
		} catch (error) {
			adopt({ id: "", status: "failed", ws_path: "", detail: String(error) });
		} finally {
			busy = false;
			power.removeAttribute("disabled");
		}
	};
	power.addEventListener("click", () => act(model.get("status") === "running" ? "stop" : "start"));
	// Notice a stop (or a new desktop) made elsewhere, e.g. from a kernel.
	// (A standalone page's server ends with its desktop; the view notices that.)
	if (!standalone) {
		setInterval(async () => {
			if (busy) return; // the answer to the start or stop says what it is
			try {
				let next = await api("state");
				let changed = next.id !== model.get("_desktop_id") || next.status !== model.get("status");
				if (changed || (next.detail ?? "") !== model.get("status_detail")) adopt(next);
			} catch {
				// the server is restarting; the view shows its own reconnecting status
			}
		}, 3000);
	}

	render_state();
	view.render({ model, el: screen });
	if (config.autostart) act("start");
}

main();
