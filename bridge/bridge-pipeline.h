/* The encoder chain both kinds of pipeline share: a guest's frames
 * (bridge-session.c, vsocksrc in front) and a VM's scanout
 * (bridge-scanout.c, appsrc in front).
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#pragma once

#include <gst/gst.h>
#include "bridge-encoder.h"

G_BEGIN_DECLS

/* Adds to @bin and links
 *   [rgb-to-i420 ! videoconvert ! capsfilter (NV12/I420)] ! encoder !
 *   parser ! capsfilter
 * (rgb-to-i420: a guest's RGB frames made I420 by libyuv, when the build
 * has it: bridge-convert.h)
 * for @choice (its codec's parser, headers before every keyframe, and the
 * codec's output form: byte-stream access units for H.264 and H.265, an
 * OBU stream of temporal units for AV1), the encoder configured at
 * @bitrate (bit/s, 0 = leave) and named @encoder_name (or NULL).
 * *@first is where raw video goes in, *@last where the coded stream comes
 * out, *@encoder the encoder (all owned by @bin). FALSE with @error set if
 * an element is missing or does not link; @bin may then hold some of them
 * (its owner frees it). */
gboolean bridge_pipeline_add_encoder (GstElement * bin,
    const BridgeEncoderChoice * choice, guint32 bitrate,
    const gchar * encoder_name, GstElement ** first, GstElement ** encoder,
    GstElement ** last, GError ** error);

/* The same for a scanout's encoder: a queue hands the converted frame to
 * the encoder's own thread, and with @scaled a videoscale goes before the
 * 4:2:0 capsfilter, *@size_filter, whose size is set with
 * bridge_pipeline_set_size() before the first frame and on each change
 * (*@size_filter NULL when not @scaled):
 *   videoconvert ! [videoscale !] capsfilter ! queue ! encoder ! ... */
gboolean bridge_pipeline_add_scanout_encoder (GstElement * bin,
    const BridgeEncoderChoice * choice, guint32 bitrate, gboolean scaled,
    GstElement ** first, GstElement ** encoder, GstElement ** last,
    GstElement ** size_filter, GError ** error);

/* What @size_filter lets through: 4:2:0 at @width x @height, square
 * pixels. */
void bridge_pipeline_set_size (GstElement * size_filter, guint32 width,
    guint32 height);

/* The caps bridge_pipeline_add_encoder()'s chain outputs for @codec
 * (HXFR_CODEC_*), or NULL for a codec it cannot make. */
GstCaps *bridge_pipeline_output_caps (guint32 codec);

G_END_DECLS
