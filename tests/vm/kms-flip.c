/* kms-flip: page-flips a known pattern on one virtio-gpu scanout of the
 * vm-test guest (scripts/vm-test, scenario "scanout"), as a compositor
 * would: the frames reach QEMU as SET_SCANOUT and RESOURCE_FLUSH, which
 * the helix export reports to the host bridge.
 *
 *   kms-flip [--device /dev/dri/card0] [--connector N] [--mode WxH]
 *            [--frames N] [--fps F] [--hold-ms MS] [--wait-ms MS]
 *            [--method pageflip|setcrtc]
 *
 * --connector N is the N-th connector of the card, which on virtio-gpu is
 * scanout N (connector Virtual-(N+1)); --wait-ms waits that long for it to
 * become connected (a hotplug). The mode is the connector's preferred one
 * unless --mode names another of its modes. Two XRGB8888 dumb buffers;
 * frame 0 is shown by the modeset, frames 1..N-1 by page flips (each
 * waits for its flip event), paced at --fps; the last frame stays up for
 * --hold-ms. Where page flip is refused the frames go by SetCrtc and
 * DirtyFB instead. Needs DRM master: nothing else may hold the card.
 *
 * The pattern (tests/vm/judge.py regenerates it): an 8x8 grid of cells,
 * cell (cx, cy) covering x in [cx*W/8, (cx+1)*W/8) and y likewise, each
 * cell one of 8 colours, colour c = (R, G, B) = 255 * (c>>2 & 1, c>>1 & 1,
 * c & 1). For frame k:
 *   rows 0-5: c = (cx + cy + k) mod 8        (moves one cell per frame)
 *   row 6:    c = cx                          (fixed: geometry and colours)
 *   row 7:    c = (k >> 3*(7-cx)) & 7         (k in base 8, high digit left)
 * Large flat blocks of saturated colours, so that an H.264 round trip
 * cannot turn one colour into another, and every frame names itself.
 *
 * Prints key=value lines on stdout (mode=, method=, flipped=, wall_ms=,
 * fps=) and one line per phase on stderr. Exit 0 when every frame was
 * shown.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>
#include <xf86drm.h>
#include <xf86drmMode.h>
#include <drm_fourcc.h>

#define GRID 8

typedef struct
{
  uint32_t handle, pitch, fb;
  uint64_t size;
  uint32_t *map;
} Buffer;

typedef struct
{
  const char *device;
  int connector;
  unsigned want_w, want_h;
  int frames;
  double fps;
  int hold_ms;
  int wait_ms;
  int setcrtc;
} Options;

static double
now_ms (void)
{
  struct timespec ts;

  clock_gettime (CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static void
sleep_until_ms (double t)
{
  struct timespec ts = { (time_t) (t / 1e3),
    (long) ((t - (time_t) (t / 1e3) * 1e3) * 1e6)
  };

  while (clock_nanosleep (CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR);
}

/* The pattern's colour index of cell (cx, cy) in frame k (see the top). */
static unsigned
cell_colour (unsigned cx, unsigned cy, unsigned k)
{
  if (cy < 6)
    return (cx + cy + k) & 7;
  if (cy == 6)
    return cx;
  return (k >> (3 * (7 - cx))) & 7;
}

static uint32_t
xrgb (unsigned c)
{
  return 0xff000000u | (c & 4 ? 0xff0000u : 0) | (c & 2 ? 0xff00u : 0) |
      (c & 1 ? 0xffu : 0);
}

static void
fill (Buffer * b, unsigned w, unsigned h, unsigned k)
{
  for (unsigned y = 0; y < h; y++) {
    uint32_t *row = (uint32_t *) ((uint8_t *) b->map + (size_t) y * b->pitch);
    unsigned cy = y * GRID / h;

    for (unsigned cx = 0; cx < GRID; cx++) {
      uint32_t px = xrgb (cell_colour (cx, cy, k));
      unsigned x1 = (cx + 1) * w / GRID;

      for (unsigned x = cx * w / GRID; x < x1; x++)
        row[x] = px;
    }
  }
}

static int
make_buffer (int fd, unsigned w, unsigned h, Buffer * b)
{
  struct drm_mode_create_dumb cd = {.width = w,.height = h,.bpp = 32 };
  struct drm_mode_map_dumb md = { 0 };
  uint32_t handles[4] = { 0 }, pitches[4] = { 0 }, offsets[4] = { 0 };

  if (drmIoctl (fd, DRM_IOCTL_MODE_CREATE_DUMB, &cd) != 0)
    return -errno;
  b->handle = cd.handle;
  b->pitch = cd.pitch;
  b->size = cd.size;
  handles[0] = cd.handle;
  pitches[0] = cd.pitch;
  if (drmModeAddFB2 (fd, w, h, DRM_FORMAT_XRGB8888, handles, pitches,
          offsets, &b->fb, 0) != 0)
    return -errno;
  md.handle = cd.handle;
  if (drmIoctl (fd, DRM_IOCTL_MODE_MAP_DUMB, &md) != 0)
    return -errno;
  b->map = mmap (NULL, cd.size, PROT_READ | PROT_WRITE, MAP_SHARED, fd,
      md.offset);
  return b->map == MAP_FAILED ? -errno : 0;
}

