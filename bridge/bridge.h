/* helix-host-bridge: the daemon's state, and what main.c gives every
 * part of it (the debug category, the log). The parts: main.c (life cycle,
 * signals, metrics wiring), bridge-options.c (the command line),
 * bridge-admission.c (listeners, limits, refusals), bridge-session.c (one
 * guest's encode session).
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#pragma once

#include <gst/gst.h>

#include "hxfr-host-session.h"
#include "bridge-encoder.h"
#include "bridge-metrics.h"
#include "bridge-scanout.h"

G_BEGIN_DECLS

GST_DEBUG_CATEGORY_EXTERN (bridge_debug);

typedef struct _Bridge Bridge;

/* lock protects sessions, n_sessions, the admission counts (n_admitted,
 * peer_sessions, Session.admitted), the ended sessions' counters and
 * stopping; lock order: Bridge.lock, then a session's own locks (never
 * the other way). */
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
void bridge_log_line (const gchar * format, ...) G_GNUC_PRINTF (1, 2);
/* *INDENT-ON* */

G_END_DECLS
