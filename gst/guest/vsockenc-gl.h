/* vsockenc: GL memory in, virtio-gpu resource ids out. A GL texture of a
 * virgl guest is a virtio-gpu resource whose pixels live on the host: the
 * texture is exported once as a DMA-BUF (EGL image, then
 * eglExportDMABUFImageMESA), the DMA-BUF turned into the resource id with
 * the same DRM calls as any DMA-BUF input (vsockenc-drm.h), and the id is
 * cached on the memory, so a pool of textures costs one export each.
 * Anything that cannot be exported goes as pixels (GstGL downloads it when
 * the buffer is mapped).
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#pragma once

#include <gst/gst.h>
#include "vsockenc-drm.h"

G_BEGIN_DECLS

#ifdef HAVE_VSOCKENC_GL
#include <gst/gl/gl.h>
/* Sink caps for GL input: single-plane RGBA textures, the layouts the
 * host's helix export reads back (BGRA textures hold swizzled bytes in an
 * RGBA texture, so they are left to the pixel path). */
#define VSOCKENC_GL_CAPS "; " GST_VIDEO_CAPS_MAKE_WITH_FEATURES ( \
    GST_CAPS_FEATURE_MEMORY_GL_MEMORY, "{ RGBA, RGBx }") \
    ", texture-target = (string) 2D"
#else
#define VSOCKENC_GL_CAPS ""
#endif

/* TRUE if @mem is a 2D GL texture whose resource id vsockenc_gl_lookup
 * may find. */
gboolean vsockenc_gl_is_texture (GstMemory * mem);

/* The virtio-gpu resource id behind the GL texture @mem, through @ops on
 * the virtio-gpu render node; 0 or a negative errno. Runs on the memory's
 * GL thread. */
gint vsockenc_gl_lookup_resource (const VsockEncDrmOps * ops, GstMemory * mem,
    guint32 * resource_id);

/* Blocks until @buf's texture holds the frame on the host: the buffer's
 * GL sync meta, a GL map (a pending upload from system memory happens
 * there), then glFinish. The bridge reads the texture as soon as it has
 * the id. No-op for other memory. */
void vsockenc_gl_wait_rendered (GstBuffer * buf);

G_END_DECLS
