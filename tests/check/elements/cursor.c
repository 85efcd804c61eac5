/* The pointer on a scanout subscription (docs/protocol.md 11.2, "The
 * cursor plane"): the stand-in VMM's cursor commands through the export
 * (version 3) and the bridge to raw subscribers of both dialects.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include <string.h>
#include <gst/check/gstcheck.h>

#include "scanout-client.h"
#include "hxfr-protocol.h"
#include "../../standin/helix-test-pattern.h"

#define CURSOR_TIMEOUT_US (5 * G_USEC_PER_SEC)

/* The next cursor message on a v2 subscription asking for them, frames
 * skipped (counted in *@frames if not NULL). */
static void
next_cursor (Cl * c, Msg * m, guint * frames)
{
  gint64 deadline = g_get_monotonic_time () + CURSOR_TIMEOUT_US;

  for (;;) {
    gint64 left = deadline - g_get_monotonic_time ();

    fail_unless (left > 0, "no cursor message came");
    fail_unless_equals_int (rd_msg (c, m, left), RD_OK);
    if (m->type == HXFR_MSG_CURSOR_IMAGE || m->type == HXFR_MSG_CURSOR_POSITION)
      return;
    fail_unless (m->type == HXFR_MSG_SCANOUT_FRAME, "got 0x%02x", m->type);
    if (frames)
      (*frames)++;
    msg_clear (m);
  }
}

/* The next cursor message is image @serial of the stand-in, @w x @h */
static void
expect_image (Cl * c, guint32 w, guint32 h, guint32 hot_x, guint32 hot_y,
    guint32 serial)
{
  HxfrCursorImage ci;
  guint32 x, y;
  Msg m;

  next_cursor (c, &m, NULL);
  fail_unless_equals_int (m.type, HXFR_MSG_CURSOR_IMAGE);
  fail_unless (hxfr_cursor_image_parse (m.payload, m.size, &ci, NULL));
  fail_unless (ci.width == w && ci.height == h, "%ux%u", ci.width, ci.height);
  fail_unless (ci.hot_x == hot_x && ci.hot_y == hot_y);
  for (y = 0; y < h; y++)
    for (x = 0; x < w; x++) {
      guint32 want = helix_test_cursor_pixel (x, y, w, serial);
      const guint8 *p = m.payload + HXFR_CURSOR_IMAGE_SIZE + (y * w + x) * 4;

      fail_unless (p[0] == (want & 255) && p[1] == ((want >> 8) & 255)
          && p[2] == ((want >> 16) & 255) && p[3] == want >> 24,
          "pixel %u,%u of image %u", x, y, serial);
    }
  msg_clear (&m);
}

static HxfrCursorPosition
expect_position (Cl * c)
{
  HxfrCursorPosition p;
  Msg m;

  next_cursor (c, &m, NULL);
  fail_unless_equals_int (m.type, HXFR_MSG_CURSOR_POSITION);
  fail_unless (hxfr_cursor_position_parse (m.payload, m.size, &p, NULL));
  msg_clear (&m);
  return p;
}

/* A subscriber that did not ask, v2 or deployed, sees frames only (both
 * readers fail the test on anything else): flips until one arrives. */
static void
expect_frame_only (Env * e, Cl * c, gboolean v2)
{
  Frame f;

  standin_runner_command_expect (e->vmm, "flip 1", "FLIPPED 1");
  if (v2) {
    fail_unless_equals_int (v2_frame (c, &f, FRAME_TIMEOUT_US, NULL), RD_OK);
  } else {
    fail_unless_equals_int (deployed_frame (c, &f, FRAME_TIMEOUT_US), RD_OK);
  }
  frame_clear (&f);
}

