/* vsockscanoutsrc tests, against a fake host of this file's own that
 * speaks the v2 scanout subscription and pushes real H.264 (x264enc of
 * videotestsrc, made once).
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include <string.h>

#include <glib/gstdio.h>
#include <gst/check/gstcheck.h>
#include <gst/video/video.h>

#include "hxfr-transport.h"
#include "hxfr-scanout.h"
#include "video-compare.h"
#include "elements.h"

#define W 160
#define H 120
#define N_AU 30
#define WAIT_US (20 * G_USEC_PER_SEC)
#define WAIT_NS (20 * GST_SECOND)
#define FIRST_CAPTURE (1000 * GST_SECOND)

/* Access units of x264enc (only [0] an IDR) and the raw frames they
 * encode, made once. */
static GBytes *au[N_AU];
static gboolean au_key[N_AU];
static GstSample *raw[N_AU];

/* The host's capture time of frame @i: irregular spacing (33 ms, then 5 ms
 * more on odd frames), so that timestamps following it cannot be a fixed
 * frame rate. */
static guint64
capture_time (guint i)
{
  return FIRST_CAPTURE + i * 33 * GST_MSECOND + (i % 2) * 5 * GST_MSECOND;
}

static gpointer
make_aus (gpointer unused)
{
  GstElement *pipe, *enc, *ref;
  GError *err = NULL;
  guint i;

  pipe = gst_parse_launch ("videotestsrc num-buffers=" G_STRINGIFY (N_AU)
      " pattern=smpte horizontal-speed=3 ! video/x-raw,format=I420,width="
      G_STRINGIFY (W) ",height=" G_STRINGIFY (H) ",framerate=30/1 ! tee "
      "name=t t. ! queue ! x264enc tune=zerolatency speed-preset=ultrafast "
      "key-int-max=1000 pass=quant quantizer=18 ! video/x-h264,"
      "stream-format=byte-stream,alignment=au ! appsink name=enc sync=false "
      "t. ! queue ! appsink name=ref sync=false", &err);
  g_assert_no_error (err);
  enc = gst_bin_get_by_name (GST_BIN (pipe), "enc");
  ref = gst_bin_get_by_name (GST_BIN (pipe), "ref");
  gst_element_set_state (pipe, GST_STATE_PLAYING);
  for (i = 0; i < N_AU; i++) {
    GstSample *s = NULL;
    GstBuffer *b;
    GstMapInfo map;

    g_signal_emit_by_name (enc, "try-pull-sample", WAIT_NS, &s);
    g_assert (s != NULL);
    b = gst_sample_get_buffer (s);
    gst_buffer_map (b, &map, GST_MAP_READ);
    au[i] = g_bytes_new (map.data, map.size);
    gst_buffer_unmap (b, &map);
    au_key[i] = !GST_BUFFER_FLAG_IS_SET (b, GST_BUFFER_FLAG_DELTA_UNIT);
    gst_sample_unref (s);
    g_signal_emit_by_name (ref, "try-pull-sample", WAIT_NS, &raw[i]);
    g_assert (raw[i] != NULL);
  }
  g_assert (au_key[0]);
  gst_element_set_state (pipe, GST_STATE_NULL);
  gst_object_unref (enc);
  gst_object_unref (ref);
  gst_object_unref (pipe);
  return NULL;
}

/* The fake host */

typedef enum
{
  AFTER_HOLD,                   /* stay, answer KEYFRAME_REQ/CONTROL/PING */
  AFTER_CLOSE,                  /* hang up */
  AFTER_END,                    /* SCANOUT_END end_reason, hang up */
} After;

/* What the host does on one connection. */
typedef struct
{
  gint32 error;                 /* != 0: ERROR with it instead of the ACK */
  gboolean no_answer;           /* never answer SUBSCRIBE2 */
  guint n_frames;
  gboolean lie;                 /* then a SCANOUT_FRAME of 4 GiB */
  After after;
  guint32 end_reason;
  gboolean cursor;              /* after the ACK: a cursor image and move */
} Script;

#define MAX_SCRIPTS 8

typedef struct
{
  HxfrListener *listener;
  gchar *dir, *path, *address;
  GThread *thread;
  GCancellable *cancellable;
  GMutex lock;
  GCond cond;
  Script scripts[MAX_SCRIPTS];  /* by connection; the last one repeats */
  guint n_scripts;
  guint n_connections;
  HxfrSubscribe2 sub;
  gchar token[HXFR_MAX_TOKEN + 1];
  guint n_keyreqs;
  guint n_controls;
  HxfrControl control;
} Host;

