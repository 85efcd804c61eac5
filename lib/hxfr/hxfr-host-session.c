/* The host side of one HXFR connection. See hxfr-host-session.h.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "hxfr-host-session.h"

#include <string.h>

#define DEFAULT_IDLE_TIMEOUT_US (5 * G_USEC_PER_SEC)
#define DEFAULT_WRITE_TIMEOUT_US (5 * G_USEC_PER_SEC)
/* After a fatal ERROR: how long we keep reading (and discarding) so the
 * guest gets to read the ERROR before the connection is torn down. */
#define LINGER_US (500 * 1000)

typedef struct
{
  guint32 seq;
  gint64 pts;
  gint64 duration;
  guint64 tag;
  gint64 t_read;                /* monotonic, request fully read */
  gboolean ready;
  HxfrFrameStatus status;
  gboolean keyframe;
  gint64 dts;
  gint32 code;
  gchar *text;
  GBytes *au;
} Pending;

struct _HxfrHostSession
{
  gint refcount;
  HxfrConn *conn;
  HxfrHostConfig cfg;
  gchar *peer;
  GCancellable *stop;           /* stop_reading() */

  /* reader thread only */
  HxfrMessage held;             /* v1 first message, kept by the handshake */
  gboolean have_held;
  gboolean frame_open;          /* FRAME returned, pixels not read yet */
  HxfrFrameRequest open_req;
  gsize open_tail;
  gint64 open_deadline;         /* the open frame's message deadline */
  gboolean open_force;
  guint32 since_key;
  gboolean want_key;            /* an IDR is owed to the next frame */
  gboolean resolves;            /* resource ids go to the caller */

  /* Set by the handshake before the writer starts, constant after it: the
   * writer reads them without the lock. */
  guint version;
  guint32 codec;
  guint16 session_id;           /* echoed from the guest's header */

  /* Everything below is under @lock. Nothing is written to the socket while
   * it is held: answers and PONGs are written by the writer thread alone,
   * so a guest that does not read yet (it is still sending its window)
   * never stops the reader. */
  GMutex lock;
  GCond work_cond;              /* writer: something to write, or quit */
  GCond idle_cond;              /* fail(): the writer has written all */
  GThread *writer;
  gboolean writer_quit;
  gboolean writing;             /* the writer is in a send */
  guint pongs_owed;             /* a counter: a PING flood holds no memory */
  guint max_in_flight;          /* granted */
  HxfrHostSettings settings;
  GQueue pending;               /* Pending*, oldest first */
  gboolean failed;              /* ERROR sent or write failed: no answers */
  gboolean write_failed;        /* the guest did not take an answer */
  gboolean fail_started;        /* fail() called */
  HxfrHostStats stats;
  HxfrHostSettingsFunc settings_func;
  gpointer settings_data;
  GDestroyNotify settings_notify;
};

void
hxfr_host_config_init (HxfrHostConfig * cfg)
{
  memset (cfg, 0, sizeof (*cfg));
  hxfr_limits_init_default (&cfg->limits);
  cfg->max_in_flight = HXFR_HOST_DEFAULT_MAX_IN_FLIGHT;
  g_strlcpy (cfg->encoder, "none", sizeof (cfg->encoder));
  cfg->idle_timeout_us = DEFAULT_IDLE_TIMEOUT_US;
  cfg->write_timeout_us = DEFAULT_WRITE_TIMEOUT_US;
}

static void
pending_free (Pending * p)
{
  g_free (p->text);
  if (p->au)
    g_bytes_unref (p->au);
  g_free (p);
}

HxfrHostSession *
hxfr_host_session_new (HxfrConn * conn, const HxfrHostConfig * cfg)
{
  HxfrHostSession *s = g_new0 (HxfrHostSession, 1);

  s->refcount = 1;
  s->conn = hxfr_conn_ref (conn);
  s->cfg = *cfg;
  if (cfg->token)
    s->cfg.token = g_bytes_ref (cfg->token);
  s->cfg.max_in_flight = MAX (cfg->max_in_flight, 1);
  s->max_in_flight = s->cfg.max_in_flight;
  s->session_id = 1;
  s->peer = hxfr_conn_describe_peer (conn);
  s->stop = g_cancellable_new ();
  g_mutex_init (&s->lock);
  g_cond_init (&s->work_cond);
  g_cond_init (&s->idle_cond);
  g_queue_init (&s->pending);
  return s;
}

G_DEFINE_BOXED_TYPE (HxfrHostSession, hxfr_host_session,
    hxfr_host_session_ref, hxfr_host_session_unref);

HxfrHostSession *
hxfr_host_session_ref (HxfrHostSession * s)
{
  g_atomic_int_inc (&s->refcount);
  return s;
}

