/* vsockscanoutsrc: H.264 of a virtio-gpu scanout, encoded by the VM host
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
/**
 * SECTION:element-vsockscanoutsrc
 * @title: vsockscanoutsrc
 *
 * Subscribes to a virtio-gpu scanout of this VM that the host bridge
 * encodes on every page flip (an HXFR v2 scanout subscription over vsock,
 * TCP or a UNIX socket) and outputs the access units the host pushes:
 * no capture, conversion or encoder runs in the guest.
 *
 * Timestamps are the host's capture times of the flips, mapped onto the
 * running time: the first frame of a subscription is stamped with its
 * arrival, later ones with the capture-time distance from it. When the
 * host is lost the element reconnects with back-off (see
 * #GstVsockScanoutSrc:reconnect) and resumes with an IDR marked DISCONT.
 *
 * #GstVsockScanoutSrc:codec asks for H.264 (the default), H.265 or AV1:
 * the host runs one encoder per scanout and codec, shared by the
 * subscribers asking for the same, and refuses a codec it has no encoder
 * for (an error naming it). The caps are that codec's: byte-stream access
 * units for H.264 and H.265, an OBU stream of temporal units for AV1.
 *
 * The pointer: a compositor draws it on virtio-gpu's cursor plane, not
 * into the scanout, so the stream has none. With #GstVsockScanoutSrc:cursor
 * the element asks the host for it and posts it on the bus as element
 * messages (the application draws it, e.g. as an overlay):
 * "helix-cursor-image" (fields: scanout, sample: a #GstSample of one BGRA
 * buffer with caps video/x-raw,format=BGRA, straight alpha; hot-x, hot-y)
 * when the image changes, and "helix-cursor-position" (scanout, x, y: the
 * hotspot in scanout pixels, visible, host-time: CLOCK_MONOTONIC ns of
 * the move, running-time: that time on this pipeline's running time as
 * the frames are stamped, or none before the first frame) when it moves,
 * at most every 8 ms or once per frame; the current ones come right after
 * subscribing, also on a static screen (docs/scanout-source.md says why
 * messages, not a meta). With #GstVsockScanoutSrc:draw-cursor the host
 * draws the pointer into the frames instead, for a simple viewer:
 * |[
 * gst-launch-1.0 vsockscanoutsrc scanout=1 draw-cursor=true ! decodebin ! autovideosink
 * ]|
 *
 * Each buffer also carries the host's own times of its frame, in the
 * host's CLOCK_MONOTONIC (not the guest's clock), as two
 * #GstReferenceTimestampMeta: `timestamp/x-helix-host-flush`, when the
 * guest's flush of the scanout reached the host, and
 * `timestamp/x-helix-host-access-unit`, when the host's encoder had the
 * access unit. Their difference is the host's capture-to-encoded time.
 *
 * ## Example launch lines
 * |[
 * gst-launch-1.0 vsockscanoutsrc address=tcp:10.0.2.2:15937 scanout=1 ! h264parse ! appsink
 * ]|
 * |[
 * gst-launch-1.0 vsockscanoutsrc scanout=1 bitrate=8000000 ! h264parse ! avdec_h264 ! videoconvert ! autovideosink
 * ]|
 * |[
 * gst-launch-1.0 vsockscanoutsrc scanout=1 codec=h265 ! h265parse ! avdec_h265 ! videoconvert ! autovideosink
 * ]|
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <string.h>

#include <gst/gst.h>
#include <gst/base/gstpushsrc.h>
#include <gst/video/video.h>

#include "hxfr-transport.h"
#include "hxfr-scanout.h"

GST_DEBUG_CATEGORY_STATIC (gst_vsock_scanout_src_debug);
#define GST_CAT_DEFAULT gst_vsock_scanout_src_debug

#define DEFAULT_ADDRESS "vsock:2:5000"  /* vsockenc's default host */
#define DEFAULT_SCANOUT 1
#define DEFAULT_TOKEN NULL
#define DEFAULT_BITRATE 0
#define DEFAULT_TIMEOUT 5000
#define DEFAULT_RECONNECT TRUE
#define DEFAULT_MAX_BACKOFF 5000
#define DEFAULT_MAX_AU_SIZE HXFR_DEFAULT_MAX_ACCESS_UNIT
#define DEFAULT_CURSOR FALSE
#define DEFAULT_DRAW_CURSOR FALSE
/* the largest CURSOR_IMAGE payload */
#define MAX_CURSOR_IMAGE (HXFR_CURSOR_IMAGE_SIZE + \
    HXFR_CURSOR_MAX_SIZE * HXFR_CURSOR_MAX_SIZE * 4)
#define BACKOFF_MIN_MS 100
/* Jitter of the transport between the host's flip and our read: what a
 * sink must wait beyond the timestamps (they follow capture spacing from
 * the first frame's arrival, so later frames may arrive a little late). */
#define LATENCY (20 * GST_MSECOND)

static GstStaticPadTemplate src_template = GST_STATIC_PAD_TEMPLATE ("src",
    GST_PAD_SRC, GST_PAD_ALWAYS,
    GST_STATIC_CAPS ("video/x-h264, stream-format = (string) byte-stream, "
        "alignment = (string) au; "
        "video/x-h265, stream-format = (string) byte-stream, "
        "alignment = (string) au; "
        "video/x-av1, stream-format = (string) obu-stream, "
        "alignment = (string) tu"));

/* the host's times of a frame, on its buffers (reference timestamps) */
static GstStaticCaps host_flush_caps =
GST_STATIC_CAPS ("timestamp/x-helix-host-flush");
static GstStaticCaps host_au_caps =
GST_STATIC_CAPS ("timestamp/x-helix-host-access-unit");

/* The codec property: the stream the host is asked for. */
typedef enum
{
  CODEC_H264,
  CODEC_H265,
  CODEC_AV1,
} Codec;

static const struct
{
  guint32 fourcc;
  const gchar *name;
  const gchar *caps;
} codecs[] = {
  {HXFR_CODEC_H264, "H.264",
      "video/x-h264, stream-format=byte-stream, alignment=au"},
  {HXFR_CODEC_H265, "H.265",
      "video/x-h265, stream-format=byte-stream, alignment=au"},
  {HXFR_CODEC_AV1, "AV1",
      "video/x-av1, stream-format=obu-stream, alignment=tu"},
};

#define GST_TYPE_VSOCK_SCANOUT_SRC_CODEC (codec_get_type ())
static GType
codec_get_type (void)
{
  static GType type;
  static const GEnumValue values[] = {
    {CODEC_H264, "H.264", "h264"},
    {CODEC_H265, "H.265 (HEVC)", "h265"},
    {CODEC_AV1, "AV1", "av1"},
    {0, NULL, NULL},
  };

  if (g_once_init_enter (&type))
    g_once_init_leave (&type, g_enum_register_static
        ("GstVsockScanoutSrcCodec", values));
  return type;
}

/* How a failure ends the current subscription. */
typedef enum
{
  END_RETRY,                    /* reconnect after back-off (if enabled) */
  END_FATAL,                    /* post an error, no retry */
  END_FLUSHING,                 /* unlock(): state change or flush */
  END_ORDERLY,                  /* SCANOUT_END: EOS when not reconnecting */
} EndKind;

/* Errors of this element's own: a SCANOUT_END received, a host that broke
 * the protocol. */
