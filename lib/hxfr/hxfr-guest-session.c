/* The guest side of one HXFR connection (see hxfr-guest-session.h).
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "hxfr-guest-session.h"
#include "hxfr-window.h"

#include <string.h>

/* after a v1 host's ERROR to HELLO: how long to look for it closing */
#define V1_PROBE_US (100 * G_TIME_SPAN_MILLISECOND)
/* the reader's wait with nothing in flight (it rechecks closed) */
#define IDLE_WAIT_US (200 * G_TIME_SPAN_MILLISECOND)

/* A request sent and not answered yet. */
typedef struct
{
  guint32 seq;
  gpointer tag;                 /* the caller's, not owned */
  gint64 sent_us;
  gint64 deadline_us;
} InFlight;

struct _HxfrGuestSession
{
  gint ref_count;

  /* Set by connect, before the reader exists; immutable after. */
  HxfrConn *conn;
  HxfrAddress *address;
  GCancellable *cancellable;
  gint64 timeout_us;
  HxfrGuestInfo info;

  /* Set once by start, before the reader exists. */
  HxfrGuestCallbacks callbacks;
  gpointer user_data;
  GThread *reader;

  /* Set by connect, before the reader exists; immutable after. */
  gboolean adaptive;            /* the window follows hxfr-window.h */

  /* lock: the requests in flight, next_seq, closed, the window's
   * estimates. window: atomic (read on every frame, by the sender). */
  GMutex lock;
  GQueue in_flight;             /* of InFlight, oldest first */
  guint32 next_seq;
  gboolean closed;
  HxfrWindow estimates;
  gint window;
};

/* Negotiation */

typedef enum
{
  NEGOTIATED_V2,
  FALL_BACK_V1,                 /* on this connection */
  FALL_BACK_V1_RECONNECT,       /* the host closed: a new connection, v1 */
  NEGOTIATION_FAILED,
} Negotiation;

static gboolean
error_is_fatal_for_v2 (gint code)
{
  return code == HXFR_ERR_UNAUTHORIZED || code == HXFR_ERR_UNSUPPORTED
      || code == HXFR_ERR_LIMIT || code == HXFR_ERR_TOO_MANY_SESSIONS
      || code == HXFR_ERR_SHUTDOWN;
}

static gboolean
send_pong (HxfrGuestSession * s, gint64 timeout_us, GError ** error)
{
  return hxfr_conn_send (s->conn, HXFR_MSG_PONG, 0, 1, NULL, 0, NULL, 0,
      timeout_us, s->cancellable, error);
}

static gboolean
send_hello (HxfrGuestSession * s, const HxfrGuestConfig * config,
    gint64 deadline, GError ** error)
{
  HxfrHello hello = { 0, };
  guint8 fixed[HXFR_MAX_FIXED_SIZE];
  GOutputVector tail;
  gsize len;

  hello.min_version = 2;
  hello.max_version = 2;
  hello.codec = s->info.codec;
  hello.max_in_flight = config->max_in_flight;
  hello.bitrate = config->bitrate;
  hello.keyframe_interval = config->keyframe_interval;
  hello.guest_flags = config->resource_ids ? HXFR_GUEST_RESOURCE_IDS : 0;
  hello.token_len = config->token ?
      MIN (strlen (config->token), HXFR_MAX_TOKEN) : 0;
  len = hxfr_hello_write (&hello, fixed);
  tail.buffer = config->token;
  tail.size = hello.token_len;
  return hxfr_conn_send (s->conn, HXFR_MSG_HELLO, 0, 1, fixed, len, &tail,
      hello.token_len ? 1 : 0, hxfr_deadline_left (deadline), s->cancellable,
      error);
}

static Negotiation
accept_hello_ack (HxfrGuestSession * s, const HxfrHelloAck * ack,
    guint asked_in_flight, GError ** error)
{
  if (ack->version != 2 || ack->codec != s->info.codec) {
    g_set_error (error, HXFR_ERROR, HXFR_ERR_INVALID,
        "host accepted version %u codec 0x%08x, asked for 2 and 0x%08x",
        ack->version, ack->codec, s->info.codec);
    return NEGOTIATION_FAILED;
  }
  s->info.version = 2;
  s->info.in_flight_max = CLAMP (ack->max_in_flight, 1, asked_in_flight);
  s->info.host_resource_ids = (ack->host_flags & HXFR_HOST_RESOURCE_IDS) != 0;
  if (ack->max_width)
    s->info.host_max_width = ack->max_width;
  if (ack->max_height)
    s->info.host_max_height = ack->max_height;
  g_strlcpy (s->info.host_encoder, ack->encoder, sizeof (s->info.host_encoder));
  return NEGOTIATED_V2;
}

