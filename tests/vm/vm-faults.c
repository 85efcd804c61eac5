/* vm-faults: bad resource ids from a real guest, through the bridge and
 * the patched QEMU's helix export (scripts/vm-test, scenario "faults").
 *
 *   vm-faults tcp:10.0.2.2:PORT [reset]
 *
 * Speaks HXFR v2 as a zero-copy guest and sends, as resource-id frames:
 * a live virtio-gpu resource it created (must encode), the same id after
 * the guest destroyed it (must FAIL, that frame only), an id never created
 * (must FAIL), then a new live resource (must encode: the session goes
 * on). With "reset", then, on the same session: the guest's virtio-gpu
 * driver is unbound and bound again (a device reset: QEMU resets virgl and
 * initialises it again on the next command), and a resource made after it
 * must encode while the id from before it must FAIL: the export survived
 * the re-initialisation. Prints one key=value line per frame: the status, the error code,
 * the round trip. Every wait is bounded by a 10 s deadline per frame.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>
#include <xf86drm.h>
#include <virtgpu_drm.h>

#include "hxfr-protocol.h"
#include "hxfr-transport.h"

#define W 320
#define H 240
#define STEP_US (10 * G_USEC_PER_SEC)

static HxfrLimits limits;

/* A 2D BGRX texture resource, as Mesa virgl makes for a render target;
 * returns its id, *bo its GEM handle (closing it destroys the resource). */
static guint32
create_resource (int drm, guint32 * bo)
{
  struct drm_virtgpu_resource_create rc = { 0 };

  rc.target = 2;                /* PIPE_TEXTURE_2D */
  rc.format = 2;                /* B8G8R8X8_UNORM */
  rc.bind = 2 | 8;              /* RENDER_TARGET | SAMPLER_VIEW */
  rc.width = W;
  rc.height = H;
  rc.depth = 1;
  rc.array_size = 1;
  rc.size = W * H * 4;
  if (drmIoctl (drm, DRM_IOCTL_VIRTGPU_RESOURCE_CREATE, &rc) != 0)
    return 0;
  *bo = rc.bo_handle;
  return rc.res_handle;
}

static void
close_bo (int drm, guint32 bo)
{
  struct drm_gem_close gc = {.handle = bo };
  struct drm_virtgpu_3d_wait wait = {.handle = bo };

  drmIoctl (drm, DRM_IOCTL_VIRTGPU_WAIT, &wait);
  drmIoctl (drm, DRM_IOCTL_GEM_CLOSE, &gc);
}

/* Destroys the resource and returns once QEMU has processed that: the
 * kernel queues RESOURCE_UNREF asynchronously, and QEMU runs the control
 * queue in order, so waiting for a fenced command queued after it (a
 * throwaway resource's creation) is waiting for the unref. */
static void
destroy_resource (int drm, guint32 bo)
{
  guint32 fence_bo = 0;

  close_bo (drm, bo);
  if (create_resource (drm, &fence_bo))
    close_bo (drm, fence_bo);
}

/* One resource-id frame and its answer. */
static gboolean
frame (HxfrConn * conn, const gchar * name, guint32 seq, guint32 id)
{
  HxfrFrameRequest req = { 0 };
  HxfrMessage msg;
  guint8 fixed[HXFR_MAX_FIXED_SIZE];
  g_autoptr (GError) err = NULL;
  gint64 t0 = g_get_monotonic_time (), deadline = t0 + STEP_US;
  gsize len;

  req.seq = seq;
  req.resource_id = id;
  req.width = W;
  req.height = H;
  req.format = HXFR_FORMAT_XRGB8888;
  req.n_planes = 1;
  req.stride[0] = W * 4;
  req.pts = (gint64) seq *33333333;
  req.duration = 33333333;
  req.force_keyframe = TRUE;
  len = hxfr_frame_request_write (&req, 2, fixed);
  if (!hxfr_conn_send (conn, HXFR_MSG_FRAME_REQUEST2, 0, 1, fixed, len,
          NULL, 0, hxfr_deadline_left (deadline), NULL, &err)) {
    g_print ("%s=send-failed %s\n", name, err->message);
    return FALSE;
  }
  for (;;) {
    if (!hxfr_conn_receive (conn, HXFR_ROLE_GUEST, &limits, &msg,
            hxfr_deadline_left (deadline), hxfr_deadline_left (deadline),
            NULL, &err)) {
      g_print ("%s=no-answer %s\n", name, err->message);
      return FALSE;
    }
    if (msg.tail_size && !hxfr_conn_skip (conn, msg.tail_size,
            hxfr_deadline_left (deadline), NULL, &err)) {
      g_print ("%s=no-answer %s\n", name, err->message);
      return FALSE;
    }
    if (msg.header.type == HXFR_MSG_PING) {
      hxfr_conn_send (conn, HXFR_MSG_PONG, 0, 1, NULL, 0, NULL, 0,
          hxfr_deadline_left (deadline), NULL, NULL);
      continue;
    }
    if (msg.header.type == HXFR_MSG_FRAME_RESPONSE2
        && msg.u.frame_response.seq == seq)
      break;
    if (msg.header.type == HXFR_MSG_ERROR) {
      g_print ("%s=session-error %d %s\n", name, msg.u.error.code,
          msg.u.error.message);
      return FALSE;
    }
  }
  g_print ("%s=%s code=%d (%s) bytes=%" G_GSIZE_FORMAT " ms=%.1f\n", name,
      msg.u.frame_response.status == HXFR_STATUS_OK ? "OK" :
      msg.u.frame_response.status == HXFR_STATUS_FAILED ? "FAILED" :
      "DROPPED", msg.u.frame_response.error_code,
      hxfr_error_code_name (msg.u.frame_response.error_code), msg.tail_size,
      (g_get_monotonic_time () - t0) / 1e3);
  return TRUE;
}