#define SCANOUT_SRC_ERROR (scanout_src_error_quark ())
/* not G_DEFINE_QUARK: gst-indent spaces out its unquoted name */
static GQuark
scanout_src_error_quark (void)
{
  return g_quark_from_static_string ("vsockscanoutsrc-error");
}

enum
{
  SCANOUT_SRC_ERROR_END,        /* message: the host's reason and text */
  SCANOUT_SRC_ERROR_PROTOCOL,
};

struct _GstVsockScanoutSrc
{
  GstPushSrc parent;

  /* Properties: object lock */
  gchar *address_prop;
  guint scanout;
  Codec codec;
  gchar *token;
  guint bitrate;
  guint max_width, max_height;
  guint timeout_ms;
  gboolean reconnect;
  guint max_backoff_ms;
  guint max_au_size;
  gboolean cursor;
  gboolean draw_cursor;

  /* Streaming thread only (fixed between start and stop) */
  HxfrAddress *address;
  gchar *address_str;
  gint64 timeout_us;
  gboolean reconnect_mode;
  gboolean cursor_mode;         /* the cursor property */
  guint backoff_ms;
  gboolean need_discont;
  gboolean have_seq;
  guint32 last_seq;
  guint32 width, height;        /* of the caps set, 0 = none yet */
  gboolean anchored;            /* first_running/first_capture valid */
  GstClockTime first_running;
  guint64 first_capture;
  GstClockTime last_pts;
  gboolean pinged;              /* a PING is out, unanswered */
  gboolean subscribed_once;     /* since start(): later ones count */

  /* self->lock: the connection (other threads send on it), flushing, and
   * the statistics; self->cond is broadcast when flushing is set */
  GMutex lock;
  GCond cond;
  HxfrConn *conn;
  GCancellable *cancellable;
  gboolean flushing;
  gchar host_encoder[HXFR_ENCODER_NAME_SIZE];
  guint64 frames;
  guint64 keyframes;
  guint64 bytes;
  guint64 reconnects;
  guint64 host_dropped;         /* frames the seq numbers skipped */
  guint64 repeats;
  guint32 last_encode_us;
  guint64 keyframe_requests;
};

#define GST_TYPE_VSOCK_SCANOUT_SRC (gst_vsock_scanout_src_get_type ())
G_DECLARE_FINAL_TYPE (GstVsockScanoutSrc, gst_vsock_scanout_src, GST,
    VSOCK_SCANOUT_SRC, GstPushSrc);
G_DEFINE_TYPE (GstVsockScanoutSrc, gst_vsock_scanout_src, GST_TYPE_PUSH_SRC);
GST_ELEMENT_REGISTER_DECLARE (vsockscanoutsrc);
GST_ELEMENT_REGISTER_DEFINE (vsockscanoutsrc, "vsockscanoutsrc",
    GST_RANK_NONE, GST_TYPE_VSOCK_SCANOUT_SRC);

enum
{
  PROP_0,
  PROP_ADDRESS,
  PROP_SCANOUT,
  PROP_CODEC,
  PROP_TOKEN,
  PROP_BITRATE,
  PROP_MAX_WIDTH,
  PROP_MAX_HEIGHT,
  PROP_TIMEOUT,
  PROP_RECONNECT,
  PROP_MAX_BACKOFF,
  PROP_MAX_AU_SIZE,
  PROP_STATS,
  PROP_CURSOR,
  PROP_DRAW_CURSOR,
  N_PROPERTIES
};

static GParamSpec *properties[N_PROPERTIES];

/* Connection helpers */

static HxfrConn *
get_conn (GstVsockScanoutSrc * self)
{
  HxfrConn *conn;

  g_mutex_lock (&self->lock);
  conn = self->conn ? hxfr_conn_ref (self->conn) : NULL;
  g_mutex_unlock (&self->lock);
  return conn;
}

/* From any thread: a message without a tail, bounded by the timeout. A
 * failure only logs: the streaming thread notices a dead connection. */
static void
send_simple (GstVsockScanoutSrc * self, guint8 type, const void *fixed,
    gsize len)
{
  HxfrConn *conn = get_conn (self);
  GError *err = NULL;
  gint64 timeout_us;

  if (!conn)
    return;
  GST_OBJECT_LOCK (self);
  timeout_us = (gint64) self->timeout_ms * G_TIME_SPAN_MILLISECOND;
  GST_OBJECT_UNLOCK (self);
  if (!hxfr_conn_send (conn, type, 0, 0, fixed, len, NULL, 0, timeout_us,
          NULL, &err)) {
    GST_WARNING_OBJECT (self, "sending %s failed: %s",
        hxfr_msg_type_name (type), err->message);
    g_clear_error (&err);
  }
  hxfr_conn_unref (conn);
}

static void
send_bitrate (GstVsockScanoutSrc * self, guint bitrate)
{
  HxfrControl c = { 0, };
  guint8 fixed[HXFR_MAX_FIXED_SIZE];
  gsize len;

  c.mask = HXFR_CONTROL_BITRATE;
  c.bitrate = bitrate;
  len = hxfr_control_write (&c, fixed);
  send_simple (self, HXFR_MSG_CONTROL, fixed, len);
}

static void
drop_conn (GstVsockScanoutSrc * self)
{
  HxfrConn *conn;

  g_mutex_lock (&self->lock);
  conn = self->conn;
  self->conn = NULL;
  g_mutex_unlock (&self->lock);
  if (conn) {
    hxfr_conn_shutdown (conn);
    hxfr_conn_unref (conn);
  }
}

/* Classifies a failure of the subscription. */
static EndKind
end_kind (const GError * err)
{
  if (g_error_matches (err, G_IO_ERROR, G_IO_ERROR_CANCELLED))
    return END_FLUSHING;
  if (err->domain == SCANOUT_SRC_ERROR)
    return err->code == SCANOUT_SRC_ERROR_END ? END_ORDERLY : END_FATAL;
  if (err->domain == HXFR_ERROR) {
    /* the host's ERROR codes that may go away by themselves; the others
     * (unauthorized, unsupported, invalid, limit) would only repeat */
    switch (err->code) {
      case HXFR_ERR_NO_SCANOUT:
      case HXFR_ERR_TOO_MANY_SESSIONS:
      case HXFR_ERR_SHUTDOWN:
      case HXFR_ERR_TIMEOUT:
      case HXFR_ERR_INTERNAL:
      case HXFR_ERR_ENCODE_FAILED:
      case HXFR_ERR_NOT_CONFIGURED:
        return END_RETRY;
      default:
        return END_FATAL;
    }
  }
  /* transport: refused, closed, timed out, no socket file yet */
  return END_RETRY;
}

static gboolean
protocol_error (GError ** error, const gchar * what, const HxfrHeader * h)
{
  g_set_error (error, SCANOUT_SRC_ERROR, SCANOUT_SRC_ERROR_PROTOCOL,
      "the host broke the protocol: %s (message 0x%02x %s, %u bytes)", what,
      h->type, hxfr_msg_type_name (h->type), h->payload_size);
  return FALSE;
}

/* Reads the next message whole (lib/hxfr: one deadline from its first
 * byte), at most an access unit of max-au-size with its frame header.
 * @first_us bounds the wait for its first byte; *@begun says whether a
 * byte came. */
