/**
 * framehub browser client — input: turns DOM pointer, wheel, keyboard and
 * text events on the view's canvas into renderview events (protocol §5)
 * with coordinates in **framebuffer pixels** (through the letterbox).
 *
 * - `pointer_move` and `wheel` are coalesced to at most one message each per
 *   animation frame (wheel deltas are summed); any other event flushes what
 *   is pending first, so the order of events is kept.
 * - Keys are taken only while the canvas has focus (it gets `tabindex=0`
 *   and takes focus on pointerdown); their default actions are prevented.
 * - Printable keys also produce `char` events; so does `beforeinput`.
 * - The context menu is disabled on the canvas; the pointer is captured
 *   while a button is held.
 *
 * @module input
 */

import { mapButton, mapButtons, modifiersOf, onNextFrame } from './util.js';

/** Pixels per wheel line (`WheelEvent.DOM_DELTA_LINE`). */
export const WHEEL_LINE_PX = 16;

/**
 * Whether a `KeyboardEvent.key` is text (a single character, not a named key
 * such as `"Enter"`).
 *
 * @param {string} key
 * @returns {boolean}
 */
export function isPrintableKey(key) {
  return typeof key === 'string' && key.length > 0 && [...key].length === 1 && key !== '\u007f';
}

export class Input {
  /**
   * @param {HTMLCanvasElement} canvas
   * @param {import('./display.js').Display} display maps client positions to framebuffer pixels
   * @param {(event: Object) => void} send delivers one renderview event object
   */
  constructor(canvas, display, send) {
    this.canvas = canvas;
    this.display = display;
    this._send = send;
    /** Pending coalesced events, in the order they were first queued. */
    this._pending = /** @type {{move: Object|null, wheel: Object|null, order: string[]}} */ ({
      move: null,
      wheel: null,
      order: [],
    });
    this._cancelFlush = null;
    /** Keys held down (code → key), released on blur. */
    this._held = new Map();
    /** DOM button mask last seen, to detect chorded presses reported as moves. */
    this._mask = 0;

    if (!canvas.hasAttribute('tabindex')) canvas.tabIndex = 0;
    canvas.style.touchAction = 'none';
    canvas.style.outline = 'none';

    /** @type {[string, (e: any) => void, AddEventListenerOptions?][]} */
    this._listeners = [
      ['pointerdown', (e) => this._onPointerDown(e)],
      ['pointerup', (e) => this._onPointerUp(e)],
      ['pointercancel', (e) => this._onPointerUp(e)],
      ['pointermove', (e) => this._onPointerMove(e)],
      ['pointerenter', (e) => this._immediate('pointer_enter', e, 0)],
      ['pointerleave', (e) => this._immediate('pointer_leave', e, 0)],
      ['dblclick', (e) => this._immediate('double_click', e, mapButton(e.button))],
      ['wheel', (e) => this._onWheel(e), { passive: false }],
      ['contextmenu', (e) => e.preventDefault()],
      ['keydown', (e) => this._onKey('key_down', e)],
      ['keyup', (e) => this._onKey('key_up', e)],
      ['beforeinput', (e) => this._onBeforeInput(e)],
      ['compositionend', (e) => this._onCompositionEnd(e)],
      ['blur', () => this._releaseKeys()],
    ];
    for (const [type, fn, opts] of this._listeners) canvas.addEventListener(type, fn, opts);
  }

  /** Removes every listener; pending coalesced events are dropped. */
  dispose() {
    for (const [type, fn, opts] of this._listeners) this.canvas.removeEventListener(type, fn, opts);
    if (this._cancelFlush) this._cancelFlush();
    this._cancelFlush = null;
    this._pending = { move: null, wheel: null, order: [] };
  }

  /** Sends whatever coalesced events are pending, in order. */
  flush() {
    if (this._cancelFlush) this._cancelFlush();
    this._cancelFlush = null;
    const p = this._pending;
    this._pending = { move: null, wheel: null, order: [] };
    for (const kind of p.order) {
      const ev = kind === 'move' ? p.move : p.wheel;
      if (ev) this._send(ev);
    }
  }

  /**
   * The pointer fields of a renderview event.
   *
   * @param {string} type `event_type`
   * @param {MouseEvent} e
   * @param {number} button renderview button that changed (0 none)
   * @returns {Object}
   */
  pointerEvent(type, e, button) {
    const p = this.display.toFramebuffer(e.clientX, e.clientY);
    return {
      event_type: type,
      x: p.x,
      y: p.y,
      inside: p.inside,
      pixel_ratio: window.devicePixelRatio || 1,
      button,
      buttons: mapButtons(e.buttons),
      modifiers: modifiersOf(e),
      timestamp: Math.max(0, e.timeStamp / 1000),
    };
  }

