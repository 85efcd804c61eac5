/* QEMU glue for the helix export: serves virtio-gpu-gl's virglrenderer
 * resources to the host bridge (docs/export-protocol.md).
 *
 * Built by QEMU's own meson: vmm/qemu/apply-helix-series copies this file,
 * the export module and the protocol code it uses into hw/display/helix/,
 * and vmm/qemu/patches/0001-* adds them to the virtio-gpu-gl module and
 * calls the functions below; 0003-* reports the scanouts (SET_SCANOUT,
 * SET_SCANOUT_BLOB, RESOURCE_FLUSH, device reset) and lets the bridge
 * connect and disconnect outputs; 0004-* reports the cursor queue
 * (UPDATE_CURSOR, MOVE_CURSOR) (docs/zero-copy.md lists the hooks and
 * the QEMU versions). Everything here runs on QEMU's main loop thread with the
 * BQL held, the thread that owns virglrenderer, so the module's
 * virglrenderer calls need no locking.
 *
 * macOS / UTM: the same glue; the module compiles its kqueue and POSIX shm
 * paths there (untested). For IOSurface zero-copy, pass
 * HelixExportOptions.lookup_iosurface (not written: it depends on UTM's
 * virglrenderer fork).
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "qemu/osdep.h"
#include "qemu/main-loop.h"
#include "qemu/error-report.h"
#include "qapi/error.h"

#include "helix-export.h"
#include "helix-virgl-defs.h"
#include "qemu-glue.h"

#define HELIX_QEMU_MAX_SCANOUTS 16      /* virtio-gpu's limit */

/* What the export was last told about a scanout */
typedef struct
{
  bool enabled;
  uint32_t resource_id, width, height, fourcc;
  uint64_t flips, flushes;
} HelixQemuScanout;

struct HelixQemu
{
  HelixExport *export;
  int fd;
  char *path;
  HelixQemuDevice dev;
  HelixQemuScanout scanout[HELIX_QEMU_MAX_SCANOUTS];
  uint64_t destroyed;
  uint64_t resets;
  uint64_t cursor_shapes, cursor_moves;
  bool cursor_warned;
};

static gboolean
helix_export_qemu_alive (gpointer user_data, guint32 resource_id)
{
  HelixQemu *hq = user_data;

  return hq->dev.resource_alive (hq->dev.opaque, resource_id);
}

static void
report_scanout (HelixQemu * hq, uint32_t i)
{
  HelixQemuScanout *s = &hq->scanout[i];

  helix_export_scanout_update (hq->export, i, s->enabled, s->resource_id,
      s->width, s->height, s->fourcc);
}

/* The bridge's request, from inside helix_export_dispatch; the new state
 * is reported before the export answers, so the bridge has it by then. */
static gboolean
helix_export_qemu_set_enabled (gpointer user_data, guint32 index,
    gboolean enable, guint32 width, guint32 height, guint32 refresh_hz)
{
  HelixQemu *hq = user_data;

  /* scanout 0 is the VM's console: always connected */
  if (index == 0 || index >= hq->dev.n_scanouts ||
      !hq->dev.set_scanout_enabled (hq->dev.opaque, index, enable, width,
          height, refresh_hz)) {
    info_report ("helix-export: scanout %u: %s refused", index,
        enable ? "enable" : "disable");
    return FALSE;
  }
  hq->scanout[index].enabled = enable;
  report_scanout (hq, index);
  info_report ("helix-export: scanout %u %s (%ux%u@%u)", index,
      enable ? "enabled" : "disabled", width, height, refresh_hz);
  return TRUE;
}

/* The export's fd is readable: answer the bridge (never blocks). */
static void
helix_export_qemu_dispatch (void *opaque)
{
  HelixQemu *hq = opaque;

  helix_export_dispatch (hq->export);
}

static void
set_options (HelixQemu * hq, HelixExportOptions * opts)
{
  helix_export_options_init (opts);
  opts->user_data = hq;
  if (hq->dev.resource_alive)
    opts->resource_alive = helix_export_qemu_alive;
  opts->n_scanouts = hq->dev.n_scanouts;
  if (hq->dev.set_scanout_enabled)
    opts->set_scanout_enabled = helix_export_qemu_set_enabled;
}

