/* vsockenc: H.264 encoding offloaded from a VM guest to its host
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
/**
 * SECTION:element-vsockenc
 * @title: vsockenc
 *
 * Encodes raw video to H.264 by handing every frame to the host bridge
 * over vsock, TCP or a UNIX socket (the HXFR protocol) and outputting the
 * access unit the host sends back, so a VM guest uses the host's hardware
 * encoder as if it were a local one. A DMA-BUF that is a virtio-gpu
 * resource goes as a resource id (the pixels never cross the socket);
 * anything else goes as pixels. Against a host that only speaks HXFR v1
 * it falls back to one frame in flight and the v1 formats.
 *
 * The transport is the UNIX socket if #GstVsockEnc:socket-path is set,
 * else TCP if #GstVsockEnc:tcp-host is set, else vsock.
 *
 * ## Example launch lines
 * |[
 * gst-launch-1.0 videotestsrc ! video/x-raw,format=NV12 ! vsockenc socket-path=/run/hx.sock ! h264parse ! fakesink
 * ]|
 * |[
 * gst-launch-1.0 videotestsrc is-live=true ! videoconvert ! vsockenc tcp-host=10.0.2.2 bitrate=8000000 keyframe-interval=120 ! h264parse ! avdec_h264 ! autovideosink
 * ]|
 * |[
 * gst-launch-1.0 pipewiresrc ! videoconvert ! vsockenc cid=2 port=5000 max-in-flight=4 on-disconnect=reconnect ! h264parse ! appsink
 * ]|
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <errno.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>
#ifdef __linux__
#include <linux/dma-buf.h>
#endif

#include <gst/gst.h>
#include <gst/video/video.h>
#include <gst/allocators/allocators.h>

#include "hxfr-transport.h"
#include "hxfr-video.h"
#include "vsockenc-drm.h"
#include "vsockenc-gl.h"

GST_DEBUG_CATEGORY_STATIC (gst_vsock_enc_debug);
#define GST_CAT_DEFAULT gst_vsock_enc_debug

#define FORMATS "{ NV12, I420, BGRx, BGRA, RGBx, RGBA }"
#define V1_FORMATS "{ NV12, BGRx, BGRA, RGBx, RGBA }"

/* GStreamer 1.24 describes DMA-BUFs as format=DMA_DRM with a DRM fourcc
 * (and modifier): the same formats, linear only (no modifier suffix), so
 * that a frame without a resource id can still be read as pixels. */
#if GST_CHECK_VERSION(1, 24, 0)
#define DRM_FORMATS "{ NV12, YU12, XR24, AR24, XB24, AB24 }"
#define V1_DRM_FORMATS "{ NV12, XR24, AR24, XB24, AB24 }"
#define DMA_DRM_CAPS(drm_formats) "; video/x-raw(" \
    GST_CAPS_FEATURE_MEMORY_DMABUF "), format = (string) DMA_DRM, " \
    "drm-format = (string) " drm_formats ", width = " GST_VIDEO_SIZE_RANGE \
    ", height = " GST_VIDEO_SIZE_RANGE ", framerate = " GST_VIDEO_FPS_RANGE
#else
#define DMA_DRM_CAPS(drm_formats) ""
#endif

static GstStaticPadTemplate sink_template = GST_STATIC_PAD_TEMPLATE ("sink",
    GST_PAD_SINK, GST_PAD_ALWAYS,
    GST_STATIC_CAPS (GST_VIDEO_CAPS_MAKE (FORMATS) "; "
        GST_VIDEO_CAPS_MAKE_WITH_FEATURES (GST_CAPS_FEATURE_MEMORY_DMABUF,
            FORMATS) DMA_DRM_CAPS (DRM_FORMATS) VSOCKENC_GL_CAPS));

static GstStaticPadTemplate src_template = GST_STATIC_PAD_TEMPLATE ("src",
    GST_PAD_SRC, GST_PAD_ALWAYS,
    GST_STATIC_CAPS ("video/x-h264, stream-format = (string) byte-stream, "
        "alignment = (string) au"));

typedef enum
{
  GST_VSOCK_ENC_ON_DISCONNECT_ERROR,
  GST_VSOCK_ENC_ON_DISCONNECT_RECONNECT,
} GstVsockEncOnDisconnect;

typedef enum
{
  GST_VSOCK_ENC_PROTOCOL_AUTO,
  GST_VSOCK_ENC_PROTOCOL_V1,
} GstVsockEncProtocol;

static GType
gst_vsock_enc_on_disconnect_get_type (void)
{
  static GType type = 0;
  static const GEnumValue values[] = {
    {GST_VSOCK_ENC_ON_DISCONNECT_ERROR, "Post an error and stop", "error"},
    {GST_VSOCK_ENC_ON_DISCONNECT_RECONNECT,
        "Reconnect with back-off and resume with a keyframe", "reconnect"},
    {0, NULL, NULL},
  };

  if (g_once_init_enter (&type)) {
    GType t = g_enum_register_static ("GstVsockEncOnDisconnect", values);
    g_once_init_leave (&type, t);
  }
  return type;
}

static GType
gst_vsock_enc_protocol_get_type (void)
{
  static GType type = 0;
  static const GEnumValue values[] = {
    {GST_VSOCK_ENC_PROTOCOL_AUTO,
        "Negotiate v2, fall back to v1 for a v1 host", "auto"},
    {GST_VSOCK_ENC_PROTOCOL_V1, "Speak v1 only, as the deployed element",
        "v1"},
    {0, NULL, NULL},
  };

  if (g_once_init_enter (&type)) {
    GType t = g_enum_register_static ("GstVsockEncProtocol", values);
    g_once_init_leave (&type, t);
  }
  return type;
}

/* A request sent and not answered yet. */
typedef struct
{
  guint32 seq;
  GstVideoCodecFrame *frame;    /* NULL once flushed: the answer is discarded */
  GstBuffer *input;             /* kept alive until the host has answered */
  gint64 sent_us;
  gint64 deadline_us;
} PendingFrame;

#define BACKOFF_MIN_MS 100
#define BACKOFF_MAX_MS 5000
#define V1_PROBE_US (100 * G_TIME_SPAN_MILLISECOND)

struct _GstVsockEnc
{
  GstVideoEncoder parent;

  /* Properties: GST_OBJECT_LOCK */
  gchar *socket_path;
  guint cid;
  guint port;
  gchar *tcp_host;
  guint tcp_port;
  gint bitrate;
  gint keyframe_interval;
  guint max_in_flight;
  guint timeout_ms;
  GstVsockEncOnDisconnect on_disconnect;
  GstVsockEncProtocol protocol;
  gchar *token;
  gboolean zero_copy;
  gchar *drm_device;
  gboolean aud;
  guint stats_interval_ms;
  gint reconfigure;             /* atomic: bitrate/keyframe-interval changed */

  /* Streaming thread only (under the stream lock) */
  GstVideoCodecState *input_state;
  /* the layout of the input frames: input_state's, or for 1.24+ DMA_DRM
   * caps the linear format they describe */
  GstVideoInfo info;
  guint32 fourcc;
  guint frames_since_key;
  gboolean need_key;
  gint bitrate_warned;          /* the value last warned about */
  gint64 next_connect_us;
  guint backoff_ms;
  const VsockEncDrmOps *drm_ops;
  VsockEncDrmOps drm_real;
  gint drm_fd;
  gboolean drm_tried;
  gint64 next_stats_us;         /* stats-interval: next message due */

  /* Reader thread only (under the stream lock) */
  gboolean profile_known;

  /* Connection, frames in flight, flow state and statistics: self->lock;
   * self->cond is broadcast on every change of pending, flushing, stopping,
   * conn_lost and flow_ret. Lock order: stream lock, then self->lock. */
  GMutex lock;
  GCond cond;
  HxfrConn *conn;
  GThread *reader;
  GCancellable *cancellable;
  HxfrAddress *address;
  gchar *address_str;
  gint64 timeout_us;
  GstVsockEncOnDisconnect disconnect_mode;
  guint version;                /* 0: not connected */
  guint in_flight_max;
  gboolean host_resource_ids;
  guint32 host_max_width;
  guint32 host_max_height;
  gchar host_encoder[HXFR_ENCODER_NAME_SIZE];
  GQueue pending;
  guint32 next_seq;
  gboolean flushing;
  gboolean stopping;
  gboolean conn_lost;
  gboolean conn_failing;        /* a thread is reporting conn's loss */
  GstFlowReturn flow_ret;

  guint64 frames_sent;
  guint64 frames_answered;
  guint64 frames_dropped;
  guint64 frames_failed;
  guint64 resource_frames;
  guint64 pixel_frames;
  guint64 reconnects;
  guint64 bytes_sent_done;      /* of closed connections */
  guint64 bytes_received_done;
  guint64 rtt_min;
  guint64 rtt_max;
  guint64 rtt_sum;
  guint64 rtt_count;
  guint64 rtt_last;
};

#define GST_TYPE_VSOCK_ENC (gst_vsock_enc_get_type ())
G_DECLARE_FINAL_TYPE (GstVsockEnc, gst_vsock_enc, GST, VSOCK_ENC,
    GstVideoEncoder);
G_DEFINE_TYPE (GstVsockEnc, gst_vsock_enc, GST_TYPE_VIDEO_ENCODER);
GST_ELEMENT_REGISTER_DECLARE (vsockenc);
GST_ELEMENT_REGISTER_DEFINE (vsockenc, "vsockenc", GST_RANK_NONE,
    GST_TYPE_VSOCK_ENC);

#define DEFAULT_SOCKET_PATH NULL
#define DEFAULT_CID HXFR_VSOCK_CID_HOST
#define DEFAULT_PORT 5000
#define DEFAULT_TCP_HOST NULL
#define DEFAULT_TCP_PORT 15937
#define DEFAULT_BITRATE 4000000
#define DEFAULT_KEYFRAME_INTERVAL 60
#define DEFAULT_MAX_IN_FLIGHT 4
#define DEFAULT_TIMEOUT 5000
#define DEFAULT_ON_DISCONNECT GST_VSOCK_ENC_ON_DISCONNECT_ERROR
#define DEFAULT_PROTOCOL GST_VSOCK_ENC_PROTOCOL_AUTO
#define DEFAULT_TOKEN NULL
#define DEFAULT_ZERO_COPY TRUE
#define DEFAULT_DRM_DEVICE "/dev/dri/renderD128"
#define DEFAULT_AUD FALSE
#define DEFAULT_STATS_INTERVAL 0
/* Below this a bitrate is almost surely kbit/s given where bit/s are
 * meant (helix passes 8294 for 8.3 Mbit/s): no H.264 desktop stream is
 * watchable at 64 kbit/s. */
#define IMPLAUSIBLE_BITRATE 64000

enum
{
  PROP_0,
  PROP_SOCKET_PATH,
  PROP_CID,
  PROP_PORT,
  PROP_TCP_HOST,
  PROP_TCP_PORT,
  PROP_BITRATE,
  PROP_KEYFRAME_INTERVAL,
  PROP_MAX_IN_FLIGHT,
  PROP_TIMEOUT,
  PROP_ON_DISCONNECT,
  PROP_PROTOCOL,
  PROP_TOKEN,
  PROP_ZERO_COPY,
  PROP_DRM_DEVICE,
  PROP_AUD,
  PROP_STATS,
  PROP_STATS_INTERVAL,
  N_PROPERTIES
};

static GParamSpec *properties[N_PROPERTIES];

static GQuark resource_quark;

/* Helpers */

static const gchar *
profile_from_idc (guint8 idc, guint8 constraints)
{
  switch (idc) {
    case 66:
      return (constraints & 0x40) ? "constrained-baseline" : "baseline";
    case 77:
      return "main";
    case 88:
      return "extended";
    case 100:
      return "high";
    case 110:
      return "high-10";
    case 122:
      return "high-4:2:2";
    case 244:
      return "high-4:4:4";
    default:
      return NULL;
  }
}

