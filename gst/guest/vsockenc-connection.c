/* vsockenc: losing the host (see gstvsockenc-priv.h). Whichever thread
 * notices that a session is unusable (its reader, a send on the streaming
 * thread, a wait for answers that ran out) comes here: the frames in
 * flight are released and the element either posts an error or, with
 * on-disconnect=reconnect, a warning and lets the streaming thread
 * reconnect.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include "gstvsockenc-priv.h"

#define GST_CAT_DEFAULT gst_vsock_enc_debug

/* Called by whichever thread notices that @session is unusable: releases
 * the frames in flight and either posts an error or (reconnect mode) a
 * warning and lets the streaming thread reconnect. */
void
gst_vsock_enc_connection_failed (GstVsockEnc * self, HxfrGuestSession * session,
    const gchar * what, const GError * err)
{
  GQueue released = G_QUEUE_INIT;
  gboolean reconnect, quiet;

  /* a write into a closed socket says "broken pipe" (the same code in
   * GIO): the host hung up either way */
  if (g_error_matches (err, G_IO_ERROR, G_IO_ERROR_CONNECTION_CLOSED))
    what = "connection closed by the host";

  g_mutex_lock (&self->lock);
  if (self->session != session || self->conn_lost || self->conn_failing) {
    g_mutex_unlock (&self->lock);
    return;
  }
  self->conn_failing = TRUE;
  quiet = self->stopping;
  reconnect = self->disconnect_mode == GST_VSOCK_ENC_ON_DISCONNECT_RECONNECT;
  g_mutex_unlock (&self->lock);

  hxfr_guest_session_shutdown (session);

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

  /* no reconnect can have replaced the session meanwhile: that waits for
   * conn_lost */
  g_mutex_lock (&self->lock);
  self->conn_lost = TRUE;
  self->conn_failing = FALSE;
  if (!reconnect && !quiet)
    self->flow_ret = GST_FLOW_ERROR;
  released = gst_vsock_enc_in_flight_release (self);
  g_cond_broadcast (&self->cond);
  g_mutex_unlock (&self->lock);

  /* released, not stuck: the base class forgets them without output */
  gst_vsock_enc_in_flight_free (self, &released, TRUE);
}

/* Streaming thread, stream lock held. A send failed: the host usually said
 * why (an ERROR) or still has answers in the socket before its end; the
 * reader reads them and reports first, within a bound. */
void
gst_vsock_enc_send_failed (GstVsockEnc * self, HxfrGuestSession * session,
    const gchar * what, const GError * err)
{
  gint64 deadline = g_get_monotonic_time () +
      MIN (self->timeout_us, G_USEC_PER_SEC);
  gboolean reported;

  GST_VIDEO_ENCODER_STREAM_UNLOCK (self);
  g_mutex_lock (&self->lock);
  while (!self->conn_lost && self->session == session && !self->stopping) {
    if (!g_cond_wait_until (&self->cond, &self->lock, deadline))
      break;
  }
  reported = self->conn_lost || self->session != session;
  g_mutex_unlock (&self->lock);
  if (!reported)
    gst_vsock_enc_connection_failed (self, session, what, err);
  GST_VIDEO_ENCODER_STREAM_LOCK (self);
}

/* After a bounded wait for the host: a wait that ran out is the
 * connection failing (error or reconnect, as configured), and its flow
 * return replaces @ret. Drops the reference on @session. */
GstFlowReturn
gst_vsock_enc_end_wait (GstVsockEnc * self, HxfrGuestSession * session,
    gboolean timed_out, GstFlowReturn ret)
{
  if (timed_out) {
    GError *err = g_error_new (G_IO_ERROR, G_IO_ERROR_TIMED_OUT,
        "no answer within %" G_GINT64_FORMAT " ms", self->timeout_us / 1000);

    gst_vsock_enc_connection_failed (self, session, "timeout", err);
    g_error_free (err);
    g_mutex_lock (&self->lock);
    ret = self->flow_ret;
    g_mutex_unlock (&self->lock);
  }
  hxfr_guest_session_unref (session);
  return ret;
}

/* After a failed send on @session (reported by gst_vsock_enc_send_failed()): what
 * becomes of the stream. */
GstFlowReturn
gst_vsock_enc_flow_after_send_failure (GstVsockEnc * self)
{
  GstFlowReturn ret;

  g_mutex_lock (&self->lock);
  ret = self->stopping ? GST_FLOW_FLUSHING : self->flow_ret;
  g_mutex_unlock (&self->lock);
  return ret;
}

/* Whether @session was lost (or replaced) meanwhile. */
gboolean
gst_vsock_enc_session_lost (GstVsockEnc * self, HxfrGuestSession * session)
{
  gboolean lost;

  g_mutex_lock (&self->lock);
  lost = self->conn_lost || self->session != session;
  g_mutex_unlock (&self->lock);
  return lost;
}
