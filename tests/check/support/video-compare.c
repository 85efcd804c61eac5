/* See video-compare.h.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "video-compare.h"
#include "video-luma.h"

#include <gst/check/gstcheck.h>

gdouble
video_compare_luma_mse (GstSample * a, GstSample * b)
{
  guint64 pixels = 0;
  gdouble sse = video_luma_sse (a, b, &pixels);

  fail_unless (sse >= 0, "frames of different sizes, or not mappable: %"
      GST_PTR_FORMAT " and %" GST_PTR_FORMAT, gst_sample_get_caps (a),
      gst_sample_get_caps (b));
  return sse / pixels;
}
