/* helix-standin-vmm: a stand-in for QEMU's virtio-gpu-gl, for tests, demos
 * and benchmarks of the helix export.
 *
 * It owns a real virglrenderer (surfaceless EGL; Mesa llvmpipe on a
 * machine without a GPU), creates 2D texture resources the way a guest
 * compositor's virgl driver does (resource_create + attach_iov of "guest
 * memory"), writes moving test content into them with transfer_write_iov,
 * and serves them through the helix export module on a UNIX socket.
 *
 * With --bridge it also plays the guest: HELLO (v2), then one
 * FRAME_REQUEST2 per frame naming the resource (no pixels), and it reads
 * the access units back (--output writes them, Annex B, to a file).
 *
 * With --serve-only it only serves, and reads commands on stdin (one per
 * line) so a test can drive the "guest":
 *   frame N        write test frame N into every resource
 *   create W H [F] create one more resource, of virgl format F (default:
 *                  --format), filled with frame 0 (prints "CREATED id")
 *   destroy ID     unref a resource
 *   stall MS       print STALLING, block the renderer thread for MS ms
 *                  (a hung VMM), print OK
 *   stats          print "STATS key=value ..."
 *   export off     stop the export (its clients are disconnected, the
 *                  socket removed: the VMM's export side going away);
 *                  the resources stay
 *   export on      serve the export again on the same socket
 *   quit           (or end of input) exit
 * and, for the scanouts below:
 *   scanout K enable W H [HZ]  connect scanout K showing W x H, flipping at
 *                  HZ (default 0: one flip, then a static screen)
 *   scanout K disable          disconnect it
 *   flip K [N]     N flips (default 1) of scanout K now
 *   rate K HZ      flip K at HZ from now on (0 = stop: a static screen)
 *   resize K W H   new resources of W x H on scanout K, shown and flushed
 *   cursor K W H HX HY  a new cursor image on scanout K: W x H, hotspot
 *                  HX, HY, image serial S (counted from 1) drawn by
 *                  helix_test_cursor_pixel (any size the export takes;
 *                  others are refused)
 *   move K X Y [hidden]  the pointer of scanout K to X, Y (visible unless
 *                  "hidden")
 *   moves K N X Y DX DY  N moves of scanout K's pointer back to back (a
 *                  flood): X, Y, then X + DX, Y + DY, ... (prints the last
 *                  as MOVED)
 *   scribble K on|off  from now on, right after each flush of scanout K
 *                  (before the export can answer anyone), draw test frame
 *                  F + 128 into the resource just flushed with frame F: a
 *                  guest drawing into the shown buffer; whoever reads the
 *                  resource later than the flush sees the scribble (prints
 *                  "OK scribble K on|off")
 * each printing one line once done: "SCANOUT K enabled=E resource=R
 * width=W height=H", "FLIPPED K frames=F resource=R" (F: flips of K so
 * far, R: shown now), "RATE K hz=HZ", "CURSOR K serial=S WxH", "MOVED K
 * x=X y=Y visible=V", or "FAILED why".
 * It prints "READY socket=PATH resource=ID width=W height=H fourcc=F
 * scanouts=N" once it serves.
 *
 * Scanouts (export protocol version 2, docs/export-protocol.md):
 * --scanouts N reports N scanouts (0..16, default 0); scanout 0 is then
 * enabled, showing --width x --height, static. --scanout K:WxH[@HZ]
 * (repeatable) enables scanout K showing W x H, flipping at HZ (default
 * 60; 0 = one flip then static). Each enabled scanout owns two resources
 * (double buffering, as a compositor): a flip writes the next frame into
 * the back one with transfer_write, then reports it shown
 * (helix_export_scanout_update) and flushed whole
 * (helix_export_scanout_flush). Flips run on the renderer thread from a
 * GLib timeout (they drift under load; stats counts them). Flip f (0, 1,
 * ... counted per scanout from its first) of scanout K shows test frame
 * f + 64 * K (the formula below). A watcher's SCANOUT_CONTROL (a hotplug)
 * enables K > 0 at the size asked, shows one flip and then flips at
 * --hotplug-hz (default 0: static), or disables it; it prints "HOTPLUG K
 * enabled=E WxH". Scanout 0 and sizes above the export's maximum are
 * refused.
 *
 * Test content, frame f, pixel (x, y), memory order of the format's bytes
 * b0 b1 b2 b3: b0 = (x + 4f) & 255, b1 = (y + 2f) & 255,
 * b2 = ((x ^ y) + f) & 255, b3 = 255.
 *
 * --simulate-dmabuf (TESTS ONLY) answers clients that accept DMA-BUF with
 * kind DMABUF backed by a memfd readback copy, so the bridge's DMA-BUF
 * wrapping runs on a machine that cannot export a real one. It is not
 * zero copy and says nothing about a real GPU's DMA-BUF. --simulate-modifier
 * makes those DMA-BUFs claim a (e.g. tiled) modifier, which a client that
 * maps them must refuse.
 *
 * Exit status: 0 ok, 1 failure, 77 virglrenderer/EGL could not start.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "helix-export.h"
#include "hxfr-transport.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <sys/uio.h>
#include <glib-unix.h>
#include <virgl/virglrenderer.h>

#include "helix-test-pattern.h"
#include "helix-virgl-defs.h"

#define EXIT_NO_RENDERER 77


typedef struct
{
  guint32 id;
  guint32 width;
  guint32 height;
  guint8 *backing;              /* the "guest memory" */
  /* virglrenderer keeps the pointer given to attach_iov (not a copy) until
   * detach: it must live as long as the resource */
  struct iovec iov;
} Resource;

#define MAX_SCANOUTS 16
#define MAX_SCANOUT_SIZE 8192
#define MAX_SCANOUT_HZ 1000
/* frame f of scanout K is test frame f + SCANOUT_FRAME_STRIDE * K */
#define SCANOUT_FRAME_STRIDE 64
/* "scribble": drawn over frame F right after its flush, frame F + this */
#define SCRIBBLE_OFFSET 128

typedef struct _StandIn StandIn;

typedef struct
{
  StandIn *s;
  guint32 index;
  gboolean enabled;
  Resource *buf[2];             /* double buffering; buf[front] is shown */
  guint front;
  guint32 width;
  guint32 height;
  guint hz;
  guint timer;
  guint64 flips;
  gboolean scribble;            /* overwrite each flushed frame at once */
  /* the cursor plane: the last image (0 = none yet) and position, kept
   * for an export restarted by "export on" */
  guint32 cursor_serial;
  guint32 cursor_width, cursor_height, cursor_hot_x, cursor_hot_y;
  gboolean cursor_placed, cursor_visible;
  gint32 cursor_x, cursor_y;
} Scanout;

struct _StandIn
{
  GMainLoop *loop;
  HelixExport *export;
  HelixExportOptions export_opts;
  guint export_source;
  GHashTable *resources;        /* id -> Resource */
  guint32 next_id;
  guint32 virgl_format;
  guint32 fourcc;
  gint exit_code;

  /* guest thread <-> renderer thread */
  GMutex lock;
  GCond cond;
  gboolean job_done;
  guint32 job_frame;
  guint32 job_width;
  guint32 job_height;
  guint32 current_id;