void
hxfr_host_session_unref (HxfrHostSession * s)
{
  if (!s || !g_atomic_int_dec_and_test (&s->refcount))
    return;
  if (s->writer) {
    g_mutex_lock (&s->lock);
    s->writer_quit = TRUE;
    g_cond_signal (&s->work_cond);
    g_mutex_unlock (&s->lock);
    g_thread_join (s->writer);
  }
  if (s->settings_notify)
    s->settings_notify (s->settings_data);
  g_queue_clear_full (&s->pending, (GDestroyNotify) pending_free);
  g_cond_clear (&s->work_cond);
  g_cond_clear (&s->idle_cond);
  g_mutex_clear (&s->lock);
  if (s->cfg.token)
    g_bytes_unref (s->cfg.token);
  hxfr_conn_unref (s->conn);
  g_object_unref (s->stop);
  g_free (s->peer);
  g_free (s);
}

void
hxfr_host_session_set_settings_func (HxfrHostSession * s,
    HxfrHostSettingsFunc func, gpointer user_data, GDestroyNotify notify)
{
  g_mutex_lock (&s->lock);
  if (s->settings_notify)
    s->settings_notify (s->settings_data);
  s->settings_func = func;
  s->settings_data = user_data;
  s->settings_notify = notify;
  g_mutex_unlock (&s->lock);
}

guint32
hxfr_host_session_get_codec (HxfrHostSession * s)
{
  return s->codec;
}

guint
hxfr_host_session_get_version (HxfrHostSession * s)
{
  guint v;

  g_mutex_lock (&s->lock);
  v = s->version;
  g_mutex_unlock (&s->lock);
  return v;
}

void
hxfr_host_session_get_settings (HxfrHostSession * s,
    HxfrHostSettings * settings)
{
  g_mutex_lock (&s->lock);
  *settings = s->settings;
  g_mutex_unlock (&s->lock);
}

void
hxfr_host_session_get_stats (HxfrHostSession * s, HxfrHostStats * stats)
{
  g_mutex_lock (&s->lock);
  *stats = s->stats;
  g_mutex_unlock (&s->lock);
  stats->bytes_in = hxfr_conn_get_bytes_received (s->conn);
  stats->bytes_out = hxfr_conn_get_bytes_sent (s->conn);
}

const gchar *
hxfr_host_session_get_peer (HxfrHostSession * s)
{
  return s->peer;
}

gint32
hxfr_host_error_code (const GError * error)
{
  if (error && error->domain == HXFR_ERROR)
    return error->code;
  if (error && g_error_matches (error, G_IO_ERROR, G_IO_ERROR_TIMED_OUT))
    return HXFR_ERR_TIMEOUT;
  return HXFR_ERR_INTERNAL;
}

static gboolean
is_eos_error (const GError * error)
{
  return g_error_matches (error, G_IO_ERROR, G_IO_ERROR_CONNECTION_CLOSED)
      || g_error_matches (error, G_IO_ERROR, G_IO_ERROR_BROKEN_PIPE)
      || g_error_matches (error, G_IO_ERROR, G_IO_ERROR_CONNECTION_REFUSED)
      || g_error_matches (error, G_IO_ERROR, G_IO_ERROR_NOT_CONNECTED);
}

void
hxfr_host_session_stop_reading (HxfrHostSession * s)
{
  g_cancellable_cancel (s->stop);
}

static void
cancel_other (GCancellable * cancellable, gpointer other)
{
  g_cancellable_cancel (other);
}

/* Waits for the first byte of the next message. FALSE with *stopped set:
 * stop_reading() was called; FALSE otherwise: @error. */
static gboolean
wait_message (HxfrHostSession * s, GCancellable * cancellable,
    gboolean * stopped, GError ** error)
{
  GCancellable *either = g_cancellable_new ();
  gulong id_caller = 0, id_stop;
  GError *err = NULL;
  gboolean ok;

  /* one wait, woken by the caller's unlock() or by stop_reading() */
  if (cancellable)
    id_caller = g_cancellable_connect (cancellable, G_CALLBACK (cancel_other),
        either, NULL);
  id_stop = g_cancellable_connect (s->stop, G_CALLBACK (cancel_other), either,
      NULL);
  ok = hxfr_conn_wait_readable (s->conn, -1, either, &err);
  g_cancellable_disconnect (s->stop, id_stop);
  if (cancellable)
    g_cancellable_disconnect (cancellable, id_caller);
  g_object_unref (either);

  *stopped = FALSE;
  if (ok)
    return TRUE;
  if (g_error_matches (err, G_IO_ERROR, G_IO_ERROR_CANCELLED)
      && g_cancellable_is_cancelled (s->stop)
      && !g_cancellable_is_cancelled (cancellable)) {
    *stopped = TRUE;
    g_error_free (err);
    return FALSE;
  }
  g_propagate_error (error, err);
  return FALSE;
}