  /** @private Sends `type` at once, after what is pending. */
  _immediate(type, e, button) {
    this.flush();
    this._send(this.pointerEvent(type, e, button));
  }

  /** @private */
  _schedule() {
    if (!this._cancelFlush) this._cancelFlush = onNextFrame(() => {
      this._cancelFlush = null;
      this.flush();
    }, 50);
  }

  /** @private */
  _onPointerDown(e) {
    this._mask = e.buttons;
    if (document.activeElement !== this.canvas) this.canvas.focus({ preventScroll: true });
    try {
      this.canvas.setPointerCapture(e.pointerId);
    } catch {
      /* not capturable (synthetic event) */
    }
    e.preventDefault(); // no text selection / drag; focus was set above
    this._immediate('pointer_down', e, mapButton(e.button));
  }

  /** @private */
  _onPointerUp(e) {
    this._mask = e.buttons;
    if (e.buttons === 0 && this.canvas.hasPointerCapture && this.canvas.hasPointerCapture(e.pointerId)) {
      try {
        this.canvas.releasePointerCapture(e.pointerId);
      } catch {
        /* already released */
      }
    }
    this._immediate('pointer_up', e, mapButton(e.button));
  }

  /** @private */
  _onPointerMove(e) {
    // A second button pressed or released while another is held comes as a
    // pointermove with `button` set (chorded buttons): report it as down/up.
    if (e.button >= 0 && e.buttons !== this._mask) {
      const pressed = (e.buttons & ~this._mask) !== 0;
      this._mask = e.buttons;
      this._immediate(pressed ? 'pointer_down' : 'pointer_up', e, mapButton(e.button));
      return;
    }
    this._mask = e.buttons;
    const ev = this.pointerEvent('pointer_move', e, 0);
    if (!this._pending.move) this._pending.order.push('move');
    this._pending.move = ev;
    this._schedule();
  }

  /** @private */
  _onWheel(e) {
    e.preventDefault();
    // Read the deltas before `deltaMode`: Firefox reports a mouse wheel in
    // pixels to a page that reads them first (as Chromium always does), and in
    // lines only to one that asks for `deltaMode` first (Mozilla bug 1392460;
    // MDN, WheelEvent.deltaMode). Lines still arrive
    // from synthetic events and other browsers, so both are handled.
    let dx = e.deltaX;
    let dy = e.deltaY;
    if (e.deltaMode === 1) {
      dx *= WHEEL_LINE_PX;
      dy *= WHEEL_LINE_PX;
    } else if (e.deltaMode === 2) {
      dx *= this.canvas.clientWidth || 1;
      dy *= this.canvas.clientHeight || 1;
    }
    const ev = /** @type {any} */ (this.pointerEvent('wheel', e, 0));
    const prev = this._pending.wheel;
    ev.dx = dx + (prev ? prev.dx : 0);
    ev.dy = dy + (prev ? prev.dy : 0);
    if (!prev) this._pending.order.push('wheel');
    this._pending.wheel = ev;
    this._schedule();
  }

  /** @private */
  _onKey(type, e) {
    if (document.activeElement !== this.canvas) return;
    if (e.isComposing || e.keyCode === 229) return; // an IME owns this key
    e.preventDefault();
    this.flush();
    if (type === 'key_down') this._held.set(e.code || e.key, e.key);
    else this._held.delete(e.code || e.key);
    this._send({
      event_type: type,
      key: String(e.key).slice(0, 64),
      code: String(e.code || '').slice(0, 64),
      modifiers: modifiersOf(e),
      timestamp: Math.max(0, e.timeStamp / 1000),
    });
    // Text typed: printable key without a shortcut modifier (AltGr reports
    // Control+Alt on Windows and still types text).
    const shortcut = (e.ctrlKey && !e.altKey) || e.metaKey;
    if (type === 'key_down' && isPrintableKey(e.key) && !shortcut) {
      this._send({ event_type: 'char', data: e.key, is_composing: false });
    }
  }

  /** @private Text input from an editable context (IME, on-screen keyboards). */
  _onBeforeInput(e) {
    if (!e.data) return;
    e.preventDefault();
    this.flush();
    this._send({ event_type: 'char', data: String(e.data).slice(0, 256), is_composing: !!e.isComposing });
  }

  /** @private */
  _onCompositionEnd(e) {
    if (!e.data) return;
    this.flush();
    this._send({ event_type: 'char', data: String(e.data).slice(0, 256), is_composing: false });
  }

  /** @private Focus lost: release the keys still held so none stays stuck. */
  _releaseKeys() {
    if (!this._held.size) return;
    this.flush();
    const t = Math.max(0, performance.now() / 1000);
    for (const [code, key] of this._held) {
      this._send({ event_type: 'key_up', key, code, modifiers: [], timestamp: t });
    }
    this._held.clear();
  }
}
