/**
 * framehub browser client — the seq-ordered presentation queue.
 *
 * Frames are decoded concurrently (image decodes run in parallel, video
 * decodes complete asynchronously), so they can finish out of order. This
 * queue makes sure they are *drawn* strictly in `seq` order:
 *
 * - every media message is pushed, in arrival order (= `seq` order), with
 *   the promise of its decode;
 * - the head of the queue is drawn as soon as its decode is done; later
 *   entries wait for it;
 * - except that a finished **full** frame (a whole picture, not a patch)
 *   supersedes everything before it: those earlier entries are skipped, even
 *   if still decoding, and their results are closed when they arrive — but
 *   never a lossless still (`header.still`) of the same picture (same
 *   `timestamp_us`): a lossy copy of a picture does not replace its exact
 *   one (the hub's sharper video keyframe of a resting picture can finish
 *   decoding before the PNG still sent just before it);
 * - a frame whose `seq` is not above the highest drawn one is never drawn.
 *
 * Every entry leaves the queue exactly once, through `draw` (it was shown) or
 * `skip` (superseded, failed or dropped), so the caller can ack each one and
 * the hub's credit always returns.
 *
 * @module queue
 */

/**
 * A decoded picture, ready to paint. Produced by every decoder.
 *
 * @typedef {Object} DecodedFrame
 * @property {number} width picture width (the stream size it belongs to)
 * @property {number} height picture height
 * @property {boolean} full true for a whole picture, false for a patch over the previous one
 * @property {boolean} still true for a lossless still
 * @property {(ctx: CanvasRenderingContext2D|OffscreenCanvasRenderingContext2D) => void} paint
 *   paints the picture (or the patch) onto the retained frame
 * @property {() => void} close releases the decoded resources
 */

/**
 * @typedef {Object} QueueEntry
 * @property {number} seq
 * @property {boolean} full whether the message carries a whole picture
 * @property {Object} header the media header
 * @property {number} receivedAt `performance.now()` when the message arrived
 * @property {number} bytes message size
 * @property {boolean} done the decode has finished
 * @property {DecodedFrame|null} result the decoded frame (null when it failed or was dropped)
 * @property {boolean} skipped left the queue without being drawn
 */

export class FrameQueue {
  /**
   * @param {Object} hooks
   * @param {(entry: QueueEntry) => void} hooks.draw paint `entry.result` (then it is closed by the queue)
   * @param {(entry: QueueEntry, why: 'superseded'|'failed'|'stale') => void} hooks.skip
   *   the entry will not be drawn
   */
  constructor(hooks) {
    this._hooks = hooks;
    /** @type {QueueEntry[]} */
    this._q = [];
    this._gen = 0;
    /** Highest seq drawn on the current connection (-1 = none). */
    this.highestDrawn = -1;
  }

  /** Entries pushed and not yet drawn or skipped. */
  get length() {
    return this._q.length;
  }

  /** Entries still decoding (for `decode_queue_size`). */
  get decoding() {
    let n = 0;
    for (const e of this._q) if (!e.done) n++;
    return n;
  }

  /**
   * Adds a media message whose decode is under way.
   *
   * @param {Object} header the media header (`seq` is read from it)
   * @param {boolean} full whether it carries a whole picture
   * @param {Promise<DecodedFrame|null>} decoding
   * @param {number} [bytes] message size, for statistics
   * @returns {QueueEntry}
   */
  push(header, full, decoding, bytes = 0) {
    const gen = this._gen;
    /** @type {QueueEntry} */
    const entry = {
      seq: Number(header.seq),
      full,
      header,
      receivedAt: typeof performance !== 'undefined' ? performance.now() : Date.now(),
      bytes,
      done: false,
      result: null,
      skipped: false,
    };
    this._q.push(entry);
    Promise.resolve(decoding).then(
      (r) => this._settle(gen, entry, r || null),
      () => this._settle(gen, entry, null),
    );
    return entry;
  }

  /**
   * Forgets every entry without drawing or skipping it (the connection they
   * belong to is gone: no ack is due). Late decodes are closed on arrival.
   */
  clear() {
    this._gen++;
    for (const e of this._q) {
      e.skipped = true;
      if (e.done && e.result) e.result.close();
    }
    this._q = [];
    this.highestDrawn = -1;
  }

  /** @private */
  _settle(gen, entry, result) {
    entry.done = true;
    if (gen !== this._gen || entry.skipped) {
      if (result) result.close();
      return;
    }
    entry.result = result;
    this._pump();
  }

  /** @private Draws or skips what can leave the queue now. */
  _pump() {
    const q = this._q;
    // The newest finished whole picture supersedes every entry before it.
    let cut = -1;
    for (let i = q.length - 1; i >= 0; i--) {
      if (q[i].done && q[i].full && q[i].result) {
        cut = i;
        break;
      }
    }
    if (cut > 0 && !q[cut].header.still) {
      const ts = Number(q[cut].header.timestamp_us);
      for (let i = cut - 1; i >= 0; i--) {
        if (q[i].header.still && Number(q[i].header.timestamp_us) === ts) {
          cut = i;
          break;
        }
      }
    }
    if (cut > 0) {
      const dropped = q.splice(0, cut);
      for (const e of dropped) this._skip(e, 'superseded');
    }
    while (q.length && q[0].done) {
      const e = /** @type {QueueEntry} */ (q.shift());
      if (!e.result) {
        this._skip(e, 'failed');
      } else if (e.seq <= this.highestDrawn) {
        this._skip(e, 'stale');
      } else {
        this.highestDrawn = e.seq;
        try {
          this._hooks.draw(e);
        } finally {
          e.result.close();
        }
      }
    }
  }

  /** @private */
  _skip(e, why) {
    e.skipped = true;
    if (e.done && e.result) e.result.close();
    this._hooks.skip(e, why);
  }
}
