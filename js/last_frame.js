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
 * Add the last-frame layer to a view's root element.
 * @param {{ get: (name: string) => any, on: Function, off: Function }} model
 * @param {HTMLElement} root the view's `.dw-root`
 * @param {AbortSignal} signal ends the layer with the view
 * @returns {(kind: string, detail?: string) => void} call on every change of the view's state
 *   (and the desktop's status detail): "connected" hides the frame, any other state shows it
 *   (if there is one), captioned.
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
	let detail = "";

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
		update(kind, detail);
	}

	/** @param {string} new_kind @param {string} [new_detail] */
	function update(new_kind, new_detail = "") {
		kind = new_kind;
		detail = new_detail;
		if (!url) {
			root.dataset.frame = "none";
		} else if (kind === "connected") {
			root.dataset.frame = "hidden";
		} else {
			root.dataset.frame = "shown";
			let reason = /** @type {Record<string, string>} */ (REASON)[kind];
			let why = reason && detail ? ` (${detail})` : "";
			reason ??= "Not live";
			caption.textContent = `${reason}${why} · last frame at ${frame_time(model.get("_last_frame_time"))}`;
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
