/**
 * framehub browser client — the binary envelope of media messages
 * (protocol §3):
 *
 *     u32 little-endian  N   length of the header in bytes
 *     N bytes                compact UTF-8 JSON header
 *     rest                   payload
 *
 * Also the payload layout of `image_patch` (protocol §4.3): one
 * `[u32 LE length][image bytes]` record per rect.
 *
 * @module envelope
 */

/** Largest header accepted, in bytes (the hub's limit). */
export const MAX_HEADER_LEN = 64 * 1024;

const utf8 = new TextDecoder('utf-8');

/**
 * @typedef {Object} Envelope
 * @property {Object} header the parsed JSON header (`type`, `seq`, …)
 * @property {Uint8Array} payload view of the bytes after the header (no copy)
 */

/**
 * Splits one binary message into header and payload.
 *
 * @param {ArrayBuffer|Uint8Array} data the message
 * @returns {Envelope}
 * @throws {Error} when the message is truncated, the header too long or not a JSON object
 */
export function parseEnvelope(data) {
  const bytes = data instanceof Uint8Array ? data : new Uint8Array(data);
  if (bytes.byteLength < 4) throw new Error(`envelope truncated: ${bytes.byteLength} bytes`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const n = view.getUint32(0, true);
  if (n > MAX_HEADER_LEN) throw new Error(`envelope header of ${n} bytes is too long`);
  if (4 + n > bytes.byteLength) throw new Error(`envelope truncated: ${bytes.byteLength} bytes`);
  const header = JSON.parse(utf8.decode(bytes.subarray(4, 4 + n)));
  if (!header || typeof header !== 'object' || Array.isArray(header)) {
    throw new Error('envelope header is not a JSON object');
  }
  return { header, payload: bytes.subarray(4 + n) };
}

/**
 * Builds an envelope (the inverse of {@link parseEnvelope}); used by tests
 * and tools.
 *
 * @param {Object} header
 * @param {Uint8Array} [payload]
 * @returns {Uint8Array}
 */
export function encodeEnvelope(header, payload = new Uint8Array(0)) {
  const h = new TextEncoder().encode(JSON.stringify(header));
  const out = new Uint8Array(4 + h.byteLength + payload.byteLength);
  new DataView(out.buffer).setUint32(0, h.byteLength, true);
  out.set(h, 4);
  out.set(payload, 4 + h.byteLength);
  return out;
}

/**
 * Splits an `image_patch` payload into its length-prefixed images.
 *
 * @param {Uint8Array} payload
 * @returns {Uint8Array[]} one view per image, in order
 * @throws {Error} when a length runs past the end of the payload
 */
export function splitPatchPayload(payload) {
  const view = new DataView(payload.buffer, payload.byteOffset, payload.byteLength);
  const parts = [];
  let off = 0;
  while (off < payload.byteLength) {
    if (off + 4 > payload.byteLength) throw new Error('patch payload truncated');
    const len = view.getUint32(off, true);
    off += 4;
    if (off + len > payload.byteLength) throw new Error('patch payload truncated');
    parts.push(payload.subarray(off, off + len));
    off += len;
  }
  return parts;
}