  guint n_scanouts;
  Scanout scanouts[MAX_SCANOUTS];
};

static gchar *opt_export_socket;
static gchar *opt_bridge;
static gchar *opt_output;
static gchar *opt_format = (gchar *) "bgra";
static gint opt_width = 640;
static gint opt_height = 360;
static gint opt_frames = 60;
static gint opt_resize_at = -1;
static gint opt_resize_width;
static gint opt_resize_height;
static gint opt_slots = HELIX_EXPORT_DEFAULT_N_SLOTS;
static gint opt_timeout_ms = 10000;
static gboolean opt_serve_only;
static gboolean opt_no_dmabuf;
static gboolean opt_simulate_dmabuf;
static gchar *opt_simulate_modifier;
static gint opt_scanouts;
static gchar **opt_scanout_specs;
static gint opt_hotplug_hz;
static gint opt_export_version;

static GOptionEntry entries[] = {
  {"export-socket", 's', 0, G_OPTION_ARG_FILENAME, &opt_export_socket,
      "UNIX socket the helix export listens on (required)", "PATH"},
  {"bridge", 'b', 0, G_OPTION_ARG_STRING, &opt_bridge,
        "Play the guest against this bridge (unix:PATH or tcp:HOST:PORT)",
      "ADDR"},
  {"serve-only", 0, 0, G_OPTION_ARG_NONE, &opt_serve_only,
      "Only serve the export; read commands on stdin", NULL},
  {"width", 'W', 0, G_OPTION_ARG_INT, &opt_width, "Resource width", "PX"},
  {"height", 'H', 0, G_OPTION_ARG_INT, &opt_height, "Resource height", "PX"},
  {"frames", 'n', 0, G_OPTION_ARG_INT, &opt_frames, "Frames to request",
      "N"},
  {"format", 'f', 0, G_OPTION_ARG_STRING, &opt_format,
      "bgra, bgrx, rgba or rgbx (GStreamer names)", "FMT"},
  {"resize-at", 0, 0, G_OPTION_ARG_INT, &opt_resize_at,
      "Switch to a resource of another size from frame N on", "N"},
  {"resize-width", 0, 0, G_OPTION_ARG_INT, &opt_resize_width,
      "Width after --resize-at (default: half)", "PX"},
  {"resize-height", 0, 0, G_OPTION_ARG_INT, &opt_resize_height,
      "Height after --resize-at (default: half)", "PX"},
  {"output", 'o', 0, G_OPTION_ARG_FILENAME, &opt_output,
      "Write the access units (H.264 Annex B) to this file", "FILE"},
  {"slots", 0, 0, G_OPTION_ARG_INT, &opt_slots,
      "Readback slots per export client", "N"},
  {"no-dmabuf", 0, 0, G_OPTION_ARG_NONE, &opt_no_dmabuf,
      "Never try DMA-BUF export", NULL},
  {"simulate-dmabuf", 0, 0, G_OPTION_ARG_NONE, &opt_simulate_dmabuf,
        "TESTS ONLY: serve resources as DMABUF backed by a memfd readback copy",
      NULL},
  {"simulate-modifier", 0, 0, G_OPTION_ARG_STRING, &opt_simulate_modifier,
      "TESTS ONLY: the DRM modifier the simulated DMA-BUFs claim (default 0, "
        "linear)", "HEX"},
  {"timeout-ms", 0, 0, G_OPTION_ARG_INT, &opt_timeout_ms,
      "Bound on every wait for the bridge", "MS"},
  {"scanouts", 0, 0, G_OPTION_ARG_INT, &opt_scanouts,
      "Report N scanouts to watchers (0..16; scanout 0 enabled)", "N"},
  {"scanout", 0, 0, G_OPTION_ARG_STRING_ARRAY, &opt_scanout_specs,
      "Enable scanout K showing W x H, flipping at HZ (default 60, 0 = "
        "static); repeatable", "K:WxH[@HZ]"},
  {"hotplug-hz", 0, 0, G_OPTION_ARG_INT, &opt_hotplug_hz,
      "Flip rate of a scanout a watcher enables (default 0: static)", "HZ"},
  {"export-version", 0, 0, G_OPTION_ARG_INT, &opt_export_version,
      "Speak export protocol versions up to V only (default: all; 3 plays "
        "a VMM without snapshots)", "V"},
  {NULL}
};

static void
resource_free (Resource * r)
{
  struct iovec *iov = NULL;
  int n_iov = 0;

  virgl_renderer_resource_detach_iov (r->id, &iov, &n_iov);
  virgl_renderer_resource_unref (r->id);
  g_free (r->backing);
  g_free (r);
}

/* As a guest's virgl driver does it: a 2D texture the compositor renders
 * into and scans out, backed by guest pages. Renderer thread only. */
static Resource *
resource_new_format (StandIn * s, guint32 width, guint32 height,
    guint32 virgl_format, GError ** error)
{
  struct virgl_renderer_resource_create_args args;
  Resource *r;
  int ret;

  memset (&args, 0, sizeof (args));
  args.handle = s->next_id;
  args.target = PIPE_TEXTURE_2D;
  args.format = virgl_format;
  args.bind = VIRGL_BIND_RENDER_TARGET | VIRGL_BIND_SAMPLER_VIEW |
      VIRGL_BIND_SCANOUT | VIRGL_BIND_SHARED;
  args.width = width;
  args.height = height;
  args.depth = 1;
  args.array_size = 1;
  ret = virgl_renderer_resource_create (&args, NULL, 0);
  if (ret != 0) {
    g_set_error (error, G_IO_ERROR, G_IO_ERROR_FAILED,
        "virgl_renderer_resource_create(%ux%u): %s", width, height,
        g_strerror (ret));
    return NULL;
  }
  r = g_new0 (Resource, 1);
  r->id = s->next_id++;
  r->width = width;
  r->height = height;
  r->backing = g_malloc0 ((gsize) width * height * 4);
  r->iov.iov_base = r->backing;
  r->iov.iov_len = ((gsize) width) * height * 4;
  ret = virgl_renderer_resource_attach_iov (r->id, &r->iov, 1);
  if (ret != 0) {
    g_set_error (error, G_IO_ERROR, G_IO_ERROR_FAILED,
        "virgl_renderer_resource_attach_iov: %s", g_strerror (ret));
    virgl_renderer_resource_unref (r->id);
    g_free (r->backing);
    g_free (r);
    return NULL;
  }
  return r;
}

static Resource *
resource_create_format (StandIn * s, guint32 width, guint32 height,
    guint32 virgl_format, GError ** error)
{
  Resource *r = resource_new_format (s, width, height, virgl_format, error);

  if (r)
    g_hash_table_insert (s->resources, GUINT_TO_POINTER (r->id), r);
  return r;
}

static Resource *
resource_create (StandIn * s, guint32 width, guint32 height, GError ** error)
{
  return resource_create_format (s, width, height, s->virgl_format, error);
}

/* The guest wrote frame @frame into its memory; the host copies it into
 * the texture (what virtio-gpu TRANSFER_TO_HOST_2D/3D does). */
