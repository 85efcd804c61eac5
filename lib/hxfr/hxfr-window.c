/* The adaptive window of a v2 guest (see hxfr-window.h).
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "hxfr-window.h"

#include <string.h>

/* the weight of a new answer in the moving averages */
#define EWMA_WEIGHT (1.0 / 8)
/* a measurement is noisy (16 answers on a busy machine): the side the
 * model prefers wins unless it measured this much worse */
#define MODEL_BENEFIT 0.1
/* answers between tries of a step that did not pay, doubling */
#define HOLD_MIN 64
#define HOLD_MAX 1024
/* answers before the first unprompted try of one frame fewer */
#define DOWN_FIRST 128

void
hxfr_window_init (HxfrWindow * w, guint max)
{
  memset (w, 0, sizeof (*w));
  w->max = MAX (max, 1);
  w->window = 1;
  w->up_hold = HOLD_MIN;
  w->down_hold = HOLD_MIN;
  w->down_next = DOWN_FIRST;
}

/* The model's rate over round trip with @d frames in flight: the rate is
 * d per round trip up to one per service time; the round trip is S + L
 * until the frames queue, d service times after. */
static gdouble
model_power (gdouble s, gdouble l, guint d)
{
  gdouble rate = MIN (d / (s + l), 1 / s);

  return rate / MAX (s + l, d * s);
}

static void
step (HxfrWindow * w, gint by, HxfrWindowPhase phase, gdouble power)
{
  w->window += by;
  w->since_change = 0;
  w->phase = phase;
  w->power_before = power;
}

/* After the step of w->phase was measured: keeps it or takes it back. */
static void
judge (HxfrWindow * w, gdouble power)
{
  /* the deeper window's power against the shallower one's */
  gboolean up = w->phase == HXFR_WINDOW_TRIED_UP;
  gdouble deep = up ? power : w->power_before;
  gdouble shallow = up ? w->power_before : power;
  guint d = up ? w->window : w->window + 1;
  gdouble s = w->service_us, l = MAX (w->link_us, 0);
  gboolean model_deep = model_power (s, l, d) > model_power (s, l, d - 1);
  gboolean pays = deep * (model_deep ? 1 + MODEL_BENEFIT : 1 - MODEL_BENEFIT)
      > shallow;

  g_debug ("window %u %s: power %.4g against %.4g: %s", w->window,
      up ? "tried up" : "tried down", power, w->power_before,
      pays == up ? "kept" : "taken back");

  w->phase = HXFR_WINDOW_STEADY;
  if (up && !pays) {
    step (w, -1, HXFR_WINDOW_STEADY, 0);
    w->up_next = w->samples + w->up_hold;
    w->up_hold = MIN (w->up_hold * 2, HOLD_MAX);
  } else if (up) {
    w->up_hold = HOLD_MIN;
    /* not at once back down the step that just paid */
    w->down_next = MAX (w->down_next, w->samples + w->down_hold);
  } else if (pays) {
    step (w, 1, HXFR_WINDOW_STEADY, 0);
    w->down_next = w->samples + w->down_hold;
    w->down_hold = MIN (w->down_hold * 2, HOLD_MAX);
  } else {
    w->down_hold = HOLD_MIN;
    w->down_next = w->samples + w->down_hold;
  }
}

guint
hxfr_window_update (HxfrWindow * w, gint64 now_us, gint64 rtt_us,
    gint64 host_us)
{
  gdouble service, link, interval = -1, power, rtt_sum = 0, s, l;
  guint slot = w->samples % HXFR_WINDOW_HISTORY, i;

  host_us = CLAMP (host_us, 0, MAX (rtt_us, 0));
  service = host_us;
  /* the oldest answer remembered is HISTORY answers before this one */
  if (w->samples >= HXFR_WINDOW_HISTORY) {
    interval = (gdouble) (now_us - w->answered_at[slot]) / HXFR_WINDOW_HISTORY;
    service = MIN (service, interval);
  }
  /* a host that answers in no measurable time: 1 µs, so that the link
   * decides (and nothing divides by zero) */
  service = MAX (service, 1.0);
  link = (gdouble) (rtt_us - host_us);

  if (w->samples == 0) {
    w->service_us = service;
    w->link_us = link;
  } else {
    w->service_us += EWMA_WEIGHT * (service - w->service_us);
    w->link_us += EWMA_WEIGHT * (link - w->link_us);
  }
  w->answered_at[slot] = now_us;
  w->rtt[slot] = MAX (rtt_us, 1);
  w->samples++;
  w->since_change++;

  /* decide on answers of frames all sent under this window: the first
   * window's worth were sent under the last one */
  if (w->since_change < w->window + HXFR_WINDOW_HISTORY)
    return w->window;
  for (i = 0; i < HXFR_WINDOW_HISTORY; i++)
    rtt_sum += w->rtt[i];
  /* rate / mean round trip, in any unit: only compared */
  power = 1.0 / (MAX (interval, 1.0) * rtt_sum);
  if (w->phase != HXFR_WINDOW_STEADY) {
    judge (w, power);
    return w->window;
  }
  s = w->service_us;
  l = MAX (w->link_us, 0);
  /* unprompted tries too, seldom: the model does not see a host whose
   * encoder works on several frames at once, nor a link or host that a
   * deeper window does not speed up */
  if (w->window < w->max && w->samples >= w->up_next
      && (model_power (s, l, w->window + 1) > model_power (s, l, w->window)
          || w->samples >= w->up_next + HOLD_MAX))
    step (w, 1, HXFR_WINDOW_TRIED_UP, power);
  else if (w->window > 1 && (w->samples >= w->down_next
          || (model_power (s, l, w->window - 1) >=
              model_power (s, l, w->window) && w->since_change >= HOLD_MIN)))
    step (w, -1, HXFR_WINDOW_TRIED_DOWN, power);
  return w->window;
}