static gboolean
push_frame (Host * host, HxfrConn * conn, guint i, guint32 seq, guint64 capture)
{
  HxfrScanoutFrame f = { 0, };
  guint8 fixed[HXFR_SCANOUT_FRAME_SIZE];
  GOutputVector tail;
  gsize size;

  f.seq = seq;
  f.frame_flags = au_key[i] ? HXFR_SCANOUT_FRAME_KEYFRAME : 0;
  f.width = W;
  f.height = H;
  f.pts = capture - FIRST_CAPTURE;
  f.duration = -1;
  f.capture_time = capture;
  f.encode_us = 1000 + i;
  tail.buffer = g_bytes_get_data (au[i], &size);
  tail.size = size;
  return hxfr_conn_send (conn, HXFR_MSG_SCANOUT_FRAME, 0, 0, fixed,
      hxfr_scanout_frame_write (&f, fixed), &tail, 1, WAIT_US, NULL, NULL);
}

/* SUBSCRIBE2, recorded. */
static gboolean
read_subscribe (Host * host, HxfrConn * conn)
{
  guint8 hdr[HXFR_HEADER_SIZE], payload[HXFR_SUBSCRIBE2_SIZE + HXFR_MAX_TOKEN];
  HxfrHeader h;
  HxfrSubscribe2 s;

  if (!hxfr_conn_read_exact (conn, hdr, sizeof (hdr), WAIT_US,
          host->cancellable, NULL))
    return FALSE;
  g_assert (hxfr_header_parse (hdr, &h, NULL));
  g_assert_cmpuint (h.type, ==, HXFR_MSG_SUBSCRIBE2);
  g_assert_cmpuint (h.payload_size, <=, sizeof (payload));
  g_assert (hxfr_conn_read_exact (conn, payload, h.payload_size, WAIT_US,
          host->cancellable, NULL));
  g_assert (hxfr_subscribe2_parse (payload, h.payload_size, &s, NULL));
  g_assert_cmpuint (h.payload_size, ==, HXFR_SUBSCRIBE2_SIZE + s.token_len);
  g_mutex_lock (&host->lock);
  host->sub = s;
  memcpy (host->token, payload + HXFR_SUBSCRIBE2_SIZE, s.token_len);
  host->token[s.token_len] = '\0';
  g_mutex_unlock (&host->lock);
  return TRUE;
}

static gboolean
send_ack (HxfrConn * conn, guint32 scanout)
{
  HxfrSubscribe2Ack a = { 0, };
  guint8 fixed[HXFR_SUBSCRIBE2_ACK_SIZE];

  a.version = 2;
  a.codec = HXFR_CODEC_H264;
  a.scanout_id = scanout;
  a.width = W;
  a.height = H;
  g_strlcpy (a.encoder, "fake-x264", sizeof (a.encoder));
  return hxfr_conn_send (conn, HXFR_MSG_SUBSCRIBE2_ACK, 0, 0, fixed,
      hxfr_subscribe2_ack_write (&a, fixed), NULL, 0, WAIT_US, NULL, NULL);
}

/* The cursor's 2x1 image (hotspot 1,0: B G R A red, then blue at half
 * alpha) and its position (7,-3), as the bridge sends them */
static const guint8 cursor_pixels[8] = { 0, 0, 255, 255, 255, 0, 0, 128 };

static void
send_cursor (HxfrConn * conn)
{
  HxfrCursorImage ci = { 2, 1, 1, 0 };
  HxfrCursorPosition p = { 7, -3, HXFR_CURSOR_VISIBLE, capture_time (0) };
  guint8 fixed[HXFR_CURSOR_POSITION_SIZE];
  GOutputVector tail = { cursor_pixels, sizeof (cursor_pixels) };

  g_assert (hxfr_conn_send (conn, HXFR_MSG_CURSOR_IMAGE, 0, 0, fixed,
          hxfr_cursor_image_write (&ci, fixed), &tail, 1, WAIT_US, NULL, NULL));
  g_assert (hxfr_conn_send (conn, HXFR_MSG_CURSOR_POSITION, 0, 0, fixed,
          hxfr_cursor_position_write (&p, fixed), NULL, 0, WAIT_US, NULL,
          NULL));
}

/* After the frames: what the guest sends, until it or the test leaves.
 * A KEYFRAME_REQ is answered with an IDR. */
static void
hold (Host * host, HxfrConn * conn, guint32 seq, guint64 capture)
{
  while (TRUE) {
    guint8 hdr[HXFR_HEADER_SIZE], payload[HXFR_CONTROL_SIZE];
    HxfrHeader h;

    if (!hxfr_conn_read_exact (conn, hdr, sizeof (hdr), -1,
            host->cancellable, NULL))
      return;
    g_assert (hxfr_header_parse (hdr, &h, NULL));
    g_assert_cmpuint (h.payload_size, <=, sizeof (payload));
    if (!hxfr_conn_read_exact (conn, payload, h.payload_size, WAIT_US,
            host->cancellable, NULL))
      return;
    g_mutex_lock (&host->lock);
    if (h.type == HXFR_MSG_KEYFRAME_REQ)
      host->n_keyreqs++;
    if (h.type == HXFR_MSG_CONTROL) {
      g_assert (hxfr_control_parse (payload, h.payload_size, &host->control,
              NULL));
      host->n_controls++;
    }
    g_cond_broadcast (&host->cond);
    g_mutex_unlock (&host->lock);
    if (h.type == HXFR_MSG_KEYFRAME_REQ)
      push_frame (host, conn, 0, seq++, capture += 20 * GST_MSECOND);
    if (h.type == HXFR_MSG_PING)
      hxfr_conn_send (conn, HXFR_MSG_PONG, 0, 0, NULL, 0, NULL, 0, WAIT_US,
          NULL, NULL);
  }
}