/* The profile of the first SPS in an Annex B access unit; profile_idc and
 * the constraint flags come first in the SPS, before any emulation
 * prevention byte can occur. */
static const gchar *
h264_profile (const guint8 * data, gsize size)
{
  gsize i;

  for (i = 0; i + 5 < size; i++) {
    if (data[i] == 0 && data[i + 1] == 0 && data[i + 2] == 1) {
      if ((data[i + 3] & 0x1f) == 7)
        return profile_from_idc (data[i + 4], data[i + 5]);
      i += 2;
    }
  }
  return NULL;
}

static void
pending_frame_free (PendingFrame * p)
{
  if (p->frame)
    gst_video_codec_frame_unref (p->frame);
  gst_buffer_unref (p->input);
  g_free (p);
}

static gboolean
error_is_fatal_for_v2 (gint code)
{
  return code == HXFR_ERR_UNAUTHORIZED || code == HXFR_ERR_UNSUPPORTED
      || code == HXFR_ERR_LIMIT || code == HXFR_ERR_TOO_MANY_SESSIONS
      || code == HXFR_ERR_SHUTDOWN;
}

static HxfrAddress *
address_from_properties (GstVsockEnc * self)
{
  HxfrAddress *addr;

  GST_OBJECT_LOCK (self);
  if (self->socket_path && *self->socket_path)
    addr = hxfr_address_new_unix (self->socket_path);
  else if (self->tcp_host && *self->tcp_host)
    addr = hxfr_address_new_tcp (self->tcp_host, self->tcp_port);
  else
    addr = hxfr_address_new_vsock (self->cid, self->port);
  GST_OBJECT_UNLOCK (self);
  return addr;
}

/* A bitrate that looks like kbit/s where bit/s are meant gets a warning on
 * the bus (once per value): it is applied as asked, as the deployed
 * contract says, but 8 kbit/s of H.264 is a blur nobody wants. */
static void
warn_if_bitrate_implausible (GstVsockEnc * self, gint bitrate)
{
  if (bitrate <= 0 || bitrate >= IMPLAUSIBLE_BITRATE
      || bitrate == self->bitrate_warned)
    return;
  self->bitrate_warned = bitrate;
  GST_ELEMENT_WARNING (self, LIBRARY, SETTINGS,
      ("bitrate=%d is in bit/s: %d bit/s is implausibly low for H.264; if "
          "you meant %d kbit/s, set bitrate=%" G_GINT64_FORMAT, bitrate,
          bitrate, bitrate, (gint64) bitrate * 1000),
      ("bitrates under %d bit/s are applied as given", IMPLAUSIBLE_BITRATE));
}

/* Connects and negotiates the version; fills version, in_flight_max and
 * the host's answer. Called without self->lock. */
static HxfrConn *
connect_and_negotiate (GstVsockEnc * self, GError ** error)
{
  HxfrConn *conn;
  HxfrHello hello = { 0, };
  HxfrMessage msg;
  HxfrLimits limits;
  guint8 fixed[HXFR_MAX_FIXED_SIZE];
  GOutputVector tail;
  gsize len;
  gchar *token;
  guint max_in_flight;
  GstVsockEncProtocol protocol;
  gboolean zero_copy;
  GError *err = NULL;
  /* one deadline for the whole negotiation: a host that keeps the
   * connection busy with PINGs must not hold us past the timeout */
  gint64 deadline = g_get_monotonic_time () + self->timeout_us;

  GST_OBJECT_LOCK (self);
  protocol = self->protocol;
  token = g_strdup (self->token);
  max_in_flight = self->max_in_flight;
  zero_copy = self->zero_copy;
  hello.bitrate = MAX (self->bitrate, 0);
  hello.keyframe_interval = MAX (self->keyframe_interval, 0);
  GST_OBJECT_UNLOCK (self);
  warn_if_bitrate_implausible (self, hello.bitrate);

  hxfr_limits_init_default (&limits);
  conn = hxfr_conn_connect (self->address, hxfr_deadline_left (deadline),
      self->cancellable, error);
  if (!conn)
    goto out;

  self->host_resource_ids = TRUE;
  self->host_max_width = HXFR_DEFAULT_MAX_DIMENSION;
  self->host_max_height = HXFR_DEFAULT_MAX_DIMENSION;
  self->host_encoder[0] = '\0';
  if (protocol == GST_VSOCK_ENC_PROTOCOL_V1)
    goto v1;

  hello.min_version = 2;
  hello.max_version = 2;
  hello.codec = HXFR_CODEC_H264;
  hello.max_in_flight = max_in_flight;
  hello.guest_flags = zero_copy ? HXFR_GUEST_RESOURCE_IDS : 0;
  hello.token_len = token ? MIN (strlen (token), HXFR_MAX_TOKEN) : 0;
  len = hxfr_hello_write (&hello, fixed);
  tail.buffer = token;
  tail.size = hello.token_len;
  if (!hxfr_conn_send (conn, HXFR_MSG_HELLO, 0, 1, fixed, len, &tail,
          hello.token_len ? 1 : 0, hxfr_deadline_left (deadline),
          self->cancellable, error))
    goto failed;

  while (TRUE) {
    if (!hxfr_conn_receive (conn, HXFR_ROLE_GUEST, &limits, &msg,
            hxfr_deadline_left (deadline), hxfr_deadline_left (deadline),
            self->cancellable, &err)) {
      if (g_error_matches (err, G_IO_ERROR, G_IO_ERROR_CONNECTION_CLOSED)) {
        /* a host that hangs up on HELLO: try once more as a v1 guest */
        GST_INFO_OBJECT (self, "host closed on HELLO, reconnecting as v1");
        g_clear_error (&err);
        hxfr_conn_unref (conn);
        conn = hxfr_conn_connect (self->address, hxfr_deadline_left (deadline),
            self->cancellable, error);
        if (!conn)
          goto out;
        goto v1;
      }
      if (g_error_matches (err, G_IO_ERROR, G_IO_ERROR_TIMED_OUT)) {
        g_clear_error (&err);
        g_set_error (error, G_IO_ERROR, G_IO_ERROR_TIMED_OUT,
            "no HELLO_ACK within %" G_GINT64_FORMAT " ms",
            self->timeout_us / 1000);
      } else {
        g_propagate_prefixed_error (error, err, "no answer to HELLO: ");
      }
      goto failed;
    }
    switch (msg.header.type) {
      case HXFR_MSG_PING:
        if (!hxfr_conn_send (conn, HXFR_MSG_PONG, 0, 1, NULL, 0, NULL, 0,
                hxfr_deadline_left (deadline), self->cancellable, error))
          goto failed;
        continue;
      case HXFR_MSG_PONG:
      case HXFR_MSG_CONFIG_RESP:
        continue;
      case HXFR_MSG_HELLO_ACK:
        if (msg.u.hello_ack.version != 2
            || msg.u.hello_ack.codec != HXFR_CODEC_H264) {
          g_set_error (error, HXFR_ERROR, HXFR_ERR_INVALID,
              "host accepted version %u codec 0x%08x, asked for 2 and H264",
              msg.u.hello_ack.version, msg.u.hello_ack.codec);
          goto failed;
        }
        self->version = 2;
        self->in_flight_max = CLAMP (msg.u.hello_ack.max_in_flight, 1,
            max_in_flight);
        self->host_resource_ids =
            (msg.u.hello_ack.host_flags & HXFR_HOST_RESOURCE_IDS) != 0;
        if (msg.u.hello_ack.max_width)
          self->host_max_width = msg.u.hello_ack.max_width;
        if (msg.u.hello_ack.max_height)
          self->host_max_height = msg.u.hello_ack.max_height;
        g_strlcpy (self->host_encoder, msg.u.hello_ack.encoder,
            sizeof (self->host_encoder));
        goto out;
      case HXFR_MSG_ERROR:
        if (error_is_fatal_for_v2 (msg.u.error.code)) {
          g_set_error (error, HXFR_ERROR, msg.u.error.code,
              "host refused the session: %s (%d, %s)", msg.u.error.message,
              msg.u.error.code, hxfr_error_code_name (msg.u.error.code));
          goto failed;
        }
        GST_INFO_OBJECT (self, "host answered HELLO with error %d (%s): "
            "a v1 host", msg.u.error.code, msg.u.error.message);
        /* a v1 host that closes after the ERROR is reconnected to once */
        if (!hxfr_conn_receive (conn, HXFR_ROLE_GUEST, &limits, &msg,
                MIN (V1_PROBE_US, hxfr_deadline_left (deadline)),
                hxfr_deadline_left (deadline), self->cancellable, &err)) {
          if (g_error_matches (err, G_IO_ERROR, G_IO_ERROR_CONNECTION_CLOSED)) {
            g_clear_error (&err);
            hxfr_conn_unref (conn);
            conn = hxfr_conn_connect (self->address,
                hxfr_deadline_left (deadline), self->cancellable, error);
            if (!conn)
              goto out;
          } else if (!g_error_matches (err, G_IO_ERROR, G_IO_ERROR_TIMED_OUT)) {
            g_propagate_error (error, err);
            goto failed;
          }
          g_clear_error (&err);
        } else if (msg.header.type == HXFR_MSG_PING) {
          if (!hxfr_conn_send (conn, HXFR_MSG_PONG, 0, 1, NULL, 0, NULL, 0,
                  hxfr_deadline_left (deadline), self->cancellable, error))
            goto failed;
        } else if (msg.header.type != HXFR_MSG_PONG
            && msg.header.type != HXFR_MSG_CONFIG_RESP) {
          g_set_error (error, HXFR_ERROR, HXFR_ERR_INVALID,
              "unexpected %s from a v1 host before any request",
              hxfr_msg_type_name (msg.header.type));
          goto failed;
        }
        goto v1;
      default:
        g_set_error (error, HXFR_ERROR, HXFR_ERR_INVALID,
            "unexpected %s in answer to HELLO",
            hxfr_msg_type_name (msg.header.type));
        goto failed;
    }
  }

v1:
  self->version = 1;
  self->in_flight_max = 1;
  self->host_resource_ids = TRUE;
  g_strlcpy (self->host_encoder, "", sizeof (self->host_encoder));
  goto out;

failed:
  hxfr_conn_unref (conn);
  conn = NULL;
out:
  g_free (token);
  return conn;
}

/* Called by whichever thread notices the connection @conn is unusable:
 * releases the frames in flight and either posts an error or (reconnect
 * mode) a warning and lets the streaming thread reconnect. */
static void
connection_failed (GstVsockEnc * self, HxfrConn * conn, const gchar * what,
    const GError * err)
{
  GQueue released = G_QUEUE_INIT;
  PendingFrame *p;
  gboolean reconnect, quiet;

  /* a write into a closed socket says "broken pipe" (the same code in
   * GIO): the host hung up either way */
  if (g_error_matches (err, G_IO_ERROR, G_IO_ERROR_CONNECTION_CLOSED))
    what = "connection closed by the host";

  g_mutex_lock (&self->lock);
  if (self->conn != conn || self->conn_lost || self->conn_failing) {
    g_mutex_unlock (&self->lock);
    return;
  }
  self->conn_failing = TRUE;
  quiet = self->stopping;
  reconnect = self->disconnect_mode == GST_VSOCK_ENC_ON_DISCONNECT_RECONNECT;
  g_mutex_unlock (&self->lock);

  hxfr_conn_shutdown (conn);

  /* posted before the streaming thread can see the error flow: upstream
   * then posts its generic "Internal data stream error" after ours, and an
   * application showing the first error shows the reason */
  if (quiet) {
    GST_DEBUG_OBJECT (self, "%s during shutdown: %s", what, err->message);
  } else if (reconnect) {
    GST_ELEMENT_WARNING (self, RESOURCE, READ,
        ("Lost the host bridge at %s (%s: %s), reconnecting",
            self->address_str, what, err->message), (NULL));
  } else {
    GST_ELEMENT_ERROR (self, RESOURCE, READ,
        ("Host bridge at %s: %s: %s", self->address_str, what, err->message),
        ("%s", err->message));
  }

  /* no reconnect can have replaced conn meanwhile: that waits for
   * conn_lost */
  g_mutex_lock (&self->lock);
  self->conn_lost = TRUE;
  self->conn_failing = FALSE;
  if (!reconnect && !quiet)
    self->flow_ret = GST_FLOW_ERROR;
  released = self->pending;
  g_queue_init (&self->pending);
  g_cond_broadcast (&self->cond);
  g_mutex_unlock (&self->lock);

  /* released, not stuck: the base class forgets them without output */
  GST_VIDEO_ENCODER_STREAM_LOCK (self);
  while ((p = g_queue_pop_head (&released))) {
    if (p->frame) {
      gst_video_encoder_finish_frame (GST_VIDEO_ENCODER (self), p->frame);
      p->frame = NULL;
    }
    pending_frame_free (p);
  }
  GST_VIDEO_ENCODER_STREAM_UNLOCK (self);
}

