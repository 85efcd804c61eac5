#!/usr/bin/env python3
"""The host's half of the desktop scenario's pointer check: moves the
guest's tablet (virtio-tablet-pci) through QEMU's QMP input injection.

  cursor-inject.py SHARE_OUT QMP_SOCKET TIMEOUT_S

Waits for SHARE_OUT/cursor-ready (the guest writes it once its
subscriber is subscribed), then moves the pointer through the points
below, one every 0.6 s, and writes each one as "X Y" (QEMU's absolute
axes, 0..32767) to SHARE_OUT/cursor-injected.txt, then SHARE_OUT/cursor-done.
Exits when done, when QEMU goes away or after TIMEOUT_S.
"""
import json, os, socket, sys, time

out, qmp_path, timeout = sys.argv[1], sys.argv[2], float(sys.argv[3])
# in an 800x600 output: x a multiple of 25 px, y of 75 px (exact in the
# 32768 steps of the axes)
POINTS = [(4096, 4096), (8192, 8192), (16384, 16384), (24576, 12288),
          (28672, 24576), (12288, 28672), (20480, 20480), (6144, 16384)]
deadline = time.monotonic() + timeout


def wait_for(path):
    while not os.path.exists(path):
        if time.monotonic() > deadline:
            sys.exit(f"cursor-inject: no {path} in {timeout} s")
        time.sleep(0.2)


def cmd(f, s, name, **args):
    s.sendall(json.dumps({"execute": name, "arguments": args}).encode() + b"\n")
    for line in f:
        r = json.loads(line)
        if "return" in r or "error" in r:
            if "error" in r:
                sys.exit(f"cursor-inject: {name}: {r['error']}")
            return r["return"]
    sys.exit("cursor-inject: QEMU closed QMP")


wait_for(qmp_path)
s = socket.socket(socket.AF_UNIX)
s.connect(qmp_path)
f = s.makefile("r")
f.readline()  # the greeting
cmd(f, s, "qmp_capabilities")
wait_for(os.path.join(out, "cursor-ready"))
with open(os.path.join(out, "cursor-injected.txt"), "w") as log:
    for x, y in POINTS:
        cmd(f, s, "input-send-event", events=[
            {"type": "abs", "data": {"axis": "x", "value": x}},
            {"type": "abs", "data": {"axis": "y", "value": y}}])
        log.write(f"{x} {y}\n")
        log.flush()
        time.sleep(0.6)
open(os.path.join(out, "cursor-done"), "w").close()
print(f"cursor-inject: {len(POINTS)} moves")
