/* vsockenc: the three DRM calls that turn a DMA-BUF into a virtio-gpu
 * resource id, behind a seam so tests can drive the zero-copy path with a
 * simulated device.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

/* Each call returns 0 or a negative errno. */
typedef struct
{
  /* DRM_IOCTL_PRIME_FD_TO_HANDLE */
  gint (*prime_fd_to_handle) (gpointer user_data, gint prime_fd,
      guint32 * handle);
  /* DRM_IOCTL_VIRTGPU_RESOURCE_INFO: the resource id of a GEM handle */
  gint (*resource_info) (gpointer user_data, guint32 handle,
      guint32 * res_handle);
  /* DRM_IOCTL_GEM_CLOSE */
  gint (*gem_close) (gpointer user_data, guint32 handle);
  gpointer user_data;
} VsockEncDrmOps;

/* Test-only hook: a VsockEncDrmOps pointer set with g_object_set_data() on
 * the element under this key before it starts replaces the render node.
 * The struct must outlive the element's READY state. */
#define VSOCKENC_DRM_OPS_KEY "vsockenc-drm-ops"

/* The real ioctls on an open render node (user_data = GINT_TO_POINTER (fd)).
 * Without libdrm at build time every call fails with -ENOTSUP. */
const VsockEncDrmOps *vsockenc_drm_default_ops (void);

/* Opens @device (a render node); -errno on failure. */
gint vsockenc_drm_open (const gchar * device);

/* PRIME fd -> GEM handle -> resource id -> close the handle. */
gint vsockenc_drm_lookup_resource (const VsockEncDrmOps * ops, gint prime_fd,
    guint32 * resource_id);

G_END_DECLS