/* Streaming thread, stream lock held. A send failed: the host usually said
 * why (an ERROR) or still has answers in the socket before its end; the
 * reader reads them and reports first, within a bound. */
static void
send_failed (GstVsockEnc * self, HxfrConn * conn, const gchar * what,
    const GError * err)
{
  gint64 deadline = g_get_monotonic_time () +
      MIN (self->timeout_us, G_USEC_PER_SEC);
  gboolean reported;

  GST_VIDEO_ENCODER_STREAM_UNLOCK (self);
  g_mutex_lock (&self->lock);
  while (!self->conn_lost && self->conn == conn && !self->stopping) {
    if (!g_cond_wait_until (&self->cond, &self->lock, deadline))
      break;
  }
  reported = self->conn_lost || self->conn != conn;
  g_mutex_unlock (&self->lock);
  if (!reported)
    connection_failed (self, conn, what, err);
  GST_VIDEO_ENCODER_STREAM_LOCK (self);
}

static void
record_flow (GstVsockEnc * self, GstFlowReturn ret)
{
  if (ret == GST_FLOW_OK)
    return;
  g_mutex_lock (&self->lock);
  if (self->flow_ret == GST_FLOW_OK)
    self->flow_ret = ret;
  g_cond_broadcast (&self->cond);
  g_mutex_unlock (&self->lock);
}

/* Annex B start code length at @d (3 or 4), 0 if none. */
static guint
start_code_length (const guint8 * d, gsize size)
{
  if (size >= 3 && d[0] == 0 && d[1] == 0 && d[2] == 1)
    return 3;
  if (size >= 4 && d[0] == 0 && d[1] == 0 && d[2] == 0 && d[3] == 1)
    return 4;
  return 0;
}

/* An access unit with its leading AUD removed (@want_aud FALSE) or added
 * (TRUE) as needed. An AU that is nothing but an AUD (the bridge's null
 * encoder) is left alone. */
static GstBuffer *
set_aud (GstBuffer * au, gboolean want_aud)
{
  static const guint8 aud_nal[] = { 0x00, 0x00, 0x00, 0x01, 0x09, 0xf0 };
  GstMapInfo map;
  guint sc;
  gsize next = 0, i;
  gboolean has_aud;

  if (!gst_buffer_map (au, &map, GST_MAP_READ))
    return au;
  sc = start_code_length (map.data, map.size);
  /* an AUD is always an access unit's first NAL (H.264 7.4.1.2.3) */
  has_aud = sc && map.size > sc && (map.data[sc] & 0x1f) == 9;
  if (has_aud && !want_aud) {
    for (i = sc + 1; i + 3 <= map.size && !next; i++)
      if (start_code_length (map.data + i, map.size - i))
        next = i;
  }
  gst_buffer_unmap (au, &map);

  if (next) {
    GstBuffer *rest = gst_buffer_copy_region (au, GST_BUFFER_COPY_ALL, next,
        gst_buffer_get_size (au) - next);

    gst_buffer_unref (au);
    return rest;
  }
  if (!has_aud && want_aud)
    gst_buffer_prepend_memory (au, gst_memory_new_wrapped
        (GST_MEMORY_FLAG_READONLY, (gpointer) aud_nal, sizeof (aud_nal), 0,
            sizeof (aud_nal), NULL, NULL));
  return au;
}

/* One FRAME_RESPONSE(2) whose fixed part is in @msg; reads its tail. */
static gboolean
handle_answer (GstVsockEnc * self, HxfrConn * conn, HxfrMessage * msg,
    GError ** error)
{
  HxfrFrameResponse *r = &msg->u.frame_response;
  GstBuffer *au = NULL;
  PendingFrame *p;
  gboolean v2 = msg->header.type == HXFR_MSG_FRAME_RESPONSE2;
  gint64 now;
  GstFlowReturn ret = GST_FLOW_OK;

  if (msg->tail_size > 0 && (!v2 || r->status == HXFR_STATUS_OK)) {
    GstMapInfo map;
    gsize size = msg->tail_size;
    gboolean ok;

    au = gst_buffer_new_allocate (NULL, size, NULL);
    gst_buffer_map (au, &map, GST_MAP_WRITE);
    ok = hxfr_conn_read_exact (conn, map.data, size, self->timeout_us,
        self->cancellable, error);
    if (ok && !v2)
      ok = hxfr_nal_list_unpack (map.data, size, r->nal_count, &size, error);
    gst_buffer_unmap (au, &map);
    if (!ok) {
      gst_buffer_unref (au);
      return FALSE;
    }
    gst_buffer_set_size (au, size);
    if (size == 0) {
      gst_clear_buffer (&au);
    } else {
      gboolean want_aud;

      GST_OBJECT_LOCK (self);
      want_aud = self->aud;
      GST_OBJECT_UNLOCK (self);
      au = set_aud (au, want_aud);
    }
  }

  GST_VIDEO_ENCODER_STREAM_LOCK (self);
  g_mutex_lock (&self->lock);
  p = g_queue_peek_head (&self->pending);
  if (!p || (v2 && p->seq != r->seq)) {
    if (p)
      g_set_error (error, HXFR_ERROR, HXFR_ERR_INVALID,
          "answer for frame %u while frame %u is the oldest in flight",
          r->seq, p->seq);
    else
      g_set_error (error, HXFR_ERROR, HXFR_ERR_INVALID,
          "answer with no frame in flight");
    g_mutex_unlock (&self->lock);
    GST_VIDEO_ENCODER_STREAM_UNLOCK (self);
    gst_clear_buffer (&au);
    return FALSE;
  }
  g_queue_pop_head (&self->pending);
  now = g_get_monotonic_time ();
  self->rtt_last = now - p->sent_us;
  self->rtt_min = self->rtt_count ? MIN (self->rtt_min, self->rtt_last) :
      self->rtt_last;
  self->rtt_max = MAX (self->rtt_max, self->rtt_last);
  self->rtt_sum += self->rtt_last;
  self->rtt_count++;
  if (v2 && r->status == HXFR_STATUS_DROPPED)
    self->frames_dropped++;
  else if (v2 && r->status == HXFR_STATUS_FAILED)
    self->frames_failed++;
  else
    self->frames_answered++;
  g_cond_broadcast (&self->cond);
  g_mutex_unlock (&self->lock);

  if (v2 && r->status == HXFR_STATUS_FAILED)
    GST_ELEMENT_WARNING (self, STREAM, ENCODE,
        ("The host could not encode frame %u", r->seq),
        ("error %d (%s): %s", r->error_code,
            hxfr_error_code_name (r->error_code), msg->text));

  if (p->frame) {
    GstVideoCodecFrame *frame = p->frame;

    p->frame = NULL;
    GST_LOG_OBJECT (self, "frame %u answered (%s, %" G_GSIZE_FORMAT
        " bytes, keyframe %d)", frame->system_frame_number,
        v2 ? (r->status == HXFR_STATUS_OK ? "ok" : "dropped/failed") : "v1",
        au ? gst_buffer_get_size (au) : 0, r->keyframe);
    if (au) {
      if (r->keyframe) {
        GST_VIDEO_CODEC_FRAME_SET_SYNC_POINT (frame);
        if (!self->profile_known && self->input_state) {
          GstMapInfo map;
          const gchar *profile = NULL;

          if (gst_buffer_map (au, &map, GST_MAP_READ)) {
            profile = h264_profile (map.data, map.size);
            gst_buffer_unmap (au, &map);
          }
          self->profile_known = TRUE;
          if (profile) {
            GstCaps *caps = gst_caps_new_simple ("video/x-h264",
                "stream-format", G_TYPE_STRING, "byte-stream",
                "alignment", G_TYPE_STRING, "au",
                "profile", G_TYPE_STRING, profile, NULL);
            GstVideoCodecState *state =
                gst_video_encoder_set_output_state (GST_VIDEO_ENCODER (self),
                caps, self->input_state);

            gst_video_codec_state_unref (state);
          }
        }
      }
      frame->output_buffer = au;
      au = NULL;
    }
    ret = gst_video_encoder_finish_frame (GST_VIDEO_ENCODER (self), frame);
  }
  GST_VIDEO_ENCODER_STREAM_UNLOCK (self);
  gst_clear_buffer (&au);
  pending_frame_free (p);
  record_flow (self, ret);
  return TRUE;
}

/* A v1 ERROR answers the oldest frame: released with a warning, the
 * session goes on (a host that ends it closes the connection next). */
static gboolean
handle_v1_error (GstVsockEnc * self, HxfrMessage * msg, GError ** error)
{
  PendingFrame *p;
  GstFlowReturn ret = GST_FLOW_OK;

  GST_VIDEO_ENCODER_STREAM_LOCK (self);
  g_mutex_lock (&self->lock);
  p = g_queue_pop_head (&self->pending);
  if (p)
    self->frames_failed++;
  g_cond_broadcast (&self->cond);
  g_mutex_unlock (&self->lock);
  if (!p) {
    GST_VIDEO_ENCODER_STREAM_UNLOCK (self);
    g_set_error (error, HXFR_ERROR, msg->u.error.code,
        "host error %d (%s): %s", msg->u.error.code,
        hxfr_error_code_name (msg->u.error.code), msg->u.error.message);
    return FALSE;
  }
  GST_ELEMENT_WARNING (self, STREAM, ENCODE,
      ("The host could not encode a frame"),
      ("error %d (%s): %s", msg->u.error.code,
          hxfr_error_code_name (msg->u.error.code), msg->u.error.message));
  if (p->frame) {
    ret = gst_video_encoder_finish_frame (GST_VIDEO_ENCODER (self), p->frame);
    p->frame = NULL;
  }
  GST_VIDEO_ENCODER_STREAM_UNLOCK (self);
  pending_frame_free (p);
  record_flow (self, ret);
  return TRUE;
}

