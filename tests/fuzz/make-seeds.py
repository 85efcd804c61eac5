#!/usr/bin/env python3
"""Writes the seed corpora for the HXFR fuzz targets (docs/protocol.md layouts)."""
import os
import struct
import sys

HERE = os.path.dirname(os.path.abspath(__file__))


def msg(mtype, payload, flags=0, session=1):
    return struct.pack('<IBBHI', 0x52465848, mtype, flags, session, len(payload)) + payload


def fourcc(s):
    return struct.unpack('<I', s.encode())[0]


def frame_request_v1(w, h, fmt, stride, pixels, key=0):
    fixed = struct.pack('<IIIIIqqB7x', 0, w, h, fourcc(fmt), stride, 0, 33333333, key)
    return msg(0x01, fixed + pixels, flags=1)


def frame_request_v2(seq, w, h, fmt, planes, strides, offsets, pixels, key=0, res=0):
    strides = (strides + [0] * 4)[:4]
    offsets = (offsets + [0] * 4)[:4]
    fixed = struct.pack('<IIIIIBBH4I4Iqq', seq, res, w, h, fourcc(fmt), planes, key, 0,
                        *strides, *offsets, seq * 33333333, 33333333)
    return msg(0x42, fixed + pixels, flags=0 if res else 1)


def hello(token=b''):
    fixed = struct.pack('<HHIIIIIIIHHI', 2, 2, fourcc('H264'), 4, 4000000, 60, 30, 1, 0,
                        len(token), 0, 0)
    return msg(0x40, fixed + token)


def host_seeds():
    nv12 = bytes(range(256)) * 1 + bytes(128)  # 16x16 NV12 = 384 bytes
    yield 'v1-nv12', frame_request_v1(16, 16, 'NV12', 16, nv12, key=1) + frame_request_v1(16, 16, 'NV12', 16, nv12)
    yield 'v1-bgra-resource', msg(0x01, struct.pack('<IIIIIqqB7x', 7, 64, 64, fourcc('AR24'), 256, 0, -1, 0))
    yield 'v1-config-keyframe-ping', msg(0x04, struct.pack('<IIIIIBBB5x', 64, 64, 2000000, 30, 1, 100, 41, 1)) + msg(0x03, b'') + msg(0x10, b'')
    i420 = bytes(16 * 16 + 2 * 8 * 8)
    yield 'v2-session', (hello(b'secret') +
                         frame_request_v2(0, 16, 16, 'YU12', 3, [16, 8, 8], [0, 256, 320], i420, key=1) +
                         msg(0x44, struct.pack('<IIIIII', 7, 1000000, 30, 30, 1, 0)) +
                         frame_request_v2(1, 16, 16, 'YU12', 3, [16, 8, 8], [0, 256, 320], i420) +
                         frame_request_v2(2, 64, 64, 'XR24', 1, [256], [0], b'', res=5))
    yield 'bad-magic', b'XXXX' + msg(0x10, b'')[4:]
    yield 'truncated', frame_request_v1(16, 16, 'NV12', 16, nv12)[:100]
    yield 'unknown-type', msg(0x77, b'abc')


def guest_seeds():
    au = b'\x00\x00\x00\x01\x67\x42\x00\x1e' + b'\x00\x00\x00\x01\x65' + bytes(20)
    ack = msg(0x41, struct.pack('<HHIIIII24s', 2, 0, fourcc('H264'), 4, 8192, 8192, 0, b'x264enc'))
    resp2 = msg(0x43, struct.pack('<IBBHqqqiI', 0, 0, 1, 0, 0, 0, 33333333, 0, 100) + au)
    dropped = msg(0x43, struct.pack('<IBBHqqqiI', 1, 1, 0, 0, 1, 1, 1, 0, 0))
    failed = msg(0x43, struct.pack('<IBBHqqqiI', 2, 2, 0, 0, 2, 2, 2, -2, 0) + b'resource 5 unknown')
    yield 'v2-answers', ack + resp2 + dropped + failed + msg(0x10, b'')
    nal = struct.pack('<I', len(au)) + au
    yield 'v1-response', msg(0x02, struct.pack('<qqB3xI', 0, 0, 1, 1) + nal) + msg(0x05, b'cfg')
    yield 'v1-two-nals', msg(0x02, struct.pack('<qqB3xI', 0, 0, 1, 2) + nal + nal)
    yield 'error', msg(0xFF, struct.pack('<i256s', -1, b'unknown message type'))
    yield 'nal-overrun', msg(0x02, struct.pack('<qqB3xI', 0, 0, 1, 1) + struct.pack('<I', 1000) + au)


# Helix export (docs/export-protocol.md). Inputs for fuzz-export.c: byte 0
# seeds the chunk sizes, byte 1 says which chunks carry a descriptor.
def hxex(mtype, payload, req=0, n_fds=0):
    return struct.pack('<IBBHII', 0x58455848, mtype, n_fds, 0, len(payload), req) + payload


