/* helix-host-bridge end to end: the built bridge runs as a subprocess (UNIX
 * socket in a temp dir, or TCP on 127.0.0.1) with x264enc; guests are the
 * real vsockenc (`appsrc ! vsockenc ! h264parse ! avdec_h264`, fed with
 * videotestsrc frames so that every decoded frame can be compared with its
 * source) or guests emulated on the core library (v1 exactly as
 * docs/protocol.md section 5, v2, and malformed input).
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include <stdlib.h>
#include <unistd.h>
#include <glib/gstdio.h>
#include <gst/check/gstcheck.h>
#include <gst/app/gstappsrc.h>
#include <gst/app/gstappsink.h>
#include <gst/video/video.h>

#include "bridge-runner.h"
#include "video-compare.h"
#include "test-frames.h"
#include "guest-emu.h"
#include "streamer.h"
#include "text-number.h"

#define PULL_TIMEOUT (20 * GST_SECOND)

static const gchar *const x264_args[] = { "--encoder", "x264enc", NULL };

/* Frames */

static void
append_frames (GPtrArray * to, GPtrArray * from)
{
  guint i;

  for (i = 0; i < from->len; i++)
    g_ptr_array_add (to, gst_sample_ref (g_ptr_array_index (from, i)));
  g_ptr_array_unref (from);
}

static void
check_decoded (GPtrArray * decoded, GPtrArray * refs, const gchar * what)
{
  guint i;

  fail_unless_equals_int (decoded->len, refs->len);
  for (i = 0; i < refs->len; i++) {
    gdouble mse = video_compare_luma_mse (g_ptr_array_index (decoded, i),
        g_ptr_array_index (refs, i));

    fail_unless (mse <= VIDEO_COMPARE_MAX_MSE_30DB,
        "%s: frame %u luma MSE %.1f (PSNR below " "30 dB)", what, i, mse);
  }
}

/* A vsockenc guest: appsrc ! vsockenc ! h264parse ! avdec_h264 ! I420 */

typedef struct
{
  GstElement *pipeline;
  GstElement *src;
  GstElement *sink;
  GstBus *bus;
  guint pushed;
} Guest;

static Guest *
guest_start (const gchar * address, GPtrArray * frames, const gchar * props)
{
  Guest *g = g_new0 (Guest, 1);
  gchar *transport, *desc;
  guint i;

  if (g_str_has_prefix (address, "unix:"))
    transport = g_strdup_printf ("socket-path=%s", address + 5);
  else
    transport = g_strdup_printf ("tcp-host=127.0.0.1 tcp-port=%s",
        strrchr (address, ':') + 1);
  desc = g_strdup_printf ("appsrc name=src format=time ! vsockenc %s %s ! "
      "h264parse name=parse ! avdec_h264 ! videoconvert ! "
      "video/x-raw,format=I420 ! appsink name=sink sync=false", transport,
      props ? props : "");
  g->pipeline = gst_parse_launch (desc, NULL);
  fail_unless (g->pipeline != NULL, "%s", desc);
  g->src = gst_bin_get_by_name (GST_BIN (g->pipeline), "src");
  g->sink = gst_bin_get_by_name (GST_BIN (g->pipeline), "sink");
  g->bus = gst_element_get_bus (g->pipeline);
  g_free (desc);
  g_free (transport);

  gst_element_set_state (g->pipeline, GST_STATE_PLAYING);
  /* appsrc queues without bound: everything is pushed at once */
  for (i = 0; i < frames->len; i++)
    gst_app_src_push_sample (GST_APP_SRC (g->src),
        g_ptr_array_index (frames, i));
  gst_app_src_end_of_stream (GST_APP_SRC (g->src));
  g->pushed = frames->len;
  return g;
}

/* Pulls the decoded frames until EOS; *error gets the bus error, if any. */
static GPtrArray *
guest_finish (Guest * g, gchar ** error)
{
  GPtrArray *out = g_ptr_array_new_with_free_func ((GDestroyNotify)
      gst_sample_unref);
  GstSample *s;
  GstMessage *msg;

  while ((s = gst_app_sink_try_pull_sample (GST_APP_SINK (g->sink),
              PULL_TIMEOUT)))
    g_ptr_array_add (out, s);
  /* frames missing: the error that explains it may still be on its way;
   * vsockenc's (the host's reason) may come after upstream's "internal
   * data stream error", so all errors are collected until its own */
  if (error)
    *error = NULL;
  msg = gst_bus_timed_pop_filtered (g->bus, out->len < g->pushed ?
      PULL_TIMEOUT : 0, GST_MESSAGE_ERROR);
  while (msg) {
    GError *err = NULL;
    gboolean from_enc = g_str_has_prefix (GST_OBJECT_NAME (GST_MESSAGE_SRC
            (msg)), "vsockenc");

    gst_message_parse_error (msg, &err, NULL);
    GST_INFO ("guest error: %s", err->message);
    if (error) {
      gchar *all = g_strconcat (*error ? *error : "", *error ? "; " : "",
          err->message, NULL);

      g_free (*error);
      *error = all;
    }
    g_error_free (err);
    gst_message_unref (msg);
    msg = from_enc ? NULL : gst_bus_timed_pop_filtered (g->bus,
        5 * GST_SECOND, GST_MESSAGE_ERROR);
  }
  {
    /* RGB guests are encoded as 4:2:0, a stream every decoder plays */
    GstElement *parse = gst_bin_get_by_name (GST_BIN (g->pipeline), "parse");
    GstPad *pad = gst_element_get_static_pad (parse, "src");
    GstCaps *caps = gst_pad_get_current_caps (pad);
    const gchar *profile = caps ?
        gst_structure_get_string (gst_caps_get_structure (caps, 0),
        "profile") : NULL;

    fail_if (profile && strstr (profile, "4:4:4"), "profile %s", profile);
    if (caps)
      gst_caps_unref (caps);
    gst_object_unref (pad);
    gst_object_unref (parse);
  }
  gst_element_set_state (g->pipeline, GST_STATE_NULL);
  gst_object_unref (g->src);
  gst_object_unref (g->sink);
  gst_object_unref (g->bus);
  gst_object_unref (g->pipeline);
  g_free (g);
  return out;
}

/* One stream through the bridge, checked frame by frame. */
static void
roundtrip (const gchar * address, const gchar * format, guint w, guint h,
    guint n)
{
  GPtrArray *frames = test_frames_collect (format, w, h, n, FALSE);
  GPtrArray *refs = test_frames_collect (format, w, h, n, TRUE);
  gchar *what = g_strdup_printf ("%s %ux%u", format, w, h);
  gchar *error = NULL;
  GPtrArray *decoded = guest_finish (guest_start (address, frames, NULL),
      &error);

  fail_unless (error == NULL, "%s: %s", what, error);
  check_decoded (decoded, refs, what);
  g_ptr_array_unref (frames);
  g_ptr_array_unref (refs);
  g_ptr_array_unref (decoded);
  g_free (what);
}

GST_START_TEST (test_formats_and_sizes_unix)
{
  BridgeRunner *r = bridge_runner_start (BRIDGE_RUNNER_UNIX, x264_args);
  static const gchar *formats[] = { "NV12", "I420", "BGRx" };
  static const guint sizes[][2] = { {320, 240}, {322, 182}, {640, 360} };
  guint f, s;

  fail_unless (r != NULL);
  for (f = 0; f < G_N_ELEMENTS (formats); f++)
    for (s = 0; s < G_N_ELEMENTS (sizes); s++)
      roundtrip (bridge_runner_get_address (r), formats[f], sizes[s][0],
          sizes[s][1], 6);
  /* one session per stream, each ended by its guest */
  fail_unless (bridge_runner_wait_log (r, "reason=\"guest left\"", 9, 10));
  bridge_runner_stop_checked (r);
}

GST_END_TEST;

GST_START_TEST (test_tcp)
{
  BridgeRunner *r = bridge_runner_start (BRIDGE_RUNNER_TCP, x264_args);

  fail_unless (r != NULL);
  fail_unless (bridge_runner_get_port (r) > 0);
  roundtrip (bridge_runner_get_address (r), "NV12", 320, 240, 6);
  roundtrip (bridge_runner_get_address (r), "BGRx", 322, 182, 6);
  bridge_runner_stop_checked (r);
}

GST_END_TEST;

/* Odd sizes: 4:2:0 H.264 encoders cannot take them. The guest gets a clear
 * error (ERROR -8 naming the size), never a hang, and the bridge keeps
 * serving. */