void
hxfr_host_session_shutdown (HxfrHostSession * s)
{
  hxfr_conn_shutdown (s->conn);
}

/* Waits (lock held) until the writer has written everything ready, or
 * @deadline passes. */
static void
wait_written (HxfrHostSession * s, gint64 deadline)
{
  while (s->writer && (s->writing || s->pongs_owed
          || (!s->failed && s->pending.head
              && ((Pending *) s->pending.head->data)->ready))) {
    if (!g_cond_wait_until (&s->idle_cond, &s->lock, deadline))
      break;
  }
}

void
hxfr_host_session_fail (HxfrHostSession * s, gint32 code, const gchar * message)
{
  gboolean send;

  g_mutex_lock (&s->lock);
  send = !s->failed && !s->fail_started;
  s->fail_started = TRUE;
  if (send) {
    /* answers already made leave before the ERROR, within one bound */
    wait_written (s, g_get_monotonic_time () + s->cfg.write_timeout_us);
    send = !s->failed;
    s->stats.errors += send;
  }
  s->failed = TRUE;
  g_mutex_unlock (&s->lock);

  if (send) {
    GSocket *sock = hxfr_conn_get_socket (s->conn);

    hxfr_conn_send_error (s->conn, s->session_id, code, message,
        s->cfg.write_timeout_us, NULL);
    /* FIN after the ERROR, then read until the guest closes (bounded):
     * closing with unread input would reset a TCP connection and could
     * destroy the ERROR before the guest reads it. */
    g_socket_shutdown (sock, FALSE, TRUE, NULL);
    hxfr_conn_skip (s->conn, G_MAXSIZE, LINGER_US, NULL, NULL);
  }
  hxfr_conn_shutdown (s->conn);
}

/* Fails the session for a reader error, unless the guest simply left. */
static void
fail_for_error (HxfrHostSession * s, const GError * error)
{
  if (is_eos_error (error)
      || g_error_matches (error, G_IO_ERROR, G_IO_ERROR_CANCELLED))
    return;
  hxfr_host_session_fail (s, hxfr_host_error_code (error), error->message);
}

/* *INDENT-OFF* */ /* indent cannot parse G_GNUC_PRINTF */
static gboolean
refuse (HxfrHostSession * s, gint32 code, GError ** error,
    const gchar * format, ...) G_GNUC_PRINTF (4, 5);
/* *INDENT-ON* */

static gboolean
refuse (HxfrHostSession * s, gint32 code, GError ** error,
    const gchar * format, ...)
{
  va_list args;
  gchar *msg;

  va_start (args, format);
  msg = g_strdup_vprintf (format, args);
  va_end (args);
  hxfr_host_session_fail (s, code, msg);
  g_set_error_literal (error, HXFR_ERROR, code, msg);
  g_free (msg);
  return FALSE;
}

static void
apply_settings (HxfrHostSession * s, guint32 mask, const HxfrHostSettings * in)
{
  HxfrHostSettingsFunc func;
  gpointer data;
  HxfrHostSettings copy;
  guint32 changed = 0;

  g_mutex_lock (&s->lock);
  if ((mask & HXFR_CONTROL_BITRATE) && in->bitrate
      && in->bitrate != s->settings.bitrate) {
    s->settings.bitrate = in->bitrate;
    changed |= HXFR_CONTROL_BITRATE;
  }
  if ((mask & HXFR_CONTROL_KEYFRAME_INTERVAL)
      && in->keyframe_interval != s->settings.keyframe_interval) {
    s->settings.keyframe_interval = in->keyframe_interval;
    changed |= HXFR_CONTROL_KEYFRAME_INTERVAL;
  }
  if ((mask & HXFR_CONTROL_FRAMERATE) && in->fps_n && in->fps_d
      && (s->settings.fps_d == 0 || (guint64) in->fps_n * s->settings.fps_d
          != (guint64) s->settings.fps_n * in->fps_d)) {
    s->settings.fps_n = in->fps_n;
    s->settings.fps_d = in->fps_d;
    changed |= HXFR_CONTROL_FRAMERATE;
  }
  func = s->settings_func;
  data = s->settings_data;
  copy = s->settings;
  g_mutex_unlock (&s->lock);

  if (changed && func)
    func (s, changed, &copy, data);
}

/* From 1 ms to 2 s: a hardware encoder's few ms to a software one
 * struggling with 4K. */
static const guint64 host_time_bounds_us[HXFR_HOST_TIME_BUCKETS - 1] = {
  1000, 2000, 5000, 10000, 20000, 50000, 100000, 200000, 500000, 1000000,
  2000000,
};

