/* Scanout subscriptions end to end: the built helix-host-bridge (x264enc)
 * against the stand-in VMM (tests/standin/helix-standin-vmm), whose
 * scanouts page-flip the test pattern, subscribed to by
 * - a deployed helix client written here from ../shared/PROTOCOL-scanout.md
 *   (sections 2-5, 8, 12): raw socket reads of the 12-byte header, exactly
 *   as helix's Go ScanoutSource: SUBSCRIBE, one SUBSCRIBE_RESP within 5 s,
 *   then only FRAME_RESPONSE with nal_count 1 and payload_size 28 + nal_size;
 * - a v2 client (SUBSCRIBE2, lib/hxfr/hxfr-scanout.h) written here;
 * - the guest element vsockscanoutsrc.
 *
 * Every wait is bounded and waits for an event (a log line, a message, a
 * frame); rates are only compared as ratios with wide margins, for a busy
 * 2-core machine. Skipped (with a warning) where the stand-in is not built
 * or virglrenderer cannot start.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <gst/check/gstcheck.h>
#include <glib/gstdio.h>
#include <gst/app/gstappsrc.h>
#include <gst/app/gstappsink.h>
#include <gst/video/video.h>

#include "scanout-client.h"
#include "proc-stats.h"
#include "hxfr-protocol.h"
#include "../../standin/helix-test-pattern.h"

/* ------------------------------------------------------------------ */
/* 1. The deployed client                                               */

GST_START_TEST (test_deployed_stream)
{
  const gchar *vmm_args[] = STANDIN_ARGS ("60");
  Env *e = env_start (vmm_args, "deployed", NULL);
  GPtrArray *aus = g_ptr_array_new_with_free_func ((GDestroyNotify)
      g_bytes_unref);
  GPtrArray *decoded;
  guint64 flips0, flips1, n = 0, keyframes = 0;
  gint64 t_end, last_index = -1;
  Cl *c;
  Frame f;

  if (!e)
    return;
  c = cl_connect (e);
  fail_unless_equals_int (deployed_subscribe (c, 1), 1);
  fail_unless_equals_int (deployed_frame (c, &f, FRAME_TIMEOUT_US), RD_OK);
  /* the first frame: an IDR, SPS then PPS in front (4-byte start codes) */
  fail_unless (f.keyframe, "first frame is not flagged a keyframe");
  check_au (&f);
  fail_unless_equals_int (f.session_id, 1);
  {
    GArray *nals = au_nals (f.au);
    guint i = 0, w = 0, h = 0;

    /* an AUD first would still do for helix's client: noted apart */
    while (i < nals->len && g_array_index (nals, Nal, i).type == 9)
      i++;
    fail_unless (i + 1 < nals->len
        && g_array_index (nals, Nal, i).type == 7
        && g_array_index (nals, Nal, i + 1).type == 8,
        "the first frame does not begin with SPS, PPS");
    g_array_unref (nals);
    fail_unless (au_sps_size (f.au, &w, &h));
    fail_unless_equals_int (w, SW);
    fail_unless_equals_int (h, SH);
  }
  g_ptr_array_add (aus, g_bytes_ref (f.au));
  last_index = deployed_index (&f);
  frame_clear (&f);

  /* about 2 s of a 60 Hz scanout */
  flips0 = flips (e, 1);
  t_end = g_get_monotonic_time () + 2 * G_USEC_PER_SEC;
  while (g_get_monotonic_time () < t_end) {
    fail_unless_equals_int (deployed_frame (c, &f, FRAME_TIMEOUT_US), RD_OK);
    check_au (&f);
    fail_unless_equals_int (f.session_id, 1);
    /* pts: a frame counter at 60 fps, increasing */
    fail_unless (deployed_index (&f) > last_index, "pts went back");
    last_index = deployed_index (&f);
    keyframes += f.keyframe;
    n++;
    if (aus->len < 90)
      g_ptr_array_add (aus, g_bytes_ref (f.au));
    frame_clear (&f);
  }
  flips1 = flips (e, 1);
  GST_INFO ("deployed subscriber: %" G_GUINT64_FORMAT " frames (%"
      G_GUINT64_FORMAT " keyframes) for %" G_GUINT64_FORMAT " flips: %.2f",
      n, keyframes, flips1 - flips0, (gdouble) n / (flips1 - flips0));
  g_printerr ("deployed: delivered/flipped = %" G_GUINT64_FORMAT "/%"
      G_GUINT64_FORMAT " = %.2f\n", n, flips1 - flips0,
      (gdouble) n / MAX (1, flips1 - flips0));
  fail_unless (flips1 - flips0 >= 20, "the stand-in hardly flipped");
  /* one frame in the encoder, a newer flush replacing a waiting one:
   * fewer than flipped on a busy machine, never many more */
  fail_unless (n * 5 >= flips1 - flips0, "delivered %" G_GUINT64_FORMAT
      " of %" G_GUINT64_FORMAT " flips", n, flips1 - flips0);
  fail_unless (n <= (flips1 - flips0) * 3 / 2 + 5, "more frames than flips");

  decoded = decode_aus (aus);
  fail_unless_equals_int (decoded->len, aus->len);
  check_pattern (decoded, 1, flips1 + 5);
  g_ptr_array_unref (decoded);
  g_ptr_array_unref (aus);
  cl_close (c);
  env_stop (e);
}

GST_END_TEST;

/* PROTOCOL-scanout.md 4.3: the deployed host's keyframes begin with SPS,
 * and every start code is 4 bytes (VideoToolbox's length prefixes
 * converted; no AUD). Stricter than what helix's Go client needs. */
GST_START_TEST (test_deployed_au_framing_as_deployed)
{
  const gchar *vmm_args[] = STANDIN_ARGS ("60");
  Env *e = env_start (vmm_args, "deployed", NULL);
  Cl *c;
  guint i, j, first_types = 0;
  gboolean first_nal_sps = TRUE, all4 = TRUE;

  if (!e)
    return;
  c = cl_connect (e);
  fail_unless_equals_int (deployed_subscribe (c, 1), 1);
  for (i = 0; i < 30; i++) {
    Frame f;
    GArray *n;

    fail_unless_equals_int (deployed_frame (c, &f, FRAME_TIMEOUT_US), RD_OK);
    n = au_nals (f.au);
    if (f.keyframe && g_array_index (n, Nal, 0).type != 7) {
      first_nal_sps = FALSE;
      first_types = g_array_index (n, Nal, 0).type;
    }
    for (j = 0; j < n->len; j++)
      all4 &= g_array_index (n, Nal, j).start_code == 4;
    g_array_unref (n);
    frame_clear (&f);
  }
  cl_close (c);
  env_stop (e);
  fail_unless (first_nal_sps, "a keyframe begins with NAL type %u, not SPS",
      first_types);
  fail_unless (all4, "3-byte start codes in the access units");
}

GST_END_TEST;

/* ------------------------------------------------------------------ */
/* 2. Static screen                                                     */

GST_START_TEST (test_static_screen_repeats)
{
  const gchar *vmm_args[] = STANDIN_ARGS ("60");
  const gchar *bridge_args[] = { "--scanout-quiet-interval", "0.2", NULL };
  Env *e = env_start (vmm_args, "deployed", bridge_args);
  Cl *c, *d;
  Frame f;
  Reader *dep;
  gint64 t0, t_end;
  guint n = 0, repeats = 0, dn;

  if (!e)
    return;
  c = cl_connect (e);
  fail_unless_equals_int (v2_subscribe (c, 1, NULL, NULL, NULL), 0);
  d = cl_connect (e);
  fail_unless_equals_int (deployed_subscribe (d, 1), 1);
  dep = reader_start (d, FALSE);
  fail_unless_equals_int (v2_frame (c, &f, FRAME_TIMEOUT_US, NULL), RD_OK);
  fail_unless (f.keyframe);
  frame_clear (&f);
  standin_runner_command_expect (e->vmm, "rate 1 0", "RATE 1 hz=0");
  /* frames of flips before the rate change may still come: up to the
   * first repeat */
  do {
    fail_unless_equals_int (v2_frame (c, &f, FRAME_TIMEOUT_US, NULL), RD_OK);
    check_au (&f);
    repeats = f.flags & HXFR_SCANOUT_FRAME_REPEAT;
    frame_clear (&f);
  } while (!repeats);
  /* 3 s of a static screen: one frame each 0.2 s, each a REPEAT */
  dn = reader_count (dep);
  t0 = g_get_monotonic_time ();
  t_end = t0 + 3 * G_USEC_PER_SEC;
  repeats = 0;
  while (g_get_monotonic_time () < t_end) {
    fail_unless_equals_int (v2_frame (c, &f, 2 * G_USEC_PER_SEC, NULL), RD_OK);
    check_au (&f);
    n++;
    if (f.flags & HXFR_SCANOUT_FRAME_REPEAT)
      repeats++;
    fail_unless_equals_int (f.width, SW);
    frame_clear (&f);
  }
  dn = reader_count (dep) - dn;
  g_printerr ("static screen, quiet interval 0.2 s: %u v2 frames (%u "
      "REPEAT), %u deployed, in 3 s\n", n, repeats, dn);
  /* 15 expected; wide margins for a busy machine */
  fail_unless (n >= 6 && n <= 25, "%u frames in 3 s", n);
  fail_unless_equals_int (repeats, n);
  fail_unless (dn >= 6 && dn <= 25, "deployed: %u frames in 3 s", dn);
  reader_stop (dep);
  cl_close (c);
  env_stop (e);
}

GST_END_TEST;

/* ------------------------------------------------------------------ */
/* 3. Late joiners                                                      */

/* Subscribes (deployed or v2) and returns how long its first frame took;
 * fails unless that frame is an IDR. */
static gint64
join_first_frame_us (Env * e, gboolean v2, Cl ** out)
{
  Cl *c = cl_connect (e);
  gint64 t0 = g_get_monotonic_time ();
  Frame f;

  if (v2) {
    fail_unless_equals_int (v2_subscribe (c, 1, NULL, NULL, NULL), 0);
    fail_unless_equals_int (v2_frame (c, &f, 10 * G_USEC_PER_SEC, NULL), RD_OK);
    fail_unless (f.flags & HXFR_SCANOUT_FRAME_DISCONT || f.seq == 0);
  } else {
    fail_unless_equals_int (deployed_subscribe (c, 1), 1);
    fail_unless_equals_int (deployed_frame (c, &f, 10 * G_USEC_PER_SEC), RD_OK);
  }
  fail_unless (f.keyframe, "a late joiner's first frame is not an IDR");
  check_au (&f);
  fail_unless (au_has_idr (f.au));
  frame_clear (&f);
  *out = c;
  return g_get_monotonic_time () - t0;
}