static gboolean
resource_write_frame (Resource * r, guint32 frame, GError ** error)
{
  struct virgl_box box = { 0, 0, 0, r->width, r->height, 1 };
  int ret;

  helix_test_pattern_fill (r->backing, r->width, r->height, frame);
  ret = virgl_renderer_transfer_write_iov (r->id, 0, 0, r->width * 4, 0,
      &box, 0, NULL, 0);
  if (ret != 0) {
    g_set_error (error, G_IO_ERROR, G_IO_ERROR_FAILED,
        "virgl_renderer_transfer_write_iov(%u): %s", r->id, g_strerror (ret));
    return FALSE;
  }
  return TRUE;
}

/* Scanouts: what a guest compositor does with virtio-gpu's SET_SCANOUT
 * and RESOURCE_FLUSH, reported to the export's watchers. Renderer thread
 * only. */

/* Tells the export what @so shows now (it sends only changes). */
static void
scanout_report (Scanout * so)
{
  StandIn *s = so->s;
  Resource *r = so->enabled ? so->buf[so->front] : NULL;

  if (s->export)
    helix_export_scanout_update (s->export, so->index, so->enabled,
        r ? r->id : 0, r ? r->width : 0, r ? r->height : 0, r ? s->fourcc : 0);
}

/* A page flip: the next frame into the back buffer, shown, flushed. */
static gboolean
scanout_flip (Scanout * so, GError ** error)
{
  StandIn *s = so->s;
  guint back = 1 - so->front;
  Resource *r = so->buf[back];

  if (!so->enabled) {
    g_set_error (error, G_IO_ERROR, G_IO_ERROR_NOT_CONNECTED,
        "scanout %u is disabled", so->index);
    return FALSE;
  }
  if (!resource_write_frame (r, (guint32) so->flips + SCANOUT_FRAME_STRIDE *
          so->index, error))
    return FALSE;
  so->front = back;
  so->flips++;
  scanout_report (so);
  if (s->export)
    helix_export_scanout_flush (s->export, so->index, r->id, 0, 0, r->width,
        r->height);
  /* the guest draws on into the buffer it just flushed, before the export
   * has answered anyone */
  if (so->scribble && !resource_write_frame (r, (guint32) so->flips - 1 +
          SCANOUT_FRAME_STRIDE * so->index + SCRIBBLE_OFFSET, error))
    return FALSE;
  return TRUE;
}

static gboolean
on_flip_timer (gpointer user_data)
{
  Scanout *so = user_data;
  g_autoptr (GError) err = NULL;

  if (scanout_flip (so, &err))
    return G_SOURCE_CONTINUE;
  g_printerr ("helix-standin-vmm: scanout %u: %s\n", so->index, err->message);
  so->timer = 0;
  return G_SOURCE_REMOVE;
}

static void
scanout_set_rate (Scanout * so, guint hz)
{
  if (so->timer)
    g_source_remove (so->timer);
  so->timer = 0;
  so->hz = hz;
  if (hz > 0 && so->enabled)
    so->timer = g_timeout_add (MAX (1000 / hz, 1), on_flip_timer, so);
}

static void
scanout_free_buffers (Scanout * so)
{
  guint i;

  for (i = 0; i < 2; i++)
    g_clear_pointer (&so->buf[i], resource_free);
}

/* Connects @so (or changes its mode) showing @width x @height: two new
 * resources, one flip into them, then flips at @hz. The old ones go once
 * the new one is shown, as a compositor frees its old buffers. */
static gboolean
scanout_enable_full (Scanout * so, guint32 width, guint32 height, guint hz,
    gboolean new_buffers, GError ** error)
{
  StandIn *s = so->s;
  Resource *old[2] = { so->buf[0], so->buf[1] };
  Resource *fresh[2] = { NULL, NULL };
  guint i;

  if (so->enabled && so->width == width && so->height == height && !new_buffers) {
    scanout_set_rate (so, hz);
    return TRUE;
  }
  for (i = 0; i < 2; i++) {
    fresh[i] = resource_new_format (s, width, height, s->virgl_format, error);
    if (!fresh[i]) {
      g_clear_pointer (&fresh[0], resource_free);
      return FALSE;
    }
  }
  so->buf[0] = fresh[0];
  so->buf[1] = fresh[1];
  so->front = 1;                /* the first flip draws into buf[0] */
  so->width = width;
  so->height = height;
  so->enabled = TRUE;
  if (!scanout_flip (so, error))
    return FALSE;
  for (i = 0; i < 2; i++)
    g_clear_pointer (&old[i], resource_free);
  scanout_set_rate (so, hz);
  return TRUE;
}

static gboolean
scanout_enable (Scanout * so, guint32 width, guint32 height, guint hz,
    GError ** error)
{
  return scanout_enable_full (so, width, height, hz, FALSE, error);
}

static void
scanout_disable (Scanout * so)
{
  scanout_set_rate (so, 0);
  so->enabled = FALSE;
  so->width = so->height = 0;
  scanout_report (so);
  scanout_free_buffers (so);
}

static void
print_scanout (Scanout * so)
{
  Resource *r = so->enabled ? so->buf[so->front] : NULL;

  g_print ("SCANOUT %u enabled=%d resource=%u width=%u height=%u\n",
      so->index, so->enabled, r ? r->id : 0, so->width, so->height);
}

/* A watcher hotplugs a connector. The module already refused scanout 0,
 * indexes out of range and sizes above its maximum; checked again here
 * because this is what a VMM must not trust either. */
static gboolean
on_set_scanout_enabled (gpointer user_data, guint32 index, gboolean enable,
    guint32 width, guint32 height, guint32 refresh_hz)
{
  StandIn *s = user_data;
  g_autoptr (GError) err = NULL;
  Scanout *so;

  if (index == 0 || index >= s->n_scanouts || (enable && (width == 0
              || height == 0 || width > MAX_SCANOUT_SIZE
              || height > MAX_SCANOUT_SIZE)))
    return FALSE;
  so = &s->scanouts[index];
  if (!enable) {
    scanout_disable (so);
  } else if (!scanout_enable (so, width, height, opt_hotplug_hz, &err)) {
    g_printerr ("helix-standin-vmm: hotplug of scanout %u: %s\n", index,
        err->message);
    return FALSE;
  }
  g_print ("HOTPLUG %u enabled=%d %ux%u\n", index, enable ? 1 : 0, width,
      height);
  fflush (stdout);
  return TRUE;
}

/* "K:WxH[@HZ]" */
static gboolean
parse_scanout_spec (const gchar * spec, guint * k, guint * w, guint * h,
    guint * hz)
{
  gchar tail = 0;
  gint n;

  *hz = 60;
  n = sscanf (spec, "%u:%ux%u@%u%c", k, w, h, hz, &tail);
  return (n == 3 || n == 4) && *k < (guint) opt_scanouts && *w > 0
      && *h > 0 && *w <= MAX_SCANOUT_SIZE && *h <= MAX_SCANOUT_SIZE
      && *hz <= MAX_SCANOUT_HZ;
}

