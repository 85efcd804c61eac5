/* Scanout subscriptions, the client side: one connection, read on the
 * session's thread, written by a writer thread of its own from a bounded
 * queue, so that a subscriber that does not read never holds the encoder
 * or the other subscribers. Deployed clients (helix's desktop-bridge and
 * helix-drm-manager) and v2 subscribers (docs/protocol.md section 11).
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "bridge-scanout-private.h"
#include "bridge-subscriber.h"

#include <string.h>

/* A deployed pushed frame's pts: the frame counter at 60 fps, as deployed */
#define DEPLOYED_PTS_STEP 16666667
/* Payloads of message types a deployed client may send that we do not
 * serve are read and dropped up to this size (the deployed host drains any
 * below 64 MiB: nothing sends such messages on a scanout connection) */
#define MAX_SKIPPED_PAYLOAD (64 * 1024)
/* Control answers (PONG, SCANOUT_RESP) queued and not yet taken: at this
 * many the client's next message is not read until the writer has sent
 * one (it sends faster than it reads), for at most the write timeout */
#define MAX_QUEUED_CONTROL 64
/* A connection that has not subscribed may stay silent this long (a
 * subscribed one for ever: deployed subscribers send nothing more) */
#define UNSUBSCRIBED_IDLE_US (60 * G_USEC_PER_SEC)
/* Answers still queued when the connection ends: sent within this */
#define END_FLUSH_US (2 * G_USEC_PER_SEC)
/* A frame that waited this long in a subscriber's queue is not sent: the
 * subscriber skips to the next IDR (docs/protocol.md 11.3) */
#define MAX_QUEUE_WAIT_US (100 * 1000)
/* The socket's send buffer: about two frames at the stream's bitrate at
 * 60 Hz, within these bounds, so that frames a slow reader cannot take
 * wait in our queue, where they can be skipped, not in the kernel's */
/* Cursor messages to one subscriber: at most one image and one position
 * before each frame sent to it, or per this when none is (a pointer moved
 * over a static screen); the latest is never lost */
#define CURSOR_INTERVAL_US (8 * 1000)
#define MIN_SEND_BUFFER (16 * 1024)
#define MAX_SEND_BUFFER (512 * 1024)

typedef struct
{
  guint8 type;
  guint16 session_id;
  guint8 fixed[HXFR_ERROR_SIZE];
  gsize fixed_len;
  EncodedFrame *frame;          /* its access unit follows, or NULL */
  gint64 t_queued;
  HxfrScanoutFrame sf;          /* v2 frames: written into fixed when sent,
                                 * with the seq of what was sent */
} Outgoing;

static void
outgoing_free (Outgoing * o)
{
  if (o->frame)
    bridge_encoded_frame_unref (o->frame);
  g_free (o);
}

/* A log line about @sub: rate-limited while it has not presented a token
 * (docs/security.md) */
/* *INDENT-OFF* */ /* indent cannot parse G_GNUC_PRINTF */
static void
subscriber_log (Subscriber * sub, const gchar * format, ...) G_GNUC_PRINTF (2, 3);
/* *INDENT-ON* */

static void
subscriber_log (Subscriber * sub, const gchar * format, ...)
{
  const BridgeScanoutConfig *cfg = bridge_vm_config (sub->vm);
  va_list args;
  gchar *line;

  va_start (args, format);
  line = g_strdup_vprintf (format, args);
  va_end (args);
  if (sub->proven || !cfg->log_unproven)
    cfg->log ("%s", line);
  else
    cfg->log_unproven (sub->peer, line);
  g_free (line);
}

/* Writer */

static void
set_end_reason (Subscriber * sub, gchar * reason)
{
  if (!sub->end_reason)
    sub->end_reason = reason;
  else
    g_free (reason);
}

static gboolean
send_one (Subscriber * sub, Outgoing * o, GError ** error)
{
  const BridgeScanoutConfig *cfg = bridge_vm_config (sub->vm);
  GOutputVector tail;
  gsize size = 0;

  if (o->frame) {
    tail.buffer = g_bytes_get_data (o->frame->au, &size);
    tail.size = size;
  }
  /* a reader slower than the stream is skipped, not cut off: only one
   * that takes no bytes for the write timeout is */
  return hxfr_conn_send_to_slow_reader (sub->conn, o->type, 0,
      o->session_id, o->fixed, o->fixed_len, o->frame ? &tail : NULL,
      o->frame ? 1 : 0, cfg->write_timeout_us, NULL, error);
}

/* Subscriber.lock held */
static void
drop_link (Subscriber * sub, GList * l)
{
  Outgoing *o = l->data;

  g_queue_delete_link (&sub->out, l);
  if (o->frame) {
    sub->out_frames--;
    sub->frames_dropped++;
  }
  outgoing_free (o);
}

