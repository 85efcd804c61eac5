/* A v2 guest streaming small NV12 frames in its own thread, one in flight,
 * until stopped: the "good session" that the bridge and fault tests run
 * next to hostile guests, to show it keeps streaming.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

typedef struct
{
  gchar *address;
  gchar *token;
  gint stop;
  /* counters, read with g_atomic_int_get */
  gint ok;                      /* access units for the frame asked */
  gint dropped;                 /* DROPPED answers (legitimate on shutdown) */
  gint bad;                     /* anything else */
  gint end_code;                /* ERROR code that ended it, 0 if none */
  gint closed;                  /* the host closed the connection */
  GThread *thread;
} Streamer;

Streamer *streamer_start (const gchar * address, const gchar * token);
/* Waits (20 s at most) until @n answers in total / @more than now. */
gboolean streamer_wait (Streamer * st, gint n);
gboolean streamer_wait_progress (Streamer * st, gint more);
/* Frames per second it got over @seconds. */
gdouble streamer_rate (Streamer * st, gdouble seconds);
void streamer_stop (Streamer * st);

G_END_DECLS
