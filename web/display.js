/**
 * framehub browser client — the display: a visible `<canvas>` whose backing
 * store tracks its CSS size × `devicePixelRatio`, and a retained copy of the
 * last frame (an `OffscreenCanvas` of stream size) from which the canvas is
 * repainted at once whenever it changes size or fit, without waiting for the
 * server. Frames are letterboxed per `fit` (`contain`, `cover`, `fill`);
 * {@link Display#mapping} tells where framebuffer pixels land and
 * {@link Display#toFramebuffer} maps pointer positions back.
 *
 * @module display
 */

import { computeMapping, MAX_PIXEL_RATIO, MAX_VIEWPORT } from './util.js';

/**
 * @typedef {Object} Viewport the view's size, as sent in `set_viewport`
 * @property {number} width CSS pixels
 * @property {number} height CSS pixels
 * @property {number} pwidth device pixels (integer)
 * @property {number} pheight device pixels (integer)
 * @property {number} ratio device pixel ratio
 */

/** Valid `fit` values. */
export const FITS = ['contain', 'cover', 'fill'];

/**
 * Creates a scratch canvas: an `OffscreenCanvas` where available.
 *
 * @param {number} w
 * @param {number} h
 * @returns {OffscreenCanvas|HTMLCanvasElement}
 */
function makeCanvas(w, h) {
  if (typeof OffscreenCanvas !== 'undefined') return new OffscreenCanvas(w, h);
  const c = document.createElement('canvas');
  c.width = w;
  c.height = h;
  return c;
}

export class Display {
  /**
   * @param {HTMLCanvasElement} canvas the visible canvas
   * @param {Object} [options]
   * @param {'contain'|'cover'|'fill'} [options.fit]
   * @param {(vp: Viewport) => void} [options.onResize] called after the backing store changed size
   */
  constructor(canvas, options = {}) {
    this.canvas = canvas;
    this._fit = FITS.includes(options.fit) ? options.fit : 'contain';
    this._onResize = options.onResize || (() => {});
    this._ctx = /** @type {CanvasRenderingContext2D} */ (canvas.getContext('2d'));
    /** @type {OffscreenCanvas|HTMLCanvasElement|null} */
    this._retained = null;
    /** @type {OffscreenCanvasRenderingContext2D|CanvasRenderingContext2D|null} */
    this._rctx = null;
    this.frameWidth = 0;
    this.frameHeight = 0;
    /** @type {Viewport} */
    this.viewport = { width: 0, height: 0, pwidth: 0, pheight: 0, ratio: 1 };

    this._ro = null;
    if (typeof ResizeObserver !== 'undefined') {
      this._ro = new ResizeObserver((entries) => this._observed(entries[entries.length - 1]));
      try {
        this._ro.observe(canvas, { box: 'device-pixel-content-box' });
      } catch {
        this._ro.observe(canvas);
      }
    }
    // Also on window resizes: a devicePixelRatio change (browser zoom) comes
    // with one, and not every browser reports it to the observer.
    this._onWindowResize = () => this.measure();
    window.addEventListener('resize', this._onWindowResize);
    // A devicePixelRatio change (zoom, moving to another screen) without a
    // size change: watch the current resolution and re-measure.
    this._watchRatio();
    this.measure();
  }

  /** The current fit mode. */
  get fit() {
    return this._fit;
  }

  /** Changes the fit mode and repaints. */
  set fit(value) {
    if (!FITS.includes(value)) throw new RangeError(`fit must be one of ${FITS.join(', ')}`);
    this._fit = value;
    this.present();
  }

  /** Whether a frame has been drawn (the retained copy holds a picture). */
  get hasFrame() {
    return this.frameWidth > 0 && this.frameHeight > 0 && !!this._retained;
  }

  /**
   * Measures the canvas now (CSS size × devicePixelRatio), resizes the
   * backing store if needed and repaints.
   *
   * @returns {Viewport}
   */
  measure() {
    // Fractional CSS size of the content box (as the ResizeObserver reports
    // it), so that both paths agree and no spurious change is seen.
    const c = this.canvas;
    const r = c.getBoundingClientRect();
    const cw = Math.max(0, r.width - 2 * c.clientLeft);
    const ch = Math.max(0, r.height - 2 * c.clientTop);
    const ratio = window.devicePixelRatio || 1;
    this._apply(cw, ch, Math.round(cw * ratio), Math.round(ch * ratio), ratio);
    return this.viewport;
  }

  /**
   * Where the frame lands in the canvas, in canvas (device) pixels:
   * framebuffer pixel (x, y) is drawn at `(offsetX + x*scale, offsetY + y*scale)`
   * (`scaleX`/`scaleY` differ from `scale` only with `fit: 'fill'`).
   *
   * @returns {{scale: number, scaleX: number, scaleY: number, offsetX: number, offsetY: number,
   *   frameWidth: number, frameHeight: number, canvasWidth: number, canvasHeight: number}}
   */
  mapping() {
    return computeMapping(this._fit, this.frameWidth, this.frameHeight, this.canvas.width, this.canvas.height);
  }

