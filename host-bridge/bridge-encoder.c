/* Encoder table and property mapping. See bridge-encoder.h.
 *
 * Property names and units come from each element's documentation
 * (gstreamer.freedesktop.org/documentation/<plugin>/<element>.html); only
 * x264enc and openh264enc can run on our CI machines. The others are
 * checked against GStreamer's machine-readable documentation of them and
 * streamed through stand-ins with exactly those properties (the encoders
 * test; docs/deploy.md, "Encoders: what is checked without the
 * hardware"). Every setting is applied only if the element has that
 * property, so a renamed or missing knob is skipped with a debug line
 * instead of a warning.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "bridge-encoder.h"

#include <gst/video/video.h>

GST_DEBUG_CATEGORY_EXTERN (bridge_debug);
#define GST_CAT_DEFAULT bridge_debug

/* x264enc (gst-plugins-ugly): bitrate kbit/s, key-int-max frames.
 * Slice threads (x264's automatic count): the only kind of threading that
 * adds no frame delay. qp-min=15: with slice threads and the VBV that
 * x264enc's CBR sets, a first frame given far more bits than it needs
 * (176x144 at 4 Mbit/s, 320x240 at 8 Mbit/s) came out at QP 51, 16.8 dB
 * luma PSNR, when its rate control wanted a QP under the default floor of
 * 10; with a floor of 12 or 15 no size from 176x144 to 1280x720 at 2 to
 * 100 Mbit/s did. QP 15 is over 50 dB: the floor only trims bits no eye
 * sees, and real desktop bitrates never reach it. */
static const gchar *const x264_settings[] = {
  "tune=zerolatency", "speed-preset=ultrafast", "bframes=0", "b-adapt=false",
  "rc-lookahead=0", "sync-lookahead=0", "sliced-threads=true", "qp-min=15",
  "byte-stream=true", NULL
};

/* openh264enc (gst-plugins-bad): bitrate bit/s, gop-size frames */
static const gchar *const openh264_settings[] = {
  "rate-control=bitrate", "usage-type=screen", "complexity=low",
  "enable-frame-skip=false", NULL
};

/* nvh264enc (nvcodec): bitrate kbit/s, gop-size frames (-1 = infinite) */
static const gchar *const nvh264_settings[] = {
  "bframes=0", "zerolatency=true", "rc-mode=cbr", "preset=low-latency-hq",
  "rc-lookahead=0", NULL
};

/* vah264enc / vah264lpenc (va): bitrate kbit/s, key-int-max frames */
static const gchar *const va_settings[] = {
  "b-frames=0", "rate-control=cbr", "target-usage=7", NULL
};

/* qsvh264enc (qsv): bitrate kbit/s, gop-size frames */
static const gchar *const qsv_settings[] = {
  "b-frames=0", "rate-control=cbr", "target-usage=7", "low-latency=true",
  NULL
};

/* vtenc_h264_hw (applemedia): bitrate kbit/s, max-keyframe-interval frames
 * (0 = automatic); frame reordering is on by default and means B-frames */
static const gchar *const vtenc_settings[] = {
  "realtime=true", "allow-frame-reordering=false", NULL
};

static const BridgeEncoder encoders[] = {
  {"vtenc_h264_hw", "bitrate", 1000, "max-keyframe-interval", G_MAXINT64,
      vtenc_settings},
  {"vtenc_h264", "bitrate", 1000, "max-keyframe-interval", G_MAXINT64,
      vtenc_settings},
  {"nvh264enc", "bitrate", 1000, "gop-size", -1, nvh264_settings},
  {"vah264enc", "bitrate", 1000, "key-int-max", G_MAXINT64, va_settings},
  {"vah264lpenc", "bitrate", 1000, "key-int-max", G_MAXINT64, va_settings},
  {"qsvh264enc", "bitrate", 1000, "gop-size", G_MAXINT64, qsv_settings},
  {"x264enc", "bitrate", 1000, "key-int-max", 1 << 30, x264_settings},
  {"openh264enc", "bitrate", 1, "gop-size", 1 << 30, openh264_settings},
};

static const gchar *const auto_order[] = {
#ifdef __APPLE__
  "vtenc_h264_hw",
#endif
  "nvh264enc", "vah264enc", "vah264lpenc", "qsvh264enc", "x264enc",
  "openh264enc",
};

const BridgeEncoder *
bridge_encoder_lookup (const gchar * name)
{
  guint i;

  for (i = 0; i < G_N_ELEMENTS (encoders); i++)
    if (g_str_equal (encoders[i].name, name))
      return &encoders[i];
  return NULL;
}

const BridgeEncoder *
bridge_encoder_get (guint i)
{
  return i < G_N_ELEMENTS (encoders) ? &encoders[i] : NULL;
}

const gchar *
bridge_encoder_auto (void)
{
  guint i;

  for (i = 0; i < G_N_ELEMENTS (auto_order); i++) {
    GstElementFactory *f = gst_element_factory_find (auto_order[i]);

    if (f) {
      gst_object_unref (f);
      return auto_order[i];
    }
  }
  return NULL;
}