GST_START_TEST (test_cursor_subscription)
{
  const gchar *vmm_args[] = STANDIN_ARGS ("0");
  /* a static screen: no frame unless the test flips */
  const gchar *bridge_args[] = { "--scanout-quiet-interval", "30", NULL };
  Env *e = env_start (vmm_args, "deployed", bridge_args);
  HxfrSubscribe2Ack ack;
  HxfrCursorPosition p;
  Cl *a, *plain, *deployed;
  guint positions = 0, frames = 0;
  gint64 t0, elapsed;

  if (!e)
    return;
  standin_runner_command_expect (e->vmm, "cursor 1 32 32 4 5",
      "CURSOR 1 serial=1");
  standin_runner_command_expect (e->vmm, "move 1 10 20", "MOVED 1");

  /* asked for: granted, and the pointer as it is now, image first */
  a = cl_connect (e);
  fail_unless_equals_int (v2_subscribe_flags (a, 1, 0,
          HXFR_SUBSCRIBE2_CURSOR, NULL, &ack, NULL), 0);
  fail_unless_equals_int (ack.flags, HXFR_SUBSCRIBE2_CURSOR);
  expect_image (a, 32, 32, 4, 5, 1);
  p = expect_position (a);
  fail_unless (p.x == 10 && p.y == 20 && p.flags == HXFR_CURSOR_VISIBLE);

  /* not asked for: nothing of it, in either dialect */
  plain = cl_connect (e);
  fail_unless_equals_int (v2_subscribe (plain, 1, NULL, &ack, NULL), 0);
  fail_unless_equals_int (ack.flags, 0);
  deployed = cl_connect (e);
  fail_unless_equals_int (deployed_subscribe (deployed, 1), 1);

  /* a burst of moves over a static screen (back to back, as many as the
   * export's watch socket takes at once: the VMM never blocks and drops a
   * watch that cannot take an event): coalesced, the last one arrives */
  t0 = g_get_monotonic_time ();
  standin_runner_command_expect (e->vmm, "moves 1 150 0 0 1 1",
      "MOVED 1 x=149 y=149");
  do {
    Msg m;

    next_cursor (a, &m, &frames);
    fail_unless_equals_int (m.type, HXFR_MSG_CURSOR_POSITION);
    fail_unless (hxfr_cursor_position_parse (m.payload, m.size, &p, NULL));
    msg_clear (&m);
    positions++;
  } while (p.x != 149);
  elapsed = g_get_monotonic_time () - t0;
  g_printerr ("150 moves in %.1f ms: %u positions, %u frames\n",
      elapsed / 1000.0, positions, frames);
  fail_unless (p.y == 149 && p.flags == HXFR_CURSOR_VISIBLE);
  /* one per 8 ms, one per frame, and the first one at once */
  fail_unless (positions <= 2 + frames + elapsed / 8000, "%u positions in "
      "%.1f ms", positions, elapsed / 1000.0);

  /* a new image, the largest; then hidden */
  standin_runner_command_expect (e->vmm, "cursor 1 256 256 255 0",
      "CURSOR 1 serial=2");
  expect_image (a, 256, 256, 255, 0, 2);
  standin_runner_command_expect (e->vmm, "move 1 5 6 hidden", "MOVED 1");
  p = expect_position (a);
  fail_unless (p.x == 5 && p.y == 6 && p.flags == 0);

  expect_frame_only (e, plain, TRUE);
  expect_frame_only (e, deployed, FALSE);
  cl_close (a);
  cl_close (plain);
  cl_close (deployed);
  env_stop (e);
}

GST_END_TEST;

/* Images replaced faster than a subscriber is sent them: it is sent the
 * latest, never a backlog. */
GST_START_TEST (test_cursor_images_coalesced)
{
  const gchar *vmm_args[] = STANDIN_ARGS ("0");
  const gchar *bridge_args[] = { "--scanout-quiet-interval", "30", NULL };
  Env *e = env_start (vmm_args, NULL, bridge_args);
  HxfrSubscribe2Ack ack;
  HxfrCursorImage ci;
  guint i, images = 0;
  gint64 t0, elapsed;
  Cl *a;

  if (!e)
    return;
  a = cl_connect (e);
  fail_unless_equals_int (v2_subscribe_flags (a, 1, 0,
          HXFR_SUBSCRIBE2_CURSOR, NULL, &ack, NULL), 0);
  t0 = g_get_monotonic_time ();
  for (i = 1; i <= 40; i++) {
    gchar *cmd = g_strdup_printf ("cursor 1 %u 64 0 0", 64 + i);

    standin_runner_command_expect (e->vmm, cmd, "CURSOR 1");
    g_free (cmd);
  }
  do {
    Msg m;

    next_cursor (a, &m, NULL);
    fail_unless_equals_int (m.type, HXFR_MSG_CURSOR_IMAGE);
    fail_unless (hxfr_cursor_image_parse (m.payload, m.size, &ci, NULL));
    msg_clear (&m);
    images++;
  } while (ci.width != 64 + 40);
  elapsed = g_get_monotonic_time () - t0;
  g_printerr ("40 images in %.1f ms: %u sent\n", elapsed / 1000.0, images);
  fail_unless (images <= 2 + elapsed / 8000);
  cl_close (a);
  env_stop (e);
}

GST_END_TEST;

