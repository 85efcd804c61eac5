/* vsockenc's private header: the element's instance, shared by
 * gstvsockenc.c (the GstVideoEncoder vfuncs, the session's callbacks),
 * vsockenc-properties.c (properties and statistics) and
 * vsockenc-connection.c (losing the host).
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#pragma once

#include <gst/gst.h>
#include <gst/video/video.h>

#include "hxfr-guest-session.h"
#include "vsockenc-frames.h"

G_BEGIN_DECLS

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


GType gst_vsock_enc_on_disconnect_get_type (void);
GType gst_vsock_enc_protocol_get_type (void);

/* A request sent and not answered yet: the frame side of the session's
 * request in flight (the session matches answers to requests by seq; this
 * is the frame and input buffer that request stands for). */
typedef struct
{
  guint32 seq;
  GstVideoCodecFrame *frame;    /* NULL once flushed: the answer is discarded */
  GstBuffer *input;             /* kept alive until the host has answered */
} PendingFrame;

/* Locks, in order: the stream lock, then self->lock; GST_OBJECT_LOCK is
 * taken last, held only to copy properties.
 * - GST_OBJECT_LOCK: the properties.
 * - Set by start() before the reader exists, cleared by stop() after it
 *   ended, read by both threads without a lock: address, address_str,
 *   cancellable, timeout_us, disconnect_mode.
 * - The stream lock: the streaming thread's state (and profile_known,
 *   which the reader touches holding it).
 * - self->lock: session (the current connection, or the last one until a
 *   reconnect replaces it or stop() clears it), pending, the flow state
 *   and the statistics; self->cond is broadcast on every change of
 *   pending, flushing, stopping, conn_lost and flow_ret.
 * - What was negotiated (version, frames in flight, the host's limits and
 *   encoder) lives in the session, written once before its reader starts:
 *   read without a lock through a reference to the session, or through
 *   self->session while holding self->lock. */
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
  gboolean adaptive_window;
  guint timeout_ms;
  GstVsockEncOnDisconnect on_disconnect;
  GstVsockEncProtocol protocol;
  gchar *token;
  gboolean zero_copy;
  gchar *drm_device;
  gboolean aud;
  guint stats_interval_ms;
  gint reconfigure;             /* atomic: bitrate/keyframe-interval changed */

  /* Between start() and stop(): no lock (see above) */
  GCancellable *cancellable;
  HxfrAddress *address;
  gchar *address_str;
  gint64 timeout_us;
  GstVsockEncOnDisconnect disconnect_mode;

  /* Streaming thread only (under the stream lock) */
  GstVideoCodecState *input_state;
  /* the layout of the input frames: input_state's, or for 1.24+ DMA_DRM
   * caps the linear format they describe */
  GstVideoInfo info;
  guint32 fourcc;
  guint frames_since_key;
  gboolean need_key;
  gint bitrate_warned;          /* the value last warned about */
  HxfrBackoff backoff;
  VsockEncResources resources;
  gint64 next_stats_us;         /* stats-interval: next message due */

  /* Reader thread, under the stream lock */
  gboolean profile_known;

  /* self->lock */
  GMutex lock;
  GCond cond;
  HxfrGuestSession *session;
  GQueue pending;               /* of PendingFrame, oldest first */
  gboolean flushing;
  gboolean stopping;
  gboolean conn_lost;
  gboolean conn_failing;        /* a thread is reporting the session's loss */
  GstFlowReturn flow_ret;

  guint64 frames_sent;
  guint64 frames_answered;
  guint64 frames_dropped;
  guint64 frames_failed;
  guint64 resource_frames;
  guint64 pixel_frames;
  guint64 reconnects;
  guint64 bytes_sent_done;      /* of sessions replaced */
  guint64 bytes_received_done;
  guint64 rtt_min;
  guint64 rtt_max;
  guint64 rtt_sum;
  guint64 rtt_count;
  guint64 rtt_last;
};


/* vsockenc is H.264; vsockh265enc and vsockav1enc (gstvsockenc-codecs.c)
 * are the same element for another codec: subclasses that set @codec and
 * their src pad template, and nothing else. */
struct _GstVsockEncClass
{
  GstVideoEncoderClass parent_class;
  guint32 codec;                /* HXFR_CODEC_* asked of the host */
};

typedef struct _GstVsockEnc GstVsockEnc;
/* (by hand, not G_DECLARE_DERIVABLE_TYPE: that would define the instance
 * struct as its parent alone) */
typedef struct _GstVsockEncClass GstVsockEncClass;
GType gst_vsock_enc_get_type (void);
#define GST_TYPE_VSOCK_ENC (gst_vsock_enc_get_type ())
#define GST_VSOCK_ENC(obj) \
  (G_TYPE_CHECK_INSTANCE_CAST ((obj), GST_TYPE_VSOCK_ENC, GstVsockEnc))