GST_START_TEST (test_odd_size)
{
  BridgeRunner *r = bridge_runner_start (BRIDGE_RUNNER_UNIX, x264_args);
  GPtrArray *frames, *decoded;
  gchar *error = NULL;

  fail_unless (r != NULL);
  frames = test_frames_collect ("NV12", 321, 241, 4, FALSE);
  decoded = guest_finish (guest_start (bridge_runner_get_address (r), frames,
          NULL), &error);
  fail_unless (error != NULL, "odd size neither refused nor decoded");
  fail_unless (strstr (error, "321x241") && strstr (error, "even"),
      "unclear error: %s", error);
  fail_unless (bridge_runner_wait_log (r, "errors=1", 1, 10));
  g_free (error);
  g_ptr_array_unref (frames);
  g_ptr_array_unref (decoded);
  roundtrip (bridge_runner_get_address (r), "NV12", 320, 240, 4);
  bridge_runner_stop_checked (r);
}

GST_END_TEST;

GST_START_TEST (test_resolution_change)
{
  BridgeRunner *r = bridge_runner_start (BRIDGE_RUNNER_UNIX, x264_args);
  GPtrArray *frames = g_ptr_array_new_with_free_func ((GDestroyNotify)
      gst_sample_unref);
  GPtrArray *refs = g_ptr_array_new_with_free_func ((GDestroyNotify)
      gst_sample_unref);
  GPtrArray *decoded;
  gchar *error = NULL;
  guint i;

  fail_unless (r != NULL);
  append_frames (frames, test_frames_collect ("NV12", 320, 240, 5, FALSE));
  append_frames (frames, test_frames_collect ("NV12", 640, 360, 5, FALSE));
  append_frames (refs, test_frames_collect ("NV12", 320, 240, 5, TRUE));
  append_frames (refs, test_frames_collect ("NV12", 640, 360, 5, TRUE));
  /* the second half continues the timeline of the first */
  for (i = 5; i < frames->len; i++) {
    GstSample *s = g_ptr_array_index (frames, i);
    GstBuffer *b = gst_buffer_copy (gst_sample_get_buffer (s));
    GstSample *t;

    GST_BUFFER_PTS (b) += 5 * GST_SECOND / 30;
    t = gst_sample_new (b, gst_sample_get_caps (s), NULL, NULL);
    gst_buffer_unref (b);
    g_ptr_array_index (frames, i) = t;
    gst_sample_unref (s);
  }
  decoded = guest_finish (guest_start (bridge_runner_get_address (r), frames,
          NULL), &error);
  fail_unless (error == NULL, "%s", error);
  check_decoded (decoded, refs, "320x240 then 640x360");
  g_ptr_array_unref (frames);
  g_ptr_array_unref (refs);
  g_ptr_array_unref (decoded);
  bridge_runner_stop_checked (r);
}

GST_END_TEST;

GST_START_TEST (test_several_guests)
{
  BridgeRunner *r = bridge_runner_start (BRIDGE_RUNNER_UNIX, x264_args);
  static const gchar *formats[] = { "NV12", "I420", "BGRx" };
  static const guint sizes[][2] = { {320, 240}, {322, 182}, {176, 144} };
  GPtrArray *frames[3], *refs[3];
  Guest *guests[3];
  guint i;

  fail_unless (r != NULL);
  for (i = 0; i < 3; i++) {
    frames[i] = test_frames_collect (formats[i], sizes[i][0], sizes[i][1], 15,
        FALSE);
    refs[i] =
        test_frames_collect (formats[i], sizes[i][0], sizes[i][1], 15, TRUE);
  }
  for (i = 0; i < 3; i++)
    guests[i] = guest_start (bridge_runner_get_address (r), frames[i], NULL);
  for (i = 0; i < 3; i++) {
    gchar *error = NULL;
    GPtrArray *decoded = guest_finish (guests[i], &error);

    fail_unless (error == NULL, "guest %u: %s", i, error);
    check_decoded (decoded, refs[i], formats[i]);
    g_ptr_array_unref (decoded);
    g_ptr_array_unref (frames[i]);
    g_ptr_array_unref (refs[i]);
  }
  /* three sessions at once, each its own pipeline */
  fail_unless (bridge_runner_wait_log (r, "reason=\"guest left\"", 3, 10));
  bridge_runner_stop_checked (r);
}

GST_END_TEST;

/* Decodes Annex B access units (appsrc ! h264parse ! avdec_h264). */
static GPtrArray *
decode_aus (GPtrArray * aus)
{
  GstElement *p = gst_parse_launch ("appsrc name=src format=time caps="
      "video/x-h264,stream-format=byte-stream,alignment=au ! h264parse ! "
      "avdec_h264 ! videoconvert ! video/x-raw,format=I420 ! "
      "appsink name=sink sync=false", NULL);
  GstElement *src = gst_bin_get_by_name (GST_BIN (p), "src");
  GstElement *sink = gst_bin_get_by_name (GST_BIN (p), "sink");
  GPtrArray *out = g_ptr_array_new_with_free_func ((GDestroyNotify)
      gst_sample_unref);
  GstSample *s;
  guint i;

  gst_element_set_state (p, GST_STATE_PLAYING);
  for (i = 0; i < aus->len; i++) {
    GstBuffer *b = gst_buffer_new_wrapped_bytes (g_ptr_array_index (aus, i));

    GST_BUFFER_PTS (b) = i * GST_SECOND / 30;
    gst_app_src_push_buffer (GST_APP_SRC (src), b);
  }
  gst_app_src_end_of_stream (GST_APP_SRC (src));
  while ((s = gst_app_sink_try_pull_sample (GST_APP_SINK (sink), PULL_TIMEOUT)))
    g_ptr_array_add (out, s);
  gst_element_set_state (p, GST_STATE_NULL);
  gst_object_unref (src);
  gst_object_unref (sink);
  gst_object_unref (p);
  return out;
}

/* A deployed v1 guest: no handshake, NV12 pixels, one request in flight,
 * the answer read just before the next request. */
GST_START_TEST (test_v1_guest)
{
  BridgeRunner *r = bridge_runner_start (BRIDGE_RUNNER_UNIX, x264_args);
  GPtrArray *frames = test_frames_collect ("NV12", 320, 240, 10, FALSE);
  GPtrArray *refs = test_frames_collect ("NV12", 320, 240, 10, TRUE);
  GPtrArray *aus = g_ptr_array_new ();
  GPtrArray *decoded;
  GuestEmu *g;
  GuestAnswer a;
  GError *err = NULL;
  HxfrConfig cfg = { 0, };
  guint8 fixed[HXFR_MAX_FIXED_SIZE];
  gsize len;
  guint i;

  fail_unless (r != NULL);
  g = guest_emu_connect (bridge_runner_get_address (r), &err);
  fail_unless (g != NULL);
  cfg.width = 320;
  cfg.height = 240;
  cfg.bitrate = 3000000;
  cfg.fps_n = 30;
  cfg.fps_d = 1;
  cfg.profile = 66;
  cfg.realtime = 1;
  len = hxfr_config_write (&cfg, fixed);
  fail_unless (guest_emu_send_simple (g, HXFR_MSG_CONFIG_REQ, fixed, len,
          NULL));

  for (i = 0; i < frames->len; i++) {
    GstBuffer *b = gst_sample_get_buffer (g_ptr_array_index (frames, i));
    HxfrFrameRequest req = { 0, };
    GstMapInfo map;

    req.width = 320;
    req.height = 240;
    req.format = HXFR_FORMAT_NV12;
    req.stride[0] = 320;
    req.pts = GST_BUFFER_PTS (b);
    req.duration = GST_BUFFER_DURATION (b);
    req.force_keyframe = i == 0;
    gst_buffer_map (b, &map, GST_MAP_READ);
    fail_unless (guest_emu_send_frame (g, &req, map.data, map.size, &err),
        "%s", err ? err->message : "");
    gst_buffer_unmap (b, &map);
    fail_unless (guest_emu_receive (g, &a, &err), "%s",
        err ? err->message : "");
    fail_unless_equals_int (a.type, HXFR_MSG_FRAME_RESPONSE);
    fail_unless_equals_int (a.resp.nal_count, 1);
    fail_unless_equals_int64 (a.resp.pts, (gint64) GST_BUFFER_PTS (b));
    if (i == 0)
      fail_unless (a.resp.keyframe);
    fail_unless (g_bytes_get_size (a.au) > 4);
    g_ptr_array_add (aus, g_bytes_ref (a.au));
    guest_answer_clear (&a);
  }
  guest_emu_free (g);
  decoded = decode_aus (aus);
  check_decoded (decoded, refs, "v1 guest");
  fail_unless (bridge_runner_wait_log (r, "version=1", 2, 10));
  /* CONFIG_REQ: applied (never answered) */
  fail_unless (bridge_runner_wait_log (r,
          "guest bitrate 3000000 bit/s, x264enc bitrate=3000", 1, 10));
  g_ptr_array_unref (aus);
  g_ptr_array_unref (decoded);
  g_ptr_array_unref (frames);
  g_ptr_array_unref (refs);
  bridge_runner_stop_checked (r);
}

