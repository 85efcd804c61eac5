/* A scripted HXFR host for the vsockenc tests (see fakehost.h).
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "fakehost.h"

#include <string.h>
#include <glib/gstdio.h>
#include <gst/video/video.h>

#include "hxfr-video.h"

#define N_CANNED 10

struct _FakeHost
{
  FakeHostMode mode;
  gchar *dir;
  gchar *path;
  HxfrListener *listener;
  GCancellable *cancellable;
  GThread *thread;

  /* everything below: lock */
  GMutex lock;
  GCond cond;
  FakeFault fault;
  guint fault_at;
  guint grant;
  gboolean hold;
  guint delay_ms;
  guint service_ms;
  guint link_delay_ms;
  gboolean real_encoder;
  gchar *token;
  gchar *hello_token;
  GArray *frames;               /* FakeHostFrame */
  GArray *controls;             /* FakeHostControl */
  guint n_connections;
  guint n_closed;
  guint n_hellos;
  guint n_answered;
  guint n_pongs;
};

/* Access units made once by x264enc: [0] an IDR with SPS/PPS, then P. */
static GBytes *canned[N_CANNED];

static GBytes *
buffer_to_bytes (GstBuffer * buf)
{
  GstMapInfo map;
  GBytes *b;

  gst_buffer_map (buf, &map, GST_MAP_READ);
  b = g_bytes_new (map.data, map.size);
  gst_buffer_unmap (buf, &map);
  return b;
}

static gpointer
make_canned (gpointer unused)
{
  GError *err = NULL;
  GstElement *pipe, *sink;
  guint i;

  pipe = gst_parse_launch ("videotestsrc num-buffers=" G_STRINGIFY (N_CANNED)
      " ! video/x-raw,format=I420,width=64,height=48,framerate=30/1 ! "
      "x264enc tune=zerolatency speed-preset=ultrafast key-int-max=1000 ! "
      "video/x-h264,stream-format=byte-stream,alignment=au ! "
      "appsink name=sink sync=false", &err);
  g_assert_no_error (err);
  sink = gst_bin_get_by_name (GST_BIN (pipe), "sink");
  gst_element_set_state (pipe, GST_STATE_PLAYING);
  for (i = 0; i < N_CANNED; i++) {
    GstSample *s = NULL;

    g_signal_emit_by_name (sink, "try-pull-sample", 10 * GST_SECOND, &s);
    g_assert (s != NULL);
    canned[i] = buffer_to_bytes (gst_sample_get_buffer (s));
    gst_sample_unref (s);
  }
  gst_element_set_state (pipe, GST_STATE_NULL);
  gst_object_unref (sink);
  gst_object_unref (pipe);
  return NULL;
}

/* In-process encoder for the real-decode test. */
typedef struct
{
  GstElement *pipe, *src, *sink;
  guint32 format, width, height;
} Encoder;

static void
encoder_free (Encoder * e)
{
  if (!e->pipe)
    return;
  gst_element_set_state (e->pipe, GST_STATE_NULL);
  gst_object_unref (e->src);
  gst_object_unref (e->sink);
  gst_object_unref (e->pipe);
  memset (e, 0, sizeof (*e));
}

