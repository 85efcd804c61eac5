/* bridge_convert_to_i420(): the scanout's pictures made I420 by libyuv
 * against GStreamer's own conversion of the same picture to the same
 * colorimetry (BT.601), for each byte order the export can carry, at an
 * odd size and with a padded stride; and the element a frame session's
 * chain puts in front of its videoconvert, in that chain.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include <gst/check/gstcheck.h>
#include <gst/check/gstharness.h>
#include <gst/video/video.h>
#include <math.h>
#include <string.h>

#include "bridge-convert.h"
#include "../../standin/helix-test-pattern.h"

/* Where B, G, R and the filler are in a pixel of each format */
static const struct
{
  GstVideoFormat format;
  guint b, g, r, a;
} orders[] = {
  {GST_VIDEO_FORMAT_BGRA, 0, 1, 2, 3},
  {GST_VIDEO_FORMAT_BGRx, 0, 1, 2, 3},
  {GST_VIDEO_FORMAT_RGBA, 2, 1, 0, 3},
  {GST_VIDEO_FORMAT_RGBx, 2, 1, 0, 3},
  {GST_VIDEO_FORMAT_ARGB, 3, 2, 1, 0},
  {GST_VIDEO_FORMAT_xRGB, 3, 2, 1, 0},
  {GST_VIDEO_FORMAT_ABGR, 1, 2, 3, 0},
  {GST_VIDEO_FORMAT_xBGR, 1, 2, 3, 0},
};

/* The stand-in's pattern frame 7 at @w x @h in @format's byte order, rows
 * of @stride bytes (a new buffer). */
static GstBuffer *
picture (guint k, guint w, guint h, gsize stride)
{
  guint8 *bgra = g_malloc ((gsize) w * h * 4);
  GstBuffer *buf = gst_buffer_new_allocate (NULL, stride * h, NULL);
  GstMapInfo map;
  guint x, y;

  helix_test_pattern_fill (bgra, w, h, 7);
  gst_buffer_map (buf, &map, GST_MAP_WRITE);
  memset (map.data, 0x5a, map.size);
  for (y = 0; y < h; y++)
    for (x = 0; x < w; x++) {
      const guint8 *s = bgra + ((gsize) y * w + x) * 4;
      guint8 *d = map.data + y * stride + x * 4;

      d[orders[k].b] = s[0];
      d[orders[k].g] = s[1];
      d[orders[k].r] = s[2];
      d[orders[k].a] = 255;
    }
  gst_buffer_unmap (buf, &map);
  g_free (bgra);
  return buf;
}

/* GStreamer's I420 of @k's picture, BT.601 limited range */
static GstSample *
reference (guint k, guint w, guint h)
{
  GstVideoInfo info;
  GstCaps *caps, *to;
  GstSample *in, *out;
  GError *err = NULL;

  gst_video_info_set_format (&info, orders[k].format, w, h);
  caps = gst_video_info_to_caps (&info);
  in = gst_sample_new (picture (k, w, h, info.stride[0]), caps, NULL, NULL);
  gst_buffer_unref (gst_sample_get_buffer (in));
  to = gst_caps_new_simple ("video/x-raw", "format", G_TYPE_STRING, "I420",
      "width", G_TYPE_INT, w, "height", G_TYPE_INT, h, "colorimetry",
      G_TYPE_STRING, GST_VIDEO_COLORIMETRY_BT601, NULL);
  out = gst_video_convert_sample (in, to, 10 * GST_SECOND, &err);
  fail_unless (out != NULL, "videoconvert: %s", err ? err->message : "");
  gst_caps_unref (caps);
  gst_caps_unref (to);
  gst_sample_unref (in);
  return out;
}