static gboolean
scanouts_setup (StandIn * s, GError ** error)
{
  guint i, k, w, h, hz;

  s->n_scanouts = opt_scanouts;
  for (i = 0; i < MAX_SCANOUTS; i++) {
    s->scanouts[i].s = s;
    s->scanouts[i].index = i;
  }
  if (s->n_scanouts > 0
      && !scanout_enable (&s->scanouts[0], opt_width, opt_height, 0, error))
    return FALSE;
  for (i = 0; opt_scanout_specs && opt_scanout_specs[i]; i++) {
    if (!parse_scanout_spec (opt_scanout_specs[i], &k, &w, &h, &hz)) {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT,
          "bad --scanout %s (K:WxH[@HZ], K < --scanouts, sizes 1..%u, HZ "
          "0..%u)", opt_scanout_specs[i], MAX_SCANOUT_SIZE, MAX_SCANOUT_HZ);
      return FALSE;
    }
    if (!scanout_enable (&s->scanouts[k], w, h, hz, error))
      return FALSE;
  }
  return TRUE;
}

static void
scanouts_cleanup (StandIn * s)
{
  guint i;

  for (i = 0; i < MAX_SCANOUTS; i++) {
    scanout_set_rate (&s->scanouts[i], 0);
    scanout_free_buffers (&s->scanouts[i]);
  }
}

static Scanout *
scanout_arg (StandIn * s, const gchar * arg)
{
  gchar *end = NULL;
  guint64 k = g_ascii_strtoull (arg, &end, 10);

  if (end == arg || *end != '\0' || k >= s->n_scanouts)
    return NULL;
  return &s->scanouts[k];
}

/* 0 for anything above @max (or not a number) */
static guint32
uint_arg (const gchar * arg, guint32 max)
{
  guint64 v = g_ascii_strtoull (arg, NULL, 10);

  return v > max ? 0 : (guint32) v;
}

static void
command_scanout_enable (Scanout * so, gchar ** argv, guint argc)
{
  g_autoptr (GError) err = NULL;
  guint32 w = uint_arg (argv[0], MAX_SCANOUT_SIZE);
  guint32 h = uint_arg (argv[1], MAX_SCANOUT_SIZE);
  guint hz = argc == 3 ? uint_arg (argv[2], MAX_SCANOUT_HZ) : 0;

  if (w && h && scanout_enable (so, w, h, hz, &err))
    print_scanout (so);
  else
    g_print ("FAILED %s\n", err ? err->message : "bad size");
}

static void
command_resize (Scanout * so, gchar ** argv)
{
  g_autoptr (GError) err = NULL;
  guint32 w = uint_arg (argv[0], MAX_SCANOUT_SIZE);
  guint32 h = uint_arg (argv[1], MAX_SCANOUT_SIZE);

  if (w && h && scanout_enable_full (so, w, h, so->hz, TRUE, &err))
    print_scanout (so);
  else
    g_print ("FAILED %s\n", err ? err->message : "bad size");
}

static void
command_flip (Scanout * so, guint32 n)
{
  g_autoptr (GError) err = NULL;
  guint32 i;

  for (i = 0; i < n && scanout_flip (so, &err); i++);
  if (err)
    g_print ("FAILED %s\n", err->message);
  else
    g_print ("FLIPPED %u frames=%" G_GUINT64_FORMAT " resource=%u\n",
        so->index, so->flips, so->buf[so->front]->id);
}

/* Image so->cursor_serial of so's cursor to the export. */
static gboolean
cursor_report_shape (Scanout * so, GError ** error)
{
  g_autofree guint32 *argb = NULL;
  guint32 x, y, w = so->cursor_width, h = so->cursor_height;

  if (!so->s->export || so->cursor_serial == 0)
    return TRUE;
  /* the export checks the size: a test asks for hostile ones too */
  argb = g_new (guint32, (gsize) MIN (w, 4096) * MIN (h, 4096));
  for (y = 0; y < MIN (h, 4096); y++)
    for (x = 0; x < MIN (w, 4096); x++)
      argb[(gsize) y * MIN (w, 4096) + x] =
          helix_test_cursor_pixel (x, y, w, so->cursor_serial);
  return helix_export_cursor_shape (so->s->export, so->index, w, h,
      so->cursor_hot_x, so->cursor_hot_y, argb, error);
}

static void
cursor_report_move (Scanout * so)
{
  if (so->s->export && so->cursor_placed)
    helix_export_cursor_move (so->s->export, so->index, so->cursor_visible,
        so->cursor_x, so->cursor_y);
}

/* cursor K W H HX HY */
static void
command_cursor (Scanout * so, gchar ** argv)
{
  g_autoptr (GError) err = NULL;
  guint32 old[5] = { so->cursor_serial, so->cursor_width, so->cursor_height,
    so->cursor_hot_x, so->cursor_hot_y
  };

  so->cursor_serial++;
  so->cursor_width = uint_arg (argv[0], 1 << 20);
  so->cursor_height = uint_arg (argv[1], 1 << 20);
  so->cursor_hot_x = uint_arg (argv[2], G_MAXUINT32);
  so->cursor_hot_y = uint_arg (argv[3], G_MAXUINT32);
  if (cursor_report_shape (so, &err)) {
    g_print ("CURSOR %u serial=%u %ux%u\n", so->index, so->cursor_serial,
        so->cursor_width, so->cursor_height);
    return;
  }
  /* refused: the last good image stays */
  so->cursor_serial = old[0];
  so->cursor_width = old[1];
  so->cursor_height = old[2];
  so->cursor_hot_x = old[3];
  so->cursor_hot_y = old[4];
  g_print ("FAILED cursor: %s\n", err->message);
}

/* move K X Y [hidden] */
static void
command_move (Scanout * so, gchar ** argv, guint argc)
{
  so->cursor_placed = TRUE;
  so->cursor_x = (gint32) g_ascii_strtoll (argv[0], NULL, 10);
  so->cursor_y = (gint32) g_ascii_strtoll (argv[1], NULL, 10);
  so->cursor_visible = !(argc == 3 && g_str_equal (argv[2], "hidden"));
  cursor_report_move (so);
  g_print ("MOVED %u x=%d y=%d visible=%d\n", so->index, so->cursor_x,
      so->cursor_y, so->cursor_visible);
}

/* moves K N X Y DX DY */
static void
command_moves (Scanout * so, gchar ** argv)
{
  guint32 i, n = uint_arg (argv[0], 1000000);
  gint32 x = (gint32) g_ascii_strtoll (argv[1], NULL, 10);
  gint32 y = (gint32) g_ascii_strtoll (argv[2], NULL, 10);
  gint32 dx = (gint32) g_ascii_strtoll (argv[3], NULL, 10);
  gint32 dy = (gint32) g_ascii_strtoll (argv[4], NULL, 10);

  so->cursor_placed = TRUE;
  so->cursor_visible = TRUE;
  for (i = 0; i < n; i++) {
    so->cursor_x = x + (gint32) i *dx;
    so->cursor_y = y + (gint32) i *dy;
    cursor_report_move (so);
  }
  g_print ("MOVED %u x=%d y=%d visible=1\n", so->index, so->cursor_x,
      so->cursor_y);
}

