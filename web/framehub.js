/**
 * framehub browser client — `RemoteFramebufferView`, the public entry point.
 *
 * Shows one framehub stream in a `<canvas>` and forwards the user's input to
 * it, speaking the wire protocol of `docs/protocol.md` (pdum.rfb 0.3
 * compatible, plus framehub's extensions):
 *
 *     import { RemoteFramebufferView } from '/_/framehub.js';
 *     const view = new RemoteFramebufferView(document.getElementById('screen'), { fit: 'contain' });
 *     view.addEventListener('state', (e) => console.log(e.detail.state));
 *
 * The work is split noVNC-style: `transport.js` (WebSocket, envelope,
 * reconnect), `transport-webrtc.js` (the same over WebRTC: video track and
 * data channel), `decoder-image.js` / `decoder-patch.js` / `decoder-h264.js`
 * (one decoder per file behind one signature), `queue.js` (strict seq-order
 * presentation and acks), `display.js` (canvas, retained frame, letterbox)
 * and `input.js` (pointer, wheel, keyboard → renderview events).
 *
 * @module framehub
 */

import { Display, FITS } from './display.js';
import { Input } from './input.js';
import { Transport } from './transport.js';
import { RtcTransport } from './transport-webrtc.js';
import { FrameQueue } from './queue.js';
import { ImageFrameDecoder } from './decoder-image.js';
import { PatchDecoder } from './decoder-patch.js';
import { H264Decoder, h264Supported } from './decoder-h264.js';
import { onNextFrame, streamNameFromLocation, streamUrl, TERMINAL_CLOSE_CODES } from './util.js';

export { streamNameFromLocation, streamUrl, formatBitrate } from './util.js';
export { parseEnvelope } from './envelope.js';

/** The client's version, reported nowhere on the wire; for pages and logs. */
export const VERSION = '0.1.0';

/** Media formats every browser client shows. */
const IMAGE_FORMATS = ['image/jpeg', 'image/png', 'framehub/patch', 'framehub/still-png'];

/** Shortest interval between two `request_keyframe` messages, ms. */
const KEYFRAME_REQUEST_INTERVAL_MS = 500;

/**
 * What this browser can show, as listed in `hello.supported`.
 *
 * @param {boolean} imageOnly do not offer WebCodecs
 * @returns {Promise<string[]>}
 */
export async function supportedFormats(imageOnly) {
  const list = [...IMAGE_FORMATS];
  if (!imageOnly && typeof window !== 'undefined' && 'VideoDecoder' in window && (await h264Supported())) {
    list.unshift('webcodecs/h264-annexb');
  }
  return list;
}

/**
 * @typedef {Object} ViewOptions
 * @property {string|string[]} [url] WebSocket URL; default: this page's own stream (`ws(s)://host/<stream from path>`).
 *   A list (or `urls`): the same stream on several hubs (hubs joined over NATS); the view connects
 *   to the first, and each reconnect goes to the next one in turn (an edge hub that dies moves its
 *   viewers to the others). WebRTC uses the first only.
 * @property {string[]} [urls] the same as a list in `url` (takes precedence)
 * @property {string} [token] credential sent in `hello.token`
 * @property {'contain'|'cover'|'fill'} [fit] letterboxing, default `contain`
 * @property {boolean} [autoResize] send `set_viewport` when the view changes size (default true)
 * @property {boolean} [imageOnly] never offer WebCodecs video (default false)
 * @property {number} [maxInflight] the hub's credit per viewer (informational, default 2)
 * @property {boolean} [reconnect] reconnect after a close (default true)
 * @property {boolean} [input] forward pointer and keyboard input (default true)
 * @property {'websocket'|'webrtc'|'auto'} [transport] how frames travel (default `websocket`):
 *   `webrtc` receives the H.264 video over RTP/UDP and speaks the protocol over a data channel
 *   (docs/protocol.md §13); `auto` tries WebRTC and falls back to the WebSocket when it does not
 *   connect within `connectTimeoutMs`
 * @property {number} [connectTimeoutMs] how long WebRTC may take to connect (default 5000)
 */

