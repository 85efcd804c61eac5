/* helix-host-bridge: encodes guests' frames on the host.
 *
 * Threads:
 * - the main thread runs a GMainLoop: one GSource per listening socket
 *   (accept, access control, session limit), SIGINT/SIGTERM.
 * - one thread per session: handshake (hxfr_host_session_handshake, which
 *   asks choose_codec() for the guest's codec), then it builds and owns the
 *   session's pipeline (the encoder chain: bridge-pipeline.c)
 *     vsocksrc ! queue ! [videoconvert] ! ENCODER ! PARSER ! capsfilter ! appsink
 *   and waits on the pipeline's bus until EOS (guest left, or we drain on
 *   shutdown) or an error, then tears it down and logs the session's end.
 * - inside each pipeline: vsocksrc's streaming thread reads requests; the
 *   queue's thread runs the encoder and appsink's new-sample callback, which
 *   writes each access unit back as the answer to its request
 *   (hxfr_host_session_answer pairs it by PTS, answers in order).
 * - a refused connection (limit, access control) is sent ERROR and closed,
 *   and one over a session limit waits out its grace, on a small thread
 *   pool (at most MAX_REFUSALS), without holding up the main loop.
 *
 * Bridge.lock protects sessions, n_sessions, the admission counts
 * (n_admitted, peer_sessions, Session.admitted) and stopping; lock order:
 * Bridge.lock, then a session's own locks (never the other way).
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <errno.h>
#include <string.h>
#include <sys/stat.h>
#include <glib-unix.h>
#include <gst/gst.h>
#include <gst/app/gstappsink.h>
#include <gst/video/video.h>

#include "hxfr-host-session.h"
#include "gstvsocksrc.h"
#include "hxfr-export-client.h"
#include "bridge-encoder.h"
#include "bridge-pipeline.h"
#include "bridge-notify.h"
#include "bridge-fds.h"
#include "bridge-metrics.h"
#include "bridge-scanout.h"
#include "bridge-log-limit.h"
#include "hxfr-scanout.h"
#include "hxfr-video.h"

GST_DEBUG_CATEGORY (bridge_debug);
#define GST_CAT_DEFAULT bridge_debug

#define DEFAULT_MAX_SESSIONS 16
#define DEFAULT_MAX_DIMENSION 8192
#define DEFAULT_IDLE_TIMEOUT 5.0
#define DEFAULT_DRAIN_TIMEOUT 5.0
/* A guest connects when its pipeline starts and sends its first message at
 * once (HELLO) or with its first frame (v1): a connection silent for this
 * long is not a guest and must not keep a session slot. */
#define DEFAULT_FIRST_MESSAGE_TIMEOUT 30.0
#define DEFAULT_BITRATE 4000000
#define DEFAULT_UNIX_MODE "0660"
/* as deployed: helix's QEMU re-encodes a static screen after 500 ms */
#define DEFAULT_QUIET_INTERVAL 0.5
#define DEFAULT_MAX_SUBSCRIBERS_PER_SCANOUT 8
/* frames a subscriber may have queued (a slow one skips to the next IDR) */
#define SCANOUT_QUEUE_FRAMES 8
/* at most one "guest bitrate" line per session in this time */
#define SETTINGS_LOG_INTERVAL_US (10 * G_USEC_PER_SEC)


typedef struct _Bridge Bridge;

typedef struct
{
  Bridge *bridge;
  guint id;
  HxfrConn *conn;
  HxfrHostSession *hs;
  HxfrExportClient *export;     /* this session's own, or NULL */
  BridgeVm *vm;                 /* its listener's VM (helix export), or NULL */
  gboolean deployed_ok;         /* its listener takes deployed scanout clients */
  gboolean scanout_client;      /* served by bridge_vm_serve() */
  GCancellable *cancellable;
  GThread *thread;
  GstElement *pipeline;         /* session thread only */
  GstElement *src;
  GstElement *encoder;
  const BridgeEncoderChoice *enc;       /* the codec's, once handshaken */
  gint64 t_start;
  gint64 t_first_frame;
  gint64 t_last_frame;
  gboolean playing;             /* under Bridge.lock: EOS may be sent */
  gboolean drained;             /* under Bridge.lock: EOS sent by us */
  gchar *peer;                  /* hxfr_conn_get_peer_identity() */
  gboolean admitted;            /* under Bridge.lock: counts against the
                                 * session limits */
  /* reader thread (on_settings), then session end */
  guint settings_changes;
  guint settings_unlogged;
  gint64 t_settings_logged;
} Session;

typedef struct
{
  HxfrListener *listener;
  GSource *source;
  gboolean is_unix, is_vsock;
  BridgeVm *vm;                 /* export=, else --export's; or NULL */
  gboolean deployed_ok;         /* ",deployed": scanout clients without a
                                 * token (helix's, as deployed) */
} Listener;

struct _Bridge
{
  /* options */
  gchar **listen;
  gchar *export_path;           /* --export: the VMM's helix export socket */
  GPtrArray *vms;               /* BridgeVm*, one per export path */
  BridgeScanoutConfig scanout_cfg;
  gchar *encoder_name;          /* H.264's (scanouts, v1), else --encoder's */
  /* per codec (bridge_codec_index()): its encoder (name NULL: none), or
   * why there is none, for the guest's ERROR */
  BridgeEncoderChoice encoders[BRIDGE_N_CODECS];
  gchar *no_encoder[BRIDGE_N_CODECS];
  gboolean null_encoder;
  guint bitrate;
  guint max_sessions;
  guint max_sessions_per_peer;  /* 0: no per-peer limit */
  guint max_in_flight;
  HxfrHostConfig cfg;
  gdouble drain_timeout;
  gdouble first_message_timeout;
  guint unix_mode;
  GArray *allow_uid;
  GArray *allow_cid;

  GMainLoop *loop;
  GPtrArray *listeners;

  GMutex lock;
  GCond cond;
  GList *sessions;
  guint n_sessions;             /* threads not ended: what a drain waits for */
  guint n_admitted;             /* sessions holding a slot */
  guint fd_limit;
  GHashTable *peer_sessions;    /* peer identity -> sessions (GUINT) */
  guint next_id;
  gboolean stopping;
  gboolean loop_quit;           /* main loop: a signal came, we are stopping */
  /* --metrics, under lock: the counters of ended sessions */
  BridgeMetrics *metrics;
  HxfrHostStats ended;
  guint64 sessions_total;
  guint64 refusals_total;
};

/* Logs go to stderr, one line per event, without GLib's decoration. */
/* *INDENT-OFF* */ /* indent cannot parse G_GNUC_PRINTF */
static void
log_line (const gchar * format, ...) G_GNUC_PRINTF (1, 2);
/* *INDENT-ON* */

static void
log_line (const gchar * format, ...)
{
  va_list args;
  gchar *msg;
  GDateTime *now = g_date_time_new_now_utc ();
  gchar *ts = g_date_time_format (now, "%H:%M:%S");

  va_start (args, format);
  msg = g_strdup_vprintf (format, args);
  va_end (args);
  g_printerr ("%s.%03d helix-host-bridge: %s\n", ts,
      g_date_time_get_microsecond (now) / 1000, msg);
  g_free (msg);
  g_free (ts);
  g_date_time_unref (now);
}

/* Lines about what scanout clients without a token repeat (SUBSCRIBE,
 * ENABLE/DISABLE, their refusals): every peer gets a burst of 20 and then
 * 1 a second, all of them together 60 and 5 a second; a line let through
 * says how many were not (docs/security.md) */
static BridgeLogLimit *unproven_log_limit;

static void
log_unproven (const gchar * peer, const gchar * line)
{
  guint64 suppressed = 0;

  if (!bridge_log_limit_take (unproven_log_limit, peer, &suppressed))
    return;
  if (suppressed)
    log_line ("%s (suppressed %" G_GUINT64_FORMAT " lines of clients "
        "without a token before this one)", line, suppressed);
  else
    log_line ("%s", line);
}

/* Session */

static void
on_settings (HxfrHostSession * hs, guint32 mask,
    const HxfrHostSettings * st, gpointer user_data)
{
  Session *s = user_data;

  const BridgeEncoder *desc = s->enc->desc;
  const gchar *prop = desc ? desc->bitrate_prop : "bitrate";
  GValue v = G_VALUE_INIT;
  GParamSpec *pspec;
  gchar *now;

  gint64 t = g_get_monotonic_time ();

  /* the reader thread; encoders take their bitrate while PLAYING */
  if (!(mask & HXFR_CONTROL_BITRATE) || !s->encoder)
    return;
  bridge_encoder_set_bitrate (s->encoder, desc, st->bitrate);
  s->settings_changes++;
  /* a guest changing its bitrate on every frame must not flood the log:
   * one line per SETTINGS_LOG_INTERVAL_US, counting the others */
  if (s->t_settings_logged
      && t - s->t_settings_logged < SETTINGS_LOG_INTERVAL_US) {
    s->settings_unlogged++;
    return;
  }
  pspec = g_object_class_find_property (G_OBJECT_GET_CLASS (s->encoder), prop);
  if (!pspec)
    return;
  g_value_init (&v, pspec->value_type);
  g_object_get_property (G_OBJECT (s->encoder), prop, &v);
  now = g_strdup_value_contents (&v);
  if (s->settings_unlogged)
    log_line ("session %u: guest bitrate %u bit/s, %s %s=%s (%u more "
        "changes not logged)", s->id, st->bitrate, s->enc->name,
        prop, now, s->settings_unlogged);
  else
    log_line ("session %u: guest bitrate %u bit/s, %s %s=%s", s->id,
        st->bitrate, s->enc->name, prop, now);
  s->t_settings_logged = t;
  s->settings_unlogged = 0;
  g_free (now);
  g_value_unset (&v);
}

