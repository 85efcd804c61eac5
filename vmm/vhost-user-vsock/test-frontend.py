#!/usr/bin/env python3
# helix-vhost-user-vsock against a misbehaving vhost-user front end: the
# backend answers a well-formed one (features, protocol features, the
# guest's CID in its config space), drops one that sends bad messages and
# stays up for the next. Only UNIX sockets; no AF_VSOCK, no QEMU.
#
#   test-frontend.py BACKEND
#
# SPDX-License-Identifier: GPL-2.0-or-later
import os, random, select, socket, struct, subprocess, sys, tempfile, time

GET_FEATURES, SET_OWNER, SET_MEM_TABLE, SET_VRING_NUM = 1, 3, 5, 8
SET_VRING_KICK, GET_PROTOCOL_FEATURES, GET_CONFIG = 12, 15, 24
POSTCOPY_LISTEN = 29
VERSION, REPLY = 0x1, 0x4


def connect(path):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(5)
    for _ in range(100):
        try:
            s.connect(path)
            return s
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("the backend does not accept connections")


def msg(req, payload=b"", size=None):
    return struct.pack("<3I", req, VERSION,
                       len(payload) if size is None else size) + payload


def reply(s):
    h = b""
    while len(h) < 12:
        c = s.recv(12 - len(h))
        if not c:
            raise RuntimeError("connection closed before a reply")
        h += c
    req, flags, size = struct.unpack("<3I", h)
    p = b""
    while len(p) < size:
        c = s.recv(size - len(p))
        if not c:
            break
        p += c
    assert flags & REPLY, f"not a reply: flags {flags:#x}"
    return req, p


def healthy(path, cid):
    """a well-behaved front end's first questions are answered (the first
    one in two pieces: a stream may split a message)"""
    s = connect(path)
    m = msg(GET_FEATURES)
    s.sendall(m[:5])
    time.sleep(0.05)
    s.sendall(m[5:])
    req, p = reply(s)
    features = struct.unpack("<Q", p)[0]
    assert req == GET_FEATURES and features & (1 << 32), f"features {features:#x}"
    s.sendall(msg(GET_PROTOCOL_FEATURES))
    req, p = reply(s)
    assert struct.unpack("<Q", p)[0] & (1 << 9), "no CONFIG protocol feature"
    s.sendall(msg(GET_CONFIG, struct.pack("<3I", 0, 8, 0) + bytes(256)))
    req, p = reply(s)
    assert struct.unpack_from("<Q", p, 12)[0] == cid, "wrong guest cid"
    s.close()


def trickled(path):
    """a header sent a byte a second: dropped once the message is 5 s old
    (the backend's deadline is per message, not per read), not served for
    as long as the bytes keep coming"""
    s = connect(path)
    start = time.monotonic()
    header = msg(GET_FEATURES)
    try:
        for i in range(len(header) - 1):
            s.sendall(header[i:i + 1])
            r, _, _ = select.select([s], [], [], 1.0)
            if r and s.recv(1) == b"":
                break
        else:
            raise RuntimeError("still served after %.1f s of a header "
                               "trickled a byte a second"
                               % (time.monotonic() - start))
    except (BrokenPipeError, ConnectionResetError):
        pass
    held = time.monotonic() - start
    s.close()
    assert held >= 4.5, f"dropped after {held:.1f} s, before its deadline"


def main():
    backend = sys.argv[1]
    d = tempfile.mkdtemp(prefix="hvv-fe-")
    path = os.path.join(d, "vu.sock")
    log = open(os.path.join(d, "backend.log"), "w+")
    p = subprocess.Popen([backend, "--socket", path, "--uds-path",
                          os.path.join(d, "v"), "--guest-cid", "7"],
                         stdout=log, stderr=subprocess.STDOUT)
    cases = {
        "closes at once": [],
        "half a header": [b"\x01\x00\x00"],
        "a payload bigger than any message": [msg(GET_FEATURES, size=1 << 20)],
        "an unknown request": [msg(9999)],
        "GET_CONFIG of 4 GiB": [msg(GET_CONFIG, struct.pack("<3I", 0, 0xffffffff, 0)
                                    + bytes(256))],
        "GET_CONFIG of 0 bytes": [msg(GET_CONFIG, struct.pack("<3I", 0, 0, 0)
                                      + bytes(256))],
        "a memory table without its fds": [
            msg(SET_OWNER), msg(SET_MEM_TABLE, struct.pack("<2I", 8, 0)
                                + bytes(8 * 32))],
        "a ring of queue 99": [msg(SET_VRING_NUM, struct.pack("<2I", 99, 256))],
        "a kick for queue 99 without an fd": [msg(SET_VRING_KICK, struct.pack("<Q", 99))],
        "a ring of 65535 entries": [msg(SET_VRING_NUM, struct.pack("<2I", 0, 65535))],
    }
    cases["a payload shorter than announced"] = [msg(GET_FEATURES, b"abcd", size=8)]
    # silent inside a message, longer than the backend waits (5 s)
    cases["a header that stops half-way"] = [msg(GET_FEATURES)[:6], 5.5]
    # libvhost-user then waits for the front end's acknowledgement itself
    # (through the backend's reader): silent, it is dropped all the same
    cases["a postcopy memory table never acknowledged"] = [
        msg(POSTCOPY_LISTEN), msg(SET_MEM_TABLE, struct.pack("<2I", 0, 0)
                                  + bytes(8 * 32)), 5.5]
    rnd = random.Random(24)
    for i in range(20):
        req = rnd.randrange(0, 50)
        if req == 0:  # the front end's "NONE": a close, tested above
            req = 1
        pl = bytes(rnd.randrange(256) for _ in range(rnd.choice((0, 8, 12, 40))))
        cases[f"random message {i} (request {req})"] = [msg(req, pl)]
    failed = 0
    try:
        healthy(path, 7)
        try:
            trickled(path)
            healthy(path, 7)
            print("ok - a header trickled a byte a second")
        except (AssertionError, RuntimeError, OSError) as e:
            failed += 1
            print(f"not ok - a header trickled a byte a second: {e}")
        for name, msgs in cases.items():
            s = connect(path)
            try:
                for m in msgs:
                    if isinstance(m, float):
                        time.sleep(m)
                    else:
                        s.sendall(m)
                time.sleep(0.05)
            except OSError:
                pass
            try:
                # a stalled front end is still connected: the backend must
                # have given up on it to serve the next one
                if isinstance(msgs[-1] if msgs else None, float):
                    healthy(path, 7)
                s.close()
                assert p.poll() is None, f"backend exited ({p.returncode})"
                healthy(path, 7)
                print(f"ok - {name}")
            except (AssertionError, RuntimeError, OSError) as e:
                failed += 1
                print(f"not ok - {name}: {e}")
                if p.poll() is not None:
                    break
    finally:
        p.terminate()
        try:
            p.wait(10)
        except subprocess.TimeoutExpired:
            p.kill()
        log.seek(0)
        if failed:
            print(log.read()[-3000:])
    assert p.returncode == 0, f"backend's exit status on SIGTERM: {p.returncode}"
    assert not os.path.exists(path), "socket file left behind"
    print(f"{len(cases) + 2 - failed} of {len(cases) + 2} front ends handled")
    sys.exit(1 if failed else 0)


main()