/**
 * @typedef {Object} ViewStats
 * @property {'connecting'|'open'|'closed'|'error'} state
 * @property {'image'|'webcodecs'|'webrtc'|null} transport negotiated transport
 * @property {number|null} packetsLost WebRTC: RTP packets lost (from `getStats()`), else null
 * @property {number} width stream width (0 before the first config or frame)
 * @property {number} height stream height
 * @property {number} fps frames drawn over the last second
 * @property {number|null} latencyMs latency estimate: the hub's measured RTT when known, else receive→draw time
 * @property {number|null} rttMs the hub's last `stats.rtt_ms`
 * @property {number|null} decodeMs mean receive→draw time, ms
 * @property {number} bitrateBps bits received over the last second
 * @property {number} framesDrawn
 * @property {number} stillsDrawn lossless stills drawn (the picture is pixel-exact after one)
 * @property {number} framesSkipped superseded, dropped or undecodable frames
 * @property {number} framesReceived media messages received
 * @property {number} lastSeq seq of the last frame drawn (-1 none)
 * @property {number} decodeQueueSize decodes under way
 * @property {number|null} closeCode code of the last close
 * @property {string} closeReason reason of the last close
 * @property {'online'|'offline'|'stalled'} publisher the publisher's state (a remote publisher may go offline for a while, or stall: not answer keyframe requests)
 * @property {number} reconnects connections opened after the first
 * @property {boolean|null} controller whether this viewer's input is delivered
 * @property {number} maxInflight
 * @property {Object|null} quality last `set_quality` message
 * @property {Object|null} server last server `stats` message
 * @property {string} url the hub URL of the current (or next) connection
 */

/**
 * A live view of one framehub stream.
 *
 * Events (all `CustomEvent`s):
 * - `state`: `{state: 'connecting'|'open'|'closed'|'error', code?, reason?, willRetry?, delay?}`
 * - `stats`: `{source: 'server'|'client', ...ViewStats}` — on every server `stats`
 *   message and once per second
 * - `frame`: `{seq, width, height, still, timestampUs}` after each frame is
 *   drawn; `timestampUs` is the picture's publish time, µs since the stream
 *   began (over WebRTC from the RTP time: 90 kHz, modulo 2^32 ticks)
 * - `config`: the server's `config` message
 * - `control`: `{controller}`
 * - `quality`: the server's `set_quality` message
 */
