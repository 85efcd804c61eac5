/* A v2 guest streaming small NV12 frames in its own thread, one in flight,
 * until stopped: the "good session" that the bridge and fault tests run
 * next to hostile guests, to show it keeps streaming. As fast as the
 * bridge answers, or paced like a desktop stream.
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
  gint max_gap_us;              /* longest wait between two answers */
  guint pace_fps;               /* 0: no pacing */
  GThread *thread;
} Streamer;

Streamer *streamer_start (const gchar * address, const gchar * token);
/* One frame every 1/@fps s; a frame that comes late does not make the
 * next one early, so a stall shows in the rate. */
Streamer *streamer_start_paced (const gchar * address, const gchar * token,
    guint fps);
/* Waits (20 s at most) until @n answers in total / @more than now. */
gboolean streamer_wait (Streamer * st, gint n);
gboolean streamer_wait_progress (Streamer * st, gint more);
/* Frames per second it got over @seconds. */
gdouble streamer_rate (Streamer * st, gdouble seconds);
void streamer_stop (Streamer * st);

G_END_DECLS