GST_START_TEST (test_late_joiner)
{
  const gchar *vmm_args[] = STANDIN_ARGS ("60");
  const gchar *bridge_args[] = { "--scanout-quiet-interval", "30", NULL };
  Env *e = env_start (vmm_args, "deployed", bridge_args);
  Cl *a, *b, *c, *d;
  Reader *ra;
  gint64 dt;
  guint n;

  if (!e)
    return;
  a = cl_connect (e);
  fail_unless_equals_int (deployed_subscribe (a, 1), 1);
  ra = reader_start (a, FALSE);
  fail_unless (reader_wait (ra, 30, 20), "the first subscriber gets nothing");

  /* a running scanout */
  dt = join_first_frame_us (e, FALSE, &b);
  g_printerr ("late joiner (running, deployed): IDR after %.0f ms\n",
      dt / 1000.0);
  fail_unless (dt < 3 * G_USEC_PER_SEC);
  cl_close (b);

  /* a static screen: nothing flips, the quiet interval is 30 s away */
  standin_runner_command_expect (e->vmm, "rate 1 0", "RATE 1 hz=0");
  /* the first subscriber's frames stop (what was in flight arrives) */
  do {
    n = reader_count (ra);
    g_usleep (500 * 1000);
  } while (reader_count (ra) != n);
  dt = join_first_frame_us (e, TRUE, &c);
  g_printerr ("late joiner (static, v2): IDR after %.0f ms\n", dt / 1000.0);
  fail_unless (dt < 3 * G_USEC_PER_SEC, "%.1f s", dt / 1e6);
  dt = join_first_frame_us (e, FALSE, &d);
  g_printerr ("late joiner (static, deployed): IDR after %.0f ms\n",
      dt / 1000.0);
  fail_unless (dt < 3 * G_USEC_PER_SEC, "%.1f s", dt / 1e6);
  cl_close (c);
  cl_close (d);
  reader_stop (ra);
  env_stop (e);
}

GST_END_TEST;

/* ------------------------------------------------------------------ */
/* 4. Resize                                                            */

GST_START_TEST (test_resize)
{
  const gchar *vmm_args[] = STANDIN_ARGS ("60");
  Env *e = env_start (vmm_args, "deployed", NULL);
  Cl *v, *d;
  Frame f;
  HxfrSubscribe2Ack ack;
  guint w = 0, h = 0, i;
  gboolean seen;

  if (!e)
    return;
  v = cl_connect (e);
  fail_unless_equals_int (v2_subscribe (v, 1, NULL, &ack, NULL), 0);
  fail_unless_equals_int (ack.width, SW);
  fail_unless_equals_int (ack.height, SH);
  d = cl_connect (e);
  fail_unless_equals_int (deployed_subscribe (d, 1), 1);
  fail_unless_equals_int (v2_frame (v, &f, FRAME_TIMEOUT_US, NULL), RD_OK);
  fail_unless (f.keyframe);
  fail_unless_equals_int (f.width, SW);
  frame_clear (&f);

  standin_runner_command_expect (e->vmm, "resize 1 320 240",
      "SCANOUT 1 enabled=1");
  /* v2: frames of the old size may still come; the first of the new size
   * is an IDR whose SPS says 320x240, and so are the rest */
  for (i = 0, seen = FALSE; i < 200; i++) {
    fail_unless_equals_int (v2_frame (v, &f, FRAME_TIMEOUT_US, NULL), RD_OK);
    check_au (&f);
    if (f.width != SW || seen) {
      fail_unless_equals_int (f.width, 320);
      fail_unless_equals_int (f.height, 240);
      if (!seen) {
        fail_unless (f.keyframe, "first 320x240 frame is not an IDR");
        fail_unless (au_sps_size (f.au, &w, &h));
        fail_unless_equals_int (w, 320);
        fail_unless_equals_int (h, 240);
      }
      if (seen && i > 100) {
        frame_clear (&f);
        break;
      }
      seen = TRUE;
    } else {
      fail_unless_equals_int (f.height, SH);
    }
    frame_clear (&f);
  }
  fail_unless (seen, "no 320x240 frame after the resize");
  /* deployed: no size on the wire, only the SPS of an IDR */
  for (i = 0, seen = FALSE; i < 200 && !seen; i++) {
    fail_unless_equals_int (deployed_frame (d, &f, FRAME_TIMEOUT_US), RD_OK);
    check_au (&f);
    if (f.keyframe && au_sps_size (f.au, &w, &h) && w == 320) {
      fail_unless_equals_int (h, 240);
      seen = TRUE;
    }
    frame_clear (&f);
  }
  fail_unless (seen, "the deployed subscriber got no 320x240 SPS");
  cl_close (v);
  cl_close (d);
  env_stop (e);
}

GST_END_TEST;

/* ------------------------------------------------------------------ */
/* 5. Enable / disable                                                  */

/* ENABLE_SCANOUT as helix-drm-manager sends it on a short connection;
 * returns success, checks the connector name. */
static guint32
deployed_enable (Env * e, guint32 index, guint32 w, guint32 h)
{
  Cl *c = cl_connect (e);
  guint8 p[16];
  Msg m;
  guint32 success;
  gchar *want = g_strdup_printf ("Virtual-%u", index + 1);

  put_le32 (p, index);
  put_le32 (p + 4, w);
  put_le32 (p + 8, h);
  put_le32 (p + 12, 60);
  fail_unless (cl_send (c, 0x20, 0, p, 16, 16));
  fail_unless_equals_int (rd_msg (c, &m, 10 * G_USEC_PER_SEC), RD_OK);
  fail_unless (m.type == 0x22, "answer to ENABLE_SCANOUT: 0x%02x", m.type);
  fail_unless_equals_int (m.size, 72);
  fail_unless_equals_int (m.session_id, 0);
  fail_unless_equals_int (le32 (m.payload), index);
  success = le32 (m.payload + 4);
  m.payload[72] = 0;
  fail_unless_equals_string ((gchar *) m.payload + 8, want);
  msg_clear (&m);
  g_free (want);
  cl_close (c);
  return success;
}

GST_START_TEST (test_enable_disable)
{
  const gchar *vmm_args[] = STANDIN_ARGS ("60");
  const gchar *bridge_args[] = { "--scanout-quiet-interval", "0.2", NULL };
  Env *e = env_start (vmm_args, "deployed", bridge_args);
  Cl *v, *v2c, *dis;
  Frame f;
  gint32 reason;
  guint8 p[4];
  Msg m;
  Rd rd;
  guint i;

  if (!e)
    return;
  /* a v2 subscriber of a disabled scanout: ERROR -13 */
  v = cl_connect (e);
  fail_unless_equals_int (v2_subscribe (v, 2, NULL, NULL, NULL),
      HXFR_ERR_NO_SCANOUT);
  cl_close (v);

  fail_unless_equals_int (deployed_enable (e, 2, 320, 240), 1);
  fail_unless (standin_runner_wait_line (e->vmm, "HOTPLUG 2 enabled=1 "
          "320x240", 1, 10), "the stand-in saw no hotplug");
  fail_unless_equals_int (deployed_enable (e, 0, 320, 240), 0);
  fail_unless_equals_int (deployed_enable (e, 3, 100000, 100000), 0);
  fail_unless_equals_int (deployed_enable (e, 3, 0, 240), 0);
  fail_unless_equals_int (standin_runner_count_lines (e->vmm, "HOTPLUG 0"), 0);
  fail_unless_equals_int (standin_runner_count_lines (e->vmm, "HOTPLUG 3"), 0);

  /* v2 subscribers of the hotplugged scanout 2 and of scanout 1 */
  v2c = cl_connect (e);
  fail_unless_equals_int (v2_subscribe (v2c, 2, NULL, NULL, NULL), 0);
  fail_unless_equals_int (v2_frame (v2c, &f, FRAME_TIMEOUT_US, NULL), RD_OK);
  fail_unless (f.keyframe);
  fail_unless_equals_int (f.width, 320);
  frame_clear (&f);
  v = cl_connect (e);
  fail_unless_equals_int (v2_subscribe (v, 1, NULL, NULL, NULL), 0);
  fail_unless_equals_int (v2_frame (v, &f, FRAME_TIMEOUT_US, NULL), RD_OK);
  frame_clear (&f);

  /* DISABLE_SCANOUT 2 (helix-drm-manager: a new connection, waits 10 s
   * for an answer): SCANOUT_RESP on a connection that has not subscribed */
  dis = cl_connect (e);
  put_le32 (p, 2);
  fail_unless (cl_send (dis, 0x21, 0, p, 4, 4));
  fail_unless_equals_int (rd_msg (dis, &m, 10 * G_USEC_PER_SEC), RD_OK);
  fail_unless_equals_int (m.type, 0x22);
  fail_unless_equals_int (le32 (m.payload), 2);
  fail_unless_equals_int (le32 (m.payload + 4), 1);
  msg_clear (&m);
  cl_close (dis);
  fail_unless (standin_runner_wait_line (e->vmm, "HOTPLUG 2 enabled=0", 1, 10));
  for (i = 0; i < 200; i++) {
    rd = v2_frame (v2c, &f, FRAME_TIMEOUT_US, &reason);
    frame_clear (&f);
    if (rd != RD_OK)
      break;
  }
  fail_unless_equals_int (rd, RD_EOF);
  fail_unless_equals_int (reason, HXFR_SCANOUT_END_DISABLED);
  fail_unless (wait_eof (v2c, 5 * G_USEC_PER_SEC));
  cl_close (v2c);

  /* the VMM disables scanout 1 itself */
  standin_runner_command_expect (e->vmm, "scanout 1 disable",
      "SCANOUT 1 enabled=0");
  for (i = 0; i < 400; i++) {
    rd = v2_frame (v, &f, FRAME_TIMEOUT_US, &reason);
    frame_clear (&f);
    if (rd != RD_OK)
      break;
  }
  fail_unless_equals_int (rd, RD_EOF);
  fail_unless_equals_int (reason, HXFR_SCANOUT_END_DISABLED);
  cl_close (v);
  env_stop (e);
}

GST_END_TEST;

/* ------------------------------------------------------------------ */
/* 6. Several subscribers and a slow one                                */

/* The frames @r got after its pause: every frame after a loss is an IDR
 * (deployed: a gap in the frame counter; v2: DISCONT set). Returns the
 * frames lost. */
