/* helix-host-bridge: who gets a session (bridge-admission.c). The
 * listeners, access control, the session limits with their grace, and
 * refusals, off the main loop on a small thread pool.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#pragma once

#include "bridge.h"
#include "bridge-session.h"

G_BEGIN_DECLS

/* Listens on every address of @listen (sources on the main context); on
 * failure says why on stderr and closes those already open. */
gboolean bridge_start_listeners (Bridge * b, gchar ** listen);
/* Stops listening (socket files removed). Main loop. */
void bridge_close_listeners (Bridge * b);
/* Gives back the session's place under the limits (once). */
void bridge_release_slot (Session * s);

G_END_DECLS
