/* See hxfr-surface.h.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "hxfr-surface.h"
#include "hxfr-video.h"

#include <gst/allocators/allocators.h>

#ifdef __APPLE__
#include <IOSurface/IOSurface.h>
#endif

/* larger than any scanout or encoder input we serve */
#define MAX_DIMENSION 16384

G_DEFINE_QUARK (hxfr - surface - error - quark, hxfr_surface_error);

static GQuark
surface_quark (void)
{
  return g_quark_from_static_string ("hxfr-export-surface");
}

/* Whether a consumer reading as @access gets the right picture out of
 * @surface. Only DMA-BUFs have a layout of their own. */
static gboolean
layout_readable (const HxexClientSurface * surface, HxfrSurfaceAccess access)
{
  if (surface->kind != HXEX_KIND_DMABUF
      || surface->modifier == HXEX_DRM_FORMAT_MOD_LINEAR)
    return TRUE;
  /* an explicit tiled or compressed layout: only a consumer told the
   * modifier could read it, and nothing here tells it (1.22 caps) */
  return surface->modifier == HXEX_DRM_FORMAT_MOD_INVALID
      && access == HXFR_SURFACE_IMPORTED;
}

/* TRUE if @surface's planes are @info's and lie inside the surface. */
static gboolean
planes_fit (const HxexClientSurface * surface, const GstVideoInfo * info)
{
  guint i;

  if (surface->n_planes != GST_VIDEO_INFO_N_PLANES (info))
    return FALSE;
  /* the IOSurface's own layout is taken when it is wrapped */
  if (surface->kind == HXEX_KIND_IOSURFACE)
    return TRUE;
  for (i = 0; i < surface->n_planes; i++) {
    guint64 rows = GST_VIDEO_FORMAT_INFO_SCALE_HEIGHT (info->finfo,
        GST_VIDEO_FORMAT_INFO_PLANE (info->finfo, i), surface->height);

    if (surface->stride[i] < (guint) GST_VIDEO_INFO_PLANE_STRIDE (info, i)
        || (guint64) surface->offset[i] + (guint64) surface->stride[i] * rows >
        surface->size)
      return FALSE;
  }
  return TRUE;
}

static GstMemory *
wrap_readback_slot (HxexClientSurface * surface)
{
  return gst_memory_new_wrapped (GST_MEMORY_FLAG_READONLY,
      (gpointer) surface->data, surface->size, 0, surface->size, surface,
      (GDestroyNotify) hxex_client_surface_free);
}

static GstMemory *
wrap_dmabuf (HxexClientSurface * surface)
{
  static GstAllocator *allocator;
  GstMemory *mem;

  if (g_once_init_enter (&allocator))
    g_once_init_leave (&allocator, gst_dmabuf_allocator_new ());
  /* the memory owns the descriptor from here, and the surface with it */
  mem = gst_dmabuf_allocator_alloc (allocator, surface->fd, surface->size);
  if (!mem)
    return NULL;
  surface->fd = -1;
  GST_MINI_OBJECT_FLAG_SET (mem, GST_MEMORY_FLAG_READONLY);
  gst_mini_object_set_qdata (GST_MINI_OBJECT (mem), surface_quark (),
      surface, (GDestroyNotify) hxex_client_surface_free);
  return mem;
}

#ifdef __APPLE__
/* Not built or run here (no macOS machine): an IOSurface the VMM named,
 * locked read-only for as long as the memory lives. */
typedef struct
{
  IOSurfaceRef surface;
  HxexClientSurface *export_surface;
} IOSurfaceHold;

static void
iosurface_hold_free (IOSurfaceHold * h)
{
  IOSurfaceUnlock (h->surface, kIOSurfaceLockReadOnly, NULL);
  CFRelease (h->surface);
  hxex_client_surface_free (h->export_surface);
  g_free (h);
}