guint64
hxfr_host_time_bucket_us (guint i)
{
  return i < G_N_ELEMENTS (host_time_bounds_us) ? host_time_bounds_us[i] :
      G_MAXUINT64;
}

/* Counts the answer of @p in the stats. Lock held. */
static void
count_answer (HxfrHostSession * s, const Pending * p)
{
  gint64 elapsed;
  guint i;

  switch (p->status) {
    case HXFR_STATUS_OK:
      s->stats.answered_ok++;
      elapsed = MAX (g_get_monotonic_time () - p->t_read, 0);
      for (i = 0; i < G_N_ELEMENTS (host_time_bounds_us); i++)
        if ((guint64) elapsed <= host_time_bounds_us[i])
          break;
      s->stats.host_time_buckets[i]++;
      s->stats.host_time_sum_us += elapsed;
      break;
    case HXFR_STATUS_DROPPED:
      s->stats.dropped++;
      break;
    default:
      s->stats.failed++;
      /* v1 has no FAILED answer: an ERROR, and the session goes on */
      if (s->version == 1)
        s->stats.errors++;
      break;
  }
}

/* Writes the answer of @p. Writer thread, lock not held. */
static gboolean
send_answer (HxfrHostSession * s, Pending * p, GError ** error)
{
  HxfrFrameResponse r = { 0, };
  guint8 fixed[HXFR_MAX_FIXED_SIZE];
  GOutputVector tail[2];
  guint n_tail = 0;
  guint32 nal_size;
  gsize len, au_size = 0;
  const guint8 *au = p->au ? g_bytes_get_data (p->au, &au_size) : NULL;
  gint64 elapsed;

  if (s->version == 1 && p->status == HXFR_STATUS_FAILED)
    return hxfr_conn_send_error (s->conn, s->session_id, p->code, p->text,
        s->cfg.write_timeout_us, error);

  elapsed = g_get_monotonic_time () - p->t_read;
  r.seq = p->seq;
  r.status = p->status;
  r.keyframe = p->status == HXFR_STATUS_OK && p->keyframe;
  r.pts = p->pts;
  r.dts = p->status == HXFR_STATUS_OK ? p->dts : p->pts;
  r.duration = p->duration;
  r.error_code = p->status == HXFR_STATUS_FAILED ? p->code : 0;
  r.host_time_us = (guint32) CLAMP (elapsed, 0, G_MAXUINT32);

  if (p->status == HXFR_STATUS_OK) {
    if (s->version == 1) {
      /* the whole access unit as one NAL-list entry: {u32 LE size, bytes} */
      nal_size = GUINT32_TO_LE ((guint32) au_size);
      tail[n_tail].buffer = &nal_size;
      tail[n_tail++].size = 4;
      r.nal_count = 1;
    }
    tail[n_tail].buffer = au;
    tail[n_tail++].size = au_size;
  } else if (p->status == HXFR_STATUS_DROPPED) {
    /* v1 has no "dropped": an empty FRAME_RESPONSE (no NAL entry) keeps a
     * deployed guest going, where an ERROR may stop it */
    r.nal_count = 0;
  } else if (p->text) {
    tail[n_tail].buffer = p->text;
    tail[n_tail++].size = MIN (strlen (p->text), HXFR_ERROR_TEXT_SIZE);
  }

  len = hxfr_frame_response_write (&r, s->version, fixed);
  return hxfr_conn_send (s->conn, s->version == 1 ? HXFR_MSG_FRAME_RESPONSE :
      HXFR_MSG_FRAME_RESPONSE2, 0, s->session_id, fixed, len, tail, n_tail,
      s->cfg.write_timeout_us, NULL, error);
}

/* The one thread that writes answers and PONGs, in queue order. */
static gpointer
writer_thread (gpointer data)
{
  HxfrHostSession *s = data;

  g_mutex_lock (&s->lock);
  while (!s->writer_quit) {
    Pending *p = g_queue_peek_head (&s->pending);
    gboolean pong = FALSE, ok = TRUE;
    GError *err = NULL;

    if (s->pongs_owed) {
      s->pongs_owed--;
      pong = !s->failed;
      p = NULL;
    } else if (p && p->ready) {
      g_queue_pop_head (&s->pending);
      if (s->failed) {
        pending_free (p);
        continue;
      }
      count_answer (s, p);
    } else {
      g_cond_broadcast (&s->idle_cond);
      g_cond_wait (&s->work_cond, &s->lock);
      continue;
    }
    if (!pong && !p)
      continue;

    s->writing = TRUE;
    g_mutex_unlock (&s->lock);
    if (pong)
      ok = hxfr_conn_send (s->conn, HXFR_MSG_PONG, 0, s->session_id, NULL, 0,
          NULL, 0, s->cfg.write_timeout_us, NULL, &err);
    else
      ok = send_answer (s, p, &err);
    if (p)
      pending_free (p);
    if (!ok) {
      /* a guest that does not read its answers loses its session, nobody
       * else's */
      g_debug ("%s: %s", s->peer, err->message);
      hxfr_conn_shutdown (s->conn);
    }
    g_clear_error (&err);
    g_mutex_lock (&s->lock);
    s->writing = FALSE;
    if (!ok)
      s->failed = s->write_failed = TRUE;
  }
  g_cond_broadcast (&s->idle_cond);
  g_mutex_unlock (&s->lock);
  return NULL;
}

