/* vsockenc's properties and statistics.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include "gstvsockenc-priv.h"

#define GST_CAT_DEFAULT gst_vsock_enc_debug

static GParamSpec *properties[N_PROPERTIES];

HxfrAddress *
gst_vsock_enc_address_from_properties (GstVsockEnc * self)
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
void
gst_vsock_enc_warn_if_bitrate_implausible (GstVsockEnc * self, gint bitrate)
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

/* Connects and negotiates with what the properties say now. Streaming
 * thread or start(), without self->lock. */
HxfrGuestSession *
gst_vsock_enc_connect_session (GstVsockEnc * self, GError ** error)
{
  HxfrGuestConfig config = { 0, };
  HxfrGuestSession *session;
  gchar *token;

  GST_OBJECT_LOCK (self);
  config.codec = GST_VSOCK_ENC_CODEC (self);
  config.v1_only = self->protocol == GST_VSOCK_ENC_PROTOCOL_V1;
  token = g_strdup (self->token);
  config.max_in_flight = self->max_in_flight;
  config.adaptive_window = self->adaptive_window;
  config.resource_ids = self->zero_copy;
  config.bitrate = MAX (self->bitrate, 0);
  config.keyframe_interval = MAX (self->keyframe_interval, 0);
  GST_OBJECT_UNLOCK (self);
  gst_vsock_enc_warn_if_bitrate_implausible (self, config.bitrate);

  config.address = self->address;
  config.token = token;
  config.timeout_us = self->timeout_us;
  config.cancellable = self->cancellable;
  session = hxfr_guest_session_connect (&config, error);
  g_free (token);
  return session;
}


GType
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

GType
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

GstStructure *
gst_vsock_enc_build_stats (GstVsockEnc * self)
{
  static const HxfrGuestInfo none = { 0, };
  const HxfrGuestInfo *info = &none;
  GstStructure *s;
  guint64 sent, received, service_us = 0, link_us = 0;
  guint window = 0;

  g_mutex_lock (&self->lock);
  sent = self->bytes_sent_done;
  received = self->bytes_received_done;
  if (self->session) {
    sent += hxfr_guest_session_get_bytes_sent (self->session);
    received += hxfr_guest_session_get_bytes_received (self->session);
    info = hxfr_guest_session_get_info (self->session);
    window = hxfr_guest_session_get_window (self->session);
    hxfr_guest_session_get_window_estimates (self->session, &service_us,
        &link_us);
  }
  s = gst_structure_new ("application/x-vsockenc-stats",
      "frames-sent", G_TYPE_UINT64, self->frames_sent,
      "frames-answered", G_TYPE_UINT64, self->frames_answered,
      "frames-dropped", G_TYPE_UINT64, self->frames_dropped,
      "frames-failed", G_TYPE_UINT64, self->frames_failed,
      "frames-in-flight", G_TYPE_UINT, gst_vsock_enc_in_flight_count (self),
      "bytes-sent", G_TYPE_UINT64, sent,
      "bytes-received", G_TYPE_UINT64, received,
      "rtt-min-us", G_TYPE_UINT64, self->rtt_min,
      "rtt-avg-us", G_TYPE_UINT64,
      self->rtt_count ? self->rtt_sum / self->rtt_count : (guint64) 0,
      "rtt-max-us", G_TYPE_UINT64, self->rtt_max,
      "rtt-last-us", G_TYPE_UINT64, self->rtt_last,
      "protocol-version", G_TYPE_UINT, info->version,
      "max-in-flight", G_TYPE_UINT, info->in_flight_max,
      "window", G_TYPE_UINT, window,
      "host-service-us", G_TYPE_UINT64, service_us,
      "link-rtt-us", G_TYPE_UINT64, link_us,
      "host-encoder", G_TYPE_STRING, info->host_encoder,
      "resource-id-frames", G_TYPE_UINT64, self->resource_frames,
      "pixel-frames", G_TYPE_UINT64, self->pixel_frames,
      "reconnects", G_TYPE_UINT64, self->reconnects, NULL);
  g_mutex_unlock (&self->lock);
  return s;
}

/* stats-interval: checked once per frame on the streaming thread, so it
 * costs a clock read and needs no timer to stop; the messages stop with
 * the frames (and at stop or any state change that stops streaming). */