export class RemoteFramebufferView extends EventTarget {
  /**
   * @param {HTMLCanvasElement|HTMLElement} target a canvas, or a container in which a canvas filling it is created
   * @param {ViewOptions} [options]
   */
  constructor(target, options = {}) {
    super();
    if (!target) throw new TypeError('RemoteFramebufferView: an element or canvas is required');
    const given = options.urls ?? options.url;
    const urls = (Array.isArray(given) ? given : [given]).filter((u) => typeof u === 'string' && u.length > 0);
    if (urls.length === 0) urls.push(streamUrl(streamNameFromLocation(location)));
    /** @type {Required<Omit<ViewOptions, 'token'|'url'>> & {token: string|null, url: string}} */
    this.options = {
      url: urls[0],
      urls,
      token: options.token ?? null,
      fit: FITS.includes(/** @type {string} */ (options.fit)) ? /** @type {any} */ (options.fit) : 'contain',
      autoResize: options.autoResize !== false,
      imageOnly: !!options.imageOnly,
      maxInflight: options.maxInflight ?? 2,
      reconnect: options.reconnect !== false,
      input: options.input !== false,
      transport: ['webrtc', 'auto'].includes(/** @type {string} */ (options.transport)) ? /** @type {any} */ (options.transport) : 'websocket',
      connectTimeoutMs: options.connectTimeoutMs ?? 5000,
    };

    // --- canvas -----------------------------------------------------------
    if (target instanceof HTMLCanvasElement) {
      this.canvas = target;
      this._ownsCanvas = false;
    } else {
      const c = document.createElement('canvas');
      c.className = 'framehub-canvas';
      Object.assign(c.style, { display: 'block', width: '100%', height: '100%' });
      target.appendChild(c);
      this.canvas = c;
      this._ownsCanvas = true;
    }

    // --- state ------------------------------------------------------------
    /** @type {'connecting'|'open'|'closed'|'error'} */
    this._state = 'connecting';
    this._disposed = false;
    this._closeCode = null;
    this._closeReason = '';
    /** @type {'online'|'offline'|'stalled'} the publisher's state (`status` messages) */
    this._publisher = 'online';
    this._imageOnly = this.options.imageOnly;
    this._supported = supportedFormats(this._imageOnly);
    this._connId = 0;
    /** @type {Object|null} */
    this._config = null;
    this._transportKind = null;
    this._streamWidth = 0;
    this._streamHeight = 0;
    this._controller = null;
    this._quality = null;
    /** @private `timestamp_us` of the last lossless still drawn (null: none). */
    this._stillTimestamp = null;
    this._serverStats = null;
    this._serverStatsAt = 0;
    this._lastKeyframeRequest = -Infinity;
    /** @type {(() => void)|null} cancels the pending throttled `set_viewport` */
    this._cancelViewport = null;

    // --- statistics ---------------------------------------------------------
    this._framesDrawn = 0;
    this._stillsDrawn = 0;
    this._framesSkipped = 0;
    this._framesReceived = 0;
    this._lastSeq = -1;
    this._lastFrame = { width: 0, height: 0 };
    /** @type {number[]} draw times (ms) */
    this._drawTimes = [];
    /** @type {[number, number][]} (time ms, bytes) */
    this._byteLog = [];
    this._decodeMs = null;

    // --- parts --------------------------------------------------------------
    this.display = new Display(this.canvas, { fit: this.options.fit, onResize: () => this._viewportChanged() });
    this._images = new ImageFrameDecoder();
    this._patches = new PatchDecoder();
    /** @type {H264Decoder|null} */
    this._video = null;
    this._queue = new FrameQueue({
      draw: (e) => this._drawEntry(e),
      skip: (e) => this._skipEntry(e),
    });
    /** @type {Input|null} */
    this.input = this.options.input ? new Input(this.canvas, this.display, (ev) => this.sendEvent(ev)) : null;
    /** @type {HTMLVideoElement|null} the WebRTC track's player (frames are copied to the canvas) */
    this._videoEl = null;
    /** @type {Object|null} the last WebRTC `getStats()` summary */
    this._rtcStats = null;
    this._rtcBytes = { at: 0, bytes: 0, bps: 0 };
    /** @type {Transport|RtcTransport} */
    this._transport = this._makeTransport(this.options.transport === 'websocket' ? 'websocket' : 'webrtc');

    this._onVisibility = () => this._send({ type: 'visibility', visible: document.visibilityState !== 'hidden' });
    document.addEventListener('visibilitychange', this._onVisibility);
    this._statsTimer = setInterval(() => {
      this._pollRtcStats();
      this._emitStats('client');
    }, 1000);

    // Connect after the constructor returns, so that listeners added right
    // after `new` see the first `state` event.
    queueMicrotask(() => this._transport.connect());
  }

  // ---------------------------------------------------------------- public

  /** Connection state: `connecting`, `open`, `closed` or `error`. */
  get state() {
    return this._state;
  }

  /** The letterbox mode; setting it repaints at once. */
  get fit() {
    return this.display.fit;
  }

  set fit(value) {
    this.display.fit = value;
  }

  /** The last `config` message from the hub (null before it). */
  get config() {
    return this._config;
  }

  /**
   * Where the frame lands in the canvas, in canvas (device) pixels:
   * framebuffer pixel (x, y) is at canvas `(offsetX + x*scale, offsetY + y*scale)`.
   *
   * @returns {{scale: number, scaleX: number, scaleY: number, offsetX: number, offsetY: number,
   *   frameWidth: number, frameHeight: number, canvasWidth: number, canvasHeight: number}}
   */
  mapping() {
    return this.display.mapping();
  }

