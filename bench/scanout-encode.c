/* bench-scanout-encode: the bridge's scanout encoder in-process, one frame
 * at a time, timing each frame from push to access unit. The reference
 * "encode time" of the scanout rows of bench/run (docs/performance.md).
 *
 *   bench-scanout-encode --encoder x264enc|openh264enc [--width W]
 *       [--height H] [--hz HZ] [--seconds S] [--warmup N] [--bitrate BPS]
 *
 * The same pipeline as bridge/bridge-scanout.c builds,
 *   appsrc ! videoconvert ! video/x-raw,format={NV12,I420} ! [queue !] ENCODER !
 *   PARSER ! the codec's caps ! appsink,
 * by the same code (bridge-pipeline.c: bridge_pipeline_add_scanout_encoder, linked
 * in, with the encoder's settings of bridge-encoder.c), the same caps (BGRA, 60/1 as the bridge's nominal rate; PTS
 * from the clock, duration 1/60 s), the same GOP (one IDR, the first frame), and the
 * stand-in VMM's test frames (helix-test-pattern.h, a new one per frame).
 * Frames are pushed at HZ (default 60: the flips of the scanout rows), each
 * waited for before the next: one frame's own time (the bridge overlaps
 * the next frame's conversion with this one's encode).
 * The pattern is filled before the clock starts for each frame. As in the
 * bridge, a build with libyuv converts each frame to I420 before the push
 * (bridge-convert.h), one without leaves it to videoconvert. Prints one
 * line of JSON: push to access unit (the encode time), and its two parts
 * (issue 23): the conversion (bridge_convert_to_i420(), or push to the
 * encoder's sink pad: videoconvert in the streaming thread) and from there
 * to the access unit (the encoder, and the parser).
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "bridge-convert.h"
#include "bridge-pipeline.h"
#include "helix-test-pattern.h"

#include <gst/app/gstappsink.h>
#include <gst/app/gstappsrc.h>
#include <gst/video/video.h>
#include <sys/resource.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

GST_DEBUG_CATEGORY (bridge_debug);

static int
cmp_double (const void *a, const void *b)
{
  double x = *(const double *) a, y = *(const double *) b;

  return x < y ? -1 : x > y;
}

/* when the frame in the pipeline reached the encoder: one frame at a time,
 * so one value; written by the streaming thread before the access unit is
 * out, read after it was pulled */
static gint64 at_encoder;

static GstPadProbeReturn
encoder_in (GstPad * pad, GstPadProbeInfo * info, gpointer unused)
{
  at_encoder = g_get_monotonic_time ();
  return GST_PAD_PROBE_OK;
}

static GstElement *
add (GstElement * p, const char *factory)
{
  GstElement *e = gst_element_factory_make (factory, NULL);

  if (!e) {
    fprintf (stderr, "no element %s\n", factory);
    exit (1);
  }
  gst_bin_add (GST_BIN (p), e);
  return e;
}