/* The scanout commands of --serve-only; FALSE: not one of them. */
static gboolean
scanout_command (StandIn * s, gchar ** argv, guint argc)
{
  gboolean is_scanout = g_str_equal (argv[0], "scanout");
  Scanout *so;

  if (!(is_scanout || g_str_equal (argv[0], "flip")
          || g_str_equal (argv[0], "rate") || g_str_equal (argv[0], "resize")
          || g_str_equal (argv[0], "cursor") || g_str_equal (argv[0], "move")
          || g_str_equal (argv[0], "moves")
          || g_str_equal (argv[0], "scribble"))
      || argc < 2)
    return FALSE;
  so = scanout_arg (s, argv[1]);
  if (!so) {
    g_print ("FAILED no scanout %s (%u scanouts)\n", argv[1], s->n_scanouts);
  } else if (is_scanout && (argc == 5 || argc == 6)
      && g_str_equal (argv[2], "enable")) {
    command_scanout_enable (so, argv + 3, argc - 3);
  } else if (is_scanout && argc == 3 && g_str_equal (argv[2], "disable")) {
    scanout_disable (so);
    print_scanout (so);
  } else if (g_str_equal (argv[0], "flip") && argc <= 3) {
    command_flip (so, argc == 3 ? uint_arg (argv[2], G_MAXUINT32) : 1);
  } else if (g_str_equal (argv[0], "rate") && argc == 3) {
    scanout_set_rate (so, uint_arg (argv[2], MAX_SCANOUT_HZ));
    g_print ("RATE %u hz=%u\n", so->index, so->hz);
  } else if (g_str_equal (argv[0], "resize") && argc == 4 && so->enabled) {
    command_resize (so, argv + 2);
  } else if (g_str_equal (argv[0], "cursor") && argc == 6) {
    command_cursor (so, argv + 2);
  } else if (g_str_equal (argv[0], "move") && (argc == 4 || argc == 5)) {
    command_move (so, argv + 2, argc - 2);
  } else if (g_str_equal (argv[0], "moves") && argc == 7) {
    command_moves (so, argv + 2);
  } else if (g_str_equal (argv[0], "scribble") && argc == 3) {
    so->scribble = g_str_equal (argv[2], "on");
    g_print ("OK scribble %u %s\n", so->index, so->scribble ? "on" : "off");
  } else {
    g_print ("FAILED bad scanout command '%s' (or scanout %u disabled)\n",
        argv[0], so->index);
  }
  return TRUE;
}

static guint
count_open_fds (void)
{
  GDir *dir = g_dir_open ("/proc/self/fd", 0, NULL);
  guint n = 0;

  if (!dir)
    return 0;
  while (g_dir_read_name (dir))
    n++;
  g_dir_close (dir);
  return n;
}

static gboolean
on_export_readable (gint fd, GIOCondition cond, gpointer user_data)
{
  StandIn *s = user_data;

  helix_export_dispatch (s->export);
  return G_SOURCE_CONTINUE;
}

static void
print_stats (StandIn * s)
{
  HelixExportStats st;
  guint i;

  memset (&st, 0, sizeof (st));
  if (s->export)
    helix_export_get_stats (s->export, &st);
  g_print ("STATS clients=%u slots_in_use=%u handles_held=%u resolves=%"
      G_GUINT64_FORMAT " readbacks=%" G_GUINT64_FORMAT " dmabufs=%"
      G_GUINT64_FORMAT " errors=%" G_GUINT64_FORMAT " bad_releases=%"
      G_GUINT64_FORMAT " dmabuf_failures=%" G_GUINT64_FORMAT " fds=%u",
      st.clients, st.slots_in_use, st.handles_held, st.resolves,
      st.readbacks, st.dmabufs, st.errors, st.bad_releases,
      st.dmabuf_failures, count_open_fds ());
  g_print (" watchers=%u scanout_updates=%" G_GUINT64_FORMAT " flushes=%"
      G_GUINT64_FORMAT " flushes_sent=%" G_GUINT64_FORMAT
      " watchers_dropped=%" G_GUINT64_FORMAT " scanout_controls=%"
      G_GUINT64_FORMAT " scanout_refusals=%" G_GUINT64_FORMAT
      " cursor_shapes=%" G_GUINT64_FORMAT " cursor_moves=%" G_GUINT64_FORMAT
      " cursor_moves_coalesced=%" G_GUINT64_FORMAT " snapshots=%"
      G_GUINT64_FORMAT " snapshot_misses=%" G_GUINT64_FORMAT,
      st.watchers, st.scanout_updates, st.flushes, st.flushes_sent,
      st.watchers_dropped, st.scanout_controls, st.scanout_refusals,
      st.cursor_shapes, st.cursor_moves, st.cursor_moves_coalesced,
      st.snapshots, st.snapshot_misses);
  for (i = 0; i < s->n_scanouts; i++)
    g_print (" flips%u=%" G_GUINT64_FORMAT, i, s->scanouts[i].flips);
  g_print ("\n");
}

static gboolean
export_start (StandIn * s, GError ** error)
{
  guint i;

  s->export = helix_export_new (opt_export_socket, &s->export_opts, error);
  if (!s->export)
    return FALSE;
  s->export_source = g_unix_fd_add (helix_export_get_fd (s->export), G_IO_IN,
      on_export_readable, s);
  /* a new module knows nothing of what the scanouts show */
  for (i = 0; i < s->n_scanouts; i++) {
    scanout_report (&s->scanouts[i]);
    if (!cursor_report_shape (&s->scanouts[i], error))
      return FALSE;
    cursor_report_move (&s->scanouts[i]);
  }
  return TRUE;
}

static void
export_stop (StandIn * s)
{
  if (!s->export)
    return;
  g_source_remove (s->export_source);
  helix_export_free (s->export);
  s->export = NULL;
}

static void
handle_command (StandIn * s, const gchar * line)
{
  g_autoptr (GError) err = NULL;
  g_auto (GStrv) argv = g_strsplit (line, " ", -1);
  guint argc = g_strv_length (argv);

  if (argc == 0 || argv[0][0] == '\0')
    return;
  if (scanout_command (s, argv, argc)) {
    /* done */
  } else if (g_str_equal (argv[0], "quit")) {
    g_main_loop_quit (s->loop);
  } else if (g_str_equal (argv[0], "frame") && argc == 2) {
    GHashTableIter it;
    gpointer value;
    guint32 frame = (guint32) g_ascii_strtoull (argv[1], NULL, 10);

    g_hash_table_iter_init (&it, s->resources);
    while (g_hash_table_iter_next (&it, NULL, &value))
      if (!resource_write_frame (value, frame, &err))
        break;
    g_print ("%s\n", err ? err->message : "OK");
  } else if (g_str_equal (argv[0], "create") && (argc == 3 || argc == 4)) {
    Resource *r = resource_create_format (s, atoi (argv[1]), atoi (argv[2]),
        argc == 4 ? (guint32) atoi (argv[3]) : s->virgl_format, &err);

    if (r && resource_write_frame (r, 0, &err))
      g_print ("CREATED %u\n", r->id);
    else
      g_print ("FAILED %s\n", err->message);
  } else if (g_str_equal (argv[0], "destroy") && argc == 2) {
    guint32 id = (guint32) g_ascii_strtoull (argv[1], NULL, 10);

    g_print ("%s\n", g_hash_table_remove (s->resources,
            GUINT_TO_POINTER (id)) ? "OK" : "FAILED no such resource");
  } else if (g_str_equal (argv[0], "stall") && argc == 2) {
    /* said first, so a test knows the renderer thread is now stuck */
    g_print ("STALLING\n");
    fflush (stdout);
    g_usleep ((gulong) g_ascii_strtoull (argv[1], NULL, 10) * 1000);
    g_print ("OK\n");
  } else if (g_str_equal (argv[0], "stats")) {
    print_stats (s);
  } else if (g_str_equal (argv[0], "export") && argc == 2
      && g_str_equal (argv[1], "off")) {
    export_stop (s);
    g_print ("OK\n");
  } else if (g_str_equal (argv[0], "export") && argc == 2
      && g_str_equal (argv[1], "on")) {
    if (s->export || export_start (s, &err))
      g_print ("OK\n");
    else
      g_print ("FAILED %s\n", err->message);
  } else {
    g_print ("FAILED unknown command '%s'\n", line);
  }
  fflush (stdout);
}

