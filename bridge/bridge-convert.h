/* A scanout's picture (4-byte RGB, as the export carries it) made 4:2:0
 * once per frame, before its encoders, and a frame session's RGB frames
 * by an element in front of its videoconvert: libyuv's converters take
 * about a fifth of videoconvert's time for BGRA to I420 at 1080p
 * (docs/performance.md, "The conversion with libyuv"), and every
 * rendition of a scanout shares the result. Without libyuv in the build
 * the pictures go on as they are, and the pipelines' videoconvert does
 * the work as before.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#pragma once

#include <gst/video/video.h>

G_BEGIN_DECLS

typedef struct _BridgeConvert BridgeConvert;

BridgeConvert *bridge_convert_new (void);
void bridge_convert_free (BridgeConvert * convert);

/* Whether this build converts here (libyuv), for the logs and the bench. */
gboolean bridge_convert_available (void);

/* Whether this build converts @format (the 4-byte RGB orders) to I420. */
gboolean bridge_convert_handles (GstVideoFormat format);

/* @in (an RGB order bridge_convert_handles() takes) into @out (I420 of
 * the same size), BT.601 limited range; FALSE if either is not that. */
gboolean bridge_convert_frame (const GstVideoFrame * in, GstVideoFrame * out);

/* An element that makes RGB frames I420 this way and passes other formats
 * through (bridge-rgb-to-i420.c), for a frame session's chain in front of
 * its videoconvert; NULL without libyuv. */
GstElement *bridge_rgb_to_i420_new (void);

/* @buf (described by @info) as I420, BT.601 limited range, the matrix
 * libyuv has (the encoders write it into the stream's VUI, so decoders
 * convert back with the same one): a new buffer from @convert's pool,
 * described by *@out_info. NULL when this build or @info's format
 * cannot (then @buf goes to the encoders as it is). One thread at a time
 * per @convert. */
GstBuffer *bridge_convert_to_i420 (BridgeConvert * convert, GstBuffer * buf,
    const GstVideoInfo * info, GstVideoInfo * out_info);

G_END_DECLS
