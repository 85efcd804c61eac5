/* Rate limits for log lines that a peer without a token can make the
 * bridge write (deployed scanout clients: docs/security.md). A token
 * bucket per peer and one for all of them together; a line that is let
 * through after others were dropped says how many.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

typedef struct _BridgeLogLimit BridgeLogLimit;

/* Each peer may log @peer_burst lines at once and @peer_per_s a second
 * after that; all peers together @total_burst and @total_per_s. At most
 * @max_peers are told apart (more share the total bucket only). */
BridgeLogLimit *bridge_log_limit_new (guint peer_burst, gdouble peer_per_s,
    guint total_burst, gdouble total_per_s, guint max_peers);
void bridge_log_limit_free (BridgeLogLimit * limit);

/* TRUE if a line of @peer may be written now; then *suppressed is the
 * number of lines (of any peer) dropped since the last one let through.
 * Thread-safe. */
gboolean bridge_log_limit_take (BridgeLogLimit * limit, const gchar * peer,
    guint64 * suppressed);

G_END_DECLS