static void
lie (HxfrConn * conn)
{
  guint8 msg[HXFR_HEADER_SIZE + HXFR_SCANOUT_FRAME_SIZE] = { 0, };
  HxfrHeader h = { HXFR_MSG_SCANOUT_FRAME, 0, 0, 0xFFFFFFF0u };
  HxfrScanoutFrame f = { 0, };

  f.seq = 1000;
  f.width = W;
  f.height = H;
  f.capture_time = capture_time (N_AU);
  hxfr_header_write (msg, &h);
  hxfr_scanout_frame_write (&f, msg + HXFR_HEADER_SIZE);
  g_assert (g_socket_send (hxfr_conn_get_socket (conn), (gchar *) msg,
          sizeof (msg), NULL, NULL) == sizeof (msg));
}

static void
serve (Host * host, HxfrConn * conn, const Script * sc)
{
  guint8 fixed[HXFR_ERROR_SIZE + HXFR_SCANOUT_END_SIZE];
  guint i;

  if (!read_subscribe (host, conn))
    return;
  if (sc->no_answer) {
    hold (host, conn, 0, 0);
    return;
  }
  if (sc->error) {
    hxfr_conn_send_error (conn, 0, sc->error, "scripted", WAIT_US, NULL);
    return;
  }
  g_assert (send_ack (conn, host->sub.scanout_id));
  if (sc->cursor)
    send_cursor (conn);
  /* seq starts anywhere: the guest must not assume 0 */
  for (i = 0; i < sc->n_frames; i++)
    if (!push_frame (host, conn, i, 7 + i, capture_time (i)))
      return;
  if (sc->lie)
    lie (conn);
  if (sc->after == AFTER_END)
    hxfr_conn_send (conn, HXFR_MSG_SCANOUT_END, 0, 0, fixed,
        hxfr_scanout_end_write (sc->end_reason, "scripted end", fixed),
        NULL, 0, WAIT_US, NULL, NULL);
  if (sc->after == AFTER_HOLD)
    hold (host, conn, 7 + i, capture_time (i));
}

static gpointer
host_thread (gpointer data)
{
  Host *host = data;

  while (TRUE) {
    HxfrConn *conn = hxfr_listener_accept (host->listener, -1,
        host->cancellable, NULL);
    Script sc;

    if (!conn)
      return NULL;
    g_mutex_lock (&host->lock);
    sc = host->scripts[MIN (host->n_connections, host->n_scripts - 1)];
    host->n_connections++;
    g_cond_broadcast (&host->cond);
    g_mutex_unlock (&host->lock);
    serve (host, conn, &sc);
    hxfr_conn_shutdown (conn);
    hxfr_conn_unref (conn);
  }
}

/* @scripts: one per connection, the last repeated */
static Host *
host_new (const Script * scripts, guint n)
{
  static GOnce once = G_ONCE_INIT;
  Host *host = g_new0 (Host, 1);
  GError *err = NULL;
  HxfrAddress *addr;
  GPollFD unused;

  g_once (&once, make_aus, NULL);
  g_assert (n >= 1 && n <= MAX_SCRIPTS);
  memcpy (host->scripts, scripts, n * sizeof (Script));
  host->n_scripts = n;
  host->dir = g_dir_make_tmp ("scanoutsrc-XXXXXX", &err);
  g_assert_no_error (err);
  host->path = g_build_filename (host->dir, "hx.sock", NULL);
  host->address = g_strdup_printf ("unix:%s", host->path);
  addr = hxfr_address_new_unix (host->path);
  host->listener = hxfr_listener_new (addr, 0600, &err);
  g_assert_no_error (err);
  hxfr_address_free (addr);
  host->cancellable = g_cancellable_new ();
  g_cancellable_make_pollfd (host->cancellable, &unused);
  g_mutex_init (&host->lock);
  g_cond_init (&host->cond);
  host->thread = g_thread_new ("fakehost", host_thread, host);
  return host;
}