static GBytes *
encoder_encode (Encoder * e, const FakeHostFrame * f, gboolean * keyframe)
{
  GstVideoInfo info;
  GstBuffer *buf;
  GstSample *s = NULL;
  GstFlowReturn ret;
  GBytes *out;
  gsize offsets[GST_VIDEO_MAX_PLANES] = { 0, };
  gint strides[GST_VIDEO_MAX_PLANES] = { 0, };
  guint i;

  if (!e->pipe || e->format != f->req.format || e->width != f->req.width
      || e->height != f->req.height) {
    GstCaps *caps;

    encoder_free (e);
    e->pipe = gst_parse_launch ("appsrc name=src format=time ! videoconvert ! "
        "x264enc tune=zerolatency speed-preset=ultrafast key-int-max=1000 "
        "pass=quant quantizer=18 ! "
        "video/x-h264,stream-format=byte-stream,alignment=au ! "
        "appsink name=sink sync=false", NULL);
    e->src = gst_bin_get_by_name (GST_BIN (e->pipe), "src");
    e->sink = gst_bin_get_by_name (GST_BIN (e->pipe), "sink");
    gst_video_info_set_format (&info,
        hxfr_video_format_from_fourcc (f->req.format), f->req.width,
        f->req.height);
    GST_VIDEO_INFO_FPS_N (&info) = 30;
    GST_VIDEO_INFO_FPS_D (&info) = 1;
    caps = gst_video_info_to_caps (&info);
    g_object_set (e->src, "caps", caps, NULL);
    gst_caps_unref (caps);
    gst_element_set_state (e->pipe, GST_STATE_PLAYING);
    e->format = f->req.format;
    e->width = f->req.width;
    e->height = f->req.height;
  }

  buf = gst_buffer_new_wrapped_bytes (f->pixels);
  for (i = 0; i < f->req.n_planes; i++) {
    offsets[i] = f->req.offset[i];
    strides[i] = f->req.stride[i];
  }
  gst_buffer_add_video_meta_full (buf, GST_VIDEO_FRAME_FLAG_NONE,
      hxfr_video_format_from_fourcc (f->req.format), f->req.width,
      f->req.height, f->req.n_planes, offsets, strides);
  GST_BUFFER_PTS (buf) =
      f->req.pts >= 0 ? (GstClockTime) f->req.pts : GST_CLOCK_TIME_NONE;
  GST_BUFFER_DURATION (buf) =
      f->req.duration >=
      0 ? (GstClockTime) f->req.duration : GST_CLOCK_TIME_NONE;
  if (f->req.force_keyframe)
    gst_element_send_event (e->src,
        gst_video_event_new_downstream_force_key_unit (GST_BUFFER_PTS (buf),
            GST_CLOCK_TIME_NONE, GST_CLOCK_TIME_NONE, TRUE, 0));
  g_signal_emit_by_name (e->src, "push-buffer", buf, &ret);
  gst_buffer_unref (buf);
  g_signal_emit_by_name (e->sink, "try-pull-sample", 10 * GST_SECOND, &s);
  if (!s)
    return NULL;
  *keyframe = !GST_BUFFER_FLAG_IS_SET (gst_sample_get_buffer (s),
      GST_BUFFER_FLAG_DELTA_UNIT);
  out = buffer_to_bytes (gst_sample_get_buffer (s));
  gst_sample_unref (s);
  return out;
}

/* Writes deliberately malformed bytes: test-only, bypassing the codec. */
static gboolean
send_raw (HxfrConn * conn, const guint8 * data, gsize len)
{
  return g_socket_send (hxfr_conn_get_socket (conn), (const gchar *) data,
      len, NULL, NULL) == (gssize) len;
}

typedef struct
{
  guint index;                  /* into host->frames */
  gint64 due_us;                /* sent then */
  gint64 done_us;               /* the host's part ends then */
  gint64 received_us;
} Answer;

