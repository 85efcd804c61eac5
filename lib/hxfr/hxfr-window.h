/* The adaptive window of a v2 guest: how many frames to keep in flight,
 * from what each answer says about the link and the host.
 *
 * A frame's round trip is the host's time (FRAME_RESPONSE2 host_time_us:
 * request read to answer written, its wait in the host's queue included)
 * plus the link's (the rest: sending the request, carrying the answer).
 * S, the host's service time per frame, is the smaller of its host time
 * and the mean interval between the last answers: a frame that found the
 * host idle waited for nothing, and while the host had a backlog its
 * answers left one service time apart. L is the link's part.
 *
 * The rule (docs/architecture.md, "The window"): the window that gives
 * the most answers per second per second of round trip (Kleinrock's
 * "power"). A frame that fills an idle link adds rate and no round trip; a
 * frame that waits in front of a busy encoder adds a service time to every
 * round trip and no rate. It starts at 1. The model (d frames give
 * min(d / (S + L), 1 / S) answers per second at a round trip of
 * max(S + L, d·S)) says when one frame more or fewer should pay; each is
 * also tried unprompted, seldom (one fewer 128 answers after the start and
 * 64 after a step that paid, one more every 1024 answers), since the model
 * misses a host that works on several frames at once and a "link" that
 * takes the encoder's CPU (both ends on one machine's cores). A step is
 * kept only if it pays, measured: the rate and mean round trip over the
 * HXFR_WINDOW_HISTORY answers of frames sent under each window, the side
 * the model prefers winning unless it measured 10 % worse (16 answers on a
 * busy machine are noisy). Else the window goes back, and the same step
 * waits twice as long before its next try (64 answers, doubling to 1024).
 * Between 1 and the granted maximum; S and L are moving averages (1/8 per
 * answer).
 *
 * Pure arithmetic on the numbers given: no clock, no lock (the guest
 * session calls it under its own lock).
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

/* answers a window's rate and round trip are measured over */
#define HXFR_WINDOW_HISTORY 16

typedef enum
{
  HXFR_WINDOW_STEADY,
  HXFR_WINDOW_TRIED_UP,         /* one frame more: does it pay? */
  HXFR_WINDOW_TRIED_DOWN,       /* one frame fewer: does it cost? */
} HxfrWindowPhase;

typedef struct
{
  guint max;                    /* the bound: granted frames in flight */
  guint window;                 /* current */
  gdouble service_us;           /* S, moving average; 0 until measured */
  gdouble link_us;              /* L, moving average */
  guint64 samples;              /* answers taken */
  guint since_change;           /* answers since the last step */
  gint64 answered_at[HXFR_WINDOW_HISTORY];      /* ring, monotonic µs */
  gint64 rtt[HXFR_WINDOW_HISTORY];      /* ring, µs */
  HxfrWindowPhase phase;
  gdouble power_before;         /* answers per second per second of round
                                 * trip, before the step */
  guint up_hold, down_hold;     /* answers between tries, after a failed one */
  guint64 up_next, down_next;   /* no try before this many answers */
} HxfrWindow;

void hxfr_window_init (HxfrWindow * w, guint max);

/* One OK answer of a v2 host: read at @now_us, @rtt_us after its request
 * was sent, @host_us of that spent in the host. Returns the window. */
guint hxfr_window_update (HxfrWindow * w, gint64 now_us, gint64 rtt_us,
    gint64 host_us);

G_END_DECLS