/* Mean luma of the @n x @n block at @x, @y of a decoded I420 sample */
static gdouble
block_luma (GstSample * s, guint x, guint y, guint n)
{
  GstVideoInfo info;
  GstVideoFrame frame;
  guint64 sum = 0;
  guint i, j;

  fail_unless (gst_video_info_from_caps (&info, gst_sample_get_caps (s)));
  fail_unless (gst_video_frame_map (&frame, &info, gst_sample_get_buffer (s),
          GST_MAP_READ));
  for (j = y; j < y + n; j++)
    for (i = x; i < x + n; i++)
      sum += ((const guint8 *) GST_VIDEO_FRAME_PLANE_DATA (&frame, 0))[j *
          GST_VIDEO_FRAME_PLANE_STRIDE (&frame, 0) + i];
  gst_video_frame_unmap (&frame);
  return (gdouble) sum / (n * n);
}

/* Reads @n more frames of @c into @aus; returns the last one decoded */
static GstSample *
read_and_decode (Cl * c, GPtrArray * aus, guint n)
{
  GPtrArray *decoded;
  GstSample *last;
  guint i;

  for (i = 0; i < n; i++) {
    Frame f;

    fail_unless_equals_int (v2_frame (c, &f, FRAME_TIMEOUT_US, NULL), RD_OK);
    fail_unless (aus->len > 0 || f.keyframe);
    g_ptr_array_add (aus, g_bytes_ref (f.au));
    frame_clear (&f);
  }
  decoded = decode_aus (aus);
  fail_unless_equals_int (decoded->len, aus->len);
  last = gst_sample_ref (g_ptr_array_index (decoded, decoded->len - 1));
  g_ptr_array_unref (decoded);
  return last;
}

/* Drawn into the stream on request: the pointer's opaque half (dark: its
 * colours are small numbers) is where it is in the decoded frames, a move
 * over a static screen yields a new frame for that subscriber only, and
 * a subscriber that did not ask sees the screen without it. */
GST_START_TEST (test_cursor_drawn)
{
  const gchar *vmm_args[] = STANDIN_ARGS ("0");
  const gchar *bridge_args[] = { "--scanout-quiet-interval", "30", NULL };
  Env *e = env_start (vmm_args, NULL, bridge_args);
  GPtrArray *aus_a = g_ptr_array_new_with_free_func ((GDestroyNotify)
      g_bytes_unref), *aus_p = g_ptr_array_new_with_free_func ((GDestroyNotify)
      g_bytes_unref);
  HxfrSubscribe2Ack ack;
  GstSample *img;
  Frame f;
  Cl *a, *plain, *told;

  if (!e)
    return;
  /* 32x32, opaque on its left half; the pattern there is bright */
  standin_runner_command_expect (e->vmm, "cursor 1 32 32 0 0", "CURSOR 1");
  standin_runner_command_expect (e->vmm, "move 1 40 30", "MOVED 1");

  /* the bridge knows the pointer (its watch has told it) before the
   * first drawn frame: a subscriber that asks for it is sent it */
  told = cl_connect (e);
  fail_unless_equals_int (v2_subscribe_flags (told, 1, 0,
          HXFR_SUBSCRIBE2_CURSOR, NULL, &ack, NULL), 0);
  expect_image (told, 32, 32, 0, 0, 1);
  expect_position (told);
  cl_close (told);

  a = cl_connect (e);
  fail_unless_equals_int (v2_subscribe_flags (a, 1, 0,
          HXFR_SUBSCRIBE2_DRAW_CURSOR, NULL, &ack, NULL), 0);
  fail_unless_equals_int (ack.flags, HXFR_SUBSCRIBE2_DRAW_CURSOR);
  plain = cl_connect (e);
  fail_unless_equals_int (v2_subscribe (plain, 1, NULL, &ack, NULL), 0);

  img = read_and_decode (a, aus_a, 1);
  g_printerr ("drawn: luma %.0f under the pointer, %.0f where it goes\n",
      block_luma (img, 44, 34, 8), block_luma (img, 104, 64, 8));
  fail_unless (block_luma (img, 44, 34, 8) < 50);
  fail_unless (block_luma (img, 104, 64, 8) > 70);
  gst_sample_unref (img);
  img = read_and_decode (plain, aus_p, 1);
  g_printerr ("not drawn: luma %.0f there\n", block_luma (img, 44, 34, 8));
  fail_unless (block_luma (img, 44, 34, 8) > 70);
  gst_sample_unref (img);

  /* a move over the static screen: a new frame, the pointer moved */
  standin_runner_command_expect (e->vmm, "move 1 100 60", "MOVED 1");
  img = read_and_decode (a, aus_a, 1);
  fail_unless (block_luma (img, 44, 34, 8) > 70);
  fail_unless (block_luma (img, 104, 64, 8) < 50);
  gst_sample_unref (img);
  /* the other rendition encoded nothing for it */
  fail_unless_equals_int (v2_frame (plain, &f, G_USEC_PER_SEC, NULL),
      RD_TIMEOUT);
  /* hidden: drawn no more */
  standin_runner_command_expect (e->vmm, "move 1 100 60 hidden", "MOVED 1");
  img = read_and_decode (a, aus_a, 1);
  fail_unless (block_luma (img, 104, 64, 8) > 70);
  gst_sample_unref (img);

  g_ptr_array_unref (aus_a);
  g_ptr_array_unref (aus_p);
  cl_close (a);
  cl_close (plain);
  env_stop (e);
}

