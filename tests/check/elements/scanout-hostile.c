/* Scanout mode against hostile and slow clients (docs/security.md,
 * docs/protocol.md 11.3): what a token-less client can repeat is
 * rate-limited or a no-op, and it never degrades an honest viewer's stream.
 * Each test fails on the tree before these limits:
 * - re-subscribing and connection churn made every viewer receive an IDR
 *   per frame;
 * - a reader slower than the stream was cut off after its frames had
 *   waited 8 s in the kernel;
 * - a first message had one idle timeout for its header and another for
 *   the rest;
 * - every SUBSCRIBE and ENABLE wrote a log line;
 * - every ENABLE_SCANOUT, the same one again too, was a hotplug in the
 *   guest.
 *
 * The built helix-host-bridge (x264enc) against the stand-in VMM, raw
 * clients from scanout-client.h. Waits are bounded and wait for events;
 * rates are compared as ratios with wide margins (a busy 2-core machine).
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include <errno.h>
#include <poll.h>
#include <string.h>
#include <unistd.h>
#include <sys/socket.h>

#include "scanout-client.h"

/* the bridge's IDR limit per scanout (bridge-scanout.c) */
#define IDR_INTERVAL_US (250 * 1000)
/* what a frame may wait in the bridge's queue (bridge-subscriber.c) */
#define MAX_QUEUE_WAIT_US (100 * 1000)

/* ------------------------------------------------------------------ */
/* Clients that flood, on threads of their own                          */

typedef struct
{
  Env *env;
  GThread *thread;
  gint stop;                    /* atomic */
  guint64 sent;                 /* messages or connections */
} Flood;

/* Reads and throws away whatever comes, until EOF or @stop. */
static gpointer
drain_thread (gpointer data)
{
  gpointer *args = data;
  Cl *c = args[0];
  gint *stop = args[1];
  guint8 buf[65536];

  while (!g_atomic_int_get (stop)) {
    struct pollfd p = { c->fd, POLLIN, 0 };

    if (poll (&p, 1, 100) > 0 && recv (c->fd, buf, sizeof (buf), 0) <= 0)
      break;
  }
  g_free (args);
  return NULL;
}

/* A connection sends SUBSCRIBE(1) again and again, reading what comes
 * back on another thread (an honest reader of a dishonest stream); when
 * the bridge closes it (it sends faster than it reads its answers), the
 * next connection does the same. */
static gpointer
resubscribe_thread (gpointer data)
{
  Flood *fl = data;
  guint8 p[4];

  put_le32 (p, 1);
  while (!g_atomic_int_get (&fl->stop) && fl->sent < 200000) {
    Cl *c = cl_connect (fl->env);
    gpointer *args = g_new (gpointer, 2);
    GThread *drain;

    args[0] = c;
    args[1] = &fl->stop;
    drain = g_thread_new ("drain", drain_thread, args);
    while (!g_atomic_int_get (&fl->stop) && fl->sent < 200000
        && cl_send (c, 0x30, 1, p, 4, 4))
      fl->sent++;
    shutdown (c->fd, SHUT_WR);
    g_thread_join (drain);
    cl_close (c);
  }
  return NULL;
}

/* Connect, SUBSCRIBE(1), take the answer, close; again and again. */
static gpointer
churn_thread (gpointer data)
{
  Flood *fl = data;

  while (!g_atomic_int_get (&fl->stop) && fl->sent < 20000) {
    Cl *c = cl_connect (fl->env);

    fail_unless_equals_int (deployed_subscribe (c, 1), 1);
    cl_close (c);
    fl->sent++;
  }
  return NULL;
}

static Flood *
flood_start (Env * e, GThreadFunc func)
{
  Flood *fl = g_new0 (Flood, 1);

  fl->env = e;
  fl->thread = g_thread_new ("flood", func, fl);
  return fl;
}

static guint64
flood_stop (Flood * fl)
{
  guint64 sent;

  g_atomic_int_set (&fl->stop, 1);
  g_thread_join (fl->thread);
  sent = fl->sent;
  g_free (fl);
  return sent;
}

/* Frames and IDRs @r got from frame @from on */
static void
reader_tally (Reader * r, guint from, guint * frames, guint * idrs)
{
  guint i;

  *frames = *idrs = 0;
  g_mutex_lock (&r->lock);
  for (i = from; i < r->frames->len; i++) {
    (*frames)++;
    *idrs += g_array_index (r->frames, Frame, i).keyframe;
  }
  g_mutex_unlock (&r->lock);
}

