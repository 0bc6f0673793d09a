/**
 * The publisher page (`publish.html`, `GET /_/publish`): publishes a canvas
 * animation that answers viewers' input (a ring where they click, a trail
 * where they move) or the camera, with `web/publish.js`.
 *
 * Test hook: `window.framehubPublish = {pub, canvas, clicks: [{x, y, button}]}`
 * (`clicks`: the `pointerdown` DOM events the canvas received, in canvas pixels).
 *
 * @module publish-page
 */

import { publishCanvas, publishMedia } from './publish.js';
import { HUB_BASE } from './util.js';

const $ = (id) => /** @type {any} */ (document.getElementById(id));
const params = new URLSearchParams(location.search);
const hook = { pub: /** @type {any} */ (null), canvas: /** @type {HTMLCanvasElement|null} */ (null), clicks: /** @type {any[]} */ ([]) };
Object.assign(window, { framehubPublish: hook });

if (params.get('name')) $('name').value = params.get('name');
if (params.get('source')) $('source').value = params.get('source');
const fps = Number(params.get('fps')) || 30;
const hubUrl = `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}${HUB_BASE.replace(/\/$/, '')}`;

/** A 640×360 animation: moving bars, and rings where viewers click. */
function animation() {
  const canvas = document.createElement('canvas');
  canvas.width = 640;
  canvas.height = 360;
  const ctx = /** @type {CanvasRenderingContext2D} */ (canvas.getContext('2d'));
  /** @type {{x: number, y: number, t: number}[]} */
  const rings = [];
  let pointer = { x: -1, y: -1 };
  const toCanvas = (/** @type {MouseEvent} */ e) => {
    const r = canvas.getBoundingClientRect();
    return { x: (e.clientX - r.left) * canvas.width / r.width, y: (e.clientY - r.top) * canvas.height / r.height };
  };
  canvas.addEventListener('pointerdown', (e) => {
    const p = toCanvas(e);
    hook.clicks.push({ x: p.x, y: p.y, button: e.button });
    rings.push({ ...p, t: performance.now() });
  });
  canvas.addEventListener('pointermove', (e) => { pointer = toCanvas(e); });
  const draw = (/** @type {number} */ now) => {
    const t = now / 1000;
    ctx.fillStyle = '#102030';
    ctx.fillRect(0, 0, canvas.width, canvas.height);
    for (let i = 0; i < 8; i++) {
      ctx.fillStyle = `hsl(${(i * 45 + t * 40) % 360} 70% 50%)`;
      ctx.fillRect(((i * 80 + t * 60) % 720) - 80, 40 + i * 36, 70, 28);
    }
    if (pointer.x >= 0) {
      ctx.fillStyle = '#fff';
      ctx.beginPath();
      ctx.arc(pointer.x, pointer.y, 6, 0, 2 * Math.PI);
      ctx.fill();
    }
    for (const r of rings) {
      const age = (now - r.t) / 1000;
      ctx.strokeStyle = `rgba(255,255,255,${Math.max(0, 1 - age)})`;
      ctx.lineWidth = 3;
      ctx.beginPath();
      ctx.arc(r.x, r.y, 10 + age * 60, 0, 2 * Math.PI);
      ctx.stroke();
    }
    while (rings.length && now - rings[0].t > 1000) rings.shift();
    requestAnimationFrame(draw);
  };
  requestAnimationFrame(draw);
  return canvas;
}

async function start() {
  const name = $('name').value;
  const opts = { url: hubUrl, name, fps, token: params.get('token') || undefined };
  $('stage').replaceChildren();
  if ($('source').value === 'camera') {
    const media = await navigator.mediaDevices.getUserMedia({ video: { width: 640, height: 480 }, audio: false });
    hook.pub = await publishMedia(media, opts);
    hook.canvas = hook.pub.canvas;
    $('stage').append(hook.pub.canvas);
  } else {
    hook.canvas = animation();
    $('stage').append(hook.canvas);
    hook.pub = publishCanvas(hook.canvas, opts);
  }
  hook.pub.target.addEventListener('state', (/** @type {any} */ e) => {
    const s = e.detail;
    $('state').textContent = s.state === 'refused' ? `refused: ${s.closeReason} (${s.closeCode})` : s.state;
  });
  $('link').href = `${HUB_BASE}${encodeURIComponent(name)}`;
  $('link').hidden = false;
  $('start').disabled = true;
  $('stop').disabled = false;
}

$('form').addEventListener('submit', (/** @type {Event} */ e) => {
  e.preventDefault();
  start().catch((err) => { $('state').textContent = `cannot start: ${err.message || err}`; });
});
$('stop').addEventListener('click', () => {
  hook.pub?.close();
  $('start').disabled = false;
  $('stop').disabled = true;
});
if (params.get('start') === '1') start().catch((err) => { $('state').textContent = `cannot start: ${err.message || err}`; });