/* The stride is the IOSurface's: @surface's first plane is updated. */
static GstMemory *
wrap_iosurface (HxexClientSurface * surface)
{
  IOSurfaceRef ios = IOSurfaceLookup (surface->iosurface_id);
  IOSurfaceHold *h;

  if (!ios)
    return NULL;
  if (IOSurfaceLock (ios, kIOSurfaceLockReadOnly, NULL) != KERN_SUCCESS) {
    CFRelease (ios);
    return NULL;
  }
  h = g_new0 (IOSurfaceHold, 1);
  h->surface = ios;
  h->export_surface = surface;
  surface->stride[0] = IOSurfaceGetBytesPerRow (ios);
  surface->offset[0] = 0;
  return gst_memory_new_wrapped (GST_MEMORY_FLAG_READONLY,
      IOSurfaceGetBaseAddress (ios), IOSurfaceGetAllocSize (ios), 0,
      IOSurfaceGetAllocSize (ios), h, (GDestroyNotify) iosurface_hold_free);
}
#endif

GstBuffer *
hxfr_surface_wrap (HxexClientSurface * surface, HxfrSurfaceAccess access,
    GstVideoInfo * info, GError ** error)
{
  GstVideoFormat format = hxfr_video_format_from_fourcc (surface->fourcc);
  gsize offset[GST_VIDEO_MAX_PLANES] = { 0, };
  gint stride[GST_VIDEO_MAX_PLANES] = { 0, };
  GstVideoInfo default_info;
  GstMemory *mem = NULL;
  GstBuffer *buf;
  guint i;

  if (format == GST_VIDEO_FORMAT_UNKNOWN || surface->width == 0
      || surface->height == 0 || surface->width > MAX_DIMENSION
      || surface->height > MAX_DIMENSION
      || !gst_video_info_set_format (&default_info, format, surface->width,
          surface->height) || !planes_fit (surface, &default_info)) {
    /* in hex: the VMM's fourcc may be anything, not even printable */
    g_set_error (error, HXFR_SURFACE_ERROR, HXFR_SURFACE_ERROR_LAYOUT,
        "resource %u: unusable %ux%u surface of fourcc 0x%08x (%s) with %u "
        "planes", surface->resource_id, surface->width, surface->height,
        surface->fourcc, hxfr_format_to_string (surface->fourcc),
        surface->n_planes);
    hxex_client_surface_free (surface);
    return NULL;
  }
  /* the format is one of ours from here: its fourcc is printable */
  if (!layout_readable (surface, access)) {
    const gchar *why = access == HXFR_SURFACE_MAPPED ?
        "cannot be read by mapping (linear only)" :
        "cannot be imported without naming the modifier";

    g_set_error (error, HXFR_SURFACE_ERROR, HXFR_SURFACE_ERROR_MODIFIER,
        "resource %u: DMA-BUF of format %" GST_FOURCC_FORMAT
        " with modifier 0x%016" G_GINT64_MODIFIER "x, which %s",
        surface->resource_id, GST_FOURCC_ARGS (surface->fourcc),
        surface->modifier, why);
    hxex_client_surface_free (surface);
    return NULL;
  }

  switch (surface->kind) {
    case HXEX_KIND_READBACK_SLOT:
      mem = wrap_readback_slot (surface);
      break;
    case HXEX_KIND_DMABUF:
      mem = wrap_dmabuf (surface);
      break;
#ifdef __APPLE__
    case HXEX_KIND_IOSURFACE:
      mem = wrap_iosurface (surface);
      break;
#endif
    default:
      break;
  }
  if (!mem) {
    g_set_error (error, HXFR_SURFACE_ERROR, HXFR_SURFACE_ERROR_UNSUPPORTED,
        "resource %u: a %s surface cannot be wrapped here",
        surface->resource_id, hxex_kind_name (surface->kind));
    hxex_client_surface_free (surface);
    return NULL;
  }

  /* the memory owns @surface now; it lives as long as @buf */
  for (i = 0; i < surface->n_planes; i++) {
    offset[i] = surface->offset[i];
    stride[i] = surface->stride[i];
  }
  buf = gst_buffer_new ();
  gst_buffer_append_memory (buf, mem);
  gst_buffer_add_video_meta_full (buf, GST_VIDEO_FRAME_FLAG_NONE, format,
      surface->width, surface->height, surface->n_planes, offset, stride);
  if (info)
    *info = default_info;
  return buf;
}
