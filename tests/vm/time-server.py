#!/usr/bin/env python3
"""The host's clock for the vm-test desktop's latency stages: a UDP
service on 127.0.0.1 (the guest reaches it at 10.0.2.2 through QEMU's
user-mode networking) that answers each 8-byte datagram with those 8
bytes and the host's CLOCK_MONOTONIC in ns (u64, little endian), the
clock of the bridge's capture times. tests/vm/desk-latency.c relates the
guest's clock to it from the fastest round trip.

  time-server.py PORT_FILE

Binds a free port, writes it into PORT_FILE, serves until SIGTERM.
"""
import os, signal, socket, struct, sys, time

s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("127.0.0.1", 0))
signal.signal(signal.SIGTERM, lambda *a: sys.exit(0))
with open(sys.argv[1] + ".tmp", "w") as f:
    f.write(f"{s.getsockname()[1]}\n")
os.replace(sys.argv[1] + ".tmp", sys.argv[1])
while True:
    req, peer = s.recvfrom(64)
    if len(req) == 8:
        s.sendto(req + struct.pack("<Q", time.clock_gettime_ns(time.CLOCK_MONOTONIC)), peer)