GST_END_TEST;

/* The next "helix-cursor-*" element message of @bus within 5 s */
static GstMessage *
next_cursor_message (GstBus * bus)
{
  GstMessage *m = gst_bus_timed_pop_filtered (bus, 5 * GST_SECOND,
      GST_MESSAGE_ELEMENT | GST_MESSAGE_ERROR);

  fail_unless (m != NULL, "no cursor message on the bus");
  fail_unless (GST_MESSAGE_TYPE (m) == GST_MESSAGE_ELEMENT, "an error");
  return m;
}

/* vsockscanoutsrc cursor=true against the bridge: the pointer on the bus,
 * the image as a BGRA sample, then each move, on a static screen */
GST_START_TEST (test_cursor_element)
{
  const gchar *vmm_args[] = STANDIN_ARGS ("0");
  const gchar *bridge_args[] = { "--scanout-quiet-interval", "30", NULL };
  Env *e = env_start (vmm_args, NULL, bridge_args);
  const GstStructure *st;
  GstElement *pipe;
  GstMessage *m;
  GstSample *img;
  GstBus *bus;
  gchar *desc;
  gint x = 0, y = 0;
  guint hot_x = 9;
  gboolean visible = FALSE;

  if (!e)
    return;
  standin_runner_command_expect (e->vmm, "cursor 1 8 4 0 3", "CURSOR 1");
  standin_runner_command_expect (e->vmm, "move 1 12 34", "MOVED 1");
  desc = g_strdup_printf ("vsockscanoutsrc address=%s scanout=1 cursor=true "
      "! fakesink", bridge_runner_get_address (e->bridge));
  pipe = gst_parse_launch (desc, NULL);
  g_free (desc);
  fail_unless (pipe != NULL);
  bus = gst_element_get_bus (pipe);
  fail_unless (gst_element_set_state (pipe, GST_STATE_PLAYING) !=
      GST_STATE_CHANGE_FAILURE);

  m = next_cursor_message (bus);
  st = gst_message_get_structure (m);
  fail_unless (gst_structure_has_name (st, "helix-cursor-image"));
  fail_unless (gst_structure_get (st, "sample", GST_TYPE_SAMPLE, &img,
          "hot-x", G_TYPE_UINT, &hot_x, NULL));
  fail_unless_equals_int (hot_x, 0);
  fail_unless_equals_int (gst_buffer_get_size (gst_sample_get_buffer (img)),
      8 * 4 * 4);
  gst_sample_unref (img);
  gst_message_unref (m);
  m = next_cursor_message (bus);
  st = gst_message_get_structure (m);
  fail_unless (gst_structure_has_name (st, "helix-cursor-position"));
  fail_unless (gst_structure_get (st, "x", G_TYPE_INT, &x, "y", G_TYPE_INT,
          &y, "visible", G_TYPE_BOOLEAN, &visible, NULL));
  fail_unless (x == 12 && y == 34 && visible);
  gst_message_unref (m);

  standin_runner_command_expect (e->vmm, "move 1 -5 7 hidden", "MOVED 1");
  m = next_cursor_message (bus);
  st = gst_message_get_structure (m);
  fail_unless (gst_structure_get (st, "x", G_TYPE_INT, &x, "y", G_TYPE_INT,
          &y, "visible", G_TYPE_BOOLEAN, &visible, NULL));
  fail_unless (x == -5 && y == 7 && !visible);
  gst_message_unref (m);

  gst_element_set_state (pipe, GST_STATE_NULL);
  gst_object_unref (bus);
  gst_object_unref (pipe);
  env_stop (e);
}

GST_END_TEST;

static Suite *
cursor_suite (void)
{
  Suite *s = suite_create ("cursor");
  TCase *tc = tcase_create ("general");

  tcase_set_timeout (tc, 120);
  suite_add_tcase (s, tc);
  tcase_add_test (tc, test_cursor_subscription);
  tcase_add_test (tc, test_cursor_images_coalesced);
  tcase_add_test (tc, test_cursor_drawn);
  tcase_add_test (tc, test_cursor_element);
  return s;
}

GST_CHECK_MAIN (cursor);