void
gst_vsock_enc_maybe_post_stats (GstVsockEnc * self)
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
    GstStructure *st = gst_vsock_enc_build_stats (self);

    gst_structure_set_name (st, "vsockenc-stats");
    gst_element_post_message (GST_ELEMENT (self),
        gst_message_new_element (GST_OBJECT (self), st));
  }
  self->next_stats_us = now + ((gint64) interval_ms) * G_TIME_SPAN_MILLISECOND;
}

static gboolean
address_settable (GstVsockEnc * self, GParamSpec * pspec)
{
  gboolean connected;

  g_mutex_lock (&self->lock);
  connected = self->session != NULL;
  g_mutex_unlock (&self->lock);
  if (connected)
    GST_WARNING_OBJECT (self, "%s cannot change while connected", pspec->name);
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
    case PROP_ADAPTIVE_WINDOW:
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
    case PROP_ADAPTIVE_WINDOW:
      self->adaptive_window = g_value_get_boolean (value);
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
    g_value_take_boxed (value, gst_vsock_enc_build_stats (self));
    return;
  }
  if (prop_id == PROP_WINDOW) {
    g_mutex_lock (&self->lock);
    g_value_set_uint (value, self->session ?
        hxfr_guest_session_get_window (self->session) : 0);
    g_mutex_unlock (&self->lock);
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
    case PROP_ADAPTIVE_WINDOW:
      g_value_set_boolean (value, self->adaptive_window);
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

/* One declaration per property with its gtk-doc: long, but a list (it
 * reads best in one place, in the order the enum declares them). */
void
gst_vsock_enc_install_properties (GObjectClass * gobject_class)
{
  gobject_class->set_property = gst_vsock_enc_set_property;
  gobject_class->get_property = gst_vsock_enc_get_property;

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
   * v1 host always gets 1). With #GstVsockEnc:adaptive-window the window
   * moves below this bound; without, it is the window.
   */
  properties[PROP_MAX_IN_FLIGHT] = g_param_spec_uint ("max-in-flight",
      "Max frames in flight", "Frames sent to the host and not yet answered, "
      "at most (in frames; the host may grant fewer, v1 hosts get 1)",
      1, 64, DEFAULT_MAX_IN_FLIGHT,
      G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS | GST_PARAM_MUTABLE_READY);
  /**
   * GstVsockEnc:adaptive-window:
   *
   * Keep as few frames in flight as keep the host's encoder busy: the
   * window starts at 1 and follows the round trip and the host's time per
   * frame that every v2 answer reports, between 1 and the granted
   * #GstVsockEnc:max-in-flight (the rule: docs/architecture.md, "The
   * window"). A frame more than the link needs only waits in front of the
   * encoder, which adds its encode time to every frame's latency. FALSE:
   * always the granted maximum (set max-in-flight to pin the window). A v1
   * host gets one frame in flight either way.
   */
  properties[PROP_ADAPTIVE_WINDOW] = g_param_spec_boolean ("adaptive-window",
      "Adaptive window", "Keep only as many frames in flight (up to "
      "max-in-flight) as the link and the host's encoder need; FALSE: always "
      "max-in-flight", DEFAULT_ADAPTIVE_WINDOW,
      G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS | GST_PARAM_MUTABLE_READY);
  /**
   * GstVsockEnc:window:
   *
   * Frames that may be in flight now: the adaptive window, else the granted
   * maximum; 0 when not connected.
   */
  properties[PROP_WINDOW] = g_param_spec_uint ("window", "Window",
      "Frames that may be in flight now (in frames; 0 when not connected)",
      0, 64, 0, G_PARAM_READABLE | G_PARAM_STATIC_STRINGS);
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
   * max-in-flight (granted), window (frames that may be in flight now),
   * host-service-us and link-rtt-us (the adaptive window's estimates of
   * the host's time per frame and of the link's part of a round trip,
   * microseconds; 0 when not adaptive), host-encoder, resource-id-frames,
   * pixel-frames, reconnects.
   */
  properties[PROP_STATS] = g_param_spec_boxed ("stats", "Statistics",
      "Frames sent/answered/dropped/failed, bytes sent/received, round-trip "
      "times in microseconds (min/avg/max/last), negotiated protocol version, "
      "frames in flight allowed now (window), host encoder, resource-id vs "
      "pixel frames, reconnects",
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
}