GST_END_TEST;

static GuestEmu *
connect_v2 (BridgeRunner * r, const gchar * token)
{
  GuestEmu *g = guest_emu_connect (bridge_runner_get_address (r), NULL);
  GuestAnswer a;

  fail_unless (g != NULL);
  fail_unless (guest_emu_hello (g, 4, token, &a, NULL));
  fail_unless_equals_int (a.type, HXFR_MSG_HELLO_ACK);
  fail_unless_equals_int (g->ack.max_in_flight, 4);
  guest_answer_clear (&a);
  return g;
}

/* The deployed element's behaviour: vsockenc speaking v1 only. */
GST_START_TEST (test_vsockenc_v1_mode)
{
  BridgeRunner *r = bridge_runner_start (BRIDGE_RUNNER_UNIX, x264_args);
  static const gchar *formats[] = { "NV12", "BGRx" };
  guint i;

  fail_unless (r != NULL);
  for (i = 0; i < G_N_ELEMENTS (formats); i++) {
    GPtrArray *frames = test_frames_collect (formats[i], 320, 240, 6, FALSE);
    GPtrArray *refs = test_frames_collect (formats[i], 320, 240, 6, TRUE);
    gchar *error = NULL;
    GPtrArray *decoded = guest_finish (guest_start (bridge_runner_get_address
            (r), frames, "protocol=v1"), &error);

    fail_unless (error == NULL, "%s: %s", formats[i], error);
    check_decoded (decoded, refs, formats[i]);
    g_ptr_array_unref (frames);
    g_ptr_array_unref (refs);
    g_ptr_array_unref (decoded);
  }
  fail_unless (bridge_runner_wait_log (r, "version=1", 4, 10));
  bridge_runner_stop_checked (r);
}

GST_END_TEST;

/* Keyframes where the guest wants them (HELLO interval, KEYFRAME_REQ, the
 * per-frame flag, CONTROL changing the interval) and a bitrate change that
 * reaches the running encoder. */
GST_START_TEST (test_keyframes_and_bitrate)
{
  BridgeRunner *r = bridge_runner_start (BRIDGE_RUNNER_UNIX, x264_args);
  GuestEmu *g;
  GuestAnswer a;
  HxfrControl ctl = { 0, };
  guint8 fixed[HXFR_MAX_FIXED_SIZE];
  gsize size, len;
  guint8 *px;
  gboolean key[40];
  guint i;

  fail_unless (r != NULL);
  g = connect_v2 (r, NULL);     /* HELLO: keyframe interval 30 */
  for (i = 0; i < 40; i++) {
    HxfrFrameRequest req = { 0, };

    if (i == 33)
      fail_unless (guest_emu_send_simple (g, HXFR_MSG_KEYFRAME_REQ, NULL, 0,
              NULL));
    if (i == 35) {
      ctl.mask = HXFR_CONTROL_BITRATE | HXFR_CONTROL_KEYFRAME_INTERVAL;
      ctl.bitrate = 1000000;
      ctl.keyframe_interval = 2;
      len = hxfr_control_write (&ctl, fixed);
      fail_unless (guest_emu_send_simple (g, HXFR_MSG_CONTROL, fixed, len,
              NULL));
    }
    px = guest_emu_make_nv12 (160, 120, 160, i, &size);
    req.width = 160;
    req.height = 120;
    req.format = HXFR_FORMAT_NV12;
    req.pts = i * 33333333;
    req.duration = 33333333;
    req.force_keyframe = i == 20;
    fail_unless (guest_emu_send_frame (g, &req, px, size, NULL));
    g_free (px);
    fail_unless (guest_emu_receive (g, &a, NULL));
    fail_unless_equals_int (a.type, HXFR_MSG_FRAME_RESPONSE2);
    fail_unless_equals_int (a.resp.status, HXFR_STATUS_OK);
    fail_unless_equals_int (a.resp.seq, i);
    fail_unless_equals_int64 (a.resp.pts, i * 33333333);
    fail_unless_equals_int64 (a.resp.dts, a.resp.pts);
    key[i] = a.resp.keyframe;
    guest_answer_clear (&a);
  }
  {
    /* the interval counts from the last IDR, forced ones included: 0, the
     * flagged 20 (the next periodic one would be 50), the KEYFRAME_REQ
     * before 33, then every 2nd frame from 35 (2 frames after 33) */
    static const guint idr[] = { 0, 20, 33, 35, 37, 39 };
    static const guint p[] = { 1, 2, 19, 21, 30, 34, 36, 38 };
    GString *seen = g_string_new (NULL);

    for (i = 0; i < 40; i++)
      if (key[i])
        g_string_append_printf (seen, " %u", i);
    for (i = 0; i < G_N_ELEMENTS (idr); i++)
      fail_unless (key[idr[i]], "frame %u not an IDR (IDRs:%s)", idr[i],
          seen->str);
    for (i = 0; i < G_N_ELEMENTS (p); i++)
      fail_if (key[p[i]], "frame %u an IDR (IDRs:%s)", p[i], seen->str);
    g_string_free (seen, TRUE);
  }
  fail_unless (bridge_runner_wait_log (r,
          "guest bitrate 1000000 bit/s, x264enc bitrate=1000", 1, 10));
  guest_emu_free (g);
  bridge_runner_stop_checked (r);
}

GST_END_TEST;

static void
expect_error_and_close (GuestEmu * g, gint32 code, const gchar * what)
{
  GuestAnswer a;
  GError *err = NULL;

  fail_unless (guest_emu_receive (g, &a, &err), "%s: no answer (%s)", what,
      err ? err->message : "");
  fail_unless_equals_int (a.type, HXFR_MSG_ERROR);
  fail_unless (a.error_code == code, "%s: ERROR %d (%s), expected %d", what,
      a.error_code, a.text, code);
  fail_unless (guest_emu_wait_closed (g), "%s: connection left open", what);
  guest_answer_clear (&a);
  guest_emu_free (g);
}

static void
send_header (GuestEmu * g, guint8 type, guint8 flags, guint32 payload,
    gboolean bad_magic)
{
  HxfrHeader h = { type, flags, 1, payload };
  guint8 bytes[HXFR_HEADER_SIZE];

  hxfr_header_write (bytes, &h);
  if (bad_magic)
    bytes[0] ^= 0xff;
  fail_unless (guest_emu_send_raw (g, bytes, sizeof (bytes)));
}