static gboolean
read_message (GstVsockScanoutSrc * self, HxfrConn * conn, HxfrHeader * h,
    GBytes ** payload, gint64 first_us, gboolean * begun, GError ** error)
{
  guint max_au;
  gsize max;

  GST_OBJECT_LOCK (self);
  max_au = self->max_au_size;
  max = (gsize) max_au + HXFR_SCANOUT_FRAME_SIZE;
  if (self->cursor)
    max = MAX (max, MAX_CURSOR_IMAGE);
  GST_OBJECT_UNLOCK (self);
  if (hxfr_conn_read_message (conn, max,
          first_us, self->timeout_us, h, payload, begun, self->cancellable,
          error))
    return TRUE;
  if (g_error_matches (*error, HXFR_ERROR, HXFR_ERR_LIMIT))
    g_prefix_error (error, "the host sent more than an access unit of "
        "max-au-size (%u bytes): ", max_au);
  return FALSE;
}

/* @payload's bytes if it is between @min and @max long, else NULL and a
 * protocol error naming @what */
static const guint8 *
payload_of (GBytes * payload, const HxfrHeader * h, gsize min, gsize max,
    const gchar * what, gsize * len, GError ** error)
{
  *len = h->payload_size;
  if (*len < min || *len > max) {
    protocol_error (error, what, h);
    return NULL;
  }
  return payload ? g_bytes_get_data (payload, NULL) : (const guint8 *) "";
}

/* The host's ERROR as a GError (domain HXFR_ERROR, the host's code). */
static void
set_host_error (const guint8 * fixed, gsize len, GError ** error)
{
  HxfrErrorMsg e;

  if (!hxfr_error_parse (fixed, len, &e, error))
    return;
  g_set_error (error, HXFR_ERROR, e.code, "the host answered ERROR %d (%s): "
      "%s", e.code, hxfr_error_code_name (e.code), e.message);
}

/* Subscribing */

/* @bitrate: set to the bitrate asked for */
static gboolean
send_subscribe (GstVsockScanoutSrc * self, HxfrConn * conn, gint64 deadline,
    guint * bitrate, GError ** error)
{
  HxfrSubscribe2 s = { 0, };
  guint8 fixed[HXFR_SUBSCRIBE2_SIZE + 8];
  GOutputVector tail;
  gchar *token;
  gsize len;
  gboolean ok;

  GST_OBJECT_LOCK (self);
  token = g_strdup (self->token);
  s.scanout_id = self->scanout;
  s.bitrate = self->bitrate;
  s.max_width = self->max_width;
  s.max_height = self->max_height;
  s.codec = codecs[self->codec].fourcc;
  s.flags = (self->cursor ? HXFR_SUBSCRIBE2_CURSOR : 0) |
      (self->draw_cursor ? HXFR_SUBSCRIBE2_DRAW_CURSOR : 0);
  GST_OBJECT_UNLOCK (self);
  *bitrate = s.bitrate;
  s.min_version = 2;
  s.max_version = 2;
  s.token_len = token ? MIN (strlen (token), HXFR_MAX_TOKEN) : 0;
  len = hxfr_subscribe2_write (&s, fixed);
  tail.buffer = token;
  tail.size = s.token_len;
  ok = hxfr_conn_send (conn, HXFR_MSG_SUBSCRIBE2, 0, 0, fixed, len, &tail,
      s.token_len ? 1 : 0, hxfr_deadline_left (deadline), self->cancellable,
      error);
  g_free (token);
  return ok;
}

static gboolean
check_ack (GstVsockScanoutSrc * self, const guint8 * fixed, gsize len,
    const HxfrHeader * h, GError ** error)
{
  HxfrSubscribe2Ack a;
  guint scanout;
  guint32 codec;

  if (!hxfr_subscribe2_ack_parse (fixed, len, &a, error))
    return FALSE;
  GST_OBJECT_LOCK (self);
  scanout = self->scanout;
  codec = codecs[self->codec].fourcc;
  GST_OBJECT_UNLOCK (self);
  if (a.version != 2 || a.codec != codec || a.scanout_id != scanout)
    return protocol_error (error, "SUBSCRIBE2_ACK for another version, "
        "codec or scanout", h);
  GST_INFO_OBJECT (self, "subscribed to scanout %u at %s: %ux%u, host "
      "encoder '%s'", scanout, self->address_str, a.width, a.height, a.encoder);
  g_mutex_lock (&self->lock);
  g_strlcpy (self->host_encoder, a.encoder, sizeof (self->host_encoder));
  g_mutex_unlock (&self->lock);
  return TRUE;
}

/* Waits for SUBSCRIBE2_ACK or ERROR within @deadline, answering PINGs. */
static gboolean
wait_ack (GstVsockScanoutSrc * self, HxfrConn * conn, gint64 deadline,
    GError ** error)
{
  while (TRUE) {
    HxfrHeader h;
    GBytes *payload = NULL;
    const guint8 *data;
    gsize len;
    gboolean begun, ok = FALSE, done = TRUE;

    if (!read_message (self, conn, &h, &payload,
            hxfr_deadline_left (deadline), &begun, error))
      return FALSE;
    switch (h.type) {
      case HXFR_MSG_SUBSCRIBE2_ACK:
        data = payload_of (payload, &h, HXFR_SUBSCRIBE2_ACK_SIZE,
            HXFR_SUBSCRIBE2_ACK_SIZE, "SUBSCRIBE2_ACK of the wrong size",
            &len, error);
        ok = data && check_ack (self, data, len, &h, error);
        break;
      case HXFR_MSG_ERROR:
        if ((data = payload_of (payload, &h, HXFR_ERROR_SIZE, HXFR_ERROR_SIZE,
                    "ERROR of the wrong size", &len, error)))
          set_host_error (data, len, error);
        break;
      case HXFR_MSG_PING:
        done = !payload_of (payload, &h, 0, 0, "PING with a payload", &len,
            error) || !hxfr_conn_send (conn, HXFR_MSG_PONG, 0, 0, NULL, 0,
            NULL, 0, hxfr_deadline_left (deadline), self->cancellable, error);
        break;
      default:
        protocol_error (error, "not an answer to SUBSCRIBE2", &h);
        break;
    }
    g_clear_pointer (&payload, g_bytes_unref);
    if (done)
      return ok;
  }
}

/* Connects and subscribes; on success the connection is self->conn. */
static gboolean
subscribe (GstVsockScanoutSrc * self, GError ** error)
{
  /* one bound for connect, SUBSCRIBE2 and its answer */
  gint64 deadline = g_get_monotonic_time () + self->timeout_us;
  HxfrConn *conn;
  guint bitrate, now_bitrate;

  conn = hxfr_conn_connect (self->address, hxfr_deadline_left (deadline),
      self->cancellable, error);
  if (!conn)
    return FALSE;
  if (!send_subscribe (self, conn, deadline, &bitrate, error)
      || !wait_ack (self, conn, deadline, error)) {
    hxfr_conn_shutdown (conn);
    hxfr_conn_unref (conn);
    return FALSE;
  }
  g_mutex_lock (&self->lock);
  self->conn = conn;
  self->reconnects += self->subscribed_once;
  g_mutex_unlock (&self->lock);
  self->subscribed_once = TRUE;
  /* a bitrate set while subscribing went to neither SUBSCRIBE2 nor a
   * CONTROL (there was no connection to send it on) */
  GST_OBJECT_LOCK (self);
  now_bitrate = self->bitrate;
  GST_OBJECT_UNLOCK (self);
  if (now_bitrate != bitrate)
    send_bitrate (self, now_bitrate);
  /* a new subscription: seq and capture times start over, and its first
   * frame (an IDR) follows whatever was lost */
  self->need_discont = TRUE;
  self->have_seq = FALSE;
  self->anchored = FALSE;
  self->pinged = FALSE;
  return TRUE;
}

