/* helix-host-bridge: admission. The listeners' sources run on the main
 * loop: accept, access control (--allow-uid, --allow-cid), the session
 * limits (--max-sessions, --max-sessions-per-peer, the descriptor
 * budget); an admitted connection gets a session and its thread
 * (bridge-session.c). A refused connection (limit, access control) is sent
 * ERROR and closed, and one over a session limit waits out its grace, on a
 * small thread pool (at most MAX_REFUSALS), without holding up the main
 * loop. The counts are under Bridge.lock.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <gst/gst.h>

#include "hxfr-host-session.h"
#include "bridge.h"
#include "bridge-admission.h"
#include "bridge-session.h"
#include "bridge-fds.h"
#include "bridge-scanout.h"

#define GST_CAT_DEFAULT bridge_debug

typedef struct
{
  HxfrListener *listener;
  GSource *source;
  gboolean is_unix, is_vsock;
  BridgeVm *vm;                 /* export=, else --export's; or NULL */
  gboolean deployed_ok;         /* ",deployed": scanout clients without a
                                 * token (helix's, as deployed) */
} Listener;

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
void
bridge_release_slot (Session * s)
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
  bridge_log_line ("refused \"%s\": %s", peer, r->message);
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
  s->thread = g_thread_new ("hx-session", bridge_session_thread, s);
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

      bridge_log_line ("refused \"%s\": out of file descriptors", who);
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

/* Listeners */

void
bridge_close_listeners (Bridge * b)
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
  bridge_log_line ("listening on %s (encoder %s%s%s%s)", bound, b->encoder_name,
      l->vm ? ", scanouts of " : "", l->vm ?
      bridge_vm_get_export_path (l->vm) : "", l->deployed_ok ?
      ", deployed scanout clients" : "");
  if (!b->cfg.token && !bridge_address_is_local (addr))
    bridge_log_line ("warning: %s is not a loopback address and no --token or "
        "--token-file is set: anyone who can reach it can use this "
        "host's encoder (add --token-file, or listen on 127.0.0.1)", bound);
  if (l->deployed_ok && !bridge_address_is_local (addr))
    bridge_log_line ("warning: %s takes deployed scanout clients, which have "
        "no token: anyone who can reach it can watch and hotplug this VM's "
        "scanouts", bound);
  g_free (bound);
  return TRUE;
}

gboolean
bridge_start_listeners (Bridge * b, gchar ** listen)
{
  GError *err = NULL;
  guint i;

  for (i = 0; listen[i]; i++) {
    if (!start_listener (b, listen[i], &err)) {
      g_printerr ("helix-host-bridge: cannot listen on %s: %s\n", listen[i],
          err->message);
      g_clear_error (&err);
      bridge_close_listeners (b);
      return FALSE;
    }
  }
  return TRUE;
}