/* A v1 host answered HELLO with an ERROR: it either goes on with this
 * connection or closes it; a short look tells which. */
static Negotiation
after_v1_error (HxfrGuestSession * s, const HxfrLimits * limits,
    gint64 deadline, GError ** error)
{
  HxfrMessage msg;
  GError *err = NULL;

  if (!hxfr_conn_receive (s->conn, HXFR_ROLE_GUEST, limits, &msg,
          MIN (V1_PROBE_US, hxfr_deadline_left (deadline)),
          hxfr_deadline_left (deadline), s->cancellable, &err)) {
    if (g_error_matches (err, G_IO_ERROR, G_IO_ERROR_CONNECTION_CLOSED)) {
      g_clear_error (&err);
      return FALL_BACK_V1_RECONNECT;
    }
    if (g_error_matches (err, G_IO_ERROR, G_IO_ERROR_TIMED_OUT)) {
      g_clear_error (&err);
      return FALL_BACK_V1;
    }
    g_propagate_error (error, err);
    return NEGOTIATION_FAILED;
  }
  if (msg.header.type == HXFR_MSG_PING)
    return send_pong (s, hxfr_deadline_left (deadline), error) ?
        FALL_BACK_V1 : NEGOTIATION_FAILED;
  if (msg.header.type != HXFR_MSG_PONG
      && msg.header.type != HXFR_MSG_CONFIG_RESP) {
    g_set_error (error, HXFR_ERROR, HXFR_ERR_INVALID,
        "unexpected %s from a v1 host before any request",
        hxfr_msg_type_name (msg.header.type));
    return NEGOTIATION_FAILED;
  }
  return FALL_BACK_V1;
}

/* Sends HELLO and reads until its answer (PINGs answered meanwhile), all
 * within @deadline: docs/protocol.md section 6, "Negotiation". */
static Negotiation
negotiate_v2 (HxfrGuestSession * s, const HxfrGuestConfig * config,
    gint64 deadline, GError ** error)
{
  HxfrLimits limits;
  HxfrMessage msg;
  GError *err = NULL;

  hxfr_limits_init_default (&limits);
  if (!send_hello (s, config, deadline, error))
    return NEGOTIATION_FAILED;

  while (TRUE) {
    if (!hxfr_conn_receive (s->conn, HXFR_ROLE_GUEST, &limits, &msg,
            hxfr_deadline_left (deadline), hxfr_deadline_left (deadline),
            s->cancellable, &err)) {
      if (g_error_matches (err, G_IO_ERROR, G_IO_ERROR_CONNECTION_CLOSED)) {
        /* a host that hangs up on HELLO: once more as a v1 guest */
        g_debug ("host closed on HELLO, reconnecting as v1");
        g_clear_error (&err);
        return FALL_BACK_V1_RECONNECT;
      }
      if (g_error_matches (err, G_IO_ERROR, G_IO_ERROR_TIMED_OUT)) {
        g_clear_error (&err);
        g_set_error (error, G_IO_ERROR, G_IO_ERROR_TIMED_OUT,
            "no HELLO_ACK within %" G_GINT64_FORMAT " ms",
            config->timeout_us / 1000);
      } else {
        g_propagate_prefixed_error (error, err, "no answer to HELLO: ");
      }
      return NEGOTIATION_FAILED;
    }
    switch (msg.header.type) {
      case HXFR_MSG_PING:
        if (!send_pong (s, hxfr_deadline_left (deadline), error))
          return NEGOTIATION_FAILED;
        break;
      case HXFR_MSG_PONG:
      case HXFR_MSG_CONFIG_RESP:
        break;
      case HXFR_MSG_HELLO_ACK:
        return accept_hello_ack (s, &msg.u.hello_ack, config->max_in_flight,
            error);
      case HXFR_MSG_ERROR:
        if (error_is_fatal_for_v2 (msg.u.error.code)) {
          g_set_error (error, HXFR_ERROR, msg.u.error.code,
              "host refused the session: %s (%d, %s)", msg.u.error.message,
              msg.u.error.code, hxfr_error_code_name (msg.u.error.code));
          return NEGOTIATION_FAILED;
        }
        g_debug ("host answered HELLO with error %d (%s): a v1 host",
            msg.u.error.code, msg.u.error.message);
        return after_v1_error (s, &limits, deadline, error);
      default:
        g_set_error (error, HXFR_ERROR, HXFR_ERR_INVALID,
            "unexpected %s in answer to HELLO",
            hxfr_msg_type_name (msg.header.type));
        return NEGOTIATION_FAILED;
    }
  }
}