static gpointer
reader_thread (gpointer data)
{
  GstVsockEnc *self = data;
  HxfrConn *conn;
  HxfrLimits limits;
  HxfrMessage msg;
  GError *err = NULL;
  const gchar *what = "reading";

  hxfr_limits_init_default (&limits);
  g_mutex_lock (&self->lock);
  conn = hxfr_conn_ref (self->conn);
  g_mutex_unlock (&self->lock);

  while (TRUE) {
    PendingFrame *oldest;
    gint64 wait_us, now;
    guint32 oldest_seq = 0;
    gboolean ok;

    g_mutex_lock (&self->lock);
    if (self->stopping || self->conn != conn || self->conn_lost) {
      g_mutex_unlock (&self->lock);
      break;
    }
    now = g_get_monotonic_time ();
    oldest = g_queue_peek_head (&self->pending);
    /* wake for the oldest request's deadline; newer ones end later */
    if (oldest) {
      wait_us = MAX (oldest->deadline_us - now, 0);
      oldest_seq = oldest->seq;
    } else {
      wait_us = 200 * G_TIME_SPAN_MILLISECOND;
    }
    g_mutex_unlock (&self->lock);

    if (!hxfr_conn_wait_readable (conn, wait_us, self->cancellable, &err)) {
      if (g_error_matches (err, G_IO_ERROR, G_IO_ERROR_TIMED_OUT)) {
        g_clear_error (&err);
        if (oldest) {
          g_set_error (&err, G_IO_ERROR, G_IO_ERROR_TIMED_OUT,
              "no answer to frame %u within %" G_GINT64_FORMAT " ms",
              oldest_seq, self->timeout_us / 1000);
          what = "timeout";
          goto failed;
        }
        continue;
      }
      goto failed;
    }

    if (!hxfr_conn_receive (conn, HXFR_ROLE_GUEST, &limits, &msg,
            self->timeout_us, self->timeout_us, self->cancellable, &err)) {
      what = "bad answer";
      goto failed;
    }
    GST_LOG_OBJECT (self, "received %s", hxfr_msg_type_name (msg.header.type));

    switch (msg.header.type) {
      case HXFR_MSG_FRAME_RESPONSE:
      case HXFR_MSG_FRAME_RESPONSE2:
        if ((msg.header.type == HXFR_MSG_FRAME_RESPONSE2) !=
            (self->version >= 2)) {
          g_set_error (&err, HXFR_ERROR, HXFR_ERR_INVALID,
              "%s in a version %u session",
              hxfr_msg_type_name (msg.header.type), self->version);
          ok = FALSE;
        } else {
          ok = handle_answer (self, conn, &msg, &err);
        }
        break;
      case HXFR_MSG_ERROR:
        if (self->version < 2) {
          ok = handle_v1_error (self, &msg, &err);
        } else {
          g_set_error (&err, HXFR_ERROR, msg.u.error.code,
              "host error %d (%s): %s", msg.u.error.code,
              hxfr_error_code_name (msg.u.error.code), msg.u.error.message);
          ok = FALSE;
        }
        what = "host error";
        break;
      case HXFR_MSG_PING:
        ok = hxfr_conn_send (conn, HXFR_MSG_PONG, 0, 1, NULL, 0, NULL, 0,
            self->timeout_us, self->cancellable, &err);
        break;
      case HXFR_MSG_PONG:
      case HXFR_MSG_CONFIG_RESP:
        ok = TRUE;
        break;
      default:
        g_set_error (&err, HXFR_ERROR, HXFR_ERR_INVALID,
            "unexpected %s", hxfr_msg_type_name (msg.header.type));
        ok = FALSE;
        break;
    }
    if (!ok) {
      if (g_strcmp0 (what, "host error") != 0)
        what = "bad answer";
      goto failed;
    }
    what = "reading";
  }
  hxfr_conn_unref (conn);
  return NULL;

failed:
  connection_failed (self, conn, what, err);
  g_clear_error (&err);
  hxfr_conn_unref (conn);
  return NULL;
}

/* Installs @conn as the current connection and starts its reader. */
static void
start_session (GstVsockEnc * self, HxfrConn * conn)
{
  g_mutex_lock (&self->lock);
  self->conn = conn;
  self->conn_lost = FALSE;
  self->next_seq = 0;
  g_mutex_unlock (&self->lock);
  self->reader = g_thread_new ("vsockenc-reader", reader_thread, self);
}

/* Stops the reader and drops the connection (bytes counted in the stats).
 * Call without the stream lock: the reader may need it to finish. */
static void
end_session (GstVsockEnc * self)
{
  HxfrConn *conn;
  GQueue left;
  PendingFrame *p;

  g_mutex_lock (&self->lock);
  conn = self->conn;
  g_mutex_unlock (&self->lock);
  if (conn)
    hxfr_conn_shutdown (conn);
  if (self->reader) {
    g_thread_join (self->reader);
    self->reader = NULL;
  }
  g_mutex_lock (&self->lock);
  self->conn = NULL;
  left = self->pending;
  g_queue_init (&self->pending);
  if (conn) {
    self->bytes_sent_done += hxfr_conn_get_bytes_sent (conn);
    self->bytes_received_done += hxfr_conn_get_bytes_received (conn);
  }
  g_mutex_unlock (&self->lock);
  while ((p = g_queue_pop_head (&left)))
    pending_frame_free (p);
  if (conn)
    hxfr_conn_unref (conn);
}

/* Streaming thread, stream lock held. FALSE while the host is unreachable
 * (the caller drops the frame). */
static gboolean
try_reconnect (GstVsockEnc * self)
{
  HxfrConn *conn;
  GError *err = NULL;
  gint64 now = g_get_monotonic_time ();

  if (now < self->next_connect_us)
    return FALSE;

  GST_VIDEO_ENCODER_STREAM_UNLOCK (self);
  end_session (self);
  conn = connect_and_negotiate (self, &err);
  GST_VIDEO_ENCODER_STREAM_LOCK (self);

  if (!conn) {
    self->backoff_ms = CLAMP (self->backoff_ms * 2, BACKOFF_MIN_MS,
        BACKOFF_MAX_MS);
    self->next_connect_us = g_get_monotonic_time () +
        self->backoff_ms * G_TIME_SPAN_MILLISECOND;
    GST_WARNING_OBJECT (self, "reconnecting to %s failed (%s), next try in "
        "%u ms", self->address_str, err->message, self->backoff_ms);
    g_clear_error (&err);
    return FALSE;
  }
  GST_INFO_OBJECT (self, "reconnected to %s, version %u", self->address_str,
      self->version);
  self->backoff_ms = 0;
  self->next_connect_us = 0;
  self->need_key = TRUE;
  g_atomic_int_set (&self->reconfigure, TRUE);
  g_mutex_lock (&self->lock);
  self->reconnects++;
  g_mutex_unlock (&self->lock);
  start_session (self, conn);

  /* the host behind the address may now speak another version */
  if (self->input_state) {
    GstVideoInfo *info = &self->info;
    guint32 fourcc = hxfr_video_format_to_fourcc (GST_VIDEO_INFO_FORMAT (info),
        self->version);

    if (!fourcc || (self->version < 2 && fourcc == HXFR_FORMAT_NV12
            && (GST_VIDEO_INFO_WIDTH (info) % 2
                || GST_VIDEO_INFO_HEIGHT (info) % 2))) {
      GST_ELEMENT_ERROR (self, CORE, NEGOTIATION,
          ("The host bridge at %s now speaks HXFR v%u, which cannot carry "
              "%ux%u %s", self->address_str, self->version,
              GST_VIDEO_INFO_WIDTH (info), GST_VIDEO_INFO_HEIGHT (info),
              GST_VIDEO_INFO_NAME (info)), (NULL));
      g_mutex_lock (&self->lock);
      self->flow_ret = GST_FLOW_NOT_NEGOTIATED;
      g_mutex_unlock (&self->lock);
      return FALSE;
    }
    self->fourcc = fourcc;
  }
  return TRUE;
}

/* Sends CONTROL (v2) or CONFIG_REQ (v1) when a setting changed. */
static gboolean
apply_reconfigure (GstVsockEnc * self, HxfrConn * conn, GError ** error)
{
  guint8 fixed[HXFR_MAX_FIXED_SIZE];
  gsize len;
  guint type;
  GstVideoInfo *info = &self->info;
  gint bitrate, kfi;
  gboolean ok;

  if (!g_atomic_int_compare_and_exchange (&self->reconfigure, TRUE, FALSE))
    return TRUE;

  GST_OBJECT_LOCK (self);
  bitrate = self->bitrate;
  kfi = self->keyframe_interval;
  GST_OBJECT_UNLOCK (self);
  warn_if_bitrate_implausible (self, bitrate);

  if (self->version >= 2) {
    HxfrControl c = { 0, };

    /* bitrate 0: the host's own default, left as it is */
    c.mask = (bitrate > 0 ? HXFR_CONTROL_BITRATE : 0) |
        HXFR_CONTROL_KEYFRAME_INTERVAL;
    c.bitrate = MAX (bitrate, 0);
    c.keyframe_interval = MAX (kfi, 0);
    if (GST_VIDEO_INFO_FPS_N (info) > 0 && GST_VIDEO_INFO_FPS_D (info) > 0) {
      c.mask |= HXFR_CONTROL_FRAMERATE;
      c.fps_n = GST_VIDEO_INFO_FPS_N (info);
      c.fps_d = GST_VIDEO_INFO_FPS_D (info);
    }
    len = hxfr_control_write (&c, fixed);
    type = HXFR_MSG_CONTROL;
  } else {
    HxfrConfig c = { 0, };

    c.width = GST_VIDEO_INFO_WIDTH (info);
    c.height = GST_VIDEO_INFO_HEIGHT (info);
    c.bitrate = MAX (bitrate, 0);
    c.fps_n = MAX (GST_VIDEO_INFO_FPS_N (info), 0);
    c.fps_d = MAX (GST_VIDEO_INFO_FPS_D (info), 0);
    c.profile = 100;
    c.realtime = 1;
    len = hxfr_config_write (&c, fixed);
    type = HXFR_MSG_CONFIG_REQ;
  }
  GST_DEBUG_OBJECT (self, "sending %s: bitrate %d, keyframe-interval %d",
      hxfr_msg_type_name (type), bitrate, kfi);
  /* never block on the socket while the reader may need the stream lock */
  GST_VIDEO_ENCODER_STREAM_UNLOCK (self);
  ok = hxfr_conn_send (conn, type, 0, 1, fixed, len, NULL, 0,
      self->timeout_us, self->cancellable, error);
  GST_VIDEO_ENCODER_STREAM_LOCK (self);
  return ok;
}

typedef struct
{
  guint32 id;
  gconstpointer ops;
} CachedResource;

/* The virtio-gpu resource id of a single-DMA-BUF buffer, 0 if none. The
 * answer (found or not) is cached on the memory, so a pool of reused
 * buffers costs the ioctls once per buffer. */
static guint32
lookup_resource_id (GstVsockEnc * self, GstBuffer * buf, gsize * mem_offset)
{
  GstMemory *mem;
  CachedResource *cached;
  guint32 id = 0;
  gint ret;

  if (gst_buffer_n_memory (buf) != 1)
    return 0;
  mem = gst_buffer_peek_memory (buf, 0);
  if (!gst_is_dmabuf_memory (mem) && !vsockenc_gl_is_texture (mem))
    return 0;
  *mem_offset = mem->offset;

  if (!self->drm_tried) {
    const VsockEncDrmOps *hook =
        g_object_get_data (G_OBJECT (self), VSOCKENC_DRM_OPS_KEY);

    self->drm_tried = TRUE;
    if (hook) {
      self->drm_ops = hook;
    } else {
      gchar *device;

      GST_OBJECT_LOCK (self);
      device = g_strdup (self->drm_device);
      GST_OBJECT_UNLOCK (self);
      self->drm_fd = device ? vsockenc_drm_open (device) : -ENOENT;
      if (self->drm_fd >= 0) {
        self->drm_real = *vsockenc_drm_default_ops ();
        self->drm_real.user_data = GINT_TO_POINTER (self->drm_fd);
        self->drm_ops = &self->drm_real;
      } else {
        GST_INFO_OBJECT (self, "no render node %s (%s): DMA-BUFs go as "
            "pixels", device, g_strerror (-self->drm_fd));
      }
      g_free (device);
    }
  }
  if (!self->drm_ops)
    return 0;

  cached = gst_mini_object_get_qdata (GST_MINI_OBJECT (mem), resource_quark);
  if (cached && cached->ops == self->drm_ops)
    return cached->id;

  if (vsockenc_gl_is_texture (mem))
    ret = vsockenc_gl_lookup_resource (self->drm_ops, mem, &id);
  else
    ret = vsockenc_drm_lookup_resource (self->drm_ops,
        gst_dmabuf_memory_get_fd (mem), &id);
  if (ret < 0) {
    GST_DEBUG_OBJECT (self, "%" GST_PTR_FORMAT " is not a virtio-gpu "
        "resource: %s", mem, g_strerror (-ret));
    id = 0;
  }
  cached = g_new0 (CachedResource, 1);
  cached->id = id;
  cached->ops = self->drm_ops;
  gst_mini_object_set_qdata (GST_MINI_OBJECT (mem), resource_quark, cached,
      g_free);
  return id;
}

