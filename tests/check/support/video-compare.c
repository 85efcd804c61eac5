/* See video-compare.h.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "video-compare.h"

#include <gst/check/gstcheck.h>

gdouble
video_compare_luma_mse (GstSample * a, GstSample * b)
{
  GstVideoInfo ia, ib;
  GstVideoFrame fa, fb;
  gdouble mse = 0;
  gint x, y;

  fail_unless (gst_video_info_from_caps (&ia, gst_sample_get_caps (a)));
  fail_unless (gst_video_info_from_caps (&ib, gst_sample_get_caps (b)));
  fail_unless_equals_int (GST_VIDEO_INFO_WIDTH (&ia),
      GST_VIDEO_INFO_WIDTH (&ib));
  fail_unless_equals_int (GST_VIDEO_INFO_HEIGHT (&ia),
      GST_VIDEO_INFO_HEIGHT (&ib));
  fail_unless (gst_video_frame_map (&fa, &ia, gst_sample_get_buffer (a),
          GST_MAP_READ));
  fail_unless (gst_video_frame_map (&fb, &ib, gst_sample_get_buffer (b),
          GST_MAP_READ));
  for (y = 0; y < GST_VIDEO_INFO_HEIGHT (&ia); y++) {
    const guint8 *ra = (const guint8 *) GST_VIDEO_FRAME_PLANE_DATA (&fa, 0) +
        y * GST_VIDEO_FRAME_PLANE_STRIDE (&fa, 0);
    const guint8 *rb = (const guint8 *) GST_VIDEO_FRAME_PLANE_DATA (&fb, 0) +
        y * GST_VIDEO_FRAME_PLANE_STRIDE (&fb, 0);

    for (x = 0; x < GST_VIDEO_INFO_WIDTH (&ia); x++) {
      gdouble d = (gdouble) ra[x] - rb[x];

      mse += d * d;
    }
  }
  gst_video_frame_unmap (&fa);
  gst_video_frame_unmap (&fb);
  return mse / ((gdouble) GST_VIDEO_INFO_WIDTH (&ia) *
      GST_VIDEO_INFO_HEIGHT (&ia));
}
