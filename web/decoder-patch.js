/**
 * framehub browser client — decoder for `image_patch` messages (protocol
 * §4.3, a framehub extension offered as `framehub/patch`): the header lists
 * `rects` `[[x,y,w,h],...]` and the payload holds one length-prefixed image
 * per rect, to be drawn over the previous frame.
 *
 * Same signature as every decoder (see `decoder-image.js`).
 *
 * @module decoder-patch
 */

import { splitPatchPayload } from './envelope.js';
import { decodeImage } from './decoder-image.js';

/** Decoder of region updates. */
export class PatchDecoder {
  constructor() {
    this._inflight = 0;
  }

  /** Decodes under way. */
  get queueSize() {
    return this._inflight;
  }

  /**
   * @param {{seq: number, width: number, height: number, mime?: string,
   *   rects: number[][], still?: boolean}} header
   * @param {Uint8Array} payload `[u32 LE length][image]` per rect
   * @returns {Promise<import('./queue.js').DecodedFrame>}
   * @throws {Error} (rejects) when the payload does not hold one image per rect
   */
  async decode(header, payload) {
    const rects = Array.isArray(header.rects) ? header.rects : [];
    const parts = splitPatchPayload(payload);
    if (parts.length !== rects.length) {
      throw new Error(`image_patch: ${parts.length} images for ${rects.length} rects`);
    }
    this._inflight++;
    let bitmaps;
    try {
      const settled = await Promise.allSettled(parts.map((p) => decodeImage(p, header.mime)));
      bitmaps = settled.map((s) => (s.status === 'fulfilled' ? s.value : null));
      if (bitmaps.some((b) => !b)) {
        for (const b of bitmaps) if (b) b.close();
        throw new Error('image_patch: an image did not decode');
      }
    } finally {
      this._inflight--;
    }
    return {
      width: header.width,
      height: header.height,
      full: false,
      still: !!header.still,
      paint(ctx) {
        rects.forEach(([x, y, w, h], i) => {
          const b = bitmaps[i];
          ctx.clearRect(x, y, w ?? b.width, h ?? b.height);
          ctx.drawImage(b, x, y, w ?? b.width, h ?? b.height);
        });
      },
      close() {
        for (const b of bitmaps) b.close();
      },
    };
  }

  /** Nothing to forget. */
  reset() {}

  /** Nothing to release. */
  close() {}
}
