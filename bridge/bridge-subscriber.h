/* A scanout client's connection (bridge-subscriber.c): what the rest of
 * the bridge calls. The subscriber's internals, shared with
 * bridge-scanout.c, are in bridge-scanout-private.h.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#pragma once

#include <gio/gio.h>
#include "hxfr-transport.h"
#include "bridge-scanout.h"

G_BEGIN_DECLS

/* Serves one scanout client on @conn until it ends, on the caller's
 * thread. @first: the header of its first message, peeked
 * (hxfr_conn_peek), not read: the message is read here, within the
 * deadline its first byte started. @deployed_ok: the listener accepts
 * deployed clients (no token). Returns why it ended (g_free it). */
gchar *bridge_vm_serve (BridgeVm * vm, HxfrConn * conn, guint id,
    const HxfrHeader * first, gboolean deployed_ok,
    GCancellable * cancellable);

G_END_DECLS
