/**
 * framehub browser client — small shared helpers.
 *
 * Pure functions (no DOM access at import time) so that they can be unit
 * tested under Node: stream-name/URL derivation from a location, the
 * reconnect backoff, the DOM → renderview button mapping, modifier lists and
 * a "run once on the next animation frame" scheduler.
 *
 * @module util
 */

/** Close codes after which the client never reconnects (protocol §9). */
export const TERMINAL_CLOSE_CODES = new Set([1003, 4401, 4404, 4410]);

/** First reconnect delay, seconds. */
export const BACKOFF_BASE_S = 0.25;
/** Largest reconnect delay, seconds. */
export const BACKOFF_MAX_S = 10;
/** Relative jitter applied to every reconnect delay (±30 %). */
export const BACKOFF_JITTER = 0.3;

/** Largest viewport side the hub accepts in `set_viewport` (protocol core). */
export const MAX_VIEWPORT = 32768;
/** Largest device pixel ratio the hub accepts. */
export const MAX_PIXEL_RATIO = 16;

/** Stream names the hub accepts: `[A-Za-z0-9._-]{1,64}` (protocol §1). */
export const STREAM_NAME_RE = /^[A-Za-z0-9._-]{1,64}$/;

/**
 * Reconnect delay for the given attempt (0-based): 0.25 s doubling up to
 * 10 s, each multiplied by a random factor in [0.7, 1.3].
 *
 * @param {number} attempt number of failed attempts so far (0 for the first retry)
 * @param {() => number} [random] source of uniform [0, 1) numbers (for tests)
 * @returns {number} delay in milliseconds
 */
export function backoffDelay(attempt, random = Math.random) {
  const base = Math.min(BACKOFF_MAX_S, BACKOFF_BASE_S * 2 ** Math.max(0, attempt));
  const jitter = 1 + (random() * 2 - 1) * BACKOFF_JITTER;
  return Math.round(base * jitter * 1000);
}

/**
 * The hub URLs a view may connect to, tried in turn: a stream that several
 * hubs serve (hubs joined over NATS, README "More than one hub") stays on
 * screen when one of them goes away. A connection that closes (or never
 * opens) moves to the next URL in the list; the reconnect backoff grows
 * per full round through the list, so the first retry after a hub dies
 * goes to the next hub after the shortest delay.
 */
export class HubUrls {
  /**
   * @param {string|string[]} urls one URL or a list (empty entries and repeats are dropped)
   * @param {number} [start] index of the first URL to use (wraps; e.g. random, to spread viewers)
   */
  constructor(urls, start = 0) {
    const list = (Array.isArray(urls) ? urls : [urls]).filter((u) => typeof u === 'string' && u.length > 0);
    /** @type {string[]} */
    this.urls = [...new Set(list)];
    if (this.urls.length === 0) throw new TypeError('HubUrls: at least one URL is required');
    const n = this.urls.length;
    this._index = ((Math.trunc(Number(start)) % n) + n) % n || 0;
  }

  /** The URL to connect to now. */
  get current() {
    return this.urls[this._index];
  }

  /** Index of `current` in `urls`. */
  get index() {
    return this._index;
  }

  /**
   * Moves on to the next URL (wrapping around) and returns it.
   *
   * @returns {string}
   */
  advance() {
    this._index = (this._index + 1) % this.urls.length;
    return this.current;
  }

  /**
   * The backoff step of a retry: consecutive failed attempts counted in
   * whole rounds through the list (attempts 0 … n−1 are round 0).
   *
   * @param {number} attempt failed attempts so far (0-based)
   * @returns {number}
   */
  round(attempt) {
    return Math.floor(Math.max(0, attempt) / this.urls.length);
  }
}

/**
 * The hub's base path, ending in `/`: where the hub's routes start. The
 * client's files are served at `<base>_/`, so it is read from this module's
 * own URL; a hub nested in a larger app (`Router::nest("/fh", ...)`) gets
 * `/fh/`. Outside a browser (unit tests) it is `/`.
 */
export const HUB_BASE =
  typeof location !== 'undefined' && typeof import.meta.url === 'string' && import.meta.url.startsWith('http')
    ? new URL('..', import.meta.url).pathname
    : '/';

/**
 * The stream a page at `loc` shows: the first path segment after the hub's
 * base (`<base><stream>`), `default` for the base itself. A page opened as a
 * static asset (`<base>_/viewer.html`) takes the name from its `?stream=`
 * query parameter instead.
 *
 * @param {{pathname: string, search?: string}} loc a `Location`-like object
 * @param {string} [base] the hub's base path (default {@link HUB_BASE})
 * @returns {string} the stream name
 */
export function streamNameFromLocation(loc, base = HUB_BASE) {
  let path = loc.pathname || '/';
  path = path.startsWith(base) ? path.slice(base.length) : path.replace(/^\/+/, '');
  if (path.startsWith('_/')) {
    const q = new URLSearchParams(loc.search || '');
    return q.get('stream') || 'default';
  }
  let name = path.split('/')[0] || '';
  try {
    name = decodeURIComponent(name);
  } catch {
    /* keep the raw segment */
  }
  return name || 'default';
}

