/* QEMU glue for the helix export: serve virtio-gpu-gl's virglrenderer
 * resources to the host bridge (docs/export-protocol.md).
 *
 * NOT BUILT AND NOT RUN in this tree: there is no QEMU source here. It is
 * written against QEMU 8.2-9.x (hw/display/virtio-gpu-gl.c and
 * virtio-gpu-virgl.c) and is the whole integration; what was exercised
 * instead is the same module driven by helix-standin-vmm.c, which calls it
 * exactly as below (create after virgl_renderer_init, one fd in the main
 * loop, dispatch from that loop, free before virgl_renderer_cleanup).
 *
 * How to apply (QEMU tree):
 *
 * 1. Copy helix-export.[ch], ../../lib/hxfr-export/hxfr-export-protocol.[ch]
 *    and ../../lib/hxfr/hxfr-transport.[ch], ../../lib/hxfr/hxfr-protocol.[ch]
 *    (the module's socket helpers) and this file to hw/display/, and add
 *    to hw/display/meson.build, in the virtio-gpu-gl (virgl) source set:
 *
 *      virtio_gpu_gl_ss.add(when: ['CONFIG_VIRTIO_GPU', virgl, opengl],
 *        if_true: [files('virtio-gpu-gl.c', 'virtio-gpu-virgl.c',
 *                        'qemu-glue.c', 'helix-export.c',
 *                        'hxfr-export-protocol.c', 'hxfr-transport.c',
 *                        'hxfr-protocol.c'), pixman, virgl, epoxy])
 *
 *    (QEMU already links GLib/GIO, libepoxy and virglrenderer there.)
 *
 * 2. include/hw/virtio/virtio-gpu.h, struct VirtIOGPUGL: add
 *
 *      char *helix_export_path;
 *      struct HelixQemu *helix;
 *
 *    hw/display/virtio-gpu-gl.c, virtio_gpu_gl_properties[]: add
 *
 *      DEFINE_PROP_STRING("helix-export", VirtIOGPUGL, helix_export_path),
 *
 * 3. hw/display/virtio-gpu-virgl.c, end of virtio_gpu_virgl_init(), after
 *    virgl_renderer_init() succeeded (this runs on the main loop thread,
 *    which owns the renderer):
 *
 *      VirtIOGPUGL *gl = VIRTIO_GPU_GL(g);
 *      if (gl->helix_export_path) {
 *          gl->helix = helix_qemu_start(gl->helix_export_path, &error_warn);
 *      }
 *
 *    virtio_gpu_gl_device_unrealize() (or wherever virgl_renderer_cleanup
 *    is called in your QEMU version), BEFORE virgl_renderer_cleanup():
 *
 *      helix_qemu_stop(gl->helix);
 *      gl->helix = NULL;
 *
 *    virtio_gpu_gl_reset(): nothing. After virgl_renderer_reset() the
 *    guest's resources are gone; the bridge gets UNKNOWN_RESOURCE for
 *    them, and slots it holds are copies, still valid.
 *
 * 4. Run: -device virtio-gpu-gl-pci,helix-export=/run/helix/vm1-export.sock
 *    and the bridge with --export unix:/run/helix/vm1-export.sock, as the
 *    same user (the socket is 0600).
 *
 * macOS / UTM: the same glue; readback works there (POSIX shm instead of
 * memfd, kqueue instead of epoll: compiled by the module under !__linux__,
 * untested). For IOSurface zero-copy, pass HelixExportOptions
 * .lookup_iosurface, a function that returns a *global* IOSurfaceID for a
 * resource id (UTM's virglrenderer renders into Metal textures backed by
 * IOSurfaces; how to reach the IOSurface from a resource id depends on
 * that fork's API and is not written here). IOSurfaceLookup() in another
 * process only finds surfaces created with kIOSurfaceIsGlobal; otherwise
 * a mach port over XPC is needed, which this protocol does not carry.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "qemu/osdep.h"
#include "qemu/main-loop.h"
#include "qemu/error-report.h"
#include "qapi/error.h"

#include "helix-export.h"

typedef struct HelixQemu
{
  HelixExport *export;
  int fd;
} HelixQemu;

/* Called by the main loop when the export's fd is readable. QEMU runs
 * virglrenderer on this same thread (with the BQL held), so the module's
 * virglrenderer calls are safe here. */
static void
helix_qemu_dispatch (void *opaque)
{
  HelixQemu *hq = opaque;

  helix_export_dispatch (hq->export);
}

HelixQemu *helix_qemu_start (const char *path, Error ** errp);
void helix_qemu_stop (HelixQemu * hq);

HelixQemu *
helix_qemu_start (const char *path, Error ** errp)
{
  HelixExportOptions opts;
  g_autoptr (GError) err = NULL;
  HelixQemu *hq;

  helix_export_options_init (&opts);
  hq = g_new0 (HelixQemu, 1);
  hq->export = helix_export_new (path, &opts, &err);
  if (!hq->export) {
    error_setg (errp, "helix-export: %s", err->message);
    g_free (hq);
    return NULL;
  }
  hq->fd = helix_export_get_fd (hq->export);
  qemu_set_fd_handler (hq->fd, helix_qemu_dispatch, NULL, hq);
  info_report ("helix-export: serving virtio-gpu resources on %s", path);
  return hq;
}

void
helix_qemu_stop (HelixQemu * hq)
{
  if (!hq)
    return;
  qemu_set_fd_handler (hq->fd, NULL, NULL, NULL);
  helix_export_free (hq->export);
  g_free (hq);
}
