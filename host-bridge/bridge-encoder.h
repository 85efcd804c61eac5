/* The H.264 encoders helix-host-bridge knows, and how the guest's bitrate,
 * keyframe interval and low-latency wishes map onto each one's properties.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#pragma once

#include <gst/gst.h>

G_BEGIN_DECLS

typedef struct
{
  const gchar *name;            /* element factory name */
  const gchar *bitrate_prop;
  guint bitrate_divisor;        /* 1000: the property is in kbit/s */
  const gchar *gop_prop;        /* maximum distance between IDRs */
  gint64 gop_unlimited;         /* value meaning "only when forced"; G_MAXINT64:
                                 * the property's maximum */
  const gchar *const *settings; /* "property=value" for low latency and no
                                 * B-frames, each set only if it exists */
} BridgeEncoder;

/* The bench-only encoder: answers every frame with a fixed tiny access
 * unit, no encoding. */
#define BRIDGE_ENCODER_NULL "null"

/* Known encoder by name, or NULL (any other factory name still works, with
 * no mapping beyond "bitrate" in kbit/s). */
const BridgeEncoder *bridge_encoder_lookup (const gchar * name);

/* The @i-th entry of the table, NULL past its end. */
const BridgeEncoder *bridge_encoder_get (guint i);

/* The automatic choice: vtenc_h264_hw on macOS, else the first present of
 * nvh264enc, vah264enc, vah264lpenc, qsvh264enc, x264enc, openh264enc.
 * NULL if none is installed. */
const gchar *bridge_encoder_auto (void);

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