static void
dmabuf_sync (GstBuffer * buf, gboolean start)
{
#if defined(__linux__) && defined(DMA_BUF_IOCTL_SYNC)
  guint i;

  for (i = 0; i < gst_buffer_n_memory (buf); i++) {
    GstMemory *mem = gst_buffer_peek_memory (buf, i);
    struct dma_buf_sync sync = { 0, };

    if (!gst_is_dmabuf_memory (mem))
      continue;
    sync.flags = DMA_BUF_SYNC_READ |
        (start ? DMA_BUF_SYNC_START : DMA_BUF_SYNC_END);
    /* not every exporter (memfd, for one) implements it: harmless */
    while (ioctl (gst_dmabuf_memory_get_fd (mem), DMA_BUF_IOCTL_SYNC,
            &sync) < 0 && (errno == EINTR || errno == EAGAIN));
  }
#endif
}

/* After a bounded wait for the host: a wait that ran out is the
 * connection failing (error or reconnect, as configured), and its flow
 * return replaces @ret. Drops the reference on @conn. */
static GstFlowReturn
end_wait (GstVsockEnc * self, HxfrConn * conn, gboolean timed_out,
    GstFlowReturn ret)
{
  if (timed_out) {
    GError *err = g_error_new (G_IO_ERROR, G_IO_ERROR_TIMED_OUT,
        "no answer within %" G_GINT64_FORMAT " ms", self->timeout_us / 1000);

    connection_failed (self, conn, "timeout", err);
    g_error_free (err);
    g_mutex_lock (&self->lock);
    ret = self->flow_ret;
    g_mutex_unlock (&self->lock);
  }
  hxfr_conn_unref (conn);
  return ret;
}

/* Streaming thread, stream lock held on entry and exit; released while
 * waiting. Waits for room for one more request. */
static GstFlowReturn
wait_for_room (GstVsockEnc * self)
{
  GstFlowReturn ret;
  gint64 deadline;
  gboolean timed_out = FALSE;
  HxfrConn *conn = NULL;

  GST_VIDEO_ENCODER_STREAM_UNLOCK (self);
  g_mutex_lock (&self->lock);
  /* the reader enforces the per-answer timeout; this is a backstop */
  deadline = g_get_monotonic_time () + self->timeout_us + G_USEC_PER_SEC;
  while (self->pending.length >= self->in_flight_max && !self->flushing
      && !self->stopping && !self->conn_lost && self->flow_ret == GST_FLOW_OK) {
    if (!g_cond_wait_until (&self->cond, &self->lock, deadline)) {
      timed_out = TRUE;
      conn = self->conn ? hxfr_conn_ref (self->conn) : NULL;
      break;
    }
  }
  if (self->flushing || self->stopping)
    ret = GST_FLOW_FLUSHING;
  else
    ret = self->flow_ret;
  g_mutex_unlock (&self->lock);

  if (conn)
    ret = end_wait (self, conn, timed_out, ret);
  GST_VIDEO_ENCODER_STREAM_LOCK (self);
  return ret;
}

/* Streaming thread: waits until every frame in flight is answered, each
 * wait bounded by the timeout. */
static GstFlowReturn
drain (GstVsockEnc * self)
{
  GstFlowReturn ret;
  gint64 deadline;
  guint last_len;
  gboolean timed_out = FALSE;
  HxfrConn *conn = NULL;

  GST_VIDEO_ENCODER_STREAM_UNLOCK (self);
  g_mutex_lock (&self->lock);
  last_len = self->pending.length;
  deadline = g_get_monotonic_time () + self->timeout_us + G_USEC_PER_SEC;
  while (self->pending.length > 0 && !self->flushing && !self->stopping
      && !self->conn_lost && self->flow_ret == GST_FLOW_OK) {
    if (self->pending.length < last_len) {
      last_len = self->pending.length;
      deadline = g_get_monotonic_time () + self->timeout_us + G_USEC_PER_SEC;
    }
    if (!g_cond_wait_until (&self->cond, &self->lock, deadline)) {
      timed_out = TRUE;
      conn = self->conn ? hxfr_conn_ref (self->conn) : NULL;
      break;
    }
  }
  ret = (self->flushing || self->stopping) ? GST_FLOW_FLUSHING :
      self->flow_ret;
  g_mutex_unlock (&self->lock);

  if (conn)
    ret = end_wait (self, conn, timed_out, ret);
  GST_VIDEO_ENCODER_STREAM_LOCK (self);
  /* frames still in flight are kept on EOS from a flushing seek, etc. */
  return ret == GST_FLOW_FLUSHING ? GST_FLOW_OK : ret;
}

/* Init/finalize */

static void
gst_vsock_enc_init (GstVsockEnc * self)
{
  self->socket_path = g_strdup (DEFAULT_SOCKET_PATH);
  self->cid = DEFAULT_CID;
  self->port = DEFAULT_PORT;
  self->tcp_host = g_strdup (DEFAULT_TCP_HOST);
  self->tcp_port = DEFAULT_TCP_PORT;
  self->bitrate = DEFAULT_BITRATE;
  self->keyframe_interval = DEFAULT_KEYFRAME_INTERVAL;
  self->max_in_flight = DEFAULT_MAX_IN_FLIGHT;
  self->timeout_ms = DEFAULT_TIMEOUT;
  self->on_disconnect = DEFAULT_ON_DISCONNECT;
  self->protocol = DEFAULT_PROTOCOL;
  self->token = g_strdup (DEFAULT_TOKEN);
  self->zero_copy = DEFAULT_ZERO_COPY;
  self->drm_device = g_strdup (DEFAULT_DRM_DEVICE);
  self->aud = DEFAULT_AUD;
  self->stats_interval_ms = DEFAULT_STATS_INTERVAL;
  self->drm_fd = -1;
  self->flow_ret = GST_FLOW_OK;
  g_mutex_init (&self->lock);
  g_cond_init (&self->cond);
  g_queue_init (&self->pending);
}

static void
gst_vsock_enc_finalize (GObject * object)
{
  GstVsockEnc *self = GST_VSOCK_ENC (object);

  g_free (self->socket_path);
  g_free (self->tcp_host);
  g_free (self->token);
  g_free (self->drm_device);
  g_clear_object (&self->cancellable);
  g_clear_pointer (&self->address, hxfr_address_free);
  g_clear_pointer (&self->address_str, g_free);
  g_mutex_clear (&self->lock);
  g_cond_clear (&self->cond);
  G_OBJECT_CLASS (gst_vsock_enc_parent_class)->finalize (object);
}

static GstStructure *
build_stats (GstVsockEnc * self)
{
  GstStructure *s;
  guint64 sent, received;

  g_mutex_lock (&self->lock);
  sent = self->bytes_sent_done;
  received = self->bytes_received_done;
  if (self->conn) {
    sent += hxfr_conn_get_bytes_sent (self->conn);
    received += hxfr_conn_get_bytes_received (self->conn);
  }
  s = gst_structure_new ("application/x-vsockenc-stats",
      "frames-sent", G_TYPE_UINT64, self->frames_sent,
      "frames-answered", G_TYPE_UINT64, self->frames_answered,
      "frames-dropped", G_TYPE_UINT64, self->frames_dropped,
      "frames-failed", G_TYPE_UINT64, self->frames_failed,
      "frames-in-flight", G_TYPE_UINT, self->pending.length,
      "bytes-sent", G_TYPE_UINT64, sent,
      "bytes-received", G_TYPE_UINT64, received,
      "rtt-min-us", G_TYPE_UINT64, self->rtt_min,
      "rtt-avg-us", G_TYPE_UINT64,
      self->rtt_count ? self->rtt_sum / self->rtt_count : (guint64) 0,
      "rtt-max-us", G_TYPE_UINT64, self->rtt_max,
      "rtt-last-us", G_TYPE_UINT64, self->rtt_last,
      "protocol-version", G_TYPE_UINT, self->version,
      "max-in-flight", G_TYPE_UINT, self->version ? self->in_flight_max : 0,
      "host-encoder", G_TYPE_STRING, self->host_encoder,
      "resource-id-frames", G_TYPE_UINT64, self->resource_frames,
      "pixel-frames", G_TYPE_UINT64, self->pixel_frames,
      "reconnects", G_TYPE_UINT64, self->reconnects, NULL);
  g_mutex_unlock (&self->lock);
  return s;
}

/* stats-interval: checked once per frame on the streaming thread, so it
 * costs a clock read and needs no timer to stop; the messages stop with
 * the frames (and at stop or any state change that stops streaming). */
static void
maybe_post_stats (GstVsockEnc * self)
{
  guint interval_ms;
  gint64 now;

  GST_OBJECT_LOCK (self);
  interval_ms = self->stats_interval_ms;
  GST_OBJECT_UNLOCK (self);
  if (!interval_ms)
    return;
  now = g_get_monotonic_time ();
  if (self->next_stats_us && now < self->next_stats_us)
    return;
  /* the first message one interval after streaming starts; a late frame
   * does not make the next message early */
  if (self->next_stats_us) {
    GstStructure *st = build_stats (self);

    gst_structure_set_name (st, "vsockenc-stats");
    gst_element_post_message (GST_ELEMENT (self),
        gst_message_new_element (GST_OBJECT (self), st));
  }
  self->next_stats_us = now + (gint64) interval_ms * G_TIME_SPAN_MILLISECOND;
}

static gboolean
address_settable (GstVsockEnc * self, GParamSpec * pspec)
{
  gboolean connected;

  g_mutex_lock (&self->lock);
  connected = self->conn != NULL;
  g_mutex_unlock (&self->lock);
  if (connected)
    GST_WARNING_OBJECT (self, "%s cannot change while connected",
        pspec->name);
  return !connected;
}

static void
gst_vsock_enc_set_property (GObject * object, guint prop_id,
    const GValue * value, GParamSpec * pspec)
{
  GstVsockEnc *self = GST_VSOCK_ENC (object);

  switch (prop_id) {
    case PROP_SOCKET_PATH:
    case PROP_CID:
    case PROP_PORT:
    case PROP_TCP_HOST:
    case PROP_TCP_PORT:
    case PROP_PROTOCOL:
    case PROP_TOKEN:
    case PROP_MAX_IN_FLIGHT:
      if (!address_settable (self, pspec))
        return;
      break;
    default:
      break;
  }

  GST_OBJECT_LOCK (self);
  switch (prop_id) {
    case PROP_SOCKET_PATH:
      g_free (self->socket_path);
      self->socket_path = g_value_dup_string (value);
      break;
    case PROP_CID:
      self->cid = g_value_get_uint (value);
      break;
    case PROP_PORT:
      self->port = g_value_get_uint (value);
      break;
    case PROP_TCP_HOST:
      g_free (self->tcp_host);
      self->tcp_host = g_value_dup_string (value);
      break;
    case PROP_TCP_PORT:
      self->tcp_port = g_value_get_uint (value);
      break;
    case PROP_BITRATE:
      self->bitrate = g_value_get_int (value);
      g_atomic_int_set (&self->reconfigure, TRUE);
      break;
    case PROP_KEYFRAME_INTERVAL:
      self->keyframe_interval = g_value_get_int (value);
      g_atomic_int_set (&self->reconfigure, TRUE);
      break;
    case PROP_MAX_IN_FLIGHT:
      self->max_in_flight = g_value_get_uint (value);
      break;
    case PROP_TIMEOUT:
      self->timeout_ms = g_value_get_uint (value);
      break;
    case PROP_ON_DISCONNECT:
      self->on_disconnect = g_value_get_enum (value);
      break;
    case PROP_PROTOCOL:
      self->protocol = g_value_get_enum (value);
      break;
    case PROP_TOKEN:
      g_free (self->token);
      self->token = g_value_dup_string (value);
      break;
    case PROP_ZERO_COPY:
      self->zero_copy = g_value_get_boolean (value);
      break;
    case PROP_DRM_DEVICE:
      g_free (self->drm_device);
      self->drm_device = g_value_dup_string (value);
      break;
    case PROP_AUD:
      self->aud = g_value_get_boolean (value);
      break;
    case PROP_STATS_INTERVAL:
      self->stats_interval_ms = g_value_get_uint (value);
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
      break;
  }
  GST_OBJECT_UNLOCK (self);
}

