/* See test-frames.h.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "test-frames.h"

#include <gst/check/gstcheck.h>
#include <gst/app/gstappsink.h>

#define PULL_TIMEOUT (20 * GST_SECOND)

GPtrArray *
test_frames_collect (const gchar * format, guint w, guint h, guint n,
    gboolean as_i420)
{
  GPtrArray *out = g_ptr_array_new_with_free_func ((GDestroyNotify)
      gst_sample_unref);
  gchar *desc = g_strdup_printf ("videotestsrc num-buffers=%u "
      "horizontal-speed=4 ! video/x-raw,format=%s,width=%u,height=%u,"
      "framerate=30/1 ! %s appsink name=sink sync=false", n, format, w, h,
      as_i420 ? "videoconvert ! video/x-raw,format=I420 !" : "");
  GstElement *p = gst_parse_launch (desc, NULL);
  GstElement *sink = gst_bin_get_by_name (GST_BIN (p), "sink");
  GstSample *s;

  fail_unless (p != NULL, "%s", desc);
  gst_element_set_state (p, GST_STATE_PLAYING);
  while ((s = gst_app_sink_try_pull_sample (GST_APP_SINK (sink), PULL_TIMEOUT)))
    g_ptr_array_add (out, s);
  fail_unless_equals_int (out->len, n);
  gst_element_set_state (p, GST_STATE_NULL);
  gst_object_unref (sink);
  gst_object_unref (p);
  g_free (desc);
  return out;
}
