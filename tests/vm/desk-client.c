/* desk-client: a Wayland client for the vm-test "desktop" scenario. It
 * asks the compositor (weston) for a fullscreen xdg_toplevel and draws
 * tests/vm/kms-flip.c's pattern into wl_shm buffers, frame k naming
 * itself, so that tests/vm/judge.py can tell every decoded frame of the
 * compositor's scanout by its number (with --times, it also writes down
 * when it drew each: tests/vm/desk-latency.c reads the numbers back from
 * the decoded stream). Then it goes away and leaves the
 * compositor's own desktop, a static scene.
 *
 *   desk-client [--frames N] [--first K] [--fps F] [--hold-ms MS]
 *               [--timeout-ms MS] [--times FILE]
 *
 * The frames are numbered K to K+N-1 (--first, default 0), so that a
 * second run can be told from the first. The size is what the compositor's fullscreen configure says (the
 * output's). Each frame is committed after the previous one's frame
 * callback (the compositor is ready for another), at most at --fps; the
 * last stays up for --hold-ms. Every wait is bounded by --timeout-ms in
 * all. --times FILE: one line "K T" per frame, T the guest's
 * CLOCK_MONOTONIC in µs just before frame K's commit.
 *
 * Prints key=value lines on stdout (size=, frames=, wall_ms=, fps=) and
 * one line per phase on stderr. Exit 0 when every frame was committed
 * and the compositor called back for the last one.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#define _GNU_SOURCE
#include <errno.h>
#include <getopt.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>
#include <wayland-client.h>
#include "xdg-shell-client-protocol.h"

#define GRID 8

typedef struct
{
  struct wl_buffer *buffer;
  uint32_t *map;
  int free;                     /* not held by the compositor */
} Buffer;

typedef struct
{
  struct wl_compositor *compositor;
  struct wl_shm *shm;
  struct xdg_wm_base *wm_base;
  int width, height, configured, closed, frame_done;
} App;