GST_START_TEST (test_bad_input)
{
  const gchar *args[] = { "--encoder", "x264enc", "--idle-timeout", "1",
    "--first-message-timeout", "2", "--max-sessions", "4", NULL
  };
  BridgeRunner *r = bridge_runner_start (BRIDGE_RUNNER_UNIX, args);
  Streamer *good;
  GuestEmu *g, *idle[2];
  HxfrFrameRequest req;
  guint8 px[64 * 64];
  guint i;

  fail_unless (r != NULL);
  memset (px, 0x80, sizeof (px));
  good = streamer_start (bridge_runner_get_address (r), NULL);
  fail_unless (streamer_wait_progress (good, 5));

  /* bad magic */
  g = guest_emu_connect (bridge_runner_get_address (r), NULL);
  send_header (g, HXFR_MSG_FRAME_REQUEST, 0, 44, TRUE);
  expect_error_and_close (g, HXFR_ERR_INVALID, "bad magic");
  fail_unless (streamer_wait_progress (good, 3));

  /* unknown type */
  g = guest_emu_connect (bridge_runner_get_address (r), NULL);
  send_header (g, 0x77, 0, 0, FALSE);
  expect_error_and_close (g, HXFR_ERR_INVALID, "unknown type");
  fail_unless (streamer_wait_progress (good, 3));

  /* oversize payload: 4 GiB of pixels announced */
  g = guest_emu_connect (bridge_runner_get_address (r), NULL);
  send_header (g, HXFR_MSG_FRAME_REQUEST, HXFR_FLAG_PIXEL_DATA, 0xfffffff0,
      FALSE);
  expect_error_and_close (g, HXFR_ERR_LIMIT, "oversize payload");
  fail_unless (streamer_wait_progress (good, 3));

  /* size/format mismatch: a v1 NV12 64x64 frame without its chroma */
  g = guest_emu_connect (bridge_runner_get_address (r), NULL);
  memset (&req, 0, sizeof (req));
  req.width = 64;
  req.height = 64;
  req.format = HXFR_FORMAT_NV12;
  req.stride[0] = 64;
  fail_unless (guest_emu_send_frame (g, &req, px, 64 * 64, NULL));
  expect_error_and_close (g, HXFR_ERR_INVALID, "size/format mismatch");
  fail_unless (streamer_wait_progress (good, 3));

  /* zero dimensions (v2) */
  g = connect_v2 (r, NULL);
  memset (&req, 0, sizeof (req));
  req.width = 0;
  req.height = 64;
  req.format = HXFR_FORMAT_NV12;
  req.n_planes = 2;
  req.stride[0] = req.stride[1] = 64;
  req.offset[1] = 64 * 32;
  fail_unless (guest_emu_send_frame (g, &req, px, 64 * 48, NULL));
  expect_error_and_close (g, HXFR_ERR_LIMIT, "zero width");
  fail_unless (streamer_wait_progress (good, 3));

  /* huge dimensions (v2, a resource id: no pixels at all) */
  g = connect_v2 (r, NULL);
  memset (&req, 0, sizeof (req));
  req.resource_id = 7;
  req.width = 100000;
  req.height = 100000;
  req.format = HXFR_FORMAT_XRGB8888;
  req.n_planes = 1;
  req.stride[0] = 400000;
  fail_unless (guest_emu_send_frame (g, &req, NULL, 0, NULL));
  expect_error_and_close (g, HXFR_ERR_LIMIT, "huge dimensions");
  fail_unless (streamer_wait_progress (good, 3));

  /* half a message, then silence: ERROR after --idle-timeout */
  g = guest_emu_connect (bridge_runner_get_address (r), NULL);
  {
    HxfrHeader h = { HXFR_MSG_FRAME_REQUEST, 0, 1, 44 };
    guint8 bytes[HXFR_HEADER_SIZE];

    hxfr_header_write (bytes, &h);
    fail_unless (guest_emu_send_raw (g, bytes, 6));
  }
  expect_error_and_close (g, HXFR_ERR_TIMEOUT, "half a message");
  fail_unless (streamer_wait_progress (good, 3));

  /* a connection that never sends anything does not keep its slot */
  g = guest_emu_connect (bridge_runner_get_address (r), NULL);
  expect_error_and_close (g, HXFR_ERR_TIMEOUT, "silent connection");
  fail_unless (streamer_wait_progress (good, 3));

  /* too many sessions: the good one and two idle ones, and one more fills
   * the limit of 4; the fifth is refused. The eight bad sessions must have
   * ended first. */
  fail_unless (bridge_runner_wait_log (r, " end: ", 8, 10));
  for (i = 0; i < 2; i++)
    idle[i] = connect_v2 (r, NULL);
  g = connect_v2 (r, NULL);
  {
    GuestEmu *extra = guest_emu_connect (bridge_runner_get_address (r), NULL);
    GuestAnswer a;

    fail_unless (extra != NULL);
    /* the refusal comes whatever the guest sends first */
    fail_unless (guest_emu_hello (extra, 2, NULL, &a, NULL));
    fail_unless_equals_int (a.type, HXFR_MSG_ERROR);
    fail_unless_equals_int (a.error_code, HXFR_ERR_TOO_MANY_SESSIONS);
    fail_unless (guest_emu_wait_closed (extra));
    guest_emu_free (extra);
  }
  guest_emu_free (g);
  for (i = 0; i < 2; i++)
    guest_emu_free (idle[i]);
  fail_unless (streamer_wait_progress (good, 3));

  fail_unless_equals_int (g_atomic_int_get (&good->bad), 0);
  fail_unless_equals_int (g_atomic_int_get (&good->dropped), 0);
  fail_if (g_atomic_int_get (&good->closed));
  streamer_stop (good);
  bridge_runner_stop_checked (r);
}

GST_END_TEST;

GST_START_TEST (test_token)
{
  const gchar *args[] = { "--encoder", "x264enc", "--token", "s3cret", NULL };
  BridgeRunner *r = bridge_runner_start (BRIDGE_RUNNER_TCP, args);
  Streamer *good;
  GuestEmu *g;
  GuestAnswer a;
  HxfrFrameRequest req = { 0, };
  guint8 px[64 * 96];

  fail_unless (r != NULL);
  good = streamer_start (bridge_runner_get_address (r), "s3cret");
  fail_unless (streamer_wait_progress (good, 5));

  /* wrong token */
  g = guest_emu_connect (bridge_runner_get_address (r), NULL);
  fail_unless (guest_emu_hello (g, 2, "guess", &a, NULL));
  fail_unless_equals_int (a.type, HXFR_MSG_ERROR);
  fail_unless_equals_int (a.error_code, HXFR_ERR_UNAUTHORIZED);
  fail_unless (guest_emu_wait_closed (g));
  guest_emu_free (g);

  /* no token: a v1 guest cannot send one */
  g = guest_emu_connect (bridge_runner_get_address (r), NULL);
  memset (px, 0x80, sizeof (px));
  req.width = 64;
  req.height = 64;
  req.format = HXFR_FORMAT_NV12;
  req.stride[0] = 64;
  fail_unless (guest_emu_send_frame (g, &req, px, sizeof (px), NULL));
  expect_error_and_close (g, HXFR_ERR_UNAUTHORIZED, "v1 guest with a token");

  fail_unless (streamer_wait_progress (good, 3));
  fail_unless_equals_int (g_atomic_int_get (&good->bad), 0);
  streamer_stop (good);
  bridge_runner_stop_checked (r);
}

GST_END_TEST;

/* A resource id with no helix export configured: that frame fails (v2
 * FAILED -2, v1 ERROR -2), in its turn, and the session goes on. */
GST_START_TEST (test_resource_id_without_export)
{
  BridgeRunner *r = bridge_runner_start (BRIDGE_RUNNER_UNIX, x264_args);
  guint version;

  fail_unless (r != NULL);
  for (version = 1; version <= 2; version++) {
    GuestEmu *g = version == 2 ? connect_v2 (r, NULL) :
        guest_emu_connect (bridge_runner_get_address (r), NULL);
    guint i;

    fail_unless (g != NULL);
    /* pixels, resource id, pixels; v2 sends all three before reading */
    for (i = 0; i < 3; i++) {
      HxfrFrameRequest req = { 0, };
      gsize size = 0;
      guint8 *px = NULL;

      req.width = 160;
      req.height = 120;
      req.format = HXFR_FORMAT_NV12;
      req.stride[0] = 160;
      req.pts = i * 1000;
      if (i == 1)
        req.resource_id = 42;
      else
        px = guest_emu_make_nv12 (160, 120, 160, i, &size);
      fail_unless (guest_emu_send_frame (g, &req, px, size, NULL));
      g_free (px);
      if (version == 1 || i == 2) {
        guint j, n = version == 1 ? 1 : 3;

        for (j = 0; j < n; j++) {
          GuestAnswer a;
          guint k = version == 1 ? i : j;

          fail_unless (guest_emu_receive (g, &a, NULL));
          if (k == 1 && version == 1) {
            fail_unless_equals_int (a.type, HXFR_MSG_ERROR);
            fail_unless_equals_int (a.error_code, HXFR_ERR_RESOURCE_NOT_FOUND);
          } else if (k == 1) {
            fail_unless_equals_int (a.type, HXFR_MSG_FRAME_RESPONSE2);
            fail_unless_equals_int (a.resp.status, HXFR_STATUS_FAILED);
            fail_unless_equals_int (a.resp.error_code,
                HXFR_ERR_RESOURCE_NOT_FOUND);
            fail_unless_equals_int (a.resp.seq, 1);
          } else {
            fail_unless (a.type == HXFR_MSG_FRAME_RESPONSE
                || a.type == HXFR_MSG_FRAME_RESPONSE2);
            fail_unless_equals_int (a.resp.status, HXFR_STATUS_OK);
            fail_unless_equals_int64 (a.resp.pts, k * 1000);
            fail_unless (g_bytes_get_size (a.au) > 0);
          }
          guest_answer_clear (&a);
        }
      }
    }
    guest_emu_free (g);
  }
  fail_unless (bridge_runner_wait_log (r, "failed=1", 2, 10));
  bridge_runner_stop_checked (r);
}