/* Subscriber.lock held: what follows starts after a gap */
static void
drop_queued_frames (Subscriber * sub)
{
  GList *l = sub->out.head;

  while (l) {
    GList *next = l->next;

    if (((Outgoing *) l->data)->frame)
      drop_link (sub, l);
    l = next;
  }
  sub->discont = TRUE;
}

/* Subscriber.lock held. Frames that waited too long are not sent: the
 * queue resumes at the next IDR in it, or the subscriber waits for one
 * (asked for by the next offer). So a frame's first byte leaves at most
 * MAX_QUEUE_WAIT_US after it was encoded, however slowly the peer reads. */
static void
skip_stale_frames (Subscriber * sub)
{
  gint64 now = g_get_monotonic_time ();
  GList *l = sub->out.head;
  gboolean skipping = FALSE;

  while (l) {
    GList *next = l->next;
    Outgoing *o = l->data;

    if (o->frame && !skipping && now - o->t_queued > MAX_QUEUE_WAIT_US)
      skipping = TRUE;
    if (skipping && o->frame) {
      if (o->frame->keyframe && now - o->t_queued <= MAX_QUEUE_WAIT_US) {
        /* resumes here */
        o->sf.frame_flags |= HXFR_SCANOUT_FRAME_DISCONT;
        return;
      }
      drop_link (sub, l);
    }
    l = next;
  }
  if (skipping) {
    sub->waiting_idr = TRUE;
    sub->idr_owed = TRUE;
    sub->discont = TRUE;
  }
}

/* Subscriber.lock held: a cursor message is to be sent now (before the
 * frame at the head of the queue, or CURSOR_INTERVAL_US after the last
 * one); else *@until is when one will be (0: none pending). */
static gboolean
cursor_due (Subscriber * sub, gint64 * until)
{
  Outgoing *head = g_queue_peek_head (&sub->out);

  *until = 0;
  if (!sub->cursor_on || sub->closing || !(sub->cursor_pixels
          || sub->cursor_pos_pending))
    return FALSE;
  if ((head && head->frame) || g_get_monotonic_time () >=
      sub->t_cursor_sent + CURSOR_INTERVAL_US)
    return TRUE;
  *until = sub->t_cursor_sent + CURSOR_INTERVAL_US;
  return FALSE;
}

/* Subscriber.lock held, released while sending: the pending image, then
 * the pending position. */
static gboolean
send_cursor (Subscriber * sub, GError ** error)
{
  const BridgeScanoutConfig *cfg = bridge_vm_config (sub->vm);
  GBytes *pixels = g_steal_pointer (&sub->cursor_pixels);
  HxfrCursorImage image = sub->cursor_image;
  HxfrCursorPosition pos = sub->cursor_pos;
  gboolean moved = sub->cursor_pos_pending, ok = TRUE;
  guint8 fixed[HXFR_CURSOR_POSITION_SIZE];

  sub->cursor_pos_pending = FALSE;
  sub->t_cursor_sent = g_get_monotonic_time ();
  g_mutex_unlock (&sub->lock);
  if (pixels) {
    GOutputVector tail;
    gsize size;

    tail.buffer = g_bytes_get_data (pixels, &size);
    tail.size = size;
    hxfr_cursor_image_write (&image, fixed);
    ok = hxfr_conn_send_to_slow_reader (sub->conn, HXFR_MSG_CURSOR_IMAGE, 0,
        sub->session_id, fixed, HXFR_CURSOR_IMAGE_SIZE, &tail, 1,
        cfg->write_timeout_us, NULL, error);
    g_bytes_unref (pixels);
  }
  if (ok && moved) {
    hxfr_cursor_position_write (&pos, fixed);
    ok = hxfr_conn_send_to_slow_reader (sub->conn, HXFR_MSG_CURSOR_POSITION,
        0, sub->session_id, fixed, HXFR_CURSOR_POSITION_SIZE, NULL, 0,
        cfg->write_timeout_us, NULL, error);
  }
  g_mutex_lock (&sub->lock);
  sub->cursor_images_sent += ok && pixels;
  sub->cursor_positions_sent += ok && moved;
  return ok;
}

/* Subscriber.lock held: a send failed; the writer ends */
static void
writer_failed (Subscriber * sub, GError * err)
{
  const BridgeScanoutConfig *cfg = bridge_vm_config (sub->vm);

  if (g_error_matches (err, G_IO_ERROR, G_IO_ERROR_TIMED_OUT))
    set_end_reason (sub, g_strdup_printf ("the subscriber took no "
            "bytes for %.0f s (it does not read its frames)",
            cfg->write_timeout_us / 1e6));
  else
    set_end_reason (sub, g_strdup_printf ("writing: %s", err->message));
  g_error_free (err);
}