static void
gst_vsock_enc_get_property (GObject * object, guint prop_id, GValue * value,
    GParamSpec * pspec)
{
  GstVsockEnc *self = GST_VSOCK_ENC (object);

  if (prop_id == PROP_STATS) {
    g_value_take_boxed (value, build_stats (self));
    return;
  }

  GST_OBJECT_LOCK (self);
  switch (prop_id) {
    case PROP_SOCKET_PATH:
      g_value_set_string (value, self->socket_path);
      break;
    case PROP_CID:
      g_value_set_uint (value, self->cid);
      break;
    case PROP_PORT:
      g_value_set_uint (value, self->port);
      break;
    case PROP_TCP_HOST:
      g_value_set_string (value, self->tcp_host);
      break;
    case PROP_TCP_PORT:
      g_value_set_uint (value, self->tcp_port);
      break;
    case PROP_BITRATE:
      g_value_set_int (value, self->bitrate);
      break;
    case PROP_KEYFRAME_INTERVAL:
      g_value_set_int (value, self->keyframe_interval);
      break;
    case PROP_MAX_IN_FLIGHT:
      g_value_set_uint (value, self->max_in_flight);
      break;
    case PROP_TIMEOUT:
      g_value_set_uint (value, self->timeout_ms);
      break;
    case PROP_ON_DISCONNECT:
      g_value_set_enum (value, self->on_disconnect);
      break;
    case PROP_PROTOCOL:
      g_value_set_enum (value, self->protocol);
      break;
    case PROP_TOKEN:
      g_value_set_string (value, self->token);
      break;
    case PROP_ZERO_COPY:
      g_value_set_boolean (value, self->zero_copy);
      break;
    case PROP_DRM_DEVICE:
      g_value_set_string (value, self->drm_device);
      break;
    case PROP_AUD:
      g_value_set_boolean (value, self->aud);
      break;
    case PROP_STATS_INTERVAL:
      g_value_set_uint (value, self->stats_interval_ms);
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
      break;
  }
  GST_OBJECT_UNLOCK (self);
}

/* Virtual methods */

static gboolean
gst_vsock_enc_start (GstVideoEncoder * enc)
{
  GstVsockEnc *self = GST_VSOCK_ENC (enc);
  HxfrConn *conn;
  GError *err = NULL;

  GST_OBJECT_LOCK (self);
  self->timeout_us = (gint64) self->timeout_ms * G_TIME_SPAN_MILLISECOND;
  self->disconnect_mode = self->on_disconnect;
  GST_OBJECT_UNLOCK (self);

  self->address = address_from_properties (self);
  self->address_str = hxfr_address_to_string (self->address);
  self->cancellable = g_cancellable_new ();
  {
    GPollFD unused;

    /* every bounded socket wait polls the cancellable: with no reference
     * held GLib makes and closes its eventfd on each one (two eventfd2 and
     * two close per frame, seen in the link benchmark) */
    g_cancellable_make_pollfd (self->cancellable, &unused);
  }
  self->flushing = FALSE;
  self->stopping = FALSE;
  self->flow_ret = GST_FLOW_OK;
  self->need_key = TRUE;
  self->frames_since_key = 0;
  self->backoff_ms = 0;
  self->next_connect_us = 0;
  self->profile_known = FALSE;
  self->drm_tried = FALSE;
  self->drm_ops = NULL;
  self->next_stats_us = 0;
  g_atomic_int_set (&self->reconfigure, FALSE);

  /* connected here so that the version is known before caps negotiation */
  conn = connect_and_negotiate (self, &err);
  if (!conn) {
    GST_ELEMENT_ERROR (self, RESOURCE, OPEN_READ_WRITE,
        ("Could not connect to the host bridge at %s: %s", self->address_str,
            err->message), ("%s", err->message));
    g_clear_error (&err);
    /* stop() only follows a successful start() */
    g_cancellable_release_fd (self->cancellable);
    g_clear_object (&self->cancellable);
    g_clear_pointer (&self->address, hxfr_address_free);
    g_clear_pointer (&self->address_str, g_free);
    return FALSE;
  }
  GST_INFO_OBJECT (self, "connected to %s: protocol version %u, %u frames in "
      "flight, host encoder '%s'", self->address_str, self->version,
      self->in_flight_max, self->host_encoder);
  start_session (self, conn);
  return TRUE;
}

static gboolean
gst_vsock_enc_stop (GstVideoEncoder * enc)
{
  GstVsockEnc *self = GST_VSOCK_ENC (enc);

  g_mutex_lock (&self->lock);
  self->stopping = TRUE;
  g_cond_broadcast (&self->cond);
  g_mutex_unlock (&self->lock);
  if (self->cancellable)
    g_cancellable_cancel (self->cancellable);
  end_session (self);

  g_mutex_lock (&self->lock);
  self->version = 0;
  g_mutex_unlock (&self->lock);
  if (self->cancellable)
    g_cancellable_release_fd (self->cancellable);
  g_clear_object (&self->cancellable);
  g_clear_pointer (&self->address, hxfr_address_free);
  g_clear_pointer (&self->address_str, g_free);
  g_clear_pointer (&self->input_state, gst_video_codec_state_unref);
  if (self->drm_fd >= 0) {
    close (self->drm_fd);
    self->drm_fd = -1;
  }
  self->drm_ops = NULL;
  return TRUE;
}

static GstStateChangeReturn
gst_vsock_enc_change_state (GstElement * element, GstStateChange transition)
{
  GstVsockEnc *self = GST_VSOCK_ENC (element);

  if (transition == GST_STATE_CHANGE_PAUSED_TO_READY) {
    /* unblock a streaming thread waiting for the host and stop the reader
     * before the base class takes the stream lock */
    g_mutex_lock (&self->lock);
    self->stopping = TRUE;
    g_cond_broadcast (&self->cond);
    g_mutex_unlock (&self->lock);
    if (self->cancellable)
      g_cancellable_cancel (self->cancellable);
    end_session (self);
  }
  return GST_ELEMENT_CLASS (gst_vsock_enc_parent_class)->change_state (element,
      transition);
}

static gboolean
gst_vsock_enc_sink_event (GstVideoEncoder * enc, GstEvent * event)
{
  GstVsockEnc *self = GST_VSOCK_ENC (enc);

  if (GST_EVENT_TYPE (event) == GST_EVENT_FLUSH_START) {
    g_mutex_lock (&self->lock);
    self->flushing = TRUE;
    g_cond_broadcast (&self->cond);
    g_mutex_unlock (&self->lock);
  }
  return GST_VIDEO_ENCODER_CLASS (gst_vsock_enc_parent_class)->sink_event (enc,
      event);
}

static gboolean
gst_vsock_enc_flush (GstVideoEncoder * enc)
{
  GstVsockEnc *self = GST_VSOCK_ENC (enc);
  GList *l;

  /* the host still answers what is in flight: keep the entries so the
   * answers are matched and discarded, but let go of the frames */
  g_mutex_lock (&self->lock);
  for (l = self->pending.head; l; l = l->next) {
    PendingFrame *p = l->data;

    g_clear_pointer (&p->frame, gst_video_codec_frame_unref);
  }
  self->flushing = FALSE;
  if (self->flow_ret == GST_FLOW_FLUSHING || self->flow_ret == GST_FLOW_EOS
      || self->flow_ret == GST_FLOW_NOT_LINKED)
    self->flow_ret = GST_FLOW_OK;
  g_cond_broadcast (&self->cond);
  g_mutex_unlock (&self->lock);
  self->need_key = TRUE;
  return TRUE;
}

static GstCaps *
gst_vsock_enc_getcaps (GstVideoEncoder * enc, GstCaps * filter)
{
  GstVsockEnc *self = GST_VSOCK_ENC (enc);
  GstCaps *templ = NULL, *ret;
  guint version;

  g_mutex_lock (&self->lock);
  version = self->version;
  g_mutex_unlock (&self->lock);

  /* a v1 host cannot be told about I420 */
  if (version == 1)
    templ = gst_caps_from_string (GST_VIDEO_CAPS_MAKE (V1_FORMATS) "; "
        GST_VIDEO_CAPS_MAKE_WITH_FEATURES (GST_CAPS_FEATURE_MEMORY_DMABUF,
            V1_FORMATS) DMA_DRM_CAPS (V1_DRM_FORMATS));
  ret = gst_video_encoder_proxy_getcaps (enc, templ, filter);
  if (templ)
    gst_caps_unref (templ);
  return ret;
}

static gboolean
gst_vsock_enc_set_format (GstVideoEncoder * enc, GstVideoCodecState * state)
{
  GstVsockEnc *self = GST_VSOCK_ENC (enc);
  GstVideoInfo layout = state->info, *info = &layout;
  GstVideoCodecState *out;
  GstCaps *caps;
  GstClockTime dur, min, max;
  guint32 fourcc;
  guint version, in_flight, w, h;

#if GST_CHECK_VERSION(1, 24, 0)
  if (gst_video_is_dma_drm_caps (state->caps)) {
    GstVideoInfoDmaDrm drm;

    /* the template admits linear layouts only, which map to a format */
    if (!gst_video_info_dma_drm_from_caps (&drm, state->caps)
        || !gst_video_info_dma_drm_to_video_info (&drm, &layout)) {
      GST_ELEMENT_ERROR (self, CORE, NEGOTIATION,
          ("Cannot read DMA-BUF caps %" GST_PTR_FORMAT, state->caps), (NULL));
      return FALSE;
    }
  }
#endif
  w = GST_VIDEO_INFO_WIDTH (info);
  h = GST_VIDEO_INFO_HEIGHT (info);

  /* the base class does not drain before a new format */
  if (self->input_state && drain (self) != GST_FLOW_OK)
    return FALSE;

  g_mutex_lock (&self->lock);
  version = self->version;
  in_flight = self->in_flight_max;
  g_mutex_unlock (&self->lock);

  fourcc = hxfr_video_format_to_fourcc (GST_VIDEO_INFO_FORMAT (info), version);
  if (!fourcc) {
    GST_ELEMENT_ERROR (self, CORE, NEGOTIATION,
        ("The host bridge at %s speaks HXFR v%u, which cannot carry %s: put "
            "videoconvert before vsockenc", self->address_str, version,
            GST_VIDEO_INFO_NAME (info)), (NULL));
    return FALSE;
  }
  if (version < 2 && fourcc == HXFR_FORMAT_NV12 && (w % 2 || h % 2)) {
    GST_ELEMENT_ERROR (self, CORE, NEGOTIATION,
        ("HXFR v1 (the host bridge at %s) cannot carry NV12 of odd size "
            "%ux%u", self->address_str, w, h), (NULL));
    return FALSE;
  }
  if (w > self->host_max_width || h > self->host_max_height) {
    GST_ELEMENT_ERROR (self, CORE, NEGOTIATION,
        ("The host bridge at %s takes frames up to %ux%u, not %ux%u",
            self->address_str, self->host_max_width, self->host_max_height, w,
            h), (NULL));
    return FALSE;
  }

  g_clear_pointer (&self->input_state, gst_video_codec_state_unref);
  self->input_state = gst_video_codec_state_ref (state);
  self->info = layout;
  self->fourcc = fourcc;
  self->profile_known = FALSE;
  g_atomic_int_set (&self->reconfigure, TRUE);

  caps = gst_caps_new_simple ("video/x-h264",
      "stream-format", G_TYPE_STRING, "byte-stream",
      "alignment", G_TYPE_STRING, "au", NULL);
  out = gst_video_encoder_set_output_state (enc, caps, state);
  gst_video_codec_state_unref (out);

  /* one frame of host encode plus the round trip; buffered up to the
   * frames in flight (25 fps when the rate is unknown) */
  if (GST_VIDEO_INFO_FPS_N (info) > 0 && GST_VIDEO_INFO_FPS_D (info) > 0)
    dur = gst_util_uint64_scale (GST_SECOND, GST_VIDEO_INFO_FPS_D (info),
        GST_VIDEO_INFO_FPS_N (info));
  else
    dur = GST_SECOND / 25;
  min = dur;
  max = dur * MAX (in_flight, 1);
  gst_video_encoder_set_latency (enc, min, max);
  GST_DEBUG_OBJECT (self, "format %s (%s on the wire), latency %"
      GST_TIME_FORMAT " - %" GST_TIME_FORMAT, GST_VIDEO_INFO_NAME (info),
      hxfr_format_to_string (fourcc), GST_TIME_ARGS (min), GST_TIME_ARGS (max));
  return TRUE;
}

