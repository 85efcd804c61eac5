/* helix-host-bridge: one guest's connection, on its own thread
 * (bridge-session.c).
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#pragma once

#include <gst/gst.h>

#include "hxfr-host-session.h"
#include "hxfr-export-client.h"
#include "bridge.h"

G_BEGIN_DECLS

typedef struct
{
  Bridge *bridge;
  guint id;
  HxfrConn *conn;
  HxfrHostSession *hs;
  HxexClient *export;     /* this session's own, or NULL */
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

/* The session's thread (g_thread_new, @data: the Session): a scanout
 * client served, or the handshake and the encode pipeline until the guest
 * leaves; then the session is logged, taken off Bridge.sessions and
 * freed. */
gpointer bridge_session_thread (gpointer data);

G_END_DECLS