/* FALSE: close the connection. *silent: stop answering. */
static gboolean
answer (FakeHost * host, HxfrConn * conn, Encoder * enc, const Answer * a,
    guint16 session, gboolean v2, gboolean * silent)
{
  FakeHostFrame f;
  HxfrFrameResponse r = { 0, };
  FakeFault fault = FAKE_FAULT_NONE;
  guint8 fixed[HXFR_MAX_FIXED_SIZE];
  GOutputVector tail[2];
  guint32 nal_len;
  GBytes *au;
  gboolean keyframe, ok;
  gsize len;
  guint8 hdr[HXFR_HEADER_SIZE];
  HxfrHeader h;

  g_mutex_lock (&host->lock);
  f = g_array_index (host->frames, FakeHostFrame, a->index);
  if (host->fault != FAKE_FAULT_NONE && host->fault_at == a->index)
    fault = host->fault;
  g_mutex_unlock (&host->lock);

  r.seq = f.req.seq;
  r.pts = f.req.pts;
  r.dts = f.req.pts;
  r.duration = f.req.duration;
  r.status = HXFR_STATUS_OK;
  r.host_time_us = (guint32) (MIN (g_get_monotonic_time (), a->done_us) -
      a->received_us);
  h.session_id = session;
  h.flags = 0;
  h.type = v2 ? HXFR_MSG_FRAME_RESPONSE2 : HXFR_MSG_FRAME_RESPONSE;

  switch (fault) {
    case FAKE_FAULT_ERROR:
      hxfr_conn_send_error (conn, session, HXFR_ERR_ENCODE_FAILED,
          "scripted failure", G_USEC_PER_SEC, NULL);
      return FALSE;
    case FAKE_FAULT_CLOSE:
      return FALSE;
    case FAKE_FAULT_FRAME_ERROR:
      ok = hxfr_conn_send_error (conn, session, HXFR_ERR_RESOURCE_NOT_FOUND,
          "scripted missing resource", G_USEC_PER_SEC, NULL);
      goto answered;
    case FAKE_FAULT_SILENCE:
      *silent = TRUE;
      return TRUE;
    case FAKE_FAULT_BAD_MAGIC:
      h.payload_size = v2 ? HXFR_FRAME_RESPONSE2_SIZE :
          HXFR_FRAME_RESPONSE_SIZE;
      hxfr_header_write (hdr, &h);
      hdr[0] ^= 0xff;
      send_raw (conn, hdr, sizeof (hdr));
      *silent = TRUE;
      return TRUE;
    case FAKE_FAULT_PAYLOAD_SIZE:
      h.payload_size = 0xfffffff0u;
      hxfr_header_write (hdr, &h);
      send_raw (conn, hdr, sizeof (hdr));
      *silent = TRUE;
      return TRUE;
    case FAKE_FAULT_NAL_COUNT:
      r.nal_count = 0x80000000u;
      r.keyframe = TRUE;
      len = hxfr_frame_response_write (&r, 1, fixed);
      hxfr_conn_send (conn, HXFR_MSG_FRAME_RESPONSE, 0, session, fixed, len,
          NULL, 0, G_USEC_PER_SEC, NULL, NULL);
      *silent = TRUE;
      return TRUE;
    case FAKE_FAULT_TRUNCATE:
      r.keyframe = TRUE;
      r.nal_count = 1;
      len = hxfr_frame_response_write (&r, v2 ? 2 : 1, fixed);
      h.payload_size = len + 1000;
      hxfr_header_write (hdr, &h);
      send_raw (conn, hdr, sizeof (hdr));
      send_raw (conn, fixed, len);
      send_raw (conn, (const guint8 *) "\0\0\0\1\x67", 5);
      *silent = TRUE;
      return TRUE;
    case FAKE_FAULT_DROP:
    case FAKE_FAULT_FAILED:
      r.status = fault == FAKE_FAULT_DROP ? HXFR_STATUS_DROPPED :
          HXFR_STATUS_FAILED;
      r.error_code = fault == FAKE_FAULT_DROP ? 0 : HXFR_ERR_ENCODE_FAILED;
      len = hxfr_frame_response_write (&r, 2, fixed);
      tail[0].buffer = "scripted failure";
      tail[0].size = strlen ("scripted failure");
      ok = hxfr_conn_send (conn, HXFR_MSG_FRAME_RESPONSE2, 0, session, fixed,
          len, tail, fault == FAKE_FAULT_FAILED ? 1 : 0, G_USEC_PER_SEC,
          NULL, NULL);
      goto answered;
    case FAKE_FAULT_WRONG_SEQ:
      r.seq += 100;
      break;
    case FAKE_FAULT_PING:
      /* both legal at any time: a PING wants a PONG, a CONFIG_RESP is
       * skipped */
      if (!hxfr_conn_send (conn, HXFR_MSG_PING, 0, session, NULL, 0, NULL, 0,
              G_USEC_PER_SEC, NULL, NULL)
          || !hxfr_conn_send (conn, HXFR_MSG_CONFIG_RESP, 0, session, "xx", 2,
              NULL, 0, G_USEC_PER_SEC, NULL, NULL))
        return FALSE;
      break;
    default:
      break;
  }

  if (host->real_encoder && f.pixels) {
    au = encoder_encode (enc, &f, &keyframe);
    if (!au)
      return FALSE;
  } else {
    keyframe = f.req.force_keyframe;
    au = g_bytes_ref (canned[keyframe ? 0 : 1 + a->index % (N_CANNED - 1)]);
  }
  r.keyframe = keyframe;
  if (v2) {
    len = hxfr_frame_response_write (&r, 2, fixed);
    tail[0].buffer = g_bytes_get_data (au, &tail[0].size);
    ok = hxfr_conn_send (conn, HXFR_MSG_FRAME_RESPONSE2, 0, session, fixed,
        len, tail, 1, G_USEC_PER_SEC, NULL, NULL);
  } else {
    r.nal_count = 1;
    len = hxfr_frame_response_write (&r, 1, fixed);
    nal_len = GUINT32_TO_LE (g_bytes_get_size (au));
    tail[0].buffer = &nal_len;
    tail[0].size = 4;
    tail[1].buffer = g_bytes_get_data (au, &tail[1].size);
    ok = hxfr_conn_send (conn, HXFR_MSG_FRAME_RESPONSE, 0, session, fixed,
        len, tail, 2, G_USEC_PER_SEC, NULL, NULL);
  }
  g_bytes_unref (au);

answered:
  g_mutex_lock (&host->lock);
  host->n_answered++;
  g_cond_broadcast (&host->cond);
  g_mutex_unlock (&host->lock);
  return ok;
}