/* PSNR of plane @p of two I420 frames */
static gdouble
plane_psnr (GstVideoFrame * a, GstVideoFrame * b, guint p)
{
  guint w = GST_VIDEO_FRAME_COMP_WIDTH (a, p);
  guint h = GST_VIDEO_FRAME_COMP_HEIGHT (a, p);
  gdouble sum = 0;
  guint x, y;

  for (y = 0; y < h; y++) {
    const guint8 *ra = (const guint8 *) GST_VIDEO_FRAME_PLANE_DATA (a, p) +
        y * GST_VIDEO_FRAME_PLANE_STRIDE (a, p);
    const guint8 *rb = (const guint8 *) GST_VIDEO_FRAME_PLANE_DATA (b, p) +
        y * GST_VIDEO_FRAME_PLANE_STRIDE (b, p);

    for (x = 0; x < w; x++)
      sum += (ra[x] - rb[x]) * (ra[x] - rb[x]);
  }
  return sum == 0 ? 99.0 : 10 * log10 (255.0 * 255.0 * w * h / sum);
}

/* Converts the picture in @k's byte order, said to be in @label's, at
 * @w x @h (rows padded by @pad bytes) and compares it with @k's
 * reference: the lowest PSNR of the three planes. */
static gdouble
convert_and_compare (BridgeConvert * convert, guint k, guint label, guint w,
    guint h, guint pad)
{
  GstVideoInfo info, out_info, ref_info;
  GstBuffer *buf, *yuv;
  GstSample *ref = reference (k, w, h);
  GstVideoFrame a, b;
  gdouble worst = 99.0;
  guint p;

  gst_video_info_set_format (&info, orders[label].format, w, h);
  info.stride[0] = w * 4 + pad;
  info.size = (gsize) info.stride[0] * h;
  buf = picture (k, w, h, info.stride[0]);
  yuv = bridge_convert_to_i420 (convert, buf, &info, &out_info);
  fail_unless (yuv != NULL, "%s not converted",
      gst_video_format_to_string (orders[k].format));
  fail_unless_equals_int (GST_VIDEO_INFO_FORMAT (&out_info),
      GST_VIDEO_FORMAT_I420);
  fail_unless_equals_int (GST_VIDEO_INFO_WIDTH (&out_info), w);
  fail_unless_equals_int (GST_VIDEO_INFO_HEIGHT (&out_info), h);
  /* what the encoders will write into the stream */
  fail_unless (gst_video_colorimetry_matches (&out_info.colorimetry,
          GST_VIDEO_COLORIMETRY_BT601));
  fail_unless (gst_video_info_from_caps (&ref_info, gst_sample_get_caps (ref)));
  fail_unless (gst_video_frame_map (&a, &out_info, yuv, GST_MAP_READ));
  fail_unless (gst_video_frame_map (&b, &ref_info, gst_sample_get_buffer (ref),
          GST_MAP_READ));
  for (p = 0; p < 3; p++)
    worst = MIN (worst, plane_psnr (&a, &b, p));
  gst_video_frame_unmap (&a);
  gst_video_frame_unmap (&b);
  gst_buffer_unref (yuv);
  gst_buffer_unref (buf);
  gst_sample_unref (ref);
  return worst;
}

GST_START_TEST (test_matches_videoconvert)
{
  BridgeConvert *convert = bridge_convert_new ();
  guint k;

  if (!bridge_convert_available ()) {
    GstVideoInfo info, out;
    GstBuffer *buf = picture (0, 64, 32, 256);

    gst_video_info_set_format (&info, GST_VIDEO_FORMAT_BGRA, 64, 32);
    /* a build without libyuv leaves the picture to videoconvert */
    fail_unless (bridge_convert_to_i420 (convert, buf, &info, &out) == NULL);
    gst_buffer_unref (buf);
    bridge_convert_free (convert);
    return;
  }
  for (k = 0; k < G_N_ELEMENTS (orders); k++) {
    /* odd sizes (the last chroma sample covers one column or row), a
     * stride with 12 bytes past each row, then a size change */
    gdouble odd = convert_and_compare (convert, k, k, 101, 37, 12);
    gdouble even = convert_and_compare (convert, k, k, 320, 180, 0);

    GST_INFO ("%s: PSNR %.1f dB odd, %.1f dB even",
        gst_video_format_to_string (orders[k].format), odd, even);
    fail_unless (odd >= 45.0 && even >= 45.0, "%s: PSNR %.1f / %.1f dB "
        "against videoconvert", gst_video_format_to_string (orders[k].format),
        odd, even);
  }
  bridge_convert_free (convert);
}