HxfrGuestSession *
hxfr_guest_session_connect (const HxfrGuestConfig * config, GError ** error)
{
  HxfrGuestSession *s;
  Negotiation result;
  /* one deadline for the whole negotiation: a host that keeps the
   * connection busy with PINGs must not hold us past the timeout */
  gint64 deadline = g_get_monotonic_time () + config->timeout_us;

  g_return_val_if_fail (config->max_in_flight >= 1, NULL);

  s = g_new0 (HxfrGuestSession, 1);
  s->ref_count = 1;
  g_mutex_init (&s->lock);
  g_queue_init (&s->in_flight);
  s->address = hxfr_address_copy (config->address);
  s->cancellable = config->cancellable ? g_object_ref (config->cancellable) :
      NULL;
  s->timeout_us = config->timeout_us;
  s->info.codec = config->codec ? config->codec : HXFR_CODEC_H264;
  s->info.host_resource_ids = TRUE;
  s->info.host_max_width = HXFR_DEFAULT_MAX_DIMENSION;
  s->info.host_max_height = HXFR_DEFAULT_MAX_DIMENSION;

  s->conn = hxfr_conn_connect (s->address, hxfr_deadline_left (deadline),
      s->cancellable, error);
  if (!s->conn)
    goto failed;

  result = config->v1_only ? FALL_BACK_V1 :
      negotiate_v2 (s, config, deadline, error);
  if ((result == FALL_BACK_V1 || result == FALL_BACK_V1_RECONNECT)
      && s->info.codec != HXFR_CODEC_H264) {
    g_set_error (error, HXFR_ERROR, HXFR_ERR_UNSUPPORTED, "%s",
        config->v1_only ? "HXFR v1 carries H.264 only: another codec needs "
        "HXFR v2" : "the host speaks HXFR v1 only, which carries H.264 "
        "only: another codec needs a v2 host bridge");
    goto failed;
  }
  if (result == FALL_BACK_V1_RECONNECT) {
    g_clear_pointer (&s->conn, hxfr_conn_unref);
    s->conn = hxfr_conn_connect (s->address, hxfr_deadline_left (deadline),
        s->cancellable, error);
    result = s->conn ? FALL_BACK_V1 : NEGOTIATION_FAILED;
  }
  if (result == NEGOTIATION_FAILED)
    goto failed;
  if (result == FALL_BACK_V1) {
    s->info.version = 1;
    s->info.in_flight_max = 1;
    s->info.host_resource_ids = TRUE;
    s->info.host_encoder[0] = '\0';
  }
  /* v1 answers carry no host time: nothing to adapt to, one in flight */
  s->adaptive = config->adaptive_window && s->info.version >= 2;
  hxfr_window_init (&s->estimates, s->info.in_flight_max);
  s->window = s->adaptive ? s->estimates.window : s->info.in_flight_max;
  return s;

failed:
  hxfr_guest_session_unref (s);
  return NULL;
}

HxfrGuestSession *
hxfr_guest_session_ref (HxfrGuestSession * s)
{
  g_atomic_int_inc (&s->ref_count);
  return s;
}

void
hxfr_guest_session_unref (HxfrGuestSession * s)
{
  if (!g_atomic_int_dec_and_test (&s->ref_count))
    return;
  /* the reader holds a reference: this is the reader ending itself,
   * never joined (hxfr_guest_session_stop() was not called) */
  if (s->reader)
    g_thread_unref (s->reader);
  g_queue_clear_full (&s->in_flight, g_free);
  g_clear_pointer (&s->conn, hxfr_conn_unref);
  g_clear_pointer (&s->address, hxfr_address_free);
  g_clear_object (&s->cancellable);
  g_mutex_clear (&s->lock);
  g_free (s);
}