static void
add_control (FakeHost * host, guint8 type, guint32 mask, guint32 bitrate,
    guint32 kfi)
{
  FakeHostControl c = { type, mask, bitrate, kfi, 0 };

  g_mutex_lock (&host->lock);
  c.frames_before = host->frames->len;
  g_array_append_val (host->controls, c);
  g_cond_broadcast (&host->cond);
  g_mutex_unlock (&host->lock);
}

/* A host that keeps a guest busy without answering: a PING every 300 ms,
 * what the guest sends thrown away, until it closes (or 30 s). */
static void
ping_until_gone (FakeHost * host, HxfrConn * conn, guint16 session)
{
  gint64 end = g_get_monotonic_time () + 30 * G_USEC_PER_SEC;

  while (g_get_monotonic_time () < end
      && !g_cancellable_is_cancelled (host->cancellable)) {
    GError *err = NULL;
    guint8 scratch[256];
    gssize n;

    if (!hxfr_conn_send (conn, HXFR_MSG_PING, 0, session, NULL, 0, NULL, 0,
            G_USEC_PER_SEC, NULL, NULL))
      return;
    /* 300 ms of reading whatever comes (PONGs): a close ends it */
    if (hxfr_conn_wait_readable (conn, 300 * 1000, host->cancellable, &err)) {
      n = g_socket_receive (hxfr_conn_get_socket (conn), (gchar *) scratch,
          sizeof (scratch), NULL, NULL);
      if (n <= 0)
        return;
      g_usleep (300 * 1000);
    } else if (!g_error_matches (err, G_IO_ERROR, G_IO_ERROR_TIMED_OUT)) {
      g_error_free (err);
      return;
    }
    g_clear_error (&err);
  }
}