/* Sleeps the back-off; FALSE when unlock() interrupted it. */
static gboolean
backoff_wait (GstVsockScanoutSrc * self)
{
  guint max_ms;
  gint64 until;
  gboolean flushing;

  GST_OBJECT_LOCK (self);
  max_ms = MAX (self->max_backoff_ms, BACKOFF_MIN_MS);
  GST_OBJECT_UNLOCK (self);
  self->backoff_ms = CLAMP (self->backoff_ms * 2, BACKOFF_MIN_MS, max_ms);
  until = g_get_monotonic_time () +
      (gint64) self->backoff_ms * G_TIME_SPAN_MILLISECOND;
  g_mutex_lock (&self->lock);
  while (!self->flushing && g_cond_wait_until (&self->cond, &self->lock,
          until));
  flushing = self->flushing;
  g_mutex_unlock (&self->lock);
  return !flushing;
}

/* Frames */

static void
update_caps (GstVsockScanoutSrc * self, guint32 width, guint32 height)
{
  GstCaps *caps;

  if (width == self->width && height == self->height)
    return;
  GST_OBJECT_LOCK (self);
  caps = gst_caps_from_string (codecs[self->codec].caps);
  GST_OBJECT_UNLOCK (self);
  gst_caps_set_simple (caps,
      "width", G_TYPE_INT, (gint) width, "height", G_TYPE_INT, (gint) height,
      "framerate", GST_TYPE_FRACTION, 0, 1, NULL);
  GST_INFO_OBJECT (self, "scanout size %ux%u: %" GST_PTR_FORMAT, width,
      height, caps);
  gst_base_src_set_caps (GST_BASE_SRC (self), caps);
  gst_caps_unref (caps);
  self->width = width;
  self->height = height;
}

/* The running time of the flip: the first frame of a subscription is
 * anchored at its arrival, later ones follow the host's capture times;
 * never backwards (a new host's clock, a host clock step). */
static GstClockTime
frame_pts (GstVsockScanoutSrc * self, const HxfrScanoutFrame * f)
{
  GstClock *clock = gst_element_get_clock (GST_ELEMENT (self));
  GstClockTime pts;

  if (!self->anchored) {
    self->first_running = 0;
    if (clock)
      self->first_running = gst_clock_get_time (clock) -
          MIN (gst_clock_get_time (clock),
          gst_element_get_base_time (GST_ELEMENT (self)));
    self->first_capture = f->capture_time;
    self->anchored = TRUE;
  }
  if (clock)
    gst_object_unref (clock);
  pts = self->first_running;
  if (f->capture_time >= self->first_capture)
    pts += f->capture_time - self->first_capture;
  if (GST_CLOCK_TIME_IS_VALID (self->last_pts) && pts <= self->last_pts)
    pts = self->last_pts + 1;
  self->last_pts = pts;
  return pts;
}

static void
add_host_time (GstBuffer * buf, GstStaticCaps * what, guint64 t)
{
  GstCaps *caps = gst_static_caps_get (what);

  gst_buffer_add_reference_timestamp_meta (buf, caps, t, GST_CLOCK_TIME_NONE);
  gst_caps_unref (caps);
}

/* Flags, timestamps, caps and statistics of one frame's buffer. */
static void
finish_buffer (GstVsockScanoutSrc * self, const HxfrScanoutFrame * f,
    GstBuffer * buf)
{
  gboolean key = (f->frame_flags & HXFR_SCANOUT_FRAME_KEYFRAME) != 0;
  gboolean discont = self->need_discont ||
      (f->frame_flags & HXFR_SCANOUT_FRAME_DISCONT);
  guint32 gap = 0;

  if (self->have_seq && f->seq != self->last_seq + 1) {
    gap = f->seq - self->last_seq - 1;
    discont = TRUE;
  }
  self->have_seq = TRUE;
  self->last_seq = f->seq;
  self->need_discont = FALSE;
  update_caps (self, f->width, f->height);

  GST_BUFFER_PTS (buf) = frame_pts (self, f);
  GST_BUFFER_DTS (buf) = GST_BUFFER_PTS (buf);
  if (f->duration > 0)
    GST_BUFFER_DURATION (buf) = f->duration;
  if (!key)
    GST_BUFFER_FLAG_SET (buf, GST_BUFFER_FLAG_DELTA_UNIT);
  if (discont)
    GST_BUFFER_FLAG_SET (buf, GST_BUFFER_FLAG_DISCONT);
  add_host_time (buf, &host_flush_caps, f->capture_time);
  add_host_time (buf, &host_au_caps,
      f->capture_time + (guint64) f->encode_us * 1000);

  g_mutex_lock (&self->lock);
  self->frames++;
  self->keyframes += key;
  self->bytes += gst_buffer_get_size (buf);
  self->host_dropped += gap;
  self->repeats += (f->frame_flags & HXFR_SCANOUT_FRAME_REPEAT) != 0;
  self->last_encode_us = f->encode_us;
  g_mutex_unlock (&self->lock);
}

/* SCANOUT_FRAME: its access unit as the buffer, without a copy. */
static GstBuffer *
read_frame (GstVsockScanoutSrc * self, const HxfrHeader * h,
    GBytes * payload, GError ** error)
{
  HxfrScanoutFrame f;
  GstBuffer *buf;
  const guint8 *data;
  gsize len;

  /* read_message() bounded the access unit by max-au-size already */
  if (!(data = payload_of (payload, h, HXFR_SCANOUT_FRAME_SIZE + 1,
              G_MAXUINT32, "SCANOUT_FRAME without an access unit", &len, error))
      || !hxfr_scanout_frame_parse (data, HXFR_SCANOUT_FRAME_SIZE, &f, error))
    return NULL;
  if (f.width == 0 || f.height == 0 || f.width > HXFR_DEFAULT_MAX_DIMENSION
      || f.height > HXFR_DEFAULT_MAX_DIMENSION)
    return (protocol_error (error, "a frame size of 0 or over 8192", h), NULL);
  buf = gst_buffer_new_wrapped_bytes (payload);
  gst_buffer_resize (buf, HXFR_SCANOUT_FRAME_SIZE, len -
      HXFR_SCANOUT_FRAME_SIZE);
  finish_buffer (self, &f, buf);
  return buf;
}

static void
set_end_error (const guint8 * fixed, gsize len, GError ** error)
{
  HxfrScanoutEnd e;

  if (!hxfr_scanout_end_parse (fixed, len, &e, error))
    return;
  g_set_error (error, SCANOUT_SRC_ERROR, SCANOUT_SRC_ERROR_END,
      "the host ended the subscription: %s (%u)%s%s",
      hxfr_scanout_end_reason_name (e.reason), e.reason,
      e.text[0] ? ": " : "", e.text);
}

/* CURSOR_IMAGE: posted as "helix-cursor-image", the pixels wrapped
 * without a copy. Only asked-for ones reach here. */
