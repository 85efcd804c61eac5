/* QEMU glue for the helix export: serves virtio-gpu-gl's virglrenderer
 * resources to the host bridge (docs/export-protocol.md).
 *
 * Built by QEMU's own meson: vmm/qemu/apply-helix-series copies this file,
 * the export module and the protocol code it uses into hw/display/helix/,
 * and vmm/qemu/patches/0001-* adds them to the virtio-gpu-gl module and
 * calls the functions below (docs/zero-copy.md lists the hooks and the
 * QEMU versions). Everything here runs on QEMU's main loop thread with the
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
#include "qemu-glue.h"

struct HelixQemu
{
  HelixExport *export;
  int fd;
  char *path;
  HelixQemuResourceAlive alive;
  void *alive_opaque;
  uint64_t destroyed;
  uint64_t resets;
};

static gboolean
helix_qemu_alive (gpointer user_data, guint32 resource_id)
{
  HelixQemu *hq = user_data;

  return hq->alive (hq->alive_opaque, resource_id);
}

/* The export's fd is readable: answer the bridge (never blocks). */
static void
helix_qemu_dispatch (void *opaque)
{
  HelixQemu *hq = opaque;

  helix_export_dispatch (hq->export);
}

HelixQemu *
helix_qemu_start (const char *path, HelixQemuResourceAlive alive,
    void *opaque, Error ** errp)
{
  HelixExportOptions opts;
  g_autoptr (GError) err = NULL;
  HelixQemu *hq;

  hq = g_new0 (HelixQemu, 1);
  hq->alive = alive;
  hq->alive_opaque = opaque;
  helix_export_options_init (&opts);
  if (alive) {
    opts.resource_alive = helix_qemu_alive;
    opts.user_data = hq;
  }
  hq->export = helix_export_new (path, &opts, &err);
  if (!hq->export) {
    error_setg (errp, "helix-export=%s: %s", path, err->message);
    g_free (hq);
    return NULL;
  }
  hq->path = g_strdup (path);
  hq->fd = helix_export_get_fd (hq->export);
  qemu_set_fd_handler (hq->fd, helix_qemu_dispatch, NULL, hq);
  info_report ("helix-export: serving virtio-gpu resources on %s", path);
  return hq;
}

void
helix_qemu_resource_destroyed (HelixQemu * hq, uint32_t resource_id)
{
  /* QEMU's reslist (the resource_alive callback) already says so; the
   * count is for the stop line and the tests. */
  if (hq)
    hq->destroyed++;
}

void
helix_qemu_renderer_reset (HelixQemu * hq)
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
helix_qemu_stop (HelixQemu * hq)
{
  HelixExportStats st;

  if (!hq)
    return;
  qemu_set_fd_handler (hq->fd, NULL, NULL, NULL);
  helix_export_get_stats (hq->export, &st);
  info_report ("helix-export: stopping: %" PRIu64 " resolves (%" PRIu64
      " readbacks, %" PRIu64 " DMA-BUFs), %" PRIu64 " errors, %" PRIu64
      " resources destroyed, %" PRIu64 " resets", st.resolves, st.readbacks,
      st.dmabufs, st.errors, hq->destroyed, hq->resets);
  helix_export_free (hq->export);
  g_free (hq->path);
  g_free (hq);
}
