/**
 * framehub browser client — WebRTC transport (docs/protocol.md §13): the
 * same hooks as the WebSocket `Transport`, over an `RTCPeerConnection` to the
 * hub's ICE-lite endpoint. The video arrives as a remote track (`track`
 * hook); the protocol's JSON travels over one reliable, ordered data
 * channel both ways; binary envelopes (lossless PNG stills) arrive on it in
 * chunks, each prefixed by one byte (1 = last chunk of an envelope).
 *
 * Signalling is non-trickle: the offer goes to `POST <stream>/webrtc` as
 * JSON (`{sdp, type: 'offer', token}`); the answer holds every candidate.
 * An HTTP refusal maps to the close code a WebSocket would have had (401 →
 * 4401, 404 → 4404, 406 → 1003: terminal), others retry with the same
 * backoff as the WebSocket (0.25 s doubling to 10 s, ±30 % jitter).
 *
 * @module transport-webrtc
 */

import { parseEnvelope } from './envelope.js';
import { backoffDelay, TERMINAL_CLOSE_CODES } from './util.js';

/** Largest envelope reassembled from data-channel chunks (bytes). */
const MAX_ENVELOPE = 64 << 20;

/** HTTP status of a refused offer → the close code a WebSocket viewer would get. */
const STATUS_CODES = { 401: 4401, 403: 1008, 404: 4404, 406: 1003, 415: 1003, 400: 1008, 413: 1009 };

/**
 * The signalling URLs of a stream's `ws(s)://host/base/<name>` URL.
 *
 * @param {string} wsUrl
 * @returns {{offer: string, settings: string}}
 */
export function signallingUrls(wsUrl) {
  const u = new URL(wsUrl, location.href);
  u.protocol = u.protocol === 'wss:' ? 'https:' : u.protocol === 'ws:' ? 'http:' : u.protocol;
  u.search = '';
  u.hash = '';
  const path = u.pathname.endsWith('/') ? `${u.pathname}default` : u.pathname;
  const base = path.slice(0, path.lastIndexOf('/') + 1);
  return {
    offer: `${u.origin}${path}/webrtc`,
    settings: `${u.origin}${base}_/webrtc`,
  };
}

export class RtcTransport {
  /**
   * @param {string} url the stream's `ws(s)://` URL (signalling goes to its HTTP twin)
   * @param {import('./transport.js').TransportHooks & {track?: (stream: MediaStream) => void}} hooks
   * @param {{reconnect?: boolean, token?: string|null, connectTimeoutMs?: number, iceServers?: RTCIceServer[]}} [options]
   */
  constructor(url, hooks, options = {}) {
    this.url = url;
    this._hooks = hooks;
    this._reconnect = options.reconnect !== false;
    this._token = options.token ?? null;
    this._connectTimeoutMs = options.connectTimeoutMs ?? 5000;
    this._iceServers = options.iceServers ?? null;
    /** @type {RTCPeerConnection|null} */
    this.pc = null;
    /** @type {RTCDataChannel|null} */
    this._dc = null;
    this._attempt = 0;
    this._timer = 0;
    this._openTimer = 0;
    this._disposed = false;
    this._gen = 0;
    this._opened = 0;
    /** Connections opened after the first one. */
    this.reconnects = 0;
    /** Whether a connection ever opened (for the `auto` fallback). */
    this.everOpened = false;
    this.retryAt = 0;
    /** @type {Uint8Array[]} chunks of the envelope being reassembled */
    this._chunks = [];
    this._chunkBytes = 0;
    /** The hub's `close` message, if it sent one before closing. */
    this._hubClose = null;
  }

  /** Whether the data channel is open. */
  get isOpen() {
    return !!this._dc && this._dc.readyState === 'open';
  }

  /** Starts connecting (no-op when already connected or connecting). */
  connect() {
    if (this._disposed || this.pc) return;
    clearTimeout(this._timer);
    this.retryAt = 0;
    const gen = ++this._gen;
    this._hooks.connecting?.();
    this._start(gen).catch((e) => {
      if (gen !== this._gen) return;
      this._fail(e && e.code ? e.code : 1006, String((e && e.message) || e));
    });
  }

