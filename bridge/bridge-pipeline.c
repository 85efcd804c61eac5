/* The encoder chain. See bridge-pipeline.h.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "bridge-pipeline.h"
#include "bridge-convert.h"

GST_DEBUG_CATEGORY_EXTERN (bridge_debug);
#define GST_CAT_DEFAULT bridge_debug

static const struct
{
  guint32 codec;
  const gchar *parser;
  gboolean config_interval;     /* the parser repeats the headers itself */
  const gchar *caps;
} chains[] = {
  /* config-interval=-1: SPS/PPS (and VPS) before every IDR, so a
   * subscriber or a guest joining at any keyframe can decode it */
  {HXFR_CODEC_H264, "h264parse", TRUE,
      "video/x-h264,stream-format=byte-stream,alignment=au"},
  {HXFR_CODEC_H265, "h265parse", TRUE,
      "video/x-h265,stream-format=byte-stream,alignment=au"},
  /* av1parse cannot insert a sequence header: the encoders write one with
   * every keyframe themselves (libaom, SVT-AV1 and the hardware ones) */
  {HXFR_CODEC_AV1, "av1parse", FALSE,
      "video/x-av1,stream-format=obu-stream,alignment=tu"},
};

static gint
chain_index (guint32 codec)
{
  guint i;

  for (i = 0; i < G_N_ELEMENTS (chains); i++)
    if (chains[i].codec == codec)
      return i;
  return -1;
}

GstCaps *
bridge_pipeline_output_caps (guint32 codec)
{
  gint i = chain_index (codec);

  return i < 0 ? NULL : gst_caps_from_string (chains[i].caps);
}

/* @scanout: with @size_filter a scaler (*@size_filter: the capsfilter
 * behind it), and a hand-over queue after the conversion when there is
 * one to overlap with the encode */
static gboolean
add_chain (GstElement * bin, const BridgeEncoderChoice * choice,
    guint32 bitrate, const gchar * encoder_name, gboolean scanout,
    GstElement ** first, GstElement ** encoder, GstElement ** last,
    GstElement ** size_filter, GError ** error)
{
  GstElement *rgb = NULL, *convert = NULL, *scale = NULL, *yuv420 = NULL,
      *handover = NULL, *enc, *parse, *filter, *to_encoder;
  gboolean to_yuv420 = choice->need_convert || size_filter;
  GstCaps *caps;
  gint i = chain_index (choice->codec);

  if (i < 0) {
    g_set_error (error, GST_CORE_ERROR, GST_CORE_ERROR_NEGOTIATION,
        "no encoder chain for codec 0x%08x", choice->codec);
    return FALSE;
  }
  /* a guest's RGB frames by libyuv (a scanout's are converted before the
   * push, once for all its encoders: bridge-scanout.c) */
  if (to_yuv420 && !scanout && (rgb = bridge_rgb_to_i420_new ()))
    gst_bin_add (GST_BIN (bin), rgb);
  if (to_yuv420) {
    convert = bridge_bin_add (bin, "videoconvert", NULL, error);
    if (size_filter && !(scale = bridge_bin_add (bin, "videoscale", NULL,
                error)))
      return FALSE;
    yuv420 = bridge_bin_add (bin, "capsfilter", NULL, error);
    /* a scanout's encoder on a thread of its own when this chain converts
     * or scales: the next flip is converted while this one is encoded (a
     * session's window already keeps its own queue in front). A flip
     * made I420 before the push (bridge-convert.h) is encoded on appsrc's
     * thread: a queue there would only add a thread's wake-up. */
    if (scanout && (size_filter || !bridge_convert_available ())
        && !(handover = bridge_bin_add (bin, "queue", NULL, error)))
      return FALSE;
  }
  enc = bridge_bin_add (bin, choice->name, encoder_name, error);
  parse = bridge_bin_add (bin, chains[i].parser, NULL, error);
  filter = bridge_bin_add (bin, "capsfilter", NULL, error);
  if ((to_yuv420 && (!convert || !yuv420)) || !enc || !parse || !filter)
    return FALSE;

  if (yuv420) {
    /* RGB guests become 4:2:0, not the first format the encoder lists
     * (x264enc: Y444, a High 4:4:4 stream most decoders cannot play);
     * NV12 and I420 guests pass through untouched */
    caps = gst_caps_from_string ("video/x-raw,format={NV12,I420}");
    g_object_set (yuv420, "caps", caps, NULL);
    gst_caps_unref (caps);
  }
  if (handover) {
    /* one converted frame waits at most, the newest: a newer one replaces
     * it (leaky downstream), so the encoder takes the latest flip */
    g_object_set (handover, "max-size-buffers", 1, "max-size-bytes", 0,
        "max-size-time", (guint64) 0, NULL);
    gst_util_set_object_arg (G_OBJECT (handover), "leaky", "downstream");
  }
  bridge_encoder_configure (enc, choice->desc, bitrate);
  if (chains[i].config_interval)
    g_object_set (parse, "config-interval", -1, NULL);
  caps = gst_caps_from_string (chains[i].caps);
  g_object_set (filter, "caps", caps, NULL);
  gst_caps_unref (caps);

  to_encoder = handover ? handover : yuv420;
  if ((rgb && !gst_element_link (rgb, convert))
      || (scale && !gst_element_link_many (convert, scale, yuv420, NULL))
      || (convert && !scale && !gst_element_link (convert, yuv420))
      || (handover && !gst_element_link (yuv420, handover))
      || (to_encoder && !gst_element_link (to_encoder, enc))
      || !gst_element_link_many (enc, parse, filter, NULL)) {
    g_set_error (error, GST_CORE_ERROR, GST_CORE_ERROR_NEGOTIATION,
        "could not link %s ! %s", choice->name, chains[i].parser);
    return FALSE;
  }
  *first = rgb ? rgb : convert ? convert : enc;
  *encoder = enc;
  *last = filter;
  if (size_filter)
    *size_filter = yuv420;
  return TRUE;
}

gboolean
bridge_pipeline_add_encoder (GstElement * bin,
    const BridgeEncoderChoice * choice, guint32 bitrate,
    const gchar * encoder_name, GstElement ** first, GstElement ** encoder,
    GstElement ** last, GError ** error)
{
  return add_chain (bin, choice, bitrate, encoder_name, FALSE, first, encoder,
      last, NULL, error);
}

gboolean
bridge_pipeline_add_scanout_encoder (GstElement * bin,
    const BridgeEncoderChoice * choice, guint32 bitrate, gboolean scaled,
    GstElement ** first, GstElement ** encoder, GstElement ** last,
    GstElement ** size_filter, GError ** error)
{
  if (size_filter)
    *size_filter = NULL;
  return add_chain (bin, choice, bitrate, NULL, TRUE, first, encoder, last,
      scaled ? size_filter : NULL, error);
}

void
bridge_pipeline_set_size (GstElement * size_filter, guint32 width,
    guint32 height)
{
  GstCaps *caps = gst_caps_from_string ("video/x-raw,format={NV12,I420}");

  gst_caps_set_simple (caps, "width", G_TYPE_INT, (gint) width, "height",
      G_TYPE_INT, (gint) height, "pixel-aspect-ratio", GST_TYPE_FRACTION, 1, 1,
      NULL);
  g_object_set (size_filter, "caps", caps, NULL);
  gst_caps_unref (caps);
}
