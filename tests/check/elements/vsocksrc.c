/* vsocksrc through GstHarness, fed by guests emulated on the core library:
 * caps from the wire, video meta with the guest's layout (or a repacked
 * frame when downstream takes no meta), renegotiation, force-key-unit
 * events, EOS, and the answers the standalone element gives (DROPPED in v2,
 * an empty FRAME_RESPONSE in v1, ERROR and close for a bad request).
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include <glib/gstdio.h>
#include <gst/check/gstcheck.h>
#include <gst/check/gstharness.h>
#include <gst/video/video.h>

#include "guest-emu.h"

typedef struct
{
  gchar *dir;
  gchar *path;
  gchar *address;
  GstHarness *h;
} Fixture;

static void
fixture_setup (Fixture * f, gboolean with_meta)
{
  f->dir = g_dir_make_tmp ("vsocksrc-XXXXXX", NULL);
  fail_unless (f->dir != NULL);
  f->path = g_build_filename (f->dir, "hx.sock", NULL);
  f->address = g_strconcat ("unix:", f->path, NULL);
  f->h = gst_harness_new_with_padnames ("vsocksrc", NULL, "src");
  g_object_set (f->h->element, "listen", f->address, NULL);
  if (with_meta)
    gst_harness_add_propose_allocation_meta (f->h, GST_VIDEO_META_API_TYPE,
        NULL);
  gst_harness_play (f->h);
}

static void
fixture_teardown (Fixture * f)
{
  gst_harness_teardown (f->h);
  fail_if (g_file_test (f->path, G_FILE_TEST_EXISTS),
      "socket file left behind");
  g_rmdir (f->dir);
  g_free (f->dir);
  g_free (f->path);
  g_free (f->address);
}

/* The element accepts from its streaming thread; connecting may come
 * first (the socket is listening from start()). */
static GuestEmu *
connect_guest (Fixture * f)
{
  GError *err = NULL;
  GuestEmu *g = guest_emu_connect (f->address, &err);

  fail_unless (g != NULL, "connect: %s", err ? err->message : "");
  return g;
}

static GstEvent *
pull_event_of_type (GstHarness * h, GstEventType type)
{
  for (;;) {
    GstEvent *ev = gst_harness_pull_event (h);

    fail_unless (ev != NULL, "no %s event", gst_event_type_get_name (type));
    if (GST_EVENT_TYPE (ev) == type)
      return ev;
    gst_event_unref (ev);
  }
}

static void
check_caps (GstHarness * h, const gchar * format, gint w, gint hh,
    gint fps_n, gint fps_d)
{
  GstEvent *ev = pull_event_of_type (h, GST_EVENT_CAPS);
  GstCaps *caps;
  GstVideoInfo info;

  gst_event_parse_caps (ev, &caps);
  fail_unless (gst_video_info_from_caps (&info, caps));
  fail_unless_equals_string (gst_video_format_to_string
      (GST_VIDEO_INFO_FORMAT (&info)), format);
  fail_unless_equals_int (GST_VIDEO_INFO_WIDTH (&info), w);
  fail_unless_equals_int (GST_VIDEO_INFO_HEIGHT (&info), hh);
  fail_unless_equals_int (GST_VIDEO_INFO_FPS_N (&info), fps_n);
  fail_unless_equals_int (GST_VIDEO_INFO_FPS_D (&info), fps_d);
  gst_event_unref (ev);
}

static void
send_nv12 (GuestEmu * g, guint w, guint h, guint stride, guint n,
    gint64 pts, gboolean key, guint8 ** out_pixels, gsize * out_size)
{
  HxfrFrameRequest r = { 0, };
  GError *err = NULL;
  gsize size;
  guint8 *pixels = guest_emu_make_nv12 (w, h, stride, n, &size);
  guint rows = (h + 1) & ~1u;

  r.width = w;
  r.height = h;
  r.format = HXFR_FORMAT_NV12;
  r.pts = pts;
  r.duration = 33333333;
  r.force_keyframe = key;
  r.stride[0] = stride;
  if (g->version == 2) {
    r.n_planes = 2;
    r.stride[1] = stride;
    r.offset[0] = 0;
    r.offset[1] = stride * rows;
  }
  fail_unless (guest_emu_send_frame (g, &r, pixels, size, &err), "%s",
      err ? err->message : "");
  if (out_pixels)
    *out_pixels = pixels;
  else
    g_free (pixels);
  if (out_size)
    *out_size = size;
}