static void
host_free (Host * host)
{
  g_cancellable_cancel (host->cancellable);
  g_thread_join (host->thread);
  hxfr_listener_free (host->listener);
  g_rmdir (host->dir);
  g_cancellable_release_fd (host->cancellable);
  g_object_unref (host->cancellable);
  g_mutex_clear (&host->lock);
  g_cond_clear (&host->cond);
  g_free (host->address);
  g_free (host->path);
  g_free (host->dir);
  g_free (host);
}

/* Waits until *@counter >= @n. */
static gboolean
host_wait (Host * host, guint * counter, guint n)
{
  gint64 until = g_get_monotonic_time () + WAIT_US;
  gboolean ok = TRUE;

  g_mutex_lock (&host->lock);
  while (*counter < n && ok)
    ok = g_cond_wait_until (&host->cond, &host->lock, until);
  ok = *counter >= n;
  g_mutex_unlock (&host->lock);
  return ok;
}

/* The guest pipeline */

typedef struct
{
  GstElement *pipe, *src, *sink;
  GstBus *bus;
} Guest;

/* @props: more properties of the source; @tail: after it, up to the
 * appsink named sink */
static void
guest_start (Guest * g, Host * host, const gchar * props, const gchar * tail)
{
  gchar *desc = g_strdup_printf ("vsockscanoutsrc name=src address=%s "
      "token=secret %s ! %s appsink name=sink sync=false", host->address,
      props ? props : "", tail ? tail : "");

  g->pipe = gst_parse_launch (desc, NULL);
  g_free (desc);
  fail_unless (g->pipe != NULL);
  g->src = gst_bin_get_by_name (GST_BIN (g->pipe), "src");
  g->sink = gst_bin_get_by_name (GST_BIN (g->pipe), "sink");
  g->bus = gst_element_get_bus (g->pipe);
  fail_if (gst_element_set_state (g->pipe, GST_STATE_PLAYING) ==
      GST_STATE_CHANGE_FAILURE);
}

static void
guest_stop (Guest * g)
{
  gst_element_set_state (g->pipe, GST_STATE_NULL);
  gst_object_unref (g->bus);
  gst_object_unref (g->src);
  gst_object_unref (g->sink);
  gst_object_unref (g->pipe);
}

/* The reference timestamp of WHAT on a buffer, GST_CLOCK_TIME_NONE if none. */
static GstClockTime
host_time (GstBuffer * b, const gchar * what)
{
  GstCaps *caps = gst_caps_from_string (what);
  GstReferenceTimestampMeta *m =
      gst_buffer_get_reference_timestamp_meta (b, caps);

  gst_caps_unref (caps);
  return m ? m->timestamp : GST_CLOCK_TIME_NONE;
}

static GstSample *
pull (Guest * g)
{
  GstSample *s = NULL;

  g_signal_emit_by_name (g->sink, "try-pull-sample", WAIT_NS, &s);
  fail_unless (s != NULL, "no sample within the bound");
  return s;
}

static guint64
stat_u64 (Guest * g, const gchar * name)
{
  GstStructure *s;
  guint64 v = 0;

  g_object_get (g->src, "stats", &s, NULL);
  fail_unless (gst_structure_get_uint64 (s, name, &v));
  gst_structure_free (s);
  return v;
}

static gboolean
buffer_is (GstBuffer * b, GBytes * bytes)
{
  gsize size;
  const guint8 *data = g_bytes_get_data (bytes, &size);

  return gst_buffer_get_size (b) == size
      && gst_buffer_memcmp (b, 0, data, size) == 0;
}

/* An error message on the bus, and mentioning @what. */
static void
expect_error (Guest * g, GQuark domain, gint code, const gchar * what)
{
  GstMessage *m = gst_bus_timed_pop_filtered (g->bus, WAIT_NS,
      GST_MESSAGE_ERROR);
  GError *err = NULL;
  gchar *dbg = NULL;

  fail_unless (m != NULL, "no error posted");
  gst_message_parse_error (m, &err, &dbg);
  GST_INFO ("error: %s (%s)", err->message, dbg);
  fail_unless (m->src == GST_OBJECT (g->src), "error not from the source");
  fail_unless (g_error_matches (err, domain, code), "%s", err->message);
  fail_unless (strstr (err->message, what) || (dbg && strstr (dbg, what)),
      "'%s' not in '%s' / '%s'", what, err->message, dbg);
  g_error_free (err);
  g_free (dbg);
  gst_message_unref (m);
}

/* Tests */

/* Every AU as the host sent it, in its own buffer, with the caps, flags
 * and timestamps a user checks; the subscription as the host saw it. */
