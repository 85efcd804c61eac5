/* HXFR formats as GStreamer video formats: the one mapping both elements
 * (and the tests) use. Kept apart from the codec so that the codec stays
 * free of GStreamer.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#pragma once

#include <gst/video/video.h>
#include "hxfr-protocol.h"

G_BEGIN_DECLS

/* Every raw format the protocol carries, as GStreamer caps list them */
#define HXFR_VIDEO_FORMATS "{ NV12, I420, BGRA, BGRx, RGBA, RGBx }"

/* The fourcc that labels @format on the wire of protocol @version, 0 when
 * that version cannot carry it. v1 has no X variants: BGRx and RGBx go as
 * AR24 and AB24 (what v1 hosts expect), I420 not at all. */
guint32 hxfr_video_format_to_fourcc (GstVideoFormat format, guint version);

/* GST_VIDEO_FORMAT_UNKNOWN for a fourcc the protocol does not carry. */
GstVideoFormat hxfr_video_format_from_fourcc (guint32 fourcc);

/* Bytes of the access unit delimiter NAL that opens @au (start code
 * included), up to the next start code; 0 if @au does not begin with one,
 * or is nothing but one (the bridge's null encoder). */
gsize hxfr_video_au_aud_length (const guint8 * au, gsize size);
/* TRUE if @au begins with an access unit delimiter (also when it is
 * nothing but one). */
gboolean hxfr_video_au_opens_with_aud (const guint8 * au, gsize size);

G_END_DECLS