/* ------------------------------------------------------------------ */
/* 1. Keyframe amplification                                            */

GST_START_TEST (test_resubscribe_and_churn_no_idr_flood)
{
  const gchar *vmm_args[] = STANDIN_ARGS ("60");
  Env *e = env_start (vmm_args, "deployed", NULL);
  Reader *viewer;
  guint from, base_frames, base_idrs, frames, idrs, max_idrs;
  guint64 resubscribes, churns;
  gint64 t0, dt;
  Flood *resub, *churn;

  if (!e)
    return;
  viewer = streaming_reader (e, TRUE);

  from = reader_count (viewer);
  g_usleep (2 * G_USEC_PER_SEC);
  reader_tally (viewer, from, &base_frames, &base_idrs);

  from = reader_count (viewer);
  t0 = g_get_monotonic_time ();
  resub = flood_start (e, resubscribe_thread);
  churn = flood_start (e, churn_thread);
  g_usleep (4 * G_USEC_PER_SEC);
  resubscribes = flood_stop (resub);
  churns = flood_stop (churn);
  dt = g_get_monotonic_time () - t0;
  reader_tally (viewer, from, &frames, &idrs);

  g_printerr ("IDR amplification: viewer %u frames, %u IDRs in 2 s alone; "
      "%u frames, %u IDRs in %.1f s beside %" G_GUINT64_FORMAT
      " SUBSCRIBEs on one connection and %" G_GUINT64_FORMAT
      " subscribing connections\n", base_frames, base_idrs, frames, idrs,
      dt / 1e6, resubscribes, churns);
  fail_unless (resubscribes > 1000 && churns > 20, "the flood did not run");
  /* at most one IDR per interval, whoever asks, and the frames that were
   * already on their way */
  max_idrs = dt / IDR_INTERVAL_US + 2;
  fail_unless (idrs <= max_idrs, "the viewer got %u IDRs in %.1f s (limit "
      "%u)", idrs, dt / 1e6, max_idrs);
  /* 2x the time: about 2x the frames; at least half of that */
  fail_unless (frames >= base_frames, "the viewer's rate fell: %u frames "
      "in 4 s beside the flood, %u in 2 s alone", frames, base_frames);
  fail_unless (!viewer->eof);
  reader_stop (viewer);
  env_stop (e);
}

GST_END_TEST;

/* A joiner still gets an IDR first, at once, while IDRs are limited:
 * repeated joins on a static screen are sent the last IDR again. */
GST_START_TEST (test_joiners_get_an_idr_within_the_limit)
{
  const gchar *vmm_args[] = STANDIN_ARGS ("60");
  const gchar *bridge_args[] = { "--scanout-quiet-interval", "30", NULL };
  Env *e = env_start (vmm_args, "deployed", bridge_args);
  Reader *viewer;
  guint i, n, idrs, from;
  gint64 worst = 0;

  if (!e)
    return;
  viewer = streaming_reader (e, TRUE);

  for (gint pass = 0; pass < 2; pass++) {
    if (pass == 1) {
      /* a static screen: nothing flips, the quiet interval is 30 s */
      standin_runner_command_expect (e->vmm, "rate 1 0", "RATE 1 hz=0");
      do {
        n = reader_count (viewer);
        g_usleep (500 * 1000);
      } while (reader_count (viewer) != n);
    }
    from = reader_count (viewer);
    for (i = 0; i < 20; i++) {
      gint64 t0 = g_get_monotonic_time ();
      Cl *j = cl_connect (e);
      Frame f;

      fail_unless_equals_int (deployed_subscribe (j, 1), 1);
      fail_unless_equals_int (deployed_frame (j, &f, FRAME_TIMEOUT_US), RD_OK);
      fail_unless (f.keyframe && au_has_idr (f.au), "joiner %u (pass %d): "
          "its first frame is not an IDR", i, pass);
      worst = MAX (worst, g_get_monotonic_time () - t0);
      frame_clear (&f);
      cl_close (j);
    }
    reader_tally (viewer, from, &n, &idrs);
    g_printerr ("20 joiners (%s): first frame an IDR, the slowest after "
        "%.0f ms; the viewer got %u IDRs meanwhile\n",
        pass ? "static screen" : "60 Hz", worst / 1000.0, idrs);
    if (pass == 1)
      /* replayed: on a static screen nothing is encoded for them */
      fail_unless (idrs <= 1, "the viewer got %u IDRs on a static screen "
          "for 20 joiners", idrs);
  }
  reader_stop (viewer);
  env_stop (e);
}

