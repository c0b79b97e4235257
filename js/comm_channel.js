// @ts-check
/**
 * A WebSocket-like channel that carries one RFB connection over the widget's
 * comm, for hosts where the Jupyter server has no route to the desktop.
 *
 * noVNC's `new RFB(target, channel)` accepts any object with WebSocket's
 * shape (core/websock.js checks for send, close, binaryType, onopen,
 * onmessage, onerror, protocol and readyState), so noVNC itself is unchanged.
 * The kernel (desktop_widget/_comm.py) opens its own connection to the
 * desktop's socket for each channel and pumps bytes both ways; every message
 * carries the channel's id because custom messages reach every view of a model.
 *
 * Flow control: the kernel sends at most a window of bytes that this channel
 * has not acknowledged; the channel acknowledges what noVNC has consumed.
 */

/** A WebSocket's readyState values. */
const CONNECTING = 0;
const OPEN = 1;
const CLOSING = 2;
const CLOSED = 3;

/** Acknowledge at once past this many bytes (a quarter of the kernel's window)... */
const ACK_BYTES = 512 * 1024;
/**
 * ...else at most this long after a message was consumed (ms), unless the
 * view sends data first: acknowledgements ride on it (noVNC answers most
 * updates with a request or a fence reply). Each message costs the kernel
 * and the page a round of Jupyter's messaging, so fewer is faster; 25 ms of
 * data is far below the window at any rate the comm reaches.
 */
const ACK_DELAY = 25;

/**
 * @typedef {object} CommModel
 * @property {(content: any, callbacks?: any, buffers?: ArrayBuffer[] | ArrayBufferView[]) => void} send
 * @property {(event: string, callback: (...args: any[]) => void) => void} on
 * @property {(event: string, callback?: (...args: any[]) => void) => void} off
 */

/** @returns {string} a new channel id, unique among the views of one kernel */
function new_id() {
	let bytes = new Uint8Array(8);
	crypto.getRandomValues(bytes);
	return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

export class CommChannel {
	/**
	 * @param {CommModel} model
	 * @param {AbortSignal} signal closes the channel (the view went away)
	 */
	constructor(model, signal) {
		this.id = new_id();
		this.binaryType = "arraybuffer";
		this.protocol = "";
		this.readyState = CONNECTING;
		/** @type {((event: any) => void) | null} */
		this.onopen = null;
		/** @type {((event: { data: ArrayBuffer }) => void) | null} */
		this.onmessage = null;
		/** @type {((event: { code: number, reason: string, wasClean: boolean }) => void) | null} */
		this.onclose = null;
		/** @type {((event: any) => void) | null} */
		this.onerror = null;
		/** Why the kernel closed the channel, if it did. */
		this.close_reason = "";
		this._model = model;
		/** Numbers the view's data messages: the kernel writes them in this order. */
		this._seq = 0;
		this._unacked_bytes = 0;
		this._unacked_messages = 0;
		/** @type {ReturnType<typeof setTimeout> | undefined} */
		this._ack_timer = undefined;
		/** Ends with the channel: what it listens to is released then. */
		this._life = new AbortController();
		this._on_custom = this._on_custom.bind(this);
		model.on("msg:custom", this._on_custom);
		signal.addEventListener("abort", () => this.close(), { once: true, signal: this._life.signal });
		// Sent once this constructor's caller (noVNC) has attached its handlers.
		queueMicrotask(() => {
			if (this.readyState === CONNECTING) this._post("rfb-open");
		});
	}

	/**
	 * @param {string} kind
	 * @param {object} [extra]
	 * @param {ArrayBuffer[] | ArrayBufferView[]} [buffers]
	 */
	_post(kind, extra = {}, buffers = undefined) {
		this._model.send({ dw: kind, view: this.id, ...extra }, undefined, buffers);
	}

	/** @param {ArrayBuffer | ArrayBufferView} data */
	send(data) {
		if (this.readyState !== OPEN) return;
		// noVNC passes a view into its reusable send queue: the kernel message
		// must own exactly these bytes (Jupyter's serializer sends whole buffers).
		let bytes = data instanceof ArrayBuffer ? data.slice(0) : new Uint8Array(data.buffer, data.byteOffset, data.byteLength).slice().buffer;
		this._post("rfb-data", { seq: this._seq++, ...this._take_ack() }, [bytes]);
	}

	close() {
		if (this.readyState === CLOSING || this.readyState === CLOSED) return;
		let was_open = this.readyState === OPEN || this.readyState === CONNECTING;
		this.readyState = CLOSING;
		if (was_open) this._post("rfb-close", { seq: this._seq++ });
		this._finish(1000, "closed by the view", true);
	}

	/**
	 * @param {number} code
	 * @param {string} reason
	 * @param {boolean} clean
	 */
	_finish(code, reason, clean) {
		this.readyState = CLOSED;
		clearTimeout(this._ack_timer);
		this._model.off("msg:custom", this._on_custom);
		this._life.abort();
		// Like a WebSocket, the close event comes later, never inside close().
		setTimeout(() => this.onclose?.({ code, reason, wasClean: clean }), 0);
	}

	/**
	 * @param {any} message
	 * @param {DataView[]} [buffers]
	 */
	_on_custom(message, buffers) {
		if (message?.view !== this.id) return;
		switch (message.dw) {
			case "rfb-opened":
				if (this.readyState !== CONNECTING) return;
				this.readyState = OPEN;
				this.onopen?.({ type: "open" });
				break;
			case "rfb-data":
				if (this.readyState !== OPEN) return;
				for (let buffer of buffers ?? []) this._deliver(buffer);
				this._unacked_messages += 1;
				this._schedule_ack();
				break;
			case "rfb-closed":
				if (this.readyState === CLOSED) return;
				this.close_reason = message.reason ?? "";
				if (this.readyState === CONNECTING) this.onerror?.({ type: "error" });
				this._finish(1006, this.close_reason, false);
				break;
		}
	}

	/** @param {DataView} view */
	_deliver(view) {
		// noVNC reads `new Uint8Array(event.data)`: hand it an ArrayBuffer that
		// holds exactly these bytes (a copy only if the DataView is a slice).
		let whole = view.byteOffset === 0 && view.byteLength === view.buffer.byteLength;
		let data = whole ? view.buffer : view.buffer.slice(view.byteOffset, view.byteOffset + view.byteLength);
		this._unacked_bytes += view.byteLength;
		this.onmessage?.({ data: /** @type {ArrayBuffer} */ (data) });
	}

	_schedule_ack() {
		if (this._unacked_bytes >= ACK_BYTES) {
			this._ack();
		} else if (this._ack_timer === undefined) {
			this._ack_timer = setTimeout(() => this._ack(), ACK_DELAY);
		}
	}

	/** What is consumed and not yet acknowledged, now counted as acknowledged. */
	_take_ack() {
		clearTimeout(this._ack_timer);
		this._ack_timer = undefined;
		let ack = { bytes: this._unacked_bytes, messages: this._unacked_messages };
		this._unacked_bytes = 0;
		this._unacked_messages = 0;
		return ack;
	}

	_ack() {
		if (this.readyState !== OPEN) return;
		let ack = this._take_ack();
		if (ack.bytes || ack.messages) this._post("rfb-ack", ack);
	}
}