def hx_hello(minv=1, maxv=1, kinds=0):
    return hxex(0x01, struct.pack('<HHIQ', minv, maxv, kinds, 0))


def hx_resolve(req, res, kinds=0):
    return hxex(0x03, struct.pack('<IIQ', res, kinds, 0), req=req)


def hx_release(handle):
    return hxex(0x05, struct.pack('<II', handle, 0))


def hx_surface(req, handle, kind, w, h, stride, size, slot=0, n_fds=0, fourcc='AR24'):
    body = struct.pack('<IBBHIIIIQII Q4I4I'.replace(' ', ''), handle, kind, 1, 0, fourcc_v(fourcc), w, h, slot,
                       0, 0, 0, size, stride, 0, 0, 0, 0, 0, 0, 0)
    return hxex(0x04, body, req=req, n_fds=n_fds)


def fourcc_v(s):
    return struct.unpack('<I', s.encode())[0]


def hx_ack(n_slots, slot_size, kinds=0x2, n_fds=None, version=1):
    body = struct.pack('<HHIIIQII', version, 0, kinds, n_slots, 0, slot_size, 4096, 4096)
    return hxex(0x02, body, n_fds=(1 if n_slots else 0) if n_fds is None else n_fds)


def hx_error(req, code, text):
    return hxex(0x06, struct.pack('<i124s', code, text), req=req)


# Version 2: scanout watches
def hx_watch(req=0):
    return hxex(0x07, bytes(8), req=req)


def hx_scanout(index, n, res=0, w=0, h=0, enabled=True):
    return hxex(0x08, struct.pack('<8I', index, int(enabled), res, w, h, fourcc_v('AR24') if res else 0, n, 0))


def hx_flush(index, res, w, h, t=1000):
    return hxex(0x09, struct.pack('<6IQ', index, res, 0, 0, w, h, t))


# Version 3: the cursor plane
def hx_cursor_shape(index, w, h, hx, hy, n_fds=0):
    return hxex(0x0C, struct.pack('<6IQ', index, w, h, hx, hy, fourcc_v('AR24'), w * h * 4), n_fds=n_fds)


def hx_cursor_move(index, flags, x, y, t=1000):
    return hxex(0x0D, struct.pack('<2I2iQ', index, flags, x, y, t))


def hx_control(req, index, enable, w=64, h=64, hz=60):
    return hxex(0x0A, struct.pack('<6I', index, enable, w, h, hz, 0), req=req)


def hx_control_ack(req, index, status):
    return hxex(0x0B, struct.pack('<Ii', index, status), req=req)


# fuzz-export.c's stand-in virglrenderer: resource id bits 0-1 nonzero =
# exists, 2-3 format (3 = unsupported), 4-10 width, 11-17 height, 18 depth
# 2, 19 DMA-BUF works, 20 readback fails.
def res_id(w, h, fmt=0, depth2=False, dmabuf=False, fail=False):
    return 1 | fmt << 2 | w << 4 | h << 11 | depth2 << 18 | dmabuf << 19 | fail << 20


def export_vmm_seeds():
    ok = res_id(16, 16)
    yield 'session', b'\x34\x00' + (hx_hello() + hx_resolve(1, ok) + hx_resolve(2, ok) +
                                     hx_resolve(3, ok) + hx_release(1) + hx_resolve(4, ok) +
                                     hx_release(99) + hx_release(2))
    yield 'dmabuf', b'\x10\x00' + hx_hello(kinds=0x6) + hx_resolve(1, res_id(32, 8, dmabuf=True), kinds=0x4)
    yield 'refusals', b'\x07\x00' + (hx_hello() + hx_resolve(1, 4) + hx_resolve(2, res_id(8, 8, fmt=3)) +
                                      hx_resolve(3, res_id(8, 8, depth2=True)) +
                                      hx_resolve(4, res_id(100, 8)) + hx_resolve(5, res_id(96, 96)) +
                                      hx_resolve(6, res_id(8, 8, fail=True)) + hx_resolve(7, 0))
    yield 'resolve-before-hello', b'\x00\x00' + hx_resolve(1, ok)
    yield 'hello-with-fd', b'\x30\x01' + hx_hello()
    yield 'second-hello', b'\x30\x00' + hx_hello() + hx_hello()
    yield 'bad-version', b'\x30\x00' + hx_hello(2, 3)
    yield 'server-message', b'\x30\x00' + hx_hello() + hx_ack(0, 0)
    yield 'bad-size', b'\x02\x00' + hx_hello()[:8] + struct.pack('<I', 1 << 30) + bytes(4)
    yield 'watch', b'\x34\x00' + (hx_hello(2, 2, 0x1) + hx_watch() + hx_control(1, 1, 1) +
                                   hx_control(2, 2, 1) + hx_control(3, 0, 1) + hx_control(4, 9, 0) +
                                   hx_control(5, 1, 1, w=100000) + hx_control(6, 1, 0))
    yield 'watch-resolve', b'\x10\x00' + hx_hello(1, 2) + hx_watch() + hx_resolve(1, ok)
    yield 'watch-v1', b'\x10\x00' + hx_hello(1, 1) + hx_watch()
    yield 'watch-twice', b'\x10\x00' + hx_hello(2, 2) + hx_watch() + hx_watch()
    yield 'watch-control-id0', b'\x10\x00' + hx_hello(2, 2) + hx_watch() + hx_control(0, 1, 1)
    yield 'watch-control-bad', b'\x10\x00' + hx_hello(2, 2) + hx_watch() + hx_control(1, 1, 7)
    yield 'control-no-watch', b'\x10\x00' + hx_hello(2, 2) + hx_control(1, 1, 1)
    # version 3: a watch that sends the VMM's own cursor messages
    yield 'watch-v3-sends-cursor', b'\x10\x00' + (hx_hello(2, 3, 0x1) + hx_watch() +
                                                   hx_cursor_move(0, 1, 1, 1))


