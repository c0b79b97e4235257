// Instrumentation injected into every benchmark page before its own scripts
// (Playwright's add_init_script), for ours and for upstream alike. It changes
// nothing the page does; it only watches:
//
// * every WebSocket whose URL is a desktop's (ours: desktop-widget/, upstream:
//   desktop-websockify/): when it was created and opened, bytes received;
// * the notebook's kernel WebSockets (api/kernels/): bytes received (the comm
//   transport's frames travel there);
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
		kernelBytesIn: 0,
		lastMsg: null,
		lastKernelMsg: null,
		canvases: [],
		flips: 0,
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
	function BenchWebSocket(url, protocols) {
		const socket = protocols === undefined ? new NativeWebSocket(url) : new NativeWebSocket(url, protocols);
		if (/\/api\/kernels\//.test(String(url))) {
			socket.addEventListener("message", (event) => {
				const data = event.data;
				B.kernelBytesIn += data.byteLength ?? data.size ?? data.length ?? 0;
				B.lastKernelMsg = now();
			});
		}
		if (!isDesktopUrl(url)) return socket;
		const rec = { url: String(url), tCreate: now(), tOpen: null, tFirstMsg: null, tClose: null, bytesIn: 0 };
		B.ws.push(rec);
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
			info = { canvas, tFirstFrame: null, tFirstColour: null, size: "", tSized: null };
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
		// When the canvas took its present size (a resize of the desktop reaching the view).
		const size = `${canvas.width}x${canvas.height}`;
		if (info.size !== size) {
			info.size = size;
			info.tSized = t;
		}
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
		for (const watch of B.watches) {
			if (watch.hits.has(canvas)) continue;
			if (matches(ctx, watch)) {
				watch.hits.set(canvas, t);
				// The message that brought the pixels: a desktop socket's, or with the comm transport the kernel's.
				const route = B.ws.some((w) => w.tOpen !== null && w.tClose === null);
				watch.msgs.set(canvas, route ? B.lastMsg : B.lastKernelMsg);
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
	/** The connected desktop canvases (that ``pred`` accepts), in document order. */
	const live = (pred = () => true) =>
		B.canvases
			.filter((c) => c.canvas.isConnected && c.canvas.width >= 64 && pred(c))
			.sort((a, b) => (a.canvas.compareDocumentPosition(b.canvas) & Node.DOCUMENT_POSITION_FOLLOWING ? -1 : 1));
	const watchOf = (id) => B.watches.find((w) => w.id === id);
	/** Hit times of a watch, one per connected canvas in document order (null: not yet). */
	B.hits = (id) => live().map((c) => watchOf(id)?.hits.get(c.canvas) ?? null);
	/** When the WebSocket message that completed the first canvas's hit arrived (before noVNC decoded it). */
	B.hitMessage = (id) => {
		const watch = watchOf(id);
		const first = watch && live((c) => watch.msgs.has(c.canvas))[0];
		return first ? watch.msgs.get(first.canvas) : null;
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
				tFirstFrame: c.tFirstFrame,
				tFirstColour: c.tFirstColour,
				tSized: c.tSized,
			})),
		ws: B.ws.map((w) => ({ ...w })),
		bytesIn: B.bytesIn,
		kernelBytesIn: B.kernelBytesIn,
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