/* The connector, waiting up to opt->wait_ms for it to be connected. */
static drmModeConnector *
find_connector (int fd, const Options * opt)
{
  double deadline = now_ms () + opt->wait_ms;

  for (;;) {
    drmModeRes *res = drmModeGetResources (fd);
    drmModeConnector *c = NULL;

    if (res && opt->connector < res->count_connectors)
      c = drmModeGetConnector (fd, res->connectors[opt->connector]);
    drmModeFreeResources (res);
    if (c && c->connection == DRM_MODE_CONNECTED && c->count_modes > 0)
      return c;
    if (now_ms () >= deadline) {
      if (c)
        fprintf (stderr, "kms: connector %d: status %d, %d modes\n",
            opt->connector, c->connection, c->count_modes);
      drmModeFreeConnector (c);
      return NULL;
    }
    drmModeFreeConnector (c);
    usleep (100000);
  }
}

static drmModeModeInfo *
pick_mode (drmModeConnector * c, const Options * opt)
{
  drmModeModeInfo *pref = &c->modes[0];

  for (int i = 0; i < c->count_modes; i++) {
    if (opt->want_w && c->modes[i].hdisplay == opt->want_w &&
        c->modes[i].vdisplay == opt->want_h)
      return &c->modes[i];
    if (c->modes[i].type & DRM_MODE_TYPE_PREFERRED)
      pref = &c->modes[i];
  }
  if (opt->want_w)
    fprintf (stderr, "kms: no %ux%u mode, using the preferred one\n",
        opt->want_w, opt->want_h);
  return pref;
}

/* A CRTC the connector can drive, preferring the one of the same index
 * (virtio-gpu: CRTC N drives scanout N). */
static uint32_t
pick_crtc (int fd, drmModeConnector * c, int index)
{
  drmModeRes *res = drmModeGetResources (fd);
  uint32_t possible = 0, crtc = 0;

  for (int i = 0; i < c->count_encoders; i++) {
    drmModeEncoder *e = drmModeGetEncoder (fd, c->encoders[i]);

    if (e)
      possible |= e->possible_crtcs;
    drmModeFreeEncoder (e);
  }
  if (index < res->count_crtcs && (possible & (1u << index)))
    crtc = res->crtcs[index];
  for (int i = 0; !crtc && i < res->count_crtcs; i++)
    if (possible & (1u << i))
      crtc = res->crtcs[i];
  drmModeFreeResources (res);
  return crtc;
}

static void
flip_done (int fd, unsigned seq, unsigned s, unsigned us, void *data)
{
  *(int *) data = 1;
}

/* Page flip to @fb and wait (1 s at most) for its event. */
static int
page_flip (int fd, uint32_t crtc, uint32_t fb)
{
  drmEventContext ev = {.version = 2,.page_flip_handler = flip_done };
  struct pollfd p = {.fd = fd,.events = POLLIN };
  int done = 0;

  if (drmModePageFlip (fd, crtc, fb, DRM_MODE_PAGE_FLIP_EVENT, &done) != 0)
    return -errno;
  while (!done) {
    if (poll (&p, 1, 1000) <= 0)
      return -ETIMEDOUT;
    drmHandleEvent (fd, &ev);
  }
  return 0;
}

static int
set_crtc (int fd, uint32_t crtc, uint32_t fb, uint32_t conn,
    drmModeModeInfo * mode)
{
  if (drmModeSetCrtc (fd, crtc, fb, 0, 0, &conn, 1, mode) != 0)
    return -errno;
  /* some drivers only push damage: say the whole buffer changed */
  drmModeDirtyFB (fd, fb, NULL, 0);
  return 0;
}

static void
parse_args (int argc, char **argv, Options * o)
{
  static const struct option lo[] = {
    {"device", 1, NULL, 'd'}, {"connector", 1, NULL, 'c'},
    {"mode", 1, NULL, 'm'}, {"frames", 1, NULL, 'n'}, {"fps", 1, NULL, 'f'},
    {"hold-ms", 1, NULL, 'H'}, {"wait-ms", 1, NULL, 'w'},
    {"method", 1, NULL, 'M'}, {NULL, 0, NULL, 0}
  };
  int ch;

  *o = (Options) {
  .device = "/dev/dri/card0",.frames = 60,.fps = 30,.hold_ms = 1000};
  while ((ch = getopt_long (argc, argv, "", lo, NULL)) != -1) {
    switch (ch) {
      case 'd':
        o->device = optarg;
        break;
      case 'c':
        o->connector = atoi (optarg);
        break;
      case 'm':
        sscanf (optarg, "%ux%u", &o->want_w, &o->want_h);
        break;
      case 'n':
        o->frames = atoi (optarg);
        break;
      case 'f':
        o->fps = atof (optarg);
        break;
      case 'H':
        o->hold_ms = atoi (optarg);
        break;
      case 'w':
        o->wait_ms = atoi (optarg);
        break;
      case 'M':
        o->setcrtc = !strcmp (optarg, "setcrtc");
        break;
      default:
        fprintf (stderr, "kms-flip: see the source's header\n");
        exit (64);
    }
  }
  if (o->frames < 1 || o->fps <= 0) {
    fprintf (stderr, "kms-flip: --frames >= 1, --fps > 0\n");
    exit (64);
  }
}

