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

/* An access unit delimiter NAL, Annex B with a 4-byte start code,
 * primary_pic_type 7 (any slice type): what the encoders put in front of
 * an access unit, and the whole answer of the bridge's null encoder. */
extern const guint8 hxfr_video_aud[6];

/* The first NAL unit of @type (nal_unit_type, e.g. 7 = SPS) in the Annex B
 * access unit @au: a pointer to its header byte and, in *nal_size, its
 * bytes up to the next start code or the end. NULL if there is none. */
const guint8 *hxfr_video_au_find_nal (const guint8 * au, gsize size,
    guint type, gsize * nal_size);

/* The same for H.265 (its nal_unit_type, e.g. 33 = SPS; the pointer is to
 * the first of its two header bytes). */
const guint8 *hxfr_video_au_find_h265_nal (const guint8 * au, gsize size,
    guint type, gsize * nal_size);

/* Copies at most @out_size bytes of NAL payload @nal into @out without its
 * emulation prevention bytes (the 3 of 00 00 03), as codec-utils' parsers
 * of profile and level want them. Returns the bytes written. */
gsize hxfr_video_nal_unescape (const guint8 * nal, gsize size, guint8 * out,
    gsize out_size);

/* Bytes of the access unit delimiter NAL that opens @au (start code
 * included), up to the next start code; 0 if @au does not begin with one,
 * or is nothing but one (the bridge's null encoder). */
gsize hxfr_video_au_aud_length (const guint8 * au, gsize size);
/* TRUE if @au begins with an access unit delimiter (also when it is
 * nothing but one). */
gboolean hxfr_video_au_opens_with_aud (const guint8 * au, gsize size);

G_END_DECLS
