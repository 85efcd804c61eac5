/* vsockenc's frames: a DMA-BUF's virtio-gpu resource id, the pixels of a
 * frame as the request's vectors, and the access units that come back
 * (AUD, profile). Streaming thread (and reader thread for the access unit
 * helpers); no locks of the element's.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#pragma once

#include <gst/gst.h>
#include <gst/video/video.h>

#include "hxfr-protocol.h"
#include "hxfr-transport.h"
#include "vsockenc-drm.h"

G_BEGIN_DECLS

GST_DEBUG_CATEGORY_EXTERN (gst_vsock_enc_debug);

/* The render node used to look up resource ids: opened on the first
 * DMA-BUF (or replaced by a test's VSOCKENC_DRM_OPS_KEY hook). */
typedef struct
{
  const VsockEncDrmOps *ops;    /* NULL: no lookups */
  VsockEncDrmOps real;
  gint fd;
  gboolean tried;
} VsockEncResources;

void vsockenc_resources_init (VsockEncResources * r);
/* Closes the render node; the next lookup tries again. */
void vsockenc_resources_reset (VsockEncResources * r);
/* The virtio-gpu resource id of a single-DMA-BUF (or GL texture) buffer, 0
 * if none; *@mem_offset its memory's offset. Cached on the memory. */
guint32 vsockenc_resources_lookup (VsockEncResources * r, GstElement * elem,
    const gchar * device, GstBuffer * buf, gsize * mem_offset);

/* One request being built and sent: what must be released after. */
typedef struct
{
  HxfrFrameRequest req;
  GOutputVector vec[HXFR_MAX_PLANES];
  guint n_vec;
  GstBuffer *input;             /* our reference */
  GstVideoFrame vf;
  gboolean mapped;
  guint8 *repacked;
} VsockEncRequest;

/* Fills @r for @input: with req.resource_id already set, the layout of
 * the resource (from its GstVideoMeta, at @mem_offset); else the mapped
 * pixels (repacked only when their layout cannot go as is for @version).
 * An error is posted on @elem's bus; @r is cleared then. */
GstFlowReturn vsockenc_request_fill (VsockEncRequest * r, GstElement * elem,
    const GstVideoInfo * info, guint version, gsize mem_offset);
void vsockenc_request_clear (VsockEncRequest * r);

/* An access unit with its leading AUD removed (@want_aud FALSE) or added
 * (TRUE). */
GstBuffer *vsockenc_au_set_aud (GstBuffer * au, gboolean want_aud);

G_END_DECLS