static gboolean
post_cursor_image (GstVsockScanoutSrc * self, const HxfrHeader * h,
    GBytes * payload, GError ** error)
{
  HxfrCursorImage ci;
  GstBuffer *buf;
  GstCaps *caps;
  GstSample *sample;
  GstStructure *s;

  if (!payload || !hxfr_cursor_image_parse (g_bytes_get_data (payload, NULL),
          g_bytes_get_size (payload), &ci, error))
    return protocol_error (error, "CURSOR_IMAGE out of bounds", h);
  buf = gst_buffer_new_wrapped_bytes (payload);
  gst_buffer_resize (buf, HXFR_CURSOR_IMAGE_SIZE, -1);
  caps = gst_caps_new_simple ("video/x-raw", "format", G_TYPE_STRING, "BGRA",
      "width", G_TYPE_INT, (gint) ci.width, "height", G_TYPE_INT,
      (gint) ci.height, "framerate", GST_TYPE_FRACTION, 0, 1, NULL);
  sample = gst_sample_new (buf, caps, NULL, NULL);
  s = gst_structure_new ("helix-cursor-image", "scanout", G_TYPE_UINT,
      self->scanout, "sample", GST_TYPE_SAMPLE, sample, "hot-x", G_TYPE_UINT,
      ci.hot_x, "hot-y", G_TYPE_UINT, ci.hot_y, NULL);
  gst_sample_unref (sample);
  gst_caps_unref (caps);
  gst_buffer_unref (buf);
  gst_element_post_message (GST_ELEMENT (self),
      gst_message_new_element (GST_OBJECT (self), s));
  return TRUE;
}

/* CURSOR_POSITION: posted as "helix-cursor-position", its time also on
 * the running time as the frames are stamped (once they are anchored) */
static gboolean
post_cursor_position (GstVsockScanoutSrc * self, const HxfrHeader * h,
    GBytes * payload, GError ** error)
{
  GstClockTime running = GST_CLOCK_TIME_NONE;
  HxfrCursorPosition p;
  GstStructure *s;

  if (!payload || !hxfr_cursor_position_parse (g_bytes_get_data (payload,
              NULL), g_bytes_get_size (payload), &p, error))
    return protocol_error (error, "CURSOR_POSITION of the wrong size", h);
  if (self->anchored && p.time >= self->first_capture)
    running = self->first_running + (p.time - self->first_capture);
  s = gst_structure_new ("helix-cursor-position", "scanout", G_TYPE_UINT,
      self->scanout, "x", G_TYPE_INT, p.x, "y", G_TYPE_INT, p.y, "visible",
      G_TYPE_BOOLEAN, (p.flags & HXFR_CURSOR_VISIBLE) != 0, "host-time",
      G_TYPE_UINT64, p.time, "running-time", G_TYPE_UINT64, running, NULL);
  gst_element_post_message (GST_ELEMENT (self),
      gst_message_new_element (GST_OBJECT (self), s));
  return TRUE;
}

/* Silence for a timeout gets a PING; silence for another one means the
 * host is gone (a dead peer over vsock or TCP never closes). */
static gboolean
handle_silence (GstVsockScanoutSrc * self, HxfrConn * conn, GError ** error)
{
  if (self->pinged) {
    g_set_error (error, G_IO_ERROR, G_IO_ERROR_TIMED_OUT, "the host sent "
        "nothing for %" G_GINT64_FORMAT " ms, PING unanswered",
        2 * self->timeout_us / 1000);
    return FALSE;
  }
  g_clear_error (error);
  self->pinged = TRUE;
  return hxfr_conn_send (conn, HXFR_MSG_PING, 0, 0, NULL, 0, NULL, 0,
      self->timeout_us, self->cancellable, error);
}

/* The next access unit of the subscription, answering what else comes. */
static GstBuffer *
next_frame (GstVsockScanoutSrc * self, HxfrConn * conn, GError ** error)
{
  while (TRUE) {
    HxfrHeader h;
    GBytes *payload = NULL;
    GstBuffer *buf = NULL;
    const guint8 *data;
    gsize len;
    gboolean begun, done = TRUE;

    if (!read_message (self, conn, &h, &payload, self->timeout_us, &begun,
            error)) {
      if (!begun && g_error_matches (*error, G_IO_ERROR,
              G_IO_ERROR_TIMED_OUT) && handle_silence (self, conn, error))
        continue;
      return NULL;
    }
    self->pinged = FALSE;
    switch (h.type) {
      case HXFR_MSG_SCANOUT_FRAME:
        buf = read_frame (self, &h, payload, error);
        break;
      case HXFR_MSG_SCANOUT_END:
        if ((data = payload_of (payload, &h, HXFR_SCANOUT_END_SIZE,
                    HXFR_SCANOUT_END_SIZE + HXFR_ERROR_TEXT_SIZE,
                    "SCANOUT_END of the wrong size", &len, error)))
          set_end_error (data, len, error);
        break;
      case HXFR_MSG_ERROR:
        if ((data = payload_of (payload, &h, HXFR_ERROR_SIZE, HXFR_ERROR_SIZE,
                    "ERROR of the wrong size", &len, error)))
          set_host_error (data, len, error);
        break;
      case HXFR_MSG_PING:
        done = !hxfr_conn_send (conn, HXFR_MSG_PONG, 0, 0, NULL, 0, NULL, 0,
            self->timeout_us, self->cancellable, error);
        break;
      case HXFR_MSG_PONG:
        done = FALSE;
        break;
      case HXFR_MSG_CURSOR_IMAGE:
      case HXFR_MSG_CURSOR_POSITION:
        if (self->cursor_mode) {
          done = !(h.type == HXFR_MSG_CURSOR_IMAGE ?
              post_cursor_image (self, &h, payload, error) :
              post_cursor_position (self, &h, payload, error));
          break;
        }
        /* not asked for: as any unknown message */
        GST_DEBUG_OBJECT (self, "skipped message 0x%02x", h.type);
        done = FALSE;
        break;
      default:
        /* a newer host's message: read (bounded) and skipped */
        GST_DEBUG_OBJECT (self, "skipped message 0x%02x", h.type);
        done = FALSE;
        break;
    }
    g_clear_pointer (&payload, g_bytes_unref);
    if (done)
      return buf;
  }
}

/* GstBaseSrc */

static void
post_fatal (GstVsockScanoutSrc * self, const GError * err)
{
  guint scanout;
  const gchar *codec;

  GST_OBJECT_LOCK (self);
  scanout = self->scanout;
  codec = codecs[self->codec].name;
  GST_OBJECT_UNLOCK (self);
  if (g_error_matches (err, HXFR_ERROR, HXFR_ERR_UNAUTHORIZED))
    GST_ELEMENT_ERROR (self, RESOURCE, NOT_AUTHORIZED,
        ("The host bridge at %s refused the subscription to scanout %u as "
            "unauthorized: check the token property", self->address_str,
            scanout), ("%s", err->message));
  else if (g_error_matches (err, HXFR_ERROR, HXFR_ERR_UNSUPPORTED)
      || g_error_matches (err, HXFR_ERROR, HXFR_ERR_INVALID))
    /* the host's text says why (the codec, the version) */
    GST_ELEMENT_ERROR (self, RESOURCE, SETTINGS,
        ("The host bridge at %s does not support %s scanout subscriptions "
            "(v2) for scanout %u: %s", self->address_str, codec, scanout,
            err->message), ("%s", err->message));
  else
    GST_ELEMENT_ERROR (self, RESOURCE, READ,
        ("Scanout %u from the host bridge at %s failed: %s", scanout,
            self->address_str, err->message), ("%s", err->message));
}

