/* Service manager readiness: the systemd notify protocol (a datagram of
 * "KEY=VALUE" lines on the UNIX socket named by $NOTIFY_SOCKET), written
 * with GIO so the bridge needs no libsystemd.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

/* Sends STATE (e.g. "READY=1", "STOPPING=1") to $NOTIFY_SOCKET. Without
 * $NOTIFY_SOCKET (not started by systemd with Type=notify) it does nothing
 * and returns TRUE. FALSE with ERROR set if the variable is malformed or
 * the send failed; the bridge only logs that, since systemd then reports
 * the missing readiness itself. Never blocks: the socket is non-blocking
 * and systemd's end is a datagram socket. */
gboolean bridge_notify (const gchar * state, GError ** error);

/* bridge_notify(), with a failure printed on stderr as a warning. */
void bridge_notify_or_warn (const gchar * state);

G_END_DECLS