GST_END_TEST;

/* ------------------------------------------------------------------ */
/* 2. A reader slower than the stream                                   */

typedef struct
{
  Cl *cl;
  gdouble bytes_per_s;
  gint64 until;
  guint frames, discont_not_idr, frames_after_discont;
  gint64 worst_excess_us;       /* over the stated bound */
  gint64 worst_age_us;
  gint64 longest_gap_us;        /* between two frames */
  guint64 bytes;
  gboolean eof;
} SlowReader;

/* Reads exactly @len at @r->bytes_per_s (a paced peer: small reads, a
 * sleep when ahead of its rate). */
static gboolean
slow_read (SlowReader * r, guint8 * buf, gsize len, gint64 t_start)
{
  gsize got = 0;

  while (got < len) {
    struct pollfd p = { r->cl->fd, POLLIN, 0 };
    gint64 due = t_start + (gint64) (r->bytes / r->bytes_per_s * 1e6);
    gint64 now = g_get_monotonic_time ();
    ssize_t n;

    if (due > now)
      g_usleep (due - now);
    if (poll (&p, 1, 10000) <= 0)
      return FALSE;
    n = recv (r->cl->fd, buf + got, MIN (len - got, 2048), 0);
    if (n <= 0)
      return FALSE;
    got += n;
    r->bytes += n;
  }
  return TRUE;
}

/* What docs/protocol.md 11.3 states for a frame's age when the
 * subscriber holds all of it: encoded, at most MAX_QUEUE_WAIT_US in the
 * bridge's queue, then behind at most the socket's send buffer (two
 * frames at @bitrate, which the kernel doubles, plus one message in
 * flight) and itself at the reader's rate. */
static gint64
stated_bound_us (guint32 encode_us, gsize frame_bytes, guint32 bitrate,
    gdouble bytes_per_s)
{
  gsize sndbuf = CLAMP (bitrate / 8 / 30, 16 * 1024, 512 * 1024);

  return encode_us + MAX_QUEUE_WAIT_US + (gint64) ((3 * sndbuf + frame_bytes)
      / bytes_per_s * 1e6);
}

static void
slow_reader_run (SlowReader * r, guint32 bitrate)
{
  gint64 t_start = g_get_monotonic_time (), t_last = t_start;
  gboolean after_discont = FALSE;

  while (g_get_monotonic_time () < r->until) {
    guint8 h[12], fixed[HXFR_SCANOUT_FRAME_SIZE];
    HxfrScanoutFrame sf;
    guint32 size;
    guint8 *au;
    gint64 now, age, bound;

    if (!slow_read (r, h, 12, t_start)) {
      r->eof = TRUE;
      return;
    }
    size = le32 (h + 8);
    fail_unless (h[4] == HXFR_MSG_SCANOUT_FRAME, "the slow reader got "
        "type 0x%02x", h[4]);
    fail_unless (size > HXFR_SCANOUT_FRAME_SIZE && size < 16 << 20);
    au = g_malloc (size);
    if (!slow_read (r, au, size, t_start)) {
      g_free (au);
      r->eof = TRUE;
      return;
    }
    memcpy (fixed, au, sizeof (fixed));
    fail_unless (hxfr_scanout_frame_parse (fixed, sizeof (fixed), &sf, NULL));
    now = g_get_monotonic_time ();
    /* the bridge and this test share CLOCK_MONOTONIC */
    age = now - (gint64) (sf.capture_time / 1000);
    bound = stated_bound_us (sf.encode_us, size + 12, bitrate, r->bytes_per_s);
    r->worst_age_us = MAX (r->worst_age_us, age);
    r->worst_excess_us = MAX (r->worst_excess_us, age - bound);
    r->longest_gap_us = MAX (r->longest_gap_us, now - t_last);
    t_last = now;
    if (sf.frame_flags & HXFR_SCANOUT_FRAME_DISCONT) {
      after_discont = TRUE;
      if (!(sf.frame_flags & HXFR_SCANOUT_FRAME_KEYFRAME))
        r->discont_not_idr++;
    }
    r->frames_after_discont += after_discont;
    r->frames++;
    g_free (au);
  }
}

