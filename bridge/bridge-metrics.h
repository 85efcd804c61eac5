/* The bridge's opt-in metrics endpoint (--metrics): Prometheus text format
 * over HTTP/1.0, served on the bridge's main loop without ever blocking it.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#pragma once

#include <glib.h>
#include "hxfr-host-session.h"

G_BEGIN_DECLS

/* What one scrape reports: the bridge's counters, ended sessions and live
 * ones added together. */
typedef struct
{
  guint sessions_now;
  guint64 sessions_total;
  guint64 refusals_total;
  HxfrHostStats frames;
} BridgeMetricsSnapshot;

/* Fills @snap; called on the main loop, once per scrape. */
typedef void (*BridgeMetricsCollectFunc) (BridgeMetricsSnapshot * snap,
    gpointer user_data);

typedef struct _BridgeMetrics BridgeMetrics;

/* Listens on @spec ("tcp:HOST:PORT", port 0 picks one, or "unix:PATH",
 * made with @unix_mode) on the thread-default main context. Every metric
 * is labelled encoder="@encoder". */
BridgeMetrics *bridge_metrics_start (const gchar * spec, guint unix_mode,
    const gchar * encoder, BridgeMetricsCollectFunc collect,
    gpointer user_data, GError ** error);
/* The bound address, parseable ("tcp:127.0.0.1:40123"). */
gchar *bridge_metrics_get_address (BridgeMetrics * m);
/* TRUE if it listens on TCP other than loopback. */
gboolean bridge_metrics_is_exposed (BridgeMetrics * m);
/* Stops listening (a UNIX socket file is removed); scrapes in progress
 * are cut. */
void bridge_metrics_stop (BridgeMetrics * m);

/* Adds @from's counters into @into (bytes and histogram included). */
void bridge_metrics_add_stats (HxfrHostStats * into,
    const HxfrHostStats * from);

/* The Prometheus text of @snap (for the endpoint, and tests). */
gchar *bridge_metrics_format (const BridgeMetricsSnapshot * snap,
    const gchar * encoder);

/* TRUE unless @addr is TCP on an address other than loopback (a name
 * other than "localhost" counts as not loopback). */
gboolean bridge_address_is_local (const HxfrAddress * addr);

G_END_DECLS