static void
expect_answer (GuestEmu * g, guint8 type, HxfrFrameStatus status)
{
  GuestAnswer a;
  GError *err = NULL;

  fail_unless (guest_emu_receive (g, &a, &err), "%s", err ? err->message : "");
  fail_unless_equals_int (a.type, type);
  if (type == HXFR_MSG_FRAME_RESPONSE2)
    fail_unless_equals_int (a.resp.status, status);
  if (type == HXFR_MSG_FRAME_RESPONSE) {
    /* v1 "dropped": a response with no NAL entry */
    fail_unless_equals_int (a.resp.nal_count, 0);
    fail_unless_equals_int (g_bytes_get_size (a.au), 0);
  }
  guest_answer_clear (&a);
}

/* luma rows of a buffer (through its video meta) against the guest's */
static void
check_luma (GstBuffer * buf, const GstVideoInfo * info, const guint8 * src,
    guint src_stride)
{
  GstVideoFrame frame;
  guint y;

  fail_unless (gst_video_frame_map (&frame, (GstVideoInfo *) info, buf,
          GST_MAP_READ));
  for (y = 0; y < (guint) GST_VIDEO_INFO_HEIGHT (info); y++)
    fail_unless (memcmp ((guint8 *) GST_VIDEO_FRAME_PLANE_DATA (&frame, 0) +
            y * GST_VIDEO_FRAME_PLANE_STRIDE (&frame, 0), src + y * src_stride,
            GST_VIDEO_INFO_WIDTH (info)) == 0, "luma row %u differs", y);
  gst_video_frame_unmap (&frame);
}

GST_START_TEST (test_v2_caps_meta_keyunit_renegotiate_eos)
{
  Fixture f;
  GuestEmu *g;
  GuestAnswer a;
  GError *err = NULL;
  GstBuffer *buf;
  GstVideoMeta *meta;
  GstEvent *ev;
  GstVideoInfo info;
  guint8 *pixels;
  gboolean all_headers;
  guint count;

  fixture_setup (&f, TRUE);
  g = connect_guest (&f);
  fail_unless (guest_emu_hello (g, 4, NULL, &a, &err), "%s",
      err ? err->message : "");
  fail_unless_equals_int (a.type, HXFR_MSG_HELLO_ACK);
  fail_unless_equals_int (g->ack.version, 2);
  fail_unless (g->ack.max_in_flight >= 1 && g->ack.max_in_flight <= 4);
  guest_answer_clear (&a);
  /* one guest per element: the listening socket is gone once it is in */
  fail_if (g_file_test (f.path, G_FILE_TEST_EXISTS));

  /* frame 0: padded rows (stride 80 for 64 pixels) */
  send_nv12 (g, 64, 48, 80, 0, 1000, FALSE, &pixels, NULL);
  expect_answer (g, HXFR_MSG_FRAME_RESPONSE2, HXFR_STATUS_DROPPED);
  check_caps (f.h, "NV12", 64, 48, 30, 1);      /* framerate from HELLO */
  buf = gst_harness_pull (f.h);
  fail_unless_equals_uint64 (GST_BUFFER_PTS (buf), 1000);
  fail_unless_equals_uint64 (GST_BUFFER_DURATION (buf), 33333333);
  meta = gst_buffer_get_video_meta (buf);
  fail_unless (meta != NULL);
  fail_unless_equals_int (meta->stride[0], 80);
  fail_unless_equals_int (meta->stride[1], 80);
  fail_unless_equals_int (meta->offset[1], 80 * 48);
  gst_video_info_set_format (&info, GST_VIDEO_FORMAT_NV12, 64, 48);
  check_luma (buf, &info, pixels, 80);
  g_free (pixels);
  gst_buffer_unref (buf);

  /* frame 1 wanted as IDR: a force-key-unit event comes first */
  send_nv12 (g, 64, 48, 64, 1, 2000, TRUE, NULL, NULL);
  expect_answer (g, HXFR_MSG_FRAME_RESPONSE2, HXFR_STATUS_DROPPED);
  ev = pull_event_of_type (f.h, GST_EVENT_CUSTOM_DOWNSTREAM);
  fail_unless (gst_video_event_is_force_key_unit (ev));
  fail_unless (gst_video_event_parse_downstream_force_key_unit (ev, NULL,
          NULL, NULL, &all_headers, &count));
  fail_unless (all_headers);
  gst_event_unref (ev);
  buf = gst_harness_pull (f.h);
  fail_unless_equals_uint64 (GST_BUFFER_PTS (buf), 2000);
  gst_buffer_unref (buf);

  /* a KEYFRAME_REQ also becomes an event */
  fail_unless (guest_emu_send_simple (g, HXFR_MSG_KEYFRAME_REQ, NULL, 0, NULL));
  /* the guest changes size: new caps before the next buffer */
  send_nv12 (g, 96, 64, 96, 2, 3000, FALSE, &pixels, NULL);
  expect_answer (g, HXFR_MSG_FRAME_RESPONSE2, HXFR_STATUS_DROPPED);
  ev = pull_event_of_type (f.h, GST_EVENT_CUSTOM_DOWNSTREAM);
  fail_unless (gst_video_event_is_force_key_unit (ev));
  gst_event_unref (ev);
  check_caps (f.h, "NV12", 96, 64, 30, 1);
  buf = gst_harness_pull (f.h);
  gst_video_info_set_format (&info, GST_VIDEO_FORMAT_NV12, 96, 64);
  check_luma (buf, &info, pixels, 96);
  g_free (pixels);
  gst_buffer_unref (buf);

  /* a PTS going backwards is made strictly increasing */
  send_nv12 (g, 96, 64, 96, 3, 10, FALSE, NULL, NULL);
  expect_answer (g, HXFR_MSG_FRAME_RESPONSE2, HXFR_STATUS_DROPPED);
  buf = gst_harness_pull (f.h);
  fail_unless (GST_BUFFER_PTS (buf) > 3000);
  gst_buffer_unref (buf);

  /* the guest leaves: EOS */
  guest_emu_free (g);
  ev = pull_event_of_type (f.h, GST_EVENT_EOS);
  gst_event_unref (ev);
  fixture_teardown (&f);
}