  /**
   * Client-side statistics and connection state.
   *
   * @returns {ViewStats}
   */
  getStats() {
    const now = performance.now();
    while (this._drawTimes.length && now - this._drawTimes[0] > 1000) this._drawTimes.shift();
    while (this._byteLog.length && now - this._byteLog[0][0] > 1000) this._byteLog.shift();
    let bytes = 0;
    for (const [, n] of this._byteLog) bytes += n;
    const fresh = this._serverStats && now - this._serverStatsAt < 10000;
    const rtc = this._transport instanceof RtcTransport ? this._rtcStats : null;
    const rtt = rtc && rtc.rttMs !== null ? rtc.rttMs : fresh && Number.isFinite(this._serverStats.rtt_ms) ? this._serverStats.rtt_ms : null;
    if (rtc) bytes = this._rtcBytes.bps / 8 + bytes;
    return {
      state: this._state,
      transport: this._transportKind,
      width: this._streamWidth,
      height: this._streamHeight,
      fps: this._drawTimes.length,
      latencyMs: rtt ?? (this._decodeMs === null ? null : Math.round(this._decodeMs * 10) / 10),
      rttMs: rtt,
      decodeMs: this._decodeMs === null ? null : Math.round(this._decodeMs * 10) / 10,
      bitrateBps: bytes * 8,
      framesDrawn: this._framesDrawn,
      stillsDrawn: this._stillsDrawn,
      framesSkipped: this._framesSkipped,
      framesReceived: this._framesReceived,
      packetsLost: rtc ? rtc.packetsLost : null,
      lastSeq: this._lastSeq,
      decodeQueueSize: this._queue.decoding,
      closeCode: this._closeCode,
      publisher: this._publisher,
      closeReason: this._closeReason,
      reconnects: this._transport.reconnects,
      controller: this._controller,
      maxInflight: this.options.maxInflight,
      quality: this._quality,
      server: this._serverStats,
      url: this._transport.url,
    };
  }

  /**
   * Sends one renderview input event (`{"type":"event","event":ev}`).
   *
   * @param {Object} ev an event object with `event_type`
   * @returns {boolean} whether it was sent (false while not connected)
   */
  sendEvent(ev) {
    return this._send({ type: 'event', event: ev });
  }

  /**
   * Asks the hub for a keyframe (video sessions).
   *
   * @param {string} [reason]
   */
  requestKeyframe(reason = 'client request') {
    this._send({ type: 'request_keyframe', reason });
  }

  /** Sends the current viewport size now. */
  sendViewport() {
    const vp = this.display.measure();
    if (vp.width > 0 && vp.height > 0) {
      this._send({ type: 'set_viewport', width: vp.width, height: vp.height, pwidth: vp.pwidth, pheight: vp.pheight, ratio: vp.ratio });
    }
  }

  /** Drops the current connection and connects again at once. */
  reconnect() {
    this._transport.restart('client reconnect');
  }

  /** Closes the connection for good and releases everything; idempotent. */
  dispose() {
    if (this._disposed) return;
    this._disposed = true;
    this._transport.close(1000, 'dispose');
    clearInterval(this._statsTimer);
    if (this._cancelViewport) this._cancelViewport();
    document.removeEventListener('visibilitychange', this._onVisibility);
    if (this.input) this.input.dispose();
    this.display.dispose();
    this._queue.clear();
    if (this._video) this._video.close();
    this._video = null;
    this._dropVideoElement();
    if (this._ownsCanvas) this.canvas.remove();
    if (this._state !== 'error') this._setState('closed', { code: 1000, reason: 'dispose' });
  }

  // --------------------------------------------------------------- private

  /** @private */
  _send(msg) {
    return this._transport.send(msg);
  }

  /** @private */
  _setState(state, extra = {}) {
    this._state = state;
    this.dispatchEvent(new CustomEvent('state', { detail: { state, ...extra } }));
  }

  /** @private */
  _emitStats(source) {
    this.dispatchEvent(new CustomEvent('stats', { detail: { source, ...this.getStats() } }));
  }

  /** @private */
  _onConnecting() {
    this._connId++;
    this._setState('connecting', { url: this._transport ? this._transport.url : this.options.url });
  }

  /** @private Socket open: hello, then the viewport (protocol §2). */
  async _onOpen() {
    const id = this._connId;
    // Over WebRTC the hub said hello for this viewer when it took the offer.
    if (!(this._transport instanceof RtcTransport)) {
      const supported = await this._supported;
      if (id !== this._connId || this._disposed) return;
      /** @type {Record<string, any>} */
      const hello = { type: 'hello', supported, device_pixel_ratio: window.devicePixelRatio || 1 };
      if (this.options.token) hello.token = this.options.token;
      this._send(hello);
    }
    if (this.options.autoResize) this.sendViewport();
    if (document.visibilityState === 'hidden') this._send({ type: 'visibility', visible: false });
    this._setState('open');
  }

