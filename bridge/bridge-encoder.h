/* The encoders helix-host-bridge knows (H.264, H.265, AV1), and how the
 * guest's bitrate, keyframe interval and low-latency wishes map onto each
 * one's properties.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#pragma once

#include <gst/gst.h>
#include "hxfr-protocol.h"

G_BEGIN_DECLS

typedef struct
{
  const gchar *name;            /* element factory name */
  guint32 codec;                /* HXFR_CODEC_* it produces */
  const gchar *bitrate_prop;
  guint bitrate_divisor;        /* 1000: the property is in kbit/s */
  const gchar *gop_prop;        /* maximum distance between IDRs */
  gint64 gop_unlimited;         /* value meaning "only when forced"; G_MAXINT64:
                                 * the property's maximum (av1enc: a bounded
                                 * distance, bridge-encoder.c says why) */
  const gchar *const *settings; /* "property=value" for low latency and no
                                 * B-frames, each set only if it exists */
  gboolean keyframes_by_restart;        /* it ignores keyframe requests: a
                                         * scanout restarts it for one */
} BridgeEncoder;

/* The bench-only encoder: answers every frame with a fixed tiny access
 * unit, no encoding. */
#define BRIDGE_ENCODER_NULL "null"

/* An encoder chosen for a codec: what a pipeline is built from
 * (bridge-pipeline.h). */
typedef struct
{
  guint32 codec;                /* HXFR_CODEC_* */
  const gchar *name;            /* factory name, or BRIDGE_ENCODER_NULL */
  const BridgeEncoder *desc;    /* its property mapping, or NULL */
  gboolean need_convert;        /* videoconvert to 4:2:0 in front of it */
} BridgeEncoderChoice;

/* The codecs the bridge can be asked for: H.264, H.265, AV1. */
#define BRIDGE_N_CODECS 3

/* 0 .. BRIDGE_N_CODECS - 1 for HXFR_CODEC_H264, _H265, _AV1; -1 else. */
gint bridge_codec_index (guint32 codec);

/* The inverse: HXFR_CODEC_* of index @i. */
guint32 bridge_codec_get (guint i);

/* "H.264", "H.265", "AV1"; NULL for any other codec. */
const gchar *bridge_codec_name (guint32 codec);

/* "h264", "h265", "av1" (as --help and the guest elements spell them) to
 * HXFR_CODEC_*; 0 for anything else. */
guint32 bridge_codec_from_string (const gchar * s);

/* Known encoder by name, or NULL (any other factory name still works, with
 * no mapping beyond "bitrate" in kbit/s; its codec is read from its src
 * template by bridge_encoder_codec_of()). */
const BridgeEncoder *bridge_encoder_lookup (const gchar * name);

/* The @i-th entry of the table, NULL past its end. */
const BridgeEncoder *bridge_encoder_get (guint i);

/* The automatic choice for @codec: the first present of the table's
 * entries for it in order (hardware first; VideoToolbox only on macOS).
 * NULL if none is installed. */
const gchar *bridge_encoder_auto (guint32 codec);

/* The automatic candidates for @codec, ", "-separated, for messages. */
gchar *bridge_encoder_auto_list (guint32 codec);

/* The codec @factory produces (HXFR_CODEC_*): the table's for a known
 * encoder, else read from its src template; 0 if none of ours. */
guint32 bridge_encoder_codec_of (GstElementFactory * factory);

/* Sets the low-latency settings, the bitrate (bit/s, 0 = leave) and puts
 * keyframes under the bridge's control. */
void bridge_encoder_configure (GstElement * enc, const BridgeEncoder * desc,
    guint32 bitrate);

/* A running encoder: new bitrate in bit/s. */
void bridge_encoder_set_bitrate (GstElement * enc, const BridgeEncoder * desc,
    guint32 bitrate);

/* TRUE if the encoder's sink template takes every raw format a guest can
 * send, so no videoconvert is needed in front of it. */
gboolean bridge_encoder_takes_all_formats (GstElementFactory * factory);

/* Makes a @factory element (named @name, or NULL) inside @bin, which then
 * owns it, so a failed build is freed with the bin. NULL with @error set
 * (the first missing element only) if @factory is not installed. */
GstElement *bridge_bin_add (GstElement * bin, const gchar * factory,
    const gchar * name, GError ** error);

G_END_DECLS
