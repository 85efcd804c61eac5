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

#include <string.h>

#include <gst/gst.h>
#include <gst/video/video.h>
#include <gst/allocators/allocators.h>
#include <gst/pbutils/pbutils.h>

#include "gstvsockenc-priv.h"
#include "hxfr-video.h"
#include "vsockenc-gl.h"

GST_DEBUG_CATEGORY (gst_vsock_enc_debug);
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


G_DEFINE_TYPE (GstVsockEnc, gst_vsock_enc, GST_TYPE_VIDEO_ENCODER);
GST_ELEMENT_REGISTER_DECLARE (vsockenc);
GST_ELEMENT_REGISTER_DEFINE (vsockenc, "vsockenc", GST_RANK_NONE,
    GST_TYPE_VSOCK_ENC);

/* Helpers */

/* A reference to the current session (NULL if none). */
static HxfrGuestSession *
current_session (GstVsockEnc * self)
{
  HxfrGuestSession *session;

  g_mutex_lock (&self->lock);
  session = self->session ? hxfr_guest_session_ref (self->session) : NULL;
  g_mutex_unlock (&self->lock);
  return session;
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

/* The src caps of @self's codec, before any profile is known. */
static GstCaps *
output_caps (GstVsockEnc * self)
{
  switch (GST_VSOCK_ENC_CODEC (self)) {
    case HXFR_CODEC_H265:
      return gst_caps_new_simple ("video/x-h265",
          "stream-format", G_TYPE_STRING, "byte-stream",
          "alignment", G_TYPE_STRING, "au", NULL);
    case HXFR_CODEC_AV1:
      return gst_caps_new_simple ("video/x-av1",
          "stream-format", G_TYPE_STRING, "obu-stream",
          "alignment", G_TYPE_STRING, "tu", NULL);
    default:
      return gst_caps_new_simple ("video/x-h264",
          "stream-format", G_TYPE_STRING, "byte-stream",
          "alignment", G_TYPE_STRING, "au", NULL);
  }
}

/* The profile (and level, tier) of the first SPS in @au into @caps. */
static void
caps_set_profile (GstVsockEnc * self, GstCaps * caps, const guint8 * au,
    gsize size)
{
  const guint8 *sps;
  gsize sps_size = 0, len;
  guint8 ptl[16];

  switch (GST_VSOCK_ENC_CODEC (self)) {
    case HXFR_CODEC_H264:
      sps = hxfr_video_au_find_nal (au, size, 7, &sps_size);
      /* profile_idc, the constraint flags and level_idc follow the NAL
       * header byte */
      if (sps && sps_size > 1)
        gst_codec_utils_h264_caps_set_level_and_profile (caps, sps + 1,
            sps_size - 1);
      break;
    case HXFR_CODEC_H265:
      sps = hxfr_video_au_find_h265_nal (au, size, 33, &sps_size);
      /* profile_tier_level() follows the two header bytes and one of
       * parameter set id and sub-layer count: 12 bytes, escaped like the
       * rest (its many zero flags make a 00 00 03 common) */
      if (!sps || sps_size <= 3)
        break;
      len = hxfr_video_nal_unescape (sps + 3, sps_size - 3, ptl, sizeof (ptl));
      if (len >= 12)
        gst_codec_utils_h265_caps_set_level_tier_and_profile (caps, ptl, len);
      break;
    default:
      /* AV1: av1parse reads the sequence header */
      break;
  }
}

/* Reader thread: the first keyframe's SPS names the profile and level in
 * the caps. Stream lock held. */
static void
set_profile_from (GstVsockEnc * self, GstBuffer * au)
{
  GstMapInfo map;
  GstCaps *caps;

  if (self->profile_known || !self->input_state)
    return;
  self->profile_known = TRUE;
  if (!gst_buffer_map (au, &map, GST_MAP_READ))
    return;
  caps = output_caps (self);
  caps_set_profile (self, caps, map.data, map.size);
  gst_buffer_unmap (au, &map);
  if (gst_structure_has_field (gst_caps_get_structure (caps, 0), "profile"))
    gst_video_codec_state_unref (gst_video_encoder_set_output_state
        (GST_VIDEO_ENCODER (self), caps, self->input_state));
  else
    gst_caps_unref (caps);
}

/* Reader thread: the frame bookkeeping of one answer; self->lock held. */
static void
count_answer (GstVsockEnc * self, const HxfrGuestAnswer * a)
{
  if (!a->v1_error) {
    self->rtt_last = a->rtt_us;
    self->rtt_min = self->rtt_count ? MIN (self->rtt_min, self->rtt_last) :
        self->rtt_last;
    self->rtt_max = MAX (self->rtt_max, self->rtt_last);
    self->rtt_sum += self->rtt_last;
    self->rtt_count++;
  }
  if (a->status == HXFR_STATUS_DROPPED)
    self->frames_dropped++;
  else if (a->status == HXFR_STATUS_FAILED)
    self->frames_failed++;
  else
    self->frames_answered++;
}

/* Reader thread (HxfrGuestCallbacks.answer): finishes the answered frame,
 * with its access unit if any, in order. */
static gboolean
on_answer (HxfrGuestSession * session, HxfrGuestAnswer * a, gpointer tag,
    gpointer user_data, GError ** error)
{
  GstVsockEnc *self = user_data;
  GstBuffer *au = NULL;
  PendingFrame *p;
  GstFlowReturn ret = GST_FLOW_OK;

  if (a->data) {
    gboolean want_aud;

    GST_OBJECT_LOCK (self);
    want_aud = self->aud;
    GST_OBJECT_UNLOCK (self);
    au = gst_buffer_new_wrapped (a->data, a->size);
    /* the aud property is H.264's (an H.264 NAL unit) */
    if (GST_VSOCK_ENC_CODEC (self) == HXFR_CODEC_H264)
      au = vsockenc_au_set_aud (au, want_aud);
    a->data = NULL;
  }

  GST_VIDEO_ENCODER_STREAM_LOCK (self);
  g_mutex_lock (&self->lock);
  p = gst_vsock_enc_in_flight_answered (self, tag);
  if (!p) {
    g_set_error (error, HXFR_ERROR, HXFR_ERR_INVALID,
        "answer with no frame in flight");
    g_mutex_unlock (&self->lock);
    GST_VIDEO_ENCODER_STREAM_UNLOCK (self);
    gst_clear_buffer (&au);
    return FALSE;
  }
  count_answer (self, a);
  g_cond_broadcast (&self->cond);
  g_mutex_unlock (&self->lock);

  if (a->v1_error)
    GST_ELEMENT_WARNING (self, STREAM, ENCODE,
        ("The host could not encode a frame"),
        ("error %d (%s): %s", a->error_code,
            hxfr_error_code_name (a->error_code), a->text));
  else if (a->status == HXFR_STATUS_FAILED)
    GST_ELEMENT_WARNING (self, STREAM, ENCODE,
        ("The host could not encode frame %u", a->seq),
        ("error %d (%s): %s", a->error_code,
            hxfr_error_code_name (a->error_code), a->text));

  if (p->frame) {
    GstVideoCodecFrame *frame = p->frame;

    p->frame = NULL;
    GST_LOG_OBJECT (self, "frame %u answered (seq %u, status %d, %"
        G_GSIZE_FORMAT " bytes, keyframe %d)", frame->system_frame_number,
        a->seq, a->status, au ? gst_buffer_get_size (au) : 0, a->keyframe);
    if (au && a->keyframe) {
      GST_VIDEO_CODEC_FRAME_SET_SYNC_POINT (frame);
      set_profile_from (self, au);
    }
    frame->output_buffer = g_steal_pointer (&au);
    ret = gst_video_encoder_finish_frame (GST_VIDEO_ENCODER (self), frame);
  }
  GST_VIDEO_ENCODER_STREAM_UNLOCK (self);
  gst_clear_buffer (&au);
  gst_vsock_enc_in_flight_done (p);
  record_flow (self, ret);
  return TRUE;
}

/* Reader thread (HxfrGuestCallbacks.lost). */
static void
on_lost (HxfrGuestSession * session, const gchar * what, const GError * err,
    gpointer user_data)
{
  gst_vsock_enc_connection_failed (user_data, session, what, err);
}

static const HxfrGuestCallbacks session_callbacks = { on_answer, on_lost };

/* Installs @session (taking it) as the current one and starts its reader;
 * the bytes of the one it replaces go to the totals. */
static void
start_session (GstVsockEnc * self, HxfrGuestSession * session)
{
  HxfrGuestSession *old;

  g_mutex_lock (&self->lock);
  old = self->session;
  if (old) {
    self->bytes_sent_done += hxfr_guest_session_get_bytes_sent (old);
    self->bytes_received_done += hxfr_guest_session_get_bytes_received (old);
  }
  self->session = session;
  self->conn_lost = FALSE;
  g_mutex_unlock (&self->lock);
  if (old)
    hxfr_guest_session_unref (old);
  hxfr_guest_session_start (session, &session_callbacks, self);
}

/* Stops the session's reader and drops the frames in flight; the session
 * stays current (for what it negotiated and its byte counts) until
 * replaced or cleared. Call without the stream lock: the reader may need
 * it to finish. */
static void
end_session (GstVsockEnc * self)
{
  HxfrGuestSession *session = current_session (self);
  GQueue left;

  if (session)
    hxfr_guest_session_stop (session);
  g_mutex_lock (&self->lock);
  left = gst_vsock_enc_in_flight_release (self);
  g_mutex_unlock (&self->lock);
  gst_vsock_enc_in_flight_free (self, &left, FALSE);
  if (session)
    hxfr_guest_session_unref (session);
}

/* Streaming thread: the wire format of the input for @version, 0 if that
 * version cannot carry it (v1: no I420, no odd-sized NV12). */
static guint32
wire_format (const GstVideoInfo * info, guint version)
{
  guint32 fourcc = hxfr_video_format_to_fourcc (GST_VIDEO_INFO_FORMAT (info),
      version);

  if (version < 2 && fourcc == HXFR_FORMAT_NV12
      && (GST_VIDEO_INFO_WIDTH (info) % 2 || GST_VIDEO_INFO_HEIGHT (info) % 2))
    return 0;
  return fourcc;
}

/* Streaming thread, stream lock held. FALSE while the host is unreachable
 * (the caller drops the frame) or speaks a version that cannot carry the
 * format (flow_ret says so). */
static gboolean
try_reconnect (GstVsockEnc * self)
{
  HxfrGuestSession *session;
  const HxfrGuestInfo *info;
  GError *err = NULL;

  if (!hxfr_backoff_due (&self->backoff, g_get_monotonic_time ()))
    return FALSE;

  GST_VIDEO_ENCODER_STREAM_UNLOCK (self);
  end_session (self);
  session = gst_vsock_enc_connect_session (self, &err);
  GST_VIDEO_ENCODER_STREAM_LOCK (self);

  if (!session) {
    guint ms = hxfr_backoff_failed (&self->backoff, g_get_monotonic_time ());

    GST_WARNING_OBJECT (self, "reconnecting to %s failed (%s), next try in "
        "%u ms", self->address_str, err->message, ms);
    g_clear_error (&err);
    return FALSE;
  }
  info = hxfr_guest_session_get_info (session);
  GST_INFO_OBJECT (self, "reconnected to %s, version %u", self->address_str,
      info->version);
  hxfr_backoff_reset (&self->backoff);
  self->need_key = TRUE;
  g_atomic_int_set (&self->reconfigure, TRUE);
  g_mutex_lock (&self->lock);
  self->reconnects++;
  g_mutex_unlock (&self->lock);
  start_session (self, session);

  /* the host behind the address may now speak another version */
  if (self->input_state) {
    guint32 fourcc = wire_format (&self->info, info->version);

    if (!fourcc) {
      GST_ELEMENT_ERROR (self, CORE, NEGOTIATION,
          ("The host bridge at %s now speaks HXFR v%u, which cannot carry "
              "%ux%u %s", self->address_str, info->version,
              GST_VIDEO_INFO_WIDTH (&self->info),
              GST_VIDEO_INFO_HEIGHT (&self->info),
              GST_VIDEO_INFO_NAME (&self->info)), (NULL));
      record_flow (self, GST_FLOW_NOT_NEGOTIATED);
      return FALSE;
    }
    self->fourcc = fourcc;
  }
  return TRUE;
}

/* Streaming thread, stream lock held: sends the settings when a property
 * changed. */
static gboolean
apply_reconfigure (GstVsockEnc * self, HxfrGuestSession * session,
    GError ** error)
{
  HxfrGuestSettings st = { 0, };
  GstVideoInfo *info = &self->info;
  gint bitrate, kfi;
  gboolean ok;

  if (!g_atomic_int_compare_and_exchange (&self->reconfigure, TRUE, FALSE))
    return TRUE;

  GST_OBJECT_LOCK (self);
  bitrate = self->bitrate;
  kfi = self->keyframe_interval;
  GST_OBJECT_UNLOCK (self);
  gst_vsock_enc_warn_if_bitrate_implausible (self, bitrate);

  st.bitrate = MAX (bitrate, 0);
  st.keyframe_interval = MAX (kfi, 0);
  st.width = GST_VIDEO_INFO_WIDTH (info);
  st.height = GST_VIDEO_INFO_HEIGHT (info);
  st.fps_n = MAX (GST_VIDEO_INFO_FPS_N (info), 0);
  st.fps_d = MAX (GST_VIDEO_INFO_FPS_D (info), 0);
  GST_DEBUG_OBJECT (self, "sending settings: bitrate %d, keyframe-interval "
      "%d", bitrate, kfi);
  /* never block on the socket while the reader may need the stream lock */
  GST_VIDEO_ENCODER_STREAM_UNLOCK (self);
  ok = hxfr_guest_session_send_settings (session, &st, error);
  GST_VIDEO_ENCODER_STREAM_LOCK (self);
  return ok;
}

/* Frames that may be in flight now; self->lock held. */
static guint
window_locked (GstVsockEnc * self)
{
  return self->session ? hxfr_guest_session_get_window (self->session) : 1;
}

/* Streaming thread, stream lock held on entry and exit; released while
 * waiting. Waits until fewer than @max frames are in flight, or with @max
 * 0 fewer than the session's window, which answers may move meanwhile
 * (@max 1: until none, for drain's last wait each wait is bounded anew
 * when one is answered). */
static GstFlowReturn
wait_in_flight_below (GstVsockEnc * self, guint max)
{
  GstFlowReturn ret;
  gint64 deadline;
  guint last_len;
  gboolean timed_out = FALSE;
  HxfrGuestSession *session = NULL;

  GST_VIDEO_ENCODER_STREAM_UNLOCK (self);
  g_mutex_lock (&self->lock);
  last_len = gst_vsock_enc_in_flight_count (self);
  /* the reader enforces the per-answer timeout; this is a backstop */
  deadline = g_get_monotonic_time () + self->timeout_us + G_USEC_PER_SEC;
  while (gst_vsock_enc_in_flight_count (self) >= (max ? max :
          window_locked (self))
      && !self->flushing && !self->stopping && !self->conn_lost
      && self->flow_ret == GST_FLOW_OK) {
    if (gst_vsock_enc_in_flight_count (self) < last_len) {
      last_len = gst_vsock_enc_in_flight_count (self);
      deadline = g_get_monotonic_time () + self->timeout_us + G_USEC_PER_SEC;
    }
    if (!g_cond_wait_until (&self->cond, &self->lock, deadline)) {
      timed_out = TRUE;
      session = self->session ? hxfr_guest_session_ref (self->session) : NULL;
      break;
    }
  }
  ret = (self->flushing || self->stopping) ? GST_FLOW_FLUSHING : self->flow_ret;
  g_mutex_unlock (&self->lock);

  if (session)
    ret = gst_vsock_enc_end_wait (self, session, timed_out, ret);
  GST_VIDEO_ENCODER_STREAM_LOCK (self);
  return ret;
}

/* Streaming thread: waits until every frame in flight is answered. */
static GstFlowReturn
drain (GstVsockEnc * self)
{
  GstFlowReturn ret = wait_in_flight_below (self, 1);

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
  self->adaptive_window = DEFAULT_ADAPTIVE_WINDOW;
  self->timeout_ms = DEFAULT_TIMEOUT;
  self->on_disconnect = DEFAULT_ON_DISCONNECT;
  self->protocol = DEFAULT_PROTOCOL;
  self->token = g_strdup (DEFAULT_TOKEN);
  self->zero_copy = DEFAULT_ZERO_COPY;
  self->drm_device = g_strdup (DEFAULT_DRM_DEVICE);
  self->aud = DEFAULT_AUD;
  self->stats_interval_ms = DEFAULT_STATS_INTERVAL;
  vsockenc_resources_init (&self->resources);
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

/* Virtual methods */

static gboolean
gst_vsock_enc_start (GstVideoEncoder * enc)
{
  GstVsockEnc *self = GST_VSOCK_ENC (enc);
  HxfrGuestSession *session;
  const HxfrGuestInfo *info;
  GError *err = NULL;
  GPollFD unused;

  GST_OBJECT_LOCK (self);
  self->timeout_us = (gint64) self->timeout_ms * G_TIME_SPAN_MILLISECOND;
  self->disconnect_mode = self->on_disconnect;
  GST_OBJECT_UNLOCK (self);

  self->address = gst_vsock_enc_address_from_properties (self);
  self->address_str = hxfr_address_to_string (self->address);
  self->cancellable = g_cancellable_new ();
  /* every bounded socket wait polls the cancellable: with no reference
   * held GLib makes and closes its eventfd on each one (two eventfd2 and
   * two close per frame, seen in the link benchmark) */
  g_cancellable_make_pollfd (self->cancellable, &unused);
  self->flushing = FALSE;
  self->stopping = FALSE;
  self->flow_ret = GST_FLOW_OK;
  self->need_key = TRUE;
  self->frames_since_key = 0;
  hxfr_backoff_reset (&self->backoff);
  self->profile_known = FALSE;
  vsockenc_resources_reset (&self->resources);
  self->next_stats_us = 0;
  g_atomic_int_set (&self->reconfigure, FALSE);

  /* connected here so that the version is known before caps negotiation */
  session = gst_vsock_enc_connect_session (self, &err);
  if (!session) {
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
  info = hxfr_guest_session_get_info (session);
  GST_INFO_OBJECT (self, "connected to %s: protocol version %u, %u frames in "
      "flight, host encoder '%s'", self->address_str, info->version,
      info->in_flight_max, info->host_encoder);
  start_session (self, session);
  return TRUE;
}

/* Wakes a streaming thread waiting for the host and ends the session. */
static void
interrupt_and_end_session (GstVsockEnc * self)
{
  g_mutex_lock (&self->lock);
  self->stopping = TRUE;
  g_cond_broadcast (&self->cond);
  g_mutex_unlock (&self->lock);
  if (self->cancellable)
    g_cancellable_cancel (self->cancellable);
  end_session (self);
}

static gboolean
gst_vsock_enc_stop (GstVideoEncoder * enc)
{
  GstVsockEnc *self = GST_VSOCK_ENC (enc);
  HxfrGuestSession *session;

  interrupt_and_end_session (self);

  /* not connected any more: protocol-version 0 in the stats */
  g_mutex_lock (&self->lock);
  session = self->session;
  self->session = NULL;
  if (session) {
    self->bytes_sent_done += hxfr_guest_session_get_bytes_sent (session);
    self->bytes_received_done +=
        hxfr_guest_session_get_bytes_received (session);
  }
  g_mutex_unlock (&self->lock);
  if (session)
    hxfr_guest_session_unref (session);
  if (self->cancellable)
    g_cancellable_release_fd (self->cancellable);
  g_clear_object (&self->cancellable);
  g_clear_pointer (&self->address, hxfr_address_free);
  g_clear_pointer (&self->address_str, g_free);
  g_clear_pointer (&self->input_state, gst_video_codec_state_unref);
  vsockenc_resources_reset (&self->resources);
  return TRUE;
}

static GstStateChangeReturn
gst_vsock_enc_change_state (GstElement * element, GstStateChange transition)
{
  GstVsockEnc *self = GST_VSOCK_ENC (element);

  /* unblock a streaming thread waiting for the host and stop the reader
   * before the base class takes the stream lock */
  if (transition == GST_STATE_CHANGE_PAUSED_TO_READY)
    interrupt_and_end_session (self);
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
  /* the host still answers what is in flight */
  g_mutex_lock (&self->lock);
  gst_vsock_enc_in_flight_forget_frames (self);
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
  version = self->session ?
      hxfr_guest_session_get_info (self->session)->version : 0;
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

/* The wire format of @info for the host behind @ginfo, 0 (with an error
 * posted) if it cannot take it. */
static guint32
check_format (GstVsockEnc * self, const HxfrGuestInfo * ginfo,
    const GstVideoInfo * info)
{
  guint w = GST_VIDEO_INFO_WIDTH (info), h = GST_VIDEO_INFO_HEIGHT (info);
  guint32 fourcc = hxfr_video_format_to_fourcc (GST_VIDEO_INFO_FORMAT (info),
      ginfo->version);

  if (!fourcc) {
    GST_ELEMENT_ERROR (self, CORE, NEGOTIATION,
        ("The host bridge at %s speaks HXFR v%u, which cannot carry %s: put "
            "videoconvert before vsockenc", self->address_str, ginfo->version,
            GST_VIDEO_INFO_NAME (info)), (NULL));
    return 0;
  }
  if (!wire_format (info, ginfo->version)) {
    GST_ELEMENT_ERROR (self, CORE, NEGOTIATION,
        ("HXFR v1 (the host bridge at %s) cannot carry NV12 of odd size "
            "%ux%u", self->address_str, w, h), (NULL));
    return 0;
  }
  if (w > ginfo->host_max_width || h > ginfo->host_max_height) {
    GST_ELEMENT_ERROR (self, CORE, NEGOTIATION,
        ("The host bridge at %s takes frames up to %ux%u, not %ux%u",
            self->address_str, ginfo->host_max_width, ginfo->host_max_height,
            w, h), (NULL));
    return 0;
  }
  return fourcc;
}

static gboolean
gst_vsock_enc_set_format (GstVideoEncoder * enc, GstVideoCodecState * state)
{
  GstVsockEnc *self = GST_VSOCK_ENC (enc);
  GstVideoInfo layout = state->info, *info = &layout;
  GstVideoCodecState *out;
  GstCaps *caps;
  GstClockTime dur, min, max;
  HxfrGuestSession *session;
  guint32 fourcc;
  guint in_flight;

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

  /* the base class does not drain before a new format */
  if (self->input_state && drain (self) != GST_FLOW_OK)
    return FALSE;

  session = current_session (self);
  if (!session)
    return FALSE;
  fourcc = check_format (self, hxfr_guest_session_get_info (session), info);
  in_flight = hxfr_guest_session_get_info (session)->in_flight_max;
  hxfr_guest_session_unref (session);
  if (!fourcc)
    return FALSE;

  g_clear_pointer (&self->input_state, gst_video_codec_state_unref);
  self->input_state = gst_video_codec_state_ref (state);
  self->info = layout;
  self->fourcc = fourcc;
  self->profile_known = FALSE;
  g_atomic_int_set (&self->reconfigure, TRUE);

  caps = output_caps (self);
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

/* Streaming thread: whether this frame is to be an IDR (the first, after a
 * flush or reconnect, asked for, or the keyframe interval's). */
static gboolean
decide_keyframe (GstVsockEnc * self, GstVideoCodecFrame * frame)
{
  gboolean force;
  gint kfi;

  GST_OBJECT_LOCK (self);
  kfi = self->keyframe_interval;
  GST_OBJECT_UNLOCK (self);
  force = self->need_key || GST_VIDEO_CODEC_FRAME_IS_FORCE_KEYFRAME (frame)
      || (kfi > 0 && self->frames_since_key >= (guint) kfi);
  if (force) {
    self->frames_since_key = 0;
    self->need_key = FALSE;
  }
  self->frames_since_key++;
  return force;
}

/* Streaming thread: the request for @frame, as a resource id when it is a
 * virtio-gpu DMA-BUF the host can resolve, else its pixels. */
static GstFlowReturn
build_request (GstVsockEnc * self, const HxfrGuestInfo * ginfo,
    GstVideoCodecFrame * frame, VsockEncRequest * r)
{
  GstVideoInfo *info = &self->info;
  HxfrFrameRequest *req = &r->req;
  gsize mem_offset = 0;
  gboolean zero_copy;
  gchar *device;

  req->width = GST_VIDEO_INFO_WIDTH (info);
  req->height = GST_VIDEO_INFO_HEIGHT (info);
  req->format = self->fourcc;
  req->pts = GST_CLOCK_TIME_IS_VALID (frame->pts) ? (gint64) frame->pts : -1;
  req->duration = GST_CLOCK_TIME_IS_VALID (frame->duration) ?
      (gint64) frame->duration : -1;
  req->force_keyframe = decide_keyframe (self, frame);

  /* our own reference: once queued, the reader may finish the frame (and
   * free it) as soon as the request is out */
  r->input = gst_buffer_ref (frame->input_buffer);
  GST_OBJECT_LOCK (self);
  zero_copy = self->zero_copy;
  device = g_strdup (self->drm_device);
  GST_OBJECT_UNLOCK (self);
  if (zero_copy && ginfo->host_resource_ids)
    req->resource_id = vsockenc_resources_lookup (&self->resources,
        GST_ELEMENT (self), device, r->input, &mem_offset);
  g_free (device);
  return vsockenc_request_fill (r, GST_ELEMENT (self), info, ginfo->version,
      mem_offset);
}

/* Streaming thread, stream lock held (released while sending): queues
 * @frame as in flight and sends its request. */
static gboolean
send_request (GstVsockEnc * self, HxfrGuestSession * session,
    GstVideoCodecFrame * frame, VsockEncRequest * r, GError ** error)
{
  guint32 frame_number = frame->system_frame_number;
  PendingFrame *p;
  gboolean ok;

  g_mutex_lock (&self->lock);
  /* queued before it is sent: the answer may come back at once */
  p = gst_vsock_enc_in_flight_add (self, frame, r->input);
  self->frames_sent++;
  if (r->req.resource_id)
    self->resource_frames++;
  else
    self->pixel_frames++;
  g_mutex_unlock (&self->lock);

  /* the reader finishes frames meanwhile: it needs the stream lock */
  GST_VIDEO_ENCODER_STREAM_UNLOCK (self);
  ok = hxfr_guest_session_send_frame (session, &r->req, r->vec, r->n_vec, p,
      error);
  GST_VIDEO_ENCODER_STREAM_LOCK (self);
  GST_LOG_OBJECT (self, "frame %u: seq %u, %s, force keyframe %d",
      frame_number, r->req.seq, r->req.resource_id ? "resource id" :
      "pixels", r->req.force_keyframe);
  return ok;
}

/* The flow state: FLUSHING while flushing or stopping, else flow_ret. */
static GstFlowReturn
current_flow (GstVsockEnc * self, gboolean * lost)
{
  GstFlowReturn ret;

  g_mutex_lock (&self->lock);
  ret = (self->flushing || self->stopping) ? GST_FLOW_FLUSHING : self->flow_ret;
  if (lost)
    *lost = self->conn_lost;
  g_mutex_unlock (&self->lock);
  return ret;
}

/* The host is unreachable: @frame is dropped (finished without output)
 * while the flow is OK, as in reconnect mode; else the flow's error. */
static GstFlowReturn
drop_frame (GstVsockEnc * self, GstVideoCodecFrame * frame)
{
  GstFlowReturn ret;

  g_mutex_lock (&self->lock);
  ret = self->flow_ret;
  g_mutex_unlock (&self->lock);
  if (ret != GST_FLOW_OK) {
    gst_video_codec_frame_unref (frame);
    return ret;
  }
  GST_LOG_OBJECT (self, "host unreachable, dropping frame %u",
      frame->system_frame_number);
  return gst_video_encoder_finish_frame (GST_VIDEO_ENCODER (self), frame);
}

/* Streaming thread: reconnect if needed, send the settings if changed,
 * wait for room in the window, then build and send the request. */
static GstFlowReturn
gst_vsock_enc_handle_frame (GstVideoEncoder * enc, GstVideoCodecFrame * frame)
{
  GstVsockEnc *self = GST_VSOCK_ENC (enc);
  VsockEncRequest r = { {0,}, };
  HxfrGuestSession *session;
  const HxfrGuestInfo *info;
  GstFlowReturn ret;
  GError *err = NULL;
  gboolean lost, ok;

  ret = current_flow (self, &lost);
  if (ret != GST_FLOW_OK) {
    gst_video_codec_frame_unref (frame);
    return ret;
  }
  gst_vsock_enc_maybe_post_stats (self);
  if (lost && !try_reconnect (self))
    return drop_frame (self, frame);

  session = current_session (self);
  info = hxfr_guest_session_get_info (session);
  if (!apply_reconfigure (self, session, &err)) {
    gst_vsock_enc_send_failed (self, session, "sending settings", err);
    g_clear_error (&err);
    /* never sent: released here */
    gst_video_encoder_finish_frame (enc, frame);
    hxfr_guest_session_unref (session);
    return gst_vsock_enc_flow_after_send_failure (self);
  }

  ret = wait_in_flight_below (self, 0);
  if (ret == GST_FLOW_OK && gst_vsock_enc_session_lost (self, session)) {
    /* reconnect mode: the frame goes with the others lost in flight */
    hxfr_guest_session_unref (session);
    return gst_video_encoder_finish_frame (enc, frame);
  }
  if (ret == GST_FLOW_OK)
    ret = build_request (self, info, frame, &r);
  if (ret != GST_FLOW_OK) {
    gst_video_codec_frame_unref (frame);
    hxfr_guest_session_unref (session);
    return ret;
  }

  ok = send_request (self, session, frame, &r, &err);
  vsockenc_request_clear (&r);
  if (!ok) {
    gst_vsock_enc_send_failed (self, session, "sending a frame", err);
    g_clear_error (&err);
    ret = gst_vsock_enc_flow_after_send_failure (self);
  }
  hxfr_guest_session_unref (session);
  return ret;
}

static GstFlowReturn
gst_vsock_enc_finish (GstVideoEncoder * enc)
{
  GstVsockEnc *self = GST_VSOCK_ENC (enc);

  GST_DEBUG_OBJECT (self, "draining the frames in flight");
  return drain (self);
}

static gboolean
gst_vsock_enc_propose_allocation (GstVideoEncoder * enc, GstQuery * query)
{
  /* any plane layout goes as is in v2 */
  gst_query_add_allocation_meta (query, GST_VIDEO_META_API_TYPE, NULL);
  return
      GST_VIDEO_ENCODER_CLASS (gst_vsock_enc_parent_class)->propose_allocation
      (enc, query);
}

static void
gst_vsock_enc_class_init (GstVsockEncClass * klass)
{
  GObjectClass *gobject_class = G_OBJECT_CLASS (klass);
  GstElementClass *element_class = GST_ELEMENT_CLASS (klass);
  GstVideoEncoderClass *venc_class = GST_VIDEO_ENCODER_CLASS (klass);

  gobject_class->finalize = gst_vsock_enc_finalize;
  gst_vsock_enc_install_properties (gobject_class);
  klass->codec = HXFR_CODEC_H264;

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
  GST_DEBUG_CATEGORY_INIT (gst_vsock_enc_debug, "vsockenc", 0,
      "Host-offloaded H.264 encoder");
}