  /** @private */
  _onText(msg, bytes) {
    this._byteLog.push([performance.now(), bytes]);
    switch (msg.type) {
      case 'config':
        this._onConfig(msg);
        break;
      case 'set_quality':
        this._quality = msg;
        this.dispatchEvent(new CustomEvent('quality', { detail: msg }));
        break;
      case 'stats':
        this._serverStats = msg;
        this._serverStatsAt = performance.now();
        this._emitStats('server');
        break;
      case 'cursor':
        if (typeof msg.value === 'string' && msg.value.length <= 256) this.canvas.style.cursor = msg.value;
        break;
      case 'control':
        this._controller = !!msg.controller;
        this.dispatchEvent(new CustomEvent('control', { detail: { controller: this._controller } }));
        break;
      case 'status':
        // A remote publisher left (the last picture stays), stalled, or came back.
        this._publisher = ['offline', 'stalled'].includes(msg.publisher) ? msg.publisher : 'online';
        this.dispatchEvent(new CustomEvent('publisher', { detail: { publisher: this._publisher } }));
        break;
      default:
        break; // unknown messages are ignored
    }
  }

  /** @private */
  _onConfig(msg) {
    this._config = msg;
    if (this._transport instanceof RtcTransport) {
      // The video is the peer's track (_onTrack); the data channel brings stills and messages.
      this._transportKind = 'webrtc';
      if (msg.width > 0 && msg.height > 0) {
        this._streamWidth = msg.width;
        this._streamHeight = msg.height;
      }
      if (typeof msg.controller === 'boolean') this._controller = msg.controller;
      this._transport.resetBackoff();
      this.dispatchEvent(new CustomEvent('config', { detail: msg }));
      return;
    }
    this._transportKind = msg.transport === 'webcodecs' ? 'webcodecs' : 'image';
    if (msg.width > 0 && msg.height > 0) {
      this._streamWidth = msg.width;
      this._streamHeight = msg.height;
    }
    if (typeof msg.controller === 'boolean') this._controller = msg.controller;
    this._transport.resetBackoff();
    if (this._transportKind === 'webcodecs') this._setupVideo(msg.codec);
    else if (this._video) {
      this._video.close();
      this._video = null;
    }
    this.dispatchEvent(new CustomEvent('config', { detail: msg }));
  }

  /** @private */
  _setupVideo(codec) {
    if (this._video) this._video.close();
    this._video = null;
    if (typeof VideoDecoder === 'undefined') {
      this._fallbackToImage('WebCodecs is not available');
      return;
    }
    this._video = this._makeVideoDecoder(codec);
    const id = this._connId;
    if (codec) {
      h264Supported(codec).then((ok) => {
        if (!ok && id === this._connId) this._fallbackToImage(`codec ${codec} is not supported`);
      });
    }
  }

  /** @private */
  _makeVideoDecoder(codec) {
    return new H264Decoder(
      {
        requestKeyframe: (reason) => {
          const now = performance.now();
          if (now - this._lastKeyframeRequest < KEYFRAME_REQUEST_INTERVAL_MS) return;
          this._lastKeyframeRequest = now;
          this._send({ type: 'request_keyframe', reason });
        },
        decoderReset: () => this._send({ type: 'decoder_reset' }),
        unsupported: (e) => this._fallbackToImage(e && e.message ? e.message : 'codec not supported'),
      },
      { codec },
    );
  }

  /** @private The browser cannot decode the video: reconnect as an image-only client. */
  _fallbackToImage(why) {
    if (this._imageOnly || this._disposed) return;
    console.warn(`framehub: ${why}; reconnecting with images only`);
    this._imageOnly = true;
    this._supported = supportedFormats(true);
    if (this._video) this._video.close();
    this._video = null;
    this._transport.restart('codec unsupported');
  }

  /** @private */
  _onBinary(header, payload, bytes) {
    const now = performance.now();
    this._byteLog.push([now, bytes]);
    if (!Number.isFinite(Number(header.seq))) return;
    this._framesReceived++;
    switch (header.type) {
      case 'image_frame':
        this._queue.push(header, true, this._images.decode(header, payload), bytes);
        break;
      case 'image_patch':
        this._queue.push(header, false, this._patches.decode(header, payload), bytes);
        break;
      case 'video_chunk':
        if (!this._video) this._video = this._makeVideoDecoder(header.codec);
        this._queue.push(header, true, this._video.decode(header, payload), bytes);
        break;
      default:
        // Unknown media: not shown, but acked so the credit returns.
        this._ack(header.seq, false);
        break;
    }
  }

