/**
 * framehub browser client — decoder for `image_frame` messages (protocol §3):
 * one complete JPEG, PNG or WebP file per message, decoded off the main
 * thread with `createImageBitmap`.
 *
 * Every decoder of this client has the same signature:
 *
 *     decode(header, payload) → Promise<DecodedFrame|null>
 *     get queueSize            → decodes under way
 *     reset()                  → forget state (new connection, decoder rebuild)
 *     close()                  → release everything
 *
 * (`DecodedFrame` is described in `queue.js`.)
 *
 * @module decoder-image
 */

/**
 * Decodes one image file into an `ImageBitmap`.
 *
 * @param {Uint8Array} bytes the file
 * @param {string} mime its MIME type
 * @returns {Promise<ImageBitmap>}
 */
export function decodeImage(bytes, mime) {
  return createImageBitmap(new Blob([bytes], { type: mime || 'image/jpeg' }));
}

/** Decoder of whole-image frames. */
export class ImageFrameDecoder {
  constructor() {
    this._inflight = 0;
  }

  /** Decodes under way. */
  get queueSize() {
    return this._inflight;
  }

  /**
   * @param {{seq: number, width?: number, height?: number, mime?: string, still?: boolean}} header
   * @param {Uint8Array} payload one complete image file
   * @returns {Promise<import('./queue.js').DecodedFrame>}
   */
  async decode(header, payload) {
    this._inflight++;
    try {
      const bmp = await decodeImage(payload, header.mime);
      const width = header.width || bmp.width;
      const height = header.height || bmp.height;
      return {
        width,
        height,
        full: true,
        still: !!header.still,
        paint(ctx) {
          ctx.drawImage(bmp, 0, 0, width, height);
        },
        close() {
          bmp.close();
        },
      };
    } finally {
      this._inflight--;
    }
  }

  /** Nothing to forget: every image stands alone. */
  reset() {}

  /** Nothing to release. */
  close() {}
}