/* Fills the request's layout and the vectors to send for a pixel frame.
 * @tmp receives a repacked copy when the buffer's layout cannot go as is. */
static guint
pixel_vectors (GstVsockEnc * self, GstVideoFrame * vf, HxfrFrameRequest * req,
    GOutputVector * vec, guint8 ** tmp)
{
  guint n = GST_VIDEO_FRAME_N_PLANES (vf), p;
  gsize bufsize = gst_buffer_get_size (vf->buffer), total = 0;
  gboolean direct = TRUE;
  guint32 w = req->width, h = req->height;

  for (p = 0; p < n; p++) {
    guint64 rows, row_bytes;
    gint stride = GST_VIDEO_FRAME_PLANE_STRIDE (vf, p);

    hxfr_format_plane_size (req->format, p, w, h, &rows, &row_bytes);
    if (stride <= 0 || (gsize) stride < row_bytes
        || GST_VIDEO_FRAME_PLANE_OFFSET (vf, p) + stride * rows > bufsize)
      direct = FALSE;
    if (self->version < 2 && stride != GST_VIDEO_FRAME_PLANE_STRIDE (vf, 0))
      direct = FALSE;
  }

  req->n_planes = n;
  if (direct) {
    for (p = 0; p < n; p++) {
      guint64 rows, row_bytes;

      hxfr_format_plane_size (req->format, p, w, h, &rows, &row_bytes);
      req->stride[p] = GST_VIDEO_FRAME_PLANE_STRIDE (vf, p);
      req->offset[p] = total;
      vec[p].buffer = GST_VIDEO_FRAME_PLANE_DATA (vf, p);
      vec[p].size = req->stride[p] * rows;
      total += vec[p].size;
    }
    return n;
  }

  /* repack into the default layout (v2) or the v1 layout */
  if (self->version >= 2) {
    total = hxfr_frame_default_layout (req->format, w, h, &req->n_planes,
        req->stride, req->offset);
  } else {
    guint32 stride = GST_ROUND_UP_4 (req->format == HXFR_FORMAT_NV12 ?
        w : w * 4);

    total = hxfr_frame_v1_layout (req->format, h, stride, &req->n_planes,
        req->stride, req->offset);
  }
  if (total == 0)
    return 0;
  *tmp = g_malloc0 (total);
  for (p = 0; p < n; p++) {
    guint64 rows, row_bytes, r;
    const guint8 *src = GST_VIDEO_FRAME_PLANE_DATA (vf, p);
    gint sstride = GST_VIDEO_FRAME_PLANE_STRIDE (vf, p);

    hxfr_format_plane_size (req->format, p, w, h, &rows, &row_bytes);
    for (r = 0; r < rows; r++)
      memcpy (*tmp + req->offset[p] + r * req->stride[p], src + r * sstride,
          row_bytes);
  }
  vec[0].buffer = *tmp;
  vec[0].size = total;
  return 1;
}

static GstFlowReturn
gst_vsock_enc_handle_frame (GstVideoEncoder * enc, GstVideoCodecFrame * frame)
{
  GstVsockEnc *self = GST_VSOCK_ENC (enc);
  HxfrFrameRequest req = { 0, };
  GOutputVector vec[HXFR_MAX_PLANES];
  guint n_vec = 0;
  guint8 fixed[HXFR_MAX_FIXED_SIZE];
  guint8 *tmp = NULL;
  gsize len, mem_offset = 0;
  GstVideoFrame vf;
  gboolean mapped = FALSE, lost, zero_copy, force, ok;
  GstVideoInfo *info = &self->info;
  HxfrConn *conn;
  PendingFrame *p;
  GstFlowReturn ret;
  GError *err = NULL;
  GstBuffer *input;
  guint32 frame_number;
  gint kfi;

  g_mutex_lock (&self->lock);
  ret = (self->flushing || self->stopping) ? GST_FLOW_FLUSHING :
      self->flow_ret;
  lost = self->conn_lost;
  g_mutex_unlock (&self->lock);
  if (ret != GST_FLOW_OK) {
    gst_video_codec_frame_unref (frame);
    return ret;
  }
  maybe_post_stats (self);

  if (lost && !try_reconnect (self)) {
    g_mutex_lock (&self->lock);
    ret = self->flow_ret;
    g_mutex_unlock (&self->lock);
    if (ret != GST_FLOW_OK) {
      gst_video_codec_frame_unref (frame);
      return ret;
    }
    GST_LOG_OBJECT (self, "host unreachable, dropping frame %u",
        frame->system_frame_number);
    return gst_video_encoder_finish_frame (enc, frame);
  }

  g_mutex_lock (&self->lock);
  conn = hxfr_conn_ref (self->conn);
  g_mutex_unlock (&self->lock);

  if (!apply_reconfigure (self, conn, &err)) {
    send_failed (self, conn, "sending settings", err);
    /* never sent: released here */
    gst_video_encoder_finish_frame (enc, frame);
    goto send_failed;
  }

  ret = wait_for_room (self);
  if (ret != GST_FLOW_OK) {
    gst_video_codec_frame_unref (frame);
    hxfr_conn_unref (conn);
    return ret;
  }
  g_mutex_lock (&self->lock);
  lost = self->conn_lost || self->conn != conn;
  g_mutex_unlock (&self->lock);
  if (lost) {
    hxfr_conn_unref (conn);
    /* reconnect mode: the frame goes with the others lost in flight */
    return gst_video_encoder_finish_frame (enc, frame);
  }

  GST_OBJECT_LOCK (self);
  kfi = self->keyframe_interval;
  zero_copy = self->zero_copy;
  GST_OBJECT_UNLOCK (self);
  force = self->need_key || GST_VIDEO_CODEC_FRAME_IS_FORCE_KEYFRAME (frame)
      || (kfi > 0 && self->frames_since_key >= (guint) kfi);
  if (force) {
    self->frames_since_key = 0;
    self->need_key = FALSE;
  }
  self->frames_since_key++;

  req.width = GST_VIDEO_INFO_WIDTH (info);
  req.height = GST_VIDEO_INFO_HEIGHT (info);
  req.format = self->fourcc;
  req.pts = GST_CLOCK_TIME_IS_VALID (frame->pts) ? (gint64) frame->pts : -1;
  req.duration = GST_CLOCK_TIME_IS_VALID (frame->duration) ?
      (gint64) frame->duration : -1;
  req.force_keyframe = force;

  /* our own reference: once queued, the reader may finish the frame (and
   * free it) as soon as the request is out */
  input = gst_buffer_ref (frame->input_buffer);
  frame_number = frame->system_frame_number;
  if (zero_copy && self->host_resource_ids)
    req.resource_id = lookup_resource_id (self, input, &mem_offset);
  /* the host reads a texture as soon as it has the id */
  if (req.resource_id)
    vsockenc_gl_wait_rendered (input);

  if (req.resource_id) {
    GstVideoMeta *meta = gst_buffer_get_video_meta (input);
    guint i;

    req.n_planes = GST_VIDEO_INFO_N_PLANES (info);
    for (i = 0; i < req.n_planes; i++) {
      req.stride[i] = meta ? meta->stride[i] :
          GST_VIDEO_INFO_PLANE_STRIDE (info, i);
      req.offset[i] = mem_offset + (meta ? meta->offset[i] :
          GST_VIDEO_INFO_PLANE_OFFSET (info, i));
    }
  } else {
    dmabuf_sync (input, TRUE);
    if (!gst_video_frame_map (&vf, info, input, GST_MAP_READ)) {
      dmabuf_sync (input, FALSE);
      gst_buffer_unref (input);
      hxfr_conn_unref (conn);
      GST_ELEMENT_ERROR (self, STREAM, FORMAT, ("Could not map a frame"),
          (NULL));
      gst_video_codec_frame_unref (frame);
      return GST_FLOW_ERROR;
    }
    mapped = TRUE;
    n_vec = pixel_vectors (self, &vf, &req, vec, &tmp);
    if (n_vec == 0 || vec[0].size == 0) {
      /* set_format and try_reconnect keep this from happening */
      gst_video_frame_unmap (&vf);
      dmabuf_sync (input, FALSE);
      gst_buffer_unref (input);
      g_free (tmp);
      hxfr_conn_unref (conn);
      GST_ELEMENT_ERROR (self, CORE, NEGOTIATION,
          ("Cannot lay out %s for HXFR v%u", hxfr_format_to_string (req.format),
              self->version), (NULL));
      gst_video_codec_frame_unref (frame);
      return GST_FLOW_NOT_NEGOTIATED;
    }
  }

  p = g_new0 (PendingFrame, 1);
  p->frame = frame;
  p->input = gst_buffer_ref (input);
  p->sent_us = g_get_monotonic_time ();
  p->deadline_us = p->sent_us + self->timeout_us;

  g_mutex_lock (&self->lock);
  req.seq = p->seq = self->next_seq++;
  /* queued before it is sent: the answer may come back at once */
  g_queue_push_tail (&self->pending, p);
  self->frames_sent++;
  if (req.resource_id)
    self->resource_frames++;
  else
    self->pixel_frames++;
  g_mutex_unlock (&self->lock);

  GST_LOG_OBJECT (self, "frame %u: seq %u, %s, force keyframe %d",
      frame_number, req.seq, req.resource_id ? "resource id" :
      "pixels", force);
  len = hxfr_frame_request_write (&req, self->version, fixed);

  /* the reader finishes frames meanwhile: it needs the stream lock */
  GST_VIDEO_ENCODER_STREAM_UNLOCK (self);
  ok = hxfr_conn_send (conn, self->version >= 2 ? HXFR_MSG_FRAME_REQUEST2 :
      HXFR_MSG_FRAME_REQUEST, req.resource_id ? 0 : HXFR_FLAG_PIXEL_DATA, 1,
      fixed, len, vec, n_vec, self->timeout_us, self->cancellable, &err);
  GST_VIDEO_ENCODER_STREAM_LOCK (self);

  if (mapped) {
    gst_video_frame_unmap (&vf);
    dmabuf_sync (input, FALSE);
  }
  gst_buffer_unref (input);
  g_free (tmp);
  if (!ok) {
    send_failed (self, conn, "sending a frame", err);
    goto send_failed;
  }
  hxfr_conn_unref (conn);
  return GST_FLOW_OK;

send_failed:
  g_clear_error (&err);
  hxfr_conn_unref (conn);
  g_mutex_lock (&self->lock);
  ret = self->stopping ? GST_FLOW_FLUSHING : self->flow_ret;
  g_mutex_unlock (&self->lock);
  return ret;
}

