/* Inside lib/hxfr-export only: the watch (hxfr-export-watch.c) is built on
 * an HxexClient of its own connection, so that a snapshot it receives is
 * an ordinary HxexClientSurface (wrapped by hxfr_surface_wrap, released by
 * hxex_client_surface_free) and every message on that socket goes through
 * one stream, one send lock.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#pragma once

#include "hxfr-export-client.h"
#include "hxfr-transport.h"

G_BEGIN_DECLS

/* A client on @conn (a reference is taken) that has not said HELLO: the
 * caller negotiates on hxex_client_get_stream() and, with a ring, calls
 * hxex_client_take_ring(). */
HxexClient *hxex_client_new_for_conn (HxfrConn * conn,
    const gchar * peer_closed);
/* The connection's one stream: whoever reads it must be its only reader
 * (a watch's reader thread; never hxex_client_resolve on the same
 * client). Sends from any thread. */
HxexStream *hxex_client_get_stream (HxexClient * client);
/* Maps the ring @ack announces with its descriptor in @fds (taken), with
 * the checks of hxex_client_connect. */
gboolean hxex_client_take_ring (HxexClient * client, const HxexHelloAck * ack,
    GArray * fds, GError ** error);
/* A surface of @client checked against its ring (the checks of a
 * SURFACE). */
HxexClientSurface *hxex_client_surface_new (HxexClient * client,
    guint32 resource_id, const HxexSurface * s, GArray * fds, GError ** error);
/* The connection is over: releases become no-ops, the socket is shut. */
void hxex_client_set_dead (HxexClient * client, const GError * why);

G_END_DECLS
