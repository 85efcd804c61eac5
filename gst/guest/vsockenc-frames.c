/* vsockenc's frames (see vsockenc-frames.h).
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <errno.h>
#include <string.h>
#include <unistd.h>

#include <gst/allocators/allocators.h>

#include "vsockenc-frames.h"
#include "hxfr-video.h"
#include "vsockenc-gl.h"

#define GST_CAT_DEFAULT gst_vsock_enc_debug

/* Resource ids */

typedef struct
{
  guint32 id;
  gconstpointer ops;
} CachedResource;

static GQuark
resource_quark (void)
{
  static gsize q;

  if (g_once_init_enter (&q))
    g_once_init_leave (&q, g_quark_from_static_string ("vsockenc-resource-id"));
  return (GQuark) q;
}

void
vsockenc_resources_init (VsockEncResources * r)
{
  memset (r, 0, sizeof (*r));
  r->fd = -1;
}

void
vsockenc_resources_reset (VsockEncResources * r)
{
  if (r->fd >= 0)
    close (r->fd);
  vsockenc_resources_init (r);
}

static void
resources_open (VsockEncResources * r, GstElement * elem, const gchar * device)
{
  const VsockEncDrmOps *hook =
      g_object_get_data (G_OBJECT (elem), VSOCKENC_DRM_OPS_KEY);

  r->tried = TRUE;
  if (hook) {
    r->ops = hook;
    return;
  }
  r->fd = device ? vsockenc_drm_open (device) : -ENOENT;
  if (r->fd >= 0) {
    r->real = *vsockenc_drm_default_ops ();
    r->real.user_data = GINT_TO_POINTER (r->fd);
    r->ops = &r->real;
  } else {
    GST_INFO_OBJECT (elem, "no render node %s (%s): DMA-BUFs go as pixels",
        device, g_strerror (-r->fd));
  }
}

/* The answer (found or not) is cached on the memory, so a pool of reused
 * buffers costs the ioctls once per buffer. */
guint32
vsockenc_resources_lookup (VsockEncResources * r, GstElement * elem,
    const gchar * device, GstBuffer * buf, gsize * mem_offset)
{
  GstMemory *mem;
  CachedResource *cached;
  guint32 id = 0;
  gint ret;

  if (gst_buffer_n_memory (buf) != 1)
    return 0;
  mem = gst_buffer_peek_memory (buf, 0);
  if (!gst_is_dmabuf_memory (mem) && !vsockenc_gl_is_texture (mem))
    return 0;
  *mem_offset = mem->offset;

  if (!r->tried)
    resources_open (r, elem, device);
  if (!r->ops)
    return 0;

  cached = gst_mini_object_get_qdata (GST_MINI_OBJECT (mem), resource_quark ());
  if (cached && cached->ops == r->ops)
    return cached->id;

  if (vsockenc_gl_is_texture (mem))
    ret = vsockenc_gl_lookup_resource (r->ops, mem, &id);
  else
    ret = vsockenc_drm_lookup_resource (r->ops,
        gst_dmabuf_memory_get_fd (mem), &id);
  if (ret < 0) {
    GST_DEBUG_OBJECT (elem, "%" GST_PTR_FORMAT " is not a virtio-gpu "
        "resource: %s", mem, g_strerror (-ret));
    id = 0;
  }
  cached = g_new0 (CachedResource, 1);
  cached->id = id;
  cached->ops = r->ops;
  gst_mini_object_set_qdata (GST_MINI_OBJECT (mem), resource_quark (), cached,
      g_free);
  return id;
}

/* Requests */

/* Whether the mapped planes can go as they are: every stride holds a row
 * and every plane lies in the buffer (v1: one stride for all planes). */
static gboolean
layout_sendable (GstVideoFrame * vf, const HxfrFrameRequest * req,
    guint version)
{
  guint n = GST_VIDEO_FRAME_N_PLANES (vf), p;
  gsize bufsize = gst_buffer_get_size (vf->buffer);

  for (p = 0; p < n; p++) {
    guint64 rows, row_bytes;
    gint stride = GST_VIDEO_FRAME_PLANE_STRIDE (vf, p);

    hxfr_format_plane_size (req->format, p, req->width, req->height, &rows,
        &row_bytes);
    if (stride <= 0 || (gsize) stride < row_bytes
        || GST_VIDEO_FRAME_PLANE_OFFSET (vf, p) + stride * rows > bufsize)
      return FALSE;
    if (version < 2 && stride != GST_VIDEO_FRAME_PLANE_STRIDE (vf, 0))
      return FALSE;
  }
  return TRUE;
}

