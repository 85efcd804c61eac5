/* vsockenc: DRM resource id lookup (see vsockenc-drm.h)
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include "vsockenc-drm.h"

#include <errno.h>
#include <fcntl.h>

#ifdef HAVE_LIBDRM
#include <xf86drm.h>
#include <virtgpu_drm.h>

/* libdrm answers -1 and errno (its drmIoctl retries EINTR and EAGAIN) */
static gint
negative_errno (gint ret)
{
  return ret < 0 ? -errno : 0;
}
#endif

static gint
real_prime_fd_to_handle (gpointer user_data, gint prime_fd, guint32 * handle)
{
#ifdef HAVE_LIBDRM
  return negative_errno (drmPrimeFDToHandle (GPOINTER_TO_INT (user_data),
          prime_fd, handle));
#else
  return -ENOTSUP;
#endif
}

static gint
real_resource_info (gpointer user_data, guint32 handle, guint32 * res_handle)
{
#ifdef HAVE_LIBDRM
  /* only bo_handle/res_handle/size: the fourth field changed name between
   * kernel header versions (stride, blob_mem) */
  struct drm_virtgpu_resource_info args = { 0, };
  gint ret;

  args.bo_handle = handle;
  ret = negative_errno (drmIoctl (GPOINTER_TO_INT (user_data),
          DRM_IOCTL_VIRTGPU_RESOURCE_INFO, &args));
  if (ret == 0)
    *res_handle = args.res_handle;
  return ret;
#else
  return -ENOTSUP;
#endif
}

static gint
real_gem_close (gpointer user_data, guint32 handle)
{
#ifdef HAVE_LIBDRM
  return negative_errno (drmCloseBufferHandle (GPOINTER_TO_INT (user_data),
          handle));
#else
  return -ENOTSUP;
#endif
}

static const VsockEncDrmOps default_ops = {
  real_prime_fd_to_handle,
  real_resource_info,
  real_gem_close,
  NULL,
};

const VsockEncDrmOps *
vsockenc_drm_default_ops (void)
{
  return &default_ops;
}

gint
vsockenc_drm_open (const gchar * device)
{
  gint fd = open (device, O_RDWR | O_CLOEXEC);

  return fd < 0 ? -errno : fd;
}

gint
vsockenc_drm_lookup_resource (const VsockEncDrmOps * ops, gint prime_fd,
    guint32 * resource_id)
{
  guint32 handle = 0, res = 0;
  gint ret;

  ret = ops->prime_fd_to_handle (ops->user_data, prime_fd, &handle);
  if (ret < 0)
    return ret;
  ret = ops->resource_info (ops->user_data, handle, &res);
  /* the handle is closed whatever the answer: GEM handles are per open
   * file and would otherwise pile up */
  ops->gem_close (ops->user_data, handle);
  if (ret < 0)
    return ret;
  if (res == 0)
    return -ENOENT;
  *resource_id = res;
  return 0;
}