GST_END_TEST;

GST_START_TEST (test_repack_without_meta)
{
  Fixture f;
  GuestEmu *g;
  GuestAnswer a;
  GstBuffer *buf;
  GstVideoInfo info;
  guint8 *pixels;

  fixture_setup (&f, FALSE);
  g = connect_guest (&f);
  fail_unless (guest_emu_hello (g, 1, NULL, &a, NULL));
  guest_answer_clear (&a);
  send_nv12 (g, 62, 30, 96, 0, 0, FALSE, &pixels, NULL);
  expect_answer (g, HXFR_MSG_FRAME_RESPONSE2, HXFR_STATUS_DROPPED);
  check_caps (f.h, "NV12", 62, 30, 30, 1);
  buf = gst_harness_pull (f.h);
  gst_video_info_set_format (&info, GST_VIDEO_FORMAT_NV12, 62, 30);
  /* downstream takes no meta: a default-layout frame */
  fail_unless_equals_int (gst_buffer_get_size (buf), info.size);
  fail_unless (gst_buffer_get_video_meta (buf) == NULL);
  check_luma (buf, &info, pixels, 96);
  g_free (pixels);
  gst_buffer_unref (buf);
  guest_emu_free (g);
  gst_event_unref (pull_event_of_type (f.h, GST_EVENT_EOS));
  fixture_teardown (&f);
}

GST_END_TEST;

GST_START_TEST (test_v1_guest)
{
  Fixture f;
  GuestEmu *g;
  GuestAnswer a;
  GstBuffer *buf;
  GstVideoInfo info;
  guint8 *pixels;
  HxfrConfig cfg = { 0, };
  guint8 fixed[HXFR_MAX_FIXED_SIZE];
  gsize len;
  guint i;

  fixture_setup (&f, TRUE);
  g = connect_guest (&f);
  /* v1: no handshake; CONFIG_REQ (never answered) gives the framerate */
  cfg.width = 64;
  cfg.height = 48;
  cfg.bitrate = 1000000;
  cfg.fps_n = 25;
  cfg.fps_d = 1;
  len = hxfr_config_write (&cfg, fixed);
  fail_unless (guest_emu_send_simple (g, HXFR_MSG_CONFIG_REQ, fixed, len,
          NULL));
  fail_unless (guest_emu_send_simple (g, HXFR_MSG_PING, NULL, 0, NULL));
  fail_unless (guest_emu_receive (g, &a, NULL));
  fail_unless_equals_int (a.type, HXFR_MSG_PONG);

  for (i = 0; i < 3; i++) {
    send_nv12 (g, 64, 48, 64, i, i * 40000000, FALSE, &pixels, NULL);
    /* one in flight: the answer comes before the next request */
    expect_answer (g, HXFR_MSG_FRAME_RESPONSE, HXFR_STATUS_OK);
    if (i == 0)
      check_caps (f.h, "NV12", 64, 48, 25, 1);
    buf = gst_harness_pull (f.h);
    gst_video_info_set_format (&info, GST_VIDEO_FORMAT_NV12, 64, 48);
    check_luma (buf, &info, pixels, 64);
    fail_unless_equals_uint64 (GST_BUFFER_PTS (buf), i * 40000000);
    g_free (pixels);
    gst_buffer_unref (buf);
  }
  guest_emu_free (g);
  gst_event_unref (pull_event_of_type (f.h, GST_EVENT_EOS));
  fixture_teardown (&f);
}

GST_END_TEST;