static gpointer
writer_thread (gpointer data)
{
  Subscriber *sub = data;

  g_mutex_lock (&sub->lock);
  for (;;) {
    Outgoing *o;
    GError *err = NULL;
    gint64 until;

    skip_stale_frames (sub);
    while (!sub->out.length && !sub->closing && !cursor_due (sub, &until)) {
      if (until)
        g_cond_wait_until (&sub->cond, &sub->lock, until);
      else
        g_cond_wait (&sub->cond, &sub->lock);
    }
    if (cursor_due (sub, &until)) {
      if (!send_cursor (sub, &err)) {
        writer_failed (sub, err);
        break;
      }
      continue;
    }
    if (!(o = g_queue_pop_head (&sub->out)))
      break;
    if (o->frame)
      sub->out_frames--;
    if (o->frame && sub->v2) {
      o->sf.seq = sub->seq++;
      hxfr_scanout_frame_write (&o->sf, o->fixed);
    } else if (!o->frame) {
      /* room for another answer: the reader may wait for it */
      g_cond_broadcast (&sub->cond);
    }
    g_mutex_unlock (&sub->lock);
    if (!send_one (sub, o, &err)) {
      g_mutex_lock (&sub->lock);
      writer_failed (sub, err);
      outgoing_free (o);
      break;
    }
    g_mutex_lock (&sub->lock);
    /* the cursor comes after the answer, never before */
    if (o->type == HXFR_MSG_SUBSCRIBE2_ACK)
      sub->cursor_on = sub->cursor;
    outgoing_free (o);
  }
  sub->closing = TRUE;
  sub->writer_done = TRUE;
  g_queue_clear_full (&sub->out, (GDestroyNotify) outgoing_free);
  sub->out_frames = 0;
  g_cond_broadcast (&sub->cond);
  g_mutex_unlock (&sub->lock);
  /* wakes the reader, whichever side ended */
  hxfr_conn_shutdown (sub->conn);
  return NULL;
}

/* Subscriber.lock held */
static void
push_locked (Subscriber * sub, Outgoing * o)
{
  g_queue_push_tail (&sub->out, o);
  if (o->frame)
    sub->out_frames++;
  g_cond_broadcast (&sub->cond);
}

/* Queues a message without an access unit. FALSE: the client does not take
 * its answers (or the connection is ending). */
static gboolean
queue_message (Subscriber * sub, guint8 type, guint16 session_id,
    const guint8 * fixed, gsize fixed_len)
{
  Outgoing *o;
  gboolean ok;

  g_mutex_lock (&sub->lock);
  ok = !sub->closing && sub->out.length - sub->out_frames < MAX_QUEUED_CONTROL;
  if (ok) {
    o = g_new0 (Outgoing, 1);
    o->type = type;
    o->session_id = session_id;
    if (fixed_len)              /* PONG: none, and memcpy (NULL) is UB */
      memcpy (o->fixed, fixed, fixed_len);
    o->fixed_len = fixed_len;
    push_locked (sub, o);
  }
  g_mutex_unlock (&sub->lock);
  return ok;
}

/* Before each message is read: room for its answer. Only the reader
 * queues answers, so the room is still there when it answers. FALSE: the
 * client took none of its answers for the write timeout. */
static gboolean
wait_for_answer_room (Subscriber * sub)
{
  const BridgeScanoutConfig *cfg = bridge_vm_config (sub->vm);
  gint64 deadline = g_get_monotonic_time () + cfg->write_timeout_us;
  gboolean room;

  g_mutex_lock (&sub->lock);
  while (!(room = sub->out.length - sub->out_frames < MAX_QUEUED_CONTROL)
      && !sub->closing)
    if (!g_cond_wait_until (&sub->cond, &sub->lock, deadline))
      break;
  g_mutex_unlock (&sub->lock);
  return room;
}

