// Instrumentation injected into every benchmark page before its own scripts
// (Playwright's add_init_script), for ours and for upstream alike. It changes
// nothing the page does; it only watches:
//
// * every WebSocket whose URL is a desktop's (ours: desktop-widget/, upstream:
//   desktop-websockify/): when it was created and opened, bytes received/sent;
// * every draw onto a visible canvas (noVNC copies its back buffer to the
//   visible canvas with drawImage when a frame is complete): the first frame,
//   the number of frames, and "watches": the moment given pixels first show
//   given colours on each canvas;
//
// All times are wall-clock milliseconds: performance.timeOrigin + performance.now().
(() => {
	const now = () => performance.timeOrigin + performance.now();
	const B = {
		ws: [],
		bytesIn: 0,
		bytesOut: 0,
		msgsIn: 0,
		lastMsg: null,
		canvases: [],
		flips: 0,
		lastFlip: 0,
		watches: [],
		rafOn: false,
		rafDistinct: 0,
		rafSamples: 0,
		rafRegion: null,
		tRun: null,
		tRoot: null,
		now,
	};
	window.__bench = B;
	const isDesktopUrl = (url) => /desktop-widget\/|desktop-websockify/.test(String(url));

	// --- WebSockets ------------------------------------------------------------
	// A wrapper function, not a subclass: noVNC checks that the socket's own
	// prototype has the WebSocket methods.
	const NativeWebSocket = window.WebSocket;
	const nativeSend = NativeWebSocket.prototype.send;
	NativeWebSocket.prototype.send = function (data) {
		if (this.__benchDesktop) B.bytesOut += data.byteLength ?? data.size ?? data.length ?? 0;
		return nativeSend.call(this, data);
	};
	function BenchWebSocket(url, protocols) {
		const socket = protocols === undefined ? new NativeWebSocket(url) : new NativeWebSocket(url, protocols);
		if (!isDesktopUrl(url)) return socket;
		const rec = { url: String(url), tCreate: now(), tOpen: null, tFirstMsg: null, tClose: null, bytesIn: 0 };
		B.ws.push(rec);
		socket.__benchDesktop = true;
		socket.addEventListener("open", () => {
			rec.tOpen = now();
		});
		socket.addEventListener("close", () => {
			rec.tClose = now();
		});
		socket.addEventListener("message", (event) => {
			const data = event.data;
			const n = data.byteLength ?? data.size ?? data.length ?? 0;
			rec.bytesIn += n;
			B.bytesIn += n;
			B.lastMsg = now();
			B.msgsIn += 1;
			if (rec.tFirstMsg === null) rec.tFirstMsg = now();
		});
		return socket;
	}
	BenchWebSocket.prototype = NativeWebSocket.prototype;
	for (const key of ["CONNECTING", "OPEN", "CLOSING", "CLOSED"]) BenchWebSocket[key] = NativeWebSocket[key];
	window.WebSocket = BenchWebSocket;

	// --- keyboard: when a cell was run ---------------------------------------
	window.addEventListener(
		"keydown",
		(event) => {
			if (event.key === "Enter" && event.shiftKey) B.tRun = now();
		},
		true,
	);

	// --- canvases ----------------------------------------------------------------
	function canvasInfo(canvas) {
		let info = B.canvases.find((c) => c.canvas === canvas);
		if (!info) {
			info = { canvas, tFirstFlip: null, tFirstFrame: null, tFirstColour: null, flips: 0 };
			B.canvases.push(info);
		}
		return info;
	}

	function matches(ctx, watch) {
		const { points, rgb, tol, need } = watch;
		let ok = 0;
		for (const [x, y] of points) {
			if (x >= ctx.canvas.width || y >= ctx.canvas.height) continue;
			const d = ctx.getImageData(x, y, 1, 1).data;
			if (Math.abs(d[0] - rgb[0]) <= tol && Math.abs(d[1] - rgb[1]) <= tol && Math.abs(d[2] - rgb[2]) <= tol) {
				ok += 1;
			}
		}
		return ok >= need;
	}

	function afterDraw(ctx) {
		const canvas = ctx.canvas;
		if (!canvas.isConnected || canvas.width < 64 || canvas.height < 64) return;
		const t = now();
		const info = canvasInfo(canvas);
		info.flips += 1;
		if (info.tFirstFlip === null) info.tFirstFlip = t;
		// The first frame of the desktop: the canvas is opaque everywhere we look
		// (noVNC sizes it, and flips an empty back buffer, before any pixels come).
		// The first non-black frame: opaque, and not black at most of those points
		// (what a person counts as "something is there"; the X root is black).
		if (info.tFirstFrame === null || info.tFirstColour === null) {
			const { width: w, height: h } = canvas;
			const spots = [[w >> 1, h >> 1], [w >> 2, h >> 2], [(3 * w) >> 2, h >> 2], [w >> 2, (3 * h) >> 2], [(3 * w) >> 2, (3 * h) >> 2]];
			const px = spots.map(([x, y]) => ctx.getImageData(x, y, 1, 1).data);
			if (px.every((d) => d[3] === 255)) {
				if (info.tFirstFrame === null) info.tFirstFrame = t;
				if (info.tFirstColour === null && px.filter((d) => d[0] + d[1] + d[2] > 24).length >= 3) info.tFirstColour = t;
			}
		}
		B.flips += 1;
		B.lastFlip = t;
		for (const watch of B.watches) {
			if (watch.hits.has(canvas)) continue;
			if (matches(ctx, watch)) {
				watch.hits.set(canvas, t);
				watch.msgs.set(canvas, B.lastMsg);
			}
		}
	}

	const proto = CanvasRenderingContext2D.prototype;
	const drawImage = proto.drawImage;
	const putImageData = proto.putImageData;
	proto.drawImage = function (...args) {
		const result = drawImage.apply(this, args);
		afterDraw(this);
		return result;
	};
	proto.putImageData = function (...args) {
		const result = putImageData.apply(this, args);
		afterDraw(this);
		return result;
	};

	/** Watch for `points` (framebuffer pixels) showing `rgb`; `need` of them must match. */
	B.watch = (id, points, rgb, tol = 24, need = points.length) => {
		const watch = { id, points, rgb, tol, need, hits: new Map(), msgs: new Map(), tSet: now() };
		B.watches = B.watches.filter((w) => w.id !== id);
		B.watches.push(watch);
		// Already there (e.g. a frame drawn before the watch was set)?
		for (const info of B.canvases) {
			if (info.canvas.isConnected && matches(info.canvas.getContext("2d"), watch)) watch.hits.set(info.canvas, now());
		}
	};
	/** Hit times of a watch, one per connected canvas in document order (null: not yet). */
	B.hits = (id) => {
		const watch = B.watches.find((w) => w.id === id);
		const live = B.canvases.filter((c) => c.canvas.isConnected && c.canvas.width >= 64);
		live.sort((a, b) => (a.canvas.compareDocumentPosition(b.canvas) & Node.DOCUMENT_POSITION_FOLLOWING ? -1 : 1));
		return live.map((c) => (watch && watch.hits.has(c.canvas) ? watch.hits.get(c.canvas) : null));
	};
	/** When the WebSocket message that completed the first canvas's hit arrived (before noVNC decoded it). */
	B.hitMessage = (id) => {
		const watch = B.watches.find((w) => w.id === id);
		if (!watch) return null;
		const live = B.canvases.filter((c) => c.canvas.isConnected && watch.msgs.has(c.canvas));
		live.sort((a, b) => (a.canvas.compareDocumentPosition(b.canvas) & Node.DOCUMENT_POSITION_FOLLOWING ? -1 : 1));
		return live.length ? watch.msgs.get(live[0].canvas) : null;
	};
	B.unwatch = (id) => {
		B.watches = B.watches.filter((w) => w.id !== id);
	};

	// --- what a person sees: distinct canvas contents per animation frame --------
	let lastSignature = null;
	function rafLoop() {
		if (!B.rafOn) return;
		const info = B.canvases.find((c) => c.canvas.isConnected && c.canvas.width >= 64);
		if (info && B.rafRegion) {
			const [x, y, w, h] = B.rafRegion;
			const data = info.canvas.getContext("2d").getImageData(x, y, w, h).data;
			let signature = 0;
			for (let i = 0; i < data.length; i += 4) signature = (signature * 31 + data[i] * 7 + data[i + 1] * 3 + data[i + 2]) | 0;
			B.rafSamples += 1;
			if (signature !== lastSignature) B.rafDistinct += 1;
			lastSignature = signature;
		}
		requestAnimationFrame(rafLoop);
	}
	B.startRaf = (region) => {
		B.rafRegion = region;
		B.rafDistinct = 0;
		B.rafSamples = 0;
		lastSignature = null;
		if (!B.rafOn) {
			B.rafOn = true;
			requestAnimationFrame(rafLoop);
		}
	};
	B.stopRaf = () => {
		B.rafOn = false;
		return { distinct: B.rafDistinct, samples: B.rafSamples };
	};

	/** The canvases' state: sizes, frames, first frame times. */
	B.state = () => ({
		canvases: B.canvases
			.filter((c) => c.canvas.isConnected)
			.map((c) => ({
				w: c.canvas.width,
				h: c.canvas.height,
				flips: c.flips,
				tFirstFlip: c.tFirstFlip,
				tFirstFrame: c.tFirstFrame,
				tFirstColour: c.tFirstColour,
			})),
		ws: B.ws.map((w) => ({ ...w })),
		bytesIn: B.bytesIn,
		bytesOut: B.bytesOut,
		msgsIn: B.msgsIn,
		flips: B.flips,
		tRun: B.tRun,
		tRoot: B.tRoot,
	});

	// --- when our view's root element appears (widget rendered) ---------------
	const observer = new MutationObserver((records) => {
		if (B.tRoot !== null) return;
		for (const record of records) {
			for (const node of record.addedNodes) {
				if (node.nodeType === 1 && (node.classList?.contains("dw-root") || node.querySelector?.(".dw-root"))) {
					B.tRoot = now();
					return;
				}
			}
		}
	});
	const startObserving = () => observer.observe(document.documentElement, { childList: true, subtree: true });
	if (document.documentElement) startObserving();
	else document.addEventListener("DOMContentLoaded", startObserving);
	B.resetRoot = () => {
		B.tRoot = null;
	};
})();