static GstFlowReturn
on_new_sample (GstAppSink * sink, gpointer user_data)
{
  Session *s = user_data;
  GstSample *sample = gst_app_sink_pull_sample (sink);
  GstSegment *segment;
  GstBuffer *buf;
  GstMapInfo map;
  GError *err = NULL;
  GstClockTime pts, dts;
  gboolean ok;

  if (!sample)
    return GST_FLOW_FLUSHING;
  buf = gst_sample_get_buffer (sample);
  /* Encoders may shift timestamps (x264enc adds 1000 hours so that DTS
   * never goes negative) and move the segment with them: the running time
   * is what is left of the PTS vsocksrc tagged the request with. */
  segment = gst_sample_get_segment (sample);
  pts = gst_segment_to_running_time (segment, GST_FORMAT_TIME,
      GST_BUFFER_PTS (buf));
  dts = GST_BUFFER_DTS_IS_VALID (buf) ?
      gst_segment_to_running_time (segment, GST_FORMAT_TIME,
      GST_BUFFER_DTS (buf)) : GST_CLOCK_TIME_NONE;
  if (!GST_CLOCK_TIME_IS_VALID (dts))
    dts = pts;
  s->t_last_frame = g_get_monotonic_time ();
  if (!s->t_first_frame)
    s->t_first_frame = s->t_last_frame;

  GST_LOG ("session %u: access unit for %" GST_TIME_FORMAT, s->id,
      GST_TIME_ARGS (pts));
  if (s->bridge->null_encoder) {
    /* the --encoder null answer: one access unit delimiter */
    ok = hxfr_host_session_answer (s->hs, pts, HXFR_STATUS_OK, hxfr_video_aud,
        sizeof (hxfr_video_aud), FALSE, (gint64) pts, 0, NULL, &err);
  } else {
    gst_buffer_map (buf, &map, GST_MAP_READ);
    ok = hxfr_host_session_answer (s->hs, pts, HXFR_STATUS_OK, map.data,
        map.size, !GST_BUFFER_FLAG_IS_SET (buf, GST_BUFFER_FLAG_DELTA_UNIT),
        (gint64) dts, 0, NULL, &err);
    gst_buffer_unmap (buf, &map);
  }
  gst_sample_unref (sample);
  if (!ok) {
    GST_WARNING ("session %u: %s", s->id, err->message);
    if (err->domain != HXFR_ERROR) {
      /* the guest does not take its answers: this session is over */
      g_error_free (err);
      return GST_FLOW_ERROR;
    }
    g_error_free (err);
  }
  return GST_FLOW_OK;
}

/* The encoders take 4:2:0 frames of even width and height: refuse an
 * odd size with a clear error rather than let the encoder fail to open
 * (x264enc: "Can not initialize x264 encoder"). */
static GstPadProbeReturn
on_src_event (GstPad * pad, GstPadProbeInfo * info, gpointer user_data)
{
  Session *s = user_data;
  GstEvent *ev = GST_PAD_PROBE_INFO_EVENT (info);
  GstVideoInfo vi;
  GstCaps *caps;
  gchar *msg;

  if (GST_EVENT_TYPE (ev) != GST_EVENT_CAPS)
    return GST_PAD_PROBE_OK;
  gst_event_parse_caps (ev, &caps);
  if (!gst_video_info_from_caps (&vi, caps)
      || !((GST_VIDEO_INFO_WIDTH (&vi) | GST_VIDEO_INFO_HEIGHT (&vi)) & 1))
    return GST_PAD_PROBE_OK;
  msg = g_strdup_printf ("%dx%d frames: %s encodes even widths and heights "
      "only", GST_VIDEO_INFO_WIDTH (&vi), GST_VIDEO_INFO_HEIGHT (&vi),
      s->enc->name);
  hxfr_host_session_fail (s->hs, HXFR_ERR_UNSUPPORTED, msg);
  GST_ELEMENT_ERROR (s->src, STREAM, FORMAT, ("%s", msg), (NULL));
  g_free (msg);
  return GST_PAD_PROBE_DROP;
}

static gboolean
build_pipeline (Session * s, GError ** error)
{
  Bridge *b = s->bridge;
  GstElement *pipeline, *src, *queue, *first, *enc = NULL, *last, *sink;
  HxfrHostSettings st;
  gchar name[32];
  GstAppSinkCallbacks callbacks = { NULL, };

  g_snprintf (name, sizeof (name), "session-%u", s->id);
  pipeline = gst_pipeline_new (name);
  src = bridge_bin_add (pipeline, "vsocksrc", "src", error);
  sink = bridge_bin_add (pipeline, "appsink", "sink", error);
  if (!src || !sink) {
    gst_object_unref (pipeline);
    return FALSE;
  }
  /* a fixed rate when the guest gives none: x264enc delays every frame by
   * one in variable-framerate mode, which would stall a v1 guest */
  g_object_set (src, "session", s->hs, "pool-size", b->max_in_flight + 2,
      "default-framerate", 30, 1, "export-client", s->export, NULL);

  if (!b->null_encoder) {
    GstPad *pad;

    hxfr_host_session_get_settings (s->hs, &st);
    queue = bridge_bin_add (pipeline, "queue", NULL, error);
    if (!queue || !bridge_pipeline_add_encoder (pipeline, s->enc,
            st.bitrate ? st.bitrate : b->bitrate, "encoder", &first, &enc,
            &last, error)) {
      gst_object_unref (pipeline);
      return FALSE;
    }
    /* bounded: as many frames as the guest may have in flight */
    g_object_set (queue, "max-size-buffers", b->max_in_flight,
        "max-size-bytes", 0, "max-size-time", (guint64) 0, NULL);
    pad = gst_element_get_static_pad (src, "src");
    gst_pad_add_probe (pad, GST_PAD_PROBE_TYPE_EVENT_DOWNSTREAM,
        on_src_event, s, NULL);
    gst_object_unref (pad);
    if (!gst_element_link_many (src, queue, first, NULL)
        || !gst_element_link (last, sink)) {
      g_set_error (error, GST_CORE_ERROR, GST_CORE_ERROR_NEGOTIATION,
          "could not link the session pipeline");
      gst_object_unref (pipeline);
      return FALSE;
    }
  } else if (!gst_element_link (src, sink)) {
    g_set_error (error, GST_CORE_ERROR, GST_CORE_ERROR_NEGOTIATION,
        "could not link the session pipeline");
    gst_object_unref (pipeline);
    return FALSE;
  }

  g_object_set (sink, "sync", FALSE, "async", FALSE, "max-buffers", 1,
      "enable-last-sample", FALSE, NULL);
  callbacks.new_sample = on_new_sample;
  gst_app_sink_set_callbacks (GST_APP_SINK (sink), &callbacks, s, NULL);

  s->pipeline = pipeline;
  s->src = src;
  s->encoder = enc;
  hxfr_host_session_set_settings_func (s->hs, on_settings, s, NULL);
  return TRUE;
}

/* Waits for EOS or an error on the session's pipeline. Returns the reason
 * the session ended, and whether it was an error. */
static gchar *
run_pipeline (Session * s, gboolean * failed)
{
  GstBus *bus = gst_element_get_bus (s->pipeline);
  gchar *reason = NULL;

  *failed = FALSE;
  while (!reason) {
    GstMessage *msg = gst_bus_timed_pop_filtered (bus, GST_CLOCK_TIME_NONE,
        GST_MESSAGE_EOS | GST_MESSAGE_ERROR);

    if (GST_MESSAGE_TYPE (msg) == GST_MESSAGE_EOS) {
      reason = g_strdup (s->drained ? "bridge shutting down" : "guest left");
    } else {
      GError *err = NULL;
      gchar *dbg = NULL;

      gst_message_parse_error (msg, &err, &dbg);
      GST_DEBUG ("session %u: %s (%s)", s->id, err->message, dbg);
      reason = g_strdup_printf ("error from %s: %s",
          GST_OBJECT_NAME (GST_MESSAGE_SRC (msg)), err->message);
      *failed = TRUE;
      g_error_free (err);
      g_free (dbg);
    }
    gst_message_unref (msg);
  }
  gst_object_unref (bus);
  return reason;
}

static void
log_session_end (Session * s, const gchar * reason)
{
  HxfrHostStats st;
  gdouble secs, fps = 0;

  hxfr_host_session_get_stats (s->hs, &st);
  secs = (g_get_monotonic_time () - s->t_start) / 1e6;
  if (s->scanout_client) {
    log_line ("session %u end: peer=\"%s\" scanout client duration=%.1fs "
        "bytes_in=%" G_GUINT64_FORMAT " bytes_out=%" G_GUINT64_FORMAT
        " reason=\"%s\"", s->id, s->peer, secs,
        hxfr_conn_get_bytes_received (s->conn),
        hxfr_conn_get_bytes_sent (s->conn), reason);
    return;
  }
  if (s->t_last_frame > s->t_first_frame && st.answered_ok > 1)
    fps = (st.answered_ok - 1) * 1e6 / (s->t_last_frame - s->t_first_frame);
  log_line ("session %u end: peer=\"%s\" version=%u encoder=%s frames=%"
      G_GUINT64_FORMAT " encoded=%" G_GUINT64_FORMAT " dropped=%"
      G_GUINT64_FORMAT " failed=%" G_GUINT64_FORMAT " fps=%.1f duration=%.1fs"
      " bytes_in=%" G_GUINT64_FORMAT " bytes_out=%" G_GUINT64_FORMAT
      " errors=%" G_GUINT64_FORMAT " bitrate_changes=%u reason=\"%s\"",
      s->id, hxfr_host_session_get_peer (s->hs),
      hxfr_host_session_get_version (s->hs), s->enc ? s->enc->name :
      s->bridge->encoder_name, st.requests, st.answered_ok, st.dropped,
      st.failed, fps, secs, st.bytes_in, st.bytes_out, st.errors,
      s->settings_changes, reason);
}