static gboolean
on_stdin (gint fd, GIOCondition cond, gpointer user_data)
{
  StandIn *s = user_data;
  static GString *pending;
  gchar buf[512];
  gssize n;
  gchar *nl;

  if (!pending)
    pending = g_string_new (NULL);
  n = read (fd, buf, sizeof (buf));
  if (n <= 0) {
    g_main_loop_quit (s->loop);
    return G_SOURCE_REMOVE;
  }
  g_string_append_len (pending, buf, n);
  while ((nl = strchr (pending->str, '\n'))) {
    g_autofree gchar *line = g_strndup (pending->str, nl - pending->str);

    g_string_erase (pending, 0, nl - pending->str + 1);
    handle_command (s, g_strstrip (line));
  }
  return G_SOURCE_CONTINUE;
}

/* Guest side: runs on its own thread; asks the renderer thread for each
 * frame's content. */

static gboolean
render_job (gpointer user_data)
{
  StandIn *s = user_data;
  g_autoptr (GError) err = NULL;
  Resource *r = g_hash_table_lookup (s->resources,
      GUINT_TO_POINTER (s->current_id));

  if (!r || r->width != s->job_width || r->height != s->job_height) {
    /* a mode change: the compositor allocates a new scanout buffer */
    if (r)
      g_hash_table_remove (s->resources, GUINT_TO_POINTER (r->id));
    r = resource_create (s, s->job_width, s->job_height, &err);
  }
  if (r && resource_write_frame (r, s->job_frame, &err))
    s->current_id = r->id;
  else
    s->current_id = 0;
  if (err)
    g_printerr ("helix-standin-vmm: %s\n", err->message);

  g_mutex_lock (&s->lock);
  s->job_done = TRUE;
  g_cond_signal (&s->cond);
  g_mutex_unlock (&s->lock);
  return G_SOURCE_REMOVE;
}

static guint32
render_frame (StandIn * s, guint32 frame, guint32 width, guint32 height)
{
  gint64 deadline = g_get_monotonic_time () + 10 * G_USEC_PER_SEC;
  guint32 id = 0;

  g_mutex_lock (&s->lock);
  s->job_done = FALSE;
  s->job_frame = frame;
  s->job_width = width;
  s->job_height = height;
  g_main_context_invoke (NULL, render_job, s);
  while (!s->job_done)
    if (!g_cond_wait_until (&s->cond, &s->lock, deadline))
      break;
  if (s->job_done)
    id = s->current_id;
  g_mutex_unlock (&s->lock);
  return id;
}

/* What the bridge answered, frame by frame. */
typedef struct
{
  guint frames;                 /* requests sent */
  guint n_ok;
  guint n_dropped;
  guint n_failed;
  guint64 au_bytes;
} GuestTally;

/* --output: the file the access units go to, replaced. */
static GOutputStream *
open_output (const gchar * path, GError ** error)
{
  g_autoptr (GFile) file = g_file_new_for_path (path);

  return G_OUTPUT_STREAM (g_file_replace (file, NULL, FALSE,
          G_FILE_CREATE_NONE, NULL, error));
}

/* HELLO as a v2 guest that names frames by resource id, and the bridge's
 * HELLO_ACK. A bridge that cannot resolve resource ids is only warned
 * about: its answers (FAILED) then say so frame by frame. */
static gboolean
say_hello (HxfrConn * conn, const HxfrLimits * limits, gint64 timeout,
    GError ** error)
{
  guint8 fixed[HXFR_MAX_FIXED_SIZE];
  HxfrHello hello;
  HxfrMessage msg;
  gsize n;

  memset (&hello, 0, sizeof (hello));
  hello.min_version = 2;
  hello.max_version = 2;
  hello.codec = HXFR_CODEC_H264;
  hello.max_in_flight = 1;
  hello.bitrate = 4000000;
  hello.keyframe_interval = 30;
  hello.fps_n = 30;
  hello.fps_d = 1;
  hello.guest_flags = HXFR_GUEST_RESOURCE_IDS;
  n = hxfr_hello_write (&hello, fixed);
  if (!hxfr_conn_send (conn, HXFR_MSG_HELLO, 0, 1, fixed, n, NULL, 0,
          timeout, NULL, error)
      || !hxfr_conn_receive (conn, HXFR_ROLE_GUEST, limits, &msg, timeout,
          timeout, NULL, error))
    return FALSE;
  if (msg.header.type != HXFR_MSG_HELLO_ACK) {
    g_set_error (error, HXFR_ERROR, HXFR_ERR_UNSUPPORTED,
        "the bridge answered HELLO with %s (%d: %s)",
        hxfr_msg_type_name (msg.header.type), msg.u.error.code,
        msg.u.error.message);
    return FALSE;
  }
  if (!(msg.u.hello_ack.host_flags & HXFR_HOST_RESOURCE_IDS))
    g_printerr ("helix-standin-vmm: warning: the bridge says it cannot "
        "resolve resource ids (no --export?)\n");
  return TRUE;
}

/* Renders @frame (at the --resize-at size from then on) and sends its
 * FRAME_REQUEST2, naming the resource: no pixels. The first frame and the
 * first resized one are asked for as IDRs. */
static gboolean
send_frame (StandIn * s, HxfrConn * conn, guint frame, gint64 timeout,
    GError ** error)
{
  gboolean resized = opt_resize_at >= 0 && frame >= (guint) opt_resize_at;
  guint32 w = resized ? opt_resize_width : opt_width;
  guint32 h = resized ? opt_resize_height : opt_height;
  guint8 fixed[HXFR_MAX_FIXED_SIZE];
  HxfrFrameRequest req;
  guint32 id = render_frame (s, frame, w, h);
  gsize n;

  if (id == 0) {
    g_set_error (error, G_IO_ERROR, G_IO_ERROR_FAILED,
        "could not render frame %u", frame);
    return FALSE;
  }
  memset (&req, 0, sizeof (req));
  req.seq = frame;
  req.resource_id = id;
  req.width = w;
  req.height = h;
  req.format = s->fourcc;
  req.n_planes = 1;
  req.stride[0] = w * 4;
  req.pts = ((gint64) frame) * G_GINT64_CONSTANT (33333333);
  req.duration = G_GINT64_CONSTANT (33333333);
  req.force_keyframe = frame == 0 || (opt_resize_at >= 0
      && frame == (guint) opt_resize_at);
  n = hxfr_frame_request_write (&req, 2, fixed);
  return hxfr_conn_send (conn, HXFR_MSG_FRAME_REQUEST2, 0, 1, fixed, n, NULL,
      0, timeout, NULL, error);
}