/* Subscriber.lock held: @f as the message its dialect sends */
static Outgoing *
frame_message (Subscriber * sub, EncodedFrame * f)
{
  Outgoing *o = g_new0 (Outgoing, 1);

  o->frame = bridge_encoded_frame_ref (f);
  o->t_queued = g_get_monotonic_time ();
  if (sub->v2) {
    HxfrScanoutFrame *sf = &o->sf;

    if (!sub->first_capture_ns)
      sub->first_capture_ns = f->capture_ns;
    sf->frame_flags = (f->keyframe ? HXFR_SCANOUT_FRAME_KEYFRAME : 0) |
        (f->repeat ? HXFR_SCANOUT_FRAME_REPEAT : 0) |
        (sub->discont ? HXFR_SCANOUT_FRAME_DISCONT : 0);
    sf->width = f->width;
    sf->height = f->height;
    sf->pts = f->capture_ns >= sub->first_capture_ns ?
        (gint64) (f->capture_ns - sub->first_capture_ns) : 0;
    sf->duration = -1;
    sf->capture_time = f->capture_ns;
    sf->encode_us = f->encode_us;
    o->type = HXFR_MSG_SCANOUT_FRAME;
    o->session_id = sub->session_id;
    o->fixed_len = HXFR_SCANOUT_FRAME_SIZE;
  } else {
    /* as deployed: session_id is the scanout id, pts the frame counter */
    o->type = HXFR_MSG_FRAME_RESPONSE;
    o->session_id = (guint16) sub->scanout_index;
    o->fixed_len = hxfr_pushed_frame_write ((gint64) sub->deployed_frame *
        DEPLOYED_PTS_STEP, f->keyframe, g_bytes_get_size (f->au), o->fixed);
  }
  return o;
}

void
bridge_subscriber_start (Subscriber * sub, gboolean same_stream)
{
  g_mutex_lock (&sub->lock);
  sub->waiting_idr = TRUE;
  sub->idr_owed = FALSE;
  if (!same_stream)
    sub->first_capture_ns = 0;
  g_mutex_unlock (&sub->lock);
}

BridgeSubscriberOffer
bridge_subscriber_offer_frame (Subscriber * sub, EncodedFrame * f)
{
  const BridgeScanoutConfig *cfg = bridge_vm_config (sub->vm);
  BridgeSubscriberOffer result = BRIDGE_SUBSCRIBER_QUEUED;

  g_mutex_lock (&sub->lock);
  sub->deployed_frame = sub->deployed_frame ? sub->deployed_frame + 1 :
      f->index;
  if (sub->closing) {
    result = BRIDGE_SUBSCRIBER_SKIPPED;
  } else if (f->keyframe) {
    /* queued, whatever it waited for; in a full queue it replaces every
     * frame, which are older and which nothing after it needs */
    if (sub->out_frames >= cfg->queue_frames)
      drop_queued_frames (sub);
  } else if (sub->waiting_idr) {
    sub->frames_skipped++;
    result = BRIDGE_SUBSCRIBER_SKIPPED;
  } else if (sub->out_frames >= cfg->queue_frames) {
    /* it cannot keep up: nothing more until an IDR */
    sub->frames_dropped++;
    sub->waiting_idr = TRUE;
    sub->discont = TRUE;
    result = BRIDGE_SUBSCRIBER_NEEDS_IDR;
  }
  if (result == BRIDGE_SUBSCRIBER_QUEUED) {
    sub->waiting_idr = FALSE;
    push_locked (sub, frame_message (sub, f));
    sub->discont = FALSE;
    sub->frames_sent++;
  }
  if (sub->idr_owed && result != BRIDGE_SUBSCRIBER_QUEUED)
    result = BRIDGE_SUBSCRIBER_NEEDS_IDR;
  if (result == BRIDGE_SUBSCRIBER_NEEDS_IDR || f->keyframe)
    sub->idr_owed = FALSE;
  g_mutex_unlock (&sub->lock);
  return result;
}

void
bridge_subscriber_offer_cursor (Subscriber * sub, GBytes * pixels,
    const HxfrCursorImage * image, const HxfrCursorPosition * pos)
{
  g_mutex_lock (&sub->lock);
  if (sub->cursor && !sub->closing) {
    if (pixels) {
      g_clear_pointer (&sub->cursor_pixels, g_bytes_unref);
      sub->cursor_pixels = g_bytes_ref (pixels);
      sub->cursor_image = *image;
    }
    if (pos) {
      sub->cursor_pos_pending = TRUE;
      sub->cursor_pos = *pos;
    }
    g_cond_broadcast (&sub->cond);
  }
  g_mutex_unlock (&sub->lock);
}

void
bridge_subscriber_end (Subscriber * sub, guint32 reason, const gchar * text)
{
  g_mutex_lock (&sub->lock);
  if (!sub->closing) {
    /* frames not sent yet are dropped; the end itself is sent */
    GList *l = sub->out.head;

    while (l) {
      GList *next = l->next;
      Outgoing *o = l->data;

      if (o->frame) {
        g_queue_delete_link (&sub->out, l);
        outgoing_free (o);
      }
      l = next;
    }
    sub->out_frames = 0;
    if (sub->v2) {
      Outgoing *o = g_new0 (Outgoing, 1);

      o->type = HXFR_MSG_SCANOUT_END;
      o->session_id = sub->session_id;
      o->fixed_len = hxfr_scanout_end_write (reason, text, o->fixed);
      g_queue_push_tail (&sub->out, o);
    }
    set_end_reason (sub, g_strdup (text));
    sub->closing = TRUE;
    g_cond_broadcast (&sub->cond);
  }
  g_mutex_unlock (&sub->lock);
}

