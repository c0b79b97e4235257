// What the view uses of noVNC 1.7.0's RFB client (core/rfb.js, documented in its docs/API.md).
// noVNC ships JavaScript without type declarations; this is checked against our use, not theirs.
declare module "@novnc/novnc" {
	/** What noVNC's Websock accepts instead of a URL: anything shaped like a WebSocket. */
	export interface RawChannel {
		binaryType: string;
		protocol: string;
		readyState: number | string;
		send(data: ArrayBuffer | Uint8Array): void;
		close(): void;
		onopen: ((event: any) => void) | null;
		onmessage: ((event: { data: ArrayBuffer }) => void) | null;
		onclose: ((event: { code: number; reason: string; wasClean: boolean }) => void) | null;
		onerror: ((event: any) => void) | null;
	}

	export interface RFBOptions {
		shared?: boolean;
		credentials?: { username?: string; password?: string; target?: string };
		repeaterID?: string;
		wsProtocols?: string[];
	}

	export default class RFB extends EventTarget {
		constructor(target: HTMLElement, urlOrChannel: string | WebSocket | RawChannel, options?: RFBOptions);
		viewOnly: boolean;
		focusOnClick: boolean;
		clipViewport: boolean;
		dragViewport: boolean;
		scaleViewport: boolean;
		resizeSession: boolean;
		showDotCursor: boolean;
		background: string;
		qualityLevel: number;
		compressionLevel: number;
		readonly capabilities: { power: boolean };
		disconnect(): void;
		sendCredentials(credentials: RFBOptions["credentials"]): void;
		sendKey(keysym: number, code: string | null, down?: boolean): void;
		sendCtrlAltDel(): void;
		focus(options?: FocusOptions): void;
		blur(): void;
		clipboardPasteFrom(text: string): void;
	}
}