HelixQemu *
helix_export_qemu_start (const char *path, const HelixQemuDevice * dev,
    Error ** errp)
{
  HelixExportOptions opts;
  g_autoptr (GError) err = NULL;
  HelixQemu *hq;

  hq = g_new0 (HelixQemu, 1);
  hq->dev = *dev;
  hq->dev.n_scanouts = MIN (dev->n_scanouts, HELIX_QEMU_MAX_SCANOUTS);
  set_options (hq, &opts);
  hq->export = helix_export_new (path, &opts, &err);
  if (!hq->export) {
    error_setg (errp, "helix-export=%s: %s", path, err->message);
    g_free (hq);
    return NULL;
  }
  hq->path = g_strdup (path);
  hq->fd = helix_export_get_fd (hq->export);
  qemu_set_fd_handler (hq->fd, helix_export_qemu_dispatch, NULL, hq);
  /* started on the guest's first command: nothing is shown yet */
  helix_export_qemu_scanouts_reset (hq, dev->enabled_mask);
  info_report ("helix-export: serving virtio-gpu resources on %s, %u "
      "scanouts", path, hq->dev.n_scanouts);
  return hq;
}

static uint32_t
fourcc_of (uint32_t virgl_format)
{
  switch (virgl_format) {
    case VIRGL_FORMAT_B8G8R8A8_UNORM:
      return 0x34325241;        /* AR24, DRM_FORMAT_ARGB8888 */
    case VIRGL_FORMAT_B8G8R8X8_UNORM:
      return 0x34325258;        /* XR24, DRM_FORMAT_XRGB8888 */
    case VIRGL_FORMAT_R8G8B8A8_UNORM:
      return 0x34324241;        /* AB24, DRM_FORMAT_ABGR8888 */
    case VIRGL_FORMAT_R8G8B8X8_UNORM:
      return 0x34324258;        /* XB24, DRM_FORMAT_XBGR8888 */
    default:
      return 0;                 /* not one the export carries */
  }
}

void
helix_export_qemu_scanout_set (HelixQemu * hq, uint32_t index,
    uint32_t resource_id, uint32_t width, uint32_t height,
    uint32_t virgl_format)
{
  HelixQemuScanout *s;
  bool changed;

  if (!hq || index >= hq->dev.n_scanouts)
    return;
  s = &hq->scanout[index];
  if (!resource_id)
    width = height = virgl_format = 0;
  /* a page flip only changes the id: the size, the format and whether
   * anything is shown are what is worth a log line */
  changed = s->width != width || s->height != height ||
      s->fourcc != fourcc_of (virgl_format) || !s->resource_id != !resource_id;
  s->resource_id = resource_id;
  s->width = width;
  s->height = height;
  s->fourcc = fourcc_of (virgl_format);
  s->flips++;
  if (changed)
    info_report ("helix-export: scanout %u shows resource %u, %ux%u, "
        "fourcc 0x%08x (virgl format %u)", index, resource_id, width,
        height, s->fourcc, virgl_format);
  else if ((s->flips & (s->flips - 1)) == 0)
    info_report ("helix-export: scanout %u: change %" PRIu64 " (page flip "
        "to resource %u)", index, s->flips, resource_id);
  report_scanout (hq, index);
}

void
helix_export_qemu_scanout_flush (HelixQemu * hq, uint32_t index,
    uint32_t resource_id, uint32_t x, uint32_t y, uint32_t width,
    uint32_t height)
{
  HelixQemuScanout *s;

  if (!hq || index >= hq->dev.n_scanouts || !resource_id)
    return;
  s = &hq->scanout[index];
  s->flushes++;
  /* here, in the RESOURCE_FLUSH handler on QEMU's thread, the guest's
   * commands before the flush have run and none after: a watcher's
   * snapshot is read back now (helix-export.h) */
  helix_export_scanout_flush (hq->export, index, resource_id, x, y, width,
      height);
  /* 1, 2, 4, 8...: enough to see flips arrive, not a line per frame */
  if ((s->flushes & (s->flushes - 1)) == 0) {
    HelixExportStats st;

    helix_export_get_stats (hq->export, &st);
    info_report ("helix-export: scanout %u: flush %" PRIu64 " (resource %u,"
        " %ux%u+%u+%u), %" PRIu64 " scanout changes; %" PRIu64 " snapshots "
        "at the flush (all scanouts), %" PRIu64 " missed", index, s->flushes,
        resource_id, width, height, x, y, s->flips, st.snapshots,
        st.snapshot_misses);
  }
}