/* Sessions of one peer, under Bridge.lock. */
static guint
peer_sessions_get (Bridge * b, const gchar * peer)
{
  return GPOINTER_TO_UINT (g_hash_table_lookup (b->peer_sessions, peer));
}

static void
peer_sessions_add (Bridge * b, const gchar * peer, gint delta)
{
  guint n = peer_sessions_get (b, peer) + delta;

  if (n)
    g_hash_table_insert (b->peer_sessions, g_strdup (peer),
        GUINT_TO_POINTER (n));
  else
    g_hash_table_remove (b->peer_sessions, peer);
}

/* Gives back the session's place under the limits (once). */
static void
release_slot (Session * s)
{
  Bridge *b = s->bridge;

  g_mutex_lock (&b->lock);
  if (s->admitted) {
    s->admitted = FALSE;
    b->n_admitted--;
    peer_sessions_add (b, s->peer, -1);
  }
  g_mutex_unlock (&b->lock);
}

/* A scanout client (deployed SUBSCRIBE/ENABLE/DISABLE, or v2 SUBSCRIBE2)
 * is served here, on this thread: TRUE and *reason once it has ended.
 * Otherwise the first header stays unread for the frame session. A first
 * header that does not come leaves the handshake no time to wait again. */
static gboolean
serve_if_scanout_client (Session * s, gint64 * first_timeout_us,
    gchar ** reason)
{
  HxfrHeader h;
  GError *err = NULL;

  if (!hxfr_conn_peek_header (s->conn, *first_timeout_us,
          s->bridge->cfg.idle_timeout_us, &h, s->cancellable, &err)) {
    /* a bad magic is the frame session's to answer */
    if (err->domain == G_IO_ERROR)
      *first_timeout_us = 0;
    g_error_free (err);
    return FALSE;
  }
  if (!(HXFR_MSG_IS_DEPLOYED_SCANOUT (h.type)
          || h.type == HXFR_MSG_SUBSCRIBE2))
    return FALSE;
  /* left unread: bridge_vm_serve() reads the message, within the deadline
   * its first byte started */
  s->scanout_client = TRUE;
  /* one start and one end line per connection, as for frame sessions;
   * what a connection can repeat is rate-limited (bridge-subscriber.c) */
  log_line ("session %u start: peer=\"%s\" scanout client (%s)", s->id,
      s->peer, h.type == HXFR_MSG_SUBSCRIBE2 ? "v2" : "deployed");
  if (!s->vm) {
    guint8 out[HXFR_ERROR_SIZE];
    gsize len = hxfr_error_write (HXFR_ERR_NO_SCANOUT, "this listener "
        "serves no VM's scanouts (no --export)", out);

    hxfr_conn_send (s->conn, HXFR_MSG_ERROR, 0, h.session_id, out, len,
        NULL, 0, s->bridge->cfg.write_timeout_us, NULL, NULL);
    *reason = g_strdup ("scanout client on a listener without --export");
    return TRUE;
  }
  *reason = bridge_vm_serve (s->vm, s->conn, s->id, &h, s->deployed_ok,
      s->cancellable);
  return TRUE;
}

/* A connection of its own: its readback slots are this guest's, so one
 * guest holding slots never starves another. vsocksrc wraps readback slots
 * and DMA-BUFs (a DMA-BUF it cannot read is asked for again as readback),
 * IOSurfaces on macOS. */
static void
connect_session_export (Session * s, const gchar * export_path)
{
  guint32 kinds = HXEX_KIND_BIT (HXEX_KIND_READBACK_SLOT) |
      HXEX_KIND_BIT (HXEX_KIND_DMABUF);
  GError *err = NULL;

#ifdef __APPLE__
  kinds |= HXEX_KIND_BIT (HXEX_KIND_IOSURFACE);
#endif
  s->export = hxfr_export_client_connect (export_path, kinds,
      2 * G_USEC_PER_SEC, &err);
  if (s->export) {
    guint slots = hxfr_export_client_get_n_slots (s->export);

    /* in flight, plus what the encoder and the queue hold, must fit the
     * slots */
    hxfr_host_session_set_resolves_resources (s->hs, slots > 3 ? slots - 2 : 1);
  } else {
    GST_WARNING ("session %u: helix export %s: %s", s->id, export_path,
        err->message);
    log_line ("session %u: helix export unavailable (%s): resource-id "
        "frames will fail", s->id, err->message);
    g_clear_error (&err);
  }
}

/* The v2 HELLO, or a v1 guest's first request. NULL, or why it failed. */
static gchar *
session_handshake (Session * s, gint64 first_timeout_us)
{
  Bridge *b = s->bridge;
  GError *err = NULL;
  gchar *reason;

  if (hxfr_host_session_handshake (s->hs, first_timeout_us, s->cancellable,
          &err)) {
    /* the codec was accepted by choose_codec(): it has an encoder */
    s->enc = &b->encoders[bridge_codec_index (hxfr_host_session_get_codec
            (s->hs))];
    log_line ("session %u start: peer=\"%s\" version=%u encoder=%s "
        "codec=%s", s->id, hxfr_host_session_get_peer (s->hs),
        hxfr_host_session_get_version (s->hs), s->enc->name,
        bridge_codec_name (s->enc->codec));
    return NULL;
  }
  if (g_error_matches (err, G_IO_ERROR, G_IO_ERROR_CANCELLED))
    hxfr_host_session_fail (s->hs, HXFR_ERR_SHUTDOWN, "bridge shutting down");
  if (g_error_matches (err, HXFR_ERROR, HXFR_ERR_UNAUTHORIZED)) {
    g_mutex_lock (&b->lock);
    b->refusals_total++;
    g_mutex_unlock (&b->lock);
  }
  reason = g_strdup_printf ("handshake: %s", err->message);
  g_error_free (err);
  return reason;
}

/* Builds and plays the session's pipeline until the guest leaves, we drain
 * it, or it fails. Returns why it ended. */
static gchar *
session_stream (Session * s)
{
  Bridge *b = s->bridge;
  GError *err = NULL;
  gchar *reason;
  gboolean failed = FALSE, stopping;

  if (!build_pipeline (s, &err)) {
    hxfr_host_session_fail (s->hs, HXFR_ERR_INTERNAL, err->message);
    reason = g_strdup_printf ("pipeline: %s", err->message);
    g_error_free (err);
    return reason;
  }
  g_mutex_lock (&b->lock);
  stopping = b->stopping;
  g_mutex_unlock (&b->lock);
  if (stopping) {
    hxfr_host_session_fail (s->hs, HXFR_ERR_SHUTDOWN, "bridge shutting down");
    return g_strdup ("bridge shutting down");
  }
  if (gst_element_set_state (s->pipeline, GST_STATE_PLAYING) ==
      GST_STATE_CHANGE_FAILURE) {
    hxfr_host_session_fail (s->hs, HXFR_ERR_INTERNAL,
        "could not start the encoder");
    return g_strdup ("could not start the pipeline");
  }
  /* a signal that came while we were starting found nothing to drain */
  g_mutex_lock (&b->lock);
  s->playing = TRUE;
  if (b->stopping && !s->drained) {
    s->drained = TRUE;
    hxfr_host_session_stop_reading (s->hs);
  }
  g_mutex_unlock (&b->lock);
  reason = run_pipeline (s, &failed);
  /* the guest has left or is being told why: its slot is free, and a
   * guest that reconnects at once is not refused by its own old session */
  release_slot (s);

  if (failed) {
    /* per-session failure: what is still queued fails, then the guest is
     * told (a protocol violation has already been answered by the session,
     * and this second ERROR is then not sent) */
    hxfr_host_session_answer_all (s->hs, HXFR_STATUS_FAILED,
        HXFR_ERR_ENCODE_FAILED, "host pipeline failed");
    hxfr_host_session_fail (s->hs, HXFR_ERR_ENCODE_FAILED, reason);
  } else if (s->drained) {
    hxfr_host_session_answer_all (s->hs, HXFR_STATUS_DROPPED, 0, NULL);
    hxfr_host_session_fail (s->hs, HXFR_ERR_SHUTDOWN, "bridge shutting down");
  }
  return reason;
}

/* The session is over: off the list (its counters folded into the ended
 * ones), then freed. */
static void
session_free (Session * s)
{
  Bridge *b = s->bridge;
  HxfrHostStats st;

  g_mutex_lock (&b->lock);
  b->sessions = g_list_remove (b->sessions, s);
  b->n_sessions--;
  /* with the removal, under the same lock: a scrape counts this session
   * once, live or ended */
  hxfr_host_session_get_stats (s->hs, &st);
  bridge_metrics_add_stats (&b->ended, &st);
  g_cond_broadcast (&b->cond);
  g_mutex_unlock (&b->lock);

  hxfr_host_session_set_settings_func (s->hs, NULL, NULL, NULL);
  if (s->pipeline)
    gst_object_unref (s->pipeline);
  hxfr_host_session_unref (s->hs);
  if (s->export) {
    hxfr_export_client_close (s->export);
    hxfr_export_client_unref (s->export);
  }
  hxfr_conn_unref (s->conn);
  g_object_unref (s->cancellable);
  g_thread_unref (s->thread);
  g_free (s->peer);
  g_free (s);
}