GST_END_TEST;

/* The comparison tells byte orders apart: RGBA bytes converted as BGRA
 * (red and blue swapped) are far from the picture. */
GST_START_TEST (test_swapped_order_is_caught)
{
  BridgeConvert *convert = bridge_convert_new ();
  gdouble swapped;

  if (!bridge_convert_available ()) {
    bridge_convert_free (convert);
    return;
  }
  swapped = convert_and_compare (convert, 2, 0, 64, 32, 0);
  fail_unless (swapped < 25.0, "RGBA converted as BGRA: %.1f dB", swapped);
  bridge_convert_free (convert);
}

GST_END_TEST;

GST_START_TEST (test_other_formats_left_to_videoconvert)
{
  BridgeConvert *convert = bridge_convert_new ();
  GstVideoInfo info, out;
  GstBuffer *buf;

  gst_video_info_set_format (&info, GST_VIDEO_FORMAT_NV12, 64, 32);
  buf = gst_buffer_new_allocate (NULL, info.size, NULL);
  fail_unless (bridge_convert_to_i420 (convert, buf, &info, &out) == NULL);
  gst_buffer_unref (buf);
  bridge_convert_free (convert);
}

GST_END_TEST;

/* rgb-to-i420 ! videoconvert ! capsfilter (NV12/I420), as a frame
 * session's chain has them (bridge-pipeline.c) */
static GstHarness *
session_chain (void)
{
  GstElement *bin = gst_bin_new ("chain"), *rgb = bridge_rgb_to_i420_new ();
  GstElement *convert = gst_element_factory_make ("videoconvert", NULL);
  GstElement *filter = gst_element_factory_make ("capsfilter", NULL);
  GstCaps *caps = gst_caps_from_string ("video/x-raw,format={NV12,I420}");
  GstPad *pad;

  fail_unless (rgb && convert && filter);
  gst_object_set_name (GST_OBJECT (rgb), "rgb");
  g_object_set (filter, "caps", caps, NULL);
  gst_caps_unref (caps);
  gst_bin_add_many (GST_BIN (bin), rgb, convert, filter, NULL);
  fail_unless (gst_element_link_many (rgb, convert, filter, NULL));
  pad = gst_element_get_static_pad (rgb, "sink");
  gst_element_add_pad (bin, gst_ghost_pad_new ("sink", pad));
  gst_object_unref (pad);
  pad = gst_element_get_static_pad (filter, "src");
  gst_element_add_pad (bin, gst_ghost_pad_new ("src", pad));
  gst_object_unref (pad);
  return gst_harness_new_with_element (bin, "sink", "src");
}

/* The format between the element and the videoconvert behind it */
static GstVideoFormat
format_after_element (GstHarness * h)
{
  GstElement *rgb = gst_bin_get_by_name (GST_BIN (h->element), "rgb");
  GstPad *pad = gst_element_get_static_pad (rgb, "src");
  GstCaps *caps = gst_pad_get_current_caps (pad);
  GstVideoInfo info;

  fail_unless (caps && gst_video_info_from_caps (&info, caps));
  gst_caps_unref (caps);
  gst_object_unref (pad);
  gst_object_unref (rgb);
  return GST_VIDEO_INFO_FORMAT (&info);
}

/* A guest's BGRx frame through the chain comes out I420 in BT.601, equal
 * to videoconvert's own BT.601 conversion of it: converted by libyuv
 * (I420 leaves the element), passed through by the videoconvert behind. */
