/* desk-latency: the vm-test desktop's latency subscriber. It subscribes to
 * a scanout with vsockscanoutsrc, decodes it in the guest and reads back
 * the number of each frame that tests/vm/desk-client.c drew (its 8x8
 * pattern, tests/vm/kms-flip.c's: row 7 is the number, the other rows
 * follow from it, so a picture is taken only if all 64 cells agree);
 * desk-client --times writes down when it drew each number:
 *
 *   desk-latency ADDRESS TOKEN TIME-SERVER FRAMES-OUT SECONDS
 *
 * ADDRESS and TOKEN are vsockscanoutsrc's (scanout 0). TIME-SERVER is
 * HOST:PORT of a UDP service on the host that answers each 8-byte
 * datagram with it and the host's CLOCK_MONOTONIC in ns (u64, little
 * endian; scripts/vm-test runs tests/vm/time-server.py), "-" for none.
 * FRAMES-OUT: a file that gets the decoded I420 picture of each frame with
 * a new number, in order ("-" for none). Runs until SIGINT or SIGTERM
 * (EOS) or for SECONDS at most.
 *
 * Prints key=value lines on stdout: one "frame=K READ_US DECODED_US
 * FLUSH_NS AU_NS" per picture with a new frame number K (READ_US,
 * DECODED_US: the guest's CLOCK_MONOTONIC in µs when its access unit came
 * out of vsockscanoutsrc and its picture out of the decoder; FLUSH_NS,
 * AU_NS: the host's CLOCK_MONOTONIC of the flush and of the access unit,
 * from the buffer's reference timestamps), then "clock_before=" and
 * "clock_after=" (OFFSET_US RTT_US: the guest's clock minus the host's,
 * from the time server's fastest answer of 100, and that round trip),
 * read=, decoded=, numbered=, written=, size=, error= if the pipeline
 * failed, and rc= (0 at EOS, 1 error, 2 timeout: also the exit status).
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include <arpa/inet.h>
#include <gst/gst.h>
#include <gst/video/video.h>
#include <glib-unix.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

typedef struct
{
  gint64 read_us;
  guint64 flush_ns, au_ns;
} Rec;

static GMainLoop *loop;
static int rc = 2;              /* 0 EOS, 1 error, 2 timeout */
static GMutex lock;
static GHashTable *recs;        /* pts -> Rec, from the source to the decoder */
static GHashTable *to_write;    /* pts of the pictures to write */
static guint64 n_read, n_decoded, n_numbered, n_written;
static guint32 last_k;
static gboolean have_k;
static FILE *frames_out;
static gint width, height;

static gboolean
on_bus (GstBus * bus, GstMessage * msg, gpointer data)
{
  if (GST_MESSAGE_TYPE (msg) == GST_MESSAGE_ERROR) {
    g_autoptr (GError) e = NULL;

    gst_message_parse_error (msg, &e, NULL);
    g_print ("error=%s: %s\n", GST_OBJECT_NAME (msg->src), e->message);
    rc = 1;
    g_main_loop_quit (loop);
  } else if (GST_MESSAGE_TYPE (msg) == GST_MESSAGE_EOS) {
    rc = 0;
    g_main_loop_quit (loop);
  }
  return G_SOURCE_CONTINUE;
}

/* SIGINT, SIGTERM: EOS, so that the last pictures are decoded */
static gboolean
on_stop (gpointer pipeline)
{
  gst_element_send_event (GST_ELEMENT (pipeline), gst_event_new_eos ());
  return G_SOURCE_CONTINUE;
}

static gboolean
on_timeout (gpointer data)
{
  g_print ("error=timeout\n");
  g_main_loop_quit (loop);
  return G_SOURCE_REMOVE;
}

/* The host's flush and access-unit times, from the buffer's reference
 * timestamps (vsockscanoutsrc's); 0 for one that is missing. */