static gpointer
session_thread (gpointer data)
{
  Session *s = data;
  gchar *reason = NULL;
  gint64 first_timeout_us = (gint64) (s->bridge->first_message_timeout *
      G_USEC_PER_SEC);

  if (!serve_if_scanout_client (s, &first_timeout_us, &reason)) {
    if (s->vm)
      connect_session_export (s, bridge_vm_get_export_path (s->vm));
    reason = session_handshake (s, first_timeout_us);
    if (!reason)
      reason = session_stream (s);
  }
  release_slot (s);
  if (s->pipeline) {
    hxfr_host_session_shutdown (s->hs);
    gst_element_set_state (s->pipeline, GST_STATE_NULL);
  }
  /* logged once the slot is free: the line tells the truth to whoever
   * reads it and connects again */
  log_session_end (s, reason);
  g_free (reason);
  session_free (s);
  return NULL;
}

/* Refusals */

/* Refusals (and graces, below) in progress: queued or running on the
 * pool; beyond the bound a connection is just closed, so that a flood of
 * connections cannot make us queue work without end. */
#define MAX_REFUSALS 32
static gint n_refusals;

/* What the pool runs: each job struct begins with one. */
typedef struct
{
  void (*run) (gpointer job);
} OffLoopJob;

static void
run_off_loop_job (gpointer data, gpointer user_data)
{
  ((OffLoopJob *) data)->run (data);
  g_atomic_int_add (&n_refusals, -1);
}

/* Takes a slot of MAX_REFUSALS for @job and queues it; FALSE (nothing
 * queued) when none is free. */
static gboolean
off_loop (OffLoopJob * job)
{
  static GThreadPool *pool;
  g_autoptr (GError) err = NULL;

  if (g_once_init_enter (&pool))
    g_once_init_leave (&pool, g_thread_pool_new (run_off_loop_job, NULL,
            MAX_REFUSALS, FALSE, NULL));
  if (g_atomic_int_add (&n_refusals, 1) >= MAX_REFUSALS) {
    g_atomic_int_add (&n_refusals, -1);
    return FALSE;
  }
  if (!g_thread_pool_push (pool, job, &err)) {
    GST_WARNING ("no thread for a refusal: %s", err->message);
    g_atomic_int_add (&n_refusals, -1);
    return FALSE;
  }
  return TRUE;
}

typedef struct
{
  OffLoopJob job;
  HxfrHostSession *hs;
  gint32 code;
  gchar *message;
} Refusal;

static void
refuse_job (gpointer data)
{
  Refusal *r = data;
  gchar *peer = g_strdup (hxfr_host_session_get_peer (r->hs));

  hxfr_host_session_fail (r->hs, r->code, r->message);
  /* the last reference to the connection: closed before the line says so */
  hxfr_host_session_unref (r->hs);
  log_line ("refused \"%s\": %s", peer, r->message);
  g_free (peer);
  g_free (r->message);
  g_free (r);
}

/* Takes @conn: ERROR @code and close, off the main loop. */
static void
refuse (Bridge * b, HxfrConn * conn, gint32 code, const gchar * message)
{
  Refusal *r = g_new0 (Refusal, 1);

  g_mutex_lock (&b->lock);
  b->refusals_total++;
  g_mutex_unlock (&b->lock);
  r->job.run = refuse_job;
  r->hs = hxfr_host_session_new (conn, &b->cfg);
  r->code = code;
  r->message = g_strdup (message);
  if (!off_loop (&r->job)) {
    hxfr_conn_shutdown (conn);
    hxfr_host_session_unref (r->hs);
    g_free (r->message);
    g_free (r);
  }
  hxfr_conn_unref (conn);
}

static gboolean
in_list (GArray * list, guint value)
{
  guint i;

  for (i = 0; i < list->len; i++)
    if (g_array_index (list, guint, i) == value)
      return TRUE;
  return FALSE;
}

/* Why the listener's allow-list (--allow-uid, --allow-cid) refuses this
 * peer, or NULL. */
static const gchar *
peer_not_allowed (Bridge * b, Listener * l, HxfrConn * conn)
{
  guint uid;
  guint32 cid;

  if (l->is_unix && b->allow_uid->len
      && (!hxfr_conn_get_peer_uid (conn, &uid) || !in_list (b->allow_uid, uid)))
    return "peer uid not allowed";
  if (l->is_vsock && b->allow_cid->len
      && (!hxfr_conn_get_peer_cid (conn, &cid) || !in_list (b->allow_cid, cid)))
    return "peer cid not allowed";
  return NULL;
}

/* Under Bridge.lock. Sessions counted against the limits, in all and of
 * @peer, leaving out those whose guest has already hung up: their
 * pipelines are still being torn down, and a guest that reconnects at
 * once must not be refused by its own old session. */
static void
count_live_sessions (Bridge * b, const gchar * peer, guint * total,
    guint * of_peer)
{
  GList *l;

  *total = b->n_admitted;
  *of_peer = peer_sessions_get (b, peer);
  for (l = b->sessions; l; l = l->next) {
    Session *s = l->data;

    if (s->admitted && hxfr_conn_peer_has_closed (s->conn)) {
      (*total)--;
      if (g_str_equal (s->peer, peer))
        (*of_peer)--;
    }
  }
}

/* Under Bridge.lock: why a new guest from @peer cannot have a session
 * now, or NULL. */
static const gchar *
why_refused (Bridge * b, const gchar * peer)
{
  guint total = b->n_admitted, of_peer = peer_sessions_get (b, peer);

  if (b->stopping)
    return "bridge shutting down";
  if (total >= b->max_sessions || (b->max_sessions_per_peer
          && of_peer >= b->max_sessions_per_peer))
    count_live_sessions (b, peer, &total, &of_peer);
  if (total >= b->max_sessions)
    return "too many sessions";
  if (b->max_sessions_per_peer && of_peer >= b->max_sessions_per_peer)
    return "too many sessions from this peer";
  /* a session's worth of descriptors must be free, or GLib would abort
   * the bridge, every guest with it, when one of them runs out */
  if (bridge_fds_in_use () + BRIDGE_FDS_PER_SESSION > b->fd_limit)
    return "out of file descriptors";
  return NULL;
}

/* Under Bridge.lock: a session for @conn (taken), @peer (taken). */
static void
admit_locked (Bridge * b, HxfrConn * conn, gchar * peer, BridgeVm * vm,
    gboolean deployed_ok)
{
  Session *s = g_new0 (Session, 1);

  peer_sessions_add (b, peer, 1);
  b->n_admitted++;
  s->peer = peer;
  s->bridge = b;
  s->id = ++b->next_id;
  s->conn = conn;
  s->vm = vm;
  s->deployed_ok = deployed_ok;
  s->hs = hxfr_host_session_new (conn, &b->cfg);
  s->cancellable = g_cancellable_new ();
  s->t_start = g_get_monotonic_time ();
  s->admitted = TRUE;
  b->sessions = g_list_prepend (b->sessions, s);
  b->n_sessions++;
  b->sessions_total++;
  s->thread = g_thread_new ("hx-session", session_thread, s);
}

/* A guest that reconnects at once may find its old session not yet seen
 * as gone (its FIN not processed yet on a loaded machine): a connection
 * over a limit is given a short grace, off the main loop, before it is
 * refused. Bounded by MAX_REFUSALS like the refusals themselves. */
#define ADMIT_GRACE_US (500 * 1000)
#define ADMIT_RECHECK_US (10 * 1000)

typedef struct
{
  OffLoopJob job;
  Bridge *bridge;
  HxfrConn *conn;
  gchar *peer;
  BridgeVm *vm;
  gboolean deployed_ok;
} Waiting;

static void
admit_after_grace_job (gpointer data)
{
  Waiting *w = data;
  Bridge *b = w->bridge;
  gint64 deadline = g_get_monotonic_time () + ADMIT_GRACE_US;
  const gchar *why;
  gint32 code;

  g_mutex_lock (&b->lock);
  /* woken by a session's end, else rechecked: a closed peer is seen by
   * polling its socket, which sends no wakeup */
  while ((why = why_refused (b, w->peer)) && !b->stopping
      && g_get_monotonic_time () < deadline)
    g_cond_wait_until (&b->cond, &b->lock, MIN (deadline,
            g_get_monotonic_time () + ADMIT_RECHECK_US));
  if (!why) {
    admit_locked (b, w->conn, w->peer, w->vm, w->deployed_ok);
    g_mutex_unlock (&b->lock);
  } else {
    code = b->stopping ? HXFR_ERR_SHUTDOWN : HXFR_ERR_TOO_MANY_SESSIONS;
    g_mutex_unlock (&b->lock);
    refuse (b, w->conn, code, why);
    g_free (w->peer);
  }
  g_free (w);
}