/* Once the version is known: from here on the writer sends. */
static void
start_writer (HxfrHostSession * s)
{
  g_mutex_lock (&s->lock);
  s->writer = g_thread_new ("hxfr-writer", writer_thread, s);
  g_mutex_unlock (&s->lock);
}

/* Lock held: the writer has something new. */
static void
wake_writer (HxfrHostSession * s)
{
  g_cond_signal (&s->work_cond);
}

/* The codec the guest asks for, if the host encodes it (@encoder: the
 * encoder's name for HELLO_ACK, or NULL); else refused. */
static gboolean
accept_codec (HxfrHostSession * s, guint32 codec,
    gchar encoder[HXFR_ENCODER_NAME_SIZE], GError ** error)
{
  const gchar *name;
  GError *err = NULL;

  if (!s->cfg.codec_func) {
    if (codec != HXFR_CODEC_H264)
      return refuse (s, HXFR_ERR_UNSUPPORTED, error,
          "codec 0x%08x not supported (only H264)", codec);
    name = s->cfg.encoder;
  } else if (!(name = s->cfg.codec_func (codec, s->cfg.codec_data, &err))) {
    refuse (s, HXFR_ERR_UNSUPPORTED, error, "%s", err->message);
    g_error_free (err);
    return FALSE;
  }
  if (encoder)
    g_strlcpy (encoder, name, HXFR_ENCODER_NAME_SIZE);
  s->codec = codec;
  return TRUE;
}

gboolean
hxfr_host_session_handshake (HxfrHostSession * s,
    gint64 first_byte_timeout_us, GCancellable * cancellable, GError ** error)
{
  HxfrMessage *msg = &s->held;
  GError *err = NULL;

  if (!hxfr_conn_receive (s->conn, HXFR_ROLE_HOST, &s->cfg.limits, msg,
          first_byte_timeout_us, s->cfg.idle_timeout_us, cancellable, &err)) {
    fail_for_error (s, err);
    g_propagate_error (error, err);
    return FALSE;
  }

  g_mutex_lock (&s->lock);
  s->session_id = msg->header.session_id;
  g_mutex_unlock (&s->lock);

  switch (msg->header.type) {
    case HXFR_MSG_HELLO:{
      const HxfrHello *h = &msg->u.hello;
      HxfrHelloAck ack = { 0, };
      HxfrHostSettings st = { 0, };
      guint8 out[HXFR_MAX_FIXED_SIZE];
      gchar encoder[HXFR_ENCODER_NAME_SIZE];
      gsize len;

      if (h->min_version > 2 || h->max_version < 2)
        return refuse (s, HXFR_ERR_UNSUPPORTED, error,
            "protocol versions %u..%u not supported (this host speaks 2)",
            h->min_version, h->max_version);
      if (s->cfg.token) {
        gsize tlen;
        const guint8 *t = g_bytes_get_data (s->cfg.token, &tlen);

        if (!hxfr_token_equal (t, tlen, msg->token, h->token_len))
          return refuse (s, HXFR_ERR_UNAUTHORIZED, error,
              "missing or wrong token");
      }
      if (!accept_codec (s, h->codec, encoder, error))
        return FALSE;

      g_mutex_lock (&s->lock);
      s->version = 2;
      s->max_in_flight = CLAMP (h->max_in_flight, 1, s->cfg.max_in_flight);
      g_mutex_unlock (&s->lock);

      ack.version = 2;
      ack.codec = h->codec;
      ack.max_in_flight = s->max_in_flight;
      ack.max_width = s->cfg.limits.max_width;
      ack.max_height = s->cfg.limits.max_height;
      ack.host_flags = s->cfg.host_flags |
          (s->resolves ? HXFR_HOST_RESOURCE_IDS : 0);
      g_strlcpy (ack.encoder, encoder, sizeof (ack.encoder));
      len = hxfr_hello_ack_write (&ack, out);
      if (!hxfr_conn_send (s->conn, HXFR_MSG_HELLO_ACK, 0, s->session_id,
              out, len, NULL, 0, s->cfg.write_timeout_us, cancellable, error)) {
        hxfr_conn_shutdown (s->conn);
        return FALSE;
      }
      start_writer (s);
      st.bitrate = h->bitrate;
      st.keyframe_interval = h->keyframe_interval;
      st.fps_n = h->fps_n;
      st.fps_d = h->fps_d;
      apply_settings (s, HXFR_CONTROL_ALL, &st);
      return TRUE;
    }
    case HXFR_MSG_FRAME_REQUEST:
    case HXFR_MSG_CONFIG_REQ:
    case HXFR_MSG_KEYFRAME_REQ:
    case HXFR_MSG_PING:
      /* a v1 guest: no handshake, its first message is already a request.
       * v1 cannot carry a token: the text says what to do instead, and
       * fits HXFR_ERROR_TEXT_SIZE (tested) */
      if (s->cfg.token)
        return refuse (s, HXFR_ERR_UNAUTHORIZED, error, "%s",
            HXFR_V1_TOKEN_REFUSAL);
      /* v1 is H.264 */
      if (!accept_codec (s, HXFR_CODEC_H264, NULL, error))
        return FALSE;
      g_mutex_lock (&s->lock);
      s->version = 1;
      g_mutex_unlock (&s->lock);
      s->have_held = TRUE;
      start_writer (s);
      return TRUE;
    default:
      return refuse (s, HXFR_ERR_INVALID, error,
          "%s before HELLO", hxfr_msg_type_name (msg->header.type));
  }
}

