#!/usr/bin/env python3
"""A deployed-style scanout client, as helix's desktop-bridge subscribes
(docs/protocol.md 11.1; no token): SUBSCRIBE, SUBSCRIBE_RESP, then
FRAME_RESPONSE pushes. Written from the spec for the vm-test "desktop"
scenario.

  deployed-sub.py HOST PORT SCANOUT OUT.h264 COUNT_FILE

Appends each access unit to OUT.h264 and writes the number of frames so
far into COUNT_FILE (the guest script waits on it). SIGUSR1 marks the
start of an idle screen (the compositor stopped flipping); SIGINT or
SIGTERM ends it. Prints key=value lines at the end: subscribed=,
frames=, keyframes=, counter_steps_backwards=, counter_gaps=,
idle_frames=, idle_s=, idle_max_gap_ms= (the longest wait for a frame
while idle, the mark and the end included), end=.
"""
import os, select, signal, socket, struct, sys, time

MAGIC = 0x52465848
host, port, scanout, out_path, count_path = sys.argv[1:6]
port, scanout = int(port), int(scanout)
stop = False
idle_mark = None


def on_stop(sig, frame):
    global stop
    stop = True


def on_idle(sig, frame):
    global idle_mark
    idle_mark = time.monotonic()


signal.signal(signal.SIGINT, on_stop)
signal.signal(signal.SIGTERM, on_stop)
signal.signal(signal.SIGUSR1, on_idle)


def report(**kw):
    for k, v in kw.items():
        print(f"{k}={v}")
    sys.stdout.flush()


s = socket.create_connection((host, port), timeout=10)
s.sendall(struct.pack("<IBBHII", MAGIC, 0x30, 0, scanout & 0xFFFF, 4, scanout))
buf = b""


def need(n, deadline):
    """n bytes from the socket, or None at the deadline, a close or a stop"""
    global buf
    while len(buf) < n:
        left = deadline - time.monotonic()
        if left <= 0 or stop:
            return None
        try:
            r, _, _ = select.select([s], [], [], min(left, 0.1))
        except InterruptedError:
            continue
        if not r:
            continue
        c = s.recv(1 << 20)
        if not c:
            return None
        buf += c
    d, buf = buf[:n], buf[n:]
    return d


h = need(12 + 8, time.monotonic() + 10)
if not h:
    report(subscribed="no answer", frames=0)
    sys.exit(1)
magic, t, _, _, size = struct.unpack_from("<IBBHI", h)
sid, ok = struct.unpack_from("<2I", h, 12)
if magic != MAGIC or t != 0x31 or size != 8 or sid != scanout or ok != 1:
    report(subscribed=f"refused (type {t:#x}, success {ok})", frames=0)
    sys.exit(1)
frames = keyframes = backwards = gaps = 0
last_n = None
arrivals = []
end = "stopped"
with open(out_path, "wb") as out:
    while not stop:
        # the bridge sends at least every quiet interval: 10 s is a stall
        h = need(12, time.monotonic() + 10)
        if h is None:
            end = "stopped" if stop else "no frame for 10 s, or closed"
            break
        magic, t, _, _, size = struct.unpack_from("<IBBHI", h)
        body = need(size, time.monotonic() + 10)
        if magic != MAGIC or body is None:
            end = f"bad message (magic {magic:#x}, type {t:#x})"
            break
        if t != 0x02:
            continue
        pts, _, key, nal_count, nal_size = struct.unpack_from("<qqB3xII", body)
        out.write(body[28:28 + nal_size])
        arrivals.append(time.monotonic())
        frames += 1
        keyframes += key
        # pts is the bridge's frame counter times 16 666 667 ns
        n = round(pts / 16666667)
        if last_n is not None:
            backwards += n <= last_n
            gaps += n > last_n + 1
        last_n = n
        with open(count_path + ".tmp", "w") as c:
            c.write(f"{frames}\n")
        os.replace(count_path + ".tmp", count_path)
t_end = time.monotonic()
# told to stop once is enough: a second signal must not end the report
signal.signal(signal.SIGINT, signal.SIG_IGN)
signal.signal(signal.SIGTERM, signal.SIG_IGN)
idle = [a for a in arrivals if idle_mark is not None and a >= idle_mark]
marks = ([idle_mark] if idle_mark is not None else []) + idle + [t_end]
report(subscribed="yes", frames=frames, keyframes=keyframes,
       counter_steps_backwards=backwards, counter_gaps=gaps,
       idle_frames=len(idle),
       idle_s=round(t_end - idle_mark, 2) if idle_mark is not None else 0,
       idle_max_gap_ms=round(max((b - a for a, b in zip(marks, marks[1:])),
                                 default=0) * 1e3),
       end=end)
sys.exit(0 if end == "stopped" else 1)