static void
serve (FakeHost * host, HxfrConn * conn, guint connection, gboolean v1_only)
{
  HxfrLimits limits;
  HxfrMessage msg;
  GQueue answers = G_QUEUE_INIT;
  Encoder enc = { 0, };
  gint64 encoder_free_us = 0;   /* service time: the encoder's next start */
  gboolean v2 = FALSE, silent = FALSE;
  guint16 session = 1;
  GError *err = NULL;
  Answer *a;

  hxfr_limits_init_default (&limits);
  while (!g_cancellable_is_cancelled (host->cancellable)) {
    gboolean hold;
    gint64 now = g_get_monotonic_time (), wait_us = 20000;

    g_mutex_lock (&host->lock);
    hold = host->hold;
    g_mutex_unlock (&host->lock);
    while (!hold && !silent && (a = g_queue_peek_head (&answers))) {
      if (a->due_us > now) {
        wait_us = MIN (wait_us, a->due_us - now);
        break;
      }
      g_queue_pop_head (&answers);
      if (!answer (host, conn, &enc, a, session, v2, &silent)) {
        g_free (a);
        goto done;
      }
      g_free (a);
    }

    if (!hxfr_conn_wait_readable (conn, wait_us, host->cancellable, &err)) {
      if (g_error_matches (err, G_IO_ERROR, G_IO_ERROR_TIMED_OUT)) {
        g_clear_error (&err);
        continue;
      }
      goto done;
    }
    if (!hxfr_conn_receive (conn, HXFR_ROLE_HOST, &limits, &msg,
            G_USEC_PER_SEC, G_USEC_PER_SEC, host->cancellable, &err))
      goto done;
    session = msg.header.session_id;

    switch (msg.header.type) {
      case HXFR_MSG_HELLO:{
        HxfrHelloAck ack = { 0, };
        guint8 fixed[HXFR_MAX_FIXED_SIZE];
        gsize len;

        gboolean refused;

        g_mutex_lock (&host->lock);
        host->n_hellos++;
        ack.max_in_flight = MIN (msg.u.hello.max_in_flight, host->grant);
        g_free (host->hello_token);
        host->hello_token = g_strndup ((const gchar *) msg.token,
            msg.u.hello.token_len);
        refused = host->token && g_strcmp0 (host->token,
            host->hello_token) != 0;
        g_mutex_unlock (&host->lock);
        if (refused && host->mode == FAKE_HOST_V2) {
          hxfr_conn_send_error (conn, session, HXFR_ERR_UNAUTHORIZED,
              "wrong token", G_USEC_PER_SEC, NULL);
          goto done;
        }
        if (host->mode == FAKE_HOST_V2_CLOSE_ON_HELLO && !v1_only)
          goto done;
        if (host->mode == FAKE_HOST_PING_ON_HELLO) {
          ping_until_gone (host, conn, session);
          goto done;
        }
        if (host->mode != FAKE_HOST_V2 || v1_only) {
          hxfr_conn_send_error (conn, session, HXFR_ERR_INVALID,
              "unknown message type 0x40", G_USEC_PER_SEC, NULL);
          break;
        }
        ack.version = 2;
        ack.codec = HXFR_CODEC_H264;
        ack.max_width = 4096;
        ack.max_height = 4096;
        ack.host_flags = HXFR_HOST_RESOURCE_IDS;
        g_strlcpy (ack.encoder, "fakeenc", sizeof (ack.encoder));
        len = hxfr_hello_ack_write (&ack, fixed);
        if (!hxfr_conn_send (conn, HXFR_MSG_HELLO_ACK, 0, session, fixed, len,
                NULL, 0, G_USEC_PER_SEC, NULL, NULL))
          goto done;
        v2 = TRUE;
        break;
      }
      case HXFR_MSG_FRAME_REQUEST:
      case HXFR_MSG_FRAME_REQUEST2:{
        FakeHostFrame f = { 0, };

        f.type = msg.header.type;
        f.flags = msg.header.flags;
        f.connection = connection;
        f.req = msg.u.frame_request;
        f.payload_size = msg.header.payload_size;
        if (msg.tail_size) {
          guint8 *pix = g_malloc (msg.tail_size);

          if (!hxfr_conn_read_exact (conn, pix, msg.tail_size, G_USEC_PER_SEC,
                  NULL, NULL)) {
            g_free (pix);
            goto done;
          }
          f.pixels = g_bytes_new_take (pix, msg.tail_size);
        }
        f.outstanding = answers.length;
        a = g_new0 (Answer, 1);
        a->received_us = g_get_monotonic_time ();
        g_mutex_lock (&host->lock);
        a->index = host->frames->len;
        a->done_us = a->received_us + host->delay_ms * 1000;
        if (host->service_ms) {
          a->done_us = MAX (a->done_us, encoder_free_us) +
              host->service_ms * 1000;
          encoder_free_us = a->done_us;
        }
        a->due_us = a->done_us + host->link_delay_ms * 1000;
        g_array_append_val (host->frames, f);
        g_cond_broadcast (&host->cond);
        g_mutex_unlock (&host->lock);
        if ((msg.header.type == HXFR_MSG_FRAME_REQUEST2) != v2) {
          /* the wrong version for this session: a protocol violation */
          hxfr_conn_send_error (conn, session, HXFR_ERR_INVALID,
              "request of the wrong version", G_USEC_PER_SEC, NULL);
          g_free (a);
          goto done;
        }
        g_queue_push_tail (&answers, a);
        break;
      }
      case HXFR_MSG_CONTROL:
        add_control (host, HXFR_MSG_CONTROL, msg.u.control.mask,
            msg.u.control.bitrate, msg.u.control.keyframe_interval);
        break;
      case HXFR_MSG_CONFIG_REQ:
        add_control (host, HXFR_MSG_CONFIG_REQ, HXFR_CONTROL_BITRATE,
            msg.u.config.bitrate, 0);
        break;
      case HXFR_MSG_KEYFRAME_REQ:
        add_control (host, HXFR_MSG_KEYFRAME_REQ, 0, 0, 0);
        break;
      case HXFR_MSG_PING:
        hxfr_conn_send (conn, HXFR_MSG_PONG, 0, session, NULL, 0, NULL, 0,
            G_USEC_PER_SEC, NULL, NULL);
        break;
      case HXFR_MSG_PONG:
        g_mutex_lock (&host->lock);
        host->n_pongs++;
        g_cond_broadcast (&host->cond);
        g_mutex_unlock (&host->lock);
        break;
      default:
        break;
    }
  }

done:
  g_clear_error (&err);
  g_queue_clear_full (&answers, g_free);
  encoder_free (&enc);
}

