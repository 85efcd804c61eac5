/* Encoder table and property mapping. See bridge-encoder.h.
 *
 * Property names and units come from each element's documentation
 * (gstreamer.freedesktop.org/documentation/<plugin>/<element>.html); only
 * x264enc, openh264enc, x265enc and av1enc can run on our CI machines. The others are
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
 * (0 = automatic); frame reordering is on by default and means B-frames.
 * vtenc_h265_hw: the same properties. */
static const gchar *const vtenc_settings[] = {
  "realtime=true", "allow-frame-reordering=false", NULL
};

/* nvh265enc: nvh264enc's properties (GstNvBaseEnc) */
#define nvh265_settings nvh264_settings

/* qsvh265enc: no low-latency property */
static const gchar *const qsvh265_settings[] = {
  "b-frames=0", "rate-control=cbr", "target-usage=7", NULL
};

/* qsvav1enc (1.22): no B-frames in its AV1 encoding at all */
static const gchar *const qsvav1_settings[] = {
  "rate-control=cbr", "target-usage=7", NULL
};

/* nvav1enc (nvcodec, GStreamer 1.24: the newer NVENC family's properties,
 * not GstNvBaseEnc's) */
static const gchar *const nvav1_settings[] = {
  "b-frames=0", "rc-mode=cbr", "preset=p1", "tune=ultra-low-latency",
  "rc-lookahead=0", NULL
};

/* x265enc (gst-plugins-bad): bitrate kbit/s, key-int-max frames (0 = x265's
 * default of 250). zerolatency is x265's own low-latency tune: no
 * B-frames, no lookahead, no scene-cut keyframes, one frame thread. */
static const gchar *const x265_settings[] = {
  "tune=zerolatency", "speed-preset=ultrafast", NULL
};

/* svtav1enc (trixie; gst-plugins-bad from 1.24): target-bitrate kbit/s,
 * intra-period-length frames. Its fastest preset, and SVT-AV1's low-delay
 * prediction structure (no frame is coded before one it shows after) with
 * CBR: low delay refuses the VBR that a target bitrate otherwise selects
 * ("svt_av1_enc_set_parameter failed", trixie's SVT-AV1, seen in
 * scripts/check-newer-gst). SVT-AV1 makes no keyframe on request, so it is
 * treated as av1enc: a keyframe every AV1ENC_KEYFRAME_DISTANCE frames, a
 * restart for a scanout. Not on bookworm: run only in the trixie root. */
static const gchar *const svtav1_settings[] = {
  "preset=12", "parameters-string=pred-struct=1:rc=2", NULL
};

/* av1enc (libaom, gst-plugins-bad): target-bitrate kbit/s,
 * keyframe-max-dist frames. libaom's real-time mode at its fastest
 * setting for it (cpu-used 10), no frames held back, constant bitrate.
 * max-quantizer: the element's default of 0 hands libaom a quantizer
 * range of [0, 0], on which its real-time CBR aborts the process (an
 * assertion in rc_pick_q_and_bounds_no_stats_cbr, bookworm's libaom 3.6);
 * 63 is libaom's own default. Keyframes: GStreamer 1.22's av1enc ignores
 * keyframe requests (force-key-unit events: checked, none came), so it
 * makes one every AV1ENC_KEYFRAME_DISTANCE frames itself, and a frame
 * session's request is served by the next of those; a scanout restarts
 * it instead (keyframes_by_restart: its first frame is a keyframe), since
 * a static screen is encoded only every quiet interval. */
#define AV1ENC_KEYFRAME_DISTANCE 60
static const gchar *const av1enc_settings[] = {
  "usage-profile=realtime", "cpu-used=10", "lag-in-frames=0",
  "end-usage=cbr", "keyframe-mode=auto", "row-mt=true",
  "min-quantizer=0", "max-quantizer=63", NULL
};

static const BridgeEncoder encoders[] = {
  {"vtenc_h264_hw", HXFR_CODEC_H264, "bitrate", 1000, "max-keyframe-interval",
      G_MAXINT64, vtenc_settings},
  {"vtenc_h264", HXFR_CODEC_H264, "bitrate", 1000, "max-keyframe-interval",
      G_MAXINT64, vtenc_settings},
  {"nvh264enc", HXFR_CODEC_H264, "bitrate", 1000, "gop-size", -1,
      nvh264_settings},
  {"vah264enc", HXFR_CODEC_H264, "bitrate", 1000, "key-int-max", G_MAXINT64,
      va_settings},
  {"vah264lpenc", HXFR_CODEC_H264, "bitrate", 1000, "key-int-max", G_MAXINT64,
      va_settings},
  {"qsvh264enc", HXFR_CODEC_H264, "bitrate", 1000, "gop-size", G_MAXINT64,
      qsv_settings},
  {"x264enc", HXFR_CODEC_H264, "bitrate", 1000, "key-int-max", 1 << 30,
      x264_settings},
  {"openh264enc", HXFR_CODEC_H264, "bitrate", 1, "gop-size", 1 << 30,
      openh264_settings},
  {"vtenc_h265_hw", HXFR_CODEC_H265, "bitrate", 1000, "max-keyframe-interval",
      G_MAXINT64, vtenc_settings},
  {"nvh265enc", HXFR_CODEC_H265, "bitrate", 1000, "gop-size", -1,
      nvh265_settings},
  {"vah265enc", HXFR_CODEC_H265, "bitrate", 1000, "key-int-max", G_MAXINT64,
      va_settings},
  {"vah265lpenc", HXFR_CODEC_H265, "bitrate", 1000, "key-int-max",
      G_MAXINT64, va_settings},
  {"qsvh265enc", HXFR_CODEC_H265, "bitrate", 1000, "gop-size", G_MAXINT64,
      qsvh265_settings},
  {"x265enc", HXFR_CODEC_H265, "bitrate", 1000, "key-int-max", G_MAXINT64,
      x265_settings},
  {"nvav1enc", HXFR_CODEC_AV1, "bitrate", 1000, "gop-size", -1,
      nvav1_settings},
  {"vaav1enc", HXFR_CODEC_AV1, "bitrate", 1000, "key-int-max", G_MAXINT64,
      va_settings},
  {"qsvav1enc", HXFR_CODEC_AV1, "bitrate", 1000, "gop-size", G_MAXINT64,
      qsvav1_settings},
  {"svtav1enc", HXFR_CODEC_AV1, "target-bitrate", 1000, "intra-period-length",
      AV1ENC_KEYFRAME_DISTANCE, svtav1_settings, TRUE},
  {"av1enc", HXFR_CODEC_AV1, "target-bitrate", 1000, "keyframe-max-dist",
      AV1ENC_KEYFRAME_DISTANCE, av1enc_settings, TRUE},
};