static GstFlowReturn
gst_vsock_enc_finish (GstVideoEncoder * enc)
{
  GstVsockEnc *self = GST_VSOCK_ENC (enc);

  GST_DEBUG_OBJECT (self, "draining %u frames in flight",
      self->pending.length);
  return drain (self);
}

static gboolean
gst_vsock_enc_propose_allocation (GstVideoEncoder * enc, GstQuery * query)
{
  /* any plane layout goes as is in v2 */
  gst_query_add_allocation_meta (query, GST_VIDEO_META_API_TYPE, NULL);
  return GST_VIDEO_ENCODER_CLASS (gst_vsock_enc_parent_class)->
      propose_allocation (enc, query);
}

static void
gst_vsock_enc_class_init (GstVsockEncClass * klass)
{
  GObjectClass *gobject_class = G_OBJECT_CLASS (klass);
  GstElementClass *element_class = GST_ELEMENT_CLASS (klass);
  GstVideoEncoderClass *venc_class = GST_VIDEO_ENCODER_CLASS (klass);

  gobject_class->set_property = gst_vsock_enc_set_property;
  gobject_class->get_property = gst_vsock_enc_get_property;
  gobject_class->finalize = gst_vsock_enc_finalize;

  /**
   * GstVsockEnc:socket-path:
   *
   * UNIX socket of the host bridge; takes precedence over TCP and vsock.
   */
  properties[PROP_SOCKET_PATH] = g_param_spec_string ("socket-path",
      "Socket path", "UNIX socket path of the host bridge (takes precedence "
      "over tcp-host and vsock)", DEFAULT_SOCKET_PATH,
      G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS | GST_PARAM_MUTABLE_READY);
  /**
   * GstVsockEnc:cid:
   *
   * vsock context id of the host, used when neither socket-path nor
   * tcp-host is set.
   */
  properties[PROP_CID] = g_param_spec_uint ("cid", "CID",
      "vsock context id of the host (2 = the host), used when neither "
      "socket-path nor tcp-host is set", 0, G_MAXUINT, DEFAULT_CID,
      G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS | GST_PARAM_MUTABLE_READY);
  properties[PROP_PORT] = g_param_spec_uint ("port", "vsock port",
      "vsock port of the host bridge", 0, G_MAXUINT, DEFAULT_PORT,
      G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS | GST_PARAM_MUTABLE_READY);
  properties[PROP_TCP_HOST] = g_param_spec_string ("tcp-host", "TCP host",
      "Host name or address of the host bridge over TCP (used when "
      "socket-path is not set; e.g. 10.0.2.2 from QEMU user networking)",
      DEFAULT_TCP_HOST,
      G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS | GST_PARAM_MUTABLE_READY);
  /**
   * GstVsockEnc:tcp-port:
   *
   * TCP port of the host bridge, used when #GstVsockEnc:tcp-host is set.
   */
  properties[PROP_TCP_PORT] = g_param_spec_uint ("tcp-port", "TCP port",
      "TCP port of the host bridge", 1, 65535, DEFAULT_TCP_PORT,
      G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS | GST_PARAM_MUTABLE_READY);
  /**
   * GstVsockEnc:bitrate:
   *
   * Target bitrate in bit/s; may change while playing (applies from the
   * next frame). 0: the host's default. A value under 64000 is applied as
   * given, with a warning on the bus naming the likely kbit/s mistake.
   */
  properties[PROP_BITRATE] = g_param_spec_int ("bitrate", "Bitrate",
      "Target bitrate in bit/s, 0 for the host's default (changeable while "
      "playing)", 0, G_MAXINT, DEFAULT_BITRATE,
      G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS | GST_PARAM_MUTABLE_PLAYING);
  /**
   * GstVsockEnc:keyframe-interval:
   *
   * An IDR is requested every this many frames (0: only on force-key-unit
   * events); may change while playing.
   */
  properties[PROP_KEYFRAME_INTERVAL] = g_param_spec_int ("keyframe-interval",
      "Keyframe interval", "Request an IDR every this many frames "
      "(0 = only on force-key-unit events; changeable while playing)",
      0, G_MAXINT, DEFAULT_KEYFRAME_INTERVAL,
      G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS | GST_PARAM_MUTABLE_PLAYING);
  /**
   * GstVsockEnc:max-in-flight:
   *
   * Frames sent and not yet answered at most (the host may grant fewer; a
   * v1 host always gets 1).
   */
  properties[PROP_MAX_IN_FLIGHT] = g_param_spec_uint ("max-in-flight",
      "Max frames in flight", "Frames sent to the host and not yet answered, "
      "at most (in frames; the host may grant fewer, v1 hosts get 1)",
      1, 64, DEFAULT_MAX_IN_FLIGHT,
      G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS | GST_PARAM_MUTABLE_READY);
  /**
   * GstVsockEnc:timeout:
   *
   * Bound on connecting and on waiting for each answer, in milliseconds.
   */
  properties[PROP_TIMEOUT] = g_param_spec_uint ("timeout", "Timeout",
      "Bound on connecting and on waiting for each answer of the host, in "
      "milliseconds", 1, G_MAXINT, DEFAULT_TIMEOUT,
      G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS | GST_PARAM_MUTABLE_READY);
  /**
   * GstVsockEnc:on-disconnect:
   *
   * What a lost connection does: post an error, or reconnect with back-off
   * (100 ms doubling to 5 s; frames meanwhile are dropped) and resume with
   * an IDR.
   */
  properties[PROP_ON_DISCONNECT] = g_param_spec_enum ("on-disconnect",
      "On disconnect", "What losing the host does: post an error, or "
      "reconnect with back-off (100 ms doubling up to 5 s, frames meanwhile "
      "dropped) and resume with an IDR",
      gst_vsock_enc_on_disconnect_get_type (),
      DEFAULT_ON_DISCONNECT,
      G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS | GST_PARAM_MUTABLE_READY);
  properties[PROP_PROTOCOL] = g_param_spec_enum ("protocol", "Protocol",
      "HXFR version: auto (v2, falling back to v1 for a v1 host) or v1 only",
      gst_vsock_enc_protocol_get_type (), DEFAULT_PROTOCOL,
      G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS | GST_PARAM_MUTABLE_READY);
  properties[PROP_TOKEN] = g_param_spec_string ("token", "Token",
      "Access token sent in the v2 HELLO (at most 256 bytes)", DEFAULT_TOKEN,
      G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS | GST_PARAM_MUTABLE_READY);
  properties[PROP_ZERO_COPY] = g_param_spec_boolean ("zero-copy", "Zero copy",
      "Send the virtio-gpu resource id of DMA-BUF input instead of its pixels "
      "when the render node resolves it", DEFAULT_ZERO_COPY,
      G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS | GST_PARAM_MUTABLE_READY);
  properties[PROP_DRM_DEVICE] = g_param_spec_string ("drm-device",
      "DRM device", "virtio-gpu render node used to look up resource ids of "
      "DMA-BUF input", DEFAULT_DRM_DEVICE,
      G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS | GST_PARAM_MUTABLE_READY);
  /**
   * GstVsockEnc:aud:
   *
   * Begin every access unit with an access unit delimiter NAL. Off (the
   * default), one the host sent is removed, as desktop streamers configure
   * their local encoders; on, one is added where the host sent none.
   * (h264parse in byte-stream output adds its own either way.)
   */
  properties[PROP_AUD] = g_param_spec_boolean ("aud", "AUD",
      "Begin every access unit with an access unit delimiter NAL",
      DEFAULT_AUD, G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS |
      GST_PARAM_MUTABLE_PLAYING);
  /**
   * GstVsockEnc:stats:
   *
   * Statistics: frames-sent, frames-answered, frames-dropped, frames-failed,
   * frames-in-flight, bytes-sent, bytes-received (bytes, every connection),
   * rtt-min-us, rtt-avg-us, rtt-max-us, rtt-last-us (request sent to answer
   * read, microseconds), protocol-version (0 = not connected),
   * max-in-flight (granted), host-encoder, resource-id-frames,
   * pixel-frames, reconnects.
   */
  properties[PROP_STATS] = g_param_spec_boxed ("stats", "Statistics",
      "Frames sent/answered/dropped/failed, bytes sent/received, round-trip "
      "times in microseconds (min/avg/max/last), negotiated protocol version, "
      "host encoder, resource-id vs pixel frames, reconnects",
      GST_TYPE_STRUCTURE, G_PARAM_READABLE | G_PARAM_STATIC_STRINGS);
  /**
   * GstVsockEnc:stats-interval:
   *
   * Every this many milliseconds while frames flow, the stats structure is
   * posted as an element message named vsockenc-stats (shown by
   * gst-launch-1.0 -m). 0: never.
   */
  properties[PROP_STATS_INTERVAL] = g_param_spec_uint ("stats-interval",
      "Statistics interval",
      "Post the stats as a 'vsockenc-stats' element message every this many "
      "milliseconds while streaming (0 = off)", 0, G_MAXUINT,
      DEFAULT_STATS_INTERVAL, G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS |
      GST_PARAM_MUTABLE_PLAYING);
  g_object_class_install_properties (gobject_class, N_PROPERTIES, properties);

  gst_element_class_add_static_pad_template (element_class, &sink_template);
  gst_element_class_add_static_pad_template (element_class, &src_template);
  gst_element_class_set_static_metadata (element_class,
      "Host-offloaded H.264 encoder", "Codec/Encoder/Video/Hardware",
      "Encodes H.264 on the VM host over vsock, TCP or a UNIX socket (HXFR)",
      "Helix encode offload");

  element_class->change_state = GST_DEBUG_FUNCPTR (gst_vsock_enc_change_state);
  venc_class->start = GST_DEBUG_FUNCPTR (gst_vsock_enc_start);
  venc_class->stop = GST_DEBUG_FUNCPTR (gst_vsock_enc_stop);
  venc_class->set_format = GST_DEBUG_FUNCPTR (gst_vsock_enc_set_format);
  venc_class->getcaps = GST_DEBUG_FUNCPTR (gst_vsock_enc_getcaps);
  venc_class->handle_frame = GST_DEBUG_FUNCPTR (gst_vsock_enc_handle_frame);
  venc_class->finish = GST_DEBUG_FUNCPTR (gst_vsock_enc_finish);
  venc_class->flush = GST_DEBUG_FUNCPTR (gst_vsock_enc_flush);
  venc_class->sink_event = GST_DEBUG_FUNCPTR (gst_vsock_enc_sink_event);
  venc_class->propose_allocation =
      GST_DEBUG_FUNCPTR (gst_vsock_enc_propose_allocation);

  gst_type_mark_as_plugin_api (gst_vsock_enc_on_disconnect_get_type (), 0);
  gst_type_mark_as_plugin_api (gst_vsock_enc_protocol_get_type (), 0);
  resource_quark = g_quark_from_static_string ("vsockenc-resource-id");
  GST_DEBUG_CATEGORY_INIT (gst_vsock_enc_debug, "vsockenc", 0,
      "Host-offloaded H.264 encoder");
}

static gboolean
plugin_init (GstPlugin * plugin)
{
  GST_ELEMENT_REGISTER_DECLARE (vsockscanoutsrc);

  return GST_ELEMENT_REGISTER (vsockenc, plugin)
      && GST_ELEMENT_REGISTER (vsockscanoutsrc, plugin);
}

GST_PLUGIN_DEFINE (GST_VERSION_MAJOR, GST_VERSION_MINOR, vsockenc,
    "Guest side of the H.264 encode offload to the VM host",
    plugin_init, PACKAGE_VERSION, GST_LICENSE, GST_PACKAGE_NAME,
    GST_PACKAGE_ORIGIN)
