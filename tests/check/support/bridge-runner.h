/* Runs the built helix-host-bridge as a subprocess for the end-to-end
 * tests: on a UNIX socket in a temporary directory or on TCP 127.0.0.1
 * (port picked by the bridge), waits until it listens, collects its log,
 * stops it with SIGTERM and reports how it exited.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#pragma once

#include <gio/gio.h>

G_BEGIN_DECLS

typedef struct _BridgeRunner BridgeRunner;

typedef enum
{
  BRIDGE_RUNNER_UNIX,
  BRIDGE_RUNNER_TCP,
} BridgeRunnerTransport;

/* Starts $HXFR_BUILD_ROOT/bridge/helix-host-bridge with @extra_args
 * (NULL-terminated, may be NULL) and waits (bounded) until it listens.
 * NULL, with the bridge's output in the failure message, if it does not. */
BridgeRunner *bridge_runner_start (BridgeRunnerTransport transport,
    const gchar * const *extra_args);

/* The same, the bridge started with RLIMIT_NOFILE (soft and hard) set to
 * @fd_limit (0: inherited). */
BridgeRunner *bridge_runner_start_with_fd_limit (BridgeRunnerTransport
    transport, const gchar * const *extra_args, guint fd_limit);

/* The same, the --listen address followed by ",@listen_opts" (for
 * example "deployed" or "export=unix:PATH,deployed"). */
BridgeRunner *bridge_runner_start_with_listen_opts (BridgeRunnerTransport
    transport, const gchar * listen_opts, const gchar * const *extra_args);

/* "unix:/tmp/.../hx.sock" or "tcp:127.0.0.1:PORT" */
const gchar *bridge_runner_get_address (BridgeRunner * r);
/* The UNIX socket path (NULL for TCP) and the TCP port (0 for UNIX). */
const gchar *bridge_runner_get_socket_path (BridgeRunner * r);
guint bridge_runner_get_port (BridgeRunner * r);
GPid bridge_runner_get_pid (BridgeRunner * r);

/* Waits (up to @timeout_s) until the log holds @count lines containing
 * @needle. */
gboolean bridge_runner_wait_log (BridgeRunner * r, const gchar * needle,
    guint count, guint timeout_s);
guint bridge_runner_count_log (BridgeRunner * r, const gchar * needle);
/* A copy of everything the bridge wrote to stderr so far. */
gchar *bridge_runner_get_log (BridgeRunner * r);

/* SIGTERM, then waits (bounded) for the exit. Returns the exit status
 * (-1: killed by a signal or did not exit in time, then SIGKILLed). Frees
 * @r and removes the temporary directory; *socket_left is set to whether
 * the socket file still existed right after the exit. */
gint bridge_runner_stop (BridgeRunner * r, gboolean * socket_left);

/* The same without a signal: for a bridge already told to stop (a test
 * that sent SIGTERM itself). */
gint bridge_runner_wait (BridgeRunner * r, gboolean * socket_left);

/* bridge_runner_stop() as a check: fails the test unless the bridge
 * exited 0 and removed its socket file. */
void bridge_runner_stop_checked (BridgeRunner * r);

G_END_DECLS