void
hxfr_host_session_set_resolves_resources (HxfrHostSession * s,
    guint max_in_flight)
{
  g_return_if_fail (s->version == 0);
  s->resolves = TRUE;
  if (max_in_flight)
    s->cfg.max_in_flight = MAX (MIN (s->cfg.max_in_flight, max_in_flight), 1);
  g_mutex_lock (&s->lock);
  s->max_in_flight = s->cfg.max_in_flight;
  g_mutex_unlock (&s->lock);
}

/* Queues @r already answered FAILED and sends it if it is next. */
static void
queue_failed (HxfrHostSession * s, const HxfrFrameRequest * r, gint32 code,
    const gchar * text)
{
  Pending *p = g_new0 (Pending, 1);

  p->seq = r->seq;
  p->pts = r->pts;
  p->duration = r->duration;
  p->t_read = g_get_monotonic_time ();
  p->ready = TRUE;
  p->status = HXFR_STATUS_FAILED;
  p->code = code;
  p->text = g_strdup (text);
  g_mutex_lock (&s->lock);
  g_queue_push_tail (&s->pending, p);
  wake_writer (s);
  g_mutex_unlock (&s->lock);
}

gboolean
hxfr_host_session_fail_frame (HxfrHostSession * s, gint32 code,
    const gchar * text, GCancellable * cancellable, GError ** error)
{
  GError *err = NULL;

  g_return_val_if_fail (s->frame_open, FALSE);
  s->frame_open = FALSE;
  /* the IDR it was to be goes to the next frame */
  if (s->open_force)
    s->want_key = TRUE;
  if (s->open_tail && !hxfr_conn_skip (s->conn, s->open_tail,
          hxfr_deadline_left (s->open_deadline), cancellable, &err)) {
    fail_for_error (s, err);
    g_propagate_error (error, err);
    return FALSE;
  }
  queue_failed (s, &s->open_req, code, text);
  return TRUE;
}

/* The writer gave up on a guest that did not read its answers and closed
 * the connection, which the reader then sees as a close: say who closed
 * it. Replaces *@err. */
static gboolean
reader_ended_by_writer (HxfrHostSession * s, GError ** err)
{
  gboolean by_writer;

  g_mutex_lock (&s->lock);
  by_writer = s->write_failed;
  g_mutex_unlock (&s->lock);
  if (!by_writer)
    return FALSE;
  g_clear_error (err);
  g_set_error (err, G_IO_ERROR, G_IO_ERROR_TIMED_OUT,
      "the guest did not read its answers within %" G_GINT64_FORMAT
      " ms: closed by the host", s->cfg.write_timeout_us / 1000);
  return TRUE;
}

/* The next message: TRUE with @msg; FALSE with *eos (the guest left, or we
 * stopped reading) or with @error (the session was failed). */