GST_START_TEST (test_access_units)
{
  const Script sc[] = { {.n_frames = N_AU,.after = AFTER_HOLD} };
  Host *host = host_new (sc, 1);
  Guest g;
  GstClockTime pts0 = 0, last = GST_CLOCK_TIME_NONE;
  GstQuery *q;
  gboolean live;
  GstClockTime min, max;
  guint i;

  guest_start (&g, host, "bitrate=3000000 max-width=1280 max-height=720", NULL);
  for (i = 0; i < N_AU; i++) {
    GstSample *s = pull (&g);
    GstBuffer *b = gst_sample_get_buffer (s);
    GstStructure *st = gst_caps_get_structure (gst_sample_get_caps (s), 0);
    gint w = 0, h = 0;

    fail_unless (gst_structure_has_name (st, "video/x-h264"));
    fail_unless_equals_string (gst_structure_get_string (st,
            "stream-format"), "byte-stream");
    fail_unless_equals_string (gst_structure_get_string (st, "alignment"),
        "au");
    fail_unless (gst_structure_get_int (st, "width", &w)
        && gst_structure_get_int (st, "height", &h));
    fail_unless_equals_int (w, W);
    fail_unless_equals_int (h, H);
    fail_unless (buffer_is (b, au[i]), "buffer %u is not AU %u", i, i);
    fail_unless_equals_int (GST_BUFFER_FLAG_IS_SET (b,
            GST_BUFFER_FLAG_DELTA_UNIT), !au_key[i]);
    fail_unless_equals_int (GST_BUFFER_FLAG_IS_SET (b,
            GST_BUFFER_FLAG_DISCONT), i == 0);
    fail_unless (GST_BUFFER_PTS_IS_VALID (b));
    if (i == 0)
      pts0 = GST_BUFFER_PTS (b);
    else
      fail_unless (GST_BUFFER_PTS (b) > last);
    /* the capture spacing, not the arrival (they come in a burst) */
    fail_unless_equals_uint64 (GST_BUFFER_PTS (b) - pts0,
        capture_time (i) - capture_time (0));
    last = GST_BUFFER_PTS (b);
    /* the host's own times: the flush and the access unit */
    fail_unless_equals_uint64 (host_time (b, "timestamp/x-helix-host-flush"),
        capture_time (i));
    fail_unless_equals_uint64 (host_time (b,
            "timestamp/x-helix-host-access-unit"),
        capture_time (i) + (1000 + i) * GST_USECOND);
    gst_sample_unref (s);
  }
  g_mutex_lock (&host->lock);
  fail_unless_equals_int (host->sub.min_version, 2);
  fail_unless_equals_int (host->sub.max_version, 2);
  fail_unless_equals_int (host->sub.codec, HXFR_CODEC_H264);
  fail_unless_equals_int (host->sub.scanout_id, 1);
  fail_unless_equals_int (host->sub.bitrate, 3000000);
  fail_unless_equals_int (host->sub.max_width, 1280);
  fail_unless_equals_int (host->sub.max_height, 720);
  fail_unless_equals_int (host->sub.flags, 0);
  fail_unless_equals_string (host->token, "secret");
  g_mutex_unlock (&host->lock);
  fail_unless_equals_uint64 (stat_u64 (&g, "frames"), N_AU);
  fail_unless_equals_uint64 (stat_u64 (&g, "keyframes"), 1);
  fail_unless_equals_uint64 (stat_u64 (&g, "host-dropped"), 0);

  q = gst_query_new_latency ();
  fail_unless (gst_element_query (g.src, q));
  gst_query_parse_latency (q, &live, &min, &max);
  fail_unless (live);
  fail_unless (min > 0 && min <= 100 * GST_MSECOND);
  gst_query_unref (q);
  guest_stop (&g);
  host_free (host);
}

GST_END_TEST;

/* vsockscanoutsrc ! h264parse ! decoder: the decoded frames are the
 * frames the host encoded */
GST_START_TEST (test_decode)
{
  const Script sc[] = { {.n_frames = N_AU,.after = AFTER_HOLD} };
  Host *host = host_new (sc, 1);
  Guest g;
  guint i;

  guest_start (&g, host, NULL, "h264parse ! avdec_h264 ! videoconvert ! "
      "video/x-raw,format=I420 !");
  for (i = 0; i < N_AU; i++) {
    GstSample *s = pull (&g);
    gdouble mse = video_compare_luma_mse (s, raw[i]);

    fail_unless (mse <= VIDEO_COMPARE_MAX_MSE_30DB,
        "frame %u: luma MSE %.2f (PSNR < 30 dB)", i, mse);
    gst_sample_unref (s);
  }
  guest_stop (&g);
  host_free (host);
}

GST_END_TEST;