/* Reader: one message at a time, on the session thread */

typedef struct
{
  Subscriber *sub;
  GCancellable *cancellable;
  gboolean deployed_ok;
  GBytes *payload;              /* the message being handled's, or NULL */
  gchar *reason;                /* set: the connection ends */
} Reader;

/* The message's payload into @buf, if it is exactly @size bytes (deployed
 * QEMU reads fixed sizes: any other size would put it out of step). */
static gboolean
read_payload (Reader * r, const HxfrHeader * h, guint8 * buf, gsize size,
    const gchar * what)
{
  if (h->payload_size != size) {
    r->reason = g_strdup_printf ("%s with a %u-byte payload (it is %"
        G_GSIZE_FORMAT ")", what, h->payload_size, size);
    return FALSE;
  }
  if (size)
    memcpy (buf, g_bytes_get_data (r->payload, NULL), size);
  return TRUE;
}

static void
send_error_and_end (Reader * r, gint32 code, const gchar * text)
{
  guint8 out[HXFR_ERROR_SIZE];
  gsize len = hxfr_error_write (code, text, out);

  queue_message (r->sub, HXFR_MSG_ERROR, r->sub->session_id, out, len);
  if (!r->reason)
    r->reason = g_strdup (text);
}

/* About two frames at @bitrate (bit/s) at 60 Hz */
static void
size_send_buffer (Subscriber * sub, guint32 bitrate)
{
  hxfr_conn_set_send_buffer (sub->conn, CLAMP (bitrate / 8 / 30,
          MIN_SEND_BUFFER, MAX_SEND_BUFFER), NULL);
}

/* Under the VM's lock (bridge_vm_subscribe): the answer before any frame */
static gboolean
queue_subscription_answer (Subscriber * sub, const BridgeSubscription * s,
    gboolean ok)
{
  guint8 out[HXFR_SUBSCRIBE2_ACK_SIZE];

  if (s->v2 && ok) {
    HxfrSubscribe2Ack ack = { 2, s->codec, s->index, s->width, s->height };

    g_strlcpy (ack.encoder, s->encoder, sizeof (ack.encoder));
    ack.flags = (s->cursor ? HXFR_SUBSCRIBE2_CURSOR : 0) |
        (s->draw_cursor ? HXFR_SUBSCRIBE2_DRAW_CURSOR : 0);
    hxfr_subscribe2_ack_write (&ack, out);
    return queue_message (sub, HXFR_MSG_SUBSCRIBE2_ACK, sub->session_id, out,
        HXFR_SUBSCRIBE2_ACK_SIZE);
  }
  if (s->v2)                    /* refused: ERROR, by the reader */
    return TRUE;
  hxfr_subscribe_resp_write (s->index, ok, out);
  return queue_message (sub, HXFR_MSG_SUBSCRIBE_RESP, (guint16) s->index,
      out, HXFR_SUBSCRIBE_RESP_SIZE);
}

/* @s: what is asked (index, v2, codec, bitrate, max size) */
static void
handle_subscribe (Reader * r, BridgeSubscription s)
{
  Subscriber *sub = r->sub;
  guint32 index = s.index, bitrate = s.bitrate;
  gboolean v2 = s.v2, ok, queued;

  ok = bridge_vm_subscribe (sub, &s, queue_subscription_answer, &queued);
  if (ok)
    size_send_buffer (sub, bitrate ? bitrate :
        bridge_vm_config (sub->vm)->bitrate);
  subscriber_log (sub, "subscriber %u: %s scanout %u%s%s", sub->id,
      !ok ? "refused" : s.again ? "subscribed again to" : "subscribed to",
      index, ok ? "" : ": ", ok ? "" : s.text);
  if (v2 && !ok)
    send_error_and_end (r, s.code, s.text);
  else if (!queued)
    r->reason = g_strdup ("the subscriber does not read");
  g_free (s.text);
}