static guint
check_after_loss (Reader * r, guint from)
{
  guint i, lost = 0;

  g_mutex_lock (&r->lock);
  for (i = MAX (from, 1); i < r->frames->len; i++) {
    Frame *prev = &g_array_index (r->frames, Frame, i - 1);
    Frame *f = &g_array_index (r->frames, Frame, i);

    if (r->v2) {
      fail_unless_equals_int (f->seq, prev->seq + 1);
      if (f->flags & HXFR_SCANOUT_FRAME_DISCONT) {
        lost++;
        fail_unless (f->keyframe, "v2 frame %u after a loss (DISCONT) is "
            "not an IDR", i);
      }
    } else {
      gint64 gap = deployed_index (f) - deployed_index (prev);

      fail_unless (gap >= 1, "deployed frame counter went back");
      if (gap > 1) {
        lost += gap - 1;
        fail_unless (f->keyframe, "deployed frame %u after %" G_GINT64_FORMAT
            " lost frames is a P-frame", i, gap - 1);
      }
    }
  }
  g_mutex_unlock (&r->lock);
  return lost;
}

GST_START_TEST (test_slow_subscriber)
{
  const gchar *vmm_args[] = { "--width", "64", "--height", "48",
    "--scanouts", "4", "--scanout", "1:320x240@60", NULL
  };
  Env *e = env_start (vmm_args, "deployed", NULL);
  Reader *rs[4];
  GstElement *pipe;
  GstElement *sink;
  gchar *desc;
  guint base[4], during[4], from_slow, from_slow2, lost;
  Cl *c;
  gint i;

  if (!e)
    return;
  /* A: deployed, B: v2, C: deployed, slow, D: v2, slow */
  c = cl_connect (e);
  fail_unless_equals_int (deployed_subscribe (c, 1), 1);
  rs[0] = reader_start (c, FALSE);
  c = cl_connect (e);
  fail_unless_equals_int (v2_subscribe (c, 1, NULL, NULL, NULL), 0);
  rs[1] = reader_start (c, TRUE);
  c = cl_connect (e);
  fail_unless_equals_int (deployed_subscribe (c, 1), 1);
  rs[2] = reader_start (c, FALSE);
  c = cl_connect (e);
  fail_unless_equals_int (v2_subscribe (c, 1, NULL, NULL, NULL), 0);
  rs[3] = reader_start (c, TRUE);
  /* E: vsockscanoutsrc */
  desc = g_strdup_printf ("vsockscanoutsrc address=%s scanout=1 ! fakesink "
      "name=sink sync=false signal-handoffs=false",
      bridge_runner_get_address (e->bridge));
  pipe = gst_parse_launch (desc, NULL);
  g_free (desc);
  fail_unless (pipe != NULL);
  sink = gst_bin_get_by_name (GST_BIN (pipe), "sink");
  fail_unless (gst_element_set_state (pipe, GST_STATE_PLAYING) !=
      GST_STATE_CHANGE_FAILURE);
  for (i = 0; i < 4; i++)
    fail_unless (reader_wait (rs[i], 20, 20), "subscriber %d gets nothing", i);

  count_window (rs, 4, 2.0, base);
  reader_pause (rs[2], TRUE);
  reader_pause (rs[3], TRUE);
  count_window (rs, 2, 4.0, during);
  g_printerr ("slow subscribers: undisturbed %u/%u frames in 2 s, %u/%u in "
      "4 s while two do not read\n", base[0], base[1], during[0], during[1]);
  for (i = 0; i < 2; i++)
    /* 2x the time: about 2x the frames; at least 0.5 of that */
    fail_unless (during[i] >= base[i], "subscriber %d: %u frames in 4 s "
        "with slow neighbours, %u in 2 s undisturbed", i, during[i], base[i]);
  from_slow = reader_count (rs[2]);
  from_slow2 = reader_count (rs[3]);
  reader_pause (rs[2], FALSE);
  reader_pause (rs[3], FALSE);
  fail_unless (reader_wait (rs[2], from_slow + 60, 20));
  fail_unless (reader_wait (rs[3], from_slow2 + 60, 20));
  lost = check_after_loss (rs[2], from_slow);
  g_printerr ("deployed slow subscriber: %u frames lost, resumed on an "
      "IDR\n", lost);
  fail_unless (lost > 0, "the slow subscriber lost nothing: not slow?");
  lost = check_after_loss (rs[3], from_slow2);
  fail_unless (lost > 0, "the v2 slow subscriber saw no DISCONT");
  /* and the whole streams of the others: never a P-frame after a loss */
  check_after_loss (rs[0], 0);
  check_after_loss (rs[1], 0);

  {
    GstStructure *st = NULL;
    guint64 frames = 0;
    GstElement *src = gst_bin_get_by_name (GST_BIN (pipe),
        "vsockscanoutsrc0");

    g_object_get (src, "stats", &st, NULL);
    gst_structure_get_uint64 (st, "frames", &frames);
    fail_unless (frames > 60, "vsockscanoutsrc: %" G_GUINT64_FORMAT
        " frames", frames);
    gst_structure_free (st);
    gst_object_unref (src);
  }
  gst_element_set_state (pipe, GST_STATE_NULL);
  gst_object_unref (sink);
  gst_object_unref (pipe);
  for (i = 0; i < 4; i++)
    reader_stop (rs[i]);
  env_stop (e);
}

GST_END_TEST;

/* A subscriber that never reads: ended after the write timeout, the
 * bridge's memory bounded, the others unaffected. */
GST_START_TEST (test_never_reading_subscriber)
{
  const gchar *vmm_args[] = { "--width", "64", "--height", "48",
    "--scanouts", "4", "--scanout", "1:320x240@60", NULL
  };
  Env *e = env_start (vmm_args, "deployed", NULL);
  Reader *ra;
  Cl *a, *dead;
  guint base, during, rss0, rss1;

  if (!e)
    return;
  a = cl_connect (e);
  fail_unless_equals_int (deployed_subscribe (a, 1), 1);
  ra = reader_start (a, FALSE);
  fail_unless (reader_wait (ra, 20, 20));
  count_window (&ra, 1, 2.0, &base);
  rss0 = proc_rss_kb (bridge_runner_get_pid (e->bridge));
  dead = cl_connect (e);
  /* its SUBSCRIBE_RESP is the one thing it reads */
  fail_unless_equals_int (deployed_subscribe (dead, 1), 1);
  count_window (&ra, 1, 4.0, &during);
  fail_unless (bridge_runner_wait_log (e->bridge, "does not read", 1, 30),
      "the subscriber that does not read was not ended");
  rss1 = proc_rss_kb (bridge_runner_get_pid (e->bridge));
  g_printerr ("never-reading subscriber: the other got %u frames in 2 s "
      "before, %u in 4 s after; bridge RSS %u -> %u KiB\n", base, during,
      rss0, rss1);
  fail_unless (during >= base, "the reading subscriber slowed down");
  fail_unless (rss1 < rss0 + 64 * 1024, "bridge RSS grew by %u KiB",
      rss1 - rss0);
  fail_unless (wait_eof (dead, 10 * G_USEC_PER_SEC),
      "its connection was not closed");
  cl_close (dead);
  fail_unless (!ra->eof);
  reader_stop (ra);
  env_stop (e);
}

GST_END_TEST;

/* ------------------------------------------------------------------ */
/* 7. The guest element                                                 */

GST_START_TEST (test_guest_element)
{
  const gchar *vmm_args[] = STANDIN_ARGS ("60");
  Env *e = env_start (vmm_args, NULL, NULL);
  GPtrArray *decoded;
  GstElement *pipe, *sink;
  GstClockTime last = GST_CLOCK_TIME_NONE;
  gchar *desc;
  guint i;

  if (!e)
    return;
  desc = g_strdup_printf ("vsockscanoutsrc address=%s scanout=1 ! h264parse "
      "! avdec_h264 ! videoconvert ! video/x-raw,format=I420 ! appsink "
      "name=sink sync=false max-buffers=100",
      bridge_runner_get_address (e->bridge));
  pipe = gst_parse_launch (desc, NULL);
  g_free (desc);
  fail_unless (pipe != NULL);
  sink = gst_bin_get_by_name (GST_BIN (pipe), "sink");
  fail_unless (gst_element_set_state (pipe, GST_STATE_PLAYING) !=
      GST_STATE_CHANGE_FAILURE);
  decoded = g_ptr_array_new_with_free_func ((GDestroyNotify)
      gst_sample_unref);
  for (i = 0; i < 40; i++) {
    GstSample *s = gst_app_sink_try_pull_sample (GST_APP_SINK (sink),
        20 * GST_SECOND);
    GstStructure *st;
    gint w = 0, h = 0;
    GstClockTime pts;

    fail_unless (s != NULL, "no decoded frame %u", i);
    st = gst_caps_get_structure (gst_sample_get_caps (s), 0);
    gst_structure_get_int (st, "width", &w);
    gst_structure_get_int (st, "height", &h);
    fail_unless_equals_int (w, SW);
    fail_unless_equals_int (h, SH);
    pts = GST_BUFFER_PTS (gst_sample_get_buffer (s));
    fail_unless (GST_CLOCK_TIME_IS_VALID (pts));
    fail_unless (!GST_CLOCK_TIME_IS_VALID (last) || pts > last,
        "PTS did not increase");
    last = pts;
    g_ptr_array_add (decoded, s);
  }
  check_pattern (decoded, 1, flips (e, 1) + 5);
  g_ptr_array_unref (decoded);
  gst_element_set_state (pipe, GST_STATE_NULL);
  gst_object_unref (sink);
  gst_object_unref (pipe);
  env_stop (e);
}

GST_END_TEST;

/* The same scanout in H.264, H.265 and AV1 at once (a bridge with its
 * automatic encoders: x264enc, x265enc, av1enc): each subscriber gets its
 * codec's caps, from its own encoder (the host-encoder it was told), and
 * decodes to the scanout's pattern at 30 dB or better. */