GST_END_TEST;

/* UNIX peer credentials: a uid not on --allow-uid is refused */
GST_START_TEST (test_allow_uid)
{
  gchar *other = g_strdup_printf ("%u", getuid () + 1);
  gchar *mine = g_strdup_printf ("%u", getuid ());
  const gchar *deny[] = { "--encoder", "x264enc", "--allow-uid", other, NULL };
  const gchar *allow[] = { "--encoder", "x264enc", "--allow-uid", other,
    "--allow-uid", mine, NULL
  };
  BridgeRunner *r = bridge_runner_start (BRIDGE_RUNNER_UNIX, deny);
  GuestEmu *g;
  GuestAnswer a;
  Streamer *st;

  fail_unless (r != NULL);
  g = guest_emu_connect (bridge_runner_get_address (r), NULL);
  fail_unless (g != NULL);
  fail_unless (guest_emu_hello (g, 1, NULL, &a, NULL));
  fail_unless_equals_int (a.type, HXFR_MSG_ERROR);
  fail_unless_equals_int (a.error_code, HXFR_ERR_UNAUTHORIZED);
  fail_unless (guest_emu_wait_closed (g));
  guest_emu_free (g);
  bridge_runner_stop_checked (r);

  r = bridge_runner_start (BRIDGE_RUNNER_UNIX, allow);
  fail_unless (r != NULL);
  st = streamer_start (bridge_runner_get_address (r), NULL);
  fail_unless (streamer_wait_progress (st, 3));
  streamer_stop (st);
  bridge_runner_stop_checked (r);
  g_free (other);
  g_free (mine);
}

GST_END_TEST;

/* One peer may not take every slot: over TCP every connection from
 * 127.0.0.1 is the same peer, whatever its port. */
GST_START_TEST (test_max_sessions_per_peer)
{
  const gchar *args[] = { "--encoder", "x264enc", "--max-sessions-per-peer",
    "2", NULL
  };
  BridgeRunner *r = bridge_runner_start (BRIDGE_RUNNER_TCP, args);
  GuestEmu *holder, *g;
  GuestAnswer a;
  Streamer *st;

  fail_unless (r != NULL);
  st = streamer_start (bridge_runner_get_address (r), NULL);
  fail_unless (streamer_wait (st, 3));
  holder = guest_emu_connect (bridge_runner_get_address (r), NULL);
  fail_unless (guest_emu_hello (holder, 2, NULL, &a, NULL));
  fail_unless_equals_int (a.type, HXFR_MSG_HELLO_ACK);

  /* a third from the same address is refused, the first keeps streaming */
  g = guest_emu_connect (bridge_runner_get_address (r), NULL);
  fail_unless (guest_emu_hello (g, 2, NULL, &a, NULL));
  fail_unless_equals_int (a.type, HXFR_MSG_ERROR);
  fail_unless_equals_int (a.error_code, HXFR_ERR_TOO_MANY_SESSIONS);
  fail_unless (strstr (a.text, "this peer") != NULL, "%s", a.text);
  guest_answer_clear (&a);
  fail_unless (guest_emu_wait_closed (g));
  guest_emu_free (g);
  fail_unless (streamer_wait_progress (st, 3));

  /* a slot given back is a slot again */
  guest_emu_free (holder);
  fail_unless (bridge_runner_wait_log (r, "session 2 end", 1, 10));
  g = guest_emu_connect (bridge_runner_get_address (r), NULL);
  fail_unless (guest_emu_hello (g, 2, NULL, &a, NULL));
  fail_unless_equals_int (a.type, HXFR_MSG_HELLO_ACK);
  guest_emu_free (g);

  fail_unless_equals_int (g_atomic_int_get (&st->bad), 0);
  streamer_stop (st);
  bridge_runner_stop_checked (r);
}

GST_END_TEST;

/* helix's guest pipeline (api/pkg/desktop/ws_stream.go), pipewiresrc
 * replaced by noise so that the encoder has to spend the bitrate it is
 * given, read the way helix reads it. Returns the bitrate of the access
 * units after the first second, in bit/s. */
#define HELIX_FRAMES 150

static gdouble
run_helix_pipeline (BridgeRunner * r, const gchar * bitrate,
    gboolean * warned_kbits)
{
  gchar *desc = g_strdup_printf ("videotestsrc pattern=snow num-buffers=%u ! "
      "video/x-raw,width=640,height=360,framerate=30/1 ! videoconvert ! "
      "vsockenc tcp-host=127.0.0.1 tcp-port=%u bitrate=%s "
      "keyframe-interval=120 ! h264parse ! "
      "video/x-h264,stream-format=byte-stream,alignment=au ! "
      "appsink name=sink sync=false", HELIX_FRAMES,
      bridge_runner_get_port (r), bitrate);
  GstElement *p = gst_parse_launch (desc, NULL);
  GstElement *sink = gst_bin_get_by_name (GST_BIN (p), "sink");
  GstBus *bus = gst_element_get_bus (p);
  GstClockTime last_pts = GST_CLOCK_TIME_NONE, t_from = 0, t_to = 0;
  guint64 bytes = 0;
  guint n = 0;
  GstSample *sample;
  GstMessage *msg;

  fail_unless (p != NULL, "%s", desc);
  gst_element_set_state (p, GST_STATE_PLAYING);
  while ((sample = gst_app_sink_try_pull_sample (GST_APP_SINK (sink),
              PULL_TIMEOUT))) {
    GstBuffer *buf = gst_sample_get_buffer (sample);
    GstClockTime pts = GST_BUFFER_PTS (buf);

    /* helix: PTS for timing, DELTA_UNIT for keyframes */
    fail_unless (GST_CLOCK_TIME_IS_VALID (pts));
    fail_unless (!GST_CLOCK_TIME_IS_VALID (last_pts) || pts > last_pts);
    fail_unless_equals_int (!GST_BUFFER_FLAG_IS_SET (buf,
            GST_BUFFER_FLAG_DELTA_UNIT), n % 120 == 0);
    if (n == 30)
      t_from = pts;
    if (n >= 30) {
      bytes += gst_buffer_get_size (buf);
      t_to = pts + GST_BUFFER_DURATION (buf);
    }
    last_pts = pts;
    n++;
    gst_sample_unref (sample);
  }
  fail_unless_equals_int (n, HELIX_FRAMES);
  *warned_kbits = FALSE;
  while ((msg = gst_bus_pop_filtered (bus, GST_MESSAGE_WARNING))) {
    GError *err = NULL;

    gst_message_parse_warning (msg, &err, NULL);
    if (strstr (err->message, "kbit/s"))
      *warned_kbits = TRUE;
    g_error_free (err);
    gst_message_unref (msg);
  }
  gst_element_set_state (p, GST_STATE_NULL);
  gst_object_unref (bus);
  gst_object_unref (sink);
  gst_object_unref (p);
  g_free (desc);
  return bytes * 8.0 / ((t_to - t_from) / (gdouble) GST_SECOND);
}

GST_START_TEST (test_helix_pipeline)
{
  const gchar *args[] = { "--encoder", "x264enc", "--bitrate", "2000000",
    NULL
  };
  BridgeRunner *r = bridge_runner_start (BRIDGE_RUNNER_TCP, args);
  gboolean warned;
  gdouble bps;

  fail_unless (r != NULL);
  /* helix's value times 1000, as docs/deploy.md tells it to send */
  bps = run_helix_pipeline (r, "8294000", &warned);
  g_print ("HELIX: bitrate=8294000: %.0f bit/s\n", bps);
  fail_unless (bps > 8294000 * 0.7 && bps < 8294000 * 1.3, "%.0f bit/s", bps);
  fail_if (warned);

  /* helix's value as it is today (kbit/s): applied, and said */
  bps = run_helix_pipeline (r, "8294", &warned);
  g_print ("HELIX: bitrate=8294: %.0f bit/s, warned %d\n", bps, warned);
  fail_unless (warned, "no warning for bitrate=8294");

  /* 0: the bridge's own default (--bitrate 2000000), no GLib warning */
  bps = run_helix_pipeline (r, "0", &warned);
  g_print ("HELIX: bitrate=0: %.0f bit/s\n", bps);
  fail_unless (bps > 2000000 * 0.7 && bps < 2000000 * 1.3, "%.0f bit/s", bps);
  bridge_runner_stop_checked (r);
}

GST_END_TEST;

/* The first NAL type of each of @n access units out of vsockenc (no
 * h264parse after it, which adds AUDs of its own); counts those that are
 * AUDs. */
