/**
 * framehub browser client — unit tests of the hub URL rotation (`HubUrls`)
 * and of `Transport` reconnecting through several hubs, with a fake
 * WebSocket and mocked timers: `node --test web/test/`.
 */

import { test, mock } from 'node:test';
import assert from 'node:assert/strict';

import { HubUrls, BACKOFF_BASE_S, BACKOFF_JITTER } from '../util.js';
import { Transport } from '../transport.js';

test('HubUrls goes round the list and counts backoff in whole rounds', () => {
  const hubs = new HubUrls(['ws://a/cam', 'ws://b/cam', 'ws://c/cam']);
  assert.equal(hubs.current, 'ws://a/cam');
  assert.equal(hubs.advance(), 'ws://b/cam');
  assert.equal(hubs.advance(), 'ws://c/cam');
  assert.equal(hubs.advance(), 'ws://a/cam', 'wraps around');
  assert.deepEqual([0, 1, 2, 3, 5, 6].map((a) => hubs.round(a)), [0, 0, 0, 1, 1, 2]);
  assert.equal(hubs.round(-1), 0);
});

test('HubUrls takes one URL or a list, drops empties and repeats, starts anywhere', () => {
  const one = new HubUrls('ws://a/cam');
  assert.deepEqual(one.urls, ['ws://a/cam']);
  assert.equal(one.advance(), 'ws://a/cam', 'one URL: always the same');
  assert.equal(one.round(4), 4, 'one URL: the backoff of a single hub');
  const list = new HubUrls(['ws://a/cam', '', 'ws://b/cam', 'ws://a/cam', null]);
  assert.deepEqual(list.urls, ['ws://a/cam', 'ws://b/cam']);
  assert.equal(new HubUrls(['ws://a', 'ws://b', 'ws://c'], 4).current, 'ws://b');
  assert.equal(new HubUrls(['ws://a', 'ws://b', 'ws://c'], -1).current, 'ws://c');
  assert.equal(new HubUrls(['ws://a', 'ws://b'], NaN).current, 'ws://a');
  assert.throws(() => new HubUrls([]), TypeError);
  assert.throws(() => new HubUrls(''), TypeError);
});

/** A stand-in for the browser's WebSocket: records each socket made. */
class FakeWebSocket {
  static OPEN = 1;
  /** @type {FakeWebSocket[]} */
  static made = [];
  constructor(url) {
    this.url = url;
    this.readyState = 0;
    this.sent = [];
    FakeWebSocket.made.push(this);
  }
  send(data) {
    this.sent.push(data);
  }
  close() {
    this.readyState = 3;
  }
  /** The hub accepted the connection. */
  open() {
    this.readyState = FakeWebSocket.OPEN;
    this.onopen?.({});
  }
  /** The connection ended (the hub died: 1006, or closed: another code). */
  drop(code = 1006) {
    this.readyState = 3;
    this.onclose?.({ code, reason: '', wasClean: code !== 1006 });
  }
}

test('Transport reconnects to the next hub in turn, backing off per round', (t) => {
  mock.timers.enable({ apis: ['setTimeout'] });
  t.after(() => mock.timers.reset());
  const saved = globalThis.WebSocket;
  globalThis.WebSocket = FakeWebSocket;
  t.after(() => {
    globalThis.WebSocket = saved;
  });
  FakeWebSocket.made = [];
  const closes = [];
  let opens = 0;
  const tr = new Transport(['ws://edge1/cam', 'ws://edge2/cam'], {
    open: () => opens++,
    close: (info) => closes.push(info),
  });
  tr.connect();
  assert.equal(FakeWebSocket.made.length, 1);
  assert.equal(FakeWebSocket.made[0].url, 'ws://edge1/cam');
  FakeWebSocket.made[0].open();
  assert.equal(opens, 1);
  // edge1 dies: the next attempt goes to edge2 after the first backoff step.
  FakeWebSocket.made[0].drop();
  assert.equal(closes.length, 1);
  assert.equal(closes[0].willRetry, true);
  const first = BACKOFF_BASE_S * 1000;
  assert.ok(closes[0].delay >= first * (1 - BACKOFF_JITTER) && closes[0].delay <= first * (1 + BACKOFF_JITTER), `${closes[0].delay}`);
  assert.equal(tr.url, 'ws://edge2/cam', 'the next URL is known before the attempt');
  mock.timers.tick(closes[0].delay);
  assert.equal(FakeWebSocket.made.length, 2);
  assert.equal(FakeWebSocket.made[1].url, 'ws://edge2/cam');
  FakeWebSocket.made[1].open();
  assert.equal(tr.reconnects, 1);
  assert.ok(tr.isOpen);
  // edge2 refuses for good (4410 stream ended): no more attempts anywhere.
  FakeWebSocket.made[1].drop(4410);
  assert.equal(closes[1].willRetry, false);
  mock.timers.tick(60_000);
  assert.equal(FakeWebSocket.made.length, 2);
});

test('Transport keeps trying every hub while none answers, the delay growing per round', (t) => {
  mock.timers.enable({ apis: ['setTimeout'] });
  t.after(() => mock.timers.reset());
  const saved = globalThis.WebSocket;
  globalThis.WebSocket = FakeWebSocket;
  t.after(() => {
    globalThis.WebSocket = saved;
  });
  FakeWebSocket.made = [];
  const delays = [];
  const tr = new Transport(['ws://a/cam', 'ws://b/cam', 'ws://c/cam'], {
    close: (info) => delays.push(info.delay),
  });
  tr.connect();
  for (let i = 0; i < 7; i++) {
    FakeWebSocket.made[i].drop();
    mock.timers.tick(delays[i]);
  }
  assert.deepEqual(
    FakeWebSocket.made.map((w) => w.url),
    ['ws://a/cam', 'ws://b/cam', 'ws://c/cam', 'ws://a/cam', 'ws://b/cam', 'ws://c/cam', 'ws://a/cam', 'ws://b/cam'],
  );
  // Rounds 0, 0, 0, 1, 1, 1, 2: 0.25 s, then 0.5 s, then 1 s (±30 %).
  const bases = [250, 250, 250, 500, 500, 500, 1000];
  delays.forEach((d, i) => assert.ok(d >= bases[i] * 0.7 && d <= bases[i] * 1.3, `attempt ${i}: ${d} ms`));
  // A connection that proves healthy starts the backoff over; the hub stays the same.
  FakeWebSocket.made[7].open();
  tr.resetBackoff();
  FakeWebSocket.made[7].drop();
  assert.ok(delays[7] <= 250 * 1.3, `${delays[7]}`);
  assert.equal(tr.url, 'ws://c/cam');
  tr.close();
});
