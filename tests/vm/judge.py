#!/usr/bin/env python3
"""Judges a vm-test run by what the guest wrote into its share (out/*.txt)
and prints the stage timings, a summary and, last, one line of JSON.
Exit status 0 only if every scenario that ran passed.

  judge.py RUN_DIR FRAMES SCENARIOS QEMU_VERSION TOTAL_S TIMING_LINE...
"""
import json, os, re, sys

run, frames, scenarios, qemu_version, total = sys.argv[1:6]
timings = sys.argv[6:]
frames = int(frames)
scenarios = scenarios.split(",")
out = os.path.join(run, "share", "out")


def read(name):
    """key=value lines of out/NAME.txt; stats= parsed into a dict."""
    d = {}
    try:
        with open(os.path.join(out, name + ".txt")) as f:
            for line in f:
                k, _, v = line.rstrip("\n").partition("=")
                if k == "stats":
                    d["stats"] = {m[0]: m[1] for m in re.findall(
                        r"([a-z-]+)=\([a-z0-9]+\)\"?([^,;\"]*)", v)}
                elif k:
                    d.setdefault(k, v)
    except FileNotFoundError:
        pass
    return d


def num(d, k, default=None):
    try:
        return float(d[k])
    except (KeyError, ValueError):
        return default


def stat(d, k):
    return int(d.get("stats", {}).get(k, -1))


results, failures, j = [], [], {"qemu_version": qemu_version, "frames": frames}


def check(scenario, ok, what):
    results.append((scenario, ok, what))
    if not ok:
        failures.append(f"{scenario}: {what}")


def stream(name, want_ids):
    d = read(name)
    if not d:
        check(name, False, "no results (the guest did not get this far)")
        return d
    check(name, d.get("rc") == "0", "pipeline reached EOS" +
          ("" if d.get("rc") == "0" else f" (rc={d.get('rc')}, {d.get('error', '')})"))
    dec = int(num(d, "decoded", 0))
    check(name, dec == frames, f"decoded {dec}/{frames} frames")
    p = num(d, "min_psnr", 0)
    check(name, p >= 30, f"min luma PSNR {p:.1f} dB (>= 30)")
    rid, pix = stat(d, "resource-id-frames"), stat(d, "pixel-frames")
    if want_ids:
        check(name, rid == frames and pix == 0,
              f"stats: resource-id frames {rid}, pixel frames {pix}")
        sent = stat(d, "bytes-sent")
        bpf = sent / frames if frames else 0
        check(name, 0 < bpf <= 128, f"{bpf:.0f} bytes per frame guest to host (<= 128)")
    else:
        check(name, pix == frames, f"stats: pixel frames {pix}")
    return d


if "pixels" in scenarios:
    d = stream("pixels", False)
    wall = num(d, "wall_ms")
    j["pixel_fps"] = round(frames / (wall / 1e3), 1) if wall else None
    j["pixel_bytes_per_frame_guest_to_host"] = (
        round(stat(d, "bytes-sent") / frames) if d else None)
    j["pixel_bytes_received"] = stat(d, "bytes-received") if d else None
    j["pixel_min_psnr"] = num(d, "min_psnr")

if "zero-copy" in scenarios:
    d = stream("zero-copy", True)
    j["resource_id_frames"] = stat(d, "resource-id-frames") if d else None
    j["pixel_frames"] = stat(d, "pixel-frames") if d else None
    j["bytes_per_frame_guest_to_host"] = (
        round(stat(d, "bytes-sent") / frames, 1) if d else None)
    j["decoded"] = int(num(d, "decoded", 0))
    j["min_psnr"] = num(d, "min_psnr")
    j["zero_copy_fps"] = (round(frames / (num(d, "wall_ms") / 1e3), 1)
                          if num(d, "wall_ms") else None)
    g = stream("zero-copy-gltestsrc", True)
    j["gltestsrc_resource_id_frames"] = stat(g, "resource-id-frames") if g else None
    j["gltestsrc_min_psnr"] = num(g, "min_psnr")
    stream("gl-fallback", False)

if "vsock" in scenarios:
    d = stream("vsock", False)
    j["vsock_frames"] = int(num(d, "decoded", 0))
    check("vsock", d.get("bridge_rc") == "0",
          f"in-guest bridge exited cleanly on SIGTERM (rc={d.get('bridge_rc')})")

if "guest-cpu" in scenarios:
    for name, key in (("cpu-vsockenc", "guest_cpu_ms_per_frame_vsockenc"),
                      ("cpu-x264", "guest_cpu_ms_per_frame_x264")):
        d = read(name)
        ok = d.get("rc") == "0"
        cpu = num(d, "cpu_ms")
        j[key] = round(cpu / frames, 2) if ok and cpu is not None else None
        check(name, ok, f"CPU {j[key]} ms per frame" +
              ("" if ok else f" (rc={d.get('rc')}, {d.get('error', '')})"))

if "faults" in scenarios:
    d = read("faults")
    want = {"live": "OK", "destroyed": "FAILED", "never_created": "FAILED",
            "after": "OK", "stale_after_reset": "FAILED", "after_reset": "OK"}
    for k, v in want.items():
        got = d.get(k, "missing").split(" ")[0]
        check("faults", got == v, f"{k} resource id: {got} (want {v}): {d.get(k, '')}")
    qlog = ""
    try:
        qlog = open(os.path.join(run, "qemu.log"), errors="replace").read()
    except FileNotFoundError:
        pass
    check("faults", "helix-export: GPU reset" in qlog,
          "QEMU's export saw the GPU reset and stayed up")
    j["fault_frames_failed"] = sum(d.get(k, "").startswith("FAILED") for k in want)
    rc = open(os.path.join(run, "bridge.rc")).read().strip() if os.path.exists(
        os.path.join(run, "bridge.rc")) else "?"
    check("faults", rc == "0", f"host bridge alive to the end, exit {rc} on SIGTERM")

serial = ""
try:
    serial = open(os.path.join(run, "serial.log"), errors="replace").read()
except FileNotFoundError:
    pass
m = re.search(r"VMINIT: payload ([0-9.]+)", serial)
j["guest_boot_s"] = float(m.group(1)) if m else None
check("guest", "VMINIT: done" in serial, "guest ran its payload and powered off")

print("\nstage timings:")
for t in timings:
    print("  " + t)
print(f"  {'total':14s} {float(total):7.1f} s")
print("\nsummary:")
for s, ok, what in results:
    print(f"  {'PASS' if ok else 'FAIL'}  {s}: {what}")
j["total_s"] = round(float(total), 1)
j["stage_s"] = {}
for t in timings:
    f = t.split()
    if len(f) >= 2:
        try:
            j["stage_s"][f[0]] = float(f[1])
        except ValueError:
            pass
j["passed"] = not failures
print(f"\nvm-test: {'PASSED' if not failures else 'FAILED (' + str(len(failures)) + ')'}"
      f"; logs in {run}")
print(json.dumps(j))
sys.exit(0 if not failures else 1)
