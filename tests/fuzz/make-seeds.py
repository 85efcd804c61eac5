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


def main():
    for name, gen in (('host', host_seeds), ('guest', guest_seeds)):
        d = os.path.join(HERE, 'corpus', name)
        os.makedirs(d, exist_ok=True)
        for seed, data in gen():
            with open(os.path.join(d, seed), 'wb') as f:
                f.write(data)
    return 0


if __name__ == '__main__':
    sys.exit(main())