GST_START_TEST (test_guest_element_codecs)
{
  static const struct
  {
    const gchar *codec, *chain, *media_type, *encoder;
  } c[] = {
    {"h264", "h264parse ! avdec_h264", "video/x-h264", "x264enc"},
    {"h265", "h265parse ! avdec_h265", "video/x-h265", "x265enc"},
    {"av1", "av1parse ! av1dec", "video/x-av1", "av1enc"},
  };
  const gchar *vmm_args[] = STANDIN_ARGS ("60");
  const gchar *bridge_args[] = { "--encoder", "auto", NULL };
  Env *e = env_start (vmm_args, NULL, bridge_args);
  GstElement *pipe[G_N_ELEMENTS (c)], *sink[G_N_ELEMENTS (c)];
  GPtrArray *decoded[G_N_ELEMENTS (c)];
  guint i, k;

  if (!e)
    return;
  for (k = 0; k < G_N_ELEMENTS (c); k++) {
    gchar *desc = g_strdup_printf ("vsockscanoutsrc name=src address=%s "
        "scanout=1 codec=%s ! %s ! videoconvert ! video/x-raw,format=I420 ! "
        "appsink name=sink sync=false max-buffers=100",
        bridge_runner_get_address (e->bridge), c[k].codec, c[k].chain);

    pipe[k] = gst_parse_launch (desc, NULL);
    fail_unless (pipe[k] != NULL, "%s", desc);
    g_free (desc);
    sink[k] = gst_bin_get_by_name (GST_BIN (pipe[k]), "sink");
    decoded[k] = g_ptr_array_new_with_free_func ((GDestroyNotify)
        gst_sample_unref);
    fail_unless (gst_element_set_state (pipe[k], GST_STATE_PLAYING) !=
        GST_STATE_CHANGE_FAILURE);
  }
  for (i = 0; i < 20; i++)
    for (k = 0; k < G_N_ELEMENTS (c); k++) {
      GstSample *s = gst_app_sink_try_pull_sample (GST_APP_SINK (sink[k]),
          20 * GST_SECOND);

      fail_unless (s != NULL, "%s: no decoded frame %u", c[k].codec, i);
      g_ptr_array_add (decoded[k], s);
    }
  for (k = 0; k < G_N_ELEMENTS (c); k++) {
    GstElement *src = gst_bin_get_by_name (GST_BIN (pipe[k]), "src");
    GstPad *pad = gst_element_get_static_pad (src, "src");
    GstCaps *caps = gst_pad_get_current_caps (pad);
    GstStructure *stats = NULL;

    fail_unless (caps != NULL);
    fail_unless (gst_structure_has_name (gst_caps_get_structure (caps, 0),
            c[k].media_type), "%s: %" GST_PTR_FORMAT, c[k].codec, caps);
    g_object_get (src, "stats", &stats, NULL);
    fail_unless_equals_string (gst_structure_get_string (stats,
            "host-encoder"), c[k].encoder);
    check_pattern (decoded[k], 1, flips (e, 1) + 5);
    g_print ("scanout 1 as %s: %u frames from %s decoded to the pattern\n",
        c[k].codec, decoded[k]->len, c[k].encoder);
    gst_structure_free (stats);
    gst_caps_unref (caps);
    gst_object_unref (pad);
    gst_object_unref (src);
  }
  for (k = 0; k < G_N_ELEMENTS (c); k++) {
    gst_element_set_state (pipe[k], GST_STATE_NULL);
    gst_object_unref (sink[k]);
    gst_object_unref (pipe[k]);
    g_ptr_array_unref (decoded[k]);
  }
  env_stop (e);
}

GST_END_TEST;

static GstElement *
start_guest (Env * e, const gchar * codec_and_chain, GstElement ** sink)
{
  gchar *desc = g_strdup_printf ("vsockscanoutsrc address=%s scanout=1 %s ! "
      "videoconvert ! video/x-raw,format=I420 ! appsink name=sink "
      "sync=false max-buffers=100", bridge_runner_get_address (e->bridge),
      codec_and_chain);
  GstElement *pipe = gst_parse_launch (desc, NULL);

  fail_unless (pipe != NULL, "%s", desc);
  g_free (desc);
  *sink = gst_bin_get_by_name (GST_BIN (pipe), "sink");
  fail_unless (gst_element_set_state (pipe, GST_STATE_PLAYING) !=
      GST_STATE_CHANGE_FAILURE);
  return pipe;
}

/* Renditions by size: a subscriber asking at most 80x60 of a 160x120
 * scanout gets 80x60 (caps, and each frame's size), its own encoder,
 * while another gets the full size from the same flips; scaled back up,
 * its frames are the scanout's pattern at 30 dB or better. */
GST_START_TEST (test_renditions_by_size)
{
  const gchar *vmm_args[] = STANDIN_ARGS ("60");
  Env *e = env_start (vmm_args, NULL, NULL);
  GstElement *full, *small, *sink_full, *sink_small;
  GPtrArray *decoded = g_ptr_array_new_with_free_func ((GDestroyNotify)
      gst_sample_unref);
  GstVideoInfo info;
  GstSample *s;
  guint i;

  if (!e)
    return;
  full = start_guest (e, "! h264parse ! avdec_h264", &sink_full);
  small = start_guest (e, "max-width=80 max-height=60 ! h264parse ! "
      "avdec_h264 ! identity name=scaled ! videoscale ! "
      "video/x-raw,width=160,height=120", &sink_small);
  for (i = 0; i < 20; i++) {
    s = gst_app_sink_try_pull_sample (GST_APP_SINK (sink_full),
        20 * GST_SECOND);
    fail_unless (s != NULL, "full size: no decoded frame %u", i);
    fail_unless (gst_video_info_from_caps (&info, gst_sample_get_caps (s)));
    fail_unless_equals_int (info.width, 160);
    gst_sample_unref (s);
    s = gst_app_sink_try_pull_sample (GST_APP_SINK (sink_small),
        20 * GST_SECOND);
    fail_unless (s != NULL, "80x60: no decoded frame %u", i);
    g_ptr_array_add (decoded, s);
  }
  {
    GstElement *scaled = gst_bin_get_by_name (GST_BIN (small), "scaled");
    GstPad *pad = gst_element_get_static_pad (scaled, "src");
    GstCaps *caps = gst_pad_get_current_caps (pad);

    fail_unless (gst_video_info_from_caps (&info, caps));
    g_print ("max-width=80 max-height=60 of a 160x120 scanout: decoded at "
        "%dx%d\n", info.width, info.height);
    fail_unless_equals_int (info.width, 80);
    fail_unless_equals_int (info.height, 60);
    gst_caps_unref (caps);
    gst_object_unref (pad);
    gst_object_unref (scaled);
  }
  check_pattern (decoded, 1, flips (e, 1) + 5);
  g_ptr_array_unref (decoded);
  gst_element_set_state (full, GST_STATE_NULL);
  gst_element_set_state (small, GST_STATE_NULL);
  gst_object_unref (sink_full);
  gst_object_unref (sink_small);
  gst_object_unref (full);
  gst_object_unref (small);
  env_stop (e);
}

GST_END_TEST;

/* An AV1 late joiner on a static screen gets its first picture as soon as
 * an H.264 one would (GStreamer 1.22's av1enc ignores keyframe requests:
 * the bridge restarts it for one), not at its next periodic keyframe, 60
 * quiet intervals away. */
GST_START_TEST (test_av1_late_joiner)
{
  const gchar *vmm_args[] = STANDIN_ARGS ("60");
  const gchar *bridge_args[] = { "--encoder", "auto",
    "--scanout-quiet-interval", "30", NULL
  };
  Env *e = env_start (vmm_args, NULL, bridge_args);
  const gchar *chain = "codec=av1 ! av1parse ! av1dec";
  GstElement *a, *b, *sink_a, *sink_b;
  GstSample *s;
  GPtrArray *decoded;
  gint64 t0;
  guint i;

  if (!e)
    return;
  a = start_guest (e, chain, &sink_a);
  for (i = 0; i < 10; i++) {
    s = gst_app_sink_try_pull_sample (GST_APP_SINK (sink_a), 20 * GST_SECOND);
    fail_unless (s != NULL, "the first subscriber gets nothing");
    gst_sample_unref (s);
  }
  /* a static screen: nothing flips, the quiet interval is 30 s away */
  standin_runner_command_expect (e->vmm, "rate 1 0", "RATE 1 hz=0");
  t0 = g_get_monotonic_time ();
  b = start_guest (e, chain, &sink_b);
  s = gst_app_sink_try_pull_sample (GST_APP_SINK (sink_b), 5 * GST_SECOND);
  fail_unless (s != NULL, "the AV1 late joiner got no picture within 5 s");
  g_print ("AV1 late joiner (static screen): first picture after %.0f ms\n",
      (g_get_monotonic_time () - t0) / 1000.0);
  decoded = g_ptr_array_new_with_free_func ((GDestroyNotify)
      gst_sample_unref);
  g_ptr_array_add (decoded, s);
  check_pattern (decoded, 1, flips (e, 1) + 5);
  g_ptr_array_unref (decoded);
  gst_element_set_state (a, GST_STATE_NULL);
  gst_element_set_state (b, GST_STATE_NULL);
  gst_object_unref (sink_a);
  gst_object_unref (sink_b);
  gst_object_unref (a);
  gst_object_unref (b);
  env_stop (e);
}

GST_END_TEST;

/* A codec the bridge has no encoder for (it runs --encoder x264enc): the
 * subscription is refused with an error naming it. */
GST_START_TEST (test_guest_element_codec_refused)
{
  const gchar *vmm_args[] = STANDIN_ARGS ("60");
  Env *e = env_start (vmm_args, NULL, NULL);
  GstElement *pipe;
  GstMessage *msg;
  GError *err = NULL;
  gchar *desc;

  if (!e)
    return;
  desc = g_strdup_printf ("vsockscanoutsrc address=%s scanout=1 codec=h265 "
      "reconnect=false ! fakesink", bridge_runner_get_address (e->bridge));
  pipe = gst_parse_launch (desc, NULL);
  g_free (desc);
  fail_unless (pipe != NULL);
  gst_element_set_state (pipe, GST_STATE_PLAYING);
  msg = gst_bus_timed_pop_filtered (GST_ELEMENT_BUS (pipe), 20 * GST_SECOND,
      GST_MESSAGE_ERROR);
  fail_unless (msg != NULL, "no error");
  gst_message_parse_error (msg, &err, NULL);
  g_print ("refused: %s\n", err->message);
  fail_unless (strstr (err->message, "H.265 cannot be encoded here") != NULL,
      "%s", err->message);
  g_error_free (err);
  gst_message_unref (msg);
  gst_element_set_state (pipe, GST_STATE_NULL);
  gst_object_unref (pipe);
  env_stop (e);
}

GST_END_TEST;

/* ------------------------------------------------------------------ */
/* 8. Hostile subscribers                                               */

