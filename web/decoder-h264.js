/**
 * framehub browser client — decoder for `video_chunk` messages (protocol §3):
 * H.264 access units in Annex-B form, decoded with WebCodecs `VideoDecoder`
 * (configured `{codec, optimizeForLatency: true}`, no `description`, which
 * means Annex-B input).
 *
 * - Deltas are dropped (resolve `null`) until a keyframe arrives; each drop
 *   asks the view to send `request_keyframe`.
 * - Outputs are matched to chunks by timestamp: a chunk's timestamp is its
 *   `seq`, so `VideoFrame.timestamp` names the frame it belongs to.
 * - A decoder with chunks pending and no output for `stallMs` is considered
 *   stalled: it is rebuilt and the view sends `decoder_reset`.
 * - A codec the browser cannot decode is reported through `unsupported`.
 *
 * Same signature as every decoder (see `decoder-image.js`).
 *
 * @module decoder-h264
 */

/** The codec string probed before offering `webcodecs/h264-annexb`. */
export const PROBE_CODEC = 'avc1.42E01F';

/**
 * Whether this browser can decode H.264 with WebCodecs.
 *
 * @param {string} [codec]
 * @returns {Promise<boolean>}
 */
export async function h264Supported(codec = PROBE_CODEC) {
  if (typeof VideoDecoder === 'undefined' || typeof EncodedVideoChunk === 'undefined') return false;
  try {
    const r = await VideoDecoder.isConfigSupported({ codec, optimizeForLatency: true });
    return !!(r && r.supported);
  } catch {
    return false;
  }
}

/**
 * @typedef {Object} H264Hooks
 * @property {(reason: string) => void} requestKeyframe a delta was dropped: ask for a keyframe
 * @property {() => void} decoderReset the decoder was rebuilt (stall or error)
 * @property {(error: Error) => void} unsupported the codec cannot be decoded here
 */

/** WebCodecs H.264 decoder. */
export class H264Decoder {
  /**
   * @param {H264Hooks} hooks
   * @param {{codec?: string, stallMs?: number}} [options] `codec`: from `config`
   */
  constructor(hooks, options = {}) {
    this._hooks = hooks;
    this._defaultCodec = options.codec || PROBE_CODEC;
    this._stallMs = options.stallMs ?? 1000;
    /** @type {VideoDecoder|null} */
    this._decoder = null;
    this._codec = '';
    /** @type {Map<number, {resolve: Function, at: number, header: Object}>} seq → pending decode */
    this._pending = new Map();
    this._needKeyframe = true;
    this._lastOutput = 0;
    this._closed = false;
    this._stallTimer = setInterval(() => this._checkStall(), 250);
  }

  /** Chunks given to the decoder and not yet output. */
  get queueSize() {
    return this._pending.size;
  }

  /**
   * @param {{seq: number, width: number, height: number, codec?: string,
   *   keyframe: boolean, duration_us?: number}} header
   * @param {Uint8Array} payload one access unit, Annex-B
   * @returns {Promise<import('./queue.js').DecodedFrame|null>} null when dropped
   */
  decode(header, payload) {
    if (this._closed) return Promise.resolve(null);
    const codec = header.codec || this._defaultCodec;
    const usable = this._decoder && this._decoder.state === 'configured';
    if (!header.keyframe && (this._needKeyframe || !usable)) {
      this._needKeyframe = true;
      this._hooks.requestKeyframe('waiting for keyframe');
      return Promise.resolve(null);
    }
    if (header.keyframe && (!usable || codec !== this._codec)) {
      if (!this._build(codec)) return Promise.resolve(null);
    }
    const seq = Number(header.seq);
    const promise = new Promise((resolve) => {
      this._pending.set(seq, { resolve, at: performance.now(), header });
    });
    try {
      /** @type {EncodedVideoChunkInit} */
      const init = { type: header.keyframe ? 'key' : 'delta', timestamp: seq, data: payload };
      if (Number.isFinite(header.duration_us)) init.duration = header.duration_us;
      /** @type {VideoDecoder} */ (this._decoder).decode(new EncodedVideoChunk(init));
      this._needKeyframe = false;
    } catch (e) {
      this._failed(/** @type {Error} */ (e));
    }
    return promise;
  }

  /** Drops the decoder and everything pending; the next chunk must be a keyframe. */
  reset() {
    this._teardown();
    this._needKeyframe = true;
  }

  /** Releases the decoder for good. */
  close() {
    this._closed = true;
    clearInterval(this._stallTimer);
    this._teardown();
  }

  /** @private @returns {boolean} whether a decoder could be configured */
  _build(codec) {
    this._teardown();
    try {
      const dec = new VideoDecoder({
        output: (frame) => this._output(dec, frame),
        error: (e) => {
          if (dec === this._decoder) this._failed(e);
        },
      });
      dec.configure({ codec, optimizeForLatency: true });
      this._decoder = dec;
      this._codec = codec;
      this._lastOutput = performance.now();
      return true;
    } catch (e) {
      this._hooks.unsupported(/** @type {Error} */ (e));
      return false;
    }
  }

  /** @private */
  _output(dec, frame) {
    if (dec !== this._decoder) {
      frame.close();
      return;
    }
    this._lastOutput = performance.now();
    const seq = frame.timestamp;
    const pending = this._pending.get(seq);
    // Anything older that produced no picture never will.
    for (const [s, p] of this._pending) {
      if (s < seq) {
        p.resolve(null);
        this._pending.delete(s);
      }
    }
    if (!pending) {
      frame.close();
      return;
    }
    this._pending.delete(seq);
    const width = frame.displayWidth;
    const height = frame.displayHeight;
    pending.resolve({
      width,
      height,
      full: true,
      still: false,
      paint(ctx) {
        ctx.drawImage(frame, 0, 0, width, height);
      },
      close() {
        frame.close();
      },
    });
  }

  /** @private Decoder error: unsupported codec, or a broken stream. */
  _failed(e) {
    const unsupported = e && e.name === 'NotSupportedError';
    this.reset();
    if (unsupported) this._hooks.unsupported(e);
    else this._hooks.decoderReset();
  }

  /** @private */
  _checkStall() {
    if (!this._pending.size || !this._decoder) return;
    let oldest = Infinity;
    for (const p of this._pending.values()) oldest = Math.min(oldest, p.at);
    const since = Math.max(oldest, this._lastOutput);
    if (performance.now() - since > this._stallMs) {
      this.reset();
      this._hooks.decoderReset();
    }
  }

  /** @private */
  _teardown() {
    for (const p of this._pending.values()) p.resolve(null);
    this._pending.clear();
    const dec = this._decoder;
    this._decoder = null;
    this._codec = '';
    if (dec && dec.state !== 'closed') {
      try {
        dec.close();
      } catch {
        /* already closed */
      }
    }
  }
}