GST_START_TEST (test_session_chain_converts_rgb)
{
  GstHarness *h;
  GstVideoInfo info, out_info, ref_info;
  GstSample *ref;
  GstBuffer *out;
  GstCaps *caps;
  GstVideoFrame a, b;
  guint k = 1, p;               /* BGRx */

  if (!bridge_convert_available ()) {
    fail_unless (bridge_rgb_to_i420_new () == NULL);
    return;
  }
  h = session_chain ();
  gst_video_info_set_format (&info, orders[k].format, 320, 180);
  caps = gst_video_info_to_caps (&info);
  gst_harness_set_src_caps (h, caps);
  out = gst_harness_push_and_pull (h, picture (k, 320, 180, info.stride[0]));
  fail_unless (out != NULL);
  caps = gst_pad_get_current_caps (h->sinkpad);
  fail_unless (gst_video_info_from_caps (&out_info, caps));
  gst_caps_unref (caps);
  fail_unless_equals_string (gst_video_format_to_string
      (GST_VIDEO_INFO_FORMAT (&out_info)), "I420");
  fail_unless (gst_video_colorimetry_matches (&out_info.colorimetry,
          GST_VIDEO_COLORIMETRY_BT601));
  fail_unless_equals_int (format_after_element (h), GST_VIDEO_FORMAT_I420);
  ref = reference (k, 320, 180);
  fail_unless (gst_video_info_from_caps (&ref_info, gst_sample_get_caps (ref)));
  fail_unless (gst_video_frame_map (&a, &out_info, out, GST_MAP_READ));
  fail_unless (gst_video_frame_map (&b, &ref_info, gst_sample_get_buffer (ref),
          GST_MAP_READ));
  for (p = 0; p < 3; p++)
    fail_unless (plane_psnr (&a, &b, p) >= 45.0, "plane %u: %.1f dB", p,
        plane_psnr (&a, &b, p));
  gst_video_frame_unmap (&a);
  gst_video_frame_unmap (&b);
  gst_sample_unref (ref);
  gst_buffer_unref (out);
  gst_harness_teardown (h);
}

GST_END_TEST;

/* NV12 (what most guests send) goes through the element untouched: the
 * very buffer comes out of the chain */
GST_START_TEST (test_session_chain_passes_nv12)
{
  GstHarness *h;
  GstVideoInfo info;
  GstBuffer *in, *out;
  GstCaps *caps;

  if (!bridge_convert_available ())
    return;
  h = session_chain ();
  gst_video_info_set_format (&info, GST_VIDEO_FORMAT_NV12, 64, 32);
  gst_harness_set_src_caps (h, gst_video_info_to_caps (&info));
  in = gst_buffer_new_allocate (NULL, info.size, NULL);
  gst_buffer_memset (in, 0, 0x80, info.size);
  out = gst_harness_push_and_pull (h, gst_buffer_ref (in));
  fail_unless (out == in, "NV12 was copied or converted");
  caps = gst_pad_get_current_caps (h->sinkpad);
  fail_unless (gst_video_info_from_caps (&info, caps));
  fail_unless_equals_int (GST_VIDEO_INFO_FORMAT (&info), GST_VIDEO_FORMAT_NV12);
  fail_unless_equals_int (format_after_element (h), GST_VIDEO_FORMAT_NV12);
  gst_caps_unref (caps);
  gst_buffer_unref (out);
  gst_buffer_unref (in);
  gst_harness_teardown (h);
}

GST_END_TEST;

static Suite *
convert_suite (void)
{
  Suite *s = suite_create ("convert");
  TCase *tc = tcase_create ("general");

  suite_add_tcase (s, tc);
  tcase_add_test (tc, test_matches_videoconvert);
  tcase_add_test (tc, test_swapped_order_is_caught);
  tcase_add_test (tc, test_other_formats_left_to_videoconvert);
  tcase_add_test (tc, test_session_chain_converts_rgb);
  tcase_add_test (tc, test_session_chain_passes_nv12);
  return s;
}

GST_CHECK_MAIN (convert);