static gboolean
read_next (HxfrHostSession * s, HxfrMessage * msg, gboolean * eos,
    GCancellable * cancellable, GError ** error)
{
  GError *err = NULL;
  gboolean stopped = FALSE;

  *eos = FALSE;
  if (s->have_held) {
    *msg = s->held;
    s->have_held = FALSE;
    return TRUE;
  }
  if (wait_message (s, cancellable, &stopped, &err)
      && hxfr_conn_receive (s->conn, HXFR_ROLE_HOST, &s->cfg.limits, msg, -1,
          s->cfg.idle_timeout_us, cancellable, &err))
    return TRUE;
  if (stopped) {
    *eos = TRUE;
  } else if (reader_ended_by_writer (s, &err)) {
    g_propagate_error (error, err);
  } else if (is_eos_error (err)) {
    g_error_free (err);
    *eos = TRUE;
  } else {
    fail_for_error (s, err);
    g_propagate_error (error, err);
  }
  return FALSE;
}

typedef enum
{
  TAKEN_EVENT,                  /* *event is set */
  TAKEN_NO_EVENT,               /* handled; read on */
  TAKEN_REFUSED,                /* the session was failed, @error set */
} Taken;

/* A frame request becomes a FRAME event, or a per-frame failure answered in
 * its turn. */
static Taken
take_frame_request (HxfrHostSession * s, const HxfrMessage * msg,
    HxfrHostEvent * event, GError ** error)
{
  guint type = msg->header.type, n_pending, max;
  guint32 interval;

  if ((type == HXFR_MSG_FRAME_REQUEST) != (s->version == 1)) {
    refuse (s, HXFR_ERR_INVALID, error, "%s in a v%u session",
        hxfr_msg_type_name (type), s->version);
    return TAKEN_REFUSED;
  }
  g_mutex_lock (&s->lock);
  n_pending = s->pending.length;
  max = s->max_in_flight;
  interval = s->settings.keyframe_interval;
  s->stats.requests++;
  g_mutex_unlock (&s->lock);
  if (n_pending >= max) {
    refuse (s, HXFR_ERR_LIMIT, error, "more than %u requests in flight", max);
    return TAKEN_REFUSED;
  }
  if (msg->tail_size == 0 && !s->resolves) {
    /* a resource id and no helix export client in this session */
    gchar *text = g_strdup_printf ("resource %u cannot be resolved here "
        "(no helix export)", msg->u.frame_request.resource_id);

    queue_failed (s, &msg->u.frame_request, HXFR_ERR_RESOURCE_NOT_FOUND, text);
    g_free (text);
    return TAKEN_NO_EVENT;
  }
  event->type = HXFR_HOST_EVENT_FRAME;
  event->request = msg->u.frame_request;
  event->pixel_size = msg->tail_size;
  event->force_keyframe = msg->u.frame_request.force_keyframe
      || s->want_key || (interval && s->since_key >= interval);
  if (event->force_keyframe)
    s->since_key = 0;
  s->since_key++;
  s->want_key = FALSE;
  s->frame_open = TRUE;
  s->open_req = msg->u.frame_request;
  s->open_tail = msg->tail_size;
  s->open_deadline = msg->deadline;
  s->open_force = event->force_keyframe;
  return TAKEN_EVENT;
}

/* Every other message a guest may send. */
static Taken
take_message (HxfrHostSession * s, const HxfrMessage * msg,
    HxfrHostEvent * event, GError ** error)
{
  HxfrHostSettings st = { 0, };

  switch (msg->header.type) {
    case HXFR_MSG_PING:
      g_mutex_lock (&s->lock);
      if (s->pongs_owed < G_MAXUINT)
        s->pongs_owed++;
      wake_writer (s);
      g_mutex_unlock (&s->lock);
      return TAKEN_NO_EVENT;
    case HXFR_MSG_PONG:
      return TAKEN_NO_EVENT;
    case HXFR_MSG_KEYFRAME_REQ:
      /* one IDR owed is one IDR: a flood of requests is one event */
      if (s->want_key)
        return TAKEN_NO_EVENT;
      s->want_key = TRUE;
      event->type = HXFR_HOST_EVENT_KEYFRAME_REQ;
      return TAKEN_EVENT;
    case HXFR_MSG_CONFIG_REQ:
      /* v1 semantics: applied, never answered */
      st.bitrate = msg->u.config.bitrate;
      st.fps_n = msg->u.config.fps_n;
      st.fps_d = msg->u.config.fps_d;
      apply_settings (s, HXFR_CONTROL_BITRATE | HXFR_CONTROL_FRAMERATE, &st);
      return TAKEN_NO_EVENT;
    case HXFR_MSG_CONTROL:
      if (s->version != 2) {
        refuse (s, HXFR_ERR_INVALID, error, "CONTROL in a v1 session");
        return TAKEN_REFUSED;
      }
      st.bitrate = msg->u.control.bitrate;
      st.keyframe_interval = msg->u.control.keyframe_interval;
      st.fps_n = msg->u.control.fps_n;
      st.fps_d = msg->u.control.fps_d;
      apply_settings (s, msg->u.control.mask, &st);
      return TAKEN_NO_EVENT;
    case HXFR_MSG_FRAME_REQUEST:
    case HXFR_MSG_FRAME_REQUEST2:
      return take_frame_request (s, msg, event, error);
    default:
      refuse (s, HXFR_ERR_INVALID, error, "unexpected %s",
          hxfr_msg_type_name (msg->header.type));
      return TAKEN_REFUSED;
  }
}

