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
 *
 * Pacing: every message to the kernel costs a round of Jupyter's messaging,
 * and the kernel answers each with two status messages (busy, idle) that the
 * page handles too: at 60 updates a second noVNC's fence replies alone made
 * the page's main thread the bottleneck. So one message at a time is in
 * flight: a lone message (a key, a click) goes at once; what noVNC sends while
 * the kernel has not finished the previous one waits and then goes as one
 * message. The kernel says it has finished a message with its idle status;
 * hosts that do not pass that back are paced by a short timer instead.
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
 * A message in flight gives way after this long (ms) even without the kernel's
 * idle status: once that status has been seen (it then comes for every
 * message; a long wait means a busy kernel, which takes the next message only
 * after this one anyway)...
 */
const HOLD_MAX = 250;
/** ...and before it has (a host that does not pass status back): at most this often. */
const HOLD_BLIND = 16;

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
		/** noVNC's bytes not yet sent: they go as one message when none is in flight. */
		/** @type {Uint8Array[]} */
		this._out = [];
		/** An acknowledgement is due (its timer ran out or past ACK_BYTES). */
		this._ack_due = false;
		/** A message to the kernel is in flight (until its idle status or the hold timer). */
		this._in_flight = false;
		/** The kernel's idle status has come back for one of our messages. */
		this._status_seen = false;
		/** @type {ReturnType<typeof setTimeout> | undefined} */
		this._hold_timer = undefined;
		/** Numbers our messages to the kernel: the one in flight is the last. */
		this._flight = 0;
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
	 * @param {object} [callbacks] Jupyter's message callbacks
	 */
	_post(kind, extra = {}, buffers = undefined, callbacks = undefined) {
		this._model.send({ dw: kind, view: this.id, ...extra }, callbacks, buffers);
	}

	/** @param {ArrayBuffer | ArrayBufferView} data */
	send(data) {
		if (this.readyState !== OPEN) return;
		// noVNC passes a view into its reusable send queue: keep a copy of exactly these bytes.
		let bytes = data instanceof ArrayBuffer ? new Uint8Array(data) : new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
		this._out.push(bytes.slice());
		if (!this._in_flight) this._flush();
	}

	close() {
		if (this.readyState === CLOSING || this.readyState === CLOSED) return;
		let was_open = this.readyState === OPEN || this.readyState === CONNECTING;
		this.readyState = CLOSING;
		if (was_open) {
			this._send_out(); // what noVNC sent before closing goes first
			this._post("rfb-close", { seq: this._seq++ });
		}
		this._finish(1000, "closed by the view", true);
	}

	/** Send what waits (noVNC's bytes, else a due acknowledgement) as one message, now in flight. */
	_flush() {
		if (this.readyState !== OPEN) return;
		let sent = this._send_out();
		if (!sent && this._ack_due) {
			let ack = this._take_ack();
			sent = ack.bytes > 0 || ack.messages > 0;
			if (sent) this._post("rfb-ack", ack, undefined, this._callbacks());
		}
		if (sent) {
			this._in_flight = true;
			let flight = this._flight;
			this._hold_timer = setTimeout(() => this._landed(flight), this._status_seen ? HOLD_MAX : HOLD_BLIND);
		}
	}

	/** @returns {boolean} whether noVNC's waiting bytes were sent (as one rfb-data message) */
	_send_out() {
		if (this._out.length === 0) return false;
		let parts = this._out;
		this._out = [];
		let bytes = parts[0];
		if (parts.length > 1) {
			bytes = new Uint8Array(parts.reduce((n, p) => n + p.byteLength, 0));
			let at = 0;
			for (let part of parts) {
				bytes.set(part, at);
				at += part.byteLength;
			}
		}
		// `bytes` owns exactly its buffer (a copy): Jupyter's serializer sends a view's whole buffer.
		this._post("rfb-data", { seq: this._seq++, ...this._take_ack() }, [bytes], this._callbacks());
		return true;
	}

	/** Jupyter's callbacks for a message of ours: its idle status means the kernel has handled it. */
	_callbacks() {
		let flight = ++this._flight;
		return {
			iopub: {
				/** @param {any} msg */
				status: (msg) => {
					if (msg?.content?.execution_state !== "idle") return;
					this._status_seen = true;
					this._landed(flight);
				},
			},
		};
	}

	/**
	 * The message in flight has been handled (or its hold ran out): the next may go.
	 * @param {number} flight which message (a late status of an earlier one changes nothing)
	 */
	_landed(flight) {
		if (flight !== this._flight || !this._in_flight) return;
		clearTimeout(this._hold_timer);
		this._hold_timer = undefined;
		this._in_flight = false;
		this._flush();
	}

	/**
	 * @param {number} code
	 * @param {string} reason
	 * @param {boolean} clean
	 */
	_finish(code, reason, clean) {
		this.readyState = CLOSED;
		clearTimeout(this._ack_timer);
		clearTimeout(this._hold_timer);
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
		this._ack_due = false;
		let ack = { bytes: this._unacked_bytes, messages: this._unacked_messages };
		this._unacked_bytes = 0;
		this._unacked_messages = 0;
		return ack;
	}

	_ack() {
		clearTimeout(this._ack_timer);
		this._ack_timer = undefined;
		this._ack_due = true;
		if (!this._in_flight) this._flush();
	}
}