static void
host_times (GstBuffer * b, Rec * r)
{
  gpointer state = NULL;
  GstMeta *m;

  r->flush_ns = r->au_ns = 0;
  while ((m = gst_buffer_iterate_meta_filtered (b, &state,
              GST_REFERENCE_TIMESTAMP_META_API_TYPE))) {
    GstReferenceTimestampMeta *t = (GstReferenceTimestampMeta *) m;
    const gchar *what =
        gst_structure_get_name (gst_caps_get_structure (t->reference, 0));

    if (!strcmp (what, "timestamp/x-helix-host-flush"))
      r->flush_ns = t->timestamp;
    else if (!strcmp (what, "timestamp/x-helix-host-access-unit"))
      r->au_ns = t->timestamp;
  }
}

static GstPadProbeReturn
on_read (GstPad * pad, GstPadProbeInfo * info, gpointer data)
{
  GstBuffer *b = GST_PAD_PROBE_INFO_BUFFER (info);
  Rec *r = g_new (Rec, 1);

  r->read_us = g_get_monotonic_time ();
  host_times (b, r);
  g_mutex_lock (&lock);
  n_read++;
  g_hash_table_insert (recs, GSIZE_TO_POINTER (GST_BUFFER_PTS (b)), r);
  g_mutex_unlock (&lock);
  return GST_PAD_PROBE_OK;
}

/* The colour index (bit 2 red, 1 green, 0 blue) of cell (CX, CY) of the
 * 8x8 pattern in an I420 picture: BT.601 of the mean of 4x4 pixels at
 * the cell's middle (its edges blur under 4:2:0 and H.264). */
static guint
cell_colour (GstVideoFrame * f, guint cx, guint cy)
{
  guint w = GST_VIDEO_FRAME_WIDTH (f), h = GST_VIDEO_FRAME_HEIGHT (f);
  guint x0 = cx * w / 8 + w / 16 - 2, y0 = cy * h / 8 + h / 16 - 2;
  gdouble sum[3] = { 0, 0, 0 }, y, u, v, r, g, b;

  for (guint p = 0; p < 3; p++) {
    const guint8 *d = GST_VIDEO_FRAME_PLANE_DATA (f, p);
    gint stride = GST_VIDEO_FRAME_PLANE_STRIDE (f, p);
    guint sh = p ? 1 : 0;

    for (guint j = 0; j < 4; j++)
      for (guint i = 0; i < 4; i++)
        sum[p] += d[((y0 + j) >> sh) * stride + ((x0 + i) >> sh)];
  }
  y = 1.164 * (sum[0] / 16 - 16);
  u = sum[1] / 16 - 128;
  v = sum[2] / 16 - 128;
  r = y + 1.596 * v;
  g = y - 0.813 * v - 0.391 * u;
  b = y + 2.018 * u;
  return (r > 127) << 2 | (g > 127) << 1 | (b > 127);
}

/* The number of a picture of desk-client's pattern (row 7, 3 bits a
 * cell); 0 and *k set only if every other cell is what that number's
 * pattern has there. */
static gboolean
frame_number (GstVideoFrame * f, guint32 * k)
{
  guint32 n = 0;

  for (guint cx = 0; cx < 8; cx++)
    n = n << 3 | cell_colour (f, cx, 7);
  for (guint cy = 0; cy < 7; cy++)
    for (guint cx = 0; cx < 8; cx++)
      if (cell_colour (f, cx, cy) != (cy == 6 ? cx : (cx + cy + n) & 7))
        return FALSE;
  *k = n;
  return TRUE;
}

