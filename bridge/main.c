/* helix-host-bridge: encodes guests' frames on the host.
 *
 * main.c: the life cycle. The main thread parses the options, chooses the
 * encoders, then runs a GMainLoop: the listeners' sources
 * (bridge-admission.c), SIGINT/SIGTERM (on_signal: stop listening, drain
 * the sessions), the metrics service (bridge-metrics.c, its counters
 * collected here under Bridge.lock). Each session runs on a thread of its
 * own (bridge-session.c).
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <glib-unix.h>
#include <gst/gst.h>

#include "hxfr-host-session.h"
#include "gstvsocksrc.h"
#include "bridge.h"
#include "bridge-options.h"
#include "bridge-admission.h"
#include "bridge-session.h"
#include "bridge-encoder.h"
#include "bridge-notify.h"
#include "bridge-fds.h"
#include "bridge-metrics.h"
#include "bridge-scanout.h"
#include "bridge-log-limit.h"

GST_DEBUG_CATEGORY (bridge_debug);
#define GST_CAT_DEFAULT bridge_debug

/* frames a subscriber may have queued (a slow one skips to the next IDR) */
#define SCANOUT_QUEUE_FRAMES 8

void
bridge_log_line (const gchar * format, ...)
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
    bridge_log_line ("%s (suppressed %" G_GUINT64_FORMAT " lines of clients "
        "without a token before this one)", line, suppressed);
  else
    bridge_log_line ("%s", line);
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
  bridge_close_listeners (b);
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
  bridge_log_line ("stopping: no new guests, draining %u session(s)", n);
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
    bridge_log_line ("%u session(s) did not end in time", b->n_sessions);
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
    bridge_log_line ("warning: --max-sessions %u needs about %u file "
        "descriptors, the limit is %u (ulimit -n): beyond about %u sessions new guests "
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
  c->log = bridge_log_line;
  c->log_unproven = log_unproven;
  if (!unproven_log_limit)
    unproven_log_limit = bridge_log_limit_new (20, 1, 60, 5, 1024);
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
  bridge_log_line ("metrics on %s", bound);
  if (bridge_metrics_is_exposed (b->metrics))
    bridge_log_line ("warning: metrics on %s, not a loopback address: anyone "
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
  if (!bridge_start_listeners (b, b->listen ? b->listen : default_listen))
    return FALSE;
  if (o->metrics && !start_metrics (b, o->metrics)) {
    bridge_close_listeners (b);
    return FALSE;
  }
  bridge_notify_or_warn ("READY=1");    /* every address listens */
  g_main_loop_run (b->loop);
  wait_sessions (b);
  bridge_close_listeners (b);
  if (b->n_sessions == 0)
    g_ptr_array_foreach (b->vms, (GFunc) (GCallback) bridge_vm_free, NULL);
  bridge_metrics_stop (b->metrics);
  bridge_log_line ("stopped");
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

  if (!bridge_options_parse (&o, &argc, &argv, &err)) {
    g_printerr ("helix-host-bridge: %s (try --help)\n", err->message);
    g_error_free (err);
    bridge_options_clear (&o);
    return 2;
  }
  if (o.version) {
    g_print ("helix-host-bridge %s\n", PACKAGE_VERSION);
    bridge_options_clear (&o);
    return 0;
  }
  gst_init (NULL, NULL);
  GST_DEBUG_CATEGORY_INIT (bridge_debug, "hxbridge", 0, "helix-host-bridge");

  if (!bridge_options_apply (b, &o, &err)) {
    g_printerr ("helix-host-bridge: %s (try --help)\n", err->message);
    g_clear_error (&err);
    ret = 2;
  } else if (!gst_vsock_src_register_in_process ()) {
    /* our own vsocksrc, built in: the session and export client handed to
     * it are of this build, whatever plugins the registry holds */
    g_printerr ("helix-host-bridge: could not register vsocksrc\n");
  } else if (bridge_options_choose_encoder (b, &o)) {
    check_fd_limit (b);
    if (serve (b, &o))
      ret = 0;
  }
  bridge_clear (b);
  bridge_options_clear (&o);
  return ret;
}
