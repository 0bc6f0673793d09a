/**
 * framehub browser client — unit tests of the DOM-free modules (util,
 * envelope, queue) under Node's test runner: `node --test web/test/`.
 */

import { test } from 'node:test';
import assert from 'node:assert/strict';

import {
  backoffDelay, computeMapping, mapButton, mapButtons, modifiersOf,
  streamNameFromLocation, streamUrl, formatBitrate, TERMINAL_CLOSE_CODES,
} from '../util.js';
import { encodeEnvelope, parseEnvelope, splitPatchPayload } from '../envelope.js';
import { FrameQueue } from '../queue.js';

test('backoff doubles from 0.25 s to 10 s with ±30 % jitter', () => {
  assert.equal(backoffDelay(0, () => 0.5), 250);
  assert.equal(backoffDelay(1, () => 0.5), 500);
  assert.equal(backoffDelay(3, () => 0.5), 2000);
  assert.equal(backoffDelay(10, () => 0.5), 10000);
  assert.equal(backoffDelay(0, () => 0), 175);
  assert.equal(backoffDelay(10, () => 0.999999), 13000);
  for (const c of [1003, 4401, 4404]) assert.ok(TERMINAL_CLOSE_CODES.has(c));
  for (const c of [1000, 1001, 1006, 1008, 1011]) assert.ok(!TERMINAL_CLOSE_CODES.has(c));
});

test('stream name and URL come from the location', () => {
  assert.equal(streamNameFromLocation({ pathname: '/' }), 'default');
  assert.equal(streamNameFromLocation({ pathname: '/cam-1' }), 'cam-1');
  assert.equal(streamNameFromLocation({ pathname: '/a.b_c/' }), 'a.b_c');
  assert.equal(streamNameFromLocation({ pathname: '/_/viewer.html', search: '?stream=x' }), 'x');
  assert.equal(streamNameFromLocation({ pathname: '/_/viewer.html', search: '' }), 'default');
  assert.equal(streamUrl('cam', { protocol: 'http:', host: 'h:1' }), 'ws://h:1/cam');
  assert.equal(streamUrl('cam', { protocol: 'https:', host: 'h' }), 'wss://h/cam');
});

test('buttons and modifiers use the renderview numbering', () => {
  assert.deepEqual([0, 1, 2, 3, 4].map(mapButton), [1, 3, 2, 4, 5]);
  assert.equal(mapButton(-1), 0);
  assert.deepEqual(mapButtons(0), []);
  assert.deepEqual(mapButtons(1 | 2 | 4), [1, 2, 3]);
  assert.deepEqual(mapButtons(8 | 16), [4, 5]);
  assert.deepEqual(modifiersOf({ shiftKey: true, metaKey: true }), ['Shift', 'Meta']);
  assert.deepEqual(modifiersOf({ ctrlKey: true, altKey: true }), ['Control', 'Alt']);
});

test('letterbox mapping for contain, cover and fill', () => {
  const c = computeMapping('contain', 640, 480, 1000, 500);
  assert.equal(c.scale, 500 / 480);
  assert.equal(c.offsetY, 0);
  assert.equal(c.offsetX, Math.round((1000 - 640 * c.scale) / 2));
  const v = computeMapping('cover', 640, 480, 1000, 500);
  assert.equal(v.scale, 1000 / 640);
  assert.equal(v.offsetX, 0);
  assert.ok(v.offsetY < 0);
  const f = computeMapping('fill', 640, 480, 1000, 500);
  assert.equal(f.scaleX, 1000 / 640);
  assert.equal(f.scaleY, 500 / 480);
  assert.equal(f.offsetX, 0);
  const one = computeMapping('contain', 100, 100, 201, 100);
  assert.equal(one.scale, 1);
  assert.equal(one.offsetX, 51); // whole pixels
  const none = computeMapping('contain', 0, 0, 300, 200);
  assert.equal(none.scale, 1);
});

test('envelope round trip and errors', () => {
  const payload = new Uint8Array([1, 2, 3]);
  const msg = encodeEnvelope({ type: 'image_frame', seq: 7 }, payload);
  const { header, payload: p } = parseEnvelope(msg.buffer);
  assert.equal(header.type, 'image_frame');
  assert.equal(header.seq, 7);
  assert.deepEqual([...p], [1, 2, 3]);
  assert.throws(() => parseEnvelope(new Uint8Array([1, 0])));
  assert.throws(() => parseEnvelope(new Uint8Array([10, 0, 0, 0, 123])));
  assert.throws(() => parseEnvelope(encodeEnvelope([1, 2])));
});

test('patch payload splits into length-prefixed images', () => {
  const parts = [new Uint8Array([9, 9]), new Uint8Array([]), new Uint8Array([1, 2, 3])];
  const total = parts.reduce((n, p) => n + 4 + p.length, 0);
  const buf = new Uint8Array(total);
  const dv = new DataView(buf.buffer);
  let off = 0;
  for (const p of parts) {
    dv.setUint32(off, p.length, true);
    buf.set(p, off + 4);
    off += 4 + p.length;
  }
  assert.deepEqual(splitPatchPayload(buf).map((p) => [...p]), parts.map((p) => [...p]));
  assert.throws(() => splitPatchPayload(buf.subarray(0, total - 1)));
});