static GstPadProbeReturn
on_decoded (GstPad * pad, GstPadProbeInfo * info, gpointer data)
{
  gint64 now = g_get_monotonic_time ();
  GstBuffer *b = GST_PAD_PROBE_INFO_BUFFER (info);
  GstCaps *caps = gst_pad_get_current_caps (pad);
  GstVideoInfo vi;
  GstVideoFrame f;
  guint32 k;
  gboolean numbered = FALSE;
  Rec *r;

  if (!caps || !gst_video_info_from_caps (&vi, caps)) {
    gst_clear_caps (&caps);
    return GST_PAD_PROBE_OK;
  }
  gst_caps_unref (caps);
  if (GST_VIDEO_INFO_FORMAT (&vi) == GST_VIDEO_FORMAT_I420 &&
      gst_video_frame_map (&f, &vi, b, GST_MAP_READ)) {
    numbered = frame_number (&f, &k);
    gst_video_frame_unmap (&f);
  }
  g_mutex_lock (&lock);
  n_decoded++;
  width = GST_VIDEO_INFO_WIDTH (&vi);
  height = GST_VIDEO_INFO_HEIGHT (&vi);
  r = g_hash_table_lookup (recs, GSIZE_TO_POINTER (GST_BUFFER_PTS (b)));
  /* a number seen before is a repeat of that picture: only its first */
  if (numbered && r && (!have_k || k > last_k)) {
    have_k = TRUE;
    last_k = k;
    n_numbered++;
    g_print ("frame=%u %" G_GINT64_FORMAT " %" G_GINT64_FORMAT " %"
        G_GUINT64_FORMAT " %" G_GUINT64_FORMAT "\n", k, r->read_us, now,
        r->flush_ns, r->au_ns);
    g_hash_table_add (to_write, GSIZE_TO_POINTER (GST_BUFFER_PTS (b)));
  }
  g_hash_table_remove (recs, GSIZE_TO_POINTER (GST_BUFFER_PTS (b)));
  g_mutex_unlock (&lock);
  return GST_PAD_PROBE_OK;
}

/* Behind a queue: writing a picture does not hold the decoder up. */
static GstPadProbeReturn
on_sink (GstPad * pad, GstPadProbeInfo * info, gpointer data)
{
  GstBuffer *b = GST_PAD_PROBE_INFO_BUFFER (info);
  GstCaps *caps;
  GstVideoInfo vi;
  GstVideoFrame f;
  gboolean write;

  g_mutex_lock (&lock);
  write = g_hash_table_remove (to_write, GSIZE_TO_POINTER (GST_BUFFER_PTS (b)));
  g_mutex_unlock (&lock);
  if (!write || !frames_out || !(caps = gst_pad_get_current_caps (pad)))
    return GST_PAD_PROBE_OK;
  if (gst_video_info_from_caps (&vi, caps) &&
      GST_VIDEO_INFO_FORMAT (&vi) == GST_VIDEO_FORMAT_I420 &&
      gst_video_frame_map (&f, &vi, b, GST_MAP_READ)) {
    for (guint p = 0; p < 3; p++) {
      const guint8 *d = GST_VIDEO_FRAME_PLANE_DATA (&f, p);

      for (gint y = 0; y < GST_VIDEO_FRAME_COMP_HEIGHT (&f, p); y++)
        fwrite (d + (gsize) y * GST_VIDEO_FRAME_PLANE_STRIDE (&f, p), 1,
            GST_VIDEO_FRAME_COMP_WIDTH (&f, p), frames_out);
    }
    gst_video_frame_unmap (&f);
    n_written++;
  }
  gst_caps_unref (caps);
  return GST_PAD_PROBE_OK;
}

/* The guest's clock minus the host's, in µs, from the fastest of 100
 * round trips to the time server; *rtt_us that round trip. FALSE if no
 * answer came. */