/* After a failure: the flow to return, or GST_FLOW_OK to try again. */
static GstFlowReturn
handle_failure (GstVsockScanoutSrc * self, GError * err)
{
  EndKind kind = end_kind (err);
  gboolean flushing;

  drop_conn (self);
  g_mutex_lock (&self->lock);
  flushing = self->flushing;
  g_mutex_unlock (&self->lock);
  if (flushing || kind == END_FLUSHING) {
    GST_DEBUG_OBJECT (self, "flushing: %s", err->message);
    g_error_free (err);
    return GST_FLOW_FLUSHING;
  }
  if (kind == END_FATAL) {
    post_fatal (self, err);
    g_error_free (err);
    return GST_FLOW_ERROR;
  }
  if (!self->reconnect_mode) {
    if (kind == END_ORDERLY) {
      /* the host ended the stream on purpose: the end of our stream */
      GST_INFO_OBJECT (self, "%s: EOS", err->message);
      g_error_free (err);
      return GST_FLOW_EOS;
    }
    GST_ELEMENT_ERROR (self, RESOURCE, READ, ("Lost the host bridge at %s: "
            "%s", self->address_str, err->message), ("reconnect=false"));
    g_error_free (err);
    return GST_FLOW_ERROR;
  }
  GST_WARNING_OBJECT (self, "%s (%s), retrying in %u ms", err->message,
      self->address_str, CLAMP (self->backoff_ms * 2, BACKOFF_MIN_MS,
          MAX (self->max_backoff_ms, BACKOFF_MIN_MS)));
  g_error_free (err);
  if (!backoff_wait (self))
    return GST_FLOW_FLUSHING;
  return GST_FLOW_OK;
}

static GstFlowReturn
gst_vsock_scanout_src_create (GstPushSrc * src, GstBuffer ** outbuf)
{
  GstVsockScanoutSrc *self = GST_VSOCK_SCANOUT_SRC (src);

  while (TRUE) {
    HxfrConn *conn = get_conn (self);
    GError *err = NULL;
    GstFlowReturn ret;

    if (!conn) {
      if (subscribe (self, &err))
        continue;
    } else {
      *outbuf = next_frame (self, conn, &err);
      hxfr_conn_unref (conn);
      if (*outbuf) {
        self->backoff_ms = 0;
        return GST_FLOW_OK;
      }
    }
    ret = handle_failure (self, err);
    if (ret != GST_FLOW_OK)
      return ret;
  }
}

static gboolean
gst_vsock_scanout_src_start (GstBaseSrc * src)
{
  GstVsockScanoutSrc *self = GST_VSOCK_SCANOUT_SRC (src);
  GError *err = NULL;
  gchar *spec;
  GPollFD unused;

  GST_OBJECT_LOCK (self);
  spec = g_strdup (self->address_prop);
  self->timeout_us = (gint64) self->timeout_ms * G_TIME_SPAN_MILLISECOND;
  self->reconnect_mode = self->reconnect;
  self->cursor_mode = self->cursor;
  GST_OBJECT_UNLOCK (self);
  self->address = hxfr_address_parse (spec, &err);
  if (!self->address) {
    GST_ELEMENT_ERROR (self, RESOURCE, SETTINGS, ("Invalid address '%s': %s",
            spec, err->message), (NULL));
    g_free (spec);
    g_clear_error (&err);
    return FALSE;
  }
  g_free (spec);
  self->address_str = hxfr_address_to_string (self->address);
  self->cancellable = g_cancellable_new ();
  /* one wakeup fd for all waits, not one made and closed per wait */
  g_cancellable_make_pollfd (self->cancellable, &unused);
  self->flushing = FALSE;
  self->backoff_ms = 0;
  self->width = self->height = 0;
  self->last_pts = GST_CLOCK_TIME_NONE;
  self->frames = self->keyframes = self->bytes = 0;
  self->reconnects = self->host_dropped = self->repeats = 0;
  self->keyframe_requests = 0;
  self->last_encode_us = 0;
  self->subscribed_once = FALSE;
  /* connected from the streaming thread: a guest may start before the
   * bridge, and the state change must not wait for it */
  return TRUE;
}

static gboolean
gst_vsock_scanout_src_stop (GstBaseSrc * src)
{
  GstVsockScanoutSrc *self = GST_VSOCK_SCANOUT_SRC (src);

  drop_conn (self);
  if (self->cancellable) {
    g_cancellable_release_fd (self->cancellable);
    g_clear_object (&self->cancellable);
  }
  g_clear_pointer (&self->address, hxfr_address_free);
  g_clear_pointer (&self->address_str, g_free);
  return TRUE;
}

/* Wakes the streaming thread wherever it waits: socket, back-off. The
 * connection goes too: a read cut short leaves it mid-message, and a
 * paused subscription would only make the host think us too slow. */
static gboolean
gst_vsock_scanout_src_unlock (GstBaseSrc * src)
{
  GstVsockScanoutSrc *self = GST_VSOCK_SCANOUT_SRC (src);

  g_mutex_lock (&self->lock);
  self->flushing = TRUE;
  g_cond_broadcast (&self->cond);
  g_mutex_unlock (&self->lock);
  if (self->cancellable)
    g_cancellable_cancel (self->cancellable);
  drop_conn (self);
  return TRUE;
}

static gboolean
gst_vsock_scanout_src_unlock_stop (GstBaseSrc * src)
{
  GstVsockScanoutSrc *self = GST_VSOCK_SCANOUT_SRC (src);

  g_mutex_lock (&self->lock);
  self->flushing = FALSE;
  g_mutex_unlock (&self->lock);
  if (self->cancellable)
    g_cancellable_reset (self->cancellable);
  return TRUE;
}

/* The codec's caps (any size): what this element can output now. */
static GstCaps *
gst_vsock_scanout_src_get_caps (GstBaseSrc * src, GstCaps * filter)
{
  GstVsockScanoutSrc *self = GST_VSOCK_SCANOUT_SRC (src);
  GstCaps *caps, *out;

  GST_OBJECT_LOCK (self);
  caps = gst_caps_from_string (codecs[self->codec].caps);
  GST_OBJECT_UNLOCK (self);
  if (!filter)
    return caps;
  out = gst_caps_intersect_full (filter, caps, GST_CAPS_INTERSECT_FIRST);
  gst_caps_unref (caps);
  return out;
}

/* The caps come from the frames (update_caps), not from negotiation. */
static gboolean
gst_vsock_scanout_src_negotiate (GstBaseSrc * src)
{
  return TRUE;
}

static gboolean
gst_vsock_scanout_src_event (GstBaseSrc * src, GstEvent * event)
{
  GstVsockScanoutSrc *self = GST_VSOCK_SCANOUT_SRC (src);

  if (gst_video_event_is_force_key_unit (event)) {
    GST_DEBUG_OBJECT (self, "force-key-unit: KEYFRAME_REQ");
    g_mutex_lock (&self->lock);
    self->keyframe_requests++;
    g_mutex_unlock (&self->lock);
    /* not connected: the next subscription begins with an IDR anyway */
    send_simple (self, HXFR_MSG_KEYFRAME_REQ, NULL, 0);
    return TRUE;
  }
  return GST_BASE_SRC_CLASS (gst_vsock_scanout_src_parent_class)->event (src,
      event);
}