static gpointer
host_thread (gpointer data)
{
  FakeHost *host = data;
  guint n = 0;
  gboolean v1_only = FALSE;

  while (!g_cancellable_is_cancelled (host->cancellable)) {
    HxfrConn *conn = hxfr_listener_accept (host->listener, -1,
        host->cancellable, NULL);

    if (!conn)
      break;
    g_mutex_lock (&host->lock);
    host->n_connections++;
    g_cond_broadcast (&host->cond);
    g_mutex_unlock (&host->lock);
    serve (host, conn, n++, v1_only);
    /* after hanging up on a HELLO, a v1 host from then on */
    if (host->mode == FAKE_HOST_V2_CLOSE_ON_HELLO)
      v1_only = TRUE;
    hxfr_conn_shutdown (conn);
    hxfr_conn_unref (conn);
    g_mutex_lock (&host->lock);
    host->n_closed++;
    g_cond_broadcast (&host->cond);
    g_mutex_unlock (&host->lock);
  }
  return NULL;
}

static FakeHost *
fake_host_new_full (FakeHostMode mode, HxfrAddress * addr)
{
  static GOnce once = G_ONCE_INIT;
  FakeHost *host = g_new0 (FakeHost, 1);
  GPollFD pollfd;
  GError *err = NULL;

  g_once (&once, make_canned, NULL);
  host->mode = mode;
  host->grant = 16;
  host->path = g_strdup (addr->path);
  host->listener = hxfr_listener_new (addr, 0600, &err);
  g_assert_no_error (err);
  hxfr_address_free (addr);
  host->cancellable = g_cancellable_new ();
  /* the wakeup fd, made once: otherwise every wait makes and closes one,
   * which upsets the tests that count descriptors */
  g_cancellable_make_pollfd (host->cancellable, &pollfd);
  g_mutex_init (&host->lock);
  g_cond_init (&host->cond);
  host->frames = g_array_new (FALSE, TRUE, sizeof (FakeHostFrame));
  host->controls = g_array_new (FALSE, TRUE, sizeof (FakeHostControl));
  host->thread = g_thread_new ("fakehost", host_thread, host);
  return host;
}