def export_client_seeds():
    yield 'readback', b'\x34\x01' + (hx_ack(2, 8192) + hx_surface(1, 7, 1, 16, 16, 64, 1024) +
                                      hx_error(2, 1, b'no resource 2') +
                                      hx_surface(3, 8, 1, 16, 16, 64, 1024, slot=1))
    yield 'dmabuf', b'\x34\x03' + (hx_ack(0, 0, kinds=0x4) + hx_surface(1, 9, 2, 16, 16, 64, 4096, n_fds=1))
    yield 'refused', b'\x10\x00' + hx_error(0, 7, b'this VMM speaks version 1 only')
    yield 'late-answer', b'\x34\x01' + (hx_ack(1, 4096) + hx_surface(5, 3, 1, 4, 4, 16, 64) +
                                         hx_surface(1, 4, 1, 4, 4, 16, 64))
    yield 'slot-outside', b'\x34\x01' + hx_ack(1, 4096) + hx_surface(1, 3, 1, 4, 4, 16, 64, slot=1)
    yield 'ring-missing', b'\x34\x00' + hx_ack(4, 4096, n_fds=1)
    # byte 1 bit 7: fuzz-export.c plays the scanout watch
    v2 = hx_ack(0, 0, kinds=0, version=2)
    yield 'watch', b'\x34\x80' + (v2 + hx_scanout(0, 3, 5, 64, 48) + hx_scanout(1, 3) +
                                   hx_scanout(2, 3, enabled=False) + hx_flush(0, 5, 64, 48) +
                                   hx_scanout(1, 3, 6, 32, 32) + hx_control_ack(1, 1, 0) +
                                   hx_flush(1, 6, 32, 32))
    yield 'watch-refused', b'\x10\x80' + v2 + hx_scanout(0, 2) + hx_scanout(1, 2) + hx_control_ack(1, 1, 9)
    yield 'watch-bad-index', b'\x10\x80' + v2 + hx_scanout(0, 2) + hx_scanout(1, 2) + hx_flush(5, 1, 4, 4)
    yield 'watch-count-changes', b'\x10\x80' + v2 + hx_scanout(0, 2) + hx_scanout(1, 3)
    yield 'watch-no-scanouts', b'\x10\x80' + v2 + hx_error(0, 10, b'this VMM reports no scanouts')
    yield 'watch-v1-vmm', b'\x10\x80' + hx_error(0, 7, b'this VMM speaks version 1 only')
    # version 3: the cursor plane (the fuzzer's memfds are not sealed: a
    # shape with one is refused, the watch closed)
    v3 = hx_ack(0, 0, kinds=0, version=3)
    yield 'watch-cursor-move', b'\x10\x80' + (v3 + hx_scanout(0, 2) + hx_scanout(1, 2) +
                                               hx_cursor_move(1, 1, 10, -20) + hx_flush(1, 1, 4, 4) +
                                               hx_cursor_move(0, 0, 0, 0))
    yield 'watch-cursor-shape', b'\x34\x82' + (v3 + hx_scanout(0, 1) + hx_cursor_shape(0, 64, 64, 1, 2, n_fds=1) +
                                                hx_cursor_move(0, 1, 5, 5))
    yield 'watch-cursor-huge', b'\x10\x80' + v3 + hx_scanout(0, 1) + hx_cursor_shape(0, 4096, 4096, 0, 0)
    yield 'watch-cursor-v2', b'\x10\x80' + v2 + hx_scanout(0, 1) + hx_cursor_move(0, 1, 1, 1)


def main():
    for name, gen in (('host', host_seeds), ('guest', guest_seeds),
                      ('export-vmm', export_vmm_seeds), ('export-client', export_client_seeds)):
        d = os.path.join(HERE, 'corpus', name)
        os.makedirs(d, exist_ok=True)
        for seed, data in gen():
            with open(os.path.join(d, seed), 'wb') as f:
                f.write(data)
    return 0


if __name__ == '__main__':
    sys.exit(main())