GST_START_TEST (test_slow_reader_is_skipped_not_cut_off)
{
  const gchar *vmm_args[] = { "--width", "64", "--height", "48",
    "--scanouts", "4", "--scanout", "1:640x480@60", NULL
  };
  const guint32 bitrate = 8000000;
  const gchar *bridge_args[] = { "--bitrate", "8000000", NULL };
  Env *e = env_start (vmm_args, "deployed", bridge_args);
  Reader *viewer;
  SlowReader slow = { 0, };
  guint base, during, from;
  guint64 rate_bytes;
  gint64 t0;

  if (!e)
    return;
  /* the stream's byte rate, from an honest v2 viewer's frames */
  viewer = streaming_reader (e, TRUE);
  from = reader_count (viewer);
  rate_bytes = 0;
  g_usleep (2 * G_USEC_PER_SEC);
  base = reader_count (viewer) - from;
  {
    /* the viewer keeps no access units: measure the rate on a second
     * subscriber read at full speed for 2 s */
    Cl *m = cl_connect (e);
    Frame f;

    fail_unless_equals_int (v2_subscribe (m, 1, NULL, NULL, NULL), 0);
    t0 = g_get_monotonic_time ();
    while (g_get_monotonic_time () - t0 < 2 * G_USEC_PER_SEC) {
      fail_unless_equals_int (v2_frame (m, &f, FRAME_TIMEOUT_US, NULL), RD_OK);
      rate_bytes += g_bytes_get_size (f.au) + 12 + HXFR_SCANOUT_FRAME_SIZE;
      frame_clear (&f);
    }
    cl_close (m);
  }

  /* a tenth of the stream's rate, for 30 s */
  slow.cl = cl_connect (e);
  slow.bytes_per_s = rate_bytes / 2.0 / 10;
  fail_unless_equals_int (v2_subscribe (slow.cl, 1, NULL, NULL, NULL), 0);
  from = reader_count (viewer);
  t0 = g_get_monotonic_time ();
  slow.until = t0 + 30 * G_USEC_PER_SEC;
  slow_reader_run (&slow, bitrate);
  during = reader_count (viewer) - from;

  g_printerr ("slow reader: stream %.0f kB/s, read at %.0f kB/s for "
      "%.1f s: %u frames, oldest %.0f ms at arrival, at most %.0f ms over "
      "the stated bound, longest gap %.0f ms, %u frames after a skip; the "
      "viewer %u frames in 2 s alone, %u in 30 s beside it\n",
      rate_bytes / 2.0 / 1000, slow.bytes_per_s / 1000,
      (g_get_monotonic_time () - t0) / 1e6, slow.frames,
      slow.worst_age_us / 1000.0, slow.worst_excess_us / 1000.0,
      slow.longest_gap_us / 1000.0, slow.frames_after_discont, base, during);
  fail_unless (rate_bytes / 2.0 > 300 * 1000, "the stream is only %.0f "
      "kB/s: not fast enough to need skipping", rate_bytes / 2.0 / 1000);
  fail_unless (!slow.eof, "the slow reader was cut off after %.1f s",
      (g_get_monotonic_time () - t0) / 1e6);
  fail_unless (slow.frames >= 30, "the slow reader got %u frames in 30 s",
      slow.frames);
  fail_unless (slow.frames_after_discont > 0, "it was never skipped: not "
      "slow?");
  fail_unless_equals_int (slow.discont_not_idr, 0);
  /* the stated bound, with a second for a busy machine's scheduling */
  fail_unless (slow.worst_excess_us < G_USEC_PER_SEC, "a frame arrived "
      "%.0f ms older than the stated bound (oldest %.0f ms)",
      slow.worst_excess_us / 1000.0, slow.worst_age_us / 1000.0);
  /* 15x the time: far more than the frames of 2 s */
  fail_unless (during >= base * 5, "the viewer's rate fell: %u frames in "
      "30 s, %u in 2 s alone", during, base);
  cl_close (slow.cl);
  reader_stop (viewer);
  env_stop (e);
}

GST_END_TEST;

/* ------------------------------------------------------------------ */
/* 3. One deadline for a first message                                 */

/* Sends the first @head bytes of @msg, waits @pause_us, sends the next
 * @more, and returns how long after the first byte the bridge closed. */
static gint64
trickled_first_message (Env * e, const guint8 * msg, gsize head, gsize more,
    gint64 pause_us)
{
  Cl *c = cl_connect (e);
  gint64 t0 = g_get_monotonic_time ();
  gint64 closed;

  fail_unless (cl_write (c, msg, head));
  g_usleep (pause_us);
  /* the bridge may have closed already: then the write fails, fine */
  cl_write (c, msg + head, more);
  fail_unless (wait_eof (c, 20 * G_USEC_PER_SEC), "never closed");
  closed = g_get_monotonic_time () - t0;
  cl_close (c);
  return closed;
}