/* ENABLE_SCANOUT / DISABLE_SCANOUT: a connector hotplug in the guest */
static void
handle_hotplug (Reader * r, const HxfrHeader * h, guint32 index,
    gboolean enable, guint32 width, guint32 height, guint32 refresh)
{
  Subscriber *sub = r->sub;
  const BridgeScanoutConfig *cfg = bridge_vm_config (sub->vm);
  guint8 out[HXFR_SCANOUT_RESP_SIZE];
  GError *err = NULL;
  gboolean ok;

  if (enable && (width == 0 || height == 0 || width > cfg->max_width
          || height > cfg->max_height || (width | height) & 1)) {
    ok = FALSE;
    subscriber_log (sub, "subscriber %u: ENABLE_SCANOUT %u at %ux%u refused "
        "(1..%ux%u, even sizes)", sub->id, index, width, height, cfg->max_width,
        cfg->max_height);
  } else {
    ok = bridge_vm_set_enabled (sub->vm, index, enable, width, height,
        refresh, &err);
    subscriber_log (sub, "subscriber %u: %s scanout %u%s%s", sub->id,
        enable ? "enable" : "disable", index, ok ? "" : ": ",
        ok ? "" : err->message);
    g_clear_error (&err);
  }
  /* deployed QEMU answers ENABLE only; helix-drm-manager also waits for an
   * answer to DISABLE (10 s), which is safe to give on a connection that
   * has not subscribed */
  if (!enable && bridge_vm_is_subscribed (sub))
    return;
  hxfr_scanout_resp_write (index, ok, out);
  if (!queue_message (sub, HXFR_MSG_SCANOUT_RESP, h->session_id, out,
          sizeof (out)))
    r->reason = g_strdup ("the client does not read its answers");
}

/* KEYFRAME_REQ and PING, the same in both dialects. TRUE if @h was one. */
static gboolean
handle_common (Reader * r, const HxfrHeader * h)
{
  Subscriber *sub = r->sub;

  switch (h->type) {
    case HXFR_MSG_KEYFRAME_REQ:
      /* deployed QEMU ignores it; we honour it (rate-limited, not lost) */
      if (read_payload (r, h, NULL, 0, "KEYFRAME_REQ")) {
        bridge_vm_request_idr (sub);
      }
      return TRUE;
    case HXFR_MSG_PING:
      if (read_payload (r, h, NULL, 0, "PING")
          && !queue_message (sub, HXFR_MSG_PONG, h->session_id, NULL, 0))
        r->reason = g_strdup ("the client sends PINGs and reads no PONGs");
      return TRUE;
    default:
      return FALSE;
  }
}

static void
handle_deployed (Reader * r, const HxfrHeader * h)
{
  Subscriber *sub = r->sub;
  guint8 buf[HXFR_CONFIG_REQ_SIZE];
  guint32 index;
  HxfrEnableScanout en;
  HxfrConfig config;
  GError *err = NULL;

  if (handle_common (r, h))
    return;
  switch (h->type) {
    case HXFR_MSG_SUBSCRIBE:
      if (read_payload (r, h, buf, HXFR_SUBSCRIBE_SIZE, "SUBSCRIBE")) {
        hxfr_subscribe_parse (buf, HXFR_SUBSCRIBE_SIZE, &index, NULL);
        handle_subscribe (r, (BridgeSubscription) {
            .index = index,.codec = HXFR_CODEC_H264}
        );
      }
      break;
    case HXFR_MSG_ENABLE_SCANOUT:
      if (read_payload (r, h, buf, HXFR_ENABLE_SCANOUT_SIZE, "ENABLE_SCANOUT")) {
        hxfr_enable_scanout_parse (buf, HXFR_ENABLE_SCANOUT_SIZE, &en, NULL);
        handle_hotplug (r, h, en.scanout_id, TRUE, en.width, en.height,
            en.refresh);
      }
      break;
    case HXFR_MSG_DISABLE_SCANOUT:
      if (read_payload (r, h, buf, HXFR_DISABLE_SCANOUT_SIZE,
              "DISABLE_SCANOUT")) {
        hxfr_disable_scanout_parse (buf, HXFR_DISABLE_SCANOUT_SIZE, &index,
            NULL);
        handle_hotplug (r, h, index, FALSE, 0, 0, 0);
      }
      break;
    case HXFR_MSG_CONFIG_REQ:
      if (!read_payload (r, h, buf, HXFR_CONFIG_REQ_SIZE, "CONFIG_REQ")
          || !hxfr_config_parse (buf, HXFR_CONFIG_REQ_SIZE, &config, &err))
        break;
      /* no answer, as deployed; applied before the next frame, so a flood
       * costs nothing but the reading */
      if (config.bitrate)
        bridge_vm_set_bitrate (sub, config.bitrate);
      break;
    default:
      /* read whole (at most MAX_SKIPPED_PAYLOAD) and ignored */
      break;
  }
  if (err && !r->reason)
    r->reason = g_strdup (err->message);
  g_clear_error (&err);
}