const HxfrGuestInfo *
hxfr_guest_session_get_info (HxfrGuestSession * s)
{
  return &s->info;
}

guint64
hxfr_guest_session_get_bytes_sent (HxfrGuestSession * s)
{
  return hxfr_conn_get_bytes_sent (s->conn);
}

guint64
hxfr_guest_session_get_bytes_received (HxfrGuestSession * s)
{
  return hxfr_conn_get_bytes_received (s->conn);
}

guint
hxfr_guest_session_get_window (HxfrGuestSession * s)
{
  return g_atomic_int_get (&s->window);
}

void
hxfr_guest_session_get_window_estimates (HxfrGuestSession * s,
    guint64 * service_us, guint64 * link_us)
{
  g_mutex_lock (&s->lock);
  *service_us = s->adaptive ? (guint64) s->estimates.service_us : 0;
  *link_us = s->adaptive ? (guint64) MAX (s->estimates.link_us, 0) : 0;
  g_mutex_unlock (&s->lock);
}

/* Sending */

gboolean
hxfr_guest_session_send_frame (HxfrGuestSession * s, HxfrFrameRequest * req,
    const GOutputVector * pixels, guint n_pixels, gpointer tag, GError ** error)
{
  guint8 fixed[HXFR_MAX_FIXED_SIZE];
  InFlight *f = g_new0 (InFlight, 1);
  gsize len;

  f->tag = tag;
  f->sent_us = g_get_monotonic_time ();
  f->deadline_us = f->sent_us + s->timeout_us;
  g_mutex_lock (&s->lock);
  req->seq = f->seq = s->next_seq++;
  /* in flight before it is sent: the answer may come back at once */
  g_queue_push_tail (&s->in_flight, f);
  g_mutex_unlock (&s->lock);

  len = hxfr_frame_request_write (req, s->info.version, fixed);
  return hxfr_conn_send (s->conn, s->info.version >= 2 ?
      HXFR_MSG_FRAME_REQUEST2 : HXFR_MSG_FRAME_REQUEST,
      req->resource_id ? 0 : HXFR_FLAG_PIXEL_DATA, 1, fixed, len, pixels,
      n_pixels, s->timeout_us, s->cancellable, error);
}

gboolean
hxfr_guest_session_send_settings (HxfrGuestSession * s,
    const HxfrGuestSettings * st, GError ** error)
{
  guint8 fixed[HXFR_MAX_FIXED_SIZE];
  gsize len;
  guint type;

  if (s->info.version >= 2) {
    HxfrControl c = { 0, };

    /* bitrate 0: the host's own default, left as it is */
    c.mask = (st->bitrate > 0 ? HXFR_CONTROL_BITRATE : 0) |
        HXFR_CONTROL_KEYFRAME_INTERVAL;
    c.bitrate = st->bitrate;
    c.keyframe_interval = st->keyframe_interval;
    if (st->fps_n > 0 && st->fps_d > 0) {
      c.mask |= HXFR_CONTROL_FRAMERATE;
      c.fps_n = st->fps_n;
      c.fps_d = st->fps_d;
    }
    len = hxfr_control_write (&c, fixed);
    type = HXFR_MSG_CONTROL;
  } else {
    HxfrConfig c = { 0, };

    c.width = st->width;
    c.height = st->height;
    c.bitrate = st->bitrate;
    c.fps_n = st->fps_n;
    c.fps_d = st->fps_d;
    c.profile = 100;
    c.realtime = 1;
    len = hxfr_config_write (&c, fixed);
    type = HXFR_MSG_CONFIG_REQ;
  }
  return hxfr_conn_send (s->conn, type, 0, 1, fixed, len, NULL, 0,
      s->timeout_us, s->cancellable, error);
}

/* The reader */

/* Takes the oldest request in flight, which @seq must answer (v2; any
 * answer answers the oldest in v1). */
static InFlight *
pop_answered (HxfrGuestSession * s, gboolean v2, guint32 seq, GError ** error)
{
  InFlight *f;

  g_mutex_lock (&s->lock);
  f = g_queue_peek_head (&s->in_flight);
  if (f && (!v2 || f->seq == seq))
    g_queue_pop_head (&s->in_flight);
  g_mutex_unlock (&s->lock);

  if (!f)
    g_set_error (error, HXFR_ERROR, HXFR_ERR_INVALID,
        "answer with no frame in flight");
  else if (v2 && f->seq != seq)
    g_set_error (error, HXFR_ERROR, HXFR_ERR_INVALID,
        "answer for frame %u while frame %u is the oldest in flight",
        seq, f->seq);
  else
    return f;
  return NULL;
}