GST_START_TEST (test_bad_request_error_and_close)
{
  Fixture f;
  GuestEmu *g;
  GuestAnswer a;
  HxfrFrameRequest r = { 0, };
  GstBus *bus = gst_bus_new ();
  GstMessage *msg;
  guint8 px[16] = { 0, };

  fixture_setup (&f, TRUE);
  gst_element_set_bus (f.h->element, bus);
  g = connect_guest (&f);
  fail_unless (guest_emu_hello (g, 1, NULL, &a, NULL));
  guest_answer_clear (&a);
  /* zero width */
  r.width = 0;
  r.height = 2;
  r.format = HXFR_FORMAT_NV12;
  r.n_planes = 2;
  r.stride[0] = r.stride[1] = 8;
  r.offset[1] = 8;
  fail_unless (guest_emu_send_frame (g, &r, px, sizeof (px), NULL));
  fail_unless (guest_emu_receive (g, &a, NULL));
  fail_unless_equals_int (a.type, HXFR_MSG_ERROR);
  fail_unless_equals_int (a.error_code, HXFR_ERR_LIMIT);
  fail_unless (guest_emu_wait_closed (g));
  msg = gst_bus_timed_pop_filtered (bus, 10 * GST_SECOND, GST_MESSAGE_ERROR);
  fail_unless (msg != NULL, "no error on the bus");
  gst_message_unref (msg);
  guest_emu_free (g);
  gst_element_set_bus (f.h->element, NULL);
  gst_object_unref (bus);
  fixture_teardown (&f);
}

GST_END_TEST;

/* Standalone on TCP (port 0: the bound port is not observable from here,
 * so a fixed high port), and a format change mid-stream: NV12 then BGRx. */
GST_START_TEST (test_tcp_format_change)
{
  GstHarness *h = gst_harness_new_with_padnames ("vsocksrc", NULL, "src");
  GuestEmu *g = NULL;
  GuestAnswer a;
  GstBuffer *buf;
  HxfrFrameRequest r = { 0, };
  guint8 px[16 * 8 * 4];
  guint port, i;
  gchar *addr = NULL;

  gst_harness_add_propose_allocation_meta (h, GST_VIDEO_META_API_TYPE, NULL);
  /* a port free now is very likely still free a moment later */
  for (i = 0; i < 20 && !g; i++) {
    port = 20000 + g_random_int_range (0, 20000);
    g_free (addr);
    addr = g_strdup_printf ("tcp:127.0.0.1:%u", port);
    g_object_set (h->element, "listen", addr, NULL);
    if (gst_element_set_state (h->element, GST_STATE_PLAYING) ==
        GST_STATE_CHANGE_FAILURE) {
      gst_element_set_state (h->element, GST_STATE_NULL);
      continue;
    }
    g = guest_emu_connect (addr, NULL);
  }
  fail_unless (g != NULL);
  gst_harness_play (h);
  fail_unless (guest_emu_hello (g, 1, NULL, &a, NULL));
  guest_answer_clear (&a);

  send_nv12 (g, 16, 8, 16, 0, 0, FALSE, NULL, NULL);
  expect_answer (g, HXFR_MSG_FRAME_RESPONSE2, HXFR_STATUS_DROPPED);
  check_caps (h, "NV12", 16, 8, 30, 1);
  gst_buffer_unref (gst_harness_pull (h));

  memset (px, 0x40, sizeof (px));
  r.width = 16;
  r.height = 8;
  r.format = HXFR_FORMAT_XRGB8888;
  r.pts = 1000;
  fail_unless (guest_emu_send_frame (g, &r, px, sizeof (px), NULL));
  expect_answer (g, HXFR_MSG_FRAME_RESPONSE2, HXFR_STATUS_DROPPED);
  check_caps (h, "BGRx", 16, 8, 30, 1);
  buf = gst_harness_pull (h);
  fail_unless_equals_int (gst_buffer_get_size (buf), sizeof (px));
  gst_buffer_unref (buf);

  guest_emu_free (g);
  gst_event_unref (pull_event_of_type (h, GST_EVENT_EOS));
  gst_harness_teardown (h);
  g_free (addr);
}

GST_END_TEST;

static Suite *
vsocksrc_suite (void)
{
  Suite *s = suite_create ("vsocksrc");
  TCase *tc = tcase_create ("general");

  suite_add_tcase (s, tc);
  tcase_add_test (tc, test_v2_caps_meta_keyunit_renegotiate_eos);
  tcase_add_test (tc, test_repack_without_meta);
  tcase_add_test (tc, test_v1_guest);
  tcase_add_test (tc, test_bad_request_error_and_close);
  tcase_add_test (tc, test_tcp_format_change);
  return s;
}

GST_CHECK_MAIN (vsocksrc);
