/* vsockenc: GL memory in, virtio-gpu resource ids out (vsockenc-gl.h).
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif
#include "vsockenc-gl.h"

#include <errno.h>
#include <unistd.h>

#ifdef HAVE_VSOCKENC_GL
#include <EGL/egl.h>
#include <EGL/eglext.h>
#include <gst/gl/gstglfuncs.h>

GST_DEBUG_CATEGORY_STATIC (vsockenc_gl_debug);
#define GST_CAT_DEFAULT vsockenc_gl_debug

typedef struct
{
  const VsockEncDrmOps *ops;
  guint tex;
  guint32 id;
  gint ret;
} Lookup;

/* On the GL thread: texture -> EGL image -> DMA-BUF -> resource id. */
static void
lookup_on_gl_thread (GstGLContext * context, gpointer data)
{
  Lookup *l = data;
  PFNEGLCREATEIMAGEKHRPROC create_image;
  PFNEGLDESTROYIMAGEKHRPROC destroy_image;
  PFNEGLEXPORTDMABUFIMAGEQUERYMESAPROC export_query;
  PFNEGLEXPORTDMABUFIMAGEMESAPROC export_image;
  EGLDisplay dpy = eglGetCurrentDisplay ();
  EGLContext ctx = eglGetCurrentContext ();
  const EGLint attrs[] = { EGL_GL_TEXTURE_LEVEL_KHR, 0, EGL_NONE };
  EGLImageKHR image;
  EGLint fourcc = 0, n_planes = 0, stride = 0, offset = 0;
  EGLuint64KHR modifier = 0;
  int fd = -1;

  l->ret = -ENOTSUP;
  /* GLX or no EGL context: nothing to export from */
  if (dpy == EGL_NO_DISPLAY || ctx == EGL_NO_CONTEXT)
    return;
  create_image = (PFNEGLCREATEIMAGEKHRPROC)
      eglGetProcAddress ("eglCreateImageKHR");
  destroy_image = (PFNEGLDESTROYIMAGEKHRPROC)
      eglGetProcAddress ("eglDestroyImageKHR");
  export_query = (PFNEGLEXPORTDMABUFIMAGEQUERYMESAPROC)
      eglGetProcAddress ("eglExportDMABUFImageQueryMESA");
  export_image = (PFNEGLEXPORTDMABUFIMAGEMESAPROC)
      eglGetProcAddress ("eglExportDMABUFImageMESA");
  if (!create_image || !destroy_image || !export_query || !export_image)
    return;

  image = create_image (dpy, ctx, EGL_GL_TEXTURE_2D_KHR,
      (EGLClientBuffer) (guintptr) l->tex, attrs);
  if (image == EGL_NO_IMAGE_KHR) {
    GST_DEBUG ("texture %u: eglCreateImage failed (0x%x)", l->tex,
        eglGetError ());
    l->ret = -EINVAL;
    return;
  }
  if (!export_query (dpy, image, &fourcc, &n_planes, &modifier)
      || n_planes != 1
      || !export_image (dpy, image, &fd, &stride, &offset) || fd < 0) {
    GST_DEBUG ("texture %u: no single-plane DMA-BUF export (%d planes, "
        "0x%x)", l->tex, n_planes, eglGetError ());
    destroy_image (dpy, image);
    l->ret = -ENOTSUP;
    return;
  }
  destroy_image (dpy, image);
  /* the id belongs to the texture: the fd is only the way to ask */
  l->ret = vsockenc_drm_lookup_resource (l->ops, fd, &l->id);
  GST_DEBUG ("texture %u: fourcc 0x%08x modifier 0x%" G_GINT64_MODIFIER
      "x stride %d -> resource id %u (%d)", l->tex, fourcc,
      (guint64) modifier, stride, l->id, l->ret);
  close (fd);
}

gboolean
vsockenc_gl_is_texture (GstMemory * mem)
{
  return gst_is_gl_memory (mem)
      && gst_gl_memory_get_texture_target ((GstGLMemory *) mem) ==
      GST_GL_TEXTURE_TARGET_2D;
}

gint
vsockenc_gl_lookup_resource (const VsockEncDrmOps * ops, GstMemory * mem,
    guint32 * resource_id)
{
  Lookup l = { ops, gst_gl_memory_get_texture_id ((GstGLMemory *) mem), 0,
    -ENOTSUP
  };
  GstGLContext *context = ((GstGLBaseMemory *) mem)->context;
  static gsize debug_once = 0;

  if (g_once_init_enter (&debug_once)) {
    GST_DEBUG_CATEGORY_INIT (vsockenc_gl_debug, "vsockencgl", 0,
        "vsockenc: GL texture export");
    g_once_init_leave (&debug_once, 1);
  }
  gst_gl_context_thread_add (context, lookup_on_gl_thread, &l);
  *resource_id = l.ret == 0 ? l.id : 0;
  return l.ret;
}

static void
finish_on_gl_thread (GstGLContext * context, gpointer data)
{
  context->gl_vtable->Finish ();
}

void
vsockenc_gl_wait_rendered (GstBuffer * buf)
{
  GstMemory *mem = gst_buffer_peek_memory (buf, 0);
  GstGLContext *context;
  GstGLSyncMeta *sync;
  GstMapInfo map;

  if (!gst_is_gl_memory (mem))
    return;
  context = ((GstGLBaseMemory *) mem)->context;
  /* the producer's fence (it may render on another context) */
  sync = gst_buffer_get_gl_sync_meta (buf);
  if (sync)
    gst_gl_sync_meta_wait_cpu (sync, context);
  /* glupload leaves system memory it wrapped un-uploaded until someone
   * maps the texture for GL (a passthrough glcolorconvert does not): the
   * GL map does that upload. */
  if (gst_memory_map (mem, &map, GST_MAP_READ | GST_MAP_GL))
    gst_memory_unmap (mem, &map);
  /* and glFinish: under virgl it returns once the host has executed
   * everything before it, upload included */
  gst_gl_context_thread_add (context, finish_on_gl_thread, NULL);
}

#else /* !HAVE_VSOCKENC_GL */

gboolean
vsockenc_gl_is_texture (GstMemory * mem)
{
  return FALSE;
}

gint
vsockenc_gl_lookup_resource (const VsockEncDrmOps * ops, GstMemory * mem,
    guint32 * resource_id)
{
  *resource_id = 0;
  return -ENOTSUP;
}

void
vsockenc_gl_wait_rendered (GstBuffer * buf)
{
}

#endif