static double
now_ms (void)
{
  struct timespec ts;

  clock_gettime (CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

/* The pattern's colour index of cell (cx, cy) in frame k (kms-flip.c). */
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
fill (uint32_t * map, unsigned w, unsigned h, unsigned k)
{
  for (unsigned y = 0; y < h; y++) {
    uint32_t *row = map + (size_t) y * w;
    unsigned cy = y * GRID / h;

    for (unsigned cx = 0; cx < GRID; cx++) {
      uint32_t px = xrgb (cell_colour (cx, cy, k));
      unsigned x1 = (cx + 1) * w / GRID;

      for (unsigned x = cx * w / GRID; x < x1; x++)
        row[x] = px;
    }
  }
}

static void
wm_base_ping (void *data, struct xdg_wm_base *b, uint32_t serial)
{
  xdg_wm_base_pong (b, serial);
}

static const struct xdg_wm_base_listener wm_base_listener = {
  wm_base_ping,
};

static void
registry_global (void *data, struct wl_registry *r, uint32_t name,
    const char *iface, uint32_t version)
{
  App *a = data;

  if (!strcmp (iface, wl_compositor_interface.name))
    a->compositor = wl_registry_bind (r, name, &wl_compositor_interface, 4);
  else if (!strcmp (iface, wl_shm_interface.name))
    a->shm = wl_registry_bind (r, name, &wl_shm_interface, 1);
  else if (!strcmp (iface, xdg_wm_base_interface.name)) {
    a->wm_base = wl_registry_bind (r, name, &xdg_wm_base_interface, 1);
    xdg_wm_base_add_listener (a->wm_base, &wm_base_listener, a);
  }
}

static void
registry_remove (void *data, struct wl_registry *r, uint32_t name)
{
}

static const struct wl_registry_listener registry_listener = {
  registry_global, registry_remove,
};

static void
surface_configure (void *data, struct xdg_surface *s, uint32_t serial)
{
  App *a = data;

  xdg_surface_ack_configure (s, serial);
  a->configured = 1;
}

static const struct xdg_surface_listener surface_listener = {
  surface_configure,
};

static void
toplevel_configure (void *data, struct xdg_toplevel *t, int32_t w,
    int32_t h, struct wl_array *states)
{
  App *a = data;

  if (w > 0 && h > 0) {
    a->width = w;
    a->height = h;
  }
}

static void
toplevel_close (void *data, struct xdg_toplevel *t)
{
  ((App *) data)->closed = 1;
}

static const struct xdg_toplevel_listener toplevel_listener = {
  toplevel_configure, toplevel_close,
};

static void
buffer_release (void *data, struct wl_buffer *b)
{
  ((Buffer *) data)->free = 1;
}

static const struct wl_buffer_listener buffer_listener = {
  buffer_release,
};

static void
frame_done (void *data, struct wl_callback *cb, uint32_t time)
{
  ((App *) data)->frame_done = 1;
  wl_callback_destroy (cb);
}

static const struct wl_callback_listener frame_listener = {
  frame_done,
};

/* Dispatches the compositor's events until *flag is set (flag NULL: until
 * the time given), bounded by the deadline; 0 on success. */
static int
dispatch_until (struct wl_display *d, int *flag, double until_ms,
    double deadline_ms)
{
  for (;;) {
    double t = now_ms (), end = flag ? deadline_ms : until_ms;
    struct pollfd p = { wl_display_get_fd (d), POLLIN, 0 };

    if (wl_display_dispatch_pending (d) < 0)
      return -1;
    if (flag && *flag)
      return 0;
    if (t >= end)
      return flag ? -1 : 0;
    if (wl_display_flush (d) < 0 && errno != EAGAIN)
      return -1;
    if (poll (&p, 1, (int) (end - t) + 1) < 0 && errno != EINTR)
      return -1;
    if ((p.revents & POLLIN) && wl_display_dispatch (d) < 0)
      return -1;
  }
}

static int
make_buffer (App * a, Buffer * b)
{
  size_t size = (size_t) a->width * a->height * 4;
  int fd = memfd_create ("desk-client", MFD_CLOEXEC);
  struct wl_shm_pool *pool;

  if (fd < 0 || ftruncate (fd, size) < 0)
    return -1;
  b->map = mmap (NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (b->map == MAP_FAILED)
    return -1;
  pool = wl_shm_create_pool (a->shm, fd, size);
  b->buffer = wl_shm_pool_create_buffer (pool, 0, a->width, a->height,
      a->width * 4, WL_SHM_FORMAT_XRGB8888);
  wl_buffer_add_listener (b->buffer, &buffer_listener, b);
  b->free = 1;
  wl_shm_pool_destroy (pool);
  close (fd);
  return 0;
}

int
main (int argc, char **argv)
{
  static const struct option opts[] = {
    {"frames", 1, NULL, 'n'}, {"first", 1, NULL, 'k'}, {"fps", 1, NULL, 'f'},
    {"hold-ms", 1, NULL, 'h'}, {"timeout-ms", 1, NULL, 't'},
    {"times", 1, NULL, 'T'}, {0}
  };
  FILE *times = NULL;
  unsigned frames = 120, first = 0, k;
  double fps = 30, hold_ms = 1000, timeout_ms = 60000, t0, deadline;
  App a = { 0 };
  Buffer bufs[2] = { 0 };
  struct wl_display *d;
  struct wl_registry *reg;
  struct wl_surface *surface;
  struct xdg_surface *xs;
  struct xdg_toplevel *top;
  int c;

  while ((c = getopt_long (argc, argv, "", opts, NULL)) != -1) {
    switch (c) {
      case 'n':
        frames = strtoul (optarg, NULL, 10);
        break;
      case 'k':
        first = strtoul (optarg, NULL, 10);
        break;
      case 'f':
        fps = atof (optarg);
        break;
      case 'h':
        hold_ms = atof (optarg);
        break;
      case 't':
        timeout_ms = atof (optarg);
        break;
      case 'T':
        if (!(times = fopen (optarg, "w"))) {
          fprintf (stderr, "desk-client: %s: %s\n", optarg, strerror (errno));
          return 1;
        }
        break;
      default:
        fprintf (stderr, "usage: desk-client [--frames N] [--first K] "
            "[--fps F] [--hold-ms MS] [--timeout-ms MS] [--times FILE]\n");
        return 64;
    }
  }
  if (!frames || fps <= 0) {
    fprintf (stderr, "desk-client: --frames and --fps must be > 0\n");
    return 64;
  }
  deadline = now_ms () + timeout_ms;
  d = wl_display_connect (NULL);
  if (!d) {
    fprintf (stderr, "desk-client: cannot connect to the compositor\n");
    return 1;
  }
  reg = wl_display_get_registry (d);
  wl_registry_add_listener (reg, &registry_listener, &a);
  wl_display_roundtrip (d);
  if (!a.compositor || !a.shm || !a.wm_base) {
    fprintf (stderr, "desk-client: the compositor lacks wl_compositor, "
        "wl_shm or xdg_wm_base\n");
    return 1;
  }
  surface = wl_compositor_create_surface (a.compositor);
  xs = xdg_wm_base_get_xdg_surface (a.wm_base, surface);
  xdg_surface_add_listener (xs, &surface_listener, &a);
  top = xdg_surface_get_toplevel (xs);
  xdg_toplevel_add_listener (top, &toplevel_listener, &a);
  xdg_toplevel_set_title (top, "desk-client");
  xdg_toplevel_set_fullscreen (top, NULL);
  wl_surface_commit (surface);
  if (dispatch_until (d, &a.configured, 0, deadline) < 0 || !a.width) {
    fprintf (stderr, "desk-client: no fullscreen configure with a size "
        "from the compositor\n");
    return 1;
  }
  fprintf (stderr, "desk-client: fullscreen %dx%d\n", a.width, a.height);
  if (make_buffer (&a, &bufs[0]) < 0 || make_buffer (&a, &bufs[1]) < 0) {
    fprintf (stderr, "desk-client: shm buffers: %s\n", strerror (errno));
    return 1;
  }
  t0 = now_ms ();
  for (k = 0; k < frames && !a.closed; k++) {
    Buffer *b = &bufs[k & 1];
    struct wl_callback *cb;

    /* at most --fps, and never before the compositor took the last one */
    if (dispatch_until (d, NULL, t0 + k * 1e3 / fps, deadline) < 0 ||
        (k > 0 && dispatch_until (d, &a.frame_done, 0, deadline) < 0)) {
      fprintf (stderr, "desk-client: no frame callback for frame %u\n", k - 1);
      break;
    }
    /* the compositor releases a buffer once it has a newer one */
    if (dispatch_until (d, &b->free, 0, deadline) < 0) {
      fprintf (stderr, "desk-client: buffer %u never released\n", k & 1);
      break;
    }
    fill (b->map, a.width, a.height, first + k);
    if (times)
      fprintf (times, "%u %.0f\n", first + k, now_ms () * 1e3);
    b->free = 0;
    a.frame_done = 0;
    wl_surface_attach (surface, b->buffer, 0, 0);
    wl_surface_damage_buffer (surface, 0, 0, a.width, a.height);
    cb = wl_surface_frame (surface);
    wl_callback_add_listener (cb, &frame_listener, &a);
    wl_surface_commit (surface);
    wl_display_flush (d);
  }
  if (k == frames && dispatch_until (d, &a.frame_done, 0, deadline) < 0) {
    fprintf (stderr, "desk-client: no frame callback for the last frame\n");
    k--;
  }
  printf ("size=%dx%d\nframes=%u\nwall_ms=%.1f\nfps=%.1f\n", a.width,
      a.height, k, now_ms () - t0, k * 1e3 / (now_ms () - t0));
  fflush (stdout);
  fprintf (stderr, "desk-client: %u frames, holding the last %.0f ms\n", k,
      hold_ms);
  dispatch_until (d, NULL, now_ms () + hold_ms, deadline);
  xdg_toplevel_destroy (top);
  xdg_surface_destroy (xs);
  wl_surface_destroy (surface);
  wl_display_roundtrip (d);
  wl_display_disconnect (d);
  if (times)
    fclose (times);
  return k == frames ? 0 : 1;
}
