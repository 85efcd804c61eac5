/* A helix export surface as a GstBuffer, without a copy: the one wrapper
 * vsocksrc and the bridge's scanout encoder use, with the one policy on
 * DMA-BUF layouts (docs/zero-copy.md).
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#pragma once

#include <gst/video/video.h>
#include "hxfr-export-client.h"

G_BEGIN_DECLS

#define HXFR_SURFACE_ERROR (hxfr_surface_error_quark ())
GQuark hxfr_surface_error_quark (void);

typedef enum
{
  /* the VMM described something no frame can be: an unknown format, a
   * size out of range, planes outside the surface */
  HXFR_SURFACE_ERROR_LAYOUT,
  /* a DMA-BUF layout (modifier) this consumer cannot read; readback can */
  HXFR_SURFACE_ERROR_MODIFIER,
  /* a kind this build cannot wrap (an IOSurface off macOS), or an
   * IOSurface that cannot be looked up or locked */
  HXFR_SURFACE_ERROR_UNSUPPORTED,
} HxfrSurfaceError;

/* How the buffer's consumer reads a DMA-BUF. */
typedef enum
{
  /* maps it and reads the bytes: only a linear layout is right */
  HXFR_SURFACE_MAPPED,
  /* imports it through memory:DMABuf caps of the GStreamer 1.22 kind
   * (a format, no modifier): linear, or the implicit layout the importer
   * and the exporter agree on without saying it */
  HXFR_SURFACE_IMPORTED,
} HxfrSurfaceAccess;

/* @surface as a buffer of one read-only memory, without a copy: the
 * readback slot itself, the DMA-BUF (its descriptor taken by a
 * GstDmaBufAllocator memory), or on macOS the IOSurface, locked read-only.
 * The buffer carries a #GstVideoMeta with the surface's planes; @info (if
 * not NULL) gets its format and size, default layout, framerate 0/1.
 * Takes @surface: the memory owns it (freeing the memory gives it back to
 * the VMM), or it is freed here on failure. A DMA-BUF whose modifier
 * @access cannot read fails with HXFR_SURFACE_ERROR_MODIFIER, never a
 * wrong picture. Every error names the resource. */
GstBuffer *hxfr_surface_wrap (HxexClientSurface * surface,
    HxfrSurfaceAccess access, GstVideoInfo * info, GError ** error);

G_END_DECLS