  /** @private A frame reached the head of the queue: draw it and ack it. */
  _drawEntry(entry) {
    const frame = /** @type {import('./queue.js').DecodedFrame} */ (entry.result);
    const ts = Number(entry.header.timestamp_us);
    if (frame.still) {
      this._stillTimestamp = ts;
    } else if (entry.header.type === 'video_chunk' && ts === this._stillTimestamp) {
      // The hub's sharper keyframe of the picture this view already shows
      // exactly (a PNG still): decoded, so the video goes on from it, but
      // not painted over the exact pixels (the queue closes the frame).
      this._ack(entry.seq, true);
      return;
    }
    this.display.draw(frame);
    const now = performance.now();
    this._framesDrawn++;
    if (frame.still) this._stillsDrawn++;
    this._lastSeq = entry.seq;
    this._drawTimes.push(now);
    if (this._drawTimes.length > 600) this._drawTimes.splice(0, 300);
    const ms = now - entry.receivedAt;
    this._decodeMs = this._decodeMs === null ? ms : this._decodeMs * 0.9 + ms * 0.1;
    this._streamWidth = this.display.frameWidth;
    this._streamHeight = this.display.frameHeight;
    this._lastFrame = { width: this.display.frameWidth, height: this.display.frameHeight };
    this._ack(entry.seq, true);
    this.dispatchEvent(
      new CustomEvent('frame', {
        detail: {
          seq: entry.seq,
          width: this.display.frameWidth,
          height: this.display.frameHeight,
          still: frame.still,
          timestampUs: ts,
        },
      }),
    );
  }

  /** @private A frame will not be drawn: ack it anyway so the credit returns. */
  _skipEntry(entry) {
    this._framesSkipped++;
    this._ack(entry.seq, false);
  }

  /** @private */
  _ack(seq, displayed) {
    // A WebRTC peer's units are acked by the hub as they leave its socket.
    if (this._transport instanceof RtcTransport) return;
    this._send({ type: 'ack', seq: Number(seq), decode_queue_size: this._queue.decoding, displayed });
  }

  /** @private */
  _onClose(info) {
    const rtc = this._transport;
    if (
      this.options.transport === 'auto' &&
      rtc instanceof RtcTransport &&
      !rtc.everOpened &&
      !this._disposed &&
      ![4401, 4404, 4410].includes(info.code)
    ) {
      // WebRTC did not come up (UDP blocked, no route, or no H.264 in this
      // browser's WebRTC: 1003): use the WebSocket from now on. (Refused
      // credentials and unknown streams would be refused there too.)
      console.warn(`framehub: WebRTC did not connect (${info.reason}); using the WebSocket`);
      rtc.close();
      this._dropVideoElement();
      this._transport = this._makeTransport('websocket');
      this._transport.connect();
      return;
    }
    this._queue.clear();
    if (this._video) this._video.close();
    this._video = null;
    this._transportKind = null;
    this._closeCode = info.code;
    this._closeReason = info.reason || '';
    if (this._disposed) return;
    const detail = { code: info.code, reason: info.reason || '', willRetry: info.willRetry, delay: info.delay };
    if (TERMINAL_CLOSE_CODES.has(info.code)) this._setState('error', detail);
    else this._setState('closed', detail);
  }

  /**
   * @private
   * @param {'websocket'|'webrtc'} kind
   * @returns {Transport|RtcTransport}
   */
  _makeTransport(kind) {
    const hooks = {
      connecting: () => this._onConnecting(),
      open: () => this._onOpen(),
      text: (/** @type {any} */ msg, /** @type {number} */ n) => this._onText(msg, n),
      binary: (/** @type {any} */ h, /** @type {Uint8Array} */ p, /** @type {number} */ n) => this._onBinary(h, p, n),
      close: (/** @type {any} */ info) => this._onClose(info),
      protocolError: (/** @type {Error} */ e) => console.warn('framehub: bad message ignored:', e.message),
      track: (/** @type {MediaStream} */ s) => this._onTrack(s),
    };
    if (kind === 'webrtc') {
      return new RtcTransport(this.options.url, hooks, {
        reconnect: this.options.reconnect,
        token: this.options.token,
        connectTimeoutMs: this.options.connectTimeoutMs,
      });
    }
    return new Transport(this.options.urls, hooks, { reconnect: this.options.reconnect });
  }

