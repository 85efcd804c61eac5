"""The desktop scenario's pointer (issue 21), judged for tests/vm/judge.py:
the moves tests/vm/cursor-inject.py made through QEMU's tablet against
what a cursor=true draw-cursor=true subscriber in the guest got (its
vm-pipeline lines in desktop-cursor.txt, its decoded frames in
desktop-cursor.i420)."""
import os

AXIS = 32768      # QEMU's absolute axes: 0..32767
TOLERANCE = 2     # px, a received position from an injected one
DIFF = 40         # luma steps: a pixel the pointer changed, not the codec
MARGIN = 8        # px around a changed area that still counts as "at" a move


def lines(path, key):
    try:
        with open(path) as f:
            return [ln.split("=", 1)[1].split() for ln in f
                    if ln.startswith(key + "=")]
    except FileNotFoundError:
        return []


def changed_box(a, b, w):
    """bounding box (x0, y0, x1, y1) of the luma pixels that differ by more
    than DIFF, or None"""
    box = None
    for i in range(len(a)):
        if abs(a[i] - b[i]) > DIFF:
            x, y = i % w, i // w
            box = (x, y, x, y) if box is None else (
                min(box[0], x), min(box[1], y), max(box[2], x), max(box[3], y))
    return box


def near(box, points):
    """one of the points inside box, widened by MARGIN"""
    return any(box[0] - MARGIN <= x <= box[2] + MARGIN and
               box[1] - MARGIN <= y <= box[3] + MARGIN for x, y in points)


def judge(out, d, j, check):
    name = "desktop-cursor"
    t = os.path.join(out, "desktop-cursor.txt")
    mode = d.get("cursor_mode")
    if not mode:
        check(name, False, "no results (the guest did not get this far)")
        return
    w, h = map(int, mode.split("x"))
    try:
        with open(os.path.join(out, "cursor-injected.txt")) as f:
            injected = [tuple(map(int, ln.split())) for ln in f if ln.strip()]
    except FileNotFoundError:
        injected = []
    want = [(x * w / AXIS, y * h / AXIS) for x, y in injected]
    images = [tuple(map(float, v[1:])) for v in lines(t, "cursor_image")]
    pos = [(int(v[1]), int(v[2])) for v in lines(t, "cursor_position")
           if v[3] == "1"]
    j["cursor_planes"] = [" ".join(v) for v in
                          lines(os.path.join(out, "desktop.txt"), "planes_cursor")]
    j["cursor_shapes"] = len(images)
    j["cursor_image"] = ["%dx%d hot %d,%d" % v for v in images]
    j["cursor_moves_injected"] = len(injected)
    j["cursor_positions"] = len(pos)
    # every injected point, in order, among the positions (coalescing may
    # drop ones in between, not these: they are 0.6 s apart). weston's
    # legacy KMS cursor (drmModeSetCursor) passes no hotspot: the plane's
    # position is the image's top left, so a received position is the
    # pointer minus weston's hotspot of the shape shown, an offset that
    # lies inside the image (0 <= offset < its size)
    size = max((max(iw, ih) for iw, ih, _, _ in images), default=0)
    k, got, worst, offsets = 0, 0, 0.0, []
    for ex, ey in want:
        hit = next((i for i, (x, y) in enumerate(pos[k:])
                    if 0 <= ex - x < size + TOLERANCE and
                    0 <= ey - y < size + TOLERANCE), None)
        if hit is None:
            worst = float("inf")
            continue
        x, y = pos[k + hit]
        got, k = got + 1, k + hit + 1
        offsets.append("%g,%g" % (round(ex - x, 1), round(ey - y, 1)))
        worst = max(worst, ((x - ex) ** 2 + (y - ey) ** 2) ** 0.5)
    j["cursor_moves_received"] = got
    j["cursor_max_position_error_px"] = round(worst, 1) if worst != float("inf") else None
    j["cursor_position_offsets"] = offsets
    check(name, any("plane-0" not in p for p in j["cursor_planes"]),
          f"the pointer on a plane of its own: {j['cursor_planes']}")
    check(name, d.get("cursor_subscriber_rc") == "0",
          "the cursor=true draw-cursor=true subscriber reached EOS")
    check(name, bool(images) and all(1 <= iw <= 256 and 1 <= ih <= 256 and
                               hx < iw and hy < ih for iw, ih, hx, hy in images),
          f"the compositor set a pointer shape: {j['cursor_image']} "
          "(1..256 px, hotspot inside)")
    check(name, bool(injected) and got == len(injected),
          f"{got} of {len(injected)} injected moves received in order, each "
          f"with the pointer inside the image placed there (pointer minus "
          f"position: {offsets}; worst {j['cursor_max_position_error_px']} px; "
          f"{len(pos)} visible positions)")
    # drawn: each decoded frame against the one before it
    size = w * h * 3 // 2
    checked = ok = moves = 0
    prev = None
    try:
        f = open(os.path.join(out, "desktop-cursor.i420"), "rb")
    except FileNotFoundError:
        f = None
    while f:
        fr = f.read(size)
        if len(fr) < size:
            break
        y = fr[:w * h]
        box = changed_box(prev, y, w) if prev is not None else None
        prev = y
        if box is None:
            continue
        checked += 1
        # at an injected move, or at a received position, or where weston
        # puts the pointer when it starts (0,0): the bridge draws it there
        # into the frames, but sends a subscriber at most one position per
        # interval, the newest, so a first move right after it can replace
        # 0,0 before it was sent (seen: a frame changed at (4,2)-(17,27),
        # the first position received 97,74, 10 ms after the image)
        at_move = near(box, want)
        moves += at_move
        ok += at_move or near(box, pos + [(0, 0)])
    j["cursor_composited_frames_checked"] = checked
    j["cursor_composited_ok"] = ok
    j["cursor_composited_at_moves"] = moves
    check(name, moves >= len(injected) // 2 and ok == checked,
          f"drawn: {checked} decoded frames changed, {ok} of them around a "
          f"received position (all), {moves} around an injected one "
          f"(>= {len(injected) // 2})")