GST_START_TEST (test_first_message_has_one_deadline)
{
  const gchar *vmm_args[] = STANDIN_ARGS ("60");
  const gchar *bridge_args[] = { "--idle-timeout", "2", NULL };
  Env *e = env_start (vmm_args, "deployed", bridge_args);
  guint8 subscribe[16], hello[12 + HXFR_HELLO_SIZE];
  HxfrHello h = { 2, 2, HXFR_CODEC_H264, 4, 0, 0, 30, 1, 0, 0 };
  gint64 dt_sub, dt_hello;
  Cl *c;

  if (!e)
    return;
  put_header (subscribe, 0x30, 1, 4);
  put_le32 (subscribe + 12, 1);
  put_header (hello, HXFR_MSG_HELLO, 1, HXFR_HELLO_SIZE);
  hxfr_hello_write (&h, hello + 12);

  /* half a header, the rest 1.8 s later, the payload never: the message
   * had 2 s from its first byte (before: 2 s more from its header) */
  dt_sub = trickled_first_message (e, subscribe, 6, 8, 1800 * 1000);
  dt_hello = trickled_first_message (e, hello, 6, 10, 1800 * 1000);
  g_printerr ("a first message trickled: closed %.2f s (SUBSCRIBE) and "
      "%.2f s (HELLO) after its first byte, --idle-timeout 2\n",
      dt_sub / 1e6, dt_hello / 1e6);
  fail_unless (dt_sub < 3 * G_USEC_PER_SEC, "SUBSCRIBE: %.2f s", dt_sub / 1e6);
  fail_unless (dt_hello < 3 * G_USEC_PER_SEC, "HELLO: %.2f s", dt_hello / 1e6);
  fail_unless (bridge_runner_wait_log (e->bridge, "a message begun was not "
          "whole within 2.0 s", 1, 10), "the scanout client's end reason");

  /* a subscribed client that stalls mid-message: not "silent" */
  c = cl_connect (e);
  fail_unless_equals_int (deployed_subscribe (c, 1), 1);
  fail_unless (cl_write (c, subscribe, 6));
  fail_unless (bridge_runner_wait_log (e->bridge, "a message begun was not "
          "whole within 2.0 s", 2, 10), "a subscribed client stalling "
      "mid-message: wrong end reason");
  fail_unless_equals_int (bridge_runner_count_log (e->bridge,
          "silent, not subscribed"), 0);
  cl_close (c);
  env_stop (e);
}

GST_END_TEST;

/* ------------------------------------------------------------------ */
/* 4. Log lines                                                         */

GST_START_TEST (test_token_less_log_lines_are_limited)
{
  const gchar *vmm_args[] = STANDIN_ARGS ("60");
  Env *e = env_start (vmm_args, "deployed", NULL);
  guint lines0, lines1, i;
  guint8 p[16];
  Cl *c;

  if (!e)
    return;
  lines0 = bridge_runner_count_log (e->bridge, "\n");
  c = cl_connect (e);
  fail_unless_equals_int (deployed_subscribe (c, 1), 1);
  {
    /* its answers and frames are read meanwhile */
    gint stop = 0;
    gpointer *args = g_new (gpointer, 2);
    GThread *drain;

    args[0] = c;
    args[1] = &stop;
    drain = g_thread_new ("drain", drain_thread, args);
    for (i = 0; i < 500; i++) {
      /* SUBSCRIBE to scanout 2 and back to 1, refused SUBSCRIBE 9,
       * refused ENABLE of scanout 0 */
      put_le32 (p, 2 - (i & 1));
      fail_unless (cl_send (c, 0x30, 2, p, 4, 4));
      put_le32 (p, 9);
      fail_unless (cl_send (c, 0x30, 9, p, 4, 4));
      put_le32 (p, 0);
      put_le32 (p + 4, 640);
      put_le32 (p + 8, 480);
      put_le32 (p + 12, 60);
      fail_unless (cl_send (c, 0x20, 0, p, 16, 16));
    }
    /* an honest PING answered: everything before it was handled */
    fail_unless (cl_send (c, 0x10, 5, NULL, 0, 0));
    g_usleep (G_USEC_PER_SEC);
    g_atomic_int_set (&stop, 1);
    g_thread_join (drain);
  }
  cl_close (c);
  fail_unless (bridge_runner_wait_log (e->bridge, "scanout client duration=",
          1, 10));
  lines1 = bridge_runner_count_log (e->bridge, "\n");
  g_printerr ("1500 SUBSCRIBE/ENABLE messages without a token: %u log "
      "lines\n", lines1 - lines0);
  /* a burst of 20, then one a second */
  fail_unless (lines1 - lines0 <= 40, "%u log lines for 1500 messages",
      lines1 - lines0);

  /* later, a line again, saying how many were not written */
  g_usleep (2 * G_USEC_PER_SEC);
  c = cl_connect (e);
  fail_unless_equals_int (deployed_subscribe (c, 1), 1);
  fail_unless (bridge_runner_wait_log (e->bridge, "(suppressed ", 1, 10),
      "no line says how many were suppressed");
  cl_close (c);
  env_stop (e);
}