static void
handle_subscribe2 (Reader * r, const HxfrHeader * h)
{
  const BridgeScanoutConfig *cfg = bridge_vm_config (r->sub->vm);
  guint8 buf[HXFR_SUBSCRIBE2_SIZE + HXFR_MAX_TOKEN];
  HxfrSubscribe2 s;
  GError *err = NULL;

  if (h->payload_size < HXFR_SUBSCRIBE2_SIZE || h->payload_size > sizeof (buf)) {
    send_error_and_end (r, HXFR_ERR_INVALID, "SUBSCRIBE2 payload size out "
        "of range");
    return;
  }
  if (!read_payload (r, h, buf, h->payload_size, "SUBSCRIBE2"))
    return;
  if (!hxfr_subscribe2_parse (buf, h->payload_size, &s, &err)) {
    send_error_and_end (r, HXFR_ERR_INVALID, err->message);
    g_error_free (err);
    return;
  }
  if (s.min_version > 2 || s.max_version < 2) {
    send_error_and_end (r, HXFR_ERR_UNSUPPORTED, "this host speaks "
        "subscription version 2 only");
  } else if (cfg->token && !hxfr_token_equal (g_bytes_get_data (cfg->token,
              NULL), g_bytes_get_size (cfg->token), buf +
          HXFR_SUBSCRIBE2_SIZE, s.token_len)) {
    send_error_and_end (r, HXFR_ERR_UNAUTHORIZED, "missing or wrong token");
  } else {
    r->sub->proven = cfg->token != NULL;
    handle_subscribe (r, (BridgeSubscription) {
        .index = s.scanout_id,.v2 = TRUE,.codec = s.codec,.bitrate =
          s.bitrate,.max_width = s.max_width,.max_height =
          s.max_height,.cursor =
          (s.flags & HXFR_SUBSCRIBE2_CURSOR) != 0,.draw_cursor =
          (s.flags & HXFR_SUBSCRIBE2_DRAW_CURSOR) != 0}
    );
  }
}

static void
handle_v2 (Reader * r, const HxfrHeader * h, gboolean first)
{
  Subscriber *sub = r->sub;
  guint8 buf[HXFR_CONTROL_SIZE];
  HxfrControl c;
  GError *err = NULL;

  if (first) {
    handle_subscribe2 (r, h);
    return;
  }
  if (handle_common (r, h))
    return;
  switch (h->type) {
    case HXFR_MSG_CONTROL:
      if (!read_payload (r, h, buf, HXFR_CONTROL_SIZE, "CONTROL"))
        break;
      if (!hxfr_control_parse (buf, HXFR_CONTROL_SIZE, &c, &err)) {
        send_error_and_end (r, HXFR_ERR_INVALID, err->message);
        g_error_free (err);
        break;
      }
      if ((c.mask & HXFR_CONTROL_BITRATE) && c.bitrate)
        bridge_vm_set_bitrate (sub, c.bitrate);
      break;
    default:{
      gchar *text = g_strdup_printf ("%s (0x%02x) is not valid on a "
          "subscription", hxfr_msg_type_name (h->type), h->type);

      send_error_and_end (r, HXFR_ERR_INVALID, text);
      g_free (text);
      break;
    }
  }
}

/* Reads the next message whole. A subscribed connection may stay silent as
 * long as it lives (deployed subscribers never send again); it ends with
 * the client, the bridge, or its writer. From its first byte on (for the
 * first message: the first byte the session thread peeked), a message has
 * the idle timeout to arrive whole. */
static gboolean
read_next_message (Reader * r, HxfrHeader * h)
{
  const BridgeScanoutConfig *cfg = bridge_vm_config (r->sub->vm);
  gboolean subscribed, begun;
  GError *err = NULL;

  subscribed = bridge_vm_is_subscribed (r->sub);
  if (hxfr_conn_read_message (r->sub->conn, MAX_SKIPPED_PAYLOAD, subscribed ?
          -1 : UNSUBSCRIBED_IDLE_US, cfg->idle_timeout_us, h, &r->payload,
          &begun, r->cancellable, &err))
    return TRUE;

  if (g_error_matches (err, G_IO_ERROR, G_IO_ERROR_CANCELLED))
    r->reason = g_strdup ("the bridge is stopping");
  else if (g_error_matches (err, G_IO_ERROR, G_IO_ERROR_TIMED_OUT) && begun)
    r->reason = g_strdup_printf ("a message begun was not whole within "
        "%.1f s", cfg->idle_timeout_us / 1e6);
  else if (g_error_matches (err, G_IO_ERROR, G_IO_ERROR_TIMED_OUT))
    r->reason = g_strdup ("silent, not subscribed");
  else if (g_error_matches (err, HXFR_ERROR, HXFR_ERR_LIMIT) && r->sub->v2)
    send_error_and_end (r, HXFR_ERR_INVALID, err->message);
  else if (g_error_matches (err, HXFR_ERROR, HXFR_ERR_LIMIT))
    r->reason = g_strdup_printf ("%s (0x%02x) with a %u-byte payload on a "
        "scanout connection (at most %u)", hxfr_msg_type_name (h->type),
        h->type, h->payload_size, MAX_SKIPPED_PAYLOAD);
  else
    r->reason = g_strdup (err->message);
  g_error_free (err);
  return FALSE;
}