/* Reads the answer to @frame into @tally (its access unit to @out, if
 * any). An ERROR or an answer out of turn ends the run; a FAILED frame
 * is counted and told, the run goes on. */
static gboolean
take_answer (HxfrConn * conn, const HxfrLimits * limits, guint frame,
    GOutputStream * out, gint64 timeout, GuestTally * tally, GError ** error)
{
  HxfrMessage msg;

  if (!hxfr_conn_receive (conn, HXFR_ROLE_GUEST, limits, &msg, timeout,
          timeout, NULL, error))
    return FALSE;
  if (msg.header.type == HXFR_MSG_ERROR) {
    g_set_error (error, HXFR_ERROR, msg.u.error.code,
        "the bridge sent ERROR %d: %s", msg.u.error.code, msg.u.error.message);
    return FALSE;
  }
  if (msg.header.type != HXFR_MSG_FRAME_RESPONSE2
      || msg.u.frame_response.seq != frame) {
    g_set_error (error, HXFR_ERROR, HXFR_ERR_INVALID,
        "expected FRAME_RESPONSE2 seq %u, got %s seq %u", frame,
        hxfr_msg_type_name (msg.header.type), msg.u.frame_response.seq);
    return FALSE;
  }
  switch (msg.u.frame_response.status) {
    case HXFR_STATUS_OK:{
      g_autofree guint8 *au = g_malloc (MAX (msg.tail_size, 1));

      if (!hxfr_conn_read_exact (conn, au, msg.tail_size, timeout, NULL, error))
        return FALSE;
      if (out && !g_output_stream_write_all (out, au, msg.tail_size, NULL,
              NULL, error))
        return FALSE;
      tally->au_bytes += msg.tail_size;
      tally->n_ok++;
      break;
    }
    case HXFR_STATUS_DROPPED:
      tally->n_dropped++;
      break;
    default:
      tally->n_failed++;
      g_printerr ("helix-standin-vmm: frame %u failed: %d %s\n", frame,
          msg.u.frame_response.error_code, msg.text);
      break;
  }
  return TRUE;
}

/* The guest's whole conversation on @conn: HELLO, then --frames requests
 * one at a time, each answered before the next (max-in-flight 1); prints
 * the tally. FALSE if it broke off or a frame failed. */
static gboolean
converse (StandIn * s, HxfrConn * conn, GOutputStream * out, gint64 timeout,
    GError ** error)
{
  GuestTally tally = { 0, };
  HxfrLimits limits;
  guint64 bytes_after_hello;

  hxfr_limits_init_default (&limits);
  if (!say_hello (conn, &limits, timeout, error))
    return FALSE;
  bytes_after_hello = hxfr_conn_get_bytes_sent (conn);

  for (tally.frames = 0; tally.frames < (guint) opt_frames; tally.frames++)
    if (!send_frame (s, conn, tally.frames, timeout, error)
        || !take_answer (conn, &limits, tally.frames, out, timeout, &tally,
            error))
      return FALSE;

  g_print ("frames=%u ok=%u dropped=%u failed=%u au_bytes=%" G_GUINT64_FORMAT
      " guest_to_host_bytes_per_frame=%" G_GUINT64_FORMAT "\n", tally.frames,
      tally.n_ok, tally.n_dropped, tally.n_failed, tally.au_bytes,
      tally.frames ? (hxfr_conn_get_bytes_sent (conn) - bytes_after_hello) /
      tally.frames : 0);
  if (tally.n_failed) {
    g_set_error (error, G_IO_ERROR, G_IO_ERROR_FAILED, "%u frames failed",
        tally.n_failed);
    return FALSE;
  }
  return TRUE;
}

/* --bridge: plays the guest against the bridge (see the top of the file). */
static gboolean
play_guest (StandIn * s, GError ** error)
{
  g_autoptr (HxfrAddress) addr = NULL;
  g_autoptr (GOutputStream) out = NULL;
  gint64 timeout = (gint64) opt_timeout_ms * 1000;
  HxfrConn *conn;
  gboolean ok;

  addr = hxfr_address_parse (opt_bridge, error);
  if (!addr)
    return FALSE;
  if (opt_output) {
    out = open_output (opt_output, error);
    if (!out)
      return FALSE;
  }
  conn = hxfr_conn_connect (addr, timeout, NULL, error);
  if (!conn)
    return FALSE;

  ok = converse (s, conn, out, timeout, error);
  if (out)
    g_output_stream_close (out, NULL, NULL);
  hxfr_conn_unref (conn);
  return ok;
}

static gpointer
guest_thread (gpointer user_data)
{
  StandIn *s = user_data;
  g_autoptr (GError) err = NULL;

  if (!play_guest (s, &err)) {
    g_printerr ("helix-standin-vmm: %s\n", err->message);
    s->exit_code = 1;
  }
  g_main_loop_quit (s->loop);
  return NULL;
}

static void
write_fence (void *cookie, uint32_t fence)
{
}

static struct virgl_renderer_callbacks virgl_cbs = {
  .version = 1,
  .write_fence = write_fence,
};

static gboolean
on_signal (gpointer user_data)
{
  g_main_loop_quit (user_data);
  return G_SOURCE_CONTINUE;
}

static const gchar options_description[] = "Scanouts (export protocol "
    "version 2): --scanouts N reports N scanouts to watchers; scanout 0 "
    "is then enabled, showing --width x --height, static.\n"
    "--scanout K:WxH[@HZ] enables scanout K (K < N) showing WxH, "
    "page-flipping at HZ (default 60; 0 = one flip, then static).\n"
    "Each scanout double-buffers two virglrenderer resources; flip f "
    "(counted per scanout from 0) of scanout K shows test frame\n"
    "f + 64*K: pixel (x, y), bytes in memory order b0 = (x + 4*F) & 255, "
    "b1 = (y + 2*F) & 255, b2 = ((x ^ y) + F) & 255, b3 = 255, F = f + "
    "64*K.\n"
    "A watcher's SCANOUT_CONTROL enables scanout K > 0 at the size asked "
    "(one flip, then --hotplug-hz) or disables it, printing\n"
    "\"HOTPLUG K enabled=E WxH\"; scanout 0 and sizes above 8192 are "
    "refused.\n"
    "--serve-only stdin commands: frame N, create W H [F], destroy ID, "
    "stall MS, stats, export on|off, quit;\n"
    "scanout K enable W H [HZ], scanout K disable, flip K [N], rate K HZ, "
    "resize K W H, cursor K W H HX HY, move K X Y [hidden], moves K N X Y DX "
    "DY, scribble K on|off (each prints one "
    "line once done:\n"
    "SCANOUT K enabled=E resource=R width=W height=H, FLIPPED K frames=F "
    "resource=R, RATE K hz=HZ, CURSOR K serial=S WxH, MOVED K x=X y=Y "
    "visible=V, or FAILED why).";

/* The command line into the opt_ variables, checked; the resize size
 * defaults to half the size. FALSE: told on stderr, exit 1. */
