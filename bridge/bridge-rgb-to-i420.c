/* An element that makes a guest's RGB frames I420 with libyuv
 * (bridge_convert_frame()), in front of a frame session's videoconvert:
 * the same conversion a scanout gets (bridge-convert.h), for the frames a
 * guest sends as pixels or resource ids of its desktop. Other formats pass
 * through untouched for the videoconvert behind it. Made by
 * bridge_rgb_to_i420_new(), not registered: only the bridge builds it.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "bridge-convert.h"

#include <gst/video/gstvideofilter.h>

G_DECLARE_FINAL_TYPE (BridgeRgbToI420, bridge_rgb_to_i420, BRIDGE,
    RGB_TO_I420, GstVideoFilter);

struct _BridgeRgbToI420
{
  GstVideoFilter parent;
};

G_DEFINE_TYPE (BridgeRgbToI420, bridge_rgb_to_i420, GST_TYPE_VIDEO_FILTER);

/* Whether @s's format field (absent: any) may be one that @test takes */
static gboolean
format_may_be (const GstStructure * s, gboolean (*test) (const gchar *))
{
  const GValue *v = gst_structure_get_value (s, "format");
  guint i;

  if (!v)
    return TRUE;
  if (G_VALUE_HOLDS_STRING (v))
    return test (g_value_get_string (v));
  if (GST_VALUE_HOLDS_LIST (v)) {
    for (i = 0; i < gst_value_list_get_size (v); i++) {
      const GValue *f = gst_value_list_get_value (v, i);

      if (G_VALUE_HOLDS_STRING (f) && test (g_value_get_string (f)))
        return TRUE;
    }
  }
  return FALSE;
}

static gboolean
is_rgb (const gchar * format)
{
  return bridge_convert_handles (gst_video_format_from_string (format));
}

static gboolean
is_i420 (const gchar * format)
{
  return g_str_equal (format, "I420");
}

/* @list (unset): the formats bridge_convert_handles() takes, so that the
 * converter's table is the only list of them */
static void
rgb_formats (GValue * list)
{
  const GstVideoFormat *all;
  guint n, i;

  g_value_init (list, GST_TYPE_LIST);
  all = gst_video_formats_raw (&n);
  for (i = 0; i < n; i++) {
    GValue v = G_VALUE_INIT;

    if (!bridge_convert_handles (all[i]))
      continue;
    g_value_init (&v, G_TYPE_STRING);
    g_value_set_static_string (&v, gst_video_format_to_string (all[i]));
    gst_value_list_append_and_take_value (list, &v);
  }
}

/* Sink to source: an RGB frame becomes I420 in BT.601 (the size and rate
 * kept), preferred to anything else; other formats stay as they are.
 * Source to sink: I420 may come from any of the RGB formats. */
static GstCaps *
transform_caps (GstBaseTransform * trans, GstPadDirection direction,
    GstCaps * caps, GstCaps * filter)
{
  GstCaps *out = gst_caps_new_empty ();
  guint i;

  for (i = 0; i < gst_caps_get_size (caps); i++) {
    const GstStructure *s = gst_caps_get_structure (caps, i);
    GstCapsFeatures *features = gst_caps_get_features (caps, i);
    GstStructure *t = gst_structure_copy (s);
    const gchar *format = gst_structure_get_string (s, "format");

    if (direction == GST_PAD_SINK && format_may_be (s, is_rgb)) {
      gst_structure_set (t, "format", G_TYPE_STRING, "I420", "colorimetry",
          G_TYPE_STRING, GST_VIDEO_COLORIMETRY_BT601, NULL);
      gst_structure_remove_field (t, "chroma-site");
      gst_caps_append_structure_full (out, t,
          gst_caps_features_copy (features));
      /* one RGB format: converted, never passed on */
      if (format && is_rgb (format))
        continue;
      t = NULL;
    }
    gst_caps_append_structure_full (out, gst_structure_copy (s),
        gst_caps_features_copy (features));
    if (direction == GST_PAD_SRC && format_may_be (s, is_i420)) {
      /* what may have been converted into this: any RGB, any matrix */
      GValue formats = G_VALUE_INIT;

      rgb_formats (&formats);
      gst_structure_set_value (t, "format", &formats);
      gst_structure_remove_field (t, "colorimetry");
      gst_structure_remove_field (t, "chroma-site");
      g_value_unset (&formats);
      gst_caps_append_structure_full (out, t,
          gst_caps_features_copy (features));
    } else if (t) {
      gst_structure_free (t);
    }
  }
  if (filter) {
    GstCaps *both = gst_caps_intersect_full (filter, out,
        GST_CAPS_INTERSECT_FIRST);

    gst_caps_unref (out);
    out = both;
  }
  return out;
}

static gboolean
set_info (GstVideoFilter * filter, GstCaps * incaps, GstVideoInfo * in_info,
    GstCaps * outcaps, GstVideoInfo * out_info)
{
  gboolean same = GST_VIDEO_INFO_FORMAT (in_info) ==
      GST_VIDEO_INFO_FORMAT (out_info);

  if (!same && (GST_VIDEO_INFO_FORMAT (out_info) != GST_VIDEO_FORMAT_I420
          || !bridge_convert_handles (GST_VIDEO_INFO_FORMAT (in_info))
          || GST_VIDEO_INFO_WIDTH (in_info) != GST_VIDEO_INFO_WIDTH (out_info)
          || GST_VIDEO_INFO_HEIGHT (in_info) !=
          GST_VIDEO_INFO_HEIGHT (out_info)))
    return FALSE;
  gst_base_transform_set_passthrough (GST_BASE_TRANSFORM (filter), same);
  return TRUE;
}

static GstFlowReturn
transform_frame (GstVideoFilter * filter, GstVideoFrame * in,
    GstVideoFrame * out)
{
  if (!bridge_convert_frame (in, out)) {
    GST_ELEMENT_ERROR (filter, STREAM, FORMAT, (NULL),
        ("cannot convert %s to I420", GST_VIDEO_INFO_NAME (&in->info)));
    return GST_FLOW_ERROR;
  }
  return GST_FLOW_OK;
}

static void
bridge_rgb_to_i420_init (BridgeRgbToI420 * self)
{
}

static void
bridge_rgb_to_i420_class_init (BridgeRgbToI420Class * klass)
{
  GstElementClass *element_class = GST_ELEMENT_CLASS (klass);
  GstBaseTransformClass *trans_class = GST_BASE_TRANSFORM_CLASS (klass);
  GstVideoFilterClass *filter_class = GST_VIDEO_FILTER_CLASS (klass);
  GstCaps *caps = gst_caps_from_string ("video/x-raw");

  gst_element_class_add_pad_template (element_class,
      gst_pad_template_new ("sink", GST_PAD_SINK, GST_PAD_ALWAYS, caps));
  gst_element_class_add_pad_template (element_class,
      gst_pad_template_new ("src", GST_PAD_SRC, GST_PAD_ALWAYS, caps));
  gst_caps_unref (caps);
  gst_element_class_set_static_metadata (element_class,
      "RGB to I420 (libyuv)", "Filter/Converter/Video",
      "Makes RGB frames I420 in BT.601 with libyuv; passes other formats",
      "Helix encode offload developers");
  trans_class->transform_caps = transform_caps;
  trans_class->passthrough_on_same_caps = TRUE;
  filter_class->set_info = set_info;
  filter_class->transform_frame = transform_frame;
}

GstElement *
bridge_rgb_to_i420_new (void)
{
  if (!bridge_convert_available ())
    return NULL;
  return g_object_new (bridge_rgb_to_i420_get_type (), NULL);
}