gboolean
hxfr_host_session_next (HxfrHostSession * s, HxfrHostEvent * event,
    GCancellable * cancellable, GError ** error)
{
  g_return_val_if_fail (s->version != 0, FALSE);
  g_return_val_if_fail (!s->frame_open, FALSE);

  memset (event, 0, sizeof (*event));
  for (;;) {
    HxfrMessage msg;
    gboolean eos;

    if (!read_next (s, &msg, &eos, cancellable, error)) {
      if (!eos)
        return FALSE;
      event->type = HXFR_HOST_EVENT_EOS;
      return TRUE;
    }
    switch (take_message (s, &msg, event, error)) {
      case TAKEN_EVENT:
        return TRUE;
      case TAKEN_REFUSED:
        return FALSE;
      case TAKEN_NO_EVENT:
        break;
    }
  }
}

gboolean
hxfr_host_session_read_pixels (HxfrHostSession * s, guint8 * dest,
    guint64 tag, GCancellable * cancellable, GError ** error)
{
  GError *err = NULL;
  gboolean ok;
  Pending *p;

  g_return_val_if_fail (s->frame_open, FALSE);
  s->frame_open = FALSE;

  /* the pixels are the rest of the request's message: its deadline */
  if (dest)
    ok = hxfr_conn_read_exact (s->conn, dest, s->open_tail,
        hxfr_deadline_left (s->open_deadline), cancellable, &err);
  else
    ok = hxfr_conn_skip (s->conn, s->open_tail,
        hxfr_deadline_left (s->open_deadline), cancellable, &err);
  if (!ok) {
    if (!reader_ended_by_writer (s, &err))
      fail_for_error (s, err);
    g_propagate_error (error, err);
    return FALSE;
  }

  p = g_new0 (Pending, 1);
  p->seq = s->open_req.seq;
  p->pts = s->open_req.pts;
  p->duration = s->open_req.duration;
  p->tag = tag;
  p->t_read = g_get_monotonic_time ();
  g_mutex_lock (&s->lock);
  g_queue_push_tail (&s->pending, p);
  g_mutex_unlock (&s->lock);
  return TRUE;
}

gboolean
hxfr_host_session_answer (HxfrHostSession * s, guint64 tag,
    HxfrFrameStatus status, const guint8 * au, gsize au_size,
    gboolean keyframe, gint64 dts, gint32 code, const gchar * text,
    GError ** error)
{
  Pending *p = NULL;
  GList *l;
  gboolean ok;

  g_mutex_lock (&s->lock);
  for (l = s->pending.head; l; l = l->next) {
    Pending *q = l->data;

    if (!q->ready && q->tag == tag) {
      p = q;
      break;
    }
  }
  if (!p) {
    g_mutex_unlock (&s->lock);
    g_set_error (error, HXFR_ERROR, HXFR_ERR_INTERNAL,
        "no pending request for tag %" G_GUINT64_FORMAT, tag);
    return FALSE;
  }
  /* earlier requests the encoder never produced output for */
  for (l = s->pending.head; l->data != p; l = l->next) {
    Pending *q = l->data;

    if (!q->ready) {
      q->ready = TRUE;
      q->status = HXFR_STATUS_DROPPED;
    }
  }
  p->ready = TRUE;
  p->status = status;
  p->keyframe = keyframe;
  p->dts = dts;
  p->code = code;
  g_free (p->text);
  p->text = g_strdup (text);
  /* a copy: the writer sends it when the guest reads (at most the window's
   * answers are held) */
  if (status == HXFR_STATUS_OK)
    p->au = g_bytes_new (au, au_size);
  ok = !s->failed;
  wake_writer (s);
  g_mutex_unlock (&s->lock);
  if (!ok)
    g_set_error_literal (error, G_IO_ERROR, G_IO_ERROR_CLOSED,
        "the guest's connection has failed");
  return ok;
}

void
hxfr_host_session_answer_all (HxfrHostSession * s, HxfrFrameStatus status,
    gint32 code, const gchar * text)
{
  GList *l;

  g_mutex_lock (&s->lock);
  for (l = s->pending.head; l; l = l->next) {
    Pending *q = l->data;

    if (!q->ready) {
      q->ready = TRUE;
      q->status = status;
      q->code = code;
      q->text = g_strdup (text);
    }
  }
  wake_writer (s);
  g_mutex_unlock (&s->lock);
}