static guint
count_leading_auds (BridgeRunner * r, const gchar * aud, guint n)
{
  gchar *desc = g_strdup_printf ("videotestsrc num-buffers=%u ! "
      "video/x-raw,format=NV12,width=64,height=48,framerate=30/1 ! "
      "vsockenc socket-path=%s aud=%s ! appsink name=sink sync=false", n,
      bridge_runner_get_socket_path (r), aud);
  GstElement *p = gst_parse_launch (desc, NULL);
  GstElement *sink = gst_bin_get_by_name (GST_BIN (p), "sink");
  GstSample *sample;
  guint got = 0, auds = 0;

  fail_unless (p != NULL, "%s", desc);
  gst_element_set_state (p, GST_STATE_PLAYING);
  while ((sample = gst_app_sink_try_pull_sample (GST_APP_SINK (sink),
              PULL_TIMEOUT))) {
    GstMapInfo map;

    gst_buffer_map (gst_sample_get_buffer (sample), &map, GST_MAP_READ);
    fail_unless (map.size > 5 && map.data[0] == 0 && map.data[1] == 0);
    {
      guint sc = map.data[2] == 1 ? 3 : 4;

      auds += (map.data[sc] & 0x1f) == 9;
    }
    gst_buffer_unmap (gst_sample_get_buffer (sample), &map);
    gst_sample_unref (sample);
    got++;
  }
  fail_unless_equals_int (got, n);
  gst_element_set_state (p, GST_STATE_NULL);
  gst_object_unref (sink);
  gst_object_unref (p);
  g_free (desc);
  return auds;
}

/* The bridge's h264parse sends an AUD in every access unit: vsockenc
 * removes it unless aud=true */
GST_START_TEST (test_aud)
{
  BridgeRunner *r = bridge_runner_start (BRIDGE_RUNNER_UNIX, x264_args);

  fail_unless (r != NULL);
  fail_unless_equals_int (count_leading_auds (r, "false", 10), 0);
  fail_unless_equals_int (count_leading_auds (r, "true", 10), 10);
  bridge_runner_stop_checked (r);
}

GST_END_TEST;

GST_START_TEST (test_sigterm_with_sessions)
{
  BridgeRunner *r = bridge_runner_start (BRIDGE_RUNNER_UNIX, x264_args);
  Streamer *st[2];
  gboolean left = TRUE;
  guint i;

  fail_unless (r != NULL);
  for (i = 0; i < 2; i++)
    st[i] = streamer_start (bridge_runner_get_address (r), NULL);
  for (i = 0; i < 2; i++)
    fail_unless (streamer_wait_progress (st[i], 5));
  fail_unless_equals_int (bridge_runner_stop (r, &left), 0);
  fail_if (left, "socket file left behind");
  /* both guests: every request the bridge read was answered with its
   * access unit, then ERROR -12 and a closed connection */
  for (i = 0; i < 2; i++) {
    g_thread_join (st[i]->thread);
    fail_unless (g_atomic_int_get (&st[i]->closed));
    fail_unless_equals_int (st[i]->end_code, HXFR_ERR_SHUTDOWN);
    fail_unless_equals_int (st[i]->bad, 0);
    fail_unless_equals_int (st[i]->dropped, 0);
    g_free (st[i]->address);
    g_free (st[i]);
  }
}

GST_END_TEST;

/* --encoder null: every frame answered with the fixed tiny access unit */
GST_START_TEST (test_null_encoder)
{
  const gchar *args[] = { "--encoder", "null", NULL };
  BridgeRunner *r = bridge_runner_start (BRIDGE_RUNNER_UNIX, args);
  Streamer *st;

  fail_unless (r != NULL);
  st = streamer_start (bridge_runner_get_address (r), NULL);
  fail_unless (streamer_wait_progress (st, 20));
  fail_unless_equals_int (g_atomic_int_get (&st->bad), 0);
  streamer_stop (st);
  fail_unless (bridge_runner_wait_log (r, "encoder=null", 2, 10));
  bridge_runner_stop_checked (r);
}

GST_END_TEST;

/* Metrics */

/* GET @path from the metrics endpoint at @port (bounded: 5 s); the
 * response, headers and body. */
static gchar *
http_get (guint port, const gchar * path)
{
  GSocketClient *client = g_socket_client_new ();
  GSocketConnection *conn;
  GError *err = NULL;
  GString *resp = g_string_new (NULL);
  gchar *req = g_strdup_printf ("GET %s HTTP/1.0\r\nHost: test\r\n\r\n",
      path);
  gchar buf[4096];
  gssize n;

  g_socket_client_set_timeout (client, 5);
  conn = g_socket_client_connect_to_host (client, "127.0.0.1", port, NULL,
      &err);
  fail_unless (conn != NULL, "metrics connect: %s", err ? err->message : "");
  fail_unless (g_output_stream_write_all (g_io_stream_get_output_stream
          (G_IO_STREAM (conn)), req, strlen (req), NULL, NULL, &err),
      "metrics write: %s", err ? err->message : "");
  /* HTTP/1.0: the answer ends when the bridge closes */
  while ((n = g_input_stream_read (g_io_stream_get_input_stream (G_IO_STREAM
                  (conn)), buf, sizeof (buf), NULL, &err)) > 0)
    g_string_append_len (resp, buf, n);
  fail_unless (n == 0, "metrics read: %s", err ? err->message : "");
  g_object_unref (conn);
  g_object_unref (client);
  g_free (req);
  return g_string_free (resp, FALSE);
}

/* Scrapes /metrics: checks the status and content type, returns the body. */
static gchar *
scrape (guint port)
{
  gchar *resp = http_get (port, "/metrics");
  gchar *body = strstr (resp, "\r\n\r\n"), *out;

  fail_unless (g_str_has_prefix (resp, "HTTP/1.0 200 "), "%s", resp);
  fail_unless (strstr (resp, "\r\nContent-Type: text/plain; version=0.0.4"
          "\r\n") != NULL, "%s", resp);
  fail_unless (body != NULL);
  out = g_strdup (body + 4);
  g_free (resp);
  return out;
}

/* The value of @series (name with its labels) in @body; fails if absent. */
static guint64
metric (const gchar * body, const gchar * series)
{
  return text_number (body, "\n", series, " ");
}

#define M(name) "helix_bridge_" name "{encoder=\"x264enc\"}"

/* The value of "KEY=N" in the bridge's log line holding @line. */
static guint64
log_field (BridgeRunner * r, const gchar * line, const gchar * key)
{
  gchar *log = bridge_runner_get_log (r);
  const gchar *p = strstr (log, line), *q;
  guint64 v;

  fail_unless (p != NULL, "no \"%s\" in the log", line);
  q = strstr (p, key);
  fail_unless (q != NULL);
  v = g_ascii_strtoull (q + strlen (key), NULL, 10);
  g_free (log);
  return v;
}

/* --metrics on a free port: scraped while a guest streams and after it has
 * left, the counters are what the guest saw; a client that sends nothing
 * neither blocks a scrape nor stays connected. */