static Subscriber *
subscriber_new (BridgeVm * vm, HxfrConn * conn, guint id,
    const HxfrHeader * first)
{
  Subscriber *sub = g_new0 (Subscriber, 1);

  sub->vm = vm;
  sub->id = id;
  sub->conn = hxfr_conn_ref (conn);
  sub->peer = hxfr_conn_get_peer_identity (conn);
  sub->v2 = first->type == HXFR_MSG_SUBSCRIBE2;
  sub->session_id = first->session_id;
  g_mutex_init (&sub->lock);
  g_cond_init (&sub->cond);
  g_queue_init (&sub->out);
  sub->writer = g_thread_new ("hx-subscriber", writer_thread, sub);
  return sub;
}

/* Ends the writer: what is queued goes out within END_FLUSH_US, then the
 * connection is closed. Returns why the subscription ended. */
static gchar *
subscriber_finish (Subscriber * sub, gchar * reader_reason)
{
  g_autofree gchar *cursor = NULL;
  gchar *reason;
  gint64 deadline;

  bridge_vm_unsubscribe (sub);

  g_mutex_lock (&sub->lock);
  if (!sub->closing) {
    set_end_reason (sub, reader_reason);
    reader_reason = NULL;
    sub->closing = TRUE;
    g_cond_broadcast (&sub->cond);
  }
  /* what is queued (an ERROR, SCANOUT_END) goes out, within less than a
   * frame's write bound: a peer that does not read is cut off */
  deadline = g_get_monotonic_time () + END_FLUSH_US;
  while (!sub->writer_done)
    if (!g_cond_wait_until (&sub->cond, &sub->lock, deadline))
      break;
  g_mutex_unlock (&sub->lock);
  g_free (reader_reason);
  hxfr_conn_shutdown (sub->conn);
  g_thread_join (sub->writer);

  cursor = sub->cursor ? g_strdup_printf ("; cursor images %" G_GUINT64_FORMAT
      ", positions %" G_GUINT64_FORMAT, sub->cursor_images_sent,
      sub->cursor_positions_sent) : g_strdup ("");
  reason = g_strdup_printf ("%s (frames sent %" G_GUINT64_FORMAT ", skipped "
      "waiting for an IDR %" G_GUINT64_FORMAT ", dropped %" G_GUINT64_FORMAT
      "%s)", sub->end_reason ? sub->end_reason : "ended", sub->frames_sent,
      sub->frames_skipped, sub->frames_dropped, cursor);
  g_clear_pointer (&sub->cursor_pixels, g_bytes_unref);
  g_free (sub->end_reason);
  g_free (sub->peer);
  g_queue_clear_full (&sub->out, (GDestroyNotify) outgoing_free);
  hxfr_conn_unref (sub->conn);
  g_mutex_clear (&sub->lock);
  g_cond_clear (&sub->cond);
  g_free (sub);
  return reason;
}

gchar *
bridge_vm_serve (BridgeVm * vm, HxfrConn * conn, guint id,
    const HxfrHeader * first, gboolean deployed_ok, GCancellable * cancellable)
{
  Reader r = { 0, };
  HxfrHeader h;
  gboolean is_first = TRUE;

  bridge_vm_ensure_watching (vm);
  r.sub = subscriber_new (vm, conn, id, first);
  r.cancellable = cancellable;
  if (!r.sub->v2 && !deployed_ok) {
    /* helix-drm-manager shows an ERROR's text; desktop-bridge fails */
    send_error_and_end (&r, HXFR_ERR_UNAUTHORIZED, "deployed scanout "
        "clients (no token) are not accepted on this listener (add "
        "',deployed' to its --listen)");
  }
  while (!r.reason) {
    if (!wait_for_answer_room (r.sub)) {
      r.reason = g_strdup ("the client does not read its answers");
      break;
    }
    if (!read_next_message (&r, &h))
      break;
    if (r.sub->v2)
      handle_v2 (&r, &h, is_first);
    else
      handle_deployed (&r, &h);
    g_clear_pointer (&r.payload, g_bytes_unref);
    is_first = FALSE;
  }
  g_clear_pointer (&r.payload, g_bytes_unref);
  return subscriber_finish (r.sub, r.reason);
}