/* the automatic choice, per codec: hardware first, then software */
static const gchar *const auto_order[] = {
#ifdef __APPLE__
  "vtenc_h264_hw", "vtenc_h265_hw",
#endif
  "nvh264enc", "vah264enc", "vah264lpenc", "qsvh264enc", "x264enc",
  "openh264enc",
  "nvh265enc", "vah265enc", "vah265lpenc", "qsvh265enc", "x265enc",
  /* not svtav1enc: trixie's gave 1 access unit for 20 frames in its
   * low-delay CBR mode (check-newer-gst); --encoder svtav1enc still
   * chooses it */
  "nvav1enc", "vaav1enc", "qsvav1enc", "av1enc",
};

static const struct
{
  guint32 codec;
  const gchar *name;
  const gchar *id;
  const gchar *media_type;
} codecs[] = {
  {HXFR_CODEC_H264, "H.264", "h264", "video/x-h264"},
  {HXFR_CODEC_H265, "H.265", "h265", "video/x-h265"},
  {HXFR_CODEC_AV1, "AV1", "av1", "video/x-av1"},
};

G_STATIC_ASSERT (G_N_ELEMENTS (codecs) == BRIDGE_N_CODECS);

gint
bridge_codec_index (guint32 codec)
{
  guint i;

  for (i = 0; i < G_N_ELEMENTS (codecs); i++)
    if (codecs[i].codec == codec)
      return i;
  return -1;
}

guint32
bridge_codec_get (guint i)
{
  g_return_val_if_fail (i < G_N_ELEMENTS (codecs), 0);
  return codecs[i].codec;
}

const gchar *
bridge_codec_name (guint32 codec)
{
  gint i = bridge_codec_index (codec);

  return i < 0 ? NULL : codecs[i].name;
}

guint32
bridge_codec_from_string (const gchar * s)
{
  guint i;

  for (i = 0; s && i < G_N_ELEMENTS (codecs); i++)
    if (g_ascii_strcasecmp (codecs[i].id, s) == 0)
      return codecs[i].codec;
  return 0;
}

guint32
bridge_encoder_codec_of (GstElementFactory * factory)
{
  const BridgeEncoder *desc =
      bridge_encoder_lookup (gst_plugin_feature_get_name (factory));
  const GList *l;
  guint i;

  if (desc)
    return desc->codec;
  for (l = gst_element_factory_get_static_pad_templates (factory); l;
      l = l->next) {
    GstStaticPadTemplate *t = l->data;
    GstCaps *tcaps;
    guint32 codec = 0;

    if (t->direction != GST_PAD_SRC)
      continue;
    tcaps = gst_static_caps_get (&t->static_caps);
    for (i = 0; i < G_N_ELEMENTS (codecs) && !codec; i++) {
      GstCaps *c = gst_caps_new_empty_simple (codecs[i].media_type);

      if (gst_caps_can_intersect (c, tcaps))
        codec = codecs[i].codec;
      gst_caps_unref (c);
    }
    gst_caps_unref (tcaps);
    return codec;
  }
  return 0;
}

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
bridge_encoder_auto (guint32 codec)
{
  guint i;

  for (i = 0; i < G_N_ELEMENTS (auto_order); i++) {
    GstElementFactory *f;

    if (bridge_encoder_lookup (auto_order[i])->codec != codec)
      continue;
    f = gst_element_factory_find (auto_order[i]);

    if (f) {
      gst_object_unref (f);
      return auto_order[i];
    }
  }
  return NULL;
}

gchar *
bridge_encoder_auto_list (guint32 codec)
{
  GString *s = g_string_new (NULL);
  guint i;

  for (i = 0; i < G_N_ELEMENTS (auto_order); i++)
    if (bridge_encoder_lookup (auto_order[i])->codec == codec)
      g_string_append_printf (s, "%s%s", s->len ? ", " : "", auto_order[i]);
  return g_string_free (s, FALSE);
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
