/* See streamer.h.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "streamer.h"

#include "guest-emu.h"

static gpointer
streamer_thread (gpointer data)
{
  Streamer *st = data;
  GuestEmu *g = guest_emu_connect (st->address, NULL);
  GuestAnswer a;
  gsize size;
  guint8 *px = guest_emu_make_nv12 (128, 96, 128, 0, &size);
  guint n = 0;
  gint64 next = 0, last_answer = 0, period = st->pace_fps ?
      G_USEC_PER_SEC / st->pace_fps : 0;

  if (!g || !guest_emu_hello (g, 2, st->token, &a, NULL)
      || a.type != HXFR_MSG_HELLO_ACK) {
    g_atomic_int_inc (&st->bad);
    goto out;
  }
  while (!g_atomic_int_get (&st->stop)) {
    HxfrFrameRequest r = { 0, };
    gint64 now = g_get_monotonic_time ();

    if (period) {
      if (next > now)
        g_usleep (next - now);
      next = MAX (next, now) + period;
    }
    r.width = 128;
    r.height = 96;
    r.format = HXFR_FORMAT_NV12;
    r.pts = n++ * 33333333;
    r.duration = 33333333;
    if (!guest_emu_send_frame (g, &r, px, size, NULL)
        || !guest_emu_receive (g, &a, NULL)) {
      g_atomic_int_set (&st->closed, 1);
      break;
    }
    now = g_get_monotonic_time ();
    if (last_answer && now - last_answer > g_atomic_int_get (&st->max_gap_us))
      g_atomic_int_set (&st->max_gap_us, (gint) MIN (now - last_answer,
              G_MAXINT));
    last_answer = now;
    if (a.type == HXFR_MSG_ERROR) {
      g_atomic_int_set (&st->end_code, a.error_code);
      g_atomic_int_set (&st->closed, guest_emu_wait_closed (g));
      break;
    }
    if (a.type == HXFR_MSG_FRAME_RESPONSE2 && a.resp.status == HXFR_STATUS_OK
        && a.resp.seq == r.seq && g_bytes_get_size (a.au) > 0)
      g_atomic_int_inc (&st->ok);
    else if (a.type == HXFR_MSG_FRAME_RESPONSE2
        && a.resp.status == HXFR_STATUS_DROPPED && a.resp.seq == r.seq)
      g_atomic_int_inc (&st->dropped);
    else
      g_atomic_int_inc (&st->bad);
    guest_answer_clear (&a);
  }
out:
  guest_emu_free (g);
  g_free (px);
  return NULL;
}

Streamer *
streamer_start_paced (const gchar * address, const gchar * token, guint fps)
{
  Streamer *st = g_new0 (Streamer, 1);

  st->address = g_strdup (address);
  st->token = g_strdup (token);
  st->pace_fps = fps;
  st->thread = g_thread_new ("streamer", streamer_thread, st);
  return st;
}

Streamer *
streamer_start (const gchar * address, const gchar * token)
{
  return streamer_start_paced (address, token, 0);
}

gboolean
streamer_wait (Streamer * st, gint n)
{
  gint64 deadline = g_get_monotonic_time () + 20 * G_USEC_PER_SEC;

  /* polled: the counter is the condition, the deadline the bound */
  while (g_atomic_int_get (&st->ok) < n && g_get_monotonic_time () < deadline
      && !g_atomic_int_get (&st->closed))
    g_usleep (2000);
  return g_atomic_int_get (&st->ok) >= n;
}

gboolean
streamer_wait_progress (Streamer * st, gint more)
{
  return streamer_wait (st, g_atomic_int_get (&st->ok) + more);
}

gdouble
streamer_rate (Streamer * st, gdouble seconds)
{
  gint64 t0 = g_get_monotonic_time ();
  gint ok0 = g_atomic_int_get (&st->ok);

  g_usleep ((gulong) (seconds * G_USEC_PER_SEC));
  return (g_atomic_int_get (&st->ok) - ok0) * (gdouble) G_USEC_PER_SEC /
      (g_get_monotonic_time () - t0);
}

void
streamer_stop (Streamer * st)
{
  g_atomic_int_set (&st->stop, 1);
  g_thread_join (st->thread);
  g_free (st->address);
  g_free (st->token);
  g_free (st);
}