void
helix_export_qemu_cursor_define (HelixQemu * hq, uint32_t index, uint32_t width,
    uint32_t height, int hot_x, int hot_y, const uint32_t * data)
{
  g_autoptr (GError) err = NULL;

  if (!hq || index >= hq->dev.n_scanouts)
    return;
  /* the hotspot is the guest's word: one outside the image would cost
   * the bridge the whole image, so it is pulled to the nearest edge */
  hot_x = CLAMP (hot_x, 0, (int) width - 1);
  hot_y = CLAMP (hot_y, 0, (int) height - 1);
  hq->cursor_shapes++;
  if (!helix_export_cursor_shape (hq->export, index, width, height, hot_x,
          hot_y, data, &err) && !hq->cursor_warned) {
    /* once: a guest could repeat it at the cursor queue's rate */
    hq->cursor_warned = true;
    warn_report ("helix-export: scanout %u: cursor not reported: %s", index,
        err->message);
  }
}

void
helix_export_qemu_cursor_move (HelixQemu * hq, uint32_t index, bool visible,
    uint32_t x, uint32_t y)
{
  if (!hq || index >= hq->dev.n_scanouts)
    return;
  hq->cursor_moves++;
  helix_export_cursor_move (hq->export, index, visible, (int32_t) x,
      (int32_t) y);
}

void
helix_export_qemu_scanouts_reset (HelixQemu * hq, uint32_t enabled_mask)
{
  if (!hq)
    return;
  for (uint32_t i = 0; i < hq->dev.n_scanouts; i++) {
    HelixQemuScanout *s = &hq->scanout[i];

    s->enabled = (enabled_mask >> i) & 1;
    s->resource_id = s->width = s->height = s->fourcc = 0;
    report_scanout (hq, i);
  }
}

void
helix_export_qemu_resource_destroyed (HelixQemu * hq, uint32_t resource_id)
{
  /* QEMU's reslist (the resource_alive callback) already says so; the
   * count is for the stop line and the tests. */
  if (hq)
    hq->destroyed++;
}

void
helix_export_qemu_renderer_reset (HelixQemu * hq)
{
  if (!hq)
    return;
  /* The export stays up across the reset: the bridge's connections
   * survive, its requests for old ids get UNKNOWN_RESOURCE, and readback
   * slots it holds are copies, still valid. */
  hq->resets++;
  info_report ("helix-export: GPU reset (%" PRIu64 "): the guest's "
      "resources are gone, serving new ones on %s", hq->resets, hq->path);
}

void
helix_export_qemu_stop (HelixQemu * hq)
{
  HelixExportStats st;

  if (!hq)
    return;
  qemu_set_fd_handler (hq->fd, NULL, NULL, NULL);
  helix_export_get_stats (hq->export, &st);
  info_report ("helix-export: stopping: %" PRIu64 " resolves (%" PRIu64
      " readbacks, %" PRIu64 " DMA-BUFs), %" PRIu64 " errors, %" PRIu64
      " resources destroyed, %" PRIu64 " resets, %" PRIu64 " scanout "
      "updates, %" PRIu64 " flushes, %" PRIu64 " cursor images, %" PRIu64
      " cursor moves, %" PRIu64 " snapshots (%" PRIu64 " missed)",
      st.resolves, st.readbacks, st.dmabufs, st.errors,
      hq->destroyed, hq->resets, st.scanout_updates, st.flushes,
      hq->cursor_shapes, hq->cursor_moves, st.snapshots, st.snapshot_misses);
  helix_export_free (hq->export);
  g_free (hq->path);
  g_free (hq);
}