GST_START_TEST (test_metrics)
{
  const gchar *args[] = { "--encoder", "x264enc", "--metrics",
    "tcp:127.0.0.1:0", NULL
  };
  BridgeRunner *r = bridge_runner_start (BRIDGE_RUNNER_UNIX, args);
  Streamer *st;
  GSocketClient *client;
  GSocketConnection *idle;
  gchar *log, *body, buf[16];
  const gchar *p;
  guint port;
  gint ok_before;
  guint64 encoded;
  gint64 t0;
  gssize n;

  fail_unless (r != NULL);
  /* logged once it listens */
  fail_unless (bridge_runner_wait_log (r, "metrics on tcp:127.0.0.1:", 1, 10));
  log = bridge_runner_get_log (r);
  p = strstr (log, "metrics on tcp:127.0.0.1:");
  port = atoi (p + strlen ("metrics on tcp:127.0.0.1:"));
  g_free (log);
  fail_unless (port > 0);

  body = scrape (port);
  fail_unless_equals_int (metric (body, M ("sessions")), 0);
  fail_unless_equals_int (metric (body, M ("frames_encoded_total")), 0);
  fail_unless (strstr (body, "# TYPE helix_bridge_encode_seconds histogram")
      != NULL);
  g_free (body);

  /* during the stream */
  st = streamer_start (bridge_runner_get_address (r), NULL);
  fail_unless (streamer_wait (st, 10));
  ok_before = g_atomic_int_get (&st->ok);
  body = scrape (port);
  fail_unless_equals_int (metric (body, M ("sessions")), 1);
  fail_unless_equals_int (metric (body, M ("sessions_total")), 1);
  encoded = metric (body, M ("frames_encoded_total"));
  fail_unless (encoded >= (guint64) ok_before, "%" G_GUINT64_FORMAT
      " encoded, the guest had %d", encoded, ok_before);
  fail_unless (metric (body, M ("frames_requested_total")) >= encoded);
  fail_unless_equals_int (metric (body, M ("encode_seconds_count")), encoded);
  fail_unless_equals_int (metric (body,
          "helix_bridge_encode_seconds_bucket{encoder=\"x264enc\","
          "le=\"+Inf\"}"), encoded);
  fail_unless (metric (body, M ("bytes_in_total")) > encoded * 128 * 96);
  fail_unless (metric (body, M ("bytes_out_total")) > 0);
  g_free (body);

  /* a client that connects and sends nothing: the next scrape is served
   * at once all the same, and the bridge closes the idle one (5 s) */
  client = g_socket_client_new ();
  g_socket_client_set_timeout (client, 10);
  idle = g_socket_client_connect_to_host (client, "127.0.0.1", port, NULL,
      NULL);
  fail_unless (idle != NULL);
  t0 = g_get_monotonic_time ();
  body = scrape (port);
  fail_unless (g_get_monotonic_time () - t0 < 2 * G_USEC_PER_SEC);
  fail_unless_equals_int (metric (body, M ("sessions")), 1);
  g_free (body);
  n = g_input_stream_read (g_io_stream_get_input_stream (G_IO_STREAM (idle)),
      buf, sizeof (buf), NULL, NULL);
  fail_unless (n == 0, "the idle client was not closed (%" G_GSSIZE_FORMAT
      ")", n);
  fail_unless (g_get_monotonic_time () - t0 < 9 * G_USEC_PER_SEC);
  g_object_unref (idle);
  g_object_unref (client);

  /* after: the ended session is in the totals, exactly what the guest
   * got (one request in flight, every one answered before it stopped) */
  fail_unless (streamer_wait_progress (st, 5));
  /* stopped, not yet freed: its counters are final once the bridge has
   * seen it hang up (it counts every answer before it closes) */
  g_atomic_int_set (&st->stop, 1);
  fail_unless (bridge_runner_wait_log (r, "session 1 end", 1, 10));
  fail_unless_equals_int (g_atomic_int_get (&st->bad), 0);
  body = scrape (port);
  fail_unless_equals_int (metric (body, M ("sessions")), 0);
  fail_unless_equals_int (metric (body, M ("sessions_total")), 1);
  fail_unless_equals_int (metric (body, M ("frames_encoded_total")),
      g_atomic_int_get (&st->ok));
  fail_unless_equals_int (metric (body, M ("frames_dropped_total")),
      g_atomic_int_get (&st->dropped));
  fail_unless_equals_int (metric (body, M ("frames_requested_total")),
      g_atomic_int_get (&st->ok) + g_atomic_int_get (&st->dropped));
  fail_unless_equals_int (metric (body, M ("frames_failed_total")), 0);
  fail_unless_equals_int (metric (body, M ("encode_seconds_count")),
      g_atomic_int_get (&st->ok));
  fail_unless_equals_int (metric (body, M ("refusals_total")), 0);
  fail_unless_equals_int (metric (body, M ("bytes_in_total")),
      log_field (r, "session 1 end", " bytes_in="));
  fail_unless_equals_int (metric (body, M ("bytes_out_total")),
      log_field (r, "session 1 end", " bytes_out="));
  g_free (body);

  /* anything but GET /metrics */
  body = http_get (port, "/");
  fail_unless (g_str_has_prefix (body, "HTTP/1.0 404 "), "%s", body);
  g_free (body);
  streamer_stop (st);
  bridge_runner_stop_checked (r);
}

GST_END_TEST;

/* Listening on a non-loopback address without a token is said aloud at
 * start; with a token it is not, and a v1 guest (which cannot send one)
 * is told why it is refused and what to do. */
GST_START_TEST (test_non_loopback_warning)
{
  const gchar *open_args[] = { "--encoder", "null", "--listen",
    "tcp:0.0.0.0:0", NULL
  };
  const gchar *token_args[] = { "--encoder", "null", "--listen",
    "tcp:0.0.0.0:0", "--token", "s3cret", "--metrics", "tcp:127.0.0.1:0",
    NULL
  };
  const gchar *warning = "is not a loopback address and no --token";
  BridgeRunner *r;
  Streamer *st;
  GuestEmu *g;
  GuestAnswer a;
  HxfrFrameRequest req = { 0, };
  guint8 px[64 * 96];

  r = bridge_runner_start (BRIDGE_RUNNER_UNIX, open_args);
  fail_unless (r != NULL);
  fail_unless (bridge_runner_wait_log (r, warning, 1, 10));
  fail_unless_equals_int (bridge_runner_count_log (r, "warning: tcp:0.0.0.0:"),
      1);
  /* the UNIX socket is not warned about */
  fail_unless_equals_int (bridge_runner_count_log (r, "warning: unix:"), 0);
  /* a guest served: the bridge is past its start (SIGTERM handled) */
  st = streamer_start (bridge_runner_get_address (r), NULL);
  fail_unless (streamer_wait (st, 3));
  streamer_stop (st);
  bridge_runner_stop_checked (r);

  r = bridge_runner_start (BRIDGE_RUNNER_UNIX, token_args);
  fail_unless (r != NULL);
  /* a session's start comes after every start-up line */
  st = streamer_start (bridge_runner_get_address (r), "s3cret");
  fail_unless (streamer_wait (st, 3));
  fail_unless (bridge_runner_wait_log (r, "session 1 start", 1, 10));
  fail_unless_equals_int (bridge_runner_count_log (r, warning), 0);

  g = guest_emu_connect (bridge_runner_get_address (r), NULL);
  memset (px, 0x80, sizeof (px));
  req.width = 64;
  req.height = 64;
  req.format = HXFR_FORMAT_NV12;
  req.stride[0] = 64;
  fail_unless (guest_emu_send_frame (g, &req, px, sizeof (px), NULL));
  fail_unless (guest_emu_receive (g, &a, NULL));
  fail_unless_equals_int (a.type, HXFR_MSG_ERROR);
  fail_unless_equals_int (a.error_code, HXFR_ERR_UNAUTHORIZED);
  /* whole (within the ERROR text size), and says what to do */
  fail_unless (strstr (a.text, "v1") && strstr (a.text, "without --token")
      && g_str_has_suffix (a.text, "token property)"), "%s", a.text);
  guest_answer_clear (&a);
  fail_unless (guest_emu_wait_closed (g));
  guest_emu_free (g);
  /* and counted as a refusal */
  fail_unless (bridge_runner_wait_log (r, "session 2 end", 1, 10));
  {
    gchar *log = bridge_runner_get_log (r), *body;
    const gchar *p = strstr (log, "metrics on tcp:127.0.0.1:");

    fail_unless (p != NULL);
    body = scrape (atoi (p + strlen ("metrics on tcp:127.0.0.1:")));
    fail_unless_equals_int (metric (body,
            "helix_bridge_refusals_total{encoder=\"null\"}"), 1);
    fail_unless_equals_int (metric (body,
            "helix_bridge_sessions{encoder=\"null\"}"), 1);
    g_free (body);
    g_free (log);
  }
  streamer_stop (st);
  bridge_runner_stop_checked (r);
}

GST_END_TEST;

/* The hardware encoders, as their stand-ins (tests/encoders: the
 * documented interface of one GStreamer version, x264 inside), loaded only
 * by tests/encoders/run-encoder-checks, which sets HELIX_STANDIN_DOCS. */

static const gchar *const hw_names[] = {
  "vtenc_h264_hw", "nvh264enc", "vah264enc", "vah264lpenc", "qsvh264enc",
};

/* bridge_encoder_auto()'s order on this system, hardware first */
static const gchar *const hw_auto_order[] = {
#ifdef __APPLE__
  "vtenc_h264_hw",
#endif
  "nvh264enc", "vah264enc", "vah264lpenc", "qsvh264enc",
};

/* @bitrate bit/s as the stand-in of @name records it: in the unit its
 * documentation gives */