#define GST_VSOCK_ENC_CLASS(klass) \
  (G_TYPE_CHECK_CLASS_CAST ((klass), GST_TYPE_VSOCK_ENC, GstVsockEncClass))
#define GST_VSOCK_ENC_GET_CLASS(obj) \
  (G_TYPE_INSTANCE_GET_CLASS ((obj), GST_TYPE_VSOCK_ENC, GstVsockEncClass))
G_DEFINE_AUTOPTR_CLEANUP_FUNC (GstVsockEnc, gst_object_unref)

/* The codec of @self's class. */
#define GST_VSOCK_ENC_CODEC(self) (GST_VSOCK_ENC_GET_CLASS (self)->codec)

#define DEFAULT_SOCKET_PATH NULL
#define DEFAULT_CID HXFR_VSOCK_CID_HOST
#define DEFAULT_PORT 5000
#define DEFAULT_TCP_HOST NULL
#define DEFAULT_TCP_PORT 15937
#define DEFAULT_BITRATE 4000000
#define DEFAULT_KEYFRAME_INTERVAL 60
#define DEFAULT_MAX_IN_FLIGHT 4
#define DEFAULT_ADAPTIVE_WINDOW TRUE
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
  PROP_ADAPTIVE_WINDOW,
  PROP_WINDOW,
  N_PROPERTIES
};


/* vsockenc-properties.c */
void gst_vsock_enc_install_properties (GObjectClass * gobject_class);
GstStructure *gst_vsock_enc_build_stats (GstVsockEnc * self);
void gst_vsock_enc_maybe_post_stats (GstVsockEnc * self);
HxfrAddress *gst_vsock_enc_address_from_properties (GstVsockEnc * self);
/* streaming thread (or start()): the bitrate warning, once per value */
void gst_vsock_enc_warn_if_bitrate_implausible (GstVsockEnc * self,
    gint bitrate);
/* connects and negotiates with what the properties say now; without
 * self->lock */
HxfrGuestSession *gst_vsock_enc_connect_session (GstVsockEnc * self,
    GError ** error);

/* vsockenc-in-flight.c: the frames in flight, self->lock held by the
 * caller of each but gst_vsock_enc_in_flight_free() and _done() */
/* @frame (taken) and a reference to @input, in flight from now on */
PendingFrame *gst_vsock_enc_in_flight_add (GstVsockEnc * self,
    GstVideoCodecFrame * frame, GstBuffer * input);
/* The oldest frame in flight, removed, if it is @tag (the answer's);
 * NULL if the frames were released meanwhile */
PendingFrame *gst_vsock_enc_in_flight_answered (GstVsockEnc * self,
    gpointer tag);
guint gst_vsock_enc_in_flight_count (GstVsockEnc * self);
/* A flush: the entries stay, so that the host's answers are matched and
 * discarded; the frames go */
void gst_vsock_enc_in_flight_forget_frames (GstVsockEnc * self);
/* Every frame in flight, removed: free them with _free() without the
 * lock */
GQueue gst_vsock_enc_in_flight_release (GstVsockEnc * self);
/* Without self->lock: frees @released; with @finish the base class is told
 * of each frame, which it forgets without output (takes the stream lock) */
void gst_vsock_enc_in_flight_free (GstVsockEnc * self, GQueue * released,
    gboolean finish);
/* Without self->lock: frees an answered frame's entry */
void gst_vsock_enc_in_flight_done (PendingFrame * p);

/* vsockenc-connection.c */
/* Any thread, no lock held: @session is unusable (@what failed with
 * @err). The first report for the current session releases the frames in
 * flight and posts an error, or (reconnect mode) a warning; later ones
 * return at once. */
void gst_vsock_enc_connection_failed (GstVsockEnc * self,
    HxfrGuestSession * session, const gchar * what, const GError * err);
/* Streaming thread, stream lock held (released while waiting): a send on
 * @session failed; lets the reader report the host's reason first,
 * within a bound. */
void gst_vsock_enc_send_failed (GstVsockEnc * self,
    HxfrGuestSession * session, const gchar * what, const GError * err);
/* Streaming thread, after a bounded wait for answers: @timed_out makes it
 * a connection failure whose flow replaces @ret. Drops the reference on
 * @session. */
GstFlowReturn gst_vsock_enc_end_wait (GstVsockEnc * self,
    HxfrGuestSession * session, gboolean timed_out, GstFlowReturn ret);
/* After gst_vsock_enc_send_failed(): what becomes of the stream */
GstFlowReturn gst_vsock_enc_flow_after_send_failure (GstVsockEnc * self);
/* Whether @session was lost (or replaced) meanwhile */
gboolean gst_vsock_enc_session_lost (GstVsockEnc * self,
    HxfrGuestSession * session);

G_END_DECLS
