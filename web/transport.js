/**
 * framehub browser client — transport: one WebSocket to a stream, with the
 * binary envelope split into header and payload, text messages parsed as
 * JSON, and reconnection with exponential backoff (0.25 s doubling to 10 s,
 * ±30 % jitter) after any close except the terminal codes 1003, 4401, 4404,
 * 4410 (stream ended). Given several hub URLs (hubs serving the same
 * stream), each reconnect goes to the next one (`HubUrls`), and the backoff
 * grows per round through the list.
 *
 * @module transport
 */

import { parseEnvelope } from './envelope.js';
import { backoffDelay, HubUrls, TERMINAL_CLOSE_CODES } from './util.js';

/**
 * @typedef {Object} TransportHooks
 * @property {() => void} [connecting] a connection attempt starts
 * @property {() => void} [open] the socket is open
 * @property {(msg: Object, bytes: number) => void} [text] a text message (parsed JSON object)
 * @property {(header: Object, payload: Uint8Array, bytes: number) => void} [binary] a media message
 * @property {(info: {code: number, reason: string, wasClean: boolean, willRetry: boolean, delay: number}) => void} [close]
 *   the socket closed; `delay` (ms) until the next attempt when `willRetry`
 * @property {(error: Error) => void} [protocolError] a message that does not parse (ignored)
 */

export class Transport {
  /**
   * @param {string|string[]} url `ws(s)://host/<stream>`, or several (the same stream on several hubs, tried in turn)
   * @param {TransportHooks} hooks
   * @param {{reconnect?: boolean, start?: number}} [options] `start`: index of the first URL to try
   */
  constructor(url, hooks, options = {}) {
    this.hubs = new HubUrls(url, options.start ?? 0);
    this._hooks = hooks;
    this._reconnect = options.reconnect !== false;
    /** @type {WebSocket|null} */
    this._ws = null;
    this._attempt = 0;
    this._timer = 0;
    this._disposed = false;
    /** Connections opened after the first one. */
    this.reconnects = 0;
    this._opened = 0;
    /** Absolute time (ms, `Date.now()`) of the next attempt, 0 if none is scheduled. */
    this.retryAt = 0;
  }

  /** The URL of the current (or next) connection. */
  get url() {
    return this.hubs.current;
  }

  /** Whether the socket is open. */
  get isOpen() {
    return !!this._ws && this._ws.readyState === WebSocket.OPEN;
  }

  /** Starts connecting (no-op when already connected or connecting). */
  connect() {
    if (this._disposed || this._ws) return;
    clearTimeout(this._timer);
    this.retryAt = 0;
    let ws;
    try {
      ws = new WebSocket(this.url);
    } catch (e) {
      // A malformed URL: retrying cannot help.
      this._hooks.close?.({ code: 1006, reason: String(/** @type {Error} */ (e).message || e), wasClean: false, willRetry: false, delay: 0 });
      return;
    }
    ws.binaryType = 'arraybuffer';
    this._ws = ws;
    this._hooks.connecting?.();
    ws.onopen = () => {
      if (ws !== this._ws) return;
      if (this._opened++ > 0) this.reconnects++;
      this._hooks.open?.();
    };
    ws.onmessage = (ev) => {
      if (ws !== this._ws) return;
      const data = ev.data;
      if (typeof data === 'string') {
        let msg;
        try {
          msg = JSON.parse(data);
        } catch (e) {
          this._hooks.protocolError?.(/** @type {Error} */ (e));
          return;
        }
        if (msg && typeof msg === 'object') this._hooks.text?.(msg, data.length);
        return;
      }
      let env;
      try {
        env = parseEnvelope(data);
      } catch (e) {
        this._hooks.protocolError?.(/** @type {Error} */ (e));
        return;
      }
      this._hooks.binary?.(env.header, env.payload, data.byteLength);
    };
    ws.onclose = (ev) => {
      if (ws !== this._ws) return;
      this._ws = null;
      this._closed(ev.code, ev.reason, ev.wasClean);
    };
    // An error is always followed by a close; nothing to do here.
    ws.onerror = () => {};
  }

  /**
   * Sends one JSON message.
   *
   * @param {Object} msg
   * @returns {boolean} whether it was handed to the socket
   */
  send(msg) {
    if (!this.isOpen) return false;
    /** @type {WebSocket} */ (this._ws).send(JSON.stringify(msg));
    return true;
  }

  /** Bytes queued in the socket and not yet sent. */
  get bufferedAmount() {
    return this._ws ? this._ws.bufferedAmount : 0;
  }

  /** The connection proved healthy (the hub answered): the next retry starts from 0.25 s again. */
  resetBackoff() {
    this._attempt = 0;
  }

  /**
   * Closes the current socket (if any) and connects again at once.
   *
   * @param {string} [reason]
   */
  restart(reason = 'restart') {
    if (this._disposed) return;
    const ws = this._ws;
    this._ws = null;
    if (ws) {
      detach(ws);
      try {
        ws.close(4000, reason);
      } catch {
        /* already closing */
      }
      this._hooks.close?.({ code: 4000, reason, wasClean: true, willRetry: true, delay: 0 });
    }
    clearTimeout(this._timer);
    this.connect();
  }

  /**
   * Closes for good: no more reconnects.
   *
   * @param {number} [code]
   * @param {string} [reason]
   */
  close(code = 1000, reason = '') {
    if (this._disposed) return;
    this._disposed = true;
    clearTimeout(this._timer);
    this.retryAt = 0;
    const ws = this._ws;
    this._ws = null;
    if (ws) {
      detach(ws);
      try {
        ws.close(code, reason);
      } catch {
        /* already closing */
      }
    }
  }

  /** @private */
  _closed(code, reason, wasClean) {
    const willRetry = this._reconnect && !this._disposed && !TERMINAL_CLOSE_CODES.has(code);
    // The next attempt goes to the next hub; the delay grows per round through the list.
    if (willRetry) this.hubs.advance();
    const delay = willRetry ? backoffDelay(this.hubs.round(this._attempt++)) : 0;
    this.retryAt = willRetry ? Date.now() + delay : 0;
    this._hooks.close?.({ code, reason, wasClean, willRetry, delay });
    if (willRetry) this._timer = setTimeout(() => this.connect(), delay);
  }
}

/** @param {WebSocket} ws */
function detach(ws) {
  ws.onopen = ws.onmessage = ws.onclose = ws.onerror = null;
}
