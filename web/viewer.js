/**
 * framehub viewer page script (`viewer.html`): one full-window
 * RemoteFramebufferView of the stream named by the page's path, a status
 * line (state, name, size, fps, latency, bitrate, viewers, transport) and a
 * plain error message for unknown streams and refused credentials.
 *
 * Test hooks: `window.framehubView` (the view) and `window.framehubStats`
 * (`{framesDrawn, lastSeq, lastWidth, lastHeight, state, closeCode, reconnects}`,
 * updated live).
 *
 * @module viewer
 */

import { RemoteFramebufferView, streamNameFromLocation, streamUrl, formatBitrate } from './framehub.js';
import { HUB_BASE } from './util.js';

const name = streamNameFromLocation(location);
const params = new URLSearchParams(location.search);

/** @param {string} id */
const $ = (id) => /** @type {HTMLElement} */ (document.getElementById(id));

const view = new RemoteFramebufferView($('screen'), {
  url: streamUrl(name),
  token: params.get('token') || undefined,
  fit: /** @type {any} */ (params.get('fit') || 'contain'),
  imageOnly: params.get('image') === '1',
  // `?transport=webrtc` (or `auto`): video over WebRTC (docs/protocol.md §13).
  transport: /** @type {any} */ (params.get('transport') || 'websocket'),
});
view.canvas.setAttribute('aria-label', `stream ${name}`);

/** Live numbers for tests and tools. */
const stats = {
  framesDrawn: 0,
  lastSeq: -1,
  lastWidth: 0,
  lastHeight: 0,
  state: view.state,
  closeCode: /** @type {number|null} */ (null),
  reconnects: 0,
  tier: 0,
  /** @type {'online'|'offline'|'stalled'} a remote publisher's state */
  publisher: 'online',
};
Object.assign(window, { framehubView: view, framehubStats: stats });

let viewers = /** @type {number|null} */ (null);
let retryTimer = 0;

$('st-name').textContent = name;

/** Redraws the status line from the view's statistics. */
function renderStatus() {
  const s = view.getStats();
  $('st-size').textContent = s.width ? `${s.width}×${s.height}` : '';
  $('st-fps').textContent = s.state === 'open' ? `${s.fps} fps` : '';
  $('st-latency').textContent = s.latencyMs !== null && s.state === 'open' ? `${Math.round(s.latencyMs)} ms` : '';
  $('st-bitrate').textContent = s.state === 'open' ? formatBitrate(s.bitrateBps) : '';
  $('st-viewers').textContent = viewers === null ? '' : `${viewers} viewer${viewers === 1 ? '' : 's'}`;
  $('st-transport').textContent = s.transport || '';
  // Adaptive quality: shown only while the hub has stepped this viewer down.
  const q = s.quality;
  const tier = q && Number.isFinite(Number(q.tier)) ? Number(q.tier) : 0;
  $('st-quality').textContent =
    s.state === 'open' && tier > 0
      ? `reduced quality${q.quality ? ` q${q.quality}` : ''}${q.scale && q.scale < 1 ? ` ×${q.scale}` : ''}`
      : '';
  stats.tier = tier;
  stats.reconnects = s.reconnects;
}

/**
 * Shows a terminal error plainly in the page.
 *
 * @param {number} code
 * @param {string} reason
 */
function showError(code, reason) {
  let title;
  let text;
  if (code === 4404) {
    title = `Unknown stream “${name}”`;
    text = reason || 'The hub has no stream of that name.';
  } else if (code === 4401) {
    title = 'Unauthorized';
    text = `The hub refused the credentials${reason ? ` (${reason})` : ''}. Add ?token=… to the address to give one.`;
  } else if (code === 4410) {
    title = `Stream “${name}” ended`;
    text = 'Its publisher left and did not come back. Reload the page to look for it again.';
  } else if (code === 1003) {
    title = 'Cannot show this stream';
    text = reason || 'This browser and the hub have no media format in common.';
  } else {
    title = 'Connection failed';
    text = reason || `closed with code ${code}`;
  }
  $('error-title').textContent = title;
  $('error-text').textContent = `${text} (code ${code})`;
  $('error').hidden = false;
}

view.addEventListener('state', (ev) => {
  const d = /** @type {CustomEvent} */ (ev).detail;
  stats.state = d.state;
  if (d.code !== undefined && d.state !== 'open' && d.state !== 'connecting') stats.closeCode = d.code;
  const el = $('st-state');
  el.className = `fh-state fh-state-${d.state}`;
  clearInterval(retryTimer);
  if (d.state === 'closed' && d.willRetry) {
    const until = Date.now() + (d.delay || 0);
    const tick = () => {
      const left = Math.max(0, (until - Date.now()) / 1000);
      el.textContent = `reconnecting in ${left.toFixed(1)} s`;
    };
    tick();
    retryTimer = setInterval(tick, 100);
  } else {
    el.textContent = d.state === 'open' && stats.publisher !== 'online' ? publisherText(stats.publisher) : d.state;
  }
  if (d.state === 'error') showError(d.code, d.reason);
  else if (d.state === 'open') $('error').hidden = true;
  document.body.dataset.state = d.state;
  renderStatus();
});

view.addEventListener('frame', (ev) => {
  const d = /** @type {CustomEvent} */ (ev).detail;
  stats.framesDrawn++;
  stats.lastSeq = d.seq;
  const resized = d.width !== stats.lastWidth || d.height !== stats.lastHeight;
  stats.lastWidth = d.width;
  stats.lastHeight = d.height;
  if (resized) renderStatus(); // the size shown changes at once, not at the next stats tick
});

view.addEventListener('stats', renderStatus);

// A remote publisher left (the picture stays until it is back or the stream ends).
view.addEventListener('publisher', (ev) => {
  stats.publisher = /** @type {CustomEvent} */ (ev).detail.publisher;
  const el = $('st-state');
  if (stats.state === 'open') {
    el.textContent = stats.publisher === 'online' ? 'open' : publisherText(stats.publisher);
    el.className = `fh-state fh-state-${stats.publisher === 'online' ? 'open' : 'closed'}`;
  }
});

/**
 * The status line's words for a publisher that is not online.
 *
 * @param {string} state `offline` or `stalled`
 */
function publisherText(state) {
  return state === 'stalled' ? 'waiting for the publisher (no keyframe)' : 'publisher offline';
}
view.addEventListener('quality', renderStatus);
view.addEventListener('config', renderStatus);

/** Polls `/streams` for this stream's viewer count. */
async function pollViewers() {
  try {
    const r = await fetch(`${HUB_BASE}streams`, { cache: 'no-store' });
    if (r.ok) {
      const list = await r.json();
      const me = Array.isArray(list) ? list.find((s) => s && s.name === name) : null;
      viewers = me && Number.isFinite(me.clients) ? me.clients : null;
      renderStatus();
    }
  } catch {
    /* the hub is unreachable; the view reports the state */
  }
}
pollViewers();
setInterval(pollViewers, 2000);

// Keyboard input goes to the stream as soon as the page opens.
view.canvas.focus({ preventScroll: true });
