/**
 * Publishing from a browser tab into a framehub hub: the **source half** of
 * a stream runs in the page (docs/protocol.md §11, "the feed").
 *
 * ```js
 * import { publishCanvas, publishMedia } from '/_/publish.js';
 * const pub = publishCanvas(canvas, { url: 'ws://127.0.0.1:8765', name: 'sketch', fps: 30 });
 * canvas.addEventListener('pointerdown', (e) => ...);   // viewers' input arrives as DOM events
 * pub.close();
 * ```
 *
 * The publisher claims the name, then encodes only what the hub's viewers
 * demand (`demand` messages): JPEG or PNG through `OffscreenCanvas.convertToBlob`,
 * H.264 through WebCodecs `VideoEncoder` (Annex B, keyframes on request),
 * each at most `fps` times a second and never while the previous unit of
 * that output is still being encoded or the socket is backed up (latest
 * wins: a slow link skips frames, it does not queue them). Viewers' input
 * events are dispatched on the canvas as DOM events (`pointerdown`,
 * `pointermove`, `pointerup`, `wheel`, `keydown`, `keyup`, `dblclick`) at
 * the page position of their framebuffer coordinates, and as a
 * `framehub-event` CustomEvent whose `detail` is the event as the hub sent it.
 * The connection is retried with back-off; within the hub's grace period
 * its viewers only see "publisher offline". The pace comes from a worker's
 * timer, so a publishing tab in the background keeps its rate (what it
 * shows may not change there: browsers stop `requestAnimationFrame` in
 * hidden tabs).
 *
 * @module publish
 */

import { backoffDelay } from './util.js';

const FEED_VERSION = 1;
/** Bytes queued on the socket above which no new unit is made (a slow link). */
const MAX_BUFFERED = 2 << 20;
/** The H.264 codec asked of `VideoEncoder`: Constrained Baseline, level 3.1 (what every viewer decodes). */
const H264_CODEC = 'avc1.42E01F';

/**
 * @typedef {object} PublishOptions
 * @property {string} [url] the hub, `ws://HOST:PORT` (default: this page's hub)
 * @property {string} name the stream name to claim
 * @property {string} [token] the publisher's credential (`framehub serve --publish-token`)
 * @property {number} [fps] most units per second and output (default 30)
 * @property {number} [quality] JPEG quality 1..100 (default 80)
 * @property {number} [bitrate] H.264 bit rate in bit/s (default 2 Mbit/s)
 * @property {boolean} [h264] offer H.264 when the browser can encode it (default true)
 * @property {boolean} [takeover] take the name from a live publisher of the same principal
 * @property {boolean} [dispatchEvents] dispatch viewers' input as DOM events on the canvas (default true)
 */

/**
 * @typedef {object} PublishStats
 * @property {'connecting'|'online'|'offline'|'refused'|'closed'} state
 * @property {number|null} closeCode the hub's last close code
 * @property {string} closeReason its reason
 * @property {number} unitsSent units sent, all outputs
 * @property {number} bytesSent bytes sent
 * @property {number} eventsReceived viewers' events received
 * @property {Record<string, number>} demand per output (`jpeg/0`, `h264/0`): viewers ready for a frame
 * @property {boolean} h264 whether this browser encodes H.264 for the stream
 */

/** The feed URL for `name` on the hub `url` (or this page's hub). */
function feedUrl(url, name, token) {
  const base = url
    ? url.replace(/^http/, 'ws').replace(/\/+$/, '')
    : `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}`;
  const q = token ? `?token=${encodeURIComponent(token)}` : '';
  return `${base}/_/publish/${encodeURIComponent(name)}${q}`;
}

/**
 * Calls `cb` every `ms` milliseconds from a dedicated worker's timer (not
 * throttled in a background tab), or from the page's own where workers are
 * not available.
 *
 * @param {number} ms
 * @param {() => void} cb
 * @returns {{stop: () => void}}
 */