GST_START_TEST (test_bad_index)
{
  const gchar *vmm_args[] = STANDIN_ARGS ("60");
  Env *e = env_start (vmm_args, "deployed", NULL);
  Cl *c;

  if (!e)
    return;
  c = cl_connect (e);
  fail_unless_equals_int (deployed_subscribe (c, 9), 0);
  /* the connection stays usable: a valid SUBSCRIBE then streams */
  fail_unless_equals_int (deployed_subscribe (c, 1), 1);
  {
    Frame f;

    fail_unless_equals_int (deployed_frame (c, &f, FRAME_TIMEOUT_US), RD_OK);
    fail_unless (f.keyframe);
    frame_clear (&f);
  }
  cl_close (c);
  c = cl_connect (e);
  fail_unless_equals_int (deployed_subscribe (c, 0x10000), 0);
  cl_close (c);
  c = cl_connect (e);
  fail_unless_equals_int (v2_subscribe (c, 9, NULL, NULL, NULL),
      HXFR_ERR_NO_SCANOUT);
  fail_unless (wait_eof (c, 5 * G_USEC_PER_SEC));
  cl_close (c);
  env_stop (e);
}

GST_END_TEST;

/* The scanout encoder maps what it reads: a linear DMA-BUF streams, a
 * tiled one is never encoded as if it were linear (a wrong picture): each
 * frame is skipped, and the log names the modifier. */
GST_START_TEST (test_dmabuf_modifiers)
{
  const gchar *modifiers[] = { "0", "0100000000000001" };
  guint i;

  for (i = 0; i < G_N_ELEMENTS (modifiers); i++) {
    const gchar *vmm_args[] = { "--width", "64", "--height", "48",
      "--scanouts", "4", "--scanout", "1:160x120@60", "--simulate-dmabuf",
      "--simulate-modifier", modifiers[i], NULL
    };
    Env *e = env_start (vmm_args, "deployed", NULL);
    Frame f;
    Cl *c;

    if (!e)
      return;
    c = cl_connect (e);
    fail_unless_equals_int (deployed_subscribe (c, 1), 1);
    if (i == 0) {
      fail_unless_equals_int (deployed_frame (c, &f, FRAME_TIMEOUT_US), RD_OK);
      fail_unless (f.keyframe);
      check_au (&f);
      frame_clear (&f);
    } else {
      fail_unless (bridge_runner_wait_log (e->bridge,
              "modifier 0x0100000000000001", 1, 10),
          "no failure naming the modifier: %s",
          bridge_runner_get_log (e->bridge));
      /* that flip was skipped, not sent */
      fail_unless_equals_int (deployed_frame (c, &f, 0), RD_TIMEOUT);
    }
    cl_close (c);
    env_stop (e);
  }
}

GST_END_TEST;

GST_START_TEST (test_lying_sizes)
{
  const gchar *vmm_args[] = STANDIN_ARGS ("60");
  Env *e = env_start (vmm_args, "deployed", NULL);
  Reader *ra;
  Cl *c;
  guint8 p[8] = { 1, 0, 0, 0, 0, 0, 0, 0 };
  guint n0;
  Msg m;

  if (!e)
    return;
  ra = streaming_reader (e, FALSE);
  /* SUBSCRIBE declaring 7 bytes: closed, nothing answered */
  c = cl_connect (e);
  fail_unless (cl_send (c, 0x30, 1, p, 7, 7));
  fail_unless_equals_int (rd_msg (c, &m, 5 * G_USEC_PER_SEC), RD_EOF);
  msg_clear (&m);
  cl_close (c);
  /* ENABLE_SCANOUT declaring 0 */
  c = cl_connect (e);
  fail_unless (cl_send (c, 0x20, 0, NULL, 0, 0));
  fail_unless_equals_int (rd_msg (c, &m, 5 * G_USEC_PER_SEC), RD_EOF);
  msg_clear (&m);
  cl_close (c);
  /* the other subscriber is unaffected */
  n0 = reader_count (ra);
  fail_unless (reader_wait (ra, n0 + 30, 20));
  fail_unless (!ra->eof);
  reader_stop (ra);
  env_stop (e);
}

GST_END_TEST;

GST_START_TEST (test_config_flood)
{
  const gchar *vmm_args[] = STANDIN_ARGS ("60");
  Env *e = env_start (vmm_args, "deployed", NULL);
  Reader *ra, *rb;
  Cl *b;
  guint base, during, lines0, lines1, i;
  guint8 cfg[HXFR_CONFIG_REQ_SIZE];
  gint64 t0;
  gdouble secs;

  if (!e)
    return;
  ra = streaming_reader (e, FALSE);
  b = cl_connect (e);
  fail_unless_equals_int (deployed_subscribe (b, 1), 1);
  rb = reader_start (b, FALSE);
  count_window (&ra, 1, 2.0, &base);
  lines0 = bridge_runner_count_log (e->bridge, "\n");
  /* CONFIG_REQ as the Go client builds it, 5000 times, bitrates changing */
  i = reader_count (ra);
  t0 = g_get_monotonic_time ();
  for (guint k = 0; k < 5000; k++) {
    memset (cfg, 0, sizeof (cfg));
    put_le32 (cfg, SW);
    put_le32 (cfg + 4, SH);
    put_le32 (cfg + 8, 1000000 + (k % 50) * 100000);
    put_le32 (cfg + 12, 60);
    put_le32 (cfg + 16, 1);
    cfg[20] = 66;
    cfg[21] = 40;
    cfg[22] = 1;
    fail_unless (cl_send (b, 0x04, 1, cfg, sizeof (cfg), sizeof (cfg)),
        "CONFIG_REQ %u: the bridge closed", k);
    /* spread over about 2 s: a flood that lasts, not one burst */
    if (k % 250 == 0)
      g_usleep (100 * 1000);
  }
  secs = (g_get_monotonic_time () - t0) / 1e6;
  during = reader_count (ra) - i;
  lines1 = bridge_runner_count_log (e->bridge, "\n");
  g_printerr ("CONFIG_REQ flood: 5000 in %.1f s; the other subscriber %u "
      "frames (%.0f/s; %.0f/s before); %u bridge log lines\n", secs, during,
      during / secs, base / 2.0, lines1 - lines0);
  fail_unless (during / secs >= 0.4 * base / 2.0, "the other subscriber "
      "slowed from %.0f to %.0f frames/s", base / 2.0, during / secs);
  fail_unless (lines1 - lines0 < 20, "%u log lines for a flood",
      lines1 - lines0);
  /* the flooding subscriber still streams, never out of step */
  i = reader_count (rb);
  fail_unless (reader_wait (rb, i + 20, 20));
  fail_unless (!rb->eof);
  reader_stop (rb);
  reader_stop (ra);
  env_stop (e);
}

GST_END_TEST;

GST_START_TEST (test_ping)
{
  const gchar *vmm_args[] = STANDIN_ARGS ("60");
  Env *e = env_start (vmm_args, "deployed", NULL);
  Reader *ra;
  Cl *c;
  Msg m;
  guint8 junk[100] = { 0, };
  guint sent = 0, n0;
  gboolean closed = FALSE;
  gint64 deadline;
  guint8 *pings;

  if (!e)
    return;
  ra = streaming_reader (e, FALSE);
  /* a scanout client (its first message a SUBSCRIBE, refused) */
  c = cl_connect (e);
  fail_unless_equals_int (deployed_subscribe (c, 9), 0);
  /* an unknown type with 100 bytes: skipped */
  fail_unless (cl_send (c, 0x77, 0, junk, sizeof (junk), sizeof (junk)));
  fail_unless (cl_send (c, 0x10, 0x1234, NULL, 0, 0));
  fail_unless_equals_int (rd_msg (c, &m, 5 * G_USEC_PER_SEC), RD_OK);
  fail_unless_equals_int (m.type, 0x11);
  fail_unless_equals_int (m.session_id, 0x1234);
  fail_unless_equals_int (m.size, 0);
  msg_clear (&m);
  /* PINGs without reading a PONG: closed (bounded) */
  pings = g_malloc (12 * 1000);
  for (guint i = 0; i < 1000; i++)
    put_header (pings + 12 * i, 0x10, i, 0);
  deadline = g_get_monotonic_time () + 60 * G_USEC_PER_SEC;
  while (!closed && g_get_monotonic_time () < deadline && sent < 10000000) {
    struct pollfd p = { c->fd, POLLOUT, 0 };

    /* the bridge stops reading while 64 PONGs wait (never block for
     * ever); this client reads none of them, so it is closed once the
     * bridge's writer has had no byte taken for the write timeout, which
     * a write then finds (EPIPE) */
    if (poll (&p, 1, 500) == 0)
      continue;
    if (!cl_write (c, pings, 12 * 1000))
      closed = TRUE;
    sent += 1000;
  }
  g_free (pings);
  g_printerr ("PING flood: closed=%d after about %u PINGs\n", closed, sent);
  fail_unless (closed, "a client sending PINGs and reading no PONGs was not "
      "closed (%u sent)", sent);
  cl_close (c);
  n0 = reader_count (ra);
  fail_unless (reader_wait (ra, n0 + 20, 20));
  fail_unless (!ra->eof);
  reader_stop (ra);
  env_stop (e);
}

GST_END_TEST;

GST_START_TEST (test_huge_unknown_payload)
{
  const gchar *vmm_args[] = STANDIN_ARGS ("60");
  Env *e = env_start (vmm_args, "deployed", NULL);
  Cl *c;
  Msg m;
  guint rss0, rss1;
  guint8 junk[4096] = { 0, };

  if (!e)
    return;
  c = cl_connect (e);
  fail_unless_equals_int (deployed_subscribe (c, 1), 1);
  rss0 = proc_rss_kb (bridge_runner_get_pid (e->bridge));
  /* a 100 MiB payload announced, 4 KiB of it sent */
  fail_unless (cl_send (c, 0x77, 0, junk, sizeof (junk), 100 * 1024 * 1024));
  /* frames may come first; then the end */
  {
    gint64 deadline = g_get_monotonic_time () + 5 * G_USEC_PER_SEC;
    Rd rd;

    do {
      rd = rd_msg (c, &m, 5 * G_USEC_PER_SEC);
      if (rd == RD_OK)
        fail_unless_equals_int (m.type, 0x02);
      msg_clear (&m);
    } while (rd == RD_OK && g_get_monotonic_time () < deadline);
    fail_unless_equals_int (rd, RD_EOF);
  }
  rss1 = proc_rss_kb (bridge_runner_get_pid (e->bridge));
  g_printerr ("100 MiB unknown payload: closed; bridge RSS %u -> %u KiB\n",
      rss0, rss1);
  fail_unless (rss1 < rss0 + 32 * 1024, "RSS grew by %u KiB", rss1 - rss0);
  fail_unless (bridge_runner_wait_log (e->bridge, "payload on a scanout "
          "connection", 1, 5));
  cl_close (c);
  env_stop (e);
}

