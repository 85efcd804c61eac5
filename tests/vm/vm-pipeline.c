/* vm-pipeline: runs one gst-launch style pipeline in the vm-test guest and
 * prints what the scenarios judge:
 *
 *   vm-pipeline SECONDS 'videotestsrc num-buffers=60 ! vsockenc name=enc ...'
 *
 * prints "wall_ms=", "cpu_ms=" (this process, user + system: the guest's
 * cost of the pipeline) and, if an element is named "enc" and has a
 * "stats" property (vsockenc), "stats=" with that structure, read at EOS
 * while the element is still running. Exit 0 at EOS, 1 on an error
 * message, 2 when SECONDS pass first (the pipeline is then torn down).
 * SIGINT or SIGTERM sends EOS (a live source's end: its stats are still
 * read at EOS). An element named "src": its buffers counted and its
 * output's caps printed ("src_buffers=", "src_caps="), for a live source
 * whose frame count is not known in advance (pipewiresrc). vsockscanoutsrc's pointer messages (cursor=true) are
 * printed as they come: "cursor_image=MS W H HOT-X HOT-Y" and
 * "cursor_position=MS X Y VISIBLE", MS since the start.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include <gst/gst.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/resource.h>

static volatile sig_atomic_t stop;

static void
on_signal (int sig)
{
  stop = 1;
}

/* a helix-cursor-image or helix-cursor-position element message */
static void
print_cursor (const GstStructure * s, gint64 t0)
{
  double ms = (g_get_monotonic_time () - t0) / 1e3;

  if (gst_structure_has_name (s, "helix-cursor-image")) {
    GstSample *sample = NULL;
    GstStructure *caps;
    guint hx = 0, hy = 0;
    gint w = 0, h = 0;

    gst_structure_get (s, "sample", GST_TYPE_SAMPLE, &sample, "hot-x",
        G_TYPE_UINT, &hx, "hot-y", G_TYPE_UINT, &hy, NULL);
    if (sample && gst_sample_get_caps (sample)) {
      caps = gst_caps_get_structure (gst_sample_get_caps (sample), 0);
      gst_structure_get_int (caps, "width", &w);
      gst_structure_get_int (caps, "height", &h);
    }
    g_print ("cursor_image=%.1f %d %d %u %u\n", ms, w, h, hx, hy);
    if (sample)
      gst_sample_unref (sample);
  } else if (gst_structure_has_name (s, "helix-cursor-position")) {
    gint x = 0, y = 0;
    gboolean visible = FALSE;

    gst_structure_get (s, "x", G_TYPE_INT, &x, "y", G_TYPE_INT, &y,
        "visible", G_TYPE_BOOLEAN, &visible, NULL);
    g_print ("cursor_position=%.1f %d %d %d\n", ms, x, y, visible);
  }
}

static volatile gint src_buffers;

static GstPadProbeReturn
on_src_buffer (GstPad * pad, GstPadProbeInfo * info, gpointer data)
{
  g_atomic_int_inc (&src_buffers);
  return GST_PAD_PROBE_OK;
}

static double
cpu_ms (void)
{
  struct rusage ru;

  getrusage (RUSAGE_SELF, &ru);
  return (ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1e3 +
      (ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e3;
}

int
main (int argc, char **argv)
{
  g_autoptr (GError) err = NULL;
  GstElement *pipeline, *enc, *src;
  GstPad *src_pad = NULL;
  GstBus *bus;
  GstMessage *msg;
  gint64 t0, deadline;
  double c0;
  int rc = 2, eos_sent = 0;

  gst_init (&argc, &argv);
  if (argc != 3) {
    g_printerr ("usage: vm-pipeline SECONDS PIPELINE\n");
    return 64;
  }
  pipeline = gst_parse_launch (argv[2], &err);
  if (!pipeline) {
    g_print ("error=%s\n", err->message);
    return 1;
  }
  enc = gst_bin_get_by_name (GST_BIN (pipeline), "enc");
  src = gst_bin_get_by_name (GST_BIN (pipeline), "src");
  if (src && (src_pad = gst_element_get_static_pad (src, "src")))
    gst_pad_add_probe (src_pad, GST_PAD_PROBE_TYPE_BUFFER, on_src_buffer,
        NULL, NULL);
  bus = gst_element_get_bus (pipeline);
  t0 = g_get_monotonic_time ();
  c0 = cpu_ms ();
  deadline = t0 + (gint64) (atof (argv[1]) * G_USEC_PER_SEC);
  signal (SIGINT, on_signal);
  signal (SIGTERM, on_signal);
  gst_element_set_state (pipeline, GST_STATE_PLAYING);
  for (;;) {
    gint64 left = deadline - g_get_monotonic_time ();

    if (left <= 0) {
      g_print ("error=timeout after %s s\n", argv[1]);
      break;
    }
    if (stop && !eos_sent) {
      gst_element_send_event (pipeline, gst_event_new_eos ());
      eos_sent = 1;
    }
    /* short waits: a signal is noticed within 100 ms */
    msg = gst_bus_timed_pop_filtered (bus, MIN (left, 100000) * GST_USECOND,
        GST_MESSAGE_EOS | GST_MESSAGE_ERROR | GST_MESSAGE_WARNING |
        GST_MESSAGE_ELEMENT);
    if (!msg)
      continue;
    if (GST_MESSAGE_TYPE (msg) == GST_MESSAGE_ELEMENT) {
      print_cursor (gst_message_get_structure (msg), t0);
      gst_message_unref (msg);
      continue;
    }
    if (GST_MESSAGE_TYPE (msg) == GST_MESSAGE_WARNING) {
      g_autoptr (GError) w = NULL;

      gst_message_parse_warning (msg, &w, NULL);
      g_print ("warning=%s: %s\n", GST_OBJECT_NAME (msg->src), w->message);
      gst_message_unref (msg);
      continue;
    }
    if (GST_MESSAGE_TYPE (msg) == GST_MESSAGE_ERROR) {
      g_autoptr (GError) e = NULL;
      g_autofree gchar *dbg = NULL;

      gst_message_parse_error (msg, &e, &dbg);
      g_print ("error=%s: %s (%s)\n", GST_OBJECT_NAME (msg->src), e->message,
          dbg ? dbg : "");
      rc = 1;
    } else {
      rc = 0;
    }
    gst_message_unref (msg);
    break;
  }
  g_print ("wall_ms=%.1f\ncpu_ms=%.1f\n",
      (g_get_monotonic_time () - t0) / 1e3, cpu_ms () - c0);
  if (enc && g_object_class_find_property (G_OBJECT_GET_CLASS (enc), "stats")) {
    GstStructure *s = NULL;
    g_autofree gchar *str = NULL;

    g_object_get (enc, "stats", &s, NULL);
    str = gst_structure_to_string (s);
    g_print ("stats=%s\n", str);
    gst_structure_free (s);
  }
  if (src_pad) {
    GstCaps *caps = gst_pad_get_current_caps (src_pad);
    g_autofree gchar *str = caps ? gst_caps_to_string (caps) : NULL;

    g_print ("src_buffers=%d\nsrc_caps=%s\n", g_atomic_int_get (&src_buffers),
        str ? str : "none");
    gst_clear_caps (&caps);
  }
  gst_element_set_state (pipeline, GST_STATE_NULL);
  gst_clear_object (&src_pad);
  gst_clear_object (&src);
  gst_clear_object (&enc);
  gst_object_unref (bus);
  gst_object_unref (pipeline);
  return rc;
}