function startTicker(ms, cb) {
  try {
    const src = `setInterval(() => postMessage(0), ${Math.max(1, Math.round(ms))});`;
    const url = URL.createObjectURL(new Blob([src], { type: 'text/javascript' }));
    const worker = new Worker(url);
    URL.revokeObjectURL(url);
    worker.onmessage = () => cb();
    return { stop: () => worker.terminate() };
  } catch {
    const id = window.setInterval(cb, ms);
    return { stop: () => clearInterval(id) };
  }
}

/** A unit message: u32 LE header length, JSON header, bytes. */
function unit(header, bytes) {
  const json = new TextEncoder().encode(JSON.stringify(header));
  const out = new Uint8Array(4 + json.length + bytes.byteLength);
  new DataView(out.buffer).setUint32(0, json.length, true);
  out.set(json, 4);
  out.set(new Uint8Array(bytes), 4 + json.length);
  return out;
}

/**
 * Publishes what `canvas` shows as the stream `opts.name`.
 *
 * @param {HTMLCanvasElement} canvas
 * @param {PublishOptions} opts
 * @returns {{close: () => void, stats: () => PublishStats, target: EventTarget}}
 *   `target` fires `state` events (`detail: PublishStats`).
 */
export function publishCanvas(canvas, opts) {
  if (!opts || typeof opts.name !== 'string') throw new TypeError('publishCanvas: opts.name is required');
  const fps = opts.fps > 0 ? Math.min(opts.fps, 120) : 30;
  const quality = Math.min(100, Math.max(1, Math.round(opts.quality || 80)));
  const bitrate = opts.bitrate > 0 ? opts.bitrate : 2_000_000;
  const target = new EventTarget();
  /** @type {PublishStats} */
  const stats = {
    state: 'connecting', closeCode: null, closeReason: '', unitsSent: 0, bytesSent: 0,
    eventsReceived: 0, demand: {}, h264: false,
  };
  const start = performance.now();
  let ws = /** @type {WebSocket|null} */ (null);
  let closed = false;
  let attempt = 0;
  let retry = 0;
  let frameId = 0;
  /** outputs being encoded now (latest wins: skip a tick while busy) */
  const busy = new Set();
  /** H.264: the encoder, its unit counter, a keyframe owed */
  let encoder = /** @type {any} */ (null);
  let videoUnits = 0;
  let keyframeDue = true;
  let width = canvas.width;
  let height = canvas.height;

  const setState = (state, extra = {}) => {
    Object.assign(stats, { state }, extra);
    target.dispatchEvent(new CustomEvent('state', { detail: { ...stats } }));
  };

  async function h264Supported() {
    if (opts.h264 === false || typeof VideoEncoder === 'undefined') return false;
    try {
      const r = await VideoEncoder.isConfigSupported({
        codec: H264_CODEC, width: width & ~1, height: height & ~1, bitrate, framerate: fps,
        avc: { format: 'annexb' },
      });
      return !!r.supported;
    } catch {
      return false;
    }
  }

  function send(header, bytes) {
    if (!ws || ws.readyState !== WebSocket.OPEN) return;
    const msg = unit(header, bytes);
    ws.send(msg);
    stats.unitsSent++;
    stats.bytesSent += msg.byteLength;
  }

  function setupEncoder() {
    if (encoder) try { encoder.close(); } catch { /* closed already */ }
    videoUnits += 1; // a new chain is never consecutive with the old one
    keyframeDue = true;
    encoder = new VideoEncoder({
      output: (chunk) => {
        const bytes = new ArrayBuffer(chunk.byteLength);
        chunk.copyTo(bytes);
        videoUnits++;
        send({
          variant: { format: 'h264', tier: 0 }, frame_id: videoUnits, source_id: frameId,
          timestamp_us: Math.round(chunk.timestamp), width, height, keyframe: chunk.type === 'key',
        }, bytes);
      },
      error: (e) => { console.warn('framehub publish: encoder error', e); encoder = null; },
    });
    encoder.configure({
      codec: H264_CODEC, width: width & ~1, height: height & ~1, bitrate, framerate: fps,
      latencyMode: 'realtime', avc: { format: 'annexb' },
    });
  }

  /** One tick: encode each demanded output that is not busy. */
  function tick() {
    if (!ws || ws.readyState !== WebSocket.OPEN || ws.bufferedAmount > MAX_BUFFERED) return;
    if (canvas.width !== width || canvas.height !== height) {
      width = canvas.width;
      height = canvas.height;
      ws.send(JSON.stringify({ type: 'info', width, height }));
      if (stats.h264) setupEncoder();
    }
    const wanted = Object.entries(stats.demand).filter(([, ready]) => ready > 0).map(([k]) => k);
    if (!wanted.length) return;
    frameId++;
    const id = frameId;
    const ts = Math.round((performance.now() - start) * 1000);
    for (const key of wanted) {
      if (busy.has(key)) continue;
      const [format] = key.split('/');
      if (format === 'h264') {
        if (!encoder || encoder.state !== 'configured' || encoder.encodeQueueSize > 1) continue;
        const frame = new VideoFrame(canvas, { timestamp: ts });
        encoder.encode(frame, { keyFrame: keyframeDue });
        keyframeDue = false;
        frame.close();
      } else if (format === 'jpeg' || format === 'png') {
        busy.add(key);
        const mime = `image/${format}`;
        imageOf(mime).then((bytes) => {
          busy.delete(key);
          if (bytes) {
            send({
              variant: { format, tier: 0 }, frame_id: id, source_id: id, timestamp_us: ts,
              width, height, mime,
            }, bytes);
          }
        });
      }
    }
  }

  /** The canvas as an image file of `mime` (null when it cannot be made). */
  async function imageOf(mime) {
    try {
      const blob = await new Promise((resolve) => canvas.toBlob(resolve, mime, quality / 100));
      return blob ? await /** @type {Blob} */ (blob).arrayBuffer() : null;
    } catch (e) {
      console.warn('framehub publish: cannot encode the canvas', e);
      return null;
    }
  }

  /** A viewer's event, as DOM events on the canvas. */
  function dispatch(msg) {
    stats.eventsReceived++;
    const ev = msg.event || {};
    canvas.dispatchEvent(new CustomEvent('framehub-event', { detail: msg }));
    if (opts.dispatchEvents === false) return;
    const kind = ev.event_type;
    const rect = canvas.getBoundingClientRect();
    const sx = rect.width / (canvas.width || 1);
    const sy = rect.height / (canvas.height || 1);
    const pos = {
      clientX: rect.left + (ev.x || 0) * sx, clientY: rect.top + (ev.y || 0) * sy,
      shiftKey: (ev.modifiers || []).includes('Shift'), ctrlKey: (ev.modifiers || []).includes('Control'),
      altKey: (ev.modifiers || []).includes('Alt'), metaKey: (ev.modifiers || []).includes('Meta'),
      bubbles: true, cancelable: true,
    };
    // renderview buttons (1 left, 2 right, 3 middle, 4 back, 5 forward) → DOM button / buttons bits.
    const domButton = { 1: 0, 2: 2, 3: 1, 4: 3, 5: 4 }[ev.button] ?? 0;
    const bits = (ev.buttons || []).reduce((m, b) => m | ({ 1: 1, 2: 2, 3: 4, 4: 8, 5: 16 }[b] || 0), 0);
    const pointer = { ...pos, button: domButton, buttons: bits, pointerId: 1, pointerType: 'mouse', isPrimary: true };
    const types = { pointer_down: 'pointerdown', pointer_up: 'pointerup', pointer_move: 'pointermove',
      pointer_enter: 'pointerenter', pointer_leave: 'pointerleave' };
    if (types[kind]) canvas.dispatchEvent(new PointerEvent(types[kind], pointer));
    else if (kind === 'double_click') canvas.dispatchEvent(new MouseEvent('dblclick', pointer));
    else if (kind === 'wheel') canvas.dispatchEvent(new WheelEvent('wheel', { ...pos, deltaX: ev.dx || 0, deltaY: ev.dy || 0, deltaMode: 0 }));
    else if (kind === 'key_down' || kind === 'key_up') {
      canvas.dispatchEvent(new KeyboardEvent(kind === 'key_down' ? 'keydown' : 'keyup',
        { key: ev.key || '', code: ev.code || '', ...pos }));
    }
  }

  function onText(text) {
    let msg;
    try { msg = JSON.parse(text); } catch { return; }
    switch (msg.type) {
      case 'claimed':
        attempt = 0;
        setState('online');
        break;
      case 'demand': {
        /** @type {Record<string, number>} */
        const demand = {};
        for (const o of msg.outputs || []) demand[`${o.format}/${o.tier || 0}`] = o.ready || 0;
        stats.demand = demand;
        break;
      }
      case 'keyframe':
        keyframeDue = true;
        break;
      case 'event':
        dispatch(msg);
        break;
      default:
        break;
    }
  }

  async function connect() {
    if (closed) return;
    setState('connecting');
    stats.h264 = await h264Supported();
    const sock = new WebSocket(feedUrl(opts.url, opts.name, opts.token));
    ws = sock;
    sock.binaryType = 'arraybuffer';
    sock.onopen = () => {
      sock.send(JSON.stringify({
        type: 'claim', protocol: FEED_VERSION, width, height, quality, bitrate, fps,
        h264_codec: stats.h264 ? H264_CODEC : undefined, preferred_image: 'jpeg',
        token: opts.token, takeover: !!opts.takeover || attempt > 0,
        clock_us: Math.round((performance.now() - start) * 1000),
      }));
      if (stats.h264) setupEncoder();
    };
    sock.onmessage = (e) => { if (typeof e.data === 'string') onText(e.data); };
    sock.onclose = (e) => {
      if (ws !== sock) return;
      ws = null;
      stats.demand = {};
      stats.closeCode = e.code;
      stats.closeReason = e.reason;
      // Refused (a taken name, bad credentials, a bad claim): do not retry.
      if (closed || [1008, 4401, 4409].includes(e.code)) {
        setState(closed ? 'closed' : 'refused');
        return;
      }
      setState('offline');
      retry = window.setTimeout(connect, backoffDelay(attempt++));
    };
  }

  connect();
  // Ticks from a worker's timer: a page's own timers are throttled to once a
  // second or less while it is in the background, a worker's are not, so a
  // publishing tab keeps its rate when the user looks at another one.
  const ticker = startTicker(1000 / fps, tick);
  return {
    target,
    stats: () => ({ ...stats, demand: { ...stats.demand } }),
    close() {
      closed = true;
      ticker.stop();
      clearTimeout(retry);
      if (encoder) try { encoder.close(); } catch { /* closed already */ }
      if (ws) ws.close(1000, 'publisher closed');
      setState('closed');
    },
  };
}