/**
 * The WebSocket URL of stream `name` on the hub that served `loc`:
 * `ws(s)://<host><base><name>`.
 *
 * @param {string} name stream name
 * @param {{protocol: string, host: string}} [loc] defaults to `globalThis.location`
 * @param {string} [base] the hub's base path (default {@link HUB_BASE})
 * @returns {string}
 */
export function streamUrl(name, loc = globalThis.location, base = HUB_BASE) {
  const scheme = loc.protocol === 'https:' ? 'wss:' : 'ws:';
  return `${scheme}//${loc.host}${base}${encodeURIComponent(name)}`;
}

/** DOM `MouseEvent.button` → renderview button (0 none, 1 left, 2 right, 3 middle, 4 back, 5 forward). */
const DOM_BUTTON_TO_RV = [1, 3, 2, 4, 5];

/**
 * Maps a DOM `MouseEvent.button` to the renderview numbering.
 *
 * @param {number} domButton `event.button` (-1 = no button changed)
 * @returns {number} 0 none, 1 left, 2 right, 3 middle, 4 back, 5 forward
 */
export function mapButton(domButton) {
  return DOM_BUTTON_TO_RV[domButton] ?? 0;
}

/**
 * Maps a DOM `MouseEvent.buttons` bit mask to the list of held renderview
 * buttons. DOM bits: 1 primary, 2 secondary, 4 auxiliary, 8 back, 16 forward.
 *
 * @param {number} mask `event.buttons`
 * @returns {number[]} held buttons in ascending order
 */
export function mapButtons(mask) {
  const out = [];
  // Bit i of the DOM mask is, in order, left, right, middle, back, forward
  // — exactly renderview buttons 1..5.
  for (let i = 0; i < 5; i++) if (mask & (1 << i)) out.push(i + 1);
  return out;
}

/**
 * The modifier list of a keyboard, mouse or pointer event.
 *
 * @param {{shiftKey?: boolean, ctrlKey?: boolean, altKey?: boolean, metaKey?: boolean}} e
 * @returns {string[]} subset of `["Shift","Control","Alt","Meta"]`
 */
export function modifiersOf(e) {
  const m = [];
  if (e.shiftKey) m.push('Shift');
  if (e.ctrlKey) m.push('Control');
  if (e.altKey) m.push('Alt');
  if (e.metaKey) m.push('Meta');
  return m;
}

/**
 * Letterbox geometry of a `frameW`×`frameH` picture in a `canvasW`×`canvasH`
 * canvas, all in device pixels.
 *
 * @param {'contain'|'cover'|'fill'} fit
 * @param {number} frameW
 * @param {number} frameH
 * @param {number} canvasW
 * @param {number} canvasH
 * @returns {{scale: number, scaleX: number, scaleY: number, offsetX: number, offsetY: number,
 *   frameWidth: number, frameHeight: number, canvasWidth: number, canvasHeight: number}}
 *   `canvasX = offsetX + x * scaleX` (`scale` = `scaleX`; they differ only for `fill`)
 */
export function computeMapping(fit, frameW, frameH, canvasW, canvasH) {
  let sx = 1;
  let sy = 1;
  if (frameW > 0 && frameH > 0 && canvasW > 0 && canvasH > 0) {
    const rx = canvasW / frameW;
    const ry = canvasH / frameH;
    if (fit === 'fill') {
      sx = rx;
      sy = ry;
    } else {
      sx = sy = fit === 'cover' ? Math.max(rx, ry) : Math.min(rx, ry);
    }
  }
  // Whole-pixel offsets keep a 1:1 picture crisp.
  const offsetX = Math.round((canvasW - frameW * sx) / 2) || 0; // no -0
  const offsetY = Math.round((canvasH - frameH * sy) / 2) || 0;
  return {
    scale: sx,
    scaleX: sx,
    scaleY: sy,
    offsetX,
    offsetY,
    frameWidth: frameW,
    frameHeight: frameH,
    canvasWidth: canvasW,
    canvasHeight: canvasH,
  };
}

/**
 * Runs `cb` once on the next animation frame, or after `fallbackMs` if no
 * animation frame comes (hidden tab, headless browser), whichever is first.
 *
 * @param {() => void} cb
 * @param {number} [fallbackMs]
 * @returns {() => void} cancels the call
 */
export function onNextFrame(cb, fallbackMs = 100) {
  let done = false;
  let raf = 0;
  let timer = 0;
  const run = () => {
    if (done) return;
    done = true;
    if (raf && typeof cancelAnimationFrame === 'function') cancelAnimationFrame(raf);
    clearTimeout(timer);
    cb();
  };
  if (typeof requestAnimationFrame === 'function') raf = requestAnimationFrame(run);
  timer = setTimeout(run, fallbackMs);
  return () => {
    done = true;
    if (raf && typeof cancelAnimationFrame === 'function') cancelAnimationFrame(raf);
    clearTimeout(timer);
  };
}

/**
 * Formats a bit rate for people: `"850 kbit/s"`, `"2.4 Mbit/s"`.
 *
 * @param {number} bps bits per second
 * @returns {string}
 */
export function formatBitrate(bps) {
  if (!Number.isFinite(bps) || bps <= 0) return '0 kbit/s';
  if (bps >= 1e6) return `${(bps / 1e6).toFixed(bps >= 1e7 ? 0 : 1)} Mbit/s`;
  return `${Math.round(bps / 1e3)} kbit/s`;
}