  /**
   * @private The WebRTC video track arrived: play it in a hidden `<video>` and
   * copy each new frame into the canvas (same letterboxing and event mapping).
   *
   * @param {MediaStream} stream
   */
  _onTrack(stream) {
    this._dropVideoElement();
    const v = document.createElement('video');
    v.muted = true;
    v.playsInline = true;
    v.autoplay = true;
    Object.assign(v.style, { position: 'fixed', left: '0', top: '0', width: '2px', height: '2px', opacity: '0', pointerEvents: 'none' });
    v.setAttribute('aria-hidden', 'true');
    document.body.appendChild(v);
    v.srcObject = stream;
    this._videoEl = v;
    v.play().catch(() => {});
    /** @param {number} _now @param {any} meta */
    const onFrame = (_now, meta) => {
      if (this._videoEl !== v) return;
      this._drawVideoFrame(v, meta);
      v.requestVideoFrameCallback(onFrame);
    };
    if ('requestVideoFrameCallback' in v) v.requestVideoFrameCallback(onFrame);
  }

  /**
   * @private
   * @param {HTMLVideoElement} v
   * @param {any} meta `requestVideoFrameCallback` metadata (`rtpTimestamp` for WebRTC)
   */
  _drawVideoFrame(v, meta) {
    const w = v.videoWidth;
    const h = v.videoHeight;
    if (!w || !h) return;
    // A frame published no later than the lossless still this view shows
    // (the hub's sharper keyframe of that picture, or one the jitter buffer
    // held back) is not painted over the exact pixels. RTP time is 90 kHz
    // from the publish time (protocol §13); compared modulo 2^32.
    if (this._stillTimestamp !== null && meta && typeof meta.rtpTimestamp === 'number') {
      const stillRtp = Math.floor((this._stillTimestamp * 9) / 100) % 2 ** 32;
      if (((meta.rtpTimestamp - stillRtp) | 0) <= 0) return;
    }
    this.display.draw({
      width: w,
      height: h,
      full: true,
      still: false,
      paint: (ctx) => ctx.drawImage(v, 0, 0, w, h),
      close: () => {},
    });
    const now = performance.now();
    this._framesDrawn++;
    this._framesReceived++;
    this._lastSeq++;
    this._drawTimes.push(now);
    if (this._drawTimes.length > 600) this._drawTimes.splice(0, 300);
    this._streamWidth = w;
    this._streamHeight = h;
    this._lastFrame = { width: w, height: h };
    const timestampUs = meta && typeof meta.rtpTimestamp === 'number' ? Math.round((meta.rtpTimestamp * 100) / 9) : null;
    this.dispatchEvent(
      new CustomEvent('frame', { detail: { seq: this._lastSeq, width: w, height: h, still: false, timestampUs } }),
    );
  }

  /** @private */
  _dropVideoElement() {
    const v = this._videoEl;
    this._videoEl = null;
    if (v) {
      v.srcObject = null;
      v.remove();
    }
  }

  /** @private Refreshes the WebRTC statistics (once a second). */
  _pollRtcStats() {
    const t = this._transport;
    if (!(t instanceof RtcTransport)) return;
    t.stats().then((s) => {
      if (!s) return;
      const now = performance.now();
      const b = this._rtcBytes;
      if (b.at > 0 && s.bytesReceived >= b.bytes) b.bps = ((s.bytesReceived - b.bytes) * 8 * 1000) / Math.max(1, now - b.at);
      b.at = now;
      b.bytes = s.bytesReceived;
      this._rtcStats = s;
    }).catch(() => {});
  }

  /** @private The canvas changed size: repaint happened already; tell the hub (once per frame). */
  _viewportChanged() {
    if (!this.options.autoResize || this._cancelViewport || this._disposed) return;
    this._cancelViewport = onNextFrame(() => {
      this._cancelViewport = null;
      const vp = this.display.viewport;
      if (vp.width > 0 && vp.height > 0) {
        this._send({ type: 'set_viewport', width: vp.width, height: vp.height, pwidth: vp.pwidth, pheight: vp.pheight, ratio: vp.ratio });
      }
    });
  }
}

export default RemoteFramebufferView;