/* A sysfs attribute takes one write() (no temporary file and rename). */
static gboolean
write_attr (const gchar * path, const gchar * value)
{
  int fd = open (path, O_WRONLY | O_CLOEXEC);
  gboolean ok;

  if (fd < 0) {
    g_printerr ("open %s: %s\n", path, g_strerror (errno));
    return FALSE;
  }
  ok = write (fd, value, strlen (value)) == (ssize_t) strlen (value);
  if (!ok)
    g_printerr ("write %s to %s: %s\n", value, path, g_strerror (errno));
  close (fd);
  return ok;
}

/* Unbinds and rebinds the virtio-gpu driver: QEMU sees a device reset.
 * Needs every descriptor on the device closed. */
static gboolean
reset_gpu (void)
{
  const gchar *pci = "/sys/class/drm/renderD128/device";
  g_autoptr (GDir) d = g_dir_open (pci, 0, NULL);
  const gchar *name;
  gchar *dev = NULL;
  gint i;

  /* the render node's parent is the PCI function; its virtio device is
   * the child named virtioN */
  while (d && (name = g_dir_read_name (d)))
    if (g_str_has_prefix (name, "virtio") && !dev)
      dev = g_strdup (name);
  g_printerr ("virtio device of the render node: %s\n", dev ? dev : "(none)");
  if (!dev || !write_attr ("/sys/bus/virtio/drivers/virtio_gpu/unbind", dev)) {
    g_free (dev);
    return FALSE;
  }
  for (i = 0;
      i < 100 && g_file_test ("/dev/dri/renderD128", G_FILE_TEST_EXISTS); i++)
    g_usleep (100000);
  if (!write_attr ("/sys/bus/virtio/drivers/virtio_gpu/bind", dev)) {
    g_free (dev);
    return FALSE;
  }
  for (i = 0; i < 100
      && !g_file_test ("/dev/dri/renderD128", G_FILE_TEST_EXISTS); i++)
    g_usleep (100000);
  g_print ("reset_device=%s\n", dev);
  g_free (dev);
  return g_file_test ("/dev/dri/renderD128", G_FILE_TEST_EXISTS);
}

int
main (int argc, char **argv)
{
  g_autoptr (GError) err = NULL;
  g_autoptr (HxfrAddress) addr = NULL;
  HxfrHello hello = { 0 };
  HxfrMessage msg;
  guint8 fixed[HXFR_MAX_FIXED_SIZE];
  gint64 deadline = g_get_monotonic_time () + STEP_US;
  guint32 bo1 = 0, bo2 = 0, id1, id2;
  HxfrConn *conn;
  gsize len;
  int drm;

  if (argc < 2 || !(addr = hxfr_address_parse (argv[1], &err))) {
    g_printerr ("usage: vm-faults tcp:HOST:PORT [reset]\n");
    return 64;
  }
  hxfr_limits_init_default (&limits);
  drm = open ("/dev/dri/renderD128", O_RDWR | O_CLOEXEC);
  if (drm < 0 || !(id1 = create_resource (drm, &bo1))) {
    g_print ("error=no virtio-gpu resource: %s\n", g_strerror (errno));
    return 1;
  }
  conn = hxfr_conn_connect (addr, STEP_US, NULL, &err);
  if (!conn) {
    g_print ("error=connect: %s\n", err->message);
    return 1;
  }
  hello.min_version = hello.max_version = 2;
  hello.codec = HXFR_CODEC_H264;
  hello.max_in_flight = 1;
  hello.fps_n = 30;
  hello.fps_d = 1;
  hello.guest_flags = HXFR_GUEST_RESOURCE_IDS;
  len = hxfr_hello_write (&hello, fixed);
  if (!hxfr_conn_send (conn, HXFR_MSG_HELLO, 0, 1, fixed, len, NULL, 0,
          STEP_US, NULL, &err)
      || !hxfr_conn_receive (conn, HXFR_ROLE_GUEST, &limits, &msg,
          hxfr_deadline_left (deadline), hxfr_deadline_left (deadline), NULL,
          &err) || msg.header.type != HXFR_MSG_HELLO_ACK) {
    g_print ("error=no HELLO_ACK: %s\n", err ? err->message : "other message");
    return 1;
  }
  g_print ("host_resource_ids=%d\n",
      (msg.u.hello_ack.host_flags & HXFR_HOST_RESOURCE_IDS) != 0);

  frame (conn, "live", 1, id1);
  destroy_resource (drm, bo1);
  frame (conn, "destroyed", 2, id1);
  frame (conn, "never_created", 3, 0x7ffffff0u);
  id2 = create_resource (drm, &bo2);
  frame (conn, "after", 4, id2);
  destroy_resource (drm, bo2);
  if (argc > 2 && strcmp (argv[2], "reset") == 0) {
    guint32 bo3 = 0, id3 = 0;

    close (drm);
    if (!reset_gpu ()) {
      g_print ("error=device reset failed\n");
      return 1;
    }
    drm = open ("/dev/dri/renderD128", O_RDWR | O_CLOEXEC);
    if (drm >= 0)
      id3 = create_resource (drm, &bo3);
    g_print ("id_before_reset=%u id_after_reset=%u\n", id2, id3);
    if (id3 != id2)
      frame (conn, "stale_after_reset", 5, id2);
    frame (conn, "after_reset", 6, id3);
    if (id3)
      destroy_resource (drm, bo3);
  }
  hxfr_conn_unref (conn);
  if (drm >= 0)
    close (drm);
  return 0;
}