static gchar *
hw_bitrate_in_own_terms (const gchar * name, guint bitrate)
{
  GKeyFile *docs = g_key_file_new ();
  gchar *group = g_strdup_printf ("element %s", name);
  gchar *unit, *out;

  fail_unless (g_key_file_load_from_file (docs,
          g_getenv ("HELIX_STANDIN_DOCS"), G_KEY_FILE_NONE, NULL));
  unit = g_key_file_get_string (docs, group, "bitrate-unit", NULL);
  fail_unless (unit != NULL, "%s: no documented bitrate unit", name);
  out = g_strdup_printf ("standin %s: bitrate=%u (", name,
      g_str_equal (unit, "kbit/s") ? bitrate / 1000 : bitrate);
  g_free (unit);
  g_free (group);
  g_key_file_unref (docs);
  return out;
}

/* A bridge running stand-in @name: a vsockenc guest's stream decodes to
 * 30 dB or better; a keyframe request and a bitrate change reach the
 * element, in its own terms. */
static void
hw_stream (BridgeRunner * r, const gchar * name)
{
  gchar *made = g_strdup_printf ("standin %s: made from GStreamer ", name);
  gchar *key = g_strdup_printf ("standin %s: force-key-unit", name);
  gchar *rate = hw_bitrate_in_own_terms (name, 1500000);
  GuestEmu *g;
  GuestAnswer a;
  HxfrControl ctl = { 0, };
  guint8 fixed[HXFR_MAX_FIXED_SIZE];
  gsize size, len;
  guint i, keys_before = 0;

  g_print ("%s: streaming through the bridge\n", name);
  roundtrip (bridge_runner_get_address (r), "NV12", 320, 240, 20);
  roundtrip (bridge_runner_get_address (r), "BGRx", 320, 240, 10);
  fail_unless (bridge_runner_count_log (r, made) >= 2, "%s: not the stand-in",
      name);

  g = connect_v2 (r, NULL);
  for (i = 0; i < 12; i++) {
    HxfrFrameRequest req = { 0, };
    guint8 *px;

    if (i == 5) {
      keys_before = bridge_runner_count_log (r, key);
      fail_unless (guest_emu_send_simple (g, HXFR_MSG_KEYFRAME_REQ, NULL, 0,
              NULL));
    }
    if (i == 8) {
      ctl.mask = HXFR_CONTROL_BITRATE;
      ctl.bitrate = 1500000;
      len = hxfr_control_write (&ctl, fixed);
      fail_unless (guest_emu_send_simple (g, HXFR_MSG_CONTROL, fixed, len,
              NULL));
    }
    px = guest_emu_make_nv12 (320, 240, 320, i, &size);
    req.width = 320;
    req.height = 240;
    req.format = HXFR_FORMAT_NV12;
    req.pts = i * 33333333;
    req.duration = 33333333;
    fail_unless (guest_emu_send_frame (g, &req, px, size, NULL));
    g_free (px);
    fail_unless (guest_emu_receive (g, &a, NULL));
    fail_unless_equals_int (a.resp.status, HXFR_STATUS_OK);
    fail_unless (i != 5 || a.resp.keyframe, "%s: the requested IDR is not "
        "one", name);
    guest_answer_clear (&a);
  }
  /* the request reached the element as a force-key-unit event (the frame
   * it asked for is answered, so the event was before it) */
  fail_unless (bridge_runner_wait_log (r, key, keys_before + 1, 10),
      "%s: the keyframe request did not reach it", name);
  fail_unless (bridge_runner_wait_log (r, rate, 1, 10),
      "%s: no \"%s\"", name, rate);
  g_print ("%s: \"%s\", %u force-key-unit events\n", name, rate,
      bridge_runner_count_log (r, key));
  guest_emu_free (g);
  g_free (made);
  g_free (key);
  g_free (rate);
}

/* An element that is really installed wins over its stand-in:
 * openh264enc is documented (so the stand-in plugin registers it too) and
 * installed on the test machines. GStreamer's registry keeps the last
 * feature added under a name, and a fresh scan takes GST_PLUGIN_PATH (the
 * stand-ins) before the system's plugins. */
GST_START_TEST (test_hwenc_real_wins)
{
  GstElementFactory *f = gst_element_factory_find ("openh264enc");
  GstPlugin *plugin;

  fail_unless (f != NULL, "openh264enc is not installed");
  plugin = gst_plugin_feature_get_plugin (GST_PLUGIN_FEATURE (f));
  fail_unless_equals_string (gst_plugin_get_name (plugin), "openh264");
  gst_object_unref (plugin);
  gst_object_unref (f);
  f = gst_element_factory_find ("nvh264enc");
  fail_unless (f != NULL);
  plugin = gst_plugin_feature_get_plugin (GST_PLUGIN_FEATURE (f));
  fail_unless_equals_string (gst_plugin_get_name (plugin), "helixstandin");
  gst_object_unref (plugin);
  gst_object_unref (f);
}

GST_END_TEST;

/* Each name by --encoder */
GST_START_TEST (test_hwenc_named)
{
  guint i;

  for (i = 0; i < G_N_ELEMENTS (hw_names); i++) {
    const gchar *args[] = { "--encoder", hw_names[i], NULL };
    BridgeRunner *r = bridge_runner_start (BRIDGE_RUNNER_UNIX, args);

    fail_unless (r != NULL, "%s", hw_names[i]);
    hw_stream (r, hw_names[i]);
    bridge_runner_stop_checked (r);
  }
}

GST_END_TEST;

/* Each name chosen automatically: only it and the names after it in the
 * automatic order are installed (HELIX_STANDIN_ENCODERS) */
GST_START_TEST (test_hwenc_auto)
{
  gchar *registry_base = g_strdup (g_getenv ("GST_REGISTRY"));
  guint i, j;

  fail_unless (registry_base != NULL);

  for (i = 0; i < G_N_ELEMENTS (hw_auto_order); i++) {
    GString *installed = g_string_new (NULL);
    gchar *chosen = g_strdup_printf ("(encoder %s", hw_auto_order[i]);
    gchar *registry;
    BridgeRunner *r;

    for (j = i; j < G_N_ELEMENTS (hw_auto_order); j++)
      g_string_append_printf (installed, "%s%s", j > i ? "," : "",
          hw_auto_order[j]);
    g_setenv ("HELIX_STANDIN_ENCODERS", installed->str, TRUE);
    /* a registry of its own, scanned afresh: a rescan of only the stand-in
     * plugin (its names changed) would let it replace real elements */
    registry = g_strdup_printf ("%s-auto-%u", registry_base, i);
    g_unlink (registry);
    g_setenv ("GST_REGISTRY", registry, TRUE);
    r = bridge_runner_start (BRIDGE_RUNNER_UNIX, NULL);
    fail_unless (r != NULL);
    fail_unless (bridge_runner_count_log (r, chosen) == 1,
        "installed %s: not %s", installed->str, chosen);
    hw_stream (r, hw_auto_order[i]);
    bridge_runner_stop_checked (r);
    g_string_free (installed, TRUE);
    g_free (chosen);
    g_unlink (registry);
    g_free (registry);
  }
  g_unsetenv ("HELIX_STANDIN_ENCODERS");
  g_setenv ("GST_REGISTRY", registry_base, TRUE);
  g_free (registry_base);
}

GST_END_TEST;

static Suite *
bridge_suite (void)
{
  Suite *s = suite_create ("bridge");
  TCase *tc = tcase_create ("general");

  suite_add_tcase (s, tc);
  tcase_set_timeout (tc, 240);
  tcase_add_test (tc, test_formats_and_sizes_unix);
  tcase_add_test (tc, test_tcp);
  tcase_add_test (tc, test_odd_size);
  tcase_add_test (tc, test_resolution_change);
  tcase_add_test (tc, test_several_guests);
  tcase_add_test (tc, test_v1_guest);
  tcase_add_test (tc, test_vsockenc_v1_mode);
  tcase_add_test (tc, test_keyframes_and_bitrate);
  tcase_add_test (tc, test_bad_input);
  tcase_add_test (tc, test_token);
  tcase_add_test (tc, test_resource_id_without_export);
  tcase_add_test (tc, test_allow_uid);
  tcase_add_test (tc, test_max_sessions_per_peer);
  tcase_add_test (tc, test_sigterm_with_sessions);
  tcase_add_test (tc, test_helix_pipeline);
  tcase_add_test (tc, test_aud);
  tcase_add_test (tc, test_null_encoder);
  tcase_add_test (tc, test_metrics);
  tcase_add_test (tc, test_non_loopback_warning);
  if (g_getenv ("HELIX_STANDIN_DOCS")) {
    tcase_add_test (tc, test_hwenc_real_wins);
    tcase_add_test (tc, test_hwenc_named);
    tcase_add_test (tc, test_hwenc_auto);
  }
  return s;
}

GST_CHECK_MAIN (bridge);