static gboolean
clock_offset (const gchar * server, gint64 * offset_us, gint64 * rtt_us)
{
  g_auto (GStrv) hp = g_strsplit (server, ":", 2);
  struct sockaddr_in a = { 0 };
  struct timeval tv = { 0, 200000 };
  gint64 best = G_MAXINT64;
  int fd;

  if (!hp[0] || !hp[1])
    return FALSE;
  a.sin_family = AF_INET;
  a.sin_port = htons (atoi (hp[1]));
  if (inet_pton (AF_INET, hp[0], &a.sin_addr) != 1 ||
      (fd = socket (AF_INET, SOCK_DGRAM, 0)) < 0)
    return FALSE;
  setsockopt (fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  if (connect (fd, (struct sockaddr *) &a, sizeof a) < 0) {
    close (fd);
    return FALSE;
  }
  for (guint64 seq = 1; seq <= 100; seq++) {
    guint64 req = GUINT64_TO_LE (seq), ans[2];
    gint64 t0 = g_get_monotonic_time (), t1;

    if (send (fd, &req, sizeof req, 0) != sizeof req)
      break;
    /* a late answer to an earlier request is skipped */
    while (recv (fd, ans, sizeof ans, 0) == sizeof ans &&
        GUINT64_FROM_LE (ans[0]) != seq);
    t1 = g_get_monotonic_time ();
    if (GUINT64_FROM_LE (ans[0]) == seq && t1 - t0 < best) {
      best = t1 - t0;
      *rtt_us = best;
      *offset_us = (t0 + t1) / 2 - (gint64) (GUINT64_FROM_LE (ans[1]) / 1000);
    }
    g_usleep (2000);
  }
  close (fd);
  return best != G_MAXINT64;
}

static void
print_clock (const gchar * key, const gchar * server)
{
  gint64 off, rtt;

  if (strcmp (server, "-") != 0 && clock_offset (server, &off, &rtt))
    g_print ("%s=%" G_GINT64_FORMAT " %" G_GINT64_FORMAT "\n", key, off, rtt);
  else
    g_print ("%s=none\n", key);
}

static void
probe (GstElement * pipeline, const gchar * name, const gchar * pad,
    GstPadProbeCallback cb)
{
  GstElement *e = gst_bin_get_by_name (GST_BIN (pipeline), name);
  GstPad *p = gst_element_get_static_pad (e, pad);

  gst_pad_add_probe (p, GST_PAD_PROBE_TYPE_BUFFER, cb, NULL, NULL);
  gst_object_unref (p);
  gst_object_unref (e);
}

int
main (int argc, char **argv)
{
  g_autoptr (GError) err = NULL;
  g_autofree gchar *desc = NULL;
  GstElement *pipeline;
  GstBus *bus;

  gst_init (&argc, &argv);
  if (argc != 6) {
    g_printerr ("usage: desk-latency ADDRESS TOKEN TIME-SERVER FRAMES-OUT "
        "SECONDS\n");
    return 64;
  }
  if (strcmp (argv[4], "-") != 0 && !(frames_out = fopen (argv[4], "wb"))) {
    g_printerr ("desk-latency: cannot write %s\n", argv[4]);
    return 1;
  }
  recs = g_hash_table_new_full (NULL, NULL, NULL, g_free);
  to_write = g_hash_table_new (NULL, NULL);
  /* slice threads only: frame threads would hold a picture back a frame */
  desc = g_strdup_printf ("vsockscanoutsrc name=src address=%s scanout=0 "
      "token=%s reconnect=false ! h264parse ! avdec_h264 name=dec "
      "thread-type=slice ! queue ! fakesink name=sink", argv[1], argv[2]);
  pipeline = gst_parse_launch (desc, &err);
  if (!pipeline) {
    g_print ("error=%s\n", err->message);
    return 1;
  }
  probe (pipeline, "src", "src", on_read);
  probe (pipeline, "dec", "src", on_decoded);
  probe (pipeline, "sink", "sink", on_sink);
  print_clock ("clock_before", argv[3]);
  loop = g_main_loop_new (NULL, FALSE);
  bus = gst_element_get_bus (pipeline);
  gst_bus_add_watch (bus, on_bus, NULL);
  g_unix_signal_add (SIGINT, on_stop, pipeline);
  g_unix_signal_add (SIGTERM, on_stop, pipeline);
  g_timeout_add_seconds (atoi (argv[5]), on_timeout, NULL);
  gst_element_set_state (pipeline, GST_STATE_PLAYING);
  g_main_loop_run (loop);
  gst_element_set_state (pipeline, GST_STATE_NULL);
  print_clock ("clock_after", argv[3]);
  g_print ("read=%" G_GUINT64_FORMAT "\ndecoded=%" G_GUINT64_FORMAT
      "\nnumbered=%" G_GUINT64_FORMAT "\nwritten=%" G_GUINT64_FORMAT
      "\nsize=%dx%d\nrc=%d\n", n_read, n_decoded, n_numbered, n_written, width,
      height, rc);
  if (frames_out)
    fclose (frames_out);
  gst_bus_remove_watch (bus);
  gst_object_unref (bus);
  gst_object_unref (pipeline);
  g_main_loop_unref (loop);
  g_hash_table_unref (recs);
  g_hash_table_unref (to_write);
  return rc;
}
