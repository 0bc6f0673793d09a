/**
 * framehub index page script (`index.html`): lists the hub's streams from
 * `GET /streams`, each as a card with a small live view (image-only, no
 * input), its name, size and viewer count. It follows the hub's lifecycle
 * events (`GET /_/events`, Server-Sent Events): a stream that appears gets a
 * card, one that goes away loses its card, viewer counts follow joins and
 * leaves. Where the event stream cannot be had, it polls `/streams` every 2 s.
 *
 * Test hook: `window.framehubIndex = {cards: Map<name, RemoteFramebufferView>}`.
 *
 * @module index
 */

import { RemoteFramebufferView, streamUrl } from './framehub.js';
import { HUB_BASE } from './util.js';

const REFRESH_MS = 2000;

const grid = /** @type {HTMLElement} */ (document.getElementById('streams'));
const empty = /** @type {HTMLElement} */ (document.getElementById('empty'));
const summary = /** @type {HTMLElement} */ (document.getElementById('summary'));

/** name → live view */
const cards = new Map();
/** name → card element */
const elements = new Map();
Object.assign(window, { framehubIndex: { cards } });

/**
 * @typedef {{name: string, width: number, height: number, fps: number, clients: number}} StreamInfo
 */

/**
 * Creates the card of one stream.
 *
 * @param {StreamInfo} s
 * @returns {HTMLAnchorElement}
 */
function makeCard(s) {
  const a = document.createElement('a');
  a.className = 'fh-card';
  a.href = `${HUB_BASE}${encodeURIComponent(s.name)}`;
  a.dataset.stream = s.name;
  const canvas = document.createElement('canvas');
  canvas.className = 'fh-thumb';
  canvas.setAttribute('aria-hidden', 'true');
  const body = document.createElement('div');
  body.className = 'fh-card-body';
  const name = document.createElement('span');
  name.className = 'fh-card-name';
  name.textContent = s.name;
  const meta = document.createElement('span');
  meta.className = 'fh-card-meta';
  body.append(name, meta);
  const state = document.createElement('span');
  state.className = 'fh-card-state';
  state.textContent = 'connecting…';
  const thumb = document.createElement('div');
  thumb.className = 'fh-thumb-box';
  thumb.append(canvas, state);
  a.append(thumb, body);
  return a;
}

/**
 * Updates a card's size and viewer count.
 *
 * @param {HTMLElement} el
 * @param {StreamInfo} s
 */
function updateCard(el, s) {
  const meta = /** @type {HTMLElement} */ (el.querySelector('.fh-card-meta'));
  const parts = [];
  if (s.width && s.height) parts.push(`${s.width}×${s.height}`);
  if (Number.isFinite(s.fps) && s.fps > 0) parts.push(`${Math.round(s.fps)} fps`);
  if (Number.isFinite(s.clients)) parts.push(`${s.clients} viewer${s.clients === 1 ? '' : 's'}`);
  meta.textContent = parts.join(' · ');
}

/**
 * What a card shows over its thumbnail while it has no live picture.
 *
 * @param {{state: string, code?: number, reason?: string}} d a `state` event's detail
 * @returns {string}
 */
function cardStateText(d) {
  if (d.state === 'error') return d.code === 4401 ? 'unauthorized' : d.reason || `error ${d.code}`;
  if (d.state === 'closed') return 'reconnecting…';
  if (d.state === 'open') return 'waiting for a frame…';
  return 'connecting…';
}

/**
 * Makes the page show exactly the streams of `list`.
 *
 * @param {StreamInfo[]} list
 */
function sync(list) {
  const seen = new Set();
  for (const s of list) {
    if (!s || typeof s.name !== 'string') continue;
    seen.add(s.name);
    let el = elements.get(s.name);
    if (!el) {
      el = makeCard(s);
      grid.append(el);
      elements.set(s.name, el);
      const view = new RemoteFramebufferView(/** @type {HTMLCanvasElement} */ (el.querySelector('canvas')), {
        url: streamUrl(s.name),
        imageOnly: true,
        autoResize: false, // a thumbnail must not resize the stream for everyone
        input: false,
      });
      cards.set(s.name, view);
      const label = /** @type {HTMLElement} */ (el.querySelector('.fh-card-state'));
      view.addEventListener('state', (ev) => {
        const d = /** @type {CustomEvent} */ (ev).detail;
        label.textContent = cardStateText(d);
        label.hidden = d.state === 'open' && view.getStats().framesDrawn > 0;
      });
      view.addEventListener('frame', () => {
        label.hidden = true;
      });
    }
    updateCard(el, s);
  }
  for (const [name, el] of elements) {
    if (seen.has(name)) continue;
    cards.get(name)?.dispose();
    cards.delete(name);
    el.remove();
    elements.delete(name);
  }
  // Keep the cards in name order.
  const sorted = [...elements.keys()].sort();
  sorted.forEach((name, i) => {
    const el = /** @type {HTMLElement} */ (elements.get(name));
    if (grid.children[i] !== el) grid.insertBefore(el, grid.children[i] || null);
  });
  empty.hidden = elements.size > 0;
  summary.textContent = `${elements.size} stream${elements.size === 1 ? '' : 's'}`;
}

/** Fetches `/streams` and syncs the page; failures keep the current cards. */
async function refresh() {
  try {
    const r = await fetch(`${HUB_BASE}streams`, { cache: 'no-store' });
    if (!r.ok) throw new Error(`HTTP ${r.status}`);
    const list = await r.json();
    sync(Array.isArray(list) ? list : []);
  } catch (e) {
    summary.textContent = `cannot list streams (${/** @type {Error} */ (e).message})`;
  }
}

/** Listing again after an event: a burst of events makes one request. */
let pending = 0;
function refreshSoon() {
  if (!pending) pending = setTimeout(() => { pending = 0; refresh(); }, 50);
}

refresh();
if (typeof EventSource === 'function') {
  const events = new EventSource(`${HUB_BASE}_/events`);
  for (const kind of ['stream.created', 'stream.destroyed', 'viewer.joined', 'viewer.left']) {
    events.addEventListener(kind, refreshSoon);
  }
  let polling = 0;
  events.addEventListener('open', () => { clearInterval(polling); polling = 0; refreshSoon(); });
  // Refused (401) or gone: poll until it comes back (EventSource retries by itself).
  events.addEventListener('error', () => { if (!polling) polling = setInterval(refresh, REFRESH_MS); });
} else {
  setInterval(refresh, REFRESH_MS);
}