FakeHost *
fake_host_new_at (FakeHostMode mode, const gchar * path)
{
  return fake_host_new_full (mode, hxfr_address_new_unix (path));
}

FakeHost *
fake_host_new_tcp (FakeHostMode mode)
{
  return fake_host_new_full (mode, hxfr_address_new_tcp ("127.0.0.1", 0));
}

guint
fake_host_get_port (FakeHost * host)
{
  return hxfr_listener_get_address (host->listener)->port;
}

FakeHost *
fake_host_new (FakeHostMode mode)
{
  GError *err = NULL;
  gchar *dir = g_dir_make_tmp ("vsockenc-XXXXXX", &err);
  gchar *path;
  FakeHost *host;

  g_assert_no_error (err);
  path = g_build_filename (dir, "hx.sock", NULL);
  host = fake_host_new_at (mode, path);
  host->dir = dir;
  g_free (path);
  return host;
}

void
fake_host_free (FakeHost * host)
{
  guint i;

  g_cancellable_cancel (host->cancellable);
  g_thread_join (host->thread);
  hxfr_listener_free (host->listener);
  if (host->path)
    g_assert (!g_file_test (host->path, G_FILE_TEST_EXISTS));
  if (host->dir)
    g_rmdir (host->dir);
  for (i = 0; i < host->frames->len; i++) {
    FakeHostFrame *f = &g_array_index (host->frames, FakeHostFrame, i);

    g_clear_pointer (&f->pixels, g_bytes_unref);
  }
  g_array_free (host->frames, TRUE);
  g_array_free (host->controls, TRUE);
  g_cancellable_release_fd (host->cancellable);
  g_object_unref (host->cancellable);
  g_mutex_clear (&host->lock);
  g_cond_clear (&host->cond);
  g_free (host->token);
  g_free (host->hello_token);
  g_free (host->path);
  g_free (host->dir);
  g_free (host);
}

const gchar *
fake_host_get_path (FakeHost * host)
{
  return host->path;
}

void
fake_host_set_fault (FakeHost * host, FakeFault fault, guint at)
{
  g_mutex_lock (&host->lock);
  host->fault = fault;
  host->fault_at = at;
  g_mutex_unlock (&host->lock);
}

void
fake_host_set_grant (FakeHost * host, guint grant)
{
  g_mutex_lock (&host->lock);
  host->grant = grant;
  g_mutex_unlock (&host->lock);
}

void
fake_host_set_hold (FakeHost * host, gboolean hold)
{
  g_mutex_lock (&host->lock);
  host->hold = hold;
  g_mutex_unlock (&host->lock);
}

void
fake_host_set_delay (FakeHost * host, guint delay_ms)
{
  g_mutex_lock (&host->lock);
  host->delay_ms = delay_ms;
  g_mutex_unlock (&host->lock);
}

void
fake_host_set_service_time (FakeHost * host, guint service_ms)
{
  g_mutex_lock (&host->lock);
  host->service_ms = service_ms;
  g_mutex_unlock (&host->lock);
}

void
fake_host_set_link_delay (FakeHost * host, guint delay_ms)
{
  g_mutex_lock (&host->lock);
  host->link_delay_ms = delay_ms;
  g_mutex_unlock (&host->lock);
}