  /**
   * Maps a pointer position (client coordinates) to framebuffer pixels.
   *
   * @param {number} clientX
   * @param {number} clientY
   * @returns {{x: number, y: number, inside: boolean}}
   */
  toFramebuffer(clientX, clientY) {
    const c = this.canvas;
    const r = c.getBoundingClientRect();
    const cssX = clientX - r.left - c.clientLeft;
    const cssY = clientY - r.top - c.clientTop;
    const cw = c.clientWidth || r.width || 1;
    const ch = c.clientHeight || r.height || 1;
    const devX = (cssX * c.width) / cw;
    const devY = (cssY * c.height) / ch;
    const m = this.mapping();
    const x = (devX - m.offsetX) / m.scaleX;
    const y = (devY - m.offsetY) / m.scaleY;
    const inside = m.frameWidth > 0 && x >= 0 && y >= 0 && x < m.frameWidth && y < m.frameHeight;
    return { x, y, inside };
  }

  /**
   * Paints a decoded frame onto the retained copy and presents it.
   *
   * @param {import('./queue.js').DecodedFrame} frame
   */
  draw(frame) {
    const w = Math.max(1, Math.round(frame.width));
    const h = Math.max(1, Math.round(frame.height));
    if (!this._retained || w !== this.frameWidth || h !== this.frameHeight) {
      this._resizeRetained(w, h);
    } else if (frame.full) {
      /** @type {CanvasRenderingContext2D} */ (this._rctx).clearRect(0, 0, w, h);
    }
    frame.paint(/** @type {CanvasRenderingContext2D} */ (this._rctx));
    this.present();
  }

  /** Repaints the visible canvas from the retained frame, letterboxed. */
  present() {
    const ctx = this._ctx;
    const cw = this.canvas.width;
    const ch = this.canvas.height;
    ctx.setTransform(1, 0, 0, 1, 0, 0);
    ctx.clearRect(0, 0, cw, ch);
    if (!this.hasFrame) return;
    const m = this.mapping();
    const dw = m.frameWidth * m.scaleX;
    const dh = m.frameHeight * m.scaleY;
    ctx.imageSmoothingEnabled = !(m.scaleX === 1 && m.scaleY === 1);
    ctx.imageSmoothingQuality = m.scaleX < 1 ? 'medium' : 'low';
    ctx.drawImage(/** @type {CanvasImageSource} */ (this._retained), m.offsetX, m.offsetY, dw, dh);
  }

  /**
   * The retained copy of the last frame (do not draw on it).
   *
   * @returns {OffscreenCanvas|HTMLCanvasElement|null}
   */
  get retained() {
    return this._retained;
  }

  /** Stops observing the canvas. */
  dispose() {
    if (this._ro) this._ro.disconnect();
    window.removeEventListener('resize', this._onWindowResize);
    if (this._ratioQuery) this._ratioQuery.removeEventListener('change', this._onRatioChange);
    this._ro = null;
  }

  /** @private */
  _resizeRetained(w, h) {
    if (!this._retained) {
      this._retained = makeCanvas(w, h);
      this._rctx = /** @type {any} */ (this._retained.getContext('2d'));
    } else {
      this._retained.width = w; // also clears it
      this._retained.height = h;
    }
    this.frameWidth = w;
    this.frameHeight = h;
  }

  /** @private */
  _observed(entry) {
    if (!entry) return;
    const ratio = window.devicePixelRatio || 1;
    const css = entry.contentBoxSize && entry.contentBoxSize[0];
    const cw = css ? css.inlineSize : entry.contentRect.width;
    const ch = css ? css.blockSize : entry.contentRect.height;
    // The device-pixel box is exact (snapped to physical pixels) but is
    // only trusted when it agrees with CSS size × ratio: under DevTools
    // device emulation Chromium reports it at the real screen's ratio.
    const dev = entry.devicePixelContentBoxSize && entry.devicePixelContentBoxSize[0];
    const agrees = dev && Math.abs(dev.inlineSize - cw * ratio) < 2 && Math.abs(dev.blockSize - ch * ratio) < 2;
    const pw = agrees ? dev.inlineSize : Math.round(cw * ratio);
    const ph = agrees ? dev.blockSize : Math.round(ch * ratio);
    this._apply(cw, ch, pw, ph, ratio);
  }

  /** @private */
  _apply(cw, ch, pw, ph, ratio) {
    const clampedRatio = Math.min(MAX_PIXEL_RATIO, Math.max(0, ratio));
    const vp = {
      width: Math.min(MAX_VIEWPORT, Math.max(0, cw)),
      height: Math.min(MAX_VIEWPORT, Math.max(0, ch)),
      pwidth: Math.min(MAX_VIEWPORT, Math.max(0, Math.round(pw))),
      pheight: Math.min(MAX_VIEWPORT, Math.max(0, Math.round(ph))),
      ratio: clampedRatio,
    };
    const old = this.viewport;
    const changed =
      vp.width !== old.width || vp.height !== old.height || vp.pwidth !== old.pwidth ||
      vp.pheight !== old.pheight || vp.ratio !== old.ratio;
    this.viewport = vp;
    if (this.canvas.width !== vp.pwidth || this.canvas.height !== vp.pheight) {
      this.canvas.width = vp.pwidth; // clears the canvas: repaint at once below
      this.canvas.height = vp.pheight;
      this.present();
    }
    if (changed) this._onResize(vp);
  }

  /** @private */
  _watchRatio() {
    if (typeof matchMedia !== 'function') return;
    if (this._ratioQuery) this._ratioQuery.removeEventListener('change', this._onRatioChange);
    this._ratioQuery = matchMedia(`(resolution: ${window.devicePixelRatio || 1}dppx)`);
    this._onRatioChange = () => {
      this._watchRatio();
      this.measure();
    };
    this._ratioQuery.addEventListener('change', this._onRatioChange);
  }
}
