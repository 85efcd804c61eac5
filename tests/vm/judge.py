#!/usr/bin/env python3
"""Judges a vm-test run by what the guest wrote into its share (out/*.txt)
and prints the stage timings, a summary and, last, one line of JSON.
Exit status 0 only if every scenario that ran passed.

  judge.py RUN_DIR FRAMES SCENARIOS QEMU_VERSION TOTAL_S TIMING_LINE...
"""
import json, math, os, re, subprocess, sys
from collections import Counter

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
                if k == "stats" or k.endswith("_stats"):
                    d[k] = {m[0]: m[1] for m in re.findall(
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


def run_file(name, default=""):
    """a file of the run directory (a log, an exit status), or DEFAULT"""
    try:
        return open(os.path.join(run, name), errors="replace").read()
    except FileNotFoundError:
        return default


def stat(d, k):
    return int(d.get("stats", {}).get(k, -1))


results, failures, j = [], [], {"qemu_version": qemu_version, "frames": frames}
skips = []


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
    d = stream("pixels-h265", False)
    wall = num(d, "wall_ms")
    j["pixel_h265_fps"] = round(frames / (wall / 1e3), 1) if wall else None
    j["pixel_h265_min_psnr"] = num(d, "min_psnr")

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
    # gltestsrc's frames; the desktop's are the unprefixed keys (desktop)
    for name, key in (("cpu-gltestsrc", "guest_cpu_ms_per_frame_gltestsrc_source_only"),
                      ("cpu-vsockenc", "guest_cpu_ms_per_frame_gltestsrc_vsockenc"),
                      ("cpu-x264", "guest_cpu_ms_per_frame_gltestsrc_x264")):
        d = read(name)
        ok = d.get("rc") == "0"
        cpu = num(d, "cpu_ms")
        j[key] = round(cpu / frames, 2) if ok and cpu is not None else None
        check(name, ok, f"CPU {j[key]} ms per frame" +
              ("" if ok else f" (rc={d.get('rc')}, {d.get('error', '')})"))
    src, enc, x264 = (j.get("guest_cpu_ms_per_frame_gltestsrc_" + k)
                      for k in ("source_only", "vsockenc", "x264"))
    if None not in (src, enc, x264) and x264 > src:
        j["guest_cpu_gltestsrc_offload_over_x264"] = round((enc - src) / (x264 - src), 3)

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
    rc = run_file("bridge.rc", "?").strip()
    check("faults", rc == "0", f"host bridge alive to the end, exit {rc} on SIGTERM")

def pattern_colour(cx, cy, k):
    """tests/vm/kms-flip.c's pattern: the colour index of cell (cx, cy) of
    frame k (bit 2 red, bit 1 green, bit 0 blue)."""
    if cy < 6:
        return (cx + cy + k) & 7
    if cy == 6:
        return cx
    return (k >> (3 * (7 - cx))) & 7


def read_cells(rgb, w, h):
    """The 8x8 colour indices of one RGB frame, each from 5x5 samples in
    the middle half of its cell (edges blur under 4:2:0 and H.264)."""
    cells = []
    for cy in range(8):
        row = []
        for cx in range(8):
            acc = [0, 0, 0]
            for sy in range(5):
                y = (cy * h + h // 32) // 8 + sy * (h // 80) + h // 32
                for sx in range(5):
                    x = (cx * w + w // 32) // 8 + sx * (w // 80) + w // 32
                    o = (y * w + x) * 3
                    for c in range(3):
                        acc[c] += rgb[o + c]
            row.append(sum(1 << (2 - c) for c in range(3) if acc[c] > 127 * 25))
        cells.append(row)
    return cells


def classify(cells):
    """The frame number the counter row names, and how many of the other
    56 cells disagree with that frame's pattern."""
    k = 0
    for cx in range(8):
        k = (k << 3) | cells[7][cx]
    bad = sum(cells[cy][cx] != pattern_colour(cx, cy, k)
              for cy in range(7) for cx in range(8))
    return k, bad


def decode_scanout(path, w, h, codec="h264", fmt="RGB"):
    """Decodes the subscriber's stream (h264 or h265) on the host: RGB
    (or I420) frames, or an error."""
    rgb = os.path.join(run, os.path.basename(path) + "." + fmt.lower())
    env = dict(os.environ, GST_REGISTRY=os.path.join(run, "judge-registry.bin"))
    try:
        p = subprocess.run(
            ["gst-launch-1.0", "-q", "filesrc", f"location={path}", "!",
             f"{codec}parse", "!", f"avdec_{codec}", "!", "videoconvert", "!",
             # the console's frames before the modeset may be another size
             "videoscale", "!",
             f"video/x-raw,format={fmt},width={w},height={h}" +
             # luma as BT.601 (the bridge's x264enc signals BT.709 at 800x600)
             (",colorimetry=bt601" if fmt == "I420" else ""), "!",
             "filesink", f"location={rgb}"],
            env=env, capture_output=True, text=True, timeout=300)
    except (OSError, subprocess.TimeoutExpired) as e:
        return None, str(e)
    if p.returncode != 0:
        return None, (p.stdout + p.stderr).strip()[-300:]
    with open(rgb, "rb") as f:
        data = f.read()
    os.remove(rgb)
    size = w * h * 3 if fmt == "RGB" else w * h * 3 // 2
    return [data[i:i + size] for i in range(0, len(data) - size + 1, size)], None


def qemu_log():
    try:
        return open(os.path.join(run, "qemu.log"), errors="replace").read()
    except FileNotFoundError:
        return ""


def judge_scanout(name, index):
    """kms-flip on scanout INDEX, QEMU's reports, the subscriber's stream
    (out/NAME.txt, out/NAME.h264); JSON keys prefixed with NAME."""
    d = read(name)
    jk = name.replace("-", "_")
    if not d:
        check(name, False, "no results (the guest did not get this far)")
        return
    flipped = int(num(d, "flipped", 0))
    check(name, d.get("kms_rc") == "0" and flipped == frames,
          f"kms-flip showed {flipped}/{frames} frames on scanout {index} by "
          f"{d.get('method', '?')} at {d.get('mode', '?')}, {d.get('fps', '?')} fps")
    j[jk + "_kms_fps"] = num(d, "fps")
    j[jk + "_scenario_s"] = round(num(d, "scenario_ms", 0) / 1e3, 1)
    qlog = qemu_log()
    flushes = [int(n) for n in re.findall(
        rf"helix-export: scanout {index}: flush (\d+)", qlog)]
    shows = re.findall(rf"helix-export: scanout {index} shows resource (\d+), (\d+x\d+)", qlog)
    flips = [int(n) for n in re.findall(rf"helix-export: scanout {index}: change (\d+)", qlog)]
    # the log has powers of two: at least half of what happened
    j[jk + "_qemu_flushes_at_least"] = max(flushes, default=0)
    j[jk + "_qemu_changes_at_least"] = max(flips, default=0)
    check(name, bool(shows) and max(flushes, default=0) >= frames // 2
          and max(flips, default=0) >= frames // 2,
          f"QEMU reported scanout {index} to its export: {len(shows)} size changes "
          f"({', '.join(sorted(set(s[1] for s in shows)))}), "
          f">= {max(flips, default=0)} SET_SCANOUTs, >= {max(flushes, default=0)} flushes")
    if "skipped" in d:
        skips.append((name, d["skipped"] + ": the host-encoded stream was not checked"))
        return
    codec = d.get("codec", "h264")
    j[jk + "_codec"] = codec
    check(name, d.get("subscriber_rc") == "0",
          f"subscriber ended cleanly at EOS (rc={d.get('subscriber_rc')}, "
          f"{d.get('subscriber_exit', 'exited')}; {d.get('stream_bytes', 0)} "
          f"bytes of {codec.upper()})")
    m = re.match(r"(\d+)x(\d+)$", d.get("mode", ""))
    if not m:
        check(name, False, "no mode from kms-flip")
        return
    w, h = int(m.group(1)), int(m.group(2))
    decoded, err = decode_scanout(os.path.join(out, f"{name}.{codec}"), w, h,
                                  codec)
    if decoded is None:
        check(name, False, f"host decode failed: {err}")
        return
    ks, other, worst = [], 0, 0
    for f in decoded:
        k, bad = classify(read_cells(f, w, h))
        if bad == 0 and k < frames:
            ks.append(k)
        else:
            other += 1
    distinct = sorted(set(ks))
    backwards = sum(b < a for a, b in zip(ks, ks[1:]))
    for k, v in (("decoded", len(decoded)), ("pattern_frames", len(ks)),
                 ("distinct", len(distinct)), ("other_frames", other),
                 ("first", ks[0] if ks else None), ("last", ks[-1] if ks else None)):
        j[f"{jk}_{k}"] = v
    check(name, len(ks) > 0,
          f"decoded {len(decoded)} frames on the host: {len(ks)} the pattern exactly, "
          f"{other} not (console or damaged)")
    check(name, len(distinct) >= frames // 2 and backwards == 0,
          f"{len(distinct)}/{frames} distinct pattern frames, in order "
          f"({backwards} steps backwards), first {ks[0] if ks else '-'}")
    check(name, bool(ks) and ks[-1] == frames - 1,
          f"the last flip (frame {frames - 1}) arrived: last seen {ks[-1] if ks else '-'}")


if "scanout" in scenarios:
    judge_scanout("scanout", 0)

if "scanout-hotplug" in scenarios:
    d = read("scanout-hotplug")
    check("scanout-hotplug", d.get("enable_success") == "1"
          and d.get("connector") == "Virtual-2",
          f"ENABLE_SCANOUT 1 at 640x480 (deployed dialect): success "
          f"{d.get('enable_success')}, connector {d.get('connector')}")
    check("scanout-hotplug", "helix-export: scanout 1 enabled (640x480@60)" in qemu_log(),
          "QEMU connected output 1 (hotplug) at the bridge's request")
    judge_scanout("scanout-hotplug", 1)

if "vsock-vm" in scenarios:
    # the guest's own vsock device through helix-vhost-user-vsock, and the
    # same frames over user-mode TCP right after it
    v = stream("vsock-vm", False)
    t = stream("vsock-vm-tcp", False)
    j["vsock_cross_vm_frames"] = int(num(v, "decoded", 0))
    j["vsock_cross_vm_min_psnr"] = num(v, "min_psnr")
    # the measurement: each transport's runs (ABBA order) added up
    for k, names in (("vsock", ["vsock-vm", "vsock-vm-2", "vsock-vm-3"]),
                     ("slirp", ["vsock-vm-tcp", "vsock-vm-tcp-2", "vsock-vm-tcp-3"]),
                     ("vsock_720p", ["vsock-vm-720p-1", "vsock-vm-720p-2"]),
                     ("slirp_720p", ["vsock-vm-720p-tcp-1", "vsock-vm-720p-tcp-2"])):
        runs = [read(n) for n in names]
        for n, d in zip(names, runs):
            check(n, d.get("rc") == "0" and stat(d, "pixel-frames") == frames,
                  f"reached EOS (rc={d.get('rc')}), {stat(d, 'pixel-frames')} "
                  f"pixel frames, {d.get('wall_ms')} ms")
        if "720p" not in k:
            runs = runs[1:]  # the first pair decodes into the judged files
        wall = sum(num(d, "wall_ms", 0) for d in runs)
        cpu = sum(num(d, "cpu_ms", 0) for d in runs)
        ok = all(d.get("rc") == "0" for d in runs)
        n = frames * len(runs)
        j[k + "_pixel_fps"] = round(n / (wall / 1e3), 1) if ok and wall else None
        j[k + "_guest_cpu_ms_per_frame"] = round(cpu / n, 2) if ok else None
        j[k + "_pixel_fps_runs"] = [round(frames / (num(d, "wall_ms") / 1e3), 1)
                                    if num(d, "wall_ms") else None for d in runs]
    for k in ("", "_720p"):
        a, b = j[f"vsock{k}_pixel_fps"], j[f"slirp{k}_pixel_fps"]
        j[f"vsock_over_slirp_fps{k}"] = round(a / b, 2) if a and b else None
    judge_scanout("vsock-scanout", 0)
    j["vsock_scanout_frames"] = j.get("vsock_scanout_distinct", 0)
    check("vsock-scanout", j["vsock_scanout_frames"] >= frames // 2,
          f"{j['vsock_scanout_frames']} distinct scanout frames over vsock")
    log = run_file("vhost-user-vsock.log")
    m = re.search(r"front end gone: anon_start_kb=(-?\d+) anon_max_kb=(-?\d+)", log)
    growth = int(m.group(2)) - int(m.group(1)) if m and int(m.group(1)) > 0 else None
    j["vsock_backend_rss_kb_growth"] = growth
    # bounded by design: 64 connections x 256 KiB at most, plus copies
    check("vsock-vm", growth is not None and growth <= 32768,
          f"backend's own memory (RssAnon) grew {growth} kB over the run (<= 32768)")
    j["vsock_backend_connections"] = len(re.findall(r"connection \d+ -> \d+: ", log))
    j["vsock_backend_bad_packets"] = len(re.findall(r"bad guest packet", log))
    check("vsock-vm", j["vsock_backend_bad_packets"] == 0,
          f"no bad packets from the guest ({j['vsock_backend_bad_packets']})")
    rc = run_file("vhost-user-vsock.rc", "?").strip()
    check("vsock-vm", rc == "0", f"backend exited by itself after QEMU, exit {rc}")


def lines_of(name, key):
    """every value of KEY in out/NAME.txt (read() keeps the first)"""
    try:
        with open(os.path.join(out, name + ".txt")) as f:
            return [l.rstrip("\n").partition("=")[2] for l in f
                    if l.startswith(key + "=")]
    except FileNotFoundError:
        return []


def luma(rgb):
    """BT.601 luma of packed RGB bytes"""
    return [(66 * r + 129 * g + 25 * b + 128 >> 8) + 16
            for r, g, b in zip(rgb[0::3], rgb[1::3], rgb[2::3])]


def luma_psnr(a, b):
    ya, yb = luma(a), luma(b)
    se = sum((x - y) * (x - y) for x, y in zip(ya, yb))
    return 99.0 if se == 0 else round(10 * __import__("math").log10(
        255.0 * 255 * len(ya) / se), 2)


def png_size(path):
    """(width, height) from a PNG's IHDR, or None"""
    try:
        with open(path, "rb") as f:
            h = f.read(24)
    except FileNotFoundError:
        return None
    if h[:8] != b"\x89PNG\r\n\x1a\n" or h[12:16] != b"IHDR":
        return None
    return int.from_bytes(h[16:20], "big"), int.from_bytes(h[20:24], "big")


def judge_desktop():
    """weston on scanout 0: an animated client, then its static desktop,
    through the desktop bridge to a v2 subscriber (token) and a deployed
    one; the picture against weston's own screenshot."""
    name = "desktop"
    d = read(name)
    if not d:
        check(name, False, "no results (the guest did not get this far)")
        return
    want = frames * 2
    j["desktop_compositor"] = d.get("compositor")
    j["desktop_renderer"] = d.get("renderer")
    j["desktop_scenario_s"] = round(num(d, "scenario_ms", 0) / 1e3, 1)
    j["desktop_weston_start_s"] = round(num(d, "weston_start_ms", 0) / 1e3, 1)
    n = int(num(d, "client_frames", 0))
    j["desktop_client_fps"] = num(d, "client_fps")
    check(name, d.get("compositor", "").startswith("weston") and
          d.get("client_rc") == "0" and n == want,
          f"{d.get('compositor')} ({d.get('renderer')} renderer) showed the "
          f"fullscreen client's {n}/{want} frames at {d.get('client_size')}, "
          f"{d.get('client_fps')} fps (client rc={d.get('client_rc')})")
    qlog = qemu_log()
    shows = re.findall(r"helix-export: scanout 0 shows resource (\d+), (\d+x\d+), "
                       r"fourcc (0x[0-9a-f]+)", qlog)
    fourccs = sorted(set(f"{s[1]} {bytes.fromhex(s[2][2:])[::-1].decode('ascii', 'replace')}"
                         for s in shows if s[2] != "0x00000000"))
    j["desktop_export_formats"] = fourccs
    planes = lines_of(name, "planes_animating") + lines_of(name, "planes_static")
    j["desktop_planes"] = lines_of(name, "planes_animating")
    j["desktop_planes_static"] = lines_of(name, "planes_static")
    mods = sorted(set(re.findall(r"modifier=(0x[0-9a-f]+)", " ".join(planes))))
    j["desktop_modifiers"] = mods
    rn = int(num(d, "resume_client_frames", 0))
    check(name, d.get("resume_client_rc") == "0" and rn == 10,
          f"after the idle time the client flipped again: {rn}/10 frames "
          f"(1000..1009), {d.get('resume_client_fps')} fps")
    waits = {k: v for k, v in d.items() if k.startswith("idle_repeats")}
    check(name, not waits, "every wait for frames on the static desktop was "
          f"met (6, 6 after the second run, 3 after the shot): {waits or 'yes'}")
    try:
        blog = open(os.path.join(run, "bridge-desktop.log"), errors="replace").read()
    except FileNotFoundError:
        blog = ""
    bformats = sorted(set(re.findall(r"scanouts: scanout 0 shows (\d+x\d+ \S+)", blog)))
    j["desktop_bridge_formats"] = bformats
    check(name, bool(fourccs) and bool(mods) and bformats,
          f"what weston scans out: export fourcc {', '.join(fourccs) or 'none'}; "
          f"the bridge logged {', '.join(bformats) or 'nothing'}; "
          f"KMS planes: "
          f"{'; '.join(planes) or 'none seen'}")
    m = re.match(r"(\d+)x(\d+)$", d.get("client_size", ""))
    if not m:
        check(name, False, "no output size from the client")
        return
    w, h = int(m.group(1)), int(m.group(2))
    shot_size = png_size(os.path.join(out, "desktop-shot.png"))
    shot = None
    try:
        with open(os.path.join(out, "desktop-shot.rgb"), "rb") as f:
            shot = f.read()
    except FileNotFoundError:
        pass
    check(name, shot_size == (w, h) and shot is not None and len(shot) == w * h * 3,
          f"weston's screenshot of its output: {shot_size} (rc "
          f"{d.get('screenshooter_rc')}), {len(shot) if shot else 0} bytes of RGB")
    for sub, jk in (("desktop", "scanout"), ("desktop-deployed", "deployed")):
        label = f"{name} ({'v2, token' if jk == 'scanout' else 'deployed'})"
        if jk == "scanout":
            st = d.get("v2_stats", {})
            check(label, d.get("subscriber_rc") == "0" and "v2_error" not in d
                  and st.get("reconnects") == "0",
                  f"vsockscanoutsrc ended cleanly at EOS (rc={d.get('subscriber_rc')}"
                  f"{' ' + d['v2_error'] if 'v2_error' in d else ''}), reconnects "
                  f"{st.get('reconnects')}, frames {st.get('frames')}, keyframes "
                  f"{st.get('keyframes')}, host-dropped {st.get('host-dropped')}")
            rep = int(st.get("repeats", -1))
            j["desktop_scanout_repeats"] = rep
            check(label, rep >= 6, f"{rep} quiet-interval repeats (REPEAT) while "
                  "the desktop was static (>= 6)")
        else:
            idle, gap = int(num(d, "deployed_idle_frames", 0)), num(d, "deployed_idle_max_gap_ms")
            j["desktop_deployed_idle_frames"] = idle
            j["desktop_deployed_idle_max_gap_ms"] = gap
            check(label, d.get("deployed_rc") == "0" and d.get("deployed_end") == "stopped",
                  f"deployed client ended when told (rc={d.get('deployed_rc')}, "
                  f"{d.get('deployed_end')}): {d.get('deployed_frames')} frames, "
                  f"{d.get('deployed_keyframes')} IDRs, counter gaps "
                  f"{d.get('deployed_counter_gaps')}, backwards "
                  f"{d.get('deployed_counter_steps_backwards')}")
            check(label, idle >= 9 and gap is not None and gap <= 1500,
                  f"{idle} frames while the desktop was static "
                  f"({d.get('deployed_idle_s')} s), none more than {gap} ms "
                  "apart (quiet interval 500 ms; <= 1500)")
        decoded, err = decode_scanout(os.path.join(out, sub + ".h264"), w, h)
        if decoded is None or not decoded:
            check(label, False, f"host decode failed: {err or 'no frames'}")
            j[f"desktop_{jk}_frames"] = 0
            continue
        ks, other = [], 0
        for f in decoded:
            k, bad = classify(read_cells(f, w, h))
            if bad == 0 and (k < want or 1000 <= k < 1010):
                ks.append(k)
            else:
                other += 1
        first_run = [k for k in ks if k < want]
        resumed = sorted(set(k for k in ks if k >= 1000))
        distinct = sorted(set(first_run))
        backwards = sum(b < a for a, b in zip(ks, ks[1:]))
        j[f"desktop_{jk}_frames"] = len(distinct) if backwards == 0 else 0
        j[f"desktop_{jk}_decoded"] = len(decoded)
        j[f"desktop_{jk}_resumed_frames"] = len(resumed)
        check(label, len(distinct) >= 60 and backwards == 0,
              f"decoded {len(decoded)} frames: {len(first_run)} the client's pattern "
              f"exactly, {len(distinct)}/{want} distinct, in order ({backwards} "
              f"steps backwards over both runs), first {first_run[0] if first_run else '-'}, "
              f"last {first_run[-1] if first_run else '-'}; {other} others (desktop)")
        check(label, len(resumed) >= 5 and 1009 in resumed,
              f"after the idle time: {len(resumed)}/10 distinct frames of the "
              f"second run (>= 5, the last one, 1009, included: "
              f"{'yes' if 1009 in resumed else 'no'})")
        # for a human: the last decoded frame, next to desktop-shot.png
        with open(os.path.join(out, sub + "-last.ppm"), "wb") as f:
            f.write(b"P6 %d %d 255\n" % (w, h) + decoded[-1])
        ok_shot = shot is not None and len(shot) == w * h * 3
        p = luma_psnr(decoded[-1], shot) if ok_shot else 0
        j[f"desktop_{'' if jk == 'scanout' else 'deployed_'}static_psnr"] = p
        # the same measure on a frame that is not the desktop (the client's
        # last): low, or the comparison could not tell pictures apart
        last_k = max((i for i, f in enumerate(decoded)
                      if classify(read_cells(f, w, h))[1] == 0), default=None)
        ctl = luma_psnr(decoded[last_k], shot) if ok_shot and last_k is not None else None
        if jk == "scanout":
            j["desktop_static_psnr_control"] = ctl
        check(label, p >= 30 and ctl is not None and ctl < 20,
              f"last decoded frame vs weston's screenshot: luma PSNR {p} dB "
              f"(>= 30; the client's last frame vs the same screenshot: {ctl} dB, < 20)")


def colour_luma(c):
    """BT.601 luma of colour index c (bit 2 red, bit 1 green, bit 0 blue)"""
    r, g, b = (255 if c & 4 else 0), (255 if c & 2 else 0), (255 if c & 1 else 0)
    return (66 * r + 129 * g + 25 * b + 128 >> 8) + 16


def pattern_psnr(i420, w, h, k):
    """Luma PSNR of a decoded I420 frame against desk-client's frame k:
    its cells are solid, so each cell's squared error comes from the
    histogram of its decoded luma."""
    cells = [[bytearray() for _ in range(8)] for _ in range(8)]
    for y in range(h):
        row, cy = i420[y * w:(y + 1) * w], y * 8 // h
        for cx in range(8):
            cells[cy][cx] += row[cx * w // 8:(cx + 1) * w // 8]
    se = 0
    for cy in range(8):
        for cx in range(8):
            c = colour_luma(pattern_colour(cx, cy, k))
            se += sum(n * (v - c) * (v - c) for v, n in Counter(cells[cy][cx]).items())
    return 99.0 if se == 0 else round(10 * math.log10(255.0 * 255 * w * h / se), 2)


def luma_plane_psnr(i420, yref):
    """Luma PSNR of a decoded I420 frame's Y plane against reference luma"""
    se = sum((a - b) * (a - b) for a, b in zip(i420, yref))
    return 99.0 if se == 0 else round(10 * math.log10(255.0 * 255 * len(yref) / se), 2)


def judge_screencast():
    """weston's screencast (a PipeWire output mirroring its DRM one) through
    pipewiresrc into vsockenc, twice: as negotiated (DMA-BUF if weston
    hands them out) and with system memory asked for. What memory weston
    handed out, what vsockenc sent, and every decoded frame against what
    weston showed: the client's frames against the exact pattern their
    number names, the others against weston's screenshot of its static
    desktop."""
    name = "screencast"
    d = read(name)
    if not d:
        check(name, False, "no results (the guest did not get this far)")
        return
    j["desktop_screencast_compositor"] = d.get("compositor")
    j["desktop_screencast_pipewire"] = d.get("pipewire")
    j["desktop_screencast_scenario_s"] = round(num(d, "scenario_ms", 0) / 1e3, 1)
    shot = None
    try:
        with open(os.path.join(out, "screencast-shot.rgb"), "rb") as f:
            shot = f.read()
    except FileNotFoundError:
        pass
    for run_name, first, key in (("screencast", 3000, "desktop_screencast_"),
                                 ("screencast-shm", 3500, "desktop_screencast_shm_")):
        judge_screencast_run(d, run_name, first, key, shot)


def judge_screencast_run(d, name, first, key, shot):
    pd = read(name + "-pipe")
    want = frames * 2
    caps = pd.get("src_caps", "none")
    mem = ("dmabuf" if "memory:DMABuf" in caps else
           "none" if caps == "none" else "shm")
    j[key + "memory"] = mem
    j[key + "caps"] = caps
    n = int(num(d, name + "_client_frames", 0))
    size = d.get(name + "_client_size", "")
    check(name, d.get(name + "_client_rc") == "0" and n == want,
          f"{d.get('compositor')} (drm,pipewire; {d.get('renderer')} renderer), "
          f"PipeWire {d.get('pipewire')}, node {d.get('node')}: the client drew "
          f"{n}/{want} frames at {size}, {d.get(name + '_client_fps')} fps "
          f"(rc={d.get(name + '_client_rc')})")
    nb = int(num(pd, "src_buffers", 0))
    rid, pix = stat(pd, "resource-id-frames"), stat(pd, "pixel-frames")
    j[key + "source_frames"] = nb
    j[key + "resource_id_frames"] = rid
    j[key + "pixel_frames"] = pix
    check(name, d.get(name + "_pipe_rc") == "0" and "error" not in pd and nb > 0
          and rid + pix == nb and (mem != "dmabuf" or rid == nb),
          f"pipewiresrc ! vsockenc ended at EOS (rc={d.get(name + '_pipe_rc')}"
          f"{', ' + pd['error'] if 'error' in pd else ''}): {nb} frames of "
          f"{mem} ({caps}), vsockenc sent {rid} as resource ids, {pix} as pixels")
    m = re.match(r"(\d+)x(\d+)$", size)
    if not m:
        check(name, False, "no output size from the client")
        return
    w, h = int(m.group(1)), int(m.group(2))
    ok_shot = shot is not None and len(shot) == w * h * 3
    check(name, ok_shot, f"weston's screenshot of its desktop: "
          f"{png_size(os.path.join(out, 'screencast-shot.png'))} "
          f"(rc {d.get('screenshooter_rc')}), {len(shot) if shot else 0} bytes of RGB")
    path = os.path.join(out, name + ".h264")
    rgb, err = decode_scanout(path, w, h)
    yuv, err2 = decode_scanout(path, w, h, fmt="I420") if rgb else (None, None)
    if not rgb or not yuv or len(rgb) != len(yuv):
        check(name, False, f"host decode failed: {err or err2 or 'no frames'}")
        j[key + "frames"] = 0
        return
    yshot = bytes(luma(shot)) if ok_shot else None
    ks, pat, desk = [], [], []
    for f, y in zip(rgb, yuv):
        k, bad = classify(read_cells(f, w, h))
        if bad == 0 and first <= k < first + want:
            ks.append(k)
            pat.append(pattern_psnr(y, w, h, k))
        else:
            desk.append(luma_plane_psnr(y[:w * h], yshot) if yshot else 0)
    psnrs = pat + desk
    distinct = sorted(set(ks))
    backwards = sum(b < a for a, b in zip(ks, ks[1:]))
    j[key + "decoded"] = len(rgb)
    j[key + "frames"] = len(distinct) if backwards == 0 else 0
    j[key + "min_psnr"] = min(psnrs)
    # pixels (1.9 MB a frame over the guest's emulated TCP) get through
    # at about 4 fps under TCG: fewer frames, each still checked
    least = 60 if key == "desktop_screencast_" else 20
    check(name, len(distinct) >= least and backwards == 0,
          f"decoded {len(rgb)} frames: {len(ks)} the client's pattern exactly, "
          f"{len(distinct)}/{want} distinct (>= {least}), in order ({backwards} "
          f"steps backwards), first {ks[0] if ks else '-'}, last "
          f"{ks[-1] if ks else '-'}; {len(desk)} of the desktop")
    with open(os.path.join(out, name + "-last.ppm"), "wb") as f:
        f.write(b"P6 %d %d 255\n" % (w, h) + rgb[-1])
    # the same measure on a frame that is not the desktop: low, or the
    # comparison could not tell pictures apart
    last_k = max((i for i, f in enumerate(rgb)
                  if classify(read_cells(f, w, h))[1] == 0), default=None)
    ctl = luma_psnr(rgb[last_k], shot) if ok_shot and last_k is not None else None
    j[key + "psnr_control"] = ctl
    check(name, min(psnrs) >= 30 and bool(desk) and ctl is not None and ctl < 20,
          f"every decoded frame is what weston showed: min luma PSNR "
          f"{min(psnrs)} dB (>= 30): the client's frames against the pattern "
          f"their number names, min {min(pat) if pat else '-'}; the "
          f"desktop's {len(desk)} against weston's screenshot, min "
          f"{min(desk) if desk else '-'} (the client's last frame against the "
          f"screenshot: {ctl} dB, < 20)")


def pct(values, p):
    """the nearest-rank P-th percentile of VALUES, None if empty"""
    v = sorted(values)
    if not v:
        return None
    return v[max(0, min(len(v) - 1, -(-len(v) * p // 100) - 1))]


def judge_desktop_latency():
    """desk-latency's frames (out/desktop-latency.txt): per frame number
    read back from a decoded picture its read and decoded times (guest
    clock) and the host's flush and access-unit times (host clock), joined
    with desk-client's draw time of that number (out/desktop-draw-times.txt,
    guest clock). Stages within one clock are differences in it; the two
    that cross clocks use the guest-minus-host offset from the time
    server, and every frame's stages add up to its draw-to-decoded time
    exactly."""
    name = "desktop-latency"
    d, m = read(name), read("desktop-measure")
    if not d:
        check(name, False, "no results (the guest did not get this far)")
        return
    drawn = {}
    try:
        with open(os.path.join(out, "desktop-draw-times.txt")) as f:
            for line in f:
                k, t = line.split()
                drawn[int(k)] = float(t)
    except (FileNotFoundError, ValueError):
        pass
    rows = []
    for line in lines_of(name, "frame"):
        try:
            k, rd, dec, flush, au = (int(x) for x in line.split())
        except ValueError:
            continue
        if k in drawn:
            rows.append((drawn[k], rd, dec, flush, au))
    n = len(rows)
    j["desktop_latency_frames"] = n
    want = frames * 2
    check(name, d.get("rc", "0") == "0" and "error" not in d and
          m.get("latency_rc") == "0" and n >= min(60, want // 2),
          f"desk-latency decoded {d.get('decoded')} of {d.get('read')} access units "
          f"in the guest, {n} with a new frame number of the client's {want} frames "
          f"(client {m.get('client_frames')} frames at {m.get('client_fps')} fps, "
          f"rc {m.get('client_rc')}; desk-latency rc {m.get('latency_rc')}"
          f"{', ' + d['error'] if 'error' in d else ''})")
    if not n:
        return
    ms = lambda us: us / 1e3
    g2g = [ms(dec - draw) for draw, rd, dec, flush, au in rows]
    stages = {"decode": [ms(dec - rd) for draw, rd, dec, flush, au in rows]}
    hosted = [r for r in rows if r[3] and r[4]]
    stages["flush_to_au"] = [(au - flush) / 1e6 for draw, rd, dec, flush, au in hosted]
    offs = []
    for k in ("clock_before", "clock_after"):
        try:
            off, rtt = (int(x) for x in d.get(k, "").split())
            offs.append((off, rtt))
        except ValueError:
            pass
    j["desktop_g2g_ms_p50"] = round(pct(g2g, 50), 1)
    j["desktop_g2g_ms_p99"] = round(pct(g2g, 99), 1)
    if len(offs) == 2 and len(hosted) == n:
        off = (offs[0][0] + offs[1][0]) / 2
        err = max(offs[0][1], offs[1][1]) / 2 + abs(offs[1][0] - offs[0][0]) / 2
        j["desktop_clock_offset_error_ms"] = round(err / 1e3, 2)
        j["desktop_clock_drift_ms"] = round((offs[1][0] - offs[0][0]) / 1e3, 2)
        stages["draw_to_flush"] = [ms(flush / 1e3 + off - draw) for draw, rd, dec, flush, au in rows]
        stages["au_to_guest_read"] = [ms(rd - (au / 1e3 + off)) for draw, rd, dec, flush, au in rows]
        # the clocks related right: nothing before its cause, beyond the error
        early = {k: sum(v < -err / 1e3 for v in stages[k])
                 for k in ("draw_to_flush", "au_to_guest_read")}
        j["desktop_stage_negative_frames"] = early
        check(name, not any(early.values()),
              f"guest and host clocks related by the time server: offset "
              f"{off / 1e3:.2f} ms (+- {err / 1e3:.2f} ms; drift over the run "
              f"{(offs[1][0] - offs[0][0]) / 1e3:.2f} ms); frames flushed before "
              f"drawn or read before encoded: {early}")
    else:
        skips.append((name, "no host clock (time server) or no host times on the "
                      "buffers: only the stages within one clock are reported"))
    order = ("draw_to_flush", "flush_to_au", "au_to_guest_read", "decode")
    mean_g2g = sum(g2g) / n
    j["desktop_stage_ms"] = {
        k: {"p50": round(pct(stages[k], 50), 1), "p99": round(pct(stages[k], 99), 1),
            "mean": round(sum(stages[k]) / len(stages[k]), 1),
            "share": round(sum(stages[k]) / len(stages[k]) / mean_g2g, 3)}
        for k in order if stages.get(k)}
    check(name, 0 < j["desktop_g2g_ms_p50"] < 5000,
          f"guest draw to decoded in the guest: p50 {j['desktop_g2g_ms_p50']} ms, "
          f"p99 {j['desktop_g2g_ms_p99']} ms; stages (p50/p99 ms): " +
          ", ".join(f"{k} {v['p50']}/{v['p99']}" for k, v in j["desktop_stage_ms"].items()))


def judge_desktop_cpu(prefix="cpu-desk-", what_src="desktop frames"):
    """guest CPU per frame with the desktop as the source (desktop_cpu in
    guest-run: decoded scanout pictures from a file; or, with PREFIX
    cpu-sc-, the screencast through pipewiresrc: screencast in guest-run)
    and of the scanout subscriber (desktop_measure)"""
    per = {}
    for what in ("source", "vsockenc", "x264"):
        run_name = prefix + what
        d = read(run_name)
        if "skipped" in d:
            skips.append((run_name, d["skipped"]))
            return
        # a live source's frames: what it pushed (vm-pipeline's src_buffers)
        nf = int(num(d, "frames", num(d, "src_buffers", 0)))
        ok = (d.get("rc") == "0" and "error" not in d and nf > 0
              and num(d, "cpu_ms") is not None)
        key = "source_only" if what == "source" else what
        per[key] = round(num(d, "cpu_ms") / nf, 2) if ok else None
        extra = ""
        if what == "vsockenc":
            pix, rid = stat(d, "pixel-frames"), stat(d, "resource-id-frames")
            ok = ok and pix + max(rid, 0) == nf
            extra = f", {pix} pixel frames, {rid} resource-id frames"
        size = d.get("size") or re.sub(r".*width=\(int\)(\d+), height=\(int\)(\d+).*",
                                       r"\1x\2", d.get("src_caps", ""))
        check(run_name, ok, f"{nf} {what_src} ({size}), CPU "
              f"{per[key]} ms per frame{extra}" +
              ("" if d.get("rc") == "0" and "error" not in d
               else f" (rc={d.get('rc')}, {d.get('error', '')})"))
        j["guest_cpu_desktop_size"] = size
        j["guest_cpu_desktop_frames"] = nf
        # a live source: each run got its own number of frames
        if prefix == "cpu-sc-":
            j.setdefault("guest_cpu_screencast_frames", {})[key] = nf
    j["guest_cpu_desktop_source"] = "pipewiresrc" if prefix == "cpu-sc-" else "filesrc"
    per["scanout_subscriber"] = None
    if "desktop" in scenarios:
        d = read("cpu-desk-scanout-subscriber")
        m = read("desktop-measure")
        sf = stat(d, "frames") if d else -1
        ok = m.get("subscriber_rc") == "0" and "error" not in d and sf > 0
        per["scanout_subscriber"] = round(num(d, "cpu_ms") / sf, 2) if ok else None
        check("cpu-desk-scanout-subscriber", ok,
              f"vsockscanoutsrc alone: {sf} frames, CPU {per['scanout_subscriber']} ms "
              f"per frame (rc={m.get('subscriber_rc')}"
              f"{', ' + d['error'] if 'error' in d else ''})")
    for k, v in per.items():
        j["guest_cpu_ms_per_frame_" + k] = v
    src, x264 = per.get("source_only"), per.get("x264")
    if None in (src, x264, per.get("vsockenc")) or x264 <= src:
        return
    own = x264 - src
    j["guest_cpu_offload_over_x264"] = round((per["vsockenc"] - src) / own, 3)
    if per["scanout_subscriber"] is not None:
        j["guest_cpu_scanout_over_x264"] = round(per["scanout_subscriber"] / own, 3)
    notes.append(("guest-cpu (desktop)",
                  f"own cost above the source: vsockenc {per['vsockenc'] - src:.2f} ms, "
                  f"x264enc {own:.2f} ms per frame, ratio "
                  f"{j['guest_cpu_offload_over_x264']} (target <= 0.1: "
                  f"{'met' if j['guest_cpu_offload_over_x264'] <= 0.1 else 'NOT met'}); "
                  f"scanout subscriber {per['scanout_subscriber']} ms, ratio "
                  f"{j.get('guest_cpu_scanout_over_x264')}"))


def gnome_reason(d, shown, decoded, err):
    """why the client's frames did not reach the host through GNOME's
    compositor, short: the first step that failed, with the compositor's
    first critical or error line when it did not start"""
    if not d:
        return "no results (the guest did not get this far)"
    log = run_file("share/out/gnome-compositor.log")
    first = next((l.strip() for l in log.splitlines()
                  if re.search(r"CRITICAL|ERROR|[Ff]ailed to (open|create|initialize|start)|"
                               r"Could not|cannot", l)), "")
    for k in ("system_bus", "logind_standin", "session_bus", "compositor_started",
              "compositor_exit", "v2_subscribed"):
        if k in d:
            return (f"{k}: {d[k]} (compositor exit {d.get('compositor_rc')})"
                    + (f"; {first[:200]}" if first else ""))
    if d.get("client_rc") != "0":
        return f"the client failed (rc={d.get('client_rc')})"
    shell = d.get("compositor", "").startswith("GNOME Shell")
    return (f"{shown} of the client's frames exactly on the host, of {decoded} "
            f"decoded{': ' + err if err else ''}"
            + (" (gnome-shell starts in its overview: the client is a thumbnail)"
               if shell else ""))


def judge_gnome():
    """GNOME's compositor (mutter, or gnome-shell with GNOME_SHELL=1) on
    scanout 0 through the desktop bridge: desktop_gnome true when it
    started and the fullscreen client's frames reached the host, exactly
    and in order; else desktop_gnome_reason."""
    name = "gnome"
    d = read(name)
    want = frames * 2
    j["gnome_compositor"] = d.get("compositor")
    j["gnome_start_s"] = round(num(d, "compositor_start_ms", 0) / 1e3, 1) or None
    j["gnome_scenario_s"] = round(num(d, "scenario_ms", 0) / 1e3, 1)
    j["gnome_client_fps"] = num(d, "client_fps")
    j["gnome_mem_used_mb"] = num(d, "mem_used_mb")
    j["gnome_mem_used_before_mb"] = num(d, "mem_used_before_mb")
    j["gnome_compositor_rss_mb"] = round(num(d, "compositor_rss_kb", 0) / 1024, 1) or None
    # what mutter flips, as QEMU's export and the bridge saw it: only when
    # gnome runs alone (scanout 0 and the desktop bridge are others' too)
    alone = scenarios == ["gnome"]
    shows = re.findall(r"helix-export: scanout 0 shows resource \d+, (\d+x\d+), "
                       r"fourcc (0x[0-9a-f]+)(?: \(virgl format (\d+)\))?", qemu_log() if alone else "")
    j["gnome_export_formats"] = sorted(set(
        f"{s[0]} {bytes.fromhex(s[1][2:])[::-1].decode('ascii', 'replace')}"
        + (f" virgl {s[2]}" if s[2] else "") for s in shows if s[1] != "0x00000000"))
    j["gnome_bridge_formats"] = sorted(set(re.findall(
        r"scanouts: scanout 0 shows (\d+x\d+ \S+)", run_file("bridge-desktop.log") if alone else "")))
    planes = lines_of(name, "planes_animating") + lines_of(name, "planes_static")
    j["gnome_planes"] = lines_of(name, "planes_animating")
    j["gnome_planes_static"] = lines_of(name, "planes_static")
    j["gnome_modifiers"] = sorted(set(re.findall(r"modifier=(0x[0-9a-f]+)", " ".join(planes))))
    n = int(num(d, "client_frames", 0))
    distinct, decoded, err = [], [], None
    m = re.match(r"(\d+)x(\d+)$", d.get("client_size", ""))
    if m:
        w, h = int(m.group(1)), int(m.group(2))
        decoded, err = decode_scanout(os.path.join(out, "gnome.h264"), w, h)
        ks = []
        for f in decoded or []:
            k, bad = classify(read_cells(f, w, h))
            if bad == 0 and k < want:
                ks.append(k)
        distinct = sorted(set(ks))
        backwards = sum(b < a for a, b in zip(ks, ks[1:]))
        if backwards:
            distinct = []
    j["gnome_frames"] = len(distinct)
    j["gnome_decoded"] = len(decoded or [])
    ran = d.get("client_rc") == "0" and n == want and len(distinct) >= 60
    j["desktop_gnome"] = ran
    if not ran:
        j["desktop_gnome_reason"] = gnome_reason(d, len(distinct), len(decoded or []), err)
    if not j["gnome_start_s"]:
        check(name, False, f"{d.get('compositor')} did not start: "
              f"{j['desktop_gnome_reason']}")
        return
    check(name, ran,
          f"{d.get('compositor')} started in {j['gnome_start_s']} s and showed the "
          f"fullscreen client's {n}/{want} frames at {d.get('client_size')}, "
          f"{d.get('client_fps')} fps (rc={d.get('client_rc')}); the host decoded "
          f"{len(decoded or [])} frames, {len(distinct)} distinct of the client's "
          f"pattern exactly, in order (>= 60)"
          + ("" if ran else f"; reason: {j['desktop_gnome_reason']}"))
    if alone:
        notes.append((name, f"export: {', '.join(j['gnome_export_formats']) or 'none'}; "
                      f"bridge: {', '.join(j['gnome_bridge_formats']) or 'none'}"))
    notes.append((name, f"KMS planes: {'; '.join(planes) or 'none seen'}; memory used "
                  f"{j['gnome_mem_used_before_mb']} MB before, {j['gnome_mem_used_mb']} MB "
                  f"with the compositor (its RSS {j['gnome_compositor_rss_mb']} MB)"))


notes = []
if "desktop" in scenarios:
    judge_desktop()
    judge_desktop_latency()
    if "screencast" not in scenarios:
        judge_desktop_cpu()
if "screencast" in scenarios:
    judge_screencast()
    judge_desktop_cpu("cpu-sc-", "screencast frames")
if "desktop" in scenarios:
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import judge_cursor
    judge_cursor.judge(out, read("desktop"), j, check)
if "gnome" in scenarios:
    judge_gnome()

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
for s, what in skips:
    print(f"  SKIP  {s}: {what}")
for s, what in notes:
    print(f"  INFO  {s}: {what}")
j["skipped"] = [s for s, _ in skips]
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