static void
admit_after_grace (Bridge * b, HxfrConn * conn, gchar * peer, BridgeVm * vm,
    gboolean deployed_ok)
{
  Waiting *w = g_new0 (Waiting, 1);

  w->job.run = admit_after_grace_job;
  w->bridge = b;
  w->conn = conn;
  w->peer = peer;
  w->vm = vm;
  w->deployed_ok = deployed_ok;
  if (off_loop (&w->job))
    return;
  g_mutex_lock (&b->lock);
  b->refusals_total++;
  g_mutex_unlock (&b->lock);
  hxfr_conn_shutdown (conn);
  hxfr_conn_unref (conn);
  g_free (peer);
  g_free (w);
}

static gboolean
on_incoming (GSocket * socket, GIOCondition cond, gpointer user_data)
{
  Listener *l = user_data;
  Bridge *b = g_object_get_data (G_OBJECT (socket), "bridge");
  HxfrConn *conn;
  GError *err = NULL;
  const gchar *not_allowed;
  gchar *peer;

  conn = hxfr_listener_accept (l->listener, 0, NULL, &err);
  if (!conn && g_error_matches (err, G_IO_ERROR,
          G_IO_ERROR_TOO_MANY_OPEN_FILES)) {
    /* take the connection with the spare descriptor and close it: left in
     * the backlog it would wake this source again at once, for ever */
    g_clear_error (&err);
    bridge_fds_release_spare ();
    conn = hxfr_listener_accept (l->listener, 0, NULL, NULL);
    if (conn) {
      gchar *who = hxfr_conn_describe_peer (conn);

      log_line ("refused \"%s\": out of file descriptors", who);
      g_mutex_lock (&b->lock);
      b->refusals_total++;
      g_mutex_unlock (&b->lock);
      g_free (who);
      hxfr_conn_shutdown (conn);
      hxfr_conn_unref (conn);
    }
    bridge_fds_hold_spare ();
    return G_SOURCE_CONTINUE;
  }
  if (!conn) {
    if (!g_error_matches (err, G_IO_ERROR, G_IO_ERROR_TIMED_OUT)
        && !g_error_matches (err, G_IO_ERROR, G_IO_ERROR_WOULD_BLOCK))
      GST_WARNING ("accept: %s", err->message);
    g_error_free (err);
    return G_SOURCE_CONTINUE;
  }

  if ((not_allowed = peer_not_allowed (b, l, conn))) {
    refuse (b, conn, HXFR_ERR_UNAUTHORIZED, not_allowed);
    return G_SOURCE_CONTINUE;
  }

  peer = hxfr_conn_get_peer_identity (conn);
  g_mutex_lock (&b->lock);
  if (!why_refused (b, peer)) {
    admit_locked (b, conn, peer, l->vm, l->deployed_ok);
    g_mutex_unlock (&b->lock);
    return G_SOURCE_CONTINUE;
  }
  g_mutex_unlock (&b->lock);
  admit_after_grace (b, conn, peer, l->vm, l->deployed_ok);
  return G_SOURCE_CONTINUE;
}

/* Life cycle */

static void
close_listeners (Bridge * b)
{
  guint i;

  for (i = 0; i < b->listeners->len; i++) {
    Listener *l = g_ptr_array_index (b->listeners, i);

    if (l->source) {
      g_source_destroy (l->source);
      g_source_unref (l->source);
    }
    /* removes the socket file */
    hxfr_listener_free (l->listener);
    g_free (l);
  }
  g_ptr_array_set_size (b->listeners, 0);
}

static gboolean
on_signal (gpointer user_data)
{
  Bridge *b = user_data;
  GList *l;
  guint n, i;

  /* the handler stays installed: a second SIGTERM while draining must not
   * fall back to the default action (killed, socket files left); the drain
   * is bounded by --drain-timeout anyway */
  if (b->loop_quit)
    return G_SOURCE_CONTINUE;
  b->loop_quit = TRUE;
  close_listeners (b);
  for (i = 0; i < b->vms->len; i++)
    bridge_vm_stop (g_ptr_array_index (b->vms, i));
  g_mutex_lock (&b->lock);
  b->stopping = TRUE;
  n = b->n_sessions;
  for (l = b->sessions; l; l = l->next) {
    Session *s = l->data;

    /* in the handshake: stop waiting; streaming: vsocksrc stops at the
     * next message boundary and ends with EOS, so every request read so
     * far is encoded and answered before the guest gets ERROR -12 */
    g_cancellable_cancel (s->cancellable);
    if (s->playing && !s->drained) {
      s->drained = TRUE;
      hxfr_host_session_stop_reading (s->hs);
    }
  }
  g_mutex_unlock (&b->lock);
  /* once the listeners are closed: the line says no new guests */
  log_line ("stopping: no new guests, draining %u session(s)", n);
  /* systemd shows "deactivating" while the sessions drain */
  bridge_notify_or_warn ("STOPPING=1");
  g_main_loop_quit (b->loop);
  return G_SOURCE_CONTINUE;
}

static void
wait_sessions (Bridge * b)
{
  gint64 deadline = g_get_monotonic_time () +
      (gint64) (b->drain_timeout * G_USEC_PER_SEC);
  GList *l;

  g_mutex_lock (&b->lock);
  while (b->n_sessions > 0)
    if (!g_cond_wait_until (&b->cond, &b->lock, deadline))
      break;
  if (b->n_sessions > 0) {
    /* drain took too long: cut the connections, the threads end at once */
    for (l = b->sessions; l; l = l->next)
      hxfr_host_session_shutdown (((Session *) l->data)->hs);
    deadline = g_get_monotonic_time () + 2 * G_USEC_PER_SEC;
    while (b->n_sessions > 0)
      if (!g_cond_wait_until (&b->cond, &b->lock, deadline))
        break;
  }
  if (b->n_sessions > 0)
    log_line ("%u session(s) did not end in time", b->n_sessions);
  g_mutex_unlock (&b->lock);
}

/* Raises the descriptor limit as far as allowed and says at start when
 * --max-sessions cannot fit in it; beyond what fits, guests are refused
 * (why_refused), never left to make the bridge abort. */
static void
check_fd_limit (Bridge * b)
{
  guint base, fit;

  b->fd_limit = bridge_fds_raise_limit ();
  bridge_fds_hold_spare ();
  /* what the bridge holds before any guest (stdio, the spare, GStreamer),
   * with a session's worth of margin for the listeners and the export */
  base = bridge_fds_in_use () + BRIDGE_FDS_PER_SESSION;
  fit = b->fd_limit > base ? (b->fd_limit - base) / BRIDGE_FDS_PER_SESSION : 0;
  if (fit < b->max_sessions)
    log_line ("warning: --max-sessions %u needs about %u file descriptors, "
        "the limit is %u (ulimit -n): beyond about %u sessions new guests "
        "will be refused", b->max_sessions,
        base + b->max_sessions * BRIDGE_FDS_PER_SESSION, b->fd_limit, fit);
}

static void
scanout_config_init (Bridge * b, gdouble quiet_interval, guint max_subscribers)
{
  BridgeScanoutConfig *c = &b->scanout_cfg;
  guint i;

  for (i = 0; i < BRIDGE_N_CODECS; i++) {
    c->encoders[i] = b->encoders[i];
    c->no_encoder[i] = b->no_encoder[i];
  }
  c->bitrate = b->bitrate;
  c->quiet_interval_us = (gint64) (quiet_interval * G_USEC_PER_SEC);
  c->max_subscribers_per_scanout = max_subscribers;
  c->queue_frames = SCANOUT_QUEUE_FRAMES;
  c->max_width = b->cfg.limits.max_width;
  c->max_height = b->cfg.limits.max_height;
  c->idle_timeout_us = b->cfg.idle_timeout_us;
  c->write_timeout_us = b->cfg.write_timeout_us;
  c->token = b->cfg.token;
  c->log = log_line;
  c->log_unproven = log_unproven;
  if (!unproven_log_limit)
    unproven_log_limit = bridge_log_limit_new (20, 1, 60, 5, 1024);
}

/* The VM served by @path (a UNIX socket path): one per export. */
static BridgeVm *
vm_for_export (Bridge * b, const gchar * path)
{
  BridgeVm *vm;
  guint i;

  for (i = 0; i < b->vms->len; i++) {
    vm = g_ptr_array_index (b->vms, i);
    if (g_str_equal (bridge_vm_get_export_path (vm), path))
      return vm;
  }
  vm = bridge_vm_new (path, &b->scanout_cfg);
  g_ptr_array_add (b->vms, vm);
  return vm;
}

/* "ADDR[,export=unix:PATH][,deployed]": the address, and the listener's
 * options. */
static HxfrAddress *
parse_listen_spec (Bridge * b, const gchar * spec, Listener * l,
    GError ** error)
{
  gchar **parts = g_strsplit (spec, ",", -1);
  HxfrAddress *addr = hxfr_address_parse (parts[0], error);
  const gchar *export_path = b->export_path;
  guint i;

  for (i = 1; addr && parts[i]; i++) {
    if (g_str_equal (parts[i], "deployed")) {
      l->deployed_ok = TRUE;
    } else if (g_str_has_prefix (parts[i], "export=unix:")
        && parts[i][12]) {
      export_path = parts[i] + 12;
    } else {
      g_set_error (error, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE,
          "unknown listener option \"%s\" (export=unix:PATH, deployed)",
          parts[i]);
      g_clear_pointer (&addr, hxfr_address_free);
    }
  }
  if (addr && export_path)
    l->vm = vm_for_export (b, export_path);
  g_strfreev (parts);
  return addr;
}