GST_START_TEST (test_force_key_unit)
{
  const Script sc[] = { {.n_frames = 3,.after = AFTER_HOLD} };
  Host *host = host_new (sc, 1);
  Guest g;
  GstSample *s;
  guint i;

  guest_start (&g, host, NULL, NULL);
  for (i = 0; i < 3; i++)
    gst_sample_unref (pull (&g));
  fail_unless (gst_element_send_event (g.sink,
          gst_video_event_new_upstream_force_key_unit (GST_CLOCK_TIME_NONE,
              TRUE, 1)));
  fail_unless (host_wait (host, &host->n_keyreqs, 1));
  /* the host answers with an IDR */
  s = pull (&g);
  fail_if (GST_BUFFER_FLAG_IS_SET (gst_sample_get_buffer (s),
          GST_BUFFER_FLAG_DELTA_UNIT));
  gst_sample_unref (s);
  fail_unless_equals_uint64 (stat_u64 (&g, "keyframe-requests"), 1);
  guest_stop (&g);
  host_free (host);
}

GST_END_TEST;

GST_START_TEST (test_bitrate_control)
{
  const Script sc[] = { {.n_frames = 2,.after = AFTER_HOLD} };
  Host *host = host_new (sc, 1);
  Guest g;

  guest_start (&g, host, NULL, NULL);
  gst_sample_unref (pull (&g));
  gst_sample_unref (pull (&g));
  g_object_set (g.src, "bitrate", 2500000, NULL);
  fail_unless (host_wait (host, &host->n_controls, 1));
  fail_unless_equals_int (host->control.mask, HXFR_CONTROL_BITRATE);
  fail_unless_equals_int (host->control.bitrate, 2500000);
  guest_stop (&g);
  host_free (host);
}

GST_END_TEST;

/* ERROR -7: an error on the bus that says why, and no retry */
GST_START_TEST (test_unauthorized)
{
  const Script sc[] = { {.error = HXFR_ERR_UNAUTHORIZED} };
  Host *host = host_new (sc, 1);
  Guest g;

  guest_start (&g, host, NULL, NULL);
  expect_error (&g, GST_RESOURCE_ERROR, GST_RESOURCE_ERROR_NOT_AUTHORIZED,
      "token");
  fail_unless_equals_int (host->n_connections, 1);
  guest_stop (&g);
  host_free (host);
}

GST_END_TEST;

/* Lost, refused (-13), ended (disabled): each time the element comes back
 * and the first buffer after it is a DISCONT IDR; PTS keep increasing. */
GST_START_TEST (test_reconnect)
{
  const Script sc[] = {
    {.n_frames = 5,.after = AFTER_CLOSE},
    {.error = HXFR_ERR_NO_SCANOUT},
    {.n_frames = 5,.after = AFTER_END,.end_reason = HXFR_SCANOUT_END_DISABLED},
    {.n_frames = 5,.after = AFTER_HOLD},
  };
  Host *host = host_new (sc, G_N_ELEMENTS (sc));
  Guest g;
  GstClockTime last = GST_CLOCK_TIME_NONE;
  guint i;

  guest_start (&g, host, NULL, NULL);
  for (i = 0; i < 15; i++) {
    GstSample *s = pull (&g);
    GstBuffer *b = gst_sample_get_buffer (s);
    gboolean fresh = i % 5 == 0;

    fail_unless (buffer_is (b, au[i % 5]));
    fail_unless_equals_int (GST_BUFFER_FLAG_IS_SET (b,
            GST_BUFFER_FLAG_DISCONT), fresh);
    fail_unless_equals_int (GST_BUFFER_FLAG_IS_SET (b,
            GST_BUFFER_FLAG_DELTA_UNIT), !fresh);
    if (i > 0)
      fail_unless (GST_BUFFER_PTS (b) > last, "PTS went back at %u", i);
    last = GST_BUFFER_PTS (b);
    gst_sample_unref (s);
  }
  fail_unless_equals_int (host->n_connections, 4);
  fail_unless_equals_uint64 (stat_u64 (&g, "reconnects"), 2);
  fail_unless (gst_bus_pop_filtered (g.bus, GST_MESSAGE_ERROR) == NULL);
  guest_stop (&g);
  host_free (host);
}

GST_END_TEST;

/* reconnect=false: SCANOUT_END is the end of the stream, a lost host an
 * error */
GST_START_TEST (test_no_reconnect)
{
  const Script end[] = { {.n_frames = 3,.after = AFTER_END,.end_reason =
          HXFR_SCANOUT_END_SHUTDOWN}
  };
  const Script drop[] = { {.n_frames = 3,.after = AFTER_CLOSE} };
  Host *host = host_new (end, 1);
  Guest g;
  GstMessage *m;
  guint i;

  guest_start (&g, host, "reconnect=false", NULL);
  for (i = 0; i < 3; i++)
    gst_sample_unref (pull (&g));
  m = gst_bus_timed_pop_filtered (g.bus, WAIT_NS,
      GST_MESSAGE_EOS | GST_MESSAGE_ERROR);
  fail_unless (m != NULL && GST_MESSAGE_TYPE (m) == GST_MESSAGE_EOS);
  gst_message_unref (m);
  guest_stop (&g);
  host_free (host);

  host = host_new (drop, 1);
  guest_start (&g, host, "reconnect=false", NULL);
  for (i = 0; i < 3; i++)
    gst_sample_unref (pull (&g));
  expect_error (&g, GST_RESOURCE_ERROR, GST_RESOURCE_ERROR_READ, "Lost");
  fail_unless_equals_int (host->n_connections, 1);
  guest_stop (&g);
  host_free (host);
}