void
fake_host_set_token (FakeHost * host, const gchar * token)
{
  g_mutex_lock (&host->lock);
  g_free (host->token);
  host->token = g_strdup (token);
  g_mutex_unlock (&host->lock);
}

gchar *
fake_host_get_hello_token (FakeHost * host)
{
  gchar *t;

  g_mutex_lock (&host->lock);
  t = g_strdup (host->hello_token);
  g_mutex_unlock (&host->lock);
  return t;
}

void
fake_host_set_real_encoder (FakeHost * host, gboolean real)
{
  g_mutex_lock (&host->lock);
  host->real_encoder = real;
  g_mutex_unlock (&host->lock);
}

static gboolean
wait_count (FakeHost * host, guint * counter, guint n, gint64 timeout_us)
{
  gint64 deadline = g_get_monotonic_time () + timeout_us;
  gboolean ok = TRUE;

  g_mutex_lock (&host->lock);
  while (*counter < n && ok)
    ok = g_cond_wait_until (&host->cond, &host->lock, deadline);
  ok = *counter >= n;
  g_mutex_unlock (&host->lock);
  return ok;
}

gboolean
fake_host_wait_frames (FakeHost * host, guint n, gint64 timeout_us)
{
  return wait_count (host, &host->frames->len, n, timeout_us);
}

gboolean
fake_host_wait_connections (FakeHost * host, guint n, gint64 timeout_us)
{
  return wait_count (host, &host->n_connections, n, timeout_us);
}

gboolean
fake_host_wait_closed (FakeHost * host, guint n, gint64 timeout_us)
{
  return wait_count (host, &host->n_closed, n, timeout_us);
}

gboolean
fake_host_wait_answered (FakeHost * host, guint n, gint64 timeout_us)
{
  return wait_count (host, &host->n_answered, n, timeout_us);
}

gboolean
fake_host_wait_pongs (FakeHost * host, guint n, gint64 timeout_us)
{
  return wait_count (host, &host->n_pongs, n, timeout_us);
}

gboolean
fake_host_wait_controls (FakeHost * host, guint n, gint64 timeout_us)
{
  return wait_count (host, &host->controls->len, n, timeout_us);
}

/* A counter the host thread updates under the lock. */
static guint
read_counter (FakeHost * host, const guint * counter)
{
  guint n;

  g_mutex_lock (&host->lock);
  n = *counter;
  g_mutex_unlock (&host->lock);
  return n;
}

guint
fake_host_n_frames (FakeHost * host)
{
  guint n;

  g_mutex_lock (&host->lock);
  n = host->frames->len;
  g_mutex_unlock (&host->lock);
  return n;
}

guint
fake_host_n_connections (FakeHost * host)
{
  return read_counter (host, &host->n_connections);
}

guint
fake_host_n_hellos (FakeHost * host)
{
  return read_counter (host, &host->n_hellos);
}

guint
fake_host_n_answered (FakeHost * host)
{
  return read_counter (host, &host->n_answered);
}

FakeHostFrame
fake_host_get_frame (FakeHost * host, guint i)
{
  FakeHostFrame f;

  g_mutex_lock (&host->lock);
  g_assert (i < host->frames->len);
  f = g_array_index (host->frames, FakeHostFrame, i);
  g_mutex_unlock (&host->lock);
  return f;
}

guint
fake_host_n_controls (FakeHost * host)
{
  guint n;

  g_mutex_lock (&host->lock);
  n = host->controls->len;
  g_mutex_unlock (&host->lock);
  return n;
}

FakeHostControl
fake_host_get_control (FakeHost * host, guint i)
{
  FakeHostControl c;

  g_mutex_lock (&host->lock);
  g_assert (i < host->controls->len);
  c = g_array_index (host->controls, FakeHostControl, i);
  g_mutex_unlock (&host->lock);
  return c;
}