static gboolean
gst_vsock_scanout_src_query (GstBaseSrc * src, GstQuery * query)
{
  if (GST_QUERY_TYPE (query) == GST_QUERY_LATENCY) {
    /* live; the host's capture-to-arrival delay is before our timestamps,
     * only its jitter is after them */
    gst_query_set_latency (query, TRUE, LATENCY, GST_CLOCK_TIME_NONE);
    return TRUE;
  }
  return GST_BASE_SRC_CLASS (gst_vsock_scanout_src_parent_class)->query (src,
      query);
}

/* GObject */

static GstStructure *
get_stats (GstVsockScanoutSrc * self)
{
  GstStructure *s;

  g_mutex_lock (&self->lock);
  s = gst_structure_new ("vsockscanoutsrc-stats",
      "frames", G_TYPE_UINT64, self->frames,
      "keyframes", G_TYPE_UINT64, self->keyframes,
      "bytes", G_TYPE_UINT64, self->bytes,
      "reconnects", G_TYPE_UINT64, self->reconnects,
      "host-dropped", G_TYPE_UINT64, self->host_dropped,
      "repeats", G_TYPE_UINT64, self->repeats,
      "keyframe-requests", G_TYPE_UINT64, self->keyframe_requests,
      "last-encode-us", G_TYPE_UINT, self->last_encode_us,
      "connected", G_TYPE_BOOLEAN, self->conn != NULL,
      "host-encoder", G_TYPE_STRING, self->host_encoder, NULL);
  g_mutex_unlock (&self->lock);
  return s;
}

static void
gst_vsock_scanout_src_set_property (GObject * object, guint prop_id,
    const GValue * value, GParamSpec * pspec)
{
  GstVsockScanoutSrc *self = GST_VSOCK_SCANOUT_SRC (object);
  gboolean bitrate_changed = FALSE;
  guint bitrate = 0;

  GST_OBJECT_LOCK (self);
  switch (prop_id) {
    case PROP_ADDRESS:
      g_free (self->address_prop);
      self->address_prop = g_value_dup_string (value);
      break;
    case PROP_SCANOUT:
      self->scanout = g_value_get_uint (value);
      break;
    case PROP_CODEC:
      self->codec = g_value_get_enum (value);
      break;
    case PROP_TOKEN:
      g_free (self->token);
      self->token = g_value_dup_string (value);
      break;
    case PROP_BITRATE:
      bitrate = g_value_get_uint (value);
      bitrate_changed = bitrate != self->bitrate;
      self->bitrate = bitrate;
      break;
    case PROP_MAX_WIDTH:
      self->max_width = g_value_get_uint (value);
      break;
    case PROP_MAX_HEIGHT:
      self->max_height = g_value_get_uint (value);
      break;
    case PROP_TIMEOUT:
      self->timeout_ms = g_value_get_uint (value);
      break;
    case PROP_RECONNECT:
      self->reconnect = g_value_get_boolean (value);
      break;
    case PROP_CURSOR:
      self->cursor = g_value_get_boolean (value);
      break;
    case PROP_DRAW_CURSOR:
      self->draw_cursor = g_value_get_boolean (value);
      break;
    case PROP_MAX_BACKOFF:
      self->max_backoff_ms = g_value_get_uint (value);
      break;
    case PROP_MAX_AU_SIZE:
      self->max_au_size = g_value_get_uint (value);
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
      break;
  }
  GST_OBJECT_UNLOCK (self);
  /* while subscribed the host applies it now; otherwise the next
   * SUBSCRIBE2 carries it */
  if (bitrate_changed)
    send_bitrate (self, bitrate);
}

static void
gst_vsock_scanout_src_get_property (GObject * object, guint prop_id,
    GValue * value, GParamSpec * pspec)
{
  GstVsockScanoutSrc *self = GST_VSOCK_SCANOUT_SRC (object);

  if (prop_id == PROP_STATS) {
    g_value_take_boxed (value, get_stats (self));
    return;
  }
  GST_OBJECT_LOCK (self);
  switch (prop_id) {
    case PROP_ADDRESS:
      g_value_set_string (value, self->address_prop);
      break;
    case PROP_SCANOUT:
      g_value_set_uint (value, self->scanout);
      break;
    case PROP_CODEC:
      g_value_set_enum (value, self->codec);
      break;
    case PROP_TOKEN:
      g_value_set_string (value, self->token);
      break;
    case PROP_BITRATE:
      g_value_set_uint (value, self->bitrate);
      break;
    case PROP_TIMEOUT:
      g_value_set_uint (value, self->timeout_ms);
      break;
    case PROP_RECONNECT:
      g_value_set_boolean (value, self->reconnect);
      break;
    case PROP_CURSOR:
      g_value_set_boolean (value, self->cursor);
      break;
    case PROP_DRAW_CURSOR:
      g_value_set_boolean (value, self->draw_cursor);
      break;
    case PROP_MAX_BACKOFF:
      g_value_set_uint (value, self->max_backoff_ms);
      break;
    case PROP_MAX_WIDTH:
      g_value_set_uint (value, self->max_width);
      break;
    case PROP_MAX_HEIGHT:
      g_value_set_uint (value, self->max_height);
      break;
    case PROP_MAX_AU_SIZE:
      g_value_set_uint (value, self->max_au_size);
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
      break;
  }
  GST_OBJECT_UNLOCK (self);
}

static void
gst_vsock_scanout_src_init (GstVsockScanoutSrc * self)
{
  self->address_prop = g_strdup (DEFAULT_ADDRESS);
  self->scanout = DEFAULT_SCANOUT;
  self->token = g_strdup (DEFAULT_TOKEN);
  self->bitrate = DEFAULT_BITRATE;
  self->timeout_ms = DEFAULT_TIMEOUT;
  self->reconnect = DEFAULT_RECONNECT;
  self->cursor = DEFAULT_CURSOR;
  self->draw_cursor = DEFAULT_DRAW_CURSOR;
  self->max_backoff_ms = DEFAULT_MAX_BACKOFF;
  self->max_au_size = DEFAULT_MAX_AU_SIZE;
  self->last_pts = GST_CLOCK_TIME_NONE;
  g_mutex_init (&self->lock);
  g_cond_init (&self->cond);
  gst_base_src_set_live (GST_BASE_SRC (self), TRUE);
  gst_base_src_set_format (GST_BASE_SRC (self), GST_FORMAT_TIME);
}

static void
gst_vsock_scanout_src_finalize (GObject * object)
{
  GstVsockScanoutSrc *self = GST_VSOCK_SCANOUT_SRC (object);

  g_free (self->address_prop);
  g_free (self->token);
  g_mutex_clear (&self->lock);
  g_cond_clear (&self->cond);
  G_OBJECT_CLASS (gst_vsock_scanout_src_parent_class)->finalize (object);
}