static gboolean
start_listener (Bridge * b, const gchar * spec, GError ** error)
{
  Listener *l = g_new0 (Listener, 1);
  g_autoptr (HxfrAddress) addr = parse_listen_spec (b, spec, l, error);
  GSocket *sock;
  gchar *bound;

  if (addr)
    l->listener = hxfr_listener_new (addr, b->unix_mode, error);
  if (!l->listener) {
    g_free (l);
    return FALSE;
  }
  l->is_unix = addr->kind == HXFR_ADDRESS_UNIX;
  l->is_vsock = addr->kind == HXFR_ADDRESS_VSOCK;
  sock = hxfr_listener_get_socket (l->listener);
  g_object_set_data (G_OBJECT (sock), "bridge", b);
  l->source = g_socket_create_source (sock, G_IO_IN, NULL);
  g_source_set_callback (l->source, (GSourceFunc) (GCallback) on_incoming,
      l, NULL);
  g_source_attach (l->source, NULL);
  g_ptr_array_add (b->listeners, l);
  bound = hxfr_address_to_string (hxfr_listener_get_address (l->listener));
  log_line ("listening on %s (encoder %s%s%s%s)", bound, b->encoder_name,
      l->vm ? ", scanouts of " : "", l->vm ?
      bridge_vm_get_export_path (l->vm) : "", l->deployed_ok ?
      ", deployed scanout clients" : "");
  if (!b->cfg.token && !bridge_address_is_local (addr))
    log_line ("warning: %s is not a loopback address and no --token or "
        "--token-file is set: anyone who can reach it can use this "
        "host's encoder (add --token-file, or listen on 127.0.0.1)", bound);
  if (l->deployed_ok && !bridge_address_is_local (addr))
    log_line ("warning: %s takes deployed scanout clients, which have no "
        "token: anyone who can reach it can watch and hotplug this VM's "
        "scanouts", bound);
  g_free (bound);
  return TRUE;
}

static gboolean
start_listeners (Bridge * b, gchar ** listen)
{
  GError *err = NULL;
  guint i;

  for (i = 0; listen[i]; i++) {
    if (!start_listener (b, listen[i], &err)) {
      g_printerr ("helix-host-bridge: cannot listen on %s: %s\n", listen[i],
          err->message);
      g_clear_error (&err);
      close_listeners (b);
      return FALSE;
    }
  }
  return TRUE;
}

static gboolean
parse_uint_list (gchar ** in, GArray * out, const gchar * what, GError ** error)
{
  for (; in && *in; in++) {
    guint64 v;

    if (!g_ascii_string_to_unsigned (*in, 10, 0, G_MAXUINT32, &v, error)) {
      g_prefix_error (error, "%s: ", what);
      return FALSE;
    }
    g_array_append_val (out, v);
  }
  return TRUE;
}

/* --metrics: ended sessions plus the live ones, under Bridge.lock (then
 * each session's own lock, the lock order). Main loop. */
static void
collect_metrics (BridgeMetricsSnapshot * snap, gpointer user_data)
{
  Bridge *b = user_data;
  GList *l;

  g_mutex_lock (&b->lock);
  /* the sessions holding a slot: one whose end is logged holds none,
   * though its thread may still be tearing down (its counters are counted
   * below until it is folded into b->ended, once either way) */
  snap->sessions_now = b->n_admitted;
  snap->sessions_total = b->sessions_total;
  snap->refusals_total = b->refusals_total;
  snap->frames = b->ended;
  for (l = b->sessions; l; l = l->next) {
    HxfrHostStats st;

    hxfr_host_session_get_stats (((Session *) l->data)->hs, &st);
    bridge_metrics_add_stats (&snap->frames, &st);
  }
  g_mutex_unlock (&b->lock);
}

static const gchar description[] =
    "Accepts guests (vsockenc, or deployed HXFR v1 guests) and encodes their\n"
    "frames to H.264 on the host: one pipeline per connection,\n"
    "  vsocksrc ! [videoconvert] ! ENCODER ! h264parse ! appsink,\n"
    "each access unit sent back as the answer to its request.\n"
    "\n"
    "Addresses (--listen, repeatable; default tcp:127.0.0.1:15937):\n"
    "  vsock:PORT          vsock, any CID (guests connect to CID 2, port 5000)\n"
    "  tcp:HOST:PORT       TCP (QEMU user networking: guests reach the host\n"
    "                      loopback at 10.0.2.2, so use tcp:127.0.0.1:15937)\n"
    "  unix:PATH           UNIX socket. Hybrid-vsock VMMs (Firecracker,\n"
    "                      cloud-hypervisor, vhost-device-vsock) deliver a\n"
    "                      guest's connection to port P on <uds_path>_P:\n"
    "                      serve them with unix:<uds_path>_P\n"
    "\n"
    "Encoders (--encoder), per codec the guest asks for (auto: the first\n"
    "installed of each, in this order; VideoToolbox only on macOS):\n"
    "  H.264 (vsockenc, v1 guests, scanouts): vtenc_h264_hw, nvh264enc,\n"
    "    vah264enc, vah264lpenc, qsvh264enc, x264enc, openh264enc\n"
    "  H.265 (vsockh265enc): vtenc_h265_hw, nvh265enc, vah265enc,\n"
    "    vah265lpenc, qsvh265enc, x265enc\n"
    "  AV1 (vsockav1enc): nvav1enc, vaav1enc, qsvav1enc, av1enc (svtav1enc\n"
    "    only by name)\n"
    "A codec with no encoder is refused (ERROR -8, naming it); auto needs an\n"
    "H.264 one. --encoder NAME serves NAME's codec only. 'null' is for\n"
    "benchmarks only: every H.264 frame is answered with a fixed 6-byte\n"
    "access unit, nothing is encoded.\n"
    "\n"
    "Zero copy: with --export unix:PATH (the helix export of the VMM, e.g.\n"
    "QEMU with virtio-gpu-gl), frames a guest names by virtio-gpu resource\n"
    "id are resolved there and encoded from the shared readback slot or the\n"
    "DMA-BUF the VMM hands over; each session has its own export connection,\n"
    "made when it starts. Without it such frames fail one by one (FAILED -2);\n"
    "if the VMM goes away they fail with that reason (FAILED -99); the\n"
    "session goes on. See docs/zero-copy.md.\n"
    "\n"
    "Scanouts: a connection whose first message subscribes to a virtio-gpu\n"
    "scanout (v2 SUBSCRIBE2, or helix's deployed SUBSCRIBE/ENABLE_SCANOUT/\n"
    "DISABLE_SCANOUT) is served from the VM's export (the listener's\n"
    "export=unix:PATH, else --export): the bridge encodes what the scanout\n"
    "shows on every flush, one encoder per scanout and codec (SUBSCRIBE2's;\n"
    "at most 4) shared by its subscribers, an IDR for each new one, the\n"
    "last image again after --scanout-quiet-interval on a static screen.\n"
    "Deployed clients (H.264) have no token: a listener takes them only\n"
    "with ',deployed', e.g.\n"
    "  --listen 'tcp:127.0.0.1:15937,deployed,export=unix:/run/helix/vm1-export.sock'\n"
    "See docs/protocol.md section 11 and docs/deploy.md.\n"
    "\n"
    "Access: UNIX sockets get --unix-mode and, with --allow-uid, only those\n"
    "peer uids; vsock peers are checked against --allow-cid; with --token or\n"
    "--token-file, every guest must present the token in its v2 HELLO\n"
    "(v1 guests, which cannot, are refused): refused guests get ERROR -7.\n"
    "\n"
    "Metrics (--metrics tcp:127.0.0.1:PORT or unix:PATH, off by default):\n"
    "Prometheus text over HTTP/1.0, GET /metrics: sessions now and in all,\n"
    "frames requested/encoded/dropped/failed, bytes each way, refusals,\n"
    "an encode-time histogram, labelled with the encoder. No access\n"
    "control: keep it on loopback or a UNIX socket. Port 0 picks a free\n"
    "port, logged as \"metrics on ADDR\".\n"
    "\n"
    "SIGINT/SIGTERM: stop accepting, drain the sessions (bounded by\n"
    "--drain-timeout), remove socket files, exit 0. One log line per\n"
    "session start and end on stderr, and at most one per 10 s while a\n"
    "guest changes its bitrate.\n"
    "\n"
    "Resources: a session holds at most --max-in-flight + 2 frames of\n"
    "pixels (each within --max-frame-mb; padding beyond what the planes\n"
    "need is bounded) besides its encoder's own, and about 6 file\n"
    "descriptors. The soft descriptor limit is raised to the hard one at\n"
    "start; a new guest is refused (ERROR -10) while 16 are not free.\n"
    "See docs/security.md.";

/* The command line, as parsed */
typedef struct
{
  gchar **listen;
  gchar *encoder, *token, *token_file, *unix_mode_s, *export, *metrics;
  gchar **allow_uid, **allow_cid;
  gint max_sessions_per_peer, max_sessions, max_width, max_height,
      max_in_flight, bitrate, max_frame_mb, max_subscribers;
  gdouble idle_timeout, drain_timeout, first_message_timeout, quiet_interval;
  gboolean version;
} Options;

static void
options_clear (Options * o)
{
  g_strfreev (o->listen);
  g_free (o->encoder);
  g_free (o->token);
  g_free (o->token_file);
  g_free (o->unix_mode_s);
  g_free (o->export);
  g_free (o->metrics);
  g_strfreev (o->allow_uid);
  g_strfreev (o->allow_cid);
}