/* Shows frames 1..N-1 alternately from the two buffers; returns how many
 * frames were shown in all (frame 0 included). */
static int
flip_frames (int fd, const Options * o, Buffer * b, uint32_t crtc,
    uint32_t conn, drmModeModeInfo * mode)
{
  double t0 = now_ms ();
  int i;

  for (i = 1; i < o->frames; i++) {
    Buffer *next = &b[i & 1];
    int r;

    fill (next, mode->hdisplay, mode->vdisplay, i);
    sleep_until_ms (t0 + i * 1e3 / o->fps);
    r = o->setcrtc ? -ENOSYS : page_flip (fd, crtc, next->fb);
    if (r == -EINVAL || r == -ENOSYS || r == -EOPNOTSUPP) {
      if (!o->setcrtc)
        fprintf (stderr, "kms: page flip refused (%s): SetCrtc+DirtyFB\n",
            strerror (-r));
      ((Options *) o)->setcrtc = 1;
      r = set_crtc (fd, crtc, next->fb, conn, mode);
    }
    if (r != 0) {
      fprintf (stderr, "kms: frame %d: %s\n", i, strerror (-r));
      break;
    }
  }
  return i;
}

int
main (int argc, char **argv)
{
  Options o;
  Buffer b[2] = { 0 };
  drmModeConnector *conn;
  drmModeModeInfo *mode;
  drmVersion *ver;
  uint32_t crtc;
  double t0;
  int fd, shown;

  parse_args (argc, argv, &o);
  fd = open (o.device, O_RDWR | O_CLOEXEC);
  if (fd < 0) {
    fprintf (stderr, "kms: %s: %s\n", o.device, strerror (errno));
    return 1;
  }
  ver = drmGetVersion (fd);
  /* the first opener of a card with no master is master; say if not */
  if (!drmIsMaster (fd) && drmSetMaster (fd) != 0)
    fprintf (stderr, "kms: not DRM master (%s): another process holds %s\n",
        strerror (errno), o.device);
  fprintf (stderr, "kms: opened %s: driver %s, master %d\n", o.device,
      ver ? ver->name : "?", drmIsMaster (fd));
  drmFreeVersion (ver);

  conn = find_connector (fd, &o);
  if (!conn) {
    fprintf (stderr, "kms: connector %d is not connected\n", o.connector);
    return 1;
  }
  mode = pick_mode (conn, &o);
  crtc = pick_crtc (fd, conn, o.connector);
  fprintf (stderr, "kms: connector %d (id %u): %dx%d@%d, crtc %u\n",
      o.connector, conn->connector_id, mode->hdisplay, mode->vdisplay,
      mode->vrefresh, crtc);
  printf ("mode=%dx%d\n", mode->hdisplay, mode->vdisplay);

  for (int i = 0; i < 2; i++) {
    int r = make_buffer (fd, mode->hdisplay, mode->vdisplay, &b[i]);

    if (r != 0) {
      fprintf (stderr, "kms: dumb buffer %d: %s\n", i, strerror (-r));
      return 1;
    }
  }
  fprintf (stderr, "kms: 2 dumb buffers XRGB8888, pitch %u\n", b[0].pitch);

  fill (&b[0], mode->hdisplay, mode->vdisplay, 0);
  t0 = now_ms ();
  if (set_crtc (fd, crtc, b[0].fb, conn->connector_id, mode) != 0) {
    fprintf (stderr, "kms: modeset: %s\n", strerror (errno));
    return 1;
  }
  fprintf (stderr, "kms: modeset: frame 0 shown\n");

  shown = flip_frames (fd, &o, b, crtc, conn->connector_id, mode);
  printf ("method=%s\nflipped=%d\nwall_ms=%.1f\nfps=%.1f\n",
      o.setcrtc ? "setcrtc" : "pageflip", shown, now_ms () - t0,
      shown > 1 ? (shown - 1) * 1e3 / (now_ms () - t0) : 0.0);
  fprintf (stderr, "kms: %d/%d frames shown; holding the last %d ms\n",
      shown, o.frames, o.hold_ms);
  fflush (stdout);
  usleep (o.hold_ms * 1000);
  /* closing the card hands the scanout back to the console */
  drmModeFreeConnector (conn);
  close (fd);
  return shown == o.frames ? 0 : 1;
}