GST_END_TEST;

/* ------------------------------------------------------------------ */
/* 5. Hotplugs                                                          */

/* ENABLE_SCANOUT (@enable) or DISABLE_SCANOUT of @index on @c, and its
 * SCANOUT_RESP's success */
static guint32
hotplug (Cl * c, guint32 index, gboolean enable)
{
  guint8 p[16];
  Msg m;
  guint32 success;

  put_le32 (p, index);
  put_le32 (p + 4, 320);
  put_le32 (p + 8, 240);
  put_le32 (p + 12, 60);
  fail_unless (cl_send (c, enable ? 0x20 : 0x21, 0, p, enable ? 16 : 4,
          enable ? 16 : 4));
  fail_unless_equals_int (rd_msg (c, &m, 10 * G_USEC_PER_SEC), RD_OK);
  fail_unless (m.type == 0x22, "answer to a hotplug: 0x%02x", m.type);
  fail_unless_equals_int (le32 (m.payload), index);
  success = le32 (m.payload + 4);
  msg_clear (&m);
  return success;
}

GST_START_TEST (test_repeated_hotplugs_are_limited)
{
  const gchar *vmm_args[] = STANDIN_ARGS ("60");
  Env *e = env_start (vmm_args, "deployed", NULL);
  guint i, enables;
  gint64 t0, dt;
  Cl *c;

  if (!e)
    return;
  c = cl_connect (e);
  /* the same ENABLE 200 times: one hotplug in the guest */
  for (i = 0; i < 200; i++)
    fail_unless_equals_int (hotplug (c, 2, TRUE), 1);
  fail_unless (standin_runner_wait_line (e->vmm, "HOTPLUG 2 enabled=1", 1, 10));
  enables = standin_runner_count_lines (e->vmm, "HOTPLUG 2 enabled=1");
  /* changes go through, one per half second */
  t0 = g_get_monotonic_time ();
  for (i = 0; i < 4; i++) {
    fail_unless_equals_int (hotplug (c, 2, FALSE), 1);
    fail_unless_equals_int (hotplug (c, 2, TRUE), 1);
  }
  dt = g_get_monotonic_time () - t0;
  g_printerr ("hotplugs: 200 identical ENABLEs made %u; 8 changes took "
      "%.1f s\n", enables, dt / 1e6);
  /* a second one may pass before the VMM's report of the first arrives */
  fail_unless (enables <= 2, "200 identical ENABLEs made %u hotplugs", enables);
  fail_unless (standin_runner_wait_line (e->vmm, "HOTPLUG 2 enabled=0", 4,
          10), "the changes did not all reach the VMM");
  fail_unless (dt >= 7 * 500 * 1000 - 50 * 1000, "8 hotplugs of one "
      "scanout in %.2f s", dt / 1e6);
  cl_close (c);
  env_stop (e);
}

GST_END_TEST;

static Suite *
scanout_hostile_suite (void)
{
  Suite *s = suite_create ("scanout-hostile");
  TCase *tc = tcase_create ("general");

  tcase_set_timeout (tc, 180);
  suite_add_tcase (s, tc);
  tcase_add_test (tc, test_resubscribe_and_churn_no_idr_flood);
  tcase_add_test (tc, test_joiners_get_an_idr_within_the_limit);
  tcase_add_test (tc, test_slow_reader_is_skipped_not_cut_off);
  tcase_add_test (tc, test_first_message_has_one_deadline);
  tcase_add_test (tc, test_token_less_log_lines_are_limited);
  tcase_add_test (tc, test_repeated_hotplugs_are_limited);
  return s;
}

GST_CHECK_MAIN (scanout_hostile);
