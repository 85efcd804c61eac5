/* helix-demo: the guest half of scripts/demo (not installed).
 *
 *   helix-demo stream --address unix:/tmp/x/hx.sock --frames 300 \
 *       --width 1280 --height 720 --output demo-out/demo.mp4
 *     runs  videotestsrc ! vsockenc ! h264parse ! mp4mux ! filesink
 *     and prints a summary from vsockenc's "stats" property (frames, fps,
 *     round-trip times), read at EOS before the element stops.
 *   helix-demo verify --output demo-out/demo.mp4 --frames 300 \
 *       --width 1280 --height 720
 *     decodes the file (qtdemux ! h264parse ! avdec_h264) and checks the
 *     frame count and size.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include <string.h>
#include <gst/gst.h>
#include <gst/app/gstappsink.h>
#include <gst/video/video.h>

#define TIMEOUT (120 * GST_SECOND)

static gchar *address, *output, *format;
static gint frames = 300, width = 1280, height = 720, fps = 30;

static GOptionEntry entries[] = {
  {"address", 'a', 0, G_OPTION_ARG_STRING, &address,
      "Bridge address: unix:PATH or tcp:HOST:PORT", "ADDR"},
  {"output", 'o', 0, G_OPTION_ARG_FILENAME, &output, "MP4 file", "FILE"},
  {"frames", 'n', 0, G_OPTION_ARG_INT, &frames, "Frames (default 300)", "N"},
  {"width", 0, 0, G_OPTION_ARG_INT, &width, "Width (default 1280)", "W"},
  {"height", 0, 0, G_OPTION_ARG_INT, &height, "Height (default 720)", "H"},
  {"fps", 0, 0, G_OPTION_ARG_INT, &fps, "Framerate (default 30)", "FPS"},
  {"format", 0, 0, G_OPTION_ARG_STRING, &format,
      "Raw format sent (default NV12)", "FORMAT"},
  {NULL}
};

/* Runs @p until EOS or error; on EOS calls @at_eos before stopping. */
static gboolean
run (GstElement * p, void (*at_eos) (gpointer), gpointer data)
{
  GstBus *bus = gst_element_get_bus (p);
  GstMessage *msg;
  gboolean ok = FALSE;

  gst_element_set_state (p, GST_STATE_PLAYING);
  msg = gst_bus_timed_pop_filtered (bus, TIMEOUT,
      GST_MESSAGE_EOS | GST_MESSAGE_ERROR);
  if (!msg) {
    g_printerr ("helix-demo: no end of stream within %" GST_TIME_FORMAT "\n",
        GST_TIME_ARGS (TIMEOUT));
  } else if (GST_MESSAGE_TYPE (msg) == GST_MESSAGE_ERROR) {
    GError *err = NULL;
    gchar *dbg = NULL;

    gst_message_parse_error (msg, &err, &dbg);
    g_printerr ("helix-demo: %s\n  (%s)\n", err->message, dbg);
    g_error_free (err);
    g_free (dbg);
  } else {
    ok = TRUE;
    if (at_eos)
      at_eos (data);
  }
  if (msg)
    gst_message_unref (msg);
  gst_element_set_state (p, GST_STATE_NULL);
  gst_object_unref (bus);
  return ok;
}

typedef struct
{
  GstElement *enc;
  gint64 t0;
} StreamCtx;

static void
print_stats (gpointer data)
{
  StreamCtx *c = data;
  GstStructure *s = NULL;
  gdouble secs = (g_get_monotonic_time () - c->t0) / 1e6;
  guint64 sent = 0, answered = 0, dropped = 0, failed = 0, bsent = 0, brecv =
      0, rmin = 0, ravg = 0, rmax = 0;
  guint version = 0;
  const gchar *host_enc;

  g_object_get (c->enc, "stats", &s, NULL);
  if (!s) {
    g_print ("no statistics from vsockenc\n");
    return;
  }
  gst_structure_get (s, "frames-sent", G_TYPE_UINT64, &sent,
      "frames-answered", G_TYPE_UINT64, &answered,
      "frames-dropped", G_TYPE_UINT64, &dropped,
      "frames-failed", G_TYPE_UINT64, &failed,
      "bytes-sent", G_TYPE_UINT64, &bsent,
      "bytes-received", G_TYPE_UINT64, &brecv,
      "rtt-min-us", G_TYPE_UINT64, &rmin,
      "rtt-avg-us", G_TYPE_UINT64, &ravg,
      "rtt-max-us", G_TYPE_UINT64, &rmax,
      "protocol-version", G_TYPE_UINT, &version, NULL);
  host_enc = gst_structure_get_string (s, "host-encoder");
  g_print ("frames:      %" G_GUINT64_FORMAT " sent, %" G_GUINT64_FORMAT
      " answered, %" G_GUINT64_FORMAT " dropped, %" G_GUINT64_FORMAT
      " failed\n", sent, answered, dropped, failed);
  g_print ("throughput:  %.1f fps (%.2f s wall clock, as fast as the bridge "
      "goes)\n", secs > 0 ? answered / secs : 0.0, secs);
  g_print ("round trip:  min %.2f ms, avg %.2f ms, max %.2f ms\n",
      rmin / 1000.0, ravg / 1000.0, rmax / 1000.0);
  g_print ("bytes:       %.1f MB of pixels sent, %.2f MB of H.264 back\n",
      bsent / 1e6, brecv / 1e6);
  g_print ("protocol:    HXFR v%u, host encoder %s\n", version,
      host_enc ? host_enc : "?");
  gst_structure_free (s);
}