GST_END_TEST;

/* An access unit announced at 4 GiB: a clear error, nothing allocated
 * (reconnect stays on: a lying host is not retried) */
GST_START_TEST (test_lying_size)
{
  const Script sc[] = { {.n_frames = 2,.lie = TRUE,.after = AFTER_HOLD} };
  Host *host = host_new (sc, 1);
  Guest g;

  guest_start (&g, host, NULL, NULL);
  gst_sample_unref (pull (&g));
  gst_sample_unref (pull (&g));
  expect_error (&g, GST_RESOURCE_ERROR, GST_RESOURCE_ERROR_READ, "max-au-size");
  fail_unless_equals_int (host->n_connections, 1);
  guest_stop (&g);
  host_free (host);
}

GST_END_TEST;

typedef struct
{
  GstElement *pipe;
  GMutex lock;
  GCond cond;
  gboolean done;
} StopJob;

static gpointer
stop_thread (gpointer data)
{
  StopJob *j = data;

  gst_element_set_state (j->pipe, GST_STATE_NULL);
  g_mutex_lock (&j->lock);
  j->done = TRUE;
  g_cond_signal (&j->cond);
  g_mutex_unlock (&j->lock);
  return NULL;
}

/* Stops the pipeline from another thread; TRUE if that returned within
 * a bound far below the element's own timeouts (set to 60 s). */
static gboolean
stops_promptly (Guest * g)
{
  StopJob j = { g->pipe, };
  gint64 until = g_get_monotonic_time () + 10 * G_USEC_PER_SEC;
  GThread *t;
  gboolean done;

  g_mutex_init (&j.lock);
  g_cond_init (&j.cond);
  t = g_thread_new ("stop", stop_thread, &j);
  g_mutex_lock (&j.lock);
  while (!j.done && g_cond_wait_until (&j.cond, &j.lock, until));
  done = j.done;
  g_mutex_unlock (&j.lock);
  if (!done)
    return FALSE;               /* the thread is leaked with the hang */
  g_thread_join (t);
  g_mutex_clear (&j.lock);
  g_cond_clear (&j.cond);
  return TRUE;
}

/* The host went silent after two frames: stopping is prompt */
GST_START_TEST (test_stop_silent)
{
  const Script sc[] = { {.n_frames = 2,.after = AFTER_HOLD} };
  Host *host = host_new (sc, 1);
  Guest g;

  guest_start (&g, host, "timeout=60000", NULL);
  gst_sample_unref (pull (&g));
  gst_sample_unref (pull (&g));
  fail_unless (stops_promptly (&g));
  guest_stop (&g);
  host_free (host);
}

GST_END_TEST;

/* The host never answers SUBSCRIBE2: stopping is prompt */
GST_START_TEST (test_stop_unanswered)
{
  const Script sc[] = { {.no_answer = TRUE} };
  Host *host = host_new (sc, 1);
  Guest g;

  guest_start (&g, host, "timeout=60000", NULL);
  fail_unless (host_wait (host, &host->n_connections, 1));
  fail_unless (stops_promptly (&g));
  guest_stop (&g);
  host_free (host);
}

GST_END_TEST;

/* The host refuses again and again (-10): stopping in the back-off is
 * prompt */
GST_START_TEST (test_stop_backoff)
{
  const Script sc[] = { {.error = HXFR_ERR_TOO_MANY_SESSIONS} };
  Host *host = host_new (sc, 1);
  Guest g;

  guest_start (&g, host, "timeout=60000 max-backoff=60000", NULL);
  /* 100 + 200 + 400 ms of back-off: the next wait is 800 ms long */
  fail_unless (host_wait (host, &host->n_connections, 4));
  fail_unless (stops_promptly (&g));
  fail_unless (gst_bus_pop_filtered (g.bus, GST_MESSAGE_ERROR) == NULL);
  guest_stop (&g);
  host_free (host);
}

GST_END_TEST;

/* The next element message of @g's source named @name, or NULL */
static const GstStructure *
next_element_message (Guest * g, GstMessage ** m, gint64 timeout_ns)
{
  *m = gst_bus_timed_pop_filtered (g->bus, timeout_ns, GST_MESSAGE_ELEMENT);
  if (!*m)
    return NULL;
  fail_unless ((*m)->src == GST_OBJECT (g->src));
  return gst_message_get_structure (*m);
}

/* cursor=true: asked for, and posted as element messages before the
 * first frame is pulled (they came before it) */