/* One FRAME_RESPONSE(2) whose fixed part is in @msg; reads its tail (the
 * access unit, a NAL list in v1) and hands it over. */
static gboolean
handle_response (HxfrGuestSession * s, HxfrMessage * msg, GError ** error)
{
  HxfrFrameResponse *r = &msg->u.frame_response;
  gboolean v2 = msg->header.type == HXFR_MSG_FRAME_RESPONSE2;
  HxfrGuestAnswer a = { 0, };
  InFlight *f;
  gint64 now;
  gboolean ok;

  if ((v2) != (s->info.version >= 2)) {
    g_set_error (error, HXFR_ERROR, HXFR_ERR_INVALID,
        "%s in a version %u session", hxfr_msg_type_name (msg->header.type),
        s->info.version);
    return FALSE;
  }
  if (msg->tail_size > 0 && (!v2 || r->status == HXFR_STATUS_OK)) {
    gsize size = msg->tail_size;

    a.data = g_malloc (size);
    ok = hxfr_conn_read_exact (s->conn, a.data, size, s->timeout_us,
        s->cancellable, error);
    if (ok && !v2)
      ok = hxfr_nal_list_unpack (a.data, size, r->nal_count, &size, error);
    if (!ok) {
      g_free (a.data);
      return FALSE;
    }
    a.size = size;
    if (size == 0)
      g_clear_pointer (&a.data, g_free);
  }

  f = pop_answered (s, v2, r->seq, error);
  if (!f) {
    g_free (a.data);
    return FALSE;
  }
  a.seq = f->seq;
  a.status = v2 ? r->status : HXFR_STATUS_OK;
  a.keyframe = r->keyframe;
  now = g_get_monotonic_time ();
  a.rtt_us = now - f->sent_us;
  a.host_us = v2 ? (gint64) r->host_time_us : -1;
  /* a dropped or failed frame was not encoded: its host time says
   * nothing of the encoder's */
  if (s->adaptive && a.status == HXFR_STATUS_OK) {
    g_mutex_lock (&s->lock);
    g_atomic_int_set (&s->window, hxfr_window_update (&s->estimates, now,
            a.rtt_us, a.host_us));
    g_mutex_unlock (&s->lock);
  }
  a.error_code = r->error_code;
  a.text = msg->text;
  ok = s->callbacks.answer (s, &a, f->tag, s->user_data, error);
  g_free (f);
  return ok;
}

/* ERROR: in v1 one answers the oldest request (the session goes on; a host
 * that ends it closes the connection next); anything else ends it. */
static gboolean
handle_error (HxfrGuestSession * s, HxfrMessage * msg, GError ** error)
{
  HxfrErrorMsg *e = &msg->u.error;
  InFlight *f = NULL;
  gboolean ok;

  if (s->info.version < 2) {
    g_mutex_lock (&s->lock);
    f = g_queue_pop_head (&s->in_flight);
    g_mutex_unlock (&s->lock);
  }
  if (!f) {
    g_set_error (error, HXFR_ERROR, e->code, "host error %d (%s): %s",
        e->code, hxfr_error_code_name (e->code), e->message);
    return FALSE;
  }
  {
    HxfrGuestAnswer a = { 0, };

    a.seq = f->seq;
    a.status = HXFR_STATUS_FAILED;
    a.v1_error = TRUE;
    a.rtt_us = g_get_monotonic_time () - f->sent_us;
    a.host_us = -1;
    a.error_code = e->code;
    a.text = e->message;
    ok = s->callbacks.answer (s, &a, f->tag, s->user_data, error);
  }
  g_free (f);
  return ok;
}

/* Waits for the next message, bounded by the oldest request's deadline
 * (newer ones end later). FALSE with @error on a timeout or a failure;
 * *@stop set when the session was closed meanwhile. */