/** A controllable decode: resolve(result) or reject later. */
function deferred() {
  let resolve, reject;
  const promise = new Promise((res, rej) => { resolve = res; reject = rej; });
  return { promise, resolve, reject };
}

function frame(full = true) {
  const f = { width: 4, height: 4, full, still: false, closed: false, paint() {}, close() { f.closed = true; } };
  return f;
}

const tick = () => new Promise((r) => setTimeout(r, 0));

function recorder() {
  const log = [];
  const q = new FrameQueue({
    draw: (e) => log.push(['draw', e.seq]),
    skip: (e, why) => log.push(['skip', e.seq, why]),
  });
  return { q, log };
}

test('queue draws strictly in seq order', async () => {
  const { q, log } = recorder();
  const a = deferred(), b = deferred(), c = deferred();
  q.push({ seq: 0 }, false, a.promise);
  q.push({ seq: 1 }, false, b.promise);
  q.push({ seq: 2 }, false, c.promise);
  c.resolve(frame(false));
  b.resolve(frame(false));
  await tick();
  assert.deepEqual(log, []); // 0 still decoding: nothing may be drawn
  a.resolve(frame(false));
  await tick();
  assert.deepEqual(log, [['draw', 0], ['draw', 1], ['draw', 2]]);
  assert.equal(q.length, 0);
});

test('a finished full frame supersedes older ones; late decodes never draw', async () => {
  const { q, log } = recorder();
  const a = deferred(), b = deferred();
  q.push({ seq: 5 }, true, a.promise);
  q.push({ seq: 6 }, true, b.promise);
  const fb = frame();
  b.resolve(fb);
  await tick();
  assert.deepEqual(log, [['skip', 5, 'superseded'], ['draw', 6]]);
  assert.ok(fb.closed);
  const fa = frame();
  a.resolve(fa);
  await tick();
  assert.deepEqual(log.length, 2); // the late frame 5 is not drawn...
  assert.ok(fa.closed); // ...and its resources are released
  assert.equal(q.highestDrawn, 6);
});

test('a lossy copy of a picture never supersedes its lossless still', async () => {
  const { q, log } = recorder();
  const a = deferred(), b = deferred(), c = deferred(), d = deferred();
  q.push({ seq: 1, timestamp_us: 10 }, true, a.promise);
  q.push({ seq: 2, timestamp_us: 20, still: true }, true, b.promise);
  q.push({ seq: 3, timestamp_us: 20 }, true, c.promise);
  c.resolve(frame(true));
  await tick();
  // seq 1 (an older picture) is superseded; the still waits for its decode.
  assert.deepEqual(log, [['skip', 1, 'superseded']]);
  b.resolve(frame(true));
  await tick();
  assert.deepEqual(log.slice(1), [['draw', 2], ['draw', 3]]);
  // A newer picture still supersedes a still that is decoding.
  q.push({ seq: 4, timestamp_us: 30, still: true }, true, d.promise);
  const e = deferred();
  q.push({ seq: 5, timestamp_us: 40 }, true, e.promise);
  e.resolve(frame(true));
  await tick();
  assert.deepEqual(log.slice(3), [['skip', 4, 'superseded'], ['draw', 5]]);
});

test('failed decodes are skipped (acked) and stale seqs never draw', async () => {
  const { q, log } = recorder();
  const a = deferred();
  q.push({ seq: 1 }, true, a.promise);
  q.push({ seq: 2 }, true, Promise.resolve(null));
  a.reject(new Error('bad image'));
  await tick();
  assert.deepEqual(log, [['skip', 1, 'failed'], ['skip', 2, 'failed']]);
  q.push({ seq: 3 }, true, Promise.resolve(frame()));
  await tick();
  q.push({ seq: 3 }, true, Promise.resolve(frame()));
  await tick();
  assert.deepEqual(log.slice(2), [['draw', 3], ['skip', 3, 'stale']]);
});

test('clear forgets entries without acks and resets the seq floor', async () => {
  const { q, log } = recorder();
  const a = deferred();
  q.push({ seq: 9 }, true, Promise.resolve(frame()));
  await tick();
  q.push({ seq: 10 }, true, a.promise);
  assert.equal(q.decoding, 1);
  q.clear();
  const late = frame();
  a.resolve(late);
  await tick();
  assert.ok(late.closed);
  assert.deepEqual(log, [['draw', 9]]);
  q.push({ seq: 0 }, true, Promise.resolve(frame())); // a new connection restarts at 0
  await tick();
  assert.deepEqual(log, [['draw', 9], ['draw', 0]]);
});

test('formatBitrate', () => {
  assert.equal(formatBitrate(0), '0 kbit/s');
  assert.equal(formatBitrate(850000), '850 kbit/s');
  assert.equal(formatBitrate(2400000), '2.4 Mbit/s');
});
