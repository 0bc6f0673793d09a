#!/usr/bin/env python3
"""Writes the hand-made seed inputs into corpus/<target>/ under readable names.

Run from fuzz/: `python3 make_seeds.py`. Idempotent. `cargo fuzz cmin` renames
every input to the SHA-1 of its content; run this again after a cmin to put the
named seeds back (it removes their SHA-1-named duplicates).
"""
import hashlib
import json
import os
import struct

SEEDS = {}


def seed(target, name, data):
    SEEDS[(target, name)] = data


# --- envelope: u32 LE header length | compact JSON header | payload ---------
def env(h, payload):
    j = json.dumps(h, separators=(",", ":")).encode()
    return struct.pack("<I", len(j)) + j + payload


seed("envelope", "image_frame_jpeg", env(
    {"type": "image_frame", "seq": 0, "timestamp_us": 16666, "width": 64, "height": 48,
     "mime": "image/jpeg"}, b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\xff\xd9"))
seed("envelope", "image_frame_still_png", env(
    {"type": "image_frame", "seq": 7, "timestamp_us": 1234, "width": 2, "height": 3,
     "mime": "image/png", "pixel_ratio": 2.0, "still": True}, b"\x89PNG\r\n\x1a\n"))
seed("envelope", "video_chunk_key", env(
    {"type": "video_chunk", "seq": 1, "timestamp_us": 33333, "width": 640, "height": 480,
     "codec": "avc1.42C01E", "bitstream": "annexb", "keyframe": True, "duration_us": 33333},
    bytes.fromhex("00000001674200")))
seed("envelope", "empty_header", struct.pack("<I", 0))

# --- client_message: one of each client -> server message --------------------
MSGS = {
    "hello": {"type": "hello", "supported": ["image/jpeg", "image/png", "webcodecs/h264-annexb",
                                             "framehub/still-png"],
              "device_pixel_ratio": 2, "token": "secret"},
    "ack": {"type": "ack", "seq": 7, "decode_queue_size": 1, "displayed": True},
    "request_keyframe": {"type": "request_keyframe", "reason": "decode error"},
    "decoder_reset": {"type": "decoder_reset"},
    "event_pointer_down": {"type": "event", "event": {
        "event_type": "pointer_down", "x": 10.5, "y": 3, "button": 1, "buttons": [1],
        "modifiers": ["Shift"], "timestamp": 12.5}},
    "event_wheel": {"type": "event", "event": {
        "event_type": "wheel", "x": 1, "y": 2, "dx": 0, "dy": -48, "inside": True,
        "pixel_ratio": 2}},
    "event_key_down": {"type": "event", "event": {
        "event_type": "key_down", "key": "a", "code": "KeyA", "modifiers": ["Control", "Alt"]}},
    "event_char": {"type": "event", "event": {"event_type": "char", "data": "é",
                                              "is_composing": False}},
    "event_resize": {"type": "event", "event": {
        "event_type": "resize", "width": 640, "height": 480, "pwidth": 1280, "pheight": 960,
        "ratio": 2}},
    "set_viewport": {"type": "set_viewport", "width": 640, "height": 480, "pwidth": 1280,
                     "pheight": 960, "ratio": 2},
    "visibility": {"type": "visibility", "visible": False},
    "unknown": {"type": "teleport", "x": 1},
}
for k, v in MSGS.items():
    seed("client_message", k, json.dumps(v, separators=(",", ":"), ensure_ascii=False).encode())


# --- session: operations as fuzz_targets/session.rs decodes them -------------
# (arbitrary 1.x: int_in_range takes as many big-endian bytes as the range
# needs and reduces modulo its size; bool is the low bit of a byte; u64 is 8
# little-endian bytes; choose(&list) is int_in_range(0..=len-1).)
def b(x):
    return bytes([x])


def u64(x):
    return struct.pack("<Q", x)


def u16be(x):
    return struct.pack(">H", x)


def u24be(x):
    return struct.pack(">I", x)[1:]


def frame(choice=0, kind="jpeg", still=False, key=False, ts=0, w=64, h=48, nbytes=1000, src=None):
    out = b(choice)
    if choice == 2:
        out += b(1)
    if choice == 3:
        out += u64(0xFFFF)
    out += b(1) if src is None else b(0) + u64(src)
    if kind in ("jpeg", "png"):
        out += b(0) + b(0 if kind == "jpeg" else 1) + b(1 if still else 0)
    else:
        out += b(1) + b(0 if key else 1) + b(1) + u64(33333)
    return out + u64(ts) + u16be(w) + u16be(h) + u24be(nbytes)


OP = dict(hello=0, msg=1, text=3, ack=4, frame=6, auth=8, timeout=9, timer=10, ctl=11)


def cfg(h264, inflight=2, stats_ms=None, controller=True, tight=None, timeouts=None):
    out = b(1 if h264 else 0) + b(0) + b(inflight)
    out += b(0) if stats_ms is None else b(1) + u16be(stats_ms - 1)
    out += b(1 if controller else 0)
    # timeouts: (hello, inflight, idle), each b(0) zero, b(1)+u16 ms, b(2)+u64 s, b(3) Duration::MAX
    out += b(0) if timeouts is None else b(1) + b"".join(timeouts)
    out += b(0) if tight is None else b(1) + b(tight[0]) + b(tight[1])
    return out


def ack_recent(idx):
    return b(OP["ack"]) + b(0) + b(idx)


def adv(mode, v):
    return b(OP["timeout"]) + b(mode) + (b"" if mode == 0 else (u16be(v) if mode == 2 else b(v)))


TS = 16666
seed("session", "image_session", (
    cfg(False, 2, 1000) + b(OP["hello"]) + b(0) + b(OP["auth"]) + b(0)
    + b(OP["frame"]) + frame(ts=TS) + b(OP["frame"]) + frame(ts=2 * TS)
    + b(OP["frame"]) + frame(ts=3 * TS) + b(OP["frame"]) + frame(kind="png", still=True, ts=3 * TS)
    + ack_recent(0) + ack_recent(1) + b(OP["msg"]) + b(2) + b(OP["msg"]) + b(7)
    + adv(2, 1500) + b(OP["timer"]) + b(OP["ctl"]) + b(0) + b(OP["msg"]) + b(4)
    + b(OP["msg"]) + b(8) + b(OP["frame"]) + frame(ts=4 * TS) + b(OP["msg"]) + b(9)
    + adv(3, 40) + b(OP["timer"])))
seed("session", "video_session_still_png", (
    cfg(True, 3, None) + b(OP["hello"]) + b(2) + b(OP["auth"]) + b(1)
    + b(OP["frame"]) + frame(kind="video", key=True) + b(OP["frame"]) + frame(kind="video")
    + b(OP["frame"]) + frame(kind="video") + b(OP["frame"]) + frame(kind="video")
    + b(OP["frame"]) + frame(choice=2, kind="png", still=True)
    + ack_recent(0) + ack_recent(2) + b(OP["frame"]) + frame(kind="video")
    + b(OP["msg"]) + b(0) + b(OP["frame"]) + frame(kind="video", key=True)
    + b(OP["msg"]) + b(1) + b(OP["frame"]) + frame(kind="video")
    + adv(2, 2500) + b(OP["timer"]) + b(OP["msg"]) + b(8)
    + b(OP["frame"]) + frame(kind="video", key=True)
    + b(OP["msg"]) + b(9) + b(OP["frame"]) + frame(kind="video", key=True)))
seed("session", "auth_refused", cfg(False, 0, None, False) + b(OP["hello"]) + b(0)
     + b(OP["auth"]) + b(2) + b(OP["msg"]) + b(2))
seed("session", "hello_timeout", cfg(False, 1, None) + adv(3, 6) + b(OP["hello"]) + b(0))
seed("session", "extreme_timeouts", cfg(True, 2, 1000, True, None,
                                        (b(3), b(1) + u16be(0), b(2) + u64(2**64 - 1)))
     + b(OP["hello"]) + b(1) + b(OP["auth"]) + b(0)
     + b(OP["frame"]) + frame(kind="video", key=True) + b(OP["timer"]) + b(OP["timer"])
     + adv(3, 120) + b(OP["timer"]))
seed("session", "event_rate_limit", cfg(False, 16, None, True, (1, 2)) + b(OP["hello"]) + b(0)
     + b(OP["msg"]) + b(2) + b(OP["auth"]) + b(0) + (b(OP["msg"]) + b(3)) * 6)


# --- annexb: hand-written SPS / PPS / slices in Annex-B form -----------------
class BW:
    def __init__(self):
        self.bits = []

    def put(self, v, n):
        for i in range(n - 1, -1, -1):
            self.bits.append((v >> i) & 1)

    def ue(self, v):
        v += 1
        n = v.bit_length()
        self.put(0, n - 1)
        self.put(v, n)

    def se(self, v):
        self.ue(2 * v - 1 if v > 0 else -2 * v)

    def nal(self, header):
        """Stop bit, byte alignment, emulation prevention; NAL header first."""
        self.put(1, 1)
        while len(self.bits) % 8:
            self.bits.append(0)
        raw = bytes(int("".join(map(str, self.bits[i:i + 8])), 2)
                    for i in range(0, len(self.bits), 8))
        out, zeros = [header], 0
        for x in raw:
            if zeros >= 2 and x <= 3:
                out.append(3)
                zeros = 0
            zeros = zeros + 1 if x == 0 else 0
            out.append(x)
        return bytes(out)


# Constrained Baseline 4.0, 1920x1080 (1088 cropped by 8), VUI with colour description.
w = BW()
w.put(66, 8); w.put(0xC0, 8); w.put(40, 8); w.ue(0); w.ue(0); w.ue(2); w.ue(1); w.put(0, 1)
w.ue(119); w.ue(67); w.put(1, 1); w.put(1, 1); w.put(1, 1); w.ue(0); w.ue(0); w.ue(0); w.ue(4)
w.put(1, 1); w.put(0, 1); w.put(0, 1); w.put(1, 1); w.put(5, 3); w.put(0, 1); w.put(1, 1)
w.put(1, 8); w.put(1, 8); w.put(1, 8)
SPS_BASE = w.nal(0x67)
# High 3.1, 1280x720, one scaling list, POC type 1, VUI with extended SAR.
w = BW()
w.put(100, 8); w.put(0, 8); w.put(31, 8); w.ue(0); w.ue(1); w.ue(0); w.ue(0); w.put(0, 1)
w.put(1, 1); w.put(1, 1)
for i in range(16):
    w.se(1 if i % 2 else -1)
for i in range(7):
    w.put(0, 1)
w.ue(0); w.ue(1); w.put(0, 1); w.se(-2); w.se(1); w.ue(2); w.se(1); w.se(-1)
w.ue(4); w.put(0, 1); w.ue(79); w.ue(44); w.put(1, 1); w.put(1, 1); w.put(0, 1)
w.put(1, 1); w.put(1, 1); w.put(255, 8); w.put(1, 16); w.put(1, 16); w.put(1, 1); w.put(0, 1)
w.put(0, 1)
SPS_HIGH = w.nal(0x67)
# High 4:4:4 5.1, separate colour planes, interlaced (frame_mbs_only = 0), cropping.
w = BW()
w.put(244, 8); w.put(0, 8); w.put(51, 8); w.ue(0); w.ue(3); w.put(1, 1); w.ue(2); w.ue(2)
w.put(0, 1); w.put(0, 1); w.ue(0); w.ue(0); w.ue(0); w.ue(1); w.put(0, 1); w.ue(39); w.ue(14)
w.put(0, 1); w.put(1, 1); w.put(1, 1); w.put(1, 1); w.ue(1); w.ue(1); w.ue(1); w.ue(1)
w.put(0, 1)
SPS_444 = w.nal(0x67)
w = BW()
w.ue(0); w.ue(0); w.put(0, 1); w.put(0, 1); w.ue(0); w.ue(0); w.ue(0); w.put(0, 1); w.put(0, 2)
w.se(0); w.se(0); w.se(0); w.put(1, 1); w.put(0, 1); w.put(0, 1)
PPS = w.nal(0x68)
w = BW()
w.ue(0); w.ue(7); w.ue(0); w.put(0, 4); w.ue(0); w.put(0, 1); w.put(0, 1); w.se(0)
IDR = w.nal(0x65) + bytes([0x88, 0x84, 0x21, 0xA0, 0x00, 0x00, 0x03, 0x00, 0x01])
AUD = bytes([0x09, 0xF0])
SEI = bytes([0x06, 0x05, 0x01, 0x00, 0x80])
SC4, SC3 = b"\x00\x00\x00\x01", b"\x00\x00\x01"
seed("annexb", "idr_access_unit_baseline",
     SC4 + AUD + SC4 + SPS_BASE + SC4 + PPS + SC3 + SEI + SC3 + IDR)
seed("annexb", "sps_high_scaling_list", SC4 + SPS_HIGH + SC4 + PPS + SC4 + IDR + b"\x00\x00")
seed("annexb", "sps_high444_interlaced", SC3 + SPS_444)
seed("annexb", "p_slice", SC4 + bytes([0x41, 0x9A, 0x02, 0x03, 0x00, 0x00, 0x03, 0x01, 0x10]))


# --- y4m: headers of each colourspace with one or two tiny frames ------------
def y4m(h, frames):
    return b"YUV4MPEG2 " + h + b"\n" + b"".join(b"FRAME\n" + f for f in frames)


seed("y4m", "c420jpeg_4x4", y4m(b"W4 H4 F30000:1001 Ip A1:1 C420jpeg XYSCSS=420JPEG",
                               [bytes([16, 60, 120, 235] * 4) + bytes([90, 240, 54, 128])
                                + bytes([240, 110, 34, 128])]))
seed("y4m", "c444_full_range_2x1", y4m(b"W2 H1 F25:1 C444 XCOLORRANGE=FULL",
                                      [bytes([255, 0, 128, 128, 128, 128]),
                                       bytes([0, 255, 0, 255, 255, 0])]))
seed("y4m", "c422_3x2", y4m(b"W3 H2 C422", [bytes(range(6)) + bytes([100, 200, 100, 200])
                                            + bytes([50, 60, 70, 80])]))
seed("y4m", "mono_3x3_frame_params", b"YUV4MPEG2 W3 H3 Cmono\nFRAME Ixyz\n" + bytes(range(9)))
seed("y4m", "c420mpeg2_odd_truncated", y4m(b"W5 H3 F0:0 C420mpeg2 XCOLORRANGE=LIMITED",
                                          [bytes(15 + 6 + 6), bytes(10)]))

if __name__ == "__main__":
    here = os.path.dirname(os.path.abspath(__file__))
    for (target, name), data in SEEDS.items():
        d = os.path.join(here, "corpus", target)
        os.makedirs(d, exist_ok=True)
        with open(os.path.join(d, name), "wb") as f:
            f.write(data)
        dup = os.path.join(d, hashlib.sha1(data).hexdigest())
        if os.path.exists(dup):
            os.remove(dup)
    print(f"wrote {len(SEEDS)} seeds")