/* The options table is long, not complicated: one entry per option. */
static gboolean
parse_options (Options * o, int *argc, char ***argv, GError ** error)
{
  const GOptionEntry entries[] = {
    {"listen", 'l', 0, G_OPTION_ARG_STRING_ARRAY, &o->listen,
          "Listen on ADDR (repeatable): vsock:PORT, tcp:HOST:PORT, unix:PATH; "
          "options after commas: export=unix:PATH (this listener's VM), "
          "deployed (take helix's scanout clients, which have no token)",
        "ADDR[,OPT...]"},
    {"export", 0, 0, G_OPTION_ARG_STRING, &o->export,
        "The VMM's helix export socket (unix:PATH): resource-id frames are "
          "resolved there, without a copy", "ADDR"},
    {"encoder", 'e', 0, G_OPTION_ARG_STRING, &o->encoder,
          "Encoder element (H.264, H.265 or AV1: only its codec is then "
          "served), 'auto' (default: one per codec, hardware first) or "
          "'null' (bench only)",
        "NAME"},
    {"bitrate", 'b', 0, G_OPTION_ARG_INT, &o->bitrate,
          "Bitrate in bit/s until the guest asks for one (default 4000000)",
        "BPS"},
    {"max-sessions", 0, 0, G_OPTION_ARG_INT, &o->max_sessions,
        "Guests served at once; more get ERROR -10 (default 16)", "N"},
    {"max-sessions-per-peer", 0, 0, G_OPTION_ARG_INT, &o->max_sessions_per_peer,
        "Sessions one peer (vsock CID, UNIX uid, TCP address) may hold at "
          "once; more get ERROR -10 (default 0: only --max-sessions)", "N"},
    {"max-width", 0, 0, G_OPTION_ARG_INT, &o->max_width,
        "Widest frame accepted (default 8192)", "PIXELS"},
    {"max-height", 0, 0, G_OPTION_ARG_INT, &o->max_height,
        "Tallest frame accepted (default 8192)", "PIXELS"},
    {"max-frame-mb", 0, 0, G_OPTION_ARG_INT, &o->max_frame_mb,
        "Pixel MiB one frame may carry (default 0: what --max-width x "
          "--max-height needs); a session holds at most --max-in-flight + 2 "
          "frames", "MIB"},
    {"max-in-flight", 0, 0, G_OPTION_ARG_INT, &o->max_in_flight,
        "Unanswered requests a guest may have; more get ERROR -9 "
          "(default 8)", "N"},
    {"idle-timeout", 0, 0, G_OPTION_ARG_DOUBLE, &o->idle_timeout,
        "Seconds a begun message may take to arrive in full; then ERROR -11 "
          "(default 5)", "SECONDS"},
    {"first-message-timeout", 0, 0, G_OPTION_ARG_DOUBLE,
          &o->first_message_timeout,
        "Seconds a new connection may stay silent before its first message; "
          "then ERROR -11 (default 30)", "SECONDS"},
    {"drain-timeout", 0, 0, G_OPTION_ARG_DOUBLE, &o->drain_timeout,
          "Seconds to drain sessions on SIGINT/SIGTERM (default 5)",
        "SECONDS"},
    {"unix-mode", 0, 0, G_OPTION_ARG_STRING, &o->unix_mode_s,
        "Octal mode of UNIX socket files (default 0660)", "MODE"},
    {"allow-uid", 0, 0, G_OPTION_ARG_STRING_ARRAY, &o->allow_uid,
        "Only accept UNIX peers with this uid (repeatable)", "UID"},
    {"allow-cid", 0, 0, G_OPTION_ARG_STRING_ARRAY, &o->allow_cid,
        "Only accept vsock peers with this CID (repeatable)", "CID"},
    {"token", 0, 0, G_OPTION_ARG_STRING, &o->token,
        "Shared secret every guest must send in its v2 HELLO "
          "(visible in ps: prefer --token-file)", "TOKEN"},
    {"token-file", 0, 0, G_OPTION_ARG_FILENAME, &o->token_file,
        "Read the token from FILE (trailing newline removed)", "FILE"},
    {"scanout-quiet-interval", 0, 0, G_OPTION_ARG_DOUBLE, &o->quiet_interval,
          "Seconds after which a static scanout's last image is encoded again, "
          "so that subscribers keep receiving frames (default 0.5; 0: never)",
        "SECONDS"},
    {"max-subscribers-per-scanout", 0, 0, G_OPTION_ARG_INT, &o->max_subscribers,
        "Subscribers one scanout may have (default 8); all subscribers and "
          "guests together are bounded by --max-sessions", "N"},
    {"metrics", 0, 0, G_OPTION_ARG_STRING, &o->metrics,
        "Serve Prometheus metrics on ADDR (tcp:HOST:PORT, unix:PATH); "
          "keep it on loopback", "ADDR"},
    {"version", 0, 0, G_OPTION_ARG_NONE, &o->version, "Print the version",
        NULL},
    {NULL}
  };
  GOptionContext *ctx;
  gboolean ok;

  o->max_sessions = DEFAULT_MAX_SESSIONS;
  o->max_width = o->max_height = DEFAULT_MAX_DIMENSION;
  o->max_in_flight = HXFR_HOST_DEFAULT_MAX_IN_FLIGHT;
  o->bitrate = DEFAULT_BITRATE;
  o->idle_timeout = DEFAULT_IDLE_TIMEOUT;
  o->drain_timeout = DEFAULT_DRAIN_TIMEOUT;
  o->first_message_timeout = DEFAULT_FIRST_MESSAGE_TIMEOUT;
  o->quiet_interval = DEFAULT_QUIET_INTERVAL;
  o->max_subscribers = DEFAULT_MAX_SUBSCRIBERS_PER_SCANOUT;
  ctx = g_option_context_new ("- encode guests' frames on the host");
  g_option_context_set_description (ctx, description);
  g_option_context_add_main_entries (ctx, entries, NULL);
  g_option_context_add_group (ctx, gst_init_get_option_group ());
  ok = g_option_context_parse (ctx, argc, argv, error);
  g_option_context_free (ctx);
  return ok;
}

static gboolean
read_token (Bridge * b, Options * o, GError ** error)
{
  if (o->token_file) {
    gchar *contents;
    gsize len;

    if (!g_file_get_contents (o->token_file, &contents, &len, error))
      return FALSE;
    while (len && (contents[len - 1] == '\n' || contents[len - 1] == '\r'))
      len--;
    contents[len] = '\0';
    g_free (o->token);
    o->token = contents;
  }
  if (!o->token)
    return TRUE;
  if (!*o->token || strlen (o->token) > HXFR_MAX_TOKEN) {
    g_set_error (error, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE,
        "the token must be 1..%d bytes", HXFR_MAX_TOKEN);
    return FALSE;
  }
  b->cfg.token = g_bytes_new (o->token, strlen (o->token));
  return TRUE;
}

/* Checks the options and sets the bridge's configuration from them. */
static gboolean
apply_options (Bridge * b, Options * o, GError ** error)
{
  const gchar *m = o->unix_mode_s ? o->unix_mode_s : DEFAULT_UNIX_MODE;
  gchar *end = NULL;
  guint64 mode = g_ascii_strtoull (m, &end, 8);

  b->allow_uid = g_array_new (FALSE, FALSE, sizeof (guint));
  b->allow_cid = g_array_new (FALSE, FALSE, sizeof (guint));
  if (!parse_uint_list (o->allow_uid, b->allow_uid, "--allow-uid", error)
      || !parse_uint_list (o->allow_cid, b->allow_cid, "--allow-cid", error))
    return FALSE;
  if (o->max_sessions < 1 || o->max_sessions_per_peer < 0
      || o->max_width < 1 || o->max_height < 1 || o->max_in_flight < 1
      || o->max_in_flight > 64 || o->bitrate < 1 || o->max_frame_mb < 0
      || o->idle_timeout <= 0 || o->drain_timeout < 0
      || o->first_message_timeout <= 0 || o->quiet_interval < 0
      || o->max_subscribers < 1) {
    g_set_error_literal (error, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE,
        "limits must be positive (max-in-flight at most 64)");
    return FALSE;
  }
  if (!*m || *end || mode > 0777) {
    g_set_error (error, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE,
        "--unix-mode wants an octal mode such as 0660, not \"%s\"", m);
    return FALSE;
  }
  b->unix_mode = mode;

  hxfr_host_config_init (&b->cfg);
  b->cfg.limits.max_width = o->max_width;
  b->cfg.limits.max_height = o->max_height;
  b->cfg.limits.max_frame_bytes = (guint64) o->max_frame_mb * 1024 * 1024;
  b->cfg.max_in_flight = o->max_in_flight;
  b->cfg.idle_timeout_us = (gint64) (o->idle_timeout * G_USEC_PER_SEC);
  if (!read_token (b, o, error))
    return FALSE;
  if (o->export) {
    b->export_path = g_strdup (g_str_has_prefix (o->export, "unix:") ?
        o->export + 5 : o->export);
    if (!*b->export_path) {
      g_set_error_literal (error, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE,
          "--export wants unix:PATH");
      return FALSE;
    }
  }
  b->listen = g_steal_pointer (&o->listen);
  b->bitrate = o->bitrate;
  b->max_sessions = o->max_sessions;
  b->max_sessions_per_peer = o->max_sessions_per_peer;
  b->max_in_flight = o->max_in_flight;
  b->drain_timeout = o->drain_timeout;
  b->first_message_timeout = o->first_message_timeout;
  return TRUE;
}