GST_START_TEST (test_cursor_messages)
{
  const Script sc[] = { {.n_frames = 2,.after = AFTER_HOLD,.cursor = TRUE} };
  Host *host = host_new (sc, 1);
  const GstStructure *st;
  GstMessage *m;
  GstSample *img;
  GstStructure *caps_st;
  guint hot_x = 0, hot_y = 9;
  gint x = 0, y = 0, w = 0, h = 0;
  gboolean visible = FALSE;
  guint64 host_time = 0, running = 0;
  Guest g;

  guest_start (&g, host, "cursor=true draw-cursor=true", NULL);
  gst_sample_unref (pull (&g));
  gst_sample_unref (pull (&g));
  fail_unless_equals_int (host->sub.flags, HXFR_SUBSCRIBE2_CURSOR |
      HXFR_SUBSCRIBE2_DRAW_CURSOR);

  st = next_element_message (&g, &m, WAIT_NS);
  fail_unless (st != NULL && gst_structure_has_name (st, "helix-cursor-image"));
  fail_unless (gst_structure_get (st, "sample", GST_TYPE_SAMPLE, &img,
          "hot-x", G_TYPE_UINT, &hot_x, "hot-y", G_TYPE_UINT, &hot_y, NULL));
  fail_unless (hot_x == 1 && hot_y == 0);
  caps_st = gst_caps_get_structure (gst_sample_get_caps (img), 0);
  fail_unless_equals_string (gst_structure_get_string (caps_st, "format"),
      "BGRA");
  fail_unless (gst_structure_get_int (caps_st, "width", &w)
      && gst_structure_get_int (caps_st, "height", &h));
  fail_unless (w == 2 && h == 1);
  fail_unless_equals_int (gst_buffer_get_size (gst_sample_get_buffer (img)), 8);
  fail_unless (gst_buffer_memcmp (gst_sample_get_buffer (img), 0,
          cursor_pixels, 8) == 0);
  gst_sample_unref (img);
  gst_message_unref (m);

  st = next_element_message (&g, &m, WAIT_NS);
  fail_unless (st != NULL && gst_structure_has_name (st,
          "helix-cursor-position"));
  fail_unless (gst_structure_get (st, "x", G_TYPE_INT, &x, "y", G_TYPE_INT,
          &y, "visible", G_TYPE_BOOLEAN, &visible, "host-time", G_TYPE_UINT64,
          &host_time, "running-time", G_TYPE_UINT64, &running, NULL));
  fail_unless (x == 7 && y == -3 && visible);
  fail_unless_equals_uint64 (host_time, capture_time (0));
  /* it came before the first frame: no running time to map it to yet */
  fail_unless_equals_uint64 (running, GST_CLOCK_TIME_NONE);
  gst_message_unref (m);
  guest_stop (&g);
  host_free (host);
}

GST_END_TEST;

/* Not asked for (the default): not asked, and a host that sends them
 * anyway gets them skipped, the stream unharmed */
GST_START_TEST (test_cursor_not_asked)
{
  const Script sc[] = { {.n_frames = 2,.after = AFTER_HOLD,.cursor = TRUE} };
  Host *host = host_new (sc, 1);
  GstMessage *m;
  Guest g;

  guest_start (&g, host, NULL, NULL);
  gst_sample_unref (pull (&g));
  gst_sample_unref (pull (&g));
  fail_unless_equals_int (host->sub.flags, 0);
  fail_unless (next_element_message (&g, &m, 200 * GST_MSECOND) == NULL);
  guest_stop (&g);
  host_free (host);
}

GST_END_TEST;

static Suite *
scanoutsrc_suite (void)
{
  Suite *s = suite_create ("scanoutsrc");
  TCase *tc = tcase_create ("general");
  static const gchar *const needs[] = { "videotestsrc", "x264enc",
    "appsink", NULL
  };
  static const gchar *const decode_needs[] = { "h264parse", "avdec_h264",
    "videoconvert", NULL
  };

  suite_add_tcase (s, tc);
  /* every test's host pushes x264enc's access units */
  if (!elements_available (needs))
    return s;
  tcase_add_test (tc, test_access_units);
  tcase_add_test (tc, test_cursor_messages);
  tcase_add_test (tc, test_cursor_not_asked);
  if (elements_available (decode_needs))
    tcase_add_test (tc, test_decode);
  tcase_add_test (tc, test_force_key_unit);
  tcase_add_test (tc, test_bitrate_control);
  tcase_add_test (tc, test_unauthorized);
  tcase_add_test (tc, test_reconnect);
  tcase_add_test (tc, test_no_reconnect);
  tcase_add_test (tc, test_lying_size);
  tcase_add_test (tc, test_stop_silent);
  tcase_add_test (tc, test_stop_unanswered);
  tcase_add_test (tc, test_stop_backoff);
  return s;
}

GST_CHECK_MAIN (scanoutsrc);