int
main (int argc, char **argv)
{
  const char *encoder = "x264enc";
  int width = 1920, height = 1080, hz = 60, warmup = 10, i;
  double seconds = 5;
  guint bitrate = 4000000;
  GstElement *p, *src, *first, *enc, *last, *sink;
  GstCaps *caps;
  GstVideoInfo info, yuv_info;
  BridgeEncoderChoice choice;
  BridgeConvert *convert = bridge_convert_new ();
  gboolean yuv_caps = FALSE;
  GError *err = NULL;
  double *ms, *conv_ms, *enc_ms;
  guint n = 0, cap;
  GstPad *pad;
  gint64 t0, next, end;
  double cpu0, cpu1;
  guint64 bytes = 0;

  gst_init (&argc, &argv);
  GST_DEBUG_CATEGORY_INIT (bridge_debug, "bench-scanout-encode", 0, "");
  for (i = 1; i + 1 < argc; i += 2) {
    if (!strcmp (argv[i], "--encoder"))
      encoder = argv[i + 1];
    else if (!strcmp (argv[i], "--width"))
      width = atoi (argv[i + 1]);
    else if (!strcmp (argv[i], "--height"))
      height = atoi (argv[i + 1]);
    else if (!strcmp (argv[i], "--hz"))
      hz = atoi (argv[i + 1]);
    else if (!strcmp (argv[i], "--seconds"))
      seconds = atof (argv[i + 1]);
    else if (!strcmp (argv[i], "--warmup"))
      warmup = atoi (argv[i + 1]);
    else if (!strcmp (argv[i], "--bitrate"))
      bitrate = atoi (argv[i + 1]);
    else
      break;
  }
  if (i < argc) {
    fprintf (stderr, "usage: %s --encoder NAME [--width W] [--height H] "
        "[--hz HZ] [--seconds S] [--warmup N] [--bitrate BPS]\n", argv[0]);
    return 1;
  }
  choice.desc = bridge_encoder_lookup (encoder);
  choice.codec = choice.desc ? choice.desc->codec : HXFR_CODEC_H264;
  choice.name = encoder;
  choice.need_convert = TRUE;
  p = gst_pipeline_new (NULL);
  src = add (p, "appsrc");
  sink = add (p, "appsink");
  g_object_set (src, "format", GST_FORMAT_TIME, "is-live", TRUE, "block",
      FALSE, "max-buffers", (guint64) 2, NULL);
  if (!bridge_pipeline_add_scanout_encoder (p, &choice, bitrate, FALSE,
          &first, &enc, &last, NULL, &err)) {
    fprintf (stderr, "could not build the %s pipeline: %s\n", encoder,
        err->message);
    return 1;
  }
  g_object_set (sink, "sync", FALSE, "async", FALSE, "enable-last-sample",
      FALSE, NULL);
  if (!gst_element_link (src, first) || !gst_element_link (last, sink)
      || gst_element_set_state (p, GST_STATE_PLAYING) ==
      GST_STATE_CHANGE_FAILURE) {
    fprintf (stderr, "could not start the %s pipeline\n", encoder);
    return 1;
  }
  gst_video_info_set_format (&info, GST_VIDEO_FORMAT_BGRA, width, height);
  /* as the bridge's read_resource: x264enc holds a frame back without one */
  GST_VIDEO_INFO_FPS_N (&info) = 60;
  GST_VIDEO_INFO_FPS_D (&info) = 1;
  caps = gst_video_info_to_caps (&info);
  gst_app_src_set_caps (GST_APP_SRC (src), caps);
  gst_caps_unref (caps);

  cap = (guint) (seconds * hz) + warmup + 16;
  ms = g_new (double, cap);
  conv_ms = g_new (double, cap);
  enc_ms = g_new (double, cap);
  pad = gst_element_get_static_pad (enc, "sink");
  gst_pad_add_probe (pad, GST_PAD_PROBE_TYPE_BUFFER, encoder_in, NULL, NULL);
  gst_object_unref (pad);
  t0 = g_get_monotonic_time ();
  next = t0;
  end = -1;
  cpu0 = cpu1 = 0;
  for (i = 0; (guint) i < cap; i++) {
    GstBuffer *buf = gst_buffer_new_allocate (NULL, info.size, NULL);
    GstMapInfo map;
    GstSample *sample;
    gint64 t;

    gst_buffer_map (buf, &map, GST_MAP_WRITE);
    helix_test_pattern_fill (map.data, width, height, i);
    gst_buffer_unmap (buf, &map);
    if (hz > 0) {
      gint64 now = g_get_monotonic_time ();

      if (next > now)
        g_usleep (next - now);
      next += G_USEC_PER_SEC / hz;
    }
    if (i == warmup) {
      struct rusage ru;

      getrusage (RUSAGE_SELF, &ru);
      cpu0 = ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 +
          ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6;
      end = g_get_monotonic_time () + (gint64) (seconds * G_USEC_PER_SEC);
    }
    if (end > 0 && g_get_monotonic_time () >= end)
      break;
    t = g_get_monotonic_time ();
    {
      GstBuffer *yuv = bridge_convert_to_i420 (convert, buf, &info, &yuv_info);

      if (yuv) {
        gst_buffer_unref (buf);
        buf = yuv;
        if (!yuv_caps) {
          caps = gst_video_info_to_caps (&yuv_info);
          gst_app_src_set_caps (GST_APP_SRC (src), caps);
          gst_caps_unref (caps);
          yuv_caps = TRUE;
        }
      }
    }
    GST_BUFFER_PTS (buf) = (t - t0) * GST_USECOND;
    GST_BUFFER_DURATION (buf) = GST_SECOND / 60;
    if (gst_app_src_push_buffer (GST_APP_SRC (src), buf) != GST_FLOW_OK) {
      fprintf (stderr, "the encoder refused a frame\n");
      return 1;
    }
    sample = gst_app_sink_try_pull_sample (GST_APP_SINK (sink), 5 * GST_SECOND);
    if (!sample) {
      fprintf (stderr, "%s gave no access unit within 5 s\n", encoder);
      return 1;
    }
    if (i >= warmup) {
      gint64 out = g_get_monotonic_time ();

      conv_ms[n] = (at_encoder - t) / 1e3;
      enc_ms[n] = (out - at_encoder) / 1e3;
      ms[n++] = (out - t) / 1e3;
      bytes += gst_buffer_get_size (gst_sample_get_buffer (sample));
    }
    gst_sample_unref (sample);
  }
  {
    struct rusage ru;

    getrusage (RUSAGE_SELF, &ru);
    cpu1 = ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 +
        ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6;
  }
  gst_element_set_state (p, GST_STATE_NULL);
  gst_object_unref (p);
  bridge_convert_free (convert);
  if (!n) {
    fprintf (stderr, "no frames timed\n");
    return 1;
  }
  {
    double sum = 0;
    guint k;

    for (k = 0; k < n; k++)
      sum += ms[k];
    qsort (ms, n, sizeof (double), cmp_double);
    qsort (conv_ms, n, sizeof (double), cmp_double);
    qsort (enc_ms, n, sizeof (double), cmp_double);
#define P50(a) (a)[MIN (n - 1, n / 2)]
#define P99(a) (a)[MIN (n - 1, (guint) (0.99 * n))]
    printf ("{\"encoder\": \"%s\", \"frames\": %u, \"hz\": %d, "
        "\"mean_ms\": %.3f, \"p50_ms\": %.3f, \"p99_ms\": %.3f, "
        "\"max_ms\": %.3f, \"convert_p50_ms\": %.3f, "
        "\"convert_p99_ms\": %.3f, \"encoder_p50_ms\": %.3f, "
        "\"encoder_p99_ms\": %.3f, \"cpu_ms_per_frame_incl_fill\": %.3f, "
        "\"bytes_per_frame\": %.0f}\n", encoder, n, hz, sum / n, P50 (ms),
        P99 (ms), ms[n - 1], P50 (conv_ms), P99 (conv_ms), P50 (enc_ms),
        P99 (enc_ms), (cpu1 - cpu0) * 1e3 / n, (double) bytes / n);
  }
  return 0;
}