GST_END_TEST;

GST_START_TEST (test_token_and_no_deployed)
{
  const gchar *vmm_args[] = STANDIN_ARGS ("60");
  const gchar *bridge_args[] = { "--token", "s3cret", NULL };
  Env *e = env_start (vmm_args, NULL, bridge_args);
  Cl *c;
  gchar *text = NULL;
  Msg m;
  guint8 p[4];

  if (!e)
    return;
  c = cl_connect (e);
  fail_unless_equals_int (v2_subscribe (c, 1, "wrong", NULL, NULL),
      HXFR_ERR_UNAUTHORIZED);
  fail_unless (wait_eof (c, 5 * G_USEC_PER_SEC));
  cl_close (c);
  c = cl_connect (e);
  fail_unless_equals_int (v2_subscribe (c, 1, NULL, NULL, NULL),
      HXFR_ERR_UNAUTHORIZED);
  cl_close (c);
  c = cl_connect (e);
  fail_unless_equals_int (v2_subscribe (c, 1, "s3cret", NULL, NULL), 0);
  cl_close (c);

  /* deployed, on a listener without ',deployed': ERROR -7 with a text */
  c = cl_connect (e);
  put_le32 (p, 1);
  fail_unless (cl_send (c, 0x30, 1, p, 4, 4));
  fail_unless_equals_int (rd_msg (c, &m, 5 * G_USEC_PER_SEC), RD_OK);
  fail_unless_equals_int (m.type, 0xff);
  {
    HxfrErrorMsg em;

    fail_unless (hxfr_error_parse (m.payload, m.size, &em, NULL));
    fail_unless_equals_int (em.code, HXFR_ERR_UNAUTHORIZED);
    fail_unless (strstr (em.message, "deployed") != NULL, "%s", em.message);
    text = g_strdup (em.message);
  }
  msg_clear (&m);
  fail_unless (wait_eof (c, 5 * G_USEC_PER_SEC));
  cl_close (c);
  g_free (text);
  env_stop (e);
}

GST_END_TEST;

GST_START_TEST (test_repeated_subscribe)
{
  const gchar *vmm_args[] = { "--width", "64", "--height", "48",
    "--scanouts", "4", "--scanout", "1:160x120@60", "--scanout",
    "2:96x64@60", NULL
  };
  Env *e = env_start (vmm_args, "deployed", NULL);
  Cl *c;
  guint8 p[4];
  Msg m;
  Frame f;
  guint i, w = 0, h = 0;
  gint32 reason;
  Rd rd;

  if (!e)
    return;
  /* deployed: the last SUBSCRIBE wins */
  c = cl_connect (e);
  fail_unless_equals_int (deployed_subscribe (c, 1), 1);
  fail_unless_equals_int (deployed_frame (c, &f, FRAME_TIMEOUT_US), RD_OK);
  fail_unless_equals_int (f.session_id, 1);
  frame_clear (&f);
  put_le32 (p, 2);
  fail_unless (cl_send (c, 0x30, 2, p, 4, 4));
  /* scanout 1's frames already queued, then the answer, then scanout 2 */
  for (i = 0; i < 100; i++) {
    fail_unless_equals_int (rd_msg (c, &m, FRAME_TIMEOUT_US), RD_OK);
    if (m.type == 0x31) {
      fail_unless_equals_int (le32 (m.payload), 2);
      fail_unless_equals_int (le32 (m.payload + 4), 1);
      msg_clear (&m);
      break;
    }
    fail_unless_equals_int (m.type, 0x02);
    fail_unless_equals_int (m.session_id, 1);
    msg_clear (&m);
  }
  fail_unless (i < 100, "no SUBSCRIBE_RESP to the second SUBSCRIBE");
  fail_unless_equals_int (deployed_frame (c, &f, FRAME_TIMEOUT_US), RD_OK);
  fail_unless_equals_int (f.session_id, 2);
  fail_unless (f.keyframe, "first frame of the new scanout is not an IDR");
  fail_unless (au_sps_size (f.au, &w, &h));
  fail_unless_equals_int (w, 96);
  fail_unless_equals_int (h, 64);
  frame_clear (&f);
  for (i = 0; i < 20; i++) {
    fail_unless_equals_int (deployed_frame (c, &f, FRAME_TIMEOUT_US), RD_OK);
    fail_unless_equals_int (f.session_id, 2);
    check_au (&f);
    frame_clear (&f);
  }
  cl_close (c);

  /* v2: a second SUBSCRIBE2 is an error, and the end */
  c = cl_connect (e);
  fail_unless_equals_int (v2_subscribe (c, 1, NULL, NULL, NULL), 0);
  {
    HxfrSubscribe2 s = { 2, 2, HXFR_CODEC_H264, 2, 0, 0, 0 };
    guint8 buf[HXFR_SUBSCRIBE2_SIZE];
    gsize len = hxfr_subscribe2_write (&s, buf);

    fail_unless (cl_send (c, HXFR_MSG_SUBSCRIBE2, 7, buf, len, len));
  }
  for (i = 0; i < 200; i++) {
    rd = v2_frame (c, &f, FRAME_TIMEOUT_US, &reason);
    if (rd == RD_OK)
      fail_unless_equals_int (f.width, SW);
    frame_clear (&f);
    if (rd != RD_OK)
      break;
  }
  fail_unless_equals_int (rd, RD_EOF);
  fail_unless (reason < 0, "no ERROR for a second SUBSCRIBE2 (%d)", reason);
  fail_unless (wait_eof (c, 5 * G_USEC_PER_SEC));
  cl_close (c);
  env_stop (e);
}

GST_END_TEST;

/* ------------------------------------------------------------------ */
/* 9. Shutdown                                                          */

GST_START_TEST (test_shutdown)
{
  const gchar *vmm_args[] = STANDIN_ARGS ("60");
  Env *e = env_start (vmm_args, "deployed", NULL);
  Cl *v, *d;
  Frame f;
  gint32 reason = 0;
  Rd rd;
  guint i;

  if (!e)
    return;
  v = cl_connect (e);
  fail_unless_equals_int (v2_subscribe (v, 1, NULL, NULL, NULL), 0);
  d = cl_connect (e);
  fail_unless_equals_int (deployed_subscribe (d, 1), 1);
  fail_unless_equals_int (v2_frame (v, &f, FRAME_TIMEOUT_US, NULL), RD_OK);
  frame_clear (&f);
  fail_unless_equals_int (deployed_frame (d, &f, FRAME_TIMEOUT_US), RD_OK);
  frame_clear (&f);
  fail_unless (kill (bridge_runner_get_pid (e->bridge), SIGTERM) == 0);
  for (i = 0; i < 1000; i++) {
    rd = v2_frame (v, &f, 10 * G_USEC_PER_SEC, &reason);
    frame_clear (&f);
    if (rd != RD_OK)
      break;
  }
  fail_unless_equals_int (rd, RD_EOF);
  fail_unless_equals_int (reason, HXFR_SCANOUT_END_SHUTDOWN);
  fail_unless (wait_eof (v, 10 * G_USEC_PER_SEC));
  /* the deployed subscriber: frames, then the end (nothing else) */
  for (i = 0; i < 1000; i++) {
    rd = deployed_frame (d, &f, 10 * G_USEC_PER_SEC);
    frame_clear (&f);
    if (rd != RD_OK)
      break;
  }
  fail_unless_equals_int (rd, RD_EOF);
  cl_close (v);
  cl_close (d);
  /* exits 0 and removes its socket (one SIGTERM only: see below) */
  {
    gboolean left = TRUE;

    fail_unless_equals_int (bridge_runner_wait (e->bridge, &left), 0);
    fail_if (left, "socket file left behind");
  }
  standin_runner_stop (e->vmm);
  g_free (e);
}

GST_END_TEST;

/* BRIDGE BUG (found here): a second SIGTERM while the bridge drains kills
 * it by the signal's default action: on_signal() returns G_SOURCE_REMOVE,
 * and GLib restores SIG_DFL when the last unix-signal source of SIGTERM
 * goes. It then dies with status "killed by SIGTERM" and leaves its
 * socket file behind, instead of "drain, remove socket files, exit 0".
 * The window is the drain (milliseconds here), so this test catches it in
 * most runs, not all: it failed 4 of 5 runs on a 2-core machine. */
GST_START_TEST (test_second_sigterm_while_draining)
{
  const gchar *vmm_args[] = STANDIN_ARGS ("60");
  Env *e = env_start (vmm_args, "deployed", NULL);
  Cl *v, *d;
  Frame f;
  gboolean left = TRUE;
  GPid pid;

  if (!e)
    return;
  pid = bridge_runner_get_pid (e->bridge);
  v = cl_connect (e);
  fail_unless_equals_int (v2_subscribe (v, 1, NULL, NULL, NULL), 0);
  d = cl_connect (e);
  fail_unless_equals_int (deployed_subscribe (d, 1), 1);
  fail_unless_equals_int (v2_frame (v, &f, FRAME_TIMEOUT_US, NULL), RD_OK);
  frame_clear (&f);
  fail_unless (kill (pid, SIGTERM) == 0);
  fail_unless (bridge_runner_wait_log (e->bridge, "stopping:", 1, 10));
  /* the bridge may be gone already: then there is nothing to test */
  kill (pid, SIGTERM);
  cl_close (v);
  cl_close (d);
  fail_unless_equals_int (bridge_runner_wait (e->bridge, &left), 0);
  fail_if (left, "socket file left behind");
  standin_runner_stop (e->vmm);
  g_free (e);
}

GST_END_TEST;

/* ------------------------------------------------------------------ */
/* Bitrate and several VMs                                              */

/* Mean access unit bytes over @n frames of a deployed subscriber, after
 * @settle frames (the rate control's reaction). */
static gdouble
mean_au_bytes (Cl * c, guint settle, guint n)
{
  guint64 bytes = 0;
  guint i;

  for (i = 0; i < settle + n; i++) {
    Frame f;

    fail_unless_equals_int (deployed_frame (c, &f, FRAME_TIMEOUT_US), RD_OK);
    if (i >= settle)
      bytes += g_bytes_get_size (f.au);
    frame_clear (&f);
  }
  return (gdouble) bytes / n;
}