static int
do_stream (void)
{
  gchar *transport, *desc;
  GstElement *p;
  StreamCtx c;
  gboolean ok;

  if (!address || !output) {
    g_printerr ("helix-demo stream: --address and --output are required\n");
    return 2;
  }
  if (g_str_has_prefix (address, "unix:"))
    transport = g_strdup_printf ("socket-path=\"%s\"", address + 5);
  else if (g_str_has_prefix (address, "tcp:") && strrchr (address, ':'))
    transport = g_strdup_printf ("tcp-host=127.0.0.1 tcp-port=%s",
        strrchr (address, ':') + 1);
  else {
    g_printerr ("helix-demo: unix: or tcp: addresses only\n");
    return 2;
  }
  desc = g_strdup_printf ("videotestsrc num-buffers=%d pattern=smpte "
      "horizontal-speed=4 ! "
      "video/x-raw,format=%s,width=%d,height=%d,framerate=%d/1 ! "
      "vsockenc name=enc %s keyframe-interval=%d ! h264parse ! mp4mux ! "
      "filesink location=\"%s\"", frames, format ? format : "NV12", width,
      height, fps, transport, fps, output);
  p = gst_parse_launch (desc, NULL);
  g_free (desc);
  g_free (transport);
  if (!p) {
    g_printerr ("helix-demo: cannot build the guest pipeline (vsockenc "
        "missing?)\n");
    return 1;
  }
  c.enc = gst_bin_get_by_name (GST_BIN (p), "enc");
  c.t0 = g_get_monotonic_time ();
  ok = run (p, print_stats, &c);
  gst_object_unref (c.enc);
  gst_object_unref (p);
  return ok ? 0 : 1;
}

static int
do_verify (void)
{
  gchar *desc;
  GstElement *p, *sink;
  GstSample *s;
  gint n = 0, bad_size = 0;

  if (!output) {
    g_printerr ("helix-demo verify: --output is required\n");
    return 2;
  }
  desc = g_strdup_printf ("filesrc location=\"%s\" ! qtdemux ! h264parse ! "
      "avdec_h264 ! appsink name=sink sync=false", output);
  p = gst_parse_launch (desc, NULL);
  g_free (desc);
  sink = gst_bin_get_by_name (GST_BIN (p), "sink");
  gst_element_set_state (p, GST_STATE_PLAYING);
  while ((s = gst_app_sink_try_pull_sample (GST_APP_SINK (sink), TIMEOUT))) {
    GstVideoInfo info;

    if (!gst_video_info_from_caps (&info, gst_sample_get_caps (s))
        || GST_VIDEO_INFO_WIDTH (&info) != width
        || GST_VIDEO_INFO_HEIGHT (&info) != height)
      bad_size++;
    n++;
    gst_sample_unref (s);
  }
  gst_element_set_state (p, GST_STATE_NULL);
  gst_object_unref (sink);
  gst_object_unref (p);
  g_print ("decoded:     %d of %d frames from %s (%dx%d)\n", n, frames,
      output, width, height);
  if (n != frames || bad_size) {
    g_printerr ("helix-demo: the file does not hold the %d %dx%d frames "
        "sent\n", frames, width, height);
    return 1;
  }
  return 0;
}

int
main (int argc, char **argv)
{
  GOptionContext *ctx = g_option_context_new ("stream|verify - guest side "
      "of the helix demo");
  GError *err = NULL;

  g_option_context_add_main_entries (ctx, entries, NULL);
  g_option_context_add_group (ctx, gst_init_get_option_group ());
  if (!g_option_context_parse (ctx, &argc, &argv, &err) || argc != 2) {
    g_printerr ("helix-demo: %s (try --help)\n",
        err ? err->message : "say stream or verify");
    return 2;
  }
  g_option_context_free (ctx);
  if (g_str_equal (argv[1], "stream"))
    return do_stream ();
  if (g_str_equal (argv[1], "verify"))
    return do_verify ();
  g_printerr ("helix-demo: unknown command %s\n", argv[1]);
  return 2;
}
