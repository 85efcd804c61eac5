/* helix-host-bridge: one guest's session, on its own thread.
 *
 * The thread (bridge_session_thread): a connection whose first header
 * subscribes to a scanout is served by bridge_vm_serve(); any other runs
 * the handshake (hxfr_host_session_handshake, which asks choose_codec(),
 * bridge-options.c, for the guest's codec), then it builds and owns the session's pipeline
 * (the encoder chain: bridge-pipeline.c)
 *     vsocksrc ! queue ! [videoconvert] ! ENCODER ! PARSER ! capsfilter ! appsink
 * and waits on the pipeline's bus until EOS (guest left, or we drain on
 * shutdown) or an error, then tears it down and logs the session's end.
 * Inside each pipeline: vsocksrc's streaming thread reads requests; the
 * queue's thread runs the encoder and appsink's new-sample callback, which
 * writes each access unit back as the answer to its request
 * (hxfr_host_session_answer pairs it by PTS, answers in order).
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <gst/gst.h>
#include <gst/app/gstappsink.h>
#include <gst/video/video.h>

#include "hxfr-host-session.h"
#include "hxfr-export-client.h"
#include "hxfr-scanout.h"
#include "hxfr-video.h"
#include "bridge.h"
#include "bridge-session.h"
#include "bridge-admission.h"
#include "bridge-pipeline.h"
#include "bridge-subscriber.h"

#define GST_CAT_DEFAULT bridge_debug

/* at most one "guest bitrate" line per session in this time */
#define SETTINGS_LOG_INTERVAL_US (10 * G_USEC_PER_SEC)

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
    bridge_log_line ("session %u: guest bitrate %u bit/s, %s %s=%s (%u more "
        "changes not logged)", s->id, st->bitrate, s->enc->name,
        prop, now, s->settings_unlogged);
  else
    bridge_log_line ("session %u: guest bitrate %u bit/s, %s %s=%s", s->id,
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

/* @st: the session's counters, as the line reports them */
static void
log_session_end (Session * s, const gchar * reason, const HxfrHostStats * st)
{
  gdouble secs, fps = 0;

  secs = (g_get_monotonic_time () - s->t_start) / 1e6;
  if (s->scanout_client) {
    bridge_log_line ("session %u end: peer=\"%s\" scanout client "
        "duration=%.1fs bytes_in=%" G_GUINT64_FORMAT " bytes_out=%"
        G_GUINT64_FORMAT " reason=\"%s\"", s->id, s->peer, secs,
        hxfr_conn_get_bytes_received (s->conn),
        hxfr_conn_get_bytes_sent (s->conn), reason);
    return;
  }
  if (s->t_last_frame > s->t_first_frame && st->answered_ok > 1)
    fps = (st->answered_ok - 1) * 1e6 / (s->t_last_frame - s->t_first_frame);
  bridge_log_line ("session %u end: peer=\"%s\" version=%u encoder=%s frames=%"
      G_GUINT64_FORMAT " encoded=%" G_GUINT64_FORMAT " dropped=%"
      G_GUINT64_FORMAT " failed=%" G_GUINT64_FORMAT " fps=%.1f duration=%.1fs"
      " bytes_in=%" G_GUINT64_FORMAT " bytes_out=%" G_GUINT64_FORMAT
      " errors=%" G_GUINT64_FORMAT " bitrate_changes=%u reason=\"%s\"",
      s->id, hxfr_host_session_get_peer (s->hs),
      hxfr_host_session_get_version (s->hs), s->enc ? s->enc->name :
      s->bridge->encoder_name, st->requests, st->answered_ok, st->dropped,
      st->failed, fps, secs, st->bytes_in, st->bytes_out, st->errors,
      s->settings_changes, reason);
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
  bridge_log_line ("session %u start: peer=\"%s\" scanout client (%s)", s->id,
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
  s->export = hxex_client_connect (export_path, kinds,
      2 * G_USEC_PER_SEC, &err);
  if (s->export) {
    guint slots = hxex_client_get_n_slots (s->export);

    /* in flight, plus what the encoder and the queue hold, must fit the
     * slots */
    hxfr_host_session_set_resolves_resources (s->hs, slots > 3 ? slots - 2 : 1);
  } else {
    GST_WARNING ("session %u: helix export %s: %s", s->id, export_path,
        err->message);
    bridge_log_line ("session %u: helix export unavailable (%s): resource-id "
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
    bridge_log_line ("session %u start: peer=\"%s\" version=%u encoder=%s "
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
  bridge_release_slot (s);

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

/* The session is over: off the list (its counters, @st, folded into the
 * ended ones), then freed. */
static void
session_free (Session * s, const HxfrHostStats * st)
{
  Bridge *b = s->bridge;

  g_mutex_lock (&b->lock);
  b->sessions = g_list_remove (b->sessions, s);
  b->n_sessions--;
  /* with the removal, under the same lock: a scrape counts this session
   * once, live or ended */
  bridge_metrics_add_stats (&b->ended, st);
  g_cond_broadcast (&b->cond);
  g_mutex_unlock (&b->lock);

  hxfr_host_session_set_settings_func (s->hs, NULL, NULL, NULL);
  if (s->pipeline)
    gst_object_unref (s->pipeline);
  hxfr_host_session_unref (s->hs);
  if (s->export) {
    hxex_client_close (s->export);
    hxex_client_unref (s->export);
  }
  hxfr_conn_unref (s->conn);
  g_object_unref (s->cancellable);
  g_thread_unref (s->thread);
  g_free (s->peer);
  g_free (s);
}

gpointer
bridge_session_thread (gpointer data)
{
  Session *s = data;
  gchar *reason = NULL;
  HxfrHostStats st;
  gint64 first_timeout_us = (gint64) (s->bridge->first_message_timeout *
      G_USEC_PER_SEC);

  if (!serve_if_scanout_client (s, &first_timeout_us, &reason)) {
    if (s->vm)
      connect_session_export (s, bridge_vm_get_export_path (s->vm));
    reason = session_handshake (s, first_timeout_us);
    if (!reason)
      reason = session_stream (s);
  }
  bridge_release_slot (s);
  if (s->pipeline) {
    hxfr_host_session_shutdown (s->hs);
    gst_element_set_state (s->pipeline, GST_STATE_NULL);
  }
  /* logged once the slot is free: the line tells the truth to whoever
   * reads it and connects again */
  /* one reading of the counters for the end line and the metrics' totals:
   * they agree, whatever an answer still being written adds */
  hxfr_host_session_get_stats (s->hs, &st);
  log_session_end (s, reason, &st);
  g_free (reason);
  session_free (s, &st);
  return NULL;
}