/* HxfrHostConfig.codec_func: the session's codec has an encoder here. */
static const gchar *
choose_codec (guint32 codec, gpointer user_data, GError ** error)
{
  Bridge *b = user_data;
  gint i = bridge_codec_index (codec);
  gchar fourcc[5];
  guint k;

  if (i >= 0 && b->encoders[i].name)
    return b->encoders[i].name;
  if (i >= 0) {
    g_set_error_literal (error, HXFR_ERROR, HXFR_ERR_UNSUPPORTED,
        b->no_encoder[i]);
    return NULL;
  }
  for (k = 0; k < 4; k++) {
    gchar c = (codec >> (8 * k)) & 0xff;

    fourcc[k] = g_ascii_isprint (c) ? c : '?';
  }
  fourcc[4] = '\0';
  g_set_error (error, HXFR_ERROR, HXFR_ERR_UNSUPPORTED, "codec %s "
      "(0x%08x) is none this bridge knows (H264, H265, AV01)", fourcc, codec);
  return NULL;
}

/* @name as the encoder of its codec. Says why on stderr if it cannot be. */
static gboolean
set_encoder (Bridge * b, const gchar * name)
{
  GstElementFactory *factory = gst_element_factory_find (name);
  BridgeEncoderChoice *c;
  guint32 codec;

  if (!factory) {
    g_printerr ("helix-host-bridge: encoder %s is not installed\n", name);
    return FALSE;
  }
  codec = bridge_encoder_codec_of (factory);
  if (!codec) {
    g_printerr ("helix-host-bridge: %s produces none of H.264, H.265 and "
        "AV1\n", name);
    gst_object_unref (factory);
    return FALSE;
  }
  c = &b->encoders[bridge_codec_index (codec)];
  c->codec = codec;
  c->name = gst_plugin_feature_get_name (factory);
  c->desc = bridge_encoder_lookup (name);
  c->need_convert = !bridge_encoder_takes_all_formats (factory);
  /* the name is the factory's, which the registry keeps */
  gst_object_unref (factory);
  return TRUE;
}

/* --encoder NAME: that encoder, and only its codec is served; auto: for
 * each codec the first installed of the table's (H.264 required). Says
 * why on stderr if it cannot. */
static gboolean
choose_encoder (Bridge * b, const Options * o)
{
  const gchar *encoder = o->encoder;
  gint h264 = bridge_codec_index (HXFR_CODEC_H264);
  const gchar *served = NULL;
  guint i;

  b->cfg.codec_func = choose_codec;
  b->cfg.codec_data = b;
  if (encoder && g_str_equal (encoder, BRIDGE_ENCODER_NULL)) {
    b->null_encoder = TRUE;
    b->encoders[h264].codec = HXFR_CODEC_H264;
    b->encoders[h264].name = BRIDGE_ENCODER_NULL;
  } else if (encoder && !g_str_equal (encoder, "auto")) {
    if (!set_encoder (b, encoder))
      return FALSE;
  } else {
    for (i = 0; i < BRIDGE_N_CODECS; i++) {
      guint32 codec = bridge_codec_get (i);
      const gchar *name = bridge_encoder_auto (codec);

      if (name && !set_encoder (b, name))
        return FALSE;
    }
    if (!b->encoders[h264].name) {
      gchar *tried = bridge_encoder_auto_list (HXFR_CODEC_H264);

      g_printerr ("helix-host-bridge: no H.264 encoder installed (tried "
          "%s)\n", tried);
      g_free (tried);
      return FALSE;
    }
  }
  for (i = 0; i < BRIDGE_N_CODECS; i++)
    if (b->encoders[i].name)
      served = bridge_codec_name (b->encoders[i].codec);
  for (i = 0; i < BRIDGE_N_CODECS; i++) {
    guint32 codec = bridge_codec_get (i);
    gchar *tried;

    if (b->encoders[i].name)
      continue;
    if (encoder && !g_str_equal (encoder, "auto")) {
      b->no_encoder[i] = g_strdup_printf ("%s cannot be encoded here: this "
          "bridge runs with --encoder %s, which encodes %s only",
          bridge_codec_name (codec), encoder, served);
      continue;
    }
    tried = bridge_encoder_auto_list (codec);
    b->no_encoder[i] = g_strdup_printf ("%s cannot be encoded here: no %s "
        "encoder is installed (%s)", bridge_codec_name (codec),
        bridge_codec_name (codec), tried);
    g_free (tried);
  }
  b->encoder_name = g_strdup (b->encoders[h264].name ? b->encoders[h264].name
      : encoder);
  {
    GString *line = g_string_new ("encoders:");

    for (i = 0; i < BRIDGE_N_CODECS; i++)
      g_string_append_printf (line, "%s %s %s", i ? "," : "",
          bridge_codec_name (bridge_codec_get (i)), b->encoders[i].name ?
          b->encoders[i].name : "none");
    log_line ("%s", line->str);
    g_string_free (line, TRUE);
  }
  g_strlcpy (b->cfg.encoder, b->encoder_name, sizeof (b->cfg.encoder));
  return TRUE;
}

static gboolean
start_metrics (Bridge * b, const gchar * metrics)
{
  GError *err = NULL;
  gchar *bound;

  b->metrics = bridge_metrics_start (metrics, b->unix_mode, b->encoder_name,
      collect_metrics, b, &err);
  if (!b->metrics) {
    g_printerr ("helix-host-bridge: cannot serve metrics on %s: %s\n",
        metrics, err->message);
    g_clear_error (&err);
    return FALSE;
  }
  /* once it listens: tests with port 0 read the address here */
  bound = bridge_metrics_get_address (b->metrics);
  log_line ("metrics on %s", bound);
  if (bridge_metrics_is_exposed (b->metrics))
    log_line ("warning: metrics on %s, not a loopback address: anyone "
        "who can reach it sees the bridge's counters", bound);
  g_free (bound);
  return TRUE;
}

/* Listens, serves until SIGINT/SIGTERM, drains. FALSE if it could not
 * start. */
static gboolean
serve (Bridge * b, Options * o)
{
  gchar *default_listen[] = { (gchar *) "tcp:127.0.0.1:15937", NULL };

  g_mutex_init (&b->lock);
  g_cond_init (&b->cond);
  b->peer_sessions = g_hash_table_new_full (g_str_hash, g_str_equal, g_free,
      NULL);
  b->loop = g_main_loop_new (NULL, FALSE);
  b->listeners = g_ptr_array_new ();
  b->vms = g_ptr_array_new ();
  scanout_config_init (b, o->quiet_interval, o->max_subscribers);
  /* before anything is logged as listening: a SIGTERM that follows the
   * line at once must find its handler (it killed the bridge before) */
  g_unix_signal_add (SIGINT, on_signal, b);
  g_unix_signal_add (SIGTERM, on_signal, b);
  if (!start_listeners (b, b->listen ? b->listen : default_listen))
    return FALSE;
  if (o->metrics && !start_metrics (b, o->metrics)) {
    close_listeners (b);
    return FALSE;
  }
  bridge_notify_or_warn ("READY=1");    /* every address listens */
  g_main_loop_run (b->loop);
  wait_sessions (b);
  close_listeners (b);
  if (b->n_sessions == 0)
    g_ptr_array_foreach (b->vms, (GFunc) (GCallback) bridge_vm_free, NULL);
  bridge_metrics_stop (b->metrics);
  log_line ("stopped");
  return TRUE;
}

static void
bridge_clear (Bridge * b)
{
  guint i;

  if (b->loop && b->n_sessions == 0) {
    /* sessions that outlived the drain still use these: then the process
     * exit frees them */
    g_main_loop_unref (b->loop);
    g_ptr_array_unref (b->listeners);
    g_ptr_array_unref (b->vms);
    g_mutex_clear (&b->lock);
    g_cond_clear (&b->cond);
    g_hash_table_unref (b->peer_sessions);
  }
  if (b->cfg.token)
    g_bytes_unref (b->cfg.token);
  if (b->allow_uid)
    g_array_unref (b->allow_uid);
  if (b->allow_cid)
    g_array_unref (b->allow_cid);
  g_strfreev (b->listen);
  g_free (b->encoder_name);
  for (i = 0; i < BRIDGE_N_CODECS; i++)
    g_free (b->no_encoder[i]);
  g_free (b->export_path);
}

int
main (int argc, char **argv)
{
  Bridge bridge = { 0, };
  Bridge *b = &bridge;
  Options o = { 0, };
  GError *err = NULL;
  int ret = 1;

  if (!parse_options (&o, &argc, &argv, &err)) {
    g_printerr ("helix-host-bridge: %s (try --help)\n", err->message);
    g_error_free (err);
    options_clear (&o);
    return 2;
  }
  if (o.version) {
    g_print ("helix-host-bridge %s\n", PACKAGE_VERSION);
    options_clear (&o);
    return 0;
  }
  gst_init (NULL, NULL);
  GST_DEBUG_CATEGORY_INIT (bridge_debug, "hxbridge", 0, "helix-host-bridge");

  if (!apply_options (b, &o, &err)) {
    g_printerr ("helix-host-bridge: %s (try --help)\n", err->message);
    g_clear_error (&err);
    ret = 2;
  } else if (!gst_vsock_src_register_in_process ()) {
    /* our own vsocksrc, built in: the session and export client handed to
     * it are of this build, whatever plugins the registry holds */
    g_printerr ("helix-host-bridge: could not register vsocksrc\n");
  } else if (choose_encoder (b, &o)) {
    check_fd_limit (b);
    if (serve (b, &o))
      ret = 0;
  }
  bridge_clear (b);
  options_clear (&o);
  return ret;
}
