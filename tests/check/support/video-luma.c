/* See video-luma.h.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "video-luma.h"

gdouble
video_luma_sse (GstSample * a, GstSample * b, guint64 * pixels)
{
  GstVideoInfo ia, ib;
  GstVideoFrame fa, fb;
  gdouble sse = 0;
  gint x, y;

  if (!gst_video_info_from_caps (&ia, gst_sample_get_caps (a))
      || !gst_video_info_from_caps (&ib, gst_sample_get_caps (b))
      || GST_VIDEO_INFO_WIDTH (&ia) != GST_VIDEO_INFO_WIDTH (&ib)
      || GST_VIDEO_INFO_HEIGHT (&ia) != GST_VIDEO_INFO_HEIGHT (&ib))
    return -1;
  if (!gst_video_frame_map (&fa, &ia, gst_sample_get_buffer (a), GST_MAP_READ))
    return -1;
  if (!gst_video_frame_map (&fb, &ib, gst_sample_get_buffer (b), GST_MAP_READ)) {
    gst_video_frame_unmap (&fa);
    return -1;
  }
  for (y = 0; y < GST_VIDEO_INFO_HEIGHT (&ia); y++) {
    const guint8 *ra = (const guint8 *) GST_VIDEO_FRAME_PLANE_DATA (&fa, 0) +
        y * GST_VIDEO_FRAME_PLANE_STRIDE (&fa, 0);
    const guint8 *rb = (const guint8 *) GST_VIDEO_FRAME_PLANE_DATA (&fb, 0) +
        y * GST_VIDEO_FRAME_PLANE_STRIDE (&fb, 0);

    for (x = 0; x < GST_VIDEO_INFO_WIDTH (&ia); x++) {
      gdouble d = (gdouble) ra[x] - rb[x];

      sse += d * d;
    }
  }
  if (pixels)
    *pixels += (guint64) GST_VIDEO_INFO_WIDTH (&ia) *
        GST_VIDEO_INFO_HEIGHT (&ia);
  gst_video_frame_unmap (&fa);
  gst_video_frame_unmap (&fb);
  return sse;
}