static gboolean
parse_options (int *argc, char ***argv)
{
  g_autoptr (GOptionContext) ctx = NULL;
  g_autoptr (GError) err = NULL;

  ctx = g_option_context_new ("- a stand-in VMM serving virglrenderer "
      "resources through the helix export");
  g_option_context_add_main_entries (ctx, entries, NULL);
  g_option_context_set_description (ctx, options_description);
  if (!g_option_context_parse (ctx, argc, argv, &err)) {
    g_printerr ("helix-standin-vmm: %s\n", err->message);
    return FALSE;
  }
  if (!opt_export_socket) {
    g_printerr ("helix-standin-vmm: needs --export-socket\n");
    return FALSE;
  }
  if ((!opt_bridge && !opt_serve_only)
      || opt_width <= 0 || opt_height <= 0 || opt_frames < 0) {
    g_printerr ("helix-standin-vmm: needs --bridge or --serve-only, and a "
        "positive size\n");
    return FALSE;
  }
  if (opt_export_version < 0 || opt_export_version > 4) {
    g_printerr ("helix-standin-vmm: --export-version is 1..4\n");
    return FALSE;
  }
  if (opt_scanouts < 0 || opt_scanouts > MAX_SCANOUTS || opt_hotplug_hz < 0
      || opt_hotplug_hz > MAX_SCANOUT_HZ) {
    g_printerr ("helix-standin-vmm: --scanouts is 0..%d, --hotplug-hz "
        "0..%d\n", MAX_SCANOUTS, MAX_SCANOUT_HZ);
    return FALSE;
  }
  if (opt_resize_width <= 0)
    opt_resize_width = MAX (opt_width / 2, 2);
  if (opt_resize_height <= 0)
    opt_resize_height = MAX (opt_height / 2, 2);
  return TRUE;
}

/* --format: the virgl format of the resources and the fourcc the guest
 * names them by. FALSE for a format the stand-in does not make. */
static gboolean
set_format (StandIn * s, const gchar * format)
{
  static const struct
  {
    const gchar *name;
    guint32 virgl_format;
    guint32 fourcc;
  } formats[] = {
    {"bgra", 1, HXFR_FORMAT_ARGB8888},
    {"bgrx", 2, HXFR_FORMAT_XRGB8888},
    {"rgba", 67, HXFR_FORMAT_ABGR8888},
    {"rgbx", 134, HXFR_FORMAT_XBGR8888},
  };
  guint i;

  for (i = 0; i < G_N_ELEMENTS (formats); i++) {
    if (g_ascii_strcasecmp (format, formats[i].name) == 0) {
      s->virgl_format = formats[i].virgl_format;
      s->fourcc = formats[i].fourcc;
      return TRUE;
    }
  }
  return FALSE;
}

/* Surfaceless EGL: no window system, no DRM device needed (llvmpipe).
 * virglrenderer refuses a NULL cookie. Desktop GL first, then GLES.
 * FALSE: told on stderr (a SKIP: the machine cannot run it). */
static gboolean
start_renderer (int *cookie)
{
  int ret;

  g_setenv ("EGL_PLATFORM", "surfaceless", FALSE);
  ret = virgl_renderer_init (cookie, VIRGL_RENDERER_USE_EGL |
      VIRGL_RENDERER_USE_SURFACELESS, &virgl_cbs);
  if (ret != 0)
    ret = virgl_renderer_init (cookie, VIRGL_RENDERER_USE_EGL |
        VIRGL_RENDERER_USE_SURFACELESS | VIRGL_RENDERER_USE_GLES, &virgl_cbs);
  if (ret != 0) {
    g_printerr ("helix-standin-vmm: SKIP: virglrenderer could not start "
        "(surfaceless EGL): %s\n", g_strerror (ABS (ret)));
    return FALSE;
  }
  return TRUE;
}

/* The export's options from the command line: a slot holds the largest
 * frame the guest side makes (before or after --resize-at). */
static void
configure_export (StandIn * s)
{
  HelixExportOptions opts;

  helix_export_options_init (&opts);
  opts.n_slots = opt_slots;
  opts.allow_dmabuf = !opt_no_dmabuf;
  opts.simulate_dmabuf = opt_simulate_dmabuf;
  if (opt_simulate_modifier)
    opts.simulate_dmabuf_modifier =
        g_ascii_strtoull (opt_simulate_modifier, NULL, 16);
  opts.slot_size = (guint64) MAX (opt_width, opt_resize_width) *
      MAX (opt_height, opt_resize_height) * 4;
  opts.slot_size = MAX (opts.slot_size, HELIX_EXPORT_DEFAULT_SLOT_SIZE);
  opts.n_scanouts = opt_scanouts;
  opts.set_scanout_enabled = on_set_scanout_enabled;
  opts.user_data = s;
  opts.max_version = opt_export_version;
  s->export_opts = opts;
}

/* --serve-only: one resource showing frame 0, commands from stdin, and
 * the READY line a test waits for. */
static gboolean
serve_only (StandIn * s, GError ** error)
{
  Resource *r = resource_create (s, opt_width, opt_height, error);

  if (!r || !resource_write_frame (r, 0, error))
    return FALSE;
  g_unix_fd_add (0, G_IO_IN | G_IO_HUP, on_stdin, s);
  g_print ("READY socket=%s resource=%u width=%u height=%u fourcc=%s "
      "scanouts=%u\n", opt_export_socket, r->id, r->width, r->height,
      opt_format, s->n_scanouts);
  fflush (stdout);
  return TRUE;
}

int
main (int argc, char **argv)
{
  g_autoptr (GError) err = NULL;
  StandIn s;
  GThread *guest = NULL;
  static int cookie;

  if (!parse_options (&argc, &argv))
    return 1;

  memset (&s, 0, sizeof (s));
  g_mutex_init (&s.lock);
  g_cond_init (&s.cond);
  s.next_id = 1;
  if (!set_format (&s, opt_format)) {
    g_printerr ("helix-standin-vmm: unknown format %s\n", opt_format);
    return 1;
  }
  if (!start_renderer (&cookie))
    return EXIT_NO_RENDERER;

  s.resources = g_hash_table_new_full (NULL, NULL, NULL,
      (GDestroyNotify) resource_free);
  s.loop = g_main_loop_new (NULL, FALSE);
  configure_export (&s);
  if (!scanouts_setup (&s, &err) || !export_start (&s, &err)) {
    g_printerr ("helix-standin-vmm: %s\n", err->message);
    return 1;
  }
  g_unix_signal_add (SIGINT, on_signal, s.loop);
  g_unix_signal_add (SIGTERM, on_signal, s.loop);

  if (opt_serve_only) {
    if (!serve_only (&s, &err)) {
      g_printerr ("helix-standin-vmm: %s\n", err->message);
      return 1;
    }
  } else {
    guest = g_thread_new ("guest", guest_thread, &s);
  }

  g_main_loop_run (s.loop);

  /* after a signal the guest thread still ends: all its waits are
   * bounded */
  if (guest) {
    g_thread_join (guest);
    print_stats (&s);
  }
  export_stop (&s);
  scanouts_cleanup (&s);
  g_hash_table_unref (s.resources);
  g_main_loop_unref (s.loop);
  virgl_renderer_cleanup (&cookie);
  return s.exit_code;
}