  /** @private */
  async _start(gen) {
    const urls = signallingUrls(this.url);
    if (!this._iceServers) {
      try {
        const r = await fetch(urls.settings);
        const s = r.ok ? await r.json() : null;
        this._iceServers = s && Array.isArray(s.ice_servers) ? s.ice_servers.map((u) => ({ urls: u })) : [];
      } catch {
        this._iceServers = [];
      }
    }
    if (gen !== this._gen) return;
    const pc = new RTCPeerConnection({ iceServers: this._iceServers });
    this.pc = pc;
    pc.addTransceiver('video', { direction: 'recvonly' });
    const dc = pc.createDataChannel('framehub', { ordered: true });
    dc.binaryType = 'arraybuffer';
    this._dc = dc;
    pc.ontrack = (ev) => {
      if (gen !== this._gen) return;
      // A live framebuffer, not a call: ask the jitter buffer to hold as
      // little as it can (W3C webrtc-extensions `jitterBufferTarget`, ms;
      // browsers without it ignore the property).
      try {
        /** @type {any} */ (ev.receiver).jitterBufferTarget = 0;
      } catch (_) {
        /* not supported */
      }
      this._hooks.track?.(ev.streams && ev.streams[0] ? ev.streams[0] : new MediaStream([ev.track]));
    };
    pc.onconnectionstatechange = () => {
      if (gen !== this._gen) return;
      if (pc.connectionState === 'failed' || pc.connectionState === 'closed') {
        this._fail(1006, `connection ${pc.connectionState}`);
      }
    };
    dc.onopen = () => {
      if (gen !== this._gen) return;
      clearTimeout(this._openTimer);
      this.everOpened = true;
      if (this._opened++ > 0) this.reconnects++;
      this._hooks.open?.();
    };
    dc.onclose = () => {
      if (gen !== this._gen) return;
      const c = this._hubClose;
      this._fail(c ? c.code : 1006, c ? c.reason : 'data channel closed');
    };
    dc.onmessage = (ev) => {
      if (gen !== this._gen) return;
      this._onMessage(ev.data);
    };
    this._openTimer = setTimeout(() => {
      if (gen === this._gen && !this.isOpen) this._fail(4000, 'WebRTC did not connect in time');
    }, this._connectTimeoutMs);
    await pc.setLocalDescription(await pc.createOffer());
    if (gen !== this._gen) return;
    /** @type {Record<string, any>} */
    const body = { sdp: /** @type {RTCSessionDescription} */ (pc.localDescription).sdp, type: 'offer' };
    if (this._token) body.token = this._token;
    const r = await fetch(urls.offer, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify(body),
    });
    if (gen !== this._gen) return;
    if (!r.ok) {
      const reason = (await r.text().catch(() => '')).slice(0, 123) || `HTTP ${r.status}`;
      const code = /** @type {Record<number, number>} */ (STATUS_CODES)[r.status] ?? 1013;
      throw Object.assign(new Error(reason), { code });
    }
    const answer = await r.json();
    if (gen !== this._gen) return;
    await pc.setRemoteDescription({ type: 'answer', sdp: answer.sdp });
  }

  /** @private */
  _onMessage(data) {
    if (typeof data === 'string') {
      let msg;
      try {
        msg = JSON.parse(data);
      } catch (e) {
        this._hooks.protocolError?.(/** @type {Error} */ (e));
        return;
      }
      if (!msg || typeof msg !== 'object') return;
      if (msg.type === 'close') {
        this._hubClose = { code: Number(msg.code) || 1000, reason: String(msg.reason || '') };
        return;
      }
      this._hooks.text?.(msg, data.length);
      return;
    }
    const chunk = new Uint8Array(data);
    if (chunk.length < 1) return;
    this._chunkBytes += chunk.length - 1;
    if (this._chunkBytes > MAX_ENVELOPE) {
      this._chunks = [];
      this._chunkBytes = 0;
      this._hooks.protocolError?.(new Error('envelope over 64 MiB'));
      return;
    }
    this._chunks.push(chunk.subarray(1));
    if (chunk[0] !== 1) return;
    const whole = new Uint8Array(this._chunkBytes);
    let at = 0;
    for (const c of this._chunks) {
      whole.set(c, at);
      at += c.length;
    }
    this._chunks = [];
    this._chunkBytes = 0;
    let env;
    try {
      env = parseEnvelope(whole.buffer);
    } catch (e) {
      this._hooks.protocolError?.(/** @type {Error} */ (e));
      return;
    }
    this._hooks.binary?.(env.header, env.payload, whole.byteLength);
  }

  /**
   * Sends one JSON message over the data channel.
   *
   * @param {Object} msg
   * @returns {boolean} whether it was handed to the channel
   */
  send(msg) {
    if (!this.isOpen) return false;
    /** @type {RTCDataChannel} */ (this._dc).send(JSON.stringify(msg));
    return true;
  }

  /** Bytes queued in the data channel and not yet sent. */
  get bufferedAmount() {
    return this._dc ? this._dc.bufferedAmount : 0;
  }

  /** The connection proved healthy: the next retry starts from 0.25 s again. */
  resetBackoff() {
    this._attempt = 0;
  }

  /**
   * Round-trip time, frame rate, bit rate and packet loss from `getStats()`.
   *
   * @returns {Promise<{rttMs: number|null, fps: number|null, bytesReceived: number, packetsLost: number, packetsReceived: number, framesDecoded: number}|null>}
   */
  async stats() {
    const pc = this.pc;
    if (!pc) return null;
    const report = await pc.getStats();
    const out = { rttMs: /** @type {number|null} */ (null), fps: /** @type {number|null} */ (null), bytesReceived: 0, packetsLost: 0, packetsReceived: 0, framesDecoded: 0 };
    report.forEach((s) => {
      if (s.type === 'candidate-pair' && s.nominated && typeof s.currentRoundTripTime === 'number') {
        out.rttMs = s.currentRoundTripTime * 1000;
      } else if (s.type === 'inbound-rtp' && s.kind === 'video') {
        out.fps = typeof s.framesPerSecond === 'number' ? s.framesPerSecond : out.fps;
        out.bytesReceived += s.bytesReceived || 0;
        out.packetsLost += s.packetsLost || 0;
        out.packetsReceived += s.packetsReceived || 0;
        out.framesDecoded += s.framesDecoded || 0;
      }
    });
    return out;
  }

  /**
   * Closes the current connection (if any) and connects again at once.
   *
   * @param {string} [reason]
   */
  restart(reason = 'restart') {
    if (this._disposed) return;
    const had = !!this.pc;
    this._teardown();
    if (had) this._hooks.close?.({ code: 4000, reason, wasClean: true, willRetry: true, delay: 0 });
    clearTimeout(this._timer);
    this.connect();
  }

  /**
   * Closes for good: no more reconnects.
   *
   * @param {number} [_code]
   * @param {string} [_reason]
   */
  close(_code = 1000, _reason = '') {
    if (this._disposed) return;
    this._disposed = true;
    clearTimeout(this._timer);
    this.retryAt = 0;
    this._teardown();
  }

  /** @private */
  _teardown() {
    this._gen++;
    clearTimeout(this._openTimer);
    const pc = this.pc;
    const dc = this._dc;
    this.pc = null;
    this._dc = null;
    this._chunks = [];
    this._chunkBytes = 0;
    if (dc) dc.onopen = dc.onclose = dc.onmessage = null;
    if (pc) {
      pc.ontrack = pc.onconnectionstatechange = null;
      try {
        pc.close();
      } catch {
        /* already closed */
      }
    }
  }

  /** @private The connection failed or closed: tell, and retry unless terminal. */
  _fail(code, reason) {
    if (this._disposed) return;
    this._teardown();
    this._hubClose = null;
    const willRetry = this._reconnect && !TERMINAL_CLOSE_CODES.has(code);
    const delay = willRetry ? backoffDelay(this._attempt++) : 0;
    this.retryAt = willRetry ? Date.now() + delay : 0;
    this._hooks.close?.({ code, reason, wasClean: false, willRetry, delay });
    if (willRetry) this._timer = setTimeout(() => this.connect(), delay);
  }
}