/* Copies the planes into the default layout (v2) or the v1 layout. */
static guint
repack (VsockEncRequest * r, guint version)
{
  HxfrFrameRequest *req = &r->req;
  GstVideoInfo info = r->vf.info;
  GstVideoFrame dst;
  GstBuffer *buf;
  gboolean ok;
  gsize total;
  guint p;

  if (version >= 2) {
    total = hxfr_frame_default_layout (req->format, req->width, req->height,
        &req->n_planes, req->stride, req->offset);
  } else {
    guint32 stride = GST_ROUND_UP_4 (req->format == HXFR_FORMAT_NV12 ?
        req->width : req->width * 4);

    total = hxfr_frame_v1_layout (req->format, req->height, stride,
        &req->n_planes, req->stride, req->offset);
  }
  if (total == 0 || req->n_planes != GST_VIDEO_INFO_N_PLANES (&info))
    return 0;
  for (p = 0; p < req->n_planes; p++) {
    GST_VIDEO_INFO_PLANE_STRIDE (&info, p) = req->stride[p];
    GST_VIDEO_INFO_PLANE_OFFSET (&info, p) = req->offset[p];
  }
  GST_VIDEO_INFO_SIZE (&info) = total;
  r->repacked = g_malloc0 (total);
  buf = gst_buffer_new_wrapped_full (0, r->repacked, total, 0, total, NULL,
      NULL);
  ok = gst_video_frame_map (&dst, &info, buf, GST_MAP_WRITE);
  if (ok) {
    ok = gst_video_frame_copy (&dst, &r->vf);
    gst_video_frame_unmap (&dst);
  }
  gst_buffer_unref (buf);
  if (!ok)
    return 0;
  r->vec[0].buffer = r->repacked;
  r->vec[0].size = total;
  return 1;
}

/* The request's layout and vectors for the mapped pixels: pointing into
 * the frame (no copy) when the layout allows, else one repacked copy. */
static guint
pixel_vectors (VsockEncRequest * r, guint version)
{
  HxfrFrameRequest *req = &r->req;
  guint n = GST_VIDEO_FRAME_N_PLANES (&r->vf), p;
  gsize total = 0;

  req->n_planes = n;
  if (!layout_sendable (&r->vf, req, version))
    return repack (r, version);
  for (p = 0; p < n; p++) {
    guint64 rows, row_bytes;

    hxfr_format_plane_size (req->format, p, req->width, req->height, &rows,
        &row_bytes);
    req->stride[p] = GST_VIDEO_FRAME_PLANE_STRIDE (&r->vf, p);
    req->offset[p] = total;
    r->vec[p].buffer = GST_VIDEO_FRAME_PLANE_DATA (&r->vf, p);
    r->vec[p].size = req->stride[p] * rows;
    total += r->vec[p].size;
  }
  return n;
}

GstFlowReturn
vsockenc_request_fill (VsockEncRequest * r, GstElement * elem,
    const GstVideoInfo * info, guint version, gsize mem_offset)
{
  HxfrFrameRequest *req = &r->req;
  guint i;

  if (req->resource_id) {
    GstVideoMeta *meta = gst_buffer_get_video_meta (r->input);

    /* the host reads a texture as soon as it has the id */
    vsockenc_gl_wait_rendered (r->input);
    req->n_planes = GST_VIDEO_INFO_N_PLANES (info);
    for (i = 0; i < req->n_planes; i++) {
      req->stride[i] = meta ? meta->stride[i] :
          GST_VIDEO_INFO_PLANE_STRIDE (info, i);
      req->offset[i] = mem_offset + (meta ? meta->offset[i] :
          GST_VIDEO_INFO_PLANE_OFFSET (info, i));
    }
    return GST_FLOW_OK;
  }

  /* GstDmaBufAllocator's map and unmap bracket the CPU access with
   * DMA_BUF_IOCTL_SYNC */
  if (!gst_video_frame_map (&r->vf, (GstVideoInfo *) info, r->input,
          GST_MAP_READ)) {
    vsockenc_request_clear (r);
    GST_ELEMENT_ERROR (elem, STREAM, FORMAT, ("Could not map a frame"), (NULL));
    return GST_FLOW_ERROR;
  }
  r->mapped = TRUE;
  r->n_vec = pixel_vectors (r, version);
  if (r->n_vec == 0 || r->vec[0].size == 0) {
    /* set_format and try_reconnect keep this from happening */
    vsockenc_request_clear (r);
    GST_ELEMENT_ERROR (elem, CORE, NEGOTIATION,
        ("Cannot lay out %s for HXFR v%u", hxfr_format_to_string (req->format),
            version), (NULL));
    return GST_FLOW_NOT_NEGOTIATED;
  }
  return GST_FLOW_OK;
}

void
vsockenc_request_clear (VsockEncRequest * r)
{
  if (r->mapped) {
    gst_video_frame_unmap (&r->vf);
    r->mapped = FALSE;
  }
  gst_clear_buffer (&r->input);
  g_clear_pointer (&r->repacked, g_free);
}

/* Access units */

/* An AU that is nothing but an AUD (the bridge's null encoder) is left
 * alone. */
GstBuffer *
vsockenc_au_set_aud (GstBuffer * au, gboolean want_aud)
{
  GstMapInfo map;
  gsize aud_length = 0;
  gboolean has_aud = FALSE;

  if (!gst_buffer_map (au, &map, GST_MAP_READ))
    return au;
  if (want_aud)
    has_aud = hxfr_video_au_opens_with_aud (map.data, map.size);
  else
    aud_length = hxfr_video_au_aud_length (map.data, map.size);
  gst_buffer_unmap (au, &map);

  if (aud_length) {
    GstBuffer *rest = gst_buffer_copy_region (au, GST_BUFFER_COPY_ALL,
        aud_length, gst_buffer_get_size (au) - aud_length);

    gst_buffer_unref (au);
    return rest;
  }
  if (want_aud && !has_aud)
    gst_buffer_prepend_memory (au, gst_memory_new_wrapped
        (GST_MEMORY_FLAG_READONLY, (gpointer) hxfr_video_aud,
            sizeof (hxfr_video_aud), 0, sizeof (hxfr_video_aud), NULL, NULL));
  return au;
}