/**
 * Publishes a `MediaStream`'s video (a camera from `getUserMedia`, a screen
 * from `getDisplayMedia`) as the stream `opts.name`: its frames are drawn
 * into a canvas of the track's size, which is published with
 * {@link publishCanvas}. Resolves once the video plays.
 *
 * @param {MediaStream} media
 * @param {PublishOptions} opts
 * @returns {Promise<{close: () => void, stats: () => PublishStats, target: EventTarget, canvas: HTMLCanvasElement}>}
 */
export async function publishMedia(media, opts) {
  const video = document.createElement('video');
  video.muted = true;
  video.playsInline = true;
  video.srcObject = media;
  await video.play();
  const canvas = document.createElement('canvas');
  canvas.width = (video.videoWidth || 640) & ~1;
  canvas.height = (video.videoHeight || 480) & ~1;
  const ctx = /** @type {CanvasRenderingContext2D} */ (canvas.getContext('2d'));
  let running = true;
  const draw = () => {
    if (!running) return;
    ctx.drawImage(video, 0, 0, canvas.width, canvas.height);
    if ('requestVideoFrameCallback' in video) /** @type {any} */ (video).requestVideoFrameCallback(draw);
    else requestAnimationFrame(draw);
  };
  draw();
  const pub = publishCanvas(canvas, opts);
  return {
    ...pub,
    canvas,
    close() {
      running = false;
      pub.close();
      for (const t of media.getTracks()) t.stop();
    },
  };
}