/* CONFIG_REQ as a deployed client sends it, for the 320x240 scanout at
 * 30 Hz of the bitrate tests */
static void
send_bitrate_config (Cl * c, guint32 bitrate)
{
  guint8 cfg[HXFR_CONFIG_REQ_SIZE] = { 0, };

  put_le32 (cfg, 320);
  put_le32 (cfg + 4, 240);
  put_le32 (cfg + 8, bitrate);
  put_le32 (cfg + 12, 30);
  put_le32 (cfg + 16, 1);
  fail_unless (cl_send (c, 0x04, 1, cfg, sizeof (cfg), sizeof (cfg)));
}

/* CONFIG_REQ's bitrate reaches the scanout's encoder: 30 times the bitrate
 * gives clearly bigger access units on the same flips. */
GST_START_TEST (test_bitrate_takes_effect)
{
  const gchar *vmm_args[] = { "--width", "64", "--height", "48",
    "--scanouts", "2", "--scanout", "1:320x240@30", NULL
  };
  const gchar *bridge_args[] = { "--bitrate", "100000", NULL };
  Env *e = env_start (vmm_args, "deployed", bridge_args);
  gdouble low, high;
  Cl *c;

  if (!e)
    return;
  c = cl_connect (e);
  fail_unless_equals_int (deployed_subscribe (c, 1), 1);
  low = mean_au_bytes (c, 15, 45);
  send_bitrate_config (c, 3000000);
  high = mean_au_bytes (c, 15, 45);
  g_printerr ("bitrate: --bitrate 100000: %.0f bytes/frame; after "
      "CONFIG_REQ 3000000: %.0f bytes/frame (x%.1f)\n", low, high, high / low);
  fail_unless (high > 3 * low, "CONFIG_REQ 3 Mbit/s: %.0f bytes per frame, "
      "against %.0f at 100 kbit/s", high, low);
  cl_close (c);
  env_stop (e);
}

GST_END_TEST;

/* One v2 subscriber's access units, by flip */
typedef struct
{
  guint64 capture_time;
  gboolean keyframe;
  GBytes *au;
} FlipAu;

static void
flip_au_clear (FlipAu * a)
{
  g_bytes_unref (a->au);
}

static GArray *
flip_aus_new (void)
{
  GArray *a = g_array_new (FALSE, FALSE, sizeof (FlipAu));

  g_array_set_clear_func (a, (GDestroyNotify) flip_au_clear);
  return a;
}

/* @rounds frames from each of @n v2 subscribers, one of each in turn (they
 * are sent the same flips at the same time), appended to out[k]. */
static void
read_in_turn (Cl ** c, GArray ** out, guint n, guint rounds)
{
  guint i, k;

  for (i = 0; i < rounds; i++)
    for (k = 0; k < n; k++) {
      Frame f;
      FlipAu a;

      fail_unless_equals_int (v2_frame (c[k], &f, FRAME_TIMEOUT_US, NULL),
          RD_OK);
      a.capture_time = f.capture_time;
      a.keyframe = f.keyframe;
      a.au = g_bytes_ref (f.au);
      g_array_append_val (out[k], a);
      frame_clear (&f);
    }
}

/* Of the flips both @a and @b received: how many (*@common), and how many
 * as the same bytes (returned): one encoder's output, shared. */
static guint
same_aus (GArray * a, GArray * b, guint * common)
{
  guint i, j, same = 0;

  *common = 0;
  for (i = 0; i < a->len; i++)
    for (j = 0; j < b->len; j++) {
      FlipAu *x = &g_array_index (a, FlipAu, i);
      FlipAu *y = &g_array_index (b, FlipAu, j);

      if (x->capture_time != y->capture_time)
        continue;
      (*common)++;
      same += g_bytes_equal (x->au, y->au);
    }
  return same;
}

/* Mean bytes of the delta frames from @from on */
static gdouble
mean_delta_bytes (GArray * a, guint from)
{
  guint64 bytes = 0;
  guint i, n = 0;

  for (i = from; i < a->len; i++) {
    FlipAu *x = &g_array_index (a, FlipAu, i);

    if (x->keyframe)
      continue;
    bytes += g_bytes_get_size (x->au);
    n++;
  }
  fail_unless (n > 0, "no delta frames");
  return (gdouble) bytes / n;
}

/* A v2 subscriber of scanout 1 at @bitrate */
static Cl *
subscribe_at (Env * e, guint32 bitrate)
{
  Cl *c = cl_connect (e);

  fail_unless_equals_int (v2_subscribe_at (c, 1, bitrate, NULL, NULL, NULL), 0);
  return c;
}

/* Renditions by bitrate: subscribers asking different bitrates each get
 * their own encoder and rate; one asking the same as another shares its
 * encoder (the same bytes for the same flips); a deployed client's
 * CONFIG_REQ moves it alone; past the bound of 4 encoders a subscriber
 * shares the nearest bitrate. */
GST_START_TEST (test_renditions_by_bitrate)
{
  const gchar *vmm_args[] = { "--width", "64", "--height", "48",
    "--scanouts", "2", "--scanout", "1:320x240@30", NULL
  };
  const gchar *bridge_args[] = { "--bitrate", "100000", NULL };
  /* A, B, C; then three more past the first ones */
  const guint32 bitrates[] = { 0, 3000000, 100000, 500000, 1000000, 2000000 };
  Env *e = env_start (vmm_args, "deployed", bridge_args);
  Cl *c[3], *d, *extra[3];
  GArray *aus[3], *after[2];
  guint common, same, k;
  gdouble low, high, low_after;
  Reader *dep;

  if (!e)
    return;
  /* A: the default (100 kbit/s); B: 3 Mbit/s; C: 100 kbit/s asked */
  for (k = 0; k < 3; k++) {
    c[k] = subscribe_at (e, bitrates[k]);
    aus[k] = flip_aus_new ();
  }
  read_in_turn (c, aus, 3, 60);
  same = same_aus (aus[0], aus[2], &common);
  low = mean_delta_bytes (aus[0], 15);
  high = mean_delta_bytes (aus[1], 15);
  g_printerr ("renditions: A (default 100 kbit/s) %.0f bytes/frame, B (3 "
      "Mbit/s) %.0f; C (100 kbit/s) the same bytes as A on %u of %u "
      "flips, B on %u\n", low, high, same, common,
      same_aus (aus[0], aus[1], &k));
  fail_unless (high > 3 * low, "B at 3 Mbit/s: %.0f bytes per frame, A at "
      "100 kbit/s: %.0f", high, low);
  fail_unless (common >= 30, "A and C had only %u flips in common", common);
  fail_unless_equals_int (same, common);
  fail_unless_equals_int (same_aus (aus[0], aus[1], &common), 0);

  /* a deployed client at the default asks 3 Mbit/s: A's stream stays */
  d = cl_connect (e);
  fail_unless_equals_int (deployed_subscribe (d, 1), 1);
  dep = reader_start (d, FALSE);
  send_bitrate_config (d, 3000000);
  after[0] = flip_aus_new ();
  after[1] = flip_aus_new ();
  read_in_turn (c, after, 2, 60);
  low_after = mean_delta_bytes (after[0], 15);
  g_printerr ("after a deployed CONFIG_REQ of 3 Mbit/s: A %.0f bytes/frame "
      "(%.0f before)\n", low_after, low);
  fail_unless (low_after < 1.5 * low, "a deployed CONFIG_REQ changed A's "
      "stream from %.0f to %.0f bytes per frame", low, low_after);
  fail_unless (reader_wait (dep, 20, 20));
  fail_unless (!dep->eof);

  /* 500 kbit/s and 1 Mbit/s: the bound (4 encoders) is reached; 2 Mbit/s
   * then shares B's (3 Mbit/s, the nearest) */
  for (k = 0; k < 3; k++)
    extra[k] = subscribe_at (e, bitrates[3 + k]);
  {
    Cl *pair[2] = { c[1], extra[2] };
    GArray *got[2] = { flip_aus_new (), flip_aus_new () };

    /* the others are not read: their queues skip, which costs B nothing */
    read_in_turn (pair, got, 2, 60);
    same = same_aus (got[0], got[1], &common);
    g_printerr ("past the bound: 2 Mbit/s shares 3 Mbit/s's encoder: the "
        "same bytes on %u of %u flips\n", same, common);
    fail_unless (common >= 30, "only %u flips in common", common);
    fail_unless_equals_int (same, common);
    g_array_unref (got[0]);
    g_array_unref (got[1]);
  }
  for (k = 0; k < 3; k++) {
    cl_close (extra[k]);
    cl_close (c[k]);
    g_array_unref (aus[k]);
  }
  g_array_unref (after[0]);
  g_array_unref (after[1]);
  reader_stop (dep);
  env_stop (e);
}

GST_END_TEST;

/* One bridge, two VMs: each listener serves its own VM's scanouts. The two
 * stand-ins show scanout 1 at different sizes, which the SPS tells. */
GST_START_TEST (test_two_vms)
{
  const gchar *vmm_a[] = STANDIN_ARGS ("30");
  const gchar *vmm_b[] = { "--width", "64", "--height", "48",
    "--scanouts", "2", "--scanout", "1:96x64@30", NULL
  };
  StandinRunner *b_vmm = standin_runner_start (vmm_b);
  gchar *dir = g_dir_make_tmp ("hx-two-vms-XXXXXX", NULL);
  gchar *b_path = g_build_filename (dir, "vm-b.sock", NULL);
  gchar *listen_b, *bridge_args[3] = { (gchar *) "--listen", NULL, NULL };
  const gchar *paths[2];
  Env *e;
  guint i;

  if (!b_vmm) {
    g_rmdir (dir);
    g_free (dir);
    g_free (b_path);
    return;
  }
  listen_b = g_strdup_printf ("unix:%s,export=%s,deployed", b_path,
      standin_runner_get_export_address (b_vmm));
  bridge_args[1] = listen_b;
  e = env_start (vmm_a, "deployed", (const gchar * const *) bridge_args);
  fail_unless (e != NULL);
  paths[0] = bridge_runner_get_socket_path (e->bridge);
  paths[1] = b_path;
  for (i = 0; i < 2; i++) {
    Cl *c = cl_connect_path (paths[i]);
    Frame f;
    guint w = 0, h = 0;

    fail_unless_equals_int (deployed_subscribe (c, 1), 1);
    fail_unless_equals_int (deployed_frame (c, &f, FRAME_TIMEOUT_US), RD_OK);
    fail_unless (f.keyframe && au_sps_size (f.au, &w, &h));
    g_printerr ("two VMs: listener %u, scanout 1: %ux%u\n", i, w, h);
    fail_unless (i == 0 ? (w == SW && h == SH) : (w == 96 && h == 64),
        "listener %u serves a %ux%u scanout 1", i, w, h);
    frame_clear (&f);
    cl_close (c);
  }
  env_stop (e);
  standin_runner_stop (b_vmm);
  fail_if (g_file_test (b_path, G_FILE_TEST_EXISTS));
  g_rmdir (dir);
  g_free (dir);
  g_free (b_path);
  g_free (listen_b);
}