static gboolean
wait_next (HxfrGuestSession * s, gboolean * stop, GError ** error)
{
  InFlight *oldest;
  gint64 wait_us;
  guint32 oldest_seq = 0;
  gboolean busy;
  GError *err = NULL;

  while (TRUE) {
    g_mutex_lock (&s->lock);
    *stop = s->closed;
    oldest = g_queue_peek_head (&s->in_flight);
    busy = oldest != NULL;
    if (busy) {
      wait_us = MAX (oldest->deadline_us - g_get_monotonic_time (), 0);
      oldest_seq = oldest->seq;
    } else {
      wait_us = IDLE_WAIT_US;
    }
    g_mutex_unlock (&s->lock);
    if (*stop)
      return FALSE;

    if (hxfr_conn_wait_readable (s->conn, wait_us, s->cancellable, &err))
      return TRUE;
    if (!g_error_matches (err, G_IO_ERROR, G_IO_ERROR_TIMED_OUT)) {
      g_propagate_error (error, err);
      return FALSE;
    }
    g_clear_error (&err);
    if (busy) {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_TIMED_OUT,
          "no answer to frame %u within %" G_GINT64_FORMAT " ms",
          oldest_seq, s->timeout_us / 1000);
      return FALSE;
    }
  }
}

static gpointer
reader_thread (gpointer data)
{
  HxfrGuestSession *s = data;
  HxfrLimits limits;
  HxfrMessage msg;
  GError *err = NULL;
  const gchar *what = "reading";
  gboolean ok = TRUE, stop = FALSE;

  hxfr_limits_init_default (&limits);
  while (ok) {
    what = "reading";
    if (!wait_next (s, &stop, &err)) {
      if (g_error_matches (err, G_IO_ERROR, G_IO_ERROR_TIMED_OUT))
        what = "timeout";
      break;
    }
    if (!hxfr_conn_receive (s->conn, HXFR_ROLE_GUEST, &limits, &msg,
            s->timeout_us, s->timeout_us, s->cancellable, &err)) {
      what = "bad answer";
      break;
    }
    what = "bad answer";
    switch (msg.header.type) {
      case HXFR_MSG_FRAME_RESPONSE:
      case HXFR_MSG_FRAME_RESPONSE2:
        ok = handle_response (s, &msg, &err);
        break;
      case HXFR_MSG_ERROR:
        what = "host error";
        ok = handle_error (s, &msg, &err);
        break;
      case HXFR_MSG_PING:
        ok = send_pong (s, s->timeout_us, &err);
        break;
      case HXFR_MSG_PONG:
      case HXFR_MSG_CONFIG_RESP:
        break;
      default:
        g_set_error (&err, HXFR_ERROR, HXFR_ERR_INVALID,
            "unexpected %s", hxfr_msg_type_name (msg.header.type));
        ok = FALSE;
        break;
    }
  }

  if (!stop) {
    g_mutex_lock (&s->lock);
    g_queue_clear_full (&s->in_flight, g_free);
    g_mutex_unlock (&s->lock);
    s->callbacks.lost (s, what, err, s->user_data);
  }
  g_clear_error (&err);
  hxfr_guest_session_unref (s);
  return NULL;
}

void
hxfr_guest_session_start (HxfrGuestSession * s,
    const HxfrGuestCallbacks * callbacks, gpointer user_data)
{
  g_return_if_fail (!s->reader);

  s->callbacks = *callbacks;
  s->user_data = user_data;
  s->reader = g_thread_new ("vsockenc-reader", reader_thread,
      hxfr_guest_session_ref (s));
}

void
hxfr_guest_session_shutdown (HxfrGuestSession * s)
{
  g_mutex_lock (&s->lock);
  s->closed = TRUE;
  g_mutex_unlock (&s->lock);
  hxfr_conn_shutdown (s->conn);
}

void
hxfr_guest_session_stop (HxfrGuestSession * s)
{
  hxfr_guest_session_shutdown (s);
  if (s->reader) {
    g_thread_join (s->reader);
    s->reader = NULL;
  }
}

/* Back-off */

void
hxfr_backoff_reset (HxfrBackoff * b)
{
  b->ms = 0;
  b->next_us = 0;
}

gboolean
hxfr_backoff_due (const HxfrBackoff * b, gint64 now_us)
{
  return now_us >= b->next_us;
}

guint
hxfr_backoff_failed (HxfrBackoff * b, gint64 now_us)
{
  b->ms = CLAMP (b->ms * 2, HXFR_BACKOFF_MIN_MS, HXFR_BACKOFF_MAX_MS);
  b->next_us = now_us + (gint64) b->ms * G_TIME_SPAN_MILLISECOND;
  return b->ms;
}
