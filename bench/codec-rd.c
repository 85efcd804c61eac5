/* bench-codec-rd: one rate-distortion point of a codec through the bridge.
 * bench/run's codec rows (h265_bytes_over_h264_equal_psnr,
 * av1_bytes_over_h264_equal_psnr; docs/performance.md).
 *
 *   bench-codec-rd --socket-path PATH --codec h264|h265|av1
 *       --bitrate BPS [--width W] [--height H] [--frames N]
 *
 * Streams N frames of videotestsrc (SMPTE bars moving 2 pixels a frame,
 * 30/1, NV12) through vsockenc, vsockh265enc or vsockav1enc
 * to the bridge at PATH, decodes what comes back (avdec_h264, avdec_h265,
 * av1dec) and compares every frame's luma with its source. Prints one
 * line of JSON: the coded bytes, the frames, and the luma PSNR of the
 * whole clip (from its mean squared error).
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "video-luma.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <gst/gst.h>
#include <gst/app/gstappsink.h>
#include <gst/video/video.h>

static guint64 coded_bytes;

static GstPadProbeReturn
count_bytes (GstPad * pad, GstPadProbeInfo * info, gpointer user_data)
{
  coded_bytes += gst_buffer_get_size (GST_PAD_PROBE_INFO_BUFFER (info));
  return GST_PAD_PROBE_OK;
}

int
main (int argc, char **argv)
{
  const gchar *socket_path = NULL, *codec = NULL, *element, *parser, *decoder;
  gint width = 1280, height = 720, frames = 150, i;
  gint64 bitrate = 0;
  gchar *desc;
  GError *err = NULL;
  GstElement *p, *enc, *ref, *dec;
  GstPad *pad;
  GstBus *bus;
  GstMessage *msg;
  gdouble sse = 0;
  guint64 pixels = 0;
  guint n = 0;

  gst_init (&argc, &argv);
  for (i = 1; i + 1 < argc; i += 2) {
    if (!strcmp (argv[i], "--socket-path"))
      socket_path = argv[i + 1];
    else if (!strcmp (argv[i], "--codec"))
      codec = argv[i + 1];
    else if (!strcmp (argv[i], "--bitrate"))
      bitrate = g_ascii_strtoll (argv[i + 1], NULL, 10);
    else if (!strcmp (argv[i], "--width"))
      width = atoi (argv[i + 1]);
    else if (!strcmp (argv[i], "--height"))
      height = atoi (argv[i + 1]);
    else if (!strcmp (argv[i], "--frames"))
      frames = atoi (argv[i + 1]);
    else
      break;
  }
  if (g_strcmp0 (codec, "h264") == 0) {
    element = "vsockenc";
    parser = "h264parse";
    decoder = "avdec_h264";
  } else if (g_strcmp0 (codec, "h265") == 0) {
    element = "vsockh265enc";
    parser = "h265parse";
    decoder = "avdec_h265";
  } else if (g_strcmp0 (codec, "av1") == 0) {
    element = "vsockav1enc";
    parser = "av1parse";
    decoder = "av1dec";
  } else {
    element = parser = decoder = NULL;
  }
  if (i < argc || !socket_path || !element || bitrate <= 0 || frames < 1) {
    fprintf (stderr, "usage: %s --socket-path PATH --codec h264|h265|av1 "
        "--bitrate BPS [--width W] [--height H] [--frames N]\n", argv[0]);
    return 1;
  }

  /* both branches keep every frame until the end (appsink unbounded, its
   * EOS not waiting for them to be pulled): the comparison pairs them in
   * order */
  desc = g_strdup_printf ("videotestsrc num-buffers=%d pattern=smpte "
      "horizontal-speed=2 ! video/x-raw,format=NV12,width=%d,height=%d,"
      "framerate=30/1 ! tee name=t ! queue max-size-buffers=0 "
      "max-size-bytes=0 max-size-time=0 ! %s name=enc socket-path=%s "
      "bitrate=%" G_GINT64_FORMAT " keyframe-interval=0 ! %s ! %s ! "
      "videoconvert ! video/x-raw,format=I420 ! appsink name=dec sync=false "
      "wait-on-eos=false "
      "t. ! queue max-size-buffers=0 max-size-bytes=0 max-size-time=0 ! "
      "videoconvert ! video/x-raw,format=I420 ! appsink name=ref sync=false "
      "wait-on-eos=false",
      frames, width, height, element, socket_path, bitrate, parser, decoder);
  p = gst_parse_launch (desc, &err);
  g_free (desc);
  if (!p) {
    fprintf (stderr, "%s\n", err->message);
    return 1;
  }
  enc = gst_bin_get_by_name (GST_BIN (p), "enc");
  ref = gst_bin_get_by_name (GST_BIN (p), "ref");
  dec = gst_bin_get_by_name (GST_BIN (p), "dec");
  pad = gst_element_get_static_pad (enc, "src");
  gst_pad_add_probe (pad, GST_PAD_PROBE_TYPE_BUFFER, count_bytes, NULL, NULL);
  gst_object_unref (pad);
  bus = gst_element_get_bus (p);
  gst_element_set_state (p, GST_STATE_PLAYING);
  msg = gst_bus_timed_pop_filtered (bus, 120 * GST_SECOND,
      GST_MESSAGE_EOS | GST_MESSAGE_ERROR);
  if (!msg || GST_MESSAGE_TYPE (msg) == GST_MESSAGE_ERROR) {
    if (msg) {
      gst_message_parse_error (msg, &err, NULL);
      fprintf (stderr, "%s: %s\n", element, err->message);
    } else {
      fprintf (stderr, "%s: no end within 120 s\n", element);
    }
    return 1;
  }
  gst_message_unref (msg);
  while (TRUE) {
    GstSample *a = gst_app_sink_try_pull_sample (GST_APP_SINK (dec), 0);
    GstSample *b = a ? gst_app_sink_try_pull_sample (GST_APP_SINK (ref), 0) :
        NULL;
    gdouble s;

    if (!a || !b) {
      if (a)
        gst_sample_unref (a);
      break;
    }
    s = video_luma_sse (a, b, &pixels);
    gst_sample_unref (a);
    gst_sample_unref (b);
    if (s < 0) {
      fprintf (stderr, "frame %u: cannot compare\n", n);
      return 1;
    }
    sse += s;
    n++;
  }
  if (n != (guint) frames || !pixels) {
    fprintf (stderr, "%s: %u of %d frames decoded\n", element, n, frames);
    return 1;
  }
  printf ("{\"codec\": \"%s\", \"bitrate\": %" G_GINT64_FORMAT ", "
      "\"bytes\": %" G_GUINT64_FORMAT ", \"frames\": %u, \"psnr\": %.3f}\n",
      codec, bitrate, coded_bytes, n,
      10 * log10 (255.0 * 255.0 / MAX (sse / pixels, 1e-6)));
  gst_element_set_state (p, GST_STATE_NULL);
  gst_object_unref (bus);
  gst_object_unref (enc);
  gst_object_unref (ref);
  gst_object_unref (dec);
  gst_object_unref (p);
  return 0;
}