static void
set_number (GstElement * enc, const gchar * prop, gint64 value)
{
  GParamSpec *pspec =
      g_object_class_find_property (G_OBJECT_GET_CLASS (enc), prop);
  GValue v = G_VALUE_INIT;

  if (!pspec) {
    GST_DEBUG ("%s has no property %s", GST_OBJECT_NAME (enc), prop);
    return;
  }
  g_value_init (&v, pspec->value_type);
  switch (pspec->value_type) {
    case G_TYPE_UINT:{
      GParamSpecUInt *p = G_PARAM_SPEC_UINT (pspec);

      g_value_set_uint (&v, CLAMP (value, (gint64) p->minimum,
              (gint64) p->maximum));
      break;
    }
    case G_TYPE_INT:{
      GParamSpecInt *p = G_PARAM_SPEC_INT (pspec);

      g_value_set_int (&v, CLAMP (value, p->minimum, p->maximum));
      break;
    }
    case G_TYPE_UINT64:{
      GParamSpecUInt64 *p = G_PARAM_SPEC_UINT64 (pspec);

      g_value_set_uint64 (&v, CLAMP ((guint64) MAX (value, 0), p->minimum,
              p->maximum));
      break;
    }
    case G_TYPE_INT64:{
      GParamSpecInt64 *p = G_PARAM_SPEC_INT64 (pspec);

      g_value_set_int64 (&v, CLAMP (value, p->minimum, p->maximum));
      break;
    }
    default:
      GST_WARNING ("%s.%s is not a number", GST_OBJECT_NAME (enc), prop);
      g_value_unset (&v);
      return;
  }
  g_object_set_property (G_OBJECT (enc), prop, &v);
  g_value_unset (&v);
}

void
bridge_encoder_set_bitrate (GstElement * enc, const BridgeEncoder * desc,
    guint32 bitrate)
{
  const gchar *prop = desc ? desc->bitrate_prop : "bitrate";
  guint divisor = desc ? desc->bitrate_divisor : 1000;

  if (bitrate == 0)
    return;
  GST_INFO ("%s: bitrate %u bit/s", GST_OBJECT_NAME (enc), bitrate);
  set_number (enc, prop, MAX ((gint64) bitrate / divisor, 1));
}

void
bridge_encoder_configure (GstElement * enc, const BridgeEncoder * desc,
    guint32 bitrate)
{
  const gchar *const *s;

  if (desc) {
    for (s = desc->settings; *s; s++) {
      gchar **kv = g_strsplit (*s, "=", 2);

      if (g_object_class_find_property (G_OBJECT_GET_CLASS (enc), kv[0]))
        gst_util_set_object_arg (G_OBJECT (enc), kv[0], kv[1]);
      else
        GST_DEBUG ("%s has no property %s", desc->name, kv[0]);
      g_strfreev (kv);
    }
    /* the session forces every IDR (guest flag, KEYFRAME_REQ, interval),
     * so the encoder's own GOP is made as long as it goes */
    if (desc->gop_unlimited == G_MAXINT64) {
      GParamSpec *pspec = g_object_class_find_property (G_OBJECT_GET_CLASS
          (enc), desc->gop_prop);

      if (pspec && G_IS_PARAM_SPEC_UINT (pspec))
        set_number (enc, desc->gop_prop, G_PARAM_SPEC_UINT (pspec)->maximum);
      else if (pspec && G_IS_PARAM_SPEC_INT (pspec))
        set_number (enc, desc->gop_prop, G_PARAM_SPEC_INT (pspec)->maximum);
    } else {
      set_number (enc, desc->gop_prop, desc->gop_unlimited);
    }
  }
  bridge_encoder_set_bitrate (enc, desc, bitrate);
}

gboolean
bridge_encoder_takes_all_formats (GstElementFactory * factory)
{
  static const gchar *const formats[] = {
    "NV12", "I420", "BGRA", "BGRx", "RGBA", "RGBx"
  };
  const GList *l;
  guint i;

  for (l = gst_element_factory_get_static_pad_templates (factory); l;
      l = l->next) {
    GstStaticPadTemplate *t = l->data;
    GstCaps *tcaps;
    gboolean all = TRUE;

    if (t->direction != GST_PAD_SINK)
      continue;
    tcaps = gst_static_caps_get (&t->static_caps);
    for (i = 0; i < G_N_ELEMENTS (formats) && all; i++) {
      GstCaps *c = gst_caps_new_simple ("video/x-raw", "format",
          G_TYPE_STRING, formats[i], NULL);

      all = gst_caps_can_intersect (c, tcaps);
      gst_caps_unref (c);
    }
    gst_caps_unref (tcaps);
    return all;
  }
  return FALSE;
}

GstElement *
bridge_bin_add (GstElement * bin, const gchar * factory, const gchar * name,
    GError ** error)
{
  GstElement *e = gst_element_factory_make (factory, name);

  if (!e) {
    if (error && !*error)
      g_set_error (error, GST_CORE_ERROR, GST_CORE_ERROR_MISSING_PLUGIN,
          "element %s is not installed", factory);
    return NULL;
  }
  gst_bin_add (GST_BIN (bin), e);
  return e;
}