GST_END_TEST;

/* ------------------------------------------------------------------ */
/* 12. The picture of a flush is the one flushed (export version 4)     */

/* Pattern of flip @flips (counted from 1) of scanout 1, and the scribble
 * the stand-in draws over it right after its flush */
#define FLIP_PATTERN(flips) ((guint) ((flips) - 1 + PATTERN_STRIDE) % 256)
#define SCRIBBLED(pattern) (((pattern) + 128) % 256)

/* The pattern of the first frame a new subscriber of scanout 1 gets */
static guint
joiner_pattern (Env * e)
{
  GPtrArray *aus = g_ptr_array_new_with_free_func ((GDestroyNotify)
      g_bytes_unref), *decoded;
  Cl *c = cl_connect (e);
  gdouble mse;
  guint pattern;
  Frame f;

  fail_unless_equals_int (v2_subscribe (c, 1, NULL, NULL, NULL), 0);
  fail_unless_equals_int (v2_frame (c, &f, FRAME_TIMEOUT_US, NULL), RD_OK);
  fail_unless (f.keyframe);
  g_ptr_array_add (aus, g_bytes_ref (f.au));
  frame_clear (&f);
  decoded = decode_aus (aus);
  fail_unless_equals_int (decoded->len, 1);
  pattern = best_pattern (g_ptr_array_index (decoded, 0), &mse);
  fail_unless (mse <= MAX_MSE, "the joiner's frame: no pattern (MSE %.1f)",
      mse);
  g_ptr_array_unref (decoded);
  g_ptr_array_unref (aus);
  cl_close (c);
  return pattern;
}

/* A v2 subscriber of scanout 1 (static, quiet interval 30 s: a frame per
 * flip the test makes); once the VMM copies flushes for it (@snapshots:
 * its count moves), @n flips with the stand-in drawing over each buffer
 * right after its flush (a guest drawing into the shown buffer before the
 * bridge could read it). Every frame decoded; @patterns[i] gets the
 * pattern of the i-th of those flips' frames, @flushed[i] the one
 * flushed; *@joined the pattern of the first frame of a subscriber that
 * joins after the last flip (an IDR of the static screen). */
static void
scribbled_flips (gboolean snapshots, const gchar * export_version,
    guint n, guint * patterns, guint * flushed, guint * joined)
{
  const gchar *vmm_args[] = { "--width", "64", "--height", "48",
    "--scanouts", "4", "--scanout", "1:160x120@0", "--export-version",
    export_version, NULL
  };
  const gchar *bridge_args[] = { "--scanout-quiet-interval", "30", NULL };
  Env *e = env_start (vmm_args, "deployed", bridge_args);
  GPtrArray *aus = g_ptr_array_new_with_free_func ((GDestroyNotify)
      g_bytes_unref);
  GPtrArray *decoded;
  guint i, start;
  Cl *c;
  Frame f;

  if (!e) {
    for (i = 0; i < n; i++)
      patterns[i] = flushed[i] = 0;
    *joined = 0;
    g_ptr_array_unref (aus);
    return;
  }
  c = cl_connect (e);
  fail_unless_equals_int (v2_subscribe (c, 1, NULL, NULL, NULL), 0);
  fail_unless_equals_int (v2_frame (c, &f, FRAME_TIMEOUT_US, NULL), RD_OK);
  fail_unless (f.keyframe);
  g_ptr_array_add (aus, g_bytes_ref (f.au));
  frame_clear (&f);
  /* the bridge asks the VMM for snapshots once it has a subscriber: flips
   * until the VMM makes them (a version-3 VMM never does: a few flips) */
  for (i = 0; i < 40; i++) {
    standin_runner_command_expect (e->vmm, "flip 1", "FLIPPED 1");
    fail_unless_equals_int (v2_frame (c, &f, FRAME_TIMEOUT_US, NULL), RD_OK);
    g_ptr_array_add (aus, g_bytes_ref (f.au));
    frame_clear (&f);
    if (snapshots ? standin_runner_stat (e->vmm, "snapshots") > 0 : i >= 2)
      break;
  }
  fail_unless (!snapshots || standin_runner_stat (e->vmm,
          "snapshots") > 0, "the VMM made no snapshot in %u flips", i);

  standin_runner_command_expect (e->vmm, "scribble 1 on", "OK scribble 1 on");
  start = aus->len;
  for (i = 0; i < n; i++) {
    g_autofree gchar *reply = standin_runner_command (e->vmm, "flip 1");
    guint frames, id;

    fail_unless (sscanf (reply, "FLIPPED 1 frames=%u resource=%u", &frames,
            &id) == 2, "%s", reply);
    flushed[i] = FLIP_PATTERN (frames);
    fail_unless_equals_int (v2_frame (c, &f, FRAME_TIMEOUT_US, NULL), RD_OK);
    check_au (&f);
    g_ptr_array_add (aus, g_bytes_ref (f.au));
    frame_clear (&f);
  }
  *joined = joiner_pattern (e);
  g_printerr ("scribbled flips, export version %s: VMM snapshots=%"
      G_GUINT64_FORMAT " snapshot_misses=%" G_GUINT64_FORMAT " resolves=%"
      G_GUINT64_FORMAT "\n", export_version,
      standin_runner_stat (e->vmm, "snapshots"),
      standin_runner_stat (e->vmm, "snapshot_misses"),
      standin_runner_stat (e->vmm, "resolves"));
  decoded = decode_aus (aus);
  fail_unless_equals_int (decoded->len, aus->len);
  for (i = 0; i < n; i++) {
    gdouble mse;

    patterns[i] = best_pattern (g_ptr_array_index (decoded, start + i), &mse);
    fail_unless (mse <= MAX_MSE, "decoded frame %u: no pattern (MSE %.1f)",
        start + i, mse);
  }
  g_ptr_array_unref (decoded);
  g_ptr_array_unref (aus);
  cl_close (c);
  env_stop (e);
}

/* The guest draws into the buffer it just flushed before the bridge could
 * read it (weston reusing a buffer under load): the subscriber's picture
 * is the one flushed, copied by the VMM at the flush; and a subscriber
 * that joins the static screen afterwards gets the last flushed picture
 * too, not what was drawn over it since. */
GST_START_TEST (test_snapshot_at_flush)
{
  guint patterns[5], flushed[5], joined, i;

  scribbled_flips (TRUE, "4", G_N_ELEMENTS (patterns), patterns, flushed,
      &joined);
  for (i = 0; i < G_N_ELEMENTS (patterns); i++)
    fail_unless (patterns[i] == flushed[i], "flip %u: decoded pattern %u, "
        "flushed %u (the scribble over it is %u)", i, patterns[i], flushed[i],
        SCRIBBLED (flushed[i]));
  fail_unless (joined == flushed[4], "the joiner got pattern %u, the last "
      "flush was %u (the scribble over it is %u)", joined, flushed[4],
      SCRIBBLED (flushed[4]));
}

GST_END_TEST;

/* A version-3 VMM (no snapshots): the bridge still streams, reading each
 * flip when it encodes it, as before version 4; so a picture drawn over
 * after its flush is what the subscriber sees. Asserted, so that the test
 * above shows what it guards: the same flips without snapshots give the
 * wrong pictures. */
GST_START_TEST (test_snapshot_fallback_v3_vmm)
{
  guint patterns[5], flushed[5], joined, i;

  scribbled_flips (FALSE, "3", G_N_ELEMENTS (patterns), patterns, flushed,
      &joined);
  for (i = 0; i < G_N_ELEMENTS (patterns); i++)
    fail_unless (patterns[i] == SCRIBBLED (flushed[i]), "flip %u: decoded "
        "pattern %u, flushed %u: read before the scribble?", i, patterns[i],
        flushed[i]);
  fail_unless (joined == SCRIBBLED (flushed[4]), "the joiner got pattern %u, "
      "the last flush was %u", joined, flushed[4]);
}

GST_END_TEST;

static Suite *
scanout_suite (void)
{
  Suite *s = suite_create ("scanout");
  TCase *tc = tcase_create ("general");

  tcase_set_timeout (tc, 120);
  suite_add_tcase (s, tc);
  tcase_add_test (tc, test_deployed_stream);
  tcase_add_test (tc, test_deployed_au_framing_as_deployed);
  tcase_add_test (tc, test_static_screen_repeats);
  tcase_add_test (tc, test_late_joiner);
  tcase_add_test (tc, test_resize);
  tcase_add_test (tc, test_enable_disable);
  tcase_add_test (tc, test_slow_subscriber);
  tcase_add_test (tc, test_never_reading_subscriber);
  tcase_add_test (tc, test_guest_element);
  tcase_add_test (tc, test_guest_element_codecs);
  tcase_add_test (tc, test_guest_element_codec_refused);
  tcase_add_test (tc, test_av1_late_joiner);
  tcase_add_test (tc, test_bad_index);
  tcase_add_test (tc, test_dmabuf_modifiers);
  tcase_add_test (tc, test_lying_sizes);
  tcase_add_test (tc, test_config_flood);
  tcase_add_test (tc, test_bitrate_takes_effect);
  tcase_add_test (tc, test_renditions_by_bitrate);
  tcase_add_test (tc, test_renditions_by_size);
  tcase_add_test (tc, test_two_vms);
  tcase_add_test (tc, test_snapshot_at_flush);
  tcase_add_test (tc, test_snapshot_fallback_v3_vmm);
  tcase_add_test (tc, test_ping);
  tcase_add_test (tc, test_huge_unknown_payload);
  tcase_add_test (tc, test_token_and_no_deployed);
  tcase_add_test (tc, test_repeated_subscribe);
  tcase_add_test (tc, test_shutdown);
  tcase_add_test (tc, test_second_sigterm_while_draining);
  return s;
}

GST_CHECK_MAIN (scanout);