static void
install_properties (GObjectClass * gobject_class)
{
  properties[PROP_ADDRESS] = g_param_spec_string ("address", "Address",
      "Host bridge to subscribe at: vsock:CID:PORT, tcp:HOST:PORT or "
      "unix:PATH", DEFAULT_ADDRESS,
      G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS | GST_PARAM_MUTABLE_READY);
  properties[PROP_SCANOUT] = g_param_spec_uint ("scanout", "Scanout",
      "Index of the virtio-gpu scanout to receive (1 = the first desktop "
      "scanout)", 0, G_MAXUINT32, DEFAULT_SCANOUT,
      G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS | GST_PARAM_MUTABLE_READY);
  properties[PROP_CODEC] = g_param_spec_enum ("codec", "Codec",
      "The stream to ask the host for (SUBSCRIBE2's codec); a host with no "
      "encoder for it refuses the subscription with an error naming it",
      GST_TYPE_VSOCK_SCANOUT_SRC_CODEC, CODEC_H264,
      G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS | GST_PARAM_MUTABLE_READY);
  properties[PROP_TOKEN] = g_param_spec_string ("token", "Token",
      "Access token sent in SUBSCRIBE2 (at most 256 bytes; NULL = none)",
      DEFAULT_TOKEN,
      G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS | GST_PARAM_MUTABLE_READY);
  properties[PROP_BITRATE] = g_param_spec_uint ("bitrate", "Bitrate",
      "Bitrate to ask the host for, in bit/s (0 = the host's default; a "
      "change while playing is sent at once)", 0, G_MAXUINT32,
      DEFAULT_BITRATE, G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS |
      GST_PARAM_MUTABLE_PLAYING);
  properties[PROP_MAX_WIDTH] = g_param_spec_uint ("max-width",
      "Maximum width", "Ask the host to scale the scanout down to at most "
      "this width, keeping its aspect (0 = as shown; subscribers asking the "
      "same size, codec and bitrate share one encoder on the host)", 0,
      G_MAXUINT16, 0,
      G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS | GST_PARAM_MUTABLE_READY);
  properties[PROP_MAX_HEIGHT] = g_param_spec_uint ("max-height",
      "Maximum height", "Ask the host to scale the scanout down to at most "
      "this height, keeping its aspect (0 = as shown)", 0, G_MAXUINT16, 0,
      G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS | GST_PARAM_MUTABLE_READY);
  properties[PROP_TIMEOUT] = g_param_spec_uint ("timeout", "Timeout",
      "Bound on connecting and subscribing and on the rest of a message "
      "once begun, in milliseconds; after this long without a message a "
      "PING is sent, after twice this long the host counts as lost", 1,
      G_MAXINT, DEFAULT_TIMEOUT,
      G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS | GST_PARAM_MUTABLE_READY);
  properties[PROP_RECONNECT] = g_param_spec_boolean ("reconnect",
      "Reconnect", "Resubscribe with back-off when the host is lost or ends "
      "the subscription (resuming with a DISCONT IDR); off: a lost host is "
      "an error and SCANOUT_END is EOS", DEFAULT_RECONNECT,
      G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS | GST_PARAM_MUTABLE_READY);
  properties[PROP_MAX_BACKOFF] = g_param_spec_uint ("max-backoff",
      "Maximum back-off", "Longest wait between reconnection attempts, in "
      "milliseconds (the wait starts at 100 ms and doubles)", 0, G_MAXINT,
      DEFAULT_MAX_BACKOFF,
      G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS | GST_PARAM_MUTABLE_READY);
  properties[PROP_MAX_AU_SIZE] = g_param_spec_uint ("max-au-size",
      "Maximum access unit size", "Largest access unit accepted from the "
      "host, in bytes (a larger one is an error, before any allocation)",
      1, G_MAXUINT32, DEFAULT_MAX_AU_SIZE,
      G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS | GST_PARAM_MUTABLE_READY);
  /**
   * GstVsockScanoutSrc:cursor:
   *
   * Ask the host for the scanout's pointer and post it on the bus as
   * "helix-cursor-image" and "helix-cursor-position" element messages.
   */
  properties[PROP_CURSOR] = g_param_spec_boolean ("cursor", "Cursor",
      "Ask the host for the scanout's pointer (the cursor plane) and post "
      "it as element messages helix-cursor-image and helix-cursor-position",
      DEFAULT_CURSOR,
      G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS | GST_PARAM_MUTABLE_READY);
  /**
   * GstVsockScanoutSrc:draw-cursor:
   *
   * Ask the host to draw the pointer into the frames it encodes (for a
   * viewer that draws none itself).
   */
  properties[PROP_DRAW_CURSOR] = g_param_spec_boolean ("draw-cursor",
      "Draw cursor", "Ask the host to draw the scanout's pointer into the "
      "frames it encodes (an encoder of its own on the host; a move over a "
      "static screen yields a new frame)", DEFAULT_DRAW_CURSOR,
      G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS | GST_PARAM_MUTABLE_READY);
  properties[PROP_STATS] = g_param_spec_boxed ("stats", "Statistics",
      "frames, keyframes, bytes (access units), reconnects, host-dropped "
      "(frames the host's seq numbers skipped), repeats, keyframe-requests, "
      "last-encode-us (host encode time of the last frame, microseconds), "
      "connected, host-encoder", GST_TYPE_STRUCTURE,
      G_PARAM_READABLE | G_PARAM_STATIC_STRINGS);
  g_object_class_install_properties (gobject_class, N_PROPERTIES, properties);
}

static void
gst_vsock_scanout_src_class_init (GstVsockScanoutSrcClass * klass)
{
  GObjectClass *gobject_class = G_OBJECT_CLASS (klass);
  GstElementClass *element_class = GST_ELEMENT_CLASS (klass);
  GstBaseSrcClass *bsrc_class = GST_BASE_SRC_CLASS (klass);
  GstPushSrcClass *psrc_class = GST_PUSH_SRC_CLASS (klass);

  gobject_class->set_property = gst_vsock_scanout_src_set_property;
  gobject_class->get_property = gst_vsock_scanout_src_get_property;
  gobject_class->finalize = gst_vsock_scanout_src_finalize;
  install_properties (gobject_class);

  gst_element_class_add_static_pad_template (element_class, &src_template);
  gst_element_class_set_static_metadata (element_class,
      "Host-encoded virtio-gpu scanout source", "Source/Video/Network",
      "Receives H.264 (or H.265, AV1: codec) of a virtio-gpu scanout of "
      "this VM, encoded by the host bridge on every page flip, over vsock, "
      "TCP or a UNIX socket "
      "(HXFR v2 subscription). Example: vsockscanoutsrc "
      "address=tcp:10.0.2.2:15937 scanout=1 ! h264parse ! appsink",
      "Helix encode offload");

  bsrc_class->start = GST_DEBUG_FUNCPTR (gst_vsock_scanout_src_start);
  bsrc_class->stop = GST_DEBUG_FUNCPTR (gst_vsock_scanout_src_stop);
  bsrc_class->unlock = GST_DEBUG_FUNCPTR (gst_vsock_scanout_src_unlock);
  bsrc_class->unlock_stop =
      GST_DEBUG_FUNCPTR (gst_vsock_scanout_src_unlock_stop);
  bsrc_class->negotiate = GST_DEBUG_FUNCPTR (gst_vsock_scanout_src_negotiate);
  bsrc_class->get_caps = GST_DEBUG_FUNCPTR (gst_vsock_scanout_src_get_caps);
  bsrc_class->event = GST_DEBUG_FUNCPTR (gst_vsock_scanout_src_event);
  bsrc_class->query = GST_DEBUG_FUNCPTR (gst_vsock_scanout_src_query);
  psrc_class->create = GST_DEBUG_FUNCPTR (gst_vsock_scanout_src_create);

  gst_type_mark_as_plugin_api (GST_TYPE_VSOCK_SCANOUT_SRC_CODEC, 0);
  GST_DEBUG_CATEGORY_INIT (gst_vsock_scanout_src_debug, "vsockscanoutsrc", 0,
      "Host-encoded virtio-gpu scanout source");
}
