// @ts-check
/**
 * The desktop's last frame: an image the kernel keeps in the `_last_frame`
 * trait (desktop_widget/_snapshot.py), so that saved widget state carries it.
 * The view shows it in place of the live desktop whenever it has no live
 * connection (the desktop stopped, the kernel is gone, a static page such as
 * nbviewer or nbconvert's HTML), captioned as a past frame, never as live.
 */

/** What the caption calls each state of the view that is not live. */
const REASON = {
	stopped: "Desktop stopped",
	failed: "Desktop failed",
	"session-exited": "Session ended",
};

/**
 * When the frame was taken, as a person reads it: "14:32", or "1 Dec, 14:32" on another day.
 * @param {number} seconds since the epoch
 * @returns {string}
 */
export function frame_time(seconds) {
	let when = new Date(seconds * 1000);
	let time = { hour: "2-digit", minute: "2-digit" };
	if (when.toDateString() === new Date().toDateString()) {
		return when.toLocaleTimeString([], /** @type {any} */ (time));
	}
	return when.toLocaleString([], /** @type {any} */ ({ day: "numeric", month: "short", ...time }));
}

/**
 * Whether this page is a saved copy with embedded widget state (nbconvert's
 * HTML, nbviewer, Jupyter Book): there is no kernel behind it, ever.
 * @returns {boolean}
 */
export function saved_page() {
	return document.querySelector('script[type="application/vnd.jupyter.widget-state+json"]') !== null;
}

/**
 * Add the last-frame layer to a view's root element.
 * @param {{ get: (name: string) => any, on: Function, off: Function }} model
 * @param {HTMLElement} root the view's `.dw-root`
 * @param {AbortSignal} signal ends the layer with the view
 * @returns {(kind: string, text: string) => void} call with the view's state and status line on
 *   every change: "connected" hides the frame; any other state shows it (if there is one) with a
 *   caption that says why it is not live, and the status line in it (the frame hides the box).
 */
export function last_frame_layer(model, root, signal) {
	let layer = document.createElement("div");
	layer.className = "dw-frame";
	let image = document.createElement("img");
	image.alt = "The desktop's last frame";
	image.draggable = false;
	let caption = document.createElement("div");
	caption.className = "dw-frame-caption";
	layer.append(image, caption);
	root.append(layer);

	/** @type {string | null} */
	let url = null;
	let kind = "starting";
	let text = "";

	function load() {
		if (url) URL.revokeObjectURL(url);
		url = null;
		let data = model.get("_last_frame");
		if (data && data.byteLength > 0) {
			url = URL.createObjectURL(new Blob([data], { type: model.get("_last_frame_mime") || "image/jpeg" }));
			image.src = url;
		} else {
			image.removeAttribute("src");
		}
		update(kind, text);
	}

	/** @param {string} new_kind @param {string} new_text */
	function update(new_kind, new_text) {
		kind = new_kind;
		text = new_text;
		if (!url) {
			root.dataset.frame = "none";
		} else if (kind === "connected") {
			root.dataset.frame = "hidden";
		} else {
			root.dataset.frame = "shown";
			let when = `last frame at ${frame_time(model.get("_last_frame_time"))}`;
			let reason = /** @type {Record<string, string>} */ (REASON)[kind];
			let detail = model.get("status_detail");
			if (reason) {
				caption.textContent = `${reason}${detail ? ` (${detail})` : ""} · ${when}`;
			} else if (saved_page()) {
				caption.textContent = `Saved page, not live · ${when}`;
			} else {
				caption.textContent = `Not live · ${when}${text ? ` — ${text}` : ""}`;
			}
		}
	}

	model.on("change:_last_frame", load);
	signal.addEventListener("abort", () => {
		model.off("change:_last_frame", load);
		if (url) URL.revokeObjectURL(url);
		layer.remove();
	});
	load();
	return update;
}
