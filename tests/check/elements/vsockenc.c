/* vsockenc tests, against a scripted fake host (support/fakehost.c)
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE             /* memfd_create */
#endif
#include <errno.h>
#include <string.h>
#include <unistd.h>
#include <sys/mman.h>

#include <glib/gstdio.h>
#include <gst/check/gstcheck.h>
#include <gst/check/gstharness.h>
#include <gst/video/video.h>
#include <gst/allocators/allocators.h>

#include "fakehost.h"
#include "video-compare.h"
#include "elements.h"
#include "proc-stats.h"
#include "../../../gst/guest/vsockenc-drm.h"

#define W 64
#define H 48
#define NV12_CAPS "video/x-raw,format=NV12,width=64,height=48,framerate=30/1"
#define FRAME_DUR (GST_SECOND / 30)
#define WAIT_US (10 * G_USEC_PER_SEC)

typedef struct
{
  FakeHost *host;
  GstElement *enc;
  GstBus *bus;
  GstHarness *h;
  GstVideoInfo info;
} Fixture;

/* @props: "name=value name=value" set before the element starts. */
static void
fixture_init (Fixture * f, FakeHostMode mode, const gchar * props,
    const gchar * caps)
{
  memset (f, 0, sizeof (*f));
  f->host = fake_host_new (mode);
  f->enc = gst_element_factory_make ("vsockenc", NULL);
  fail_unless (f->enc != NULL);
  g_object_set (f->enc, "socket-path", fake_host_get_path (f->host), NULL);
  if (props) {
    gchar **kv = g_strsplit (props, " ", -1), **p;

    for (p = kv; *p; p++) {
      gchar **pair = g_strsplit (*p, "=", 2);

      gst_util_set_object_arg (G_OBJECT (f->enc), pair[0], pair[1]);
      g_strfreev (pair);
    }
    g_strfreev (kv);
  }
  f->bus = gst_bus_new ();
  gst_element_set_bus (f->enc, f->bus);
  if (caps) {
    GstCaps *c = gst_caps_from_string (caps);

    gst_video_info_from_caps (&f->info, c);
    gst_caps_unref (c);
    f->h = gst_harness_new_with_element (f->enc, "sink", "src");
    gst_harness_set_src_caps_str (f->h, caps);
  }
}

static void
fixture_clear (Fixture * f)
{
  if (f->h)
    gst_harness_teardown (f->h);
  gst_element_set_state (f->enc, GST_STATE_NULL);
  gst_element_set_bus (f->enc, NULL);
  gst_object_unref (f->enc);
  gst_object_unref (f->bus);
  fake_host_free (f->host);
}

static GstBuffer *
make_frame (const GstVideoInfo * info, guint i)
{
  GstBuffer *b = gst_buffer_new_allocate (NULL, GST_VIDEO_INFO_SIZE (info),
      NULL);
  GstMapInfo map;
  gsize k;

  gst_buffer_map (b, &map, GST_MAP_WRITE);
  for (k = 0; k < map.size; k++)
    map.data[k] = (guint8) (k * 3 + i * 7);
  gst_buffer_unmap (b, &map);
  GST_BUFFER_PTS (b) = i * FRAME_DUR;
  GST_BUFFER_DURATION (b) = FRAME_DUR;
  return b;
}

static void
push_frames (Fixture * f, guint from, guint n)
{
  guint i;

  for (i = from; i < from + n; i++)
    fail_unless_equals_int (gst_harness_push (f->h, make_frame (&f->info, i)),
        GST_FLOW_OK);
}

static GstMessage *
wait_message (GstBus * bus, GstMessageType type, gint64 timeout_ns)
{
  return gst_bus_timed_pop_filtered (bus, timeout_ns, type);
}

static gboolean
message_mentions (GstMessage * msg, const gchar * what)
{
  GError *err = NULL;
  gchar *dbg = NULL;
  gboolean found;

  if (GST_MESSAGE_TYPE (msg) == GST_MESSAGE_ERROR)
    gst_message_parse_error (msg, &err, &dbg);
  else
    gst_message_parse_warning (msg, &err, &dbg);
  found = strstr (err->message, what) != NULL;
  if (!found)
    GST_ERROR ("'%s' not in '%s'", what, err->message);
  g_error_free (err);
  g_free (dbg);
  return found;
}

static GstStructure *
get_stats (GstElement * enc)
{
  GstStructure *s = NULL;

  g_object_get (enc, "stats", &s, NULL);
  fail_unless (s != NULL);
  return s;
}

static guint64
stat_u64 (GstStructure * s, const gchar * name)
{
  guint64 v = 0;

  fail_unless (gst_structure_get_uint64 (s, name, &v), name);
  return v;
}

/* stats-interval: while frames flow, the stats structure comes on the bus
 * as a vsockenc-stats element message about every interval (what
 * gst-launch-1.0 -m prints), with the stats property's fields; none once
 * the frames stop, none with the default 0. */
static guint
count_stats_messages (GstBus * bus, guint64 * last_sent, guint * n_fields)
{
  GstMessage *msg;
  guint n = 0;

  while ((msg = gst_bus_pop_filtered (bus, GST_MESSAGE_ELEMENT))) {
    const GstStructure *st = gst_message_get_structure (msg);
    guint64 sent = 0;

    fail_unless (gst_structure_has_name (st, "vsockenc-stats"));
    fail_unless (gst_structure_get_uint64 (st, "frames-sent", &sent));
    fail_unless (sent >= *last_sent, "frames-sent went back");
    *last_sent = sent;
    fail_unless (gst_structure_has_field (st, "rtt-avg-us"));
    fail_unless_equals_string (gst_structure_get_string (st,
            "host-encoder"), "fakeenc");
    *n_fields = gst_structure_n_fields (st);
    n++;
    gst_message_unref (msg);
  }
  return n;
}

GST_START_TEST (test_stats_interval)
{
  Fixture f;
  GstStructure *prop;
  guint i, n, n_fields = 0;
  guint64 last_sent = 0;
  gint64 t0;
  GstMessage *msg;

  fixture_init (&f, FAKE_HOST_V2, "stats-interval=100", NV12_CAPS);
  /* 0.8 s of frames at 40 fps (the interval is time, so the frames are
   * paced; each answer is waited for) */
  t0 = g_get_monotonic_time ();
  for (i = 0; i < 32; i++) {
    GstBuffer *out;

    push_frames (&f, i, 1);
    out = gst_harness_pull (f.h);
    fail_unless (out != NULL);
    gst_buffer_unref (out);
    g_usleep (MAX (0, t0 + (i + 1) * 25000 - g_get_monotonic_time ()));
  }
  n = count_stats_messages (f.bus, &last_sent, &n_fields);
  /* 800 ms of frames, the first message one interval in: about 7 */
  fail_unless (n >= 4 && n <= 9, "%u vsockenc-stats messages in 0.8 s", n);
  fail_unless (last_sent >= 20, "last frames-sent %" G_GUINT64_FORMAT,
      last_sent);

  /* the same fields as the property */
  prop = get_stats (f.enc);
  fail_unless_equals_int (n_fields, gst_structure_n_fields (prop));
  gst_structure_free (prop);

  /* no frames, no messages */
  msg = gst_bus_timed_pop_filtered (f.bus, 300 * GST_MSECOND,
      GST_MESSAGE_ELEMENT);
  fail_unless (msg == NULL, "a stats message without frames");
  fixture_clear (&f);

  /* default: off */
  fixture_init (&f, FAKE_HOST_V2, NULL, NV12_CAPS);
  for (i = 0; i < 6; i++) {
    GstBuffer *out;

    push_frames (&f, i, 1);
    out = gst_harness_pull (f.h);
    fail_unless (out != NULL);
    gst_buffer_unref (out);
    g_usleep (40000);
  }
  last_sent = 0;
  fail_unless_equals_int (count_stats_messages (f.bus, &last_sent,
          &n_fields), 0);
  fixture_clear (&f);
}

GST_END_TEST;

/* N frames in, N access units out, timestamps kept, first a keyframe */
GST_START_TEST (test_encode_v2)
{
  Fixture f;
  GstCaps *caps;
  GstStructure *s;
  const gchar *profile;
  guint i, version = 0;

  fixture_init (&f, FAKE_HOST_V2, NULL, NV12_CAPS);
  push_frames (&f, 0, 10);
  for (i = 0; i < 10; i++) {
    GstBuffer *out = gst_harness_pull (f.h);

    fail_unless (out != NULL);
    fail_unless_equals_uint64 (GST_BUFFER_PTS (out), i * FRAME_DUR);
    fail_unless_equals_uint64 (GST_BUFFER_DURATION (out), FRAME_DUR);
    fail_unless_equals_uint64 (GST_BUFFER_DTS (out), i * FRAME_DUR);
    fail_unless_equals_int (GST_BUFFER_FLAG_IS_SET (out,
            GST_BUFFER_FLAG_DELTA_UNIT), i != 0);
    gst_buffer_unref (out);
  }

  caps = gst_pad_get_current_caps (f.h->sinkpad);
  s = gst_caps_get_structure (caps, 0);
  fail_unless (gst_structure_has_name (s, "video/x-h264"));
  fail_unless_equals_string (gst_structure_get_string (s, "stream-format"),
      "byte-stream");
  fail_unless_equals_string (gst_structure_get_string (s, "alignment"), "au");
  profile = gst_structure_get_string (s, "profile");
  fail_unless (profile != NULL);
  fail_unless (gst_structure_get_string (s, "level") != NULL);
  gst_caps_unref (caps);

  /* one frame of latency at 30 fps */
  fail_unless_equals_uint64 (gst_harness_query_latency (f.h), FRAME_DUR);

  fail_unless (fake_host_wait_frames (f.host, 10, WAIT_US));
  fail_unless_equals_int (fake_host_n_hellos (f.host), 1);
  for (i = 0; i < 10; i++) {
    FakeHostFrame hf = fake_host_get_frame (f.host, i);
    gsize size;
    const guint8 *pix;

    fail_unless_equals_int (hf.type, HXFR_MSG_FRAME_REQUEST2);
    fail_unless_equals_int (hf.req.seq, i);
    fail_unless_equals_int (hf.flags, HXFR_FLAG_PIXEL_DATA);
    fail_unless_equals_int (hf.req.format, HXFR_FORMAT_NV12);
    fail_unless_equals_int (hf.req.width, W);
    fail_unless_equals_int (hf.req.height, H);
    fail_unless_equals_int64 (hf.req.pts, i * FRAME_DUR);
    fail_unless_equals_int (hf.req.force_keyframe, i == 0);
    pix = g_bytes_get_data (hf.pixels, &size);
    fail_unless_equals_int (size, W * H * 3 / 2);
    fail_unless_equals_int (pix[100], (guint8) (100 * 3 + i * 7));
  }

  s = get_stats (f.enc);
  fail_unless (gst_structure_get_uint (s, "protocol-version", &version));
  fail_unless_equals_int (version, 2);
  fail_unless_equals_uint64 (stat_u64 (s, "frames-sent"), 10);
  fail_unless_equals_uint64 (stat_u64 (s, "frames-answered"), 10);
  fail_unless_equals_uint64 (stat_u64 (s, "pixel-frames"), 10);
  fail_unless (stat_u64 (s, "bytes-sent") > 10 * W * H * 3 / 2);
  fail_unless (stat_u64 (s, "rtt-max-us") >= stat_u64 (s, "rtt-min-us"));
  fail_unless_equals_string (gst_structure_get_string (s, "host-encoder"),
      "fakeenc");
  gst_structure_free (s);
  fixture_clear (&f);
}

GST_END_TEST;

/* EOS drains every frame in flight: 120 in, 120 out */
GST_START_TEST (test_eos_drains)
{
  Fixture f;
  guint i, max_outstanding = 0;

  fixture_init (&f, FAKE_HOST_V2, "max-in-flight=4 adaptive-window=false",
      NV12_CAPS);
  fake_host_set_delay (f.host, 3);
  push_frames (&f, 0, 120);
  fail_unless (gst_harness_push_event (f.h, gst_event_new_eos ()));
  /* finish() returned: everything is out */
  fail_unless_equals_int (gst_harness_buffers_received (f.h), 120);
  for (i = 0; i < 120; i++) {
    GstBuffer *out = gst_harness_pull (f.h);

    fail_unless_equals_uint64 (GST_BUFFER_PTS (out), i * FRAME_DUR);
    gst_buffer_unref (out);
  }
  for (i = 0; i < 120; i++)
    max_outstanding = MAX (max_outstanding,
        fake_host_get_frame (f.host, i).outstanding);
  /* several frames really were in flight, never more than granted */
  fail_unless (max_outstanding >= 1);
  fail_unless (max_outstanding <= 3);
  fixture_clear (&f);
}

GST_END_TEST;

/* flush drops the frames in flight; their late answers are discarded */
GST_START_TEST (test_flush)
{
  Fixture f;
  GstBuffer *out;
  GstSegment seg;

  fixture_init (&f, FAKE_HOST_V2, "max-in-flight=4 adaptive-window=false",
      NV12_CAPS);
  fake_host_set_hold (f.host, TRUE);
  push_frames (&f, 0, 3);
  fail_unless (fake_host_wait_frames (f.host, 3, WAIT_US));
  fail_unless (gst_harness_push_event (f.h, gst_event_new_flush_start ()));
  fail_unless (gst_harness_push_event (f.h, gst_event_new_flush_stop (TRUE)));
  gst_segment_init (&seg, GST_FORMAT_TIME);
  fail_unless (gst_harness_push_event (f.h, gst_event_new_segment (&seg)));
  fake_host_set_hold (f.host, FALSE);

  push_frames (&f, 10, 2);
  out = gst_harness_pull (f.h);
  fail_unless_equals_uint64 (GST_BUFFER_PTS (out), 10 * FRAME_DUR);
  /* a decoder needs a keyframe after a flush */
  fail_if (GST_BUFFER_FLAG_IS_SET (out, GST_BUFFER_FLAG_DELTA_UNIT));
  gst_buffer_unref (out);
  out = gst_harness_pull (f.h);
  fail_unless_equals_uint64 (GST_BUFFER_PTS (out), 11 * FRAME_DUR);
  gst_buffer_unref (out);
  fail_unless (gst_harness_push_event (f.h, gst_event_new_eos ()));
  fail_unless_equals_int (gst_harness_buffers_in_queue (f.h), 0);
  /* the three flushed ones were answered too, and nothing else */
  fail_unless (fake_host_wait_answered (f.host, 5, WAIT_US));
  fail_unless_equals_int (fake_host_n_answered (f.host), 5);
  fixture_clear (&f);
}

GST_END_TEST;

typedef struct
{
  Fixture *f;
  guint index;
  GstFlowReturn ret;
} PushData;

static gpointer
push_thread (gpointer data)
{
  PushData *d = data;

  d->ret = gst_harness_push (d->f->h, make_frame (&d->f->info, d->index));
  return NULL;
}

/* a streaming thread waiting for room in flight wakes on flush-start */
GST_START_TEST (test_flush_unblocks)
{
  Fixture f;
  PushData d = { &f, 1, GST_FLOW_OK };
  GThread *t;

  fixture_init (&f, FAKE_HOST_V2, "max-in-flight=1", NV12_CAPS);
  fake_host_set_hold (f.host, TRUE);
  push_frames (&f, 0, 1);
  fail_unless (fake_host_wait_frames (f.host, 1, WAIT_US));
  t = g_thread_new ("push", push_thread, &d);
  /* no second request can go out while the first is unanswered */
  fail_if (fake_host_wait_frames (f.host, 2, 200 * G_TIME_SPAN_MILLISECOND));
  fail_unless (gst_harness_push_event (f.h, gst_event_new_flush_start ()));
  g_thread_join (t);
  fail_unless_equals_int (d.ret, GST_FLOW_FLUSHING);
  fail_unless (gst_harness_push_event (f.h, gst_event_new_flush_stop (TRUE)));
  fail_unless_equals_int (gst_harness_buffers_received (f.h), 0);
  fixture_clear (&f);
}

GST_END_TEST;

/* going to NULL while the streaming thread waits on the host: no hang */
GST_START_TEST (test_stop_while_blocked)
{
  Fixture f;
  PushData d = { &f, 1, GST_FLOW_OK };
  GThread *t;

  fixture_init (&f, FAKE_HOST_V2, "max-in-flight=1", NV12_CAPS);
  fake_host_set_fault (f.host, FAKE_FAULT_SILENCE, 0);
  push_frames (&f, 0, 1);
  fail_unless (fake_host_wait_frames (f.host, 1, WAIT_US));
  t = g_thread_new ("push", push_thread, &d);
  fail_if (fake_host_wait_frames (f.host, 2, 200 * G_TIME_SPAN_MILLISECOND));
  fail_unless_equals_int (gst_element_set_state (f.enc, GST_STATE_NULL),
      GST_STATE_CHANGE_SUCCESS);
  g_thread_join (t);
  fail_unless_equals_int (d.ret, GST_FLOW_FLUSHING);
  /* stopping is not an error */
  fail_unless (wait_message (f.bus, GST_MESSAGE_ERROR, 0) == NULL);
  fixture_clear (&f);
}

GST_END_TEST;

/* a force-key-unit event from downstream reaches the host as an IDR request */
GST_START_TEST (test_force_key_unit)
{
  Fixture f;
  GstBuffer *out;
  guint i;

  fixture_init (&f, FAKE_HOST_V2, "keyframe-interval=0", NV12_CAPS);
  push_frames (&f, 0, 5);
  for (i = 0; i < 5; i++)
    gst_buffer_unref (gst_harness_pull (f.h));
  fail_unless (gst_harness_push_upstream_event (f.h,
          gst_video_event_new_upstream_force_key_unit (GST_CLOCK_TIME_NONE,
              TRUE, 1)));
  push_frames (&f, 5, 2);
  out = gst_harness_pull (f.h);
  fail_if (GST_BUFFER_FLAG_IS_SET (out, GST_BUFFER_FLAG_DELTA_UNIT));
  gst_buffer_unref (out);
  out = gst_harness_pull (f.h);
  fail_unless (GST_BUFFER_FLAG_IS_SET (out, GST_BUFFER_FLAG_DELTA_UNIT));
  gst_buffer_unref (out);

  fail_unless (fake_host_wait_frames (f.host, 7, WAIT_US));
  for (i = 0; i < 7; i++)
    fail_unless_equals_int (fake_host_get_frame (f.host, i).req.force_keyframe,
        i == 0 || i == 5);
  fixture_clear (&f);
}

GST_END_TEST;

GST_START_TEST (test_keyframe_interval)
{
  Fixture f;
  guint i;

  fixture_init (&f, FAKE_HOST_V2, "keyframe-interval=5", NV12_CAPS);
  push_frames (&f, 0, 12);
  fail_unless (fake_host_wait_frames (f.host, 12, WAIT_US));
  for (i = 0; i < 12; i++)
    fail_unless_equals_int (fake_host_get_frame (f.host, i).req.force_keyframe,
        i % 5 == 0);
  for (i = 0; i < 12; i++) {
    GstBuffer *out = gst_harness_pull (f.h);

    fail_unless_equals_int (GST_BUFFER_FLAG_IS_SET (out,
            GST_BUFFER_FLAG_DELTA_UNIT), i % 5 != 0);
    gst_buffer_unref (out);
  }

  /* changed while playing: counted on from the last keyframe (frame 10),
   * and the host is told */
  g_object_set (f.enc, "keyframe-interval", 3, NULL);
  push_frames (&f, 12, 8);
  fail_unless (fake_host_wait_frames (f.host, 20, WAIT_US));
  for (i = 12; i < 20; i++)
    fail_unless_equals_int (fake_host_get_frame (f.host, i).req.force_keyframe,
        i == 13 || i == 16 || i == 19);
  {
    FakeHostControl c = fake_host_get_control (f.host,
        fake_host_n_controls (f.host) - 1);

    fail_unless_equals_int (c.type, HXFR_MSG_CONTROL);
    fail_unless (c.mask & HXFR_CONTROL_KEYFRAME_INTERVAL);
    fail_unless_equals_int (c.keyframe_interval, 3);
    fail_unless_equals_int (c.frames_before, 12);
  }
  fixture_clear (&f);
}

GST_END_TEST;

/* a bitrate change while playing reaches the host before the next frame */
static void
check_bitrate_change (FakeHostMode mode, guint8 type)
{
  Fixture f;
  guint i;
  gboolean seen = FALSE;

  fixture_init (&f, mode, NULL, NV12_CAPS);
  push_frames (&f, 0, 2);
  g_object_set (f.enc, "bitrate", 1234567, NULL);
  push_frames (&f, 2, 1);
  fail_unless (fake_host_wait_frames (f.host, 3, WAIT_US));
  for (i = 0; i < fake_host_n_controls (f.host); i++) {
    FakeHostControl c = fake_host_get_control (f.host, i);

    fail_unless_equals_int (c.type, type);
    if (c.bitrate == 1234567) {
      fail_unless_equals_int (c.frames_before, 2);
      seen = TRUE;
    } else {
      fail_unless_equals_int (c.bitrate, 4000000);
    }
  }
  fail_unless (seen);
  fixture_clear (&f);
}

GST_START_TEST (test_bitrate_v2)
{
  check_bitrate_change (FAKE_HOST_V2, HXFR_MSG_CONTROL);
}

GST_END_TEST;

GST_START_TEST (test_bitrate_v1)
{
  check_bitrate_change (FAKE_HOST_V1, HXFR_MSG_CONFIG_REQ);
}

GST_END_TEST;

/* a host answering HELLO with ERROR -1 is a v1 host: v1 requests, v1
 * formats and layout, one frame in flight */
GST_START_TEST (test_v1_fallback)
{
  Fixture f;
  GstStructure *s;
  guint i, version = 0, window = 0;

  fixture_init (&f, FAKE_HOST_V1, "max-in-flight=4 adaptive-window=false",
      "video/x-raw,format=BGRx,width=62,height=48,framerate=30/1");
  fake_host_set_delay (f.host, 5);
  push_frames (&f, 0, 8);
  fail_unless (gst_harness_push_event (f.h, gst_event_new_eos ()));
  fail_unless_equals_int (gst_harness_buffers_received (f.h), 8);
  fail_unless_equals_int (fake_host_n_hellos (f.host), 1);
  fail_unless_equals_int (fake_host_n_frames (f.host), 8);
  for (i = 0; i < 8; i++) {
    FakeHostFrame hf = fake_host_get_frame (f.host, i);

    fail_unless_equals_int (hf.type, HXFR_MSG_FRAME_REQUEST);
    fail_unless_equals_int (hf.req.format, HXFR_FORMAT_ARGB8888);
    fail_unless_equals_int (hf.req.stride[0], 62 * 4);
    fail_unless_equals_int (hf.payload_size, HXFR_FRAME_REQUEST_SIZE +
        62 * 4 * 48);
    fail_unless_equals_int (hf.outstanding, 0);
    fail_unless_equals_int (hf.req.force_keyframe, i == 0);
  }
  s = get_stats (f.enc);
  fail_unless (gst_structure_get_uint (s, "protocol-version", &version));
  fail_unless_equals_int (version, 1);
  /* a v1 host: one in flight, pinned or not */
  fail_unless (gst_structure_get_uint (s, "window", &window));
  fail_unless_equals_int (window, 1);
  gst_structure_free (s);
  fixture_clear (&f);
}

GST_END_TEST;

/* v1 NV12 from a buffer whose chroma stride differs from the luma stride:
 * repacked into the v1 layout (one stride), the bytes exact */
GST_START_TEST (test_v1_repack)
{
  Fixture f;
  GstBuffer *b;
  gsize offsets[4] = { 0, 128 * H, 0, 0 };
  gint strides[4] = { 128, 96, 0, 0 };
  GstMapInfo map;
  FakeHostFrame hf;
  const guint8 *pix;
  gsize size, k, r;

  fixture_init (&f, FAKE_HOST_V1, NULL, NV12_CAPS);
  b = gst_buffer_new_allocate (NULL, 128 * H + 96 * H / 2, NULL);
  gst_buffer_map (b, &map, GST_MAP_WRITE);
  for (k = 0; k < map.size; k++)
    map.data[k] = (guint8) (k * 5);
  gst_buffer_unmap (b, &map);
  gst_buffer_add_video_meta_full (b, GST_VIDEO_FRAME_FLAG_NONE,
      GST_VIDEO_FORMAT_NV12, W, H, 2, offsets, strides);
  GST_BUFFER_PTS (b) = 0;
  fail_unless_equals_int (gst_harness_push (f.h, b), GST_FLOW_OK);
  gst_buffer_unref (gst_harness_pull (f.h));

  hf = fake_host_get_frame (f.host, 0);
  pix = g_bytes_get_data (hf.pixels, &size);
  fail_unless_equals_int (hf.req.stride[0], W);
  fail_unless_equals_int (size, W * H * 3 / 2);
  for (r = 0; r < H; r++)
    for (k = 0; k < W; k++)
      fail_unless_equals_int (pix[r * W + k], (guint8) ((r * 128 + k) * 5));
  for (r = 0; r < H / 2; r++)
    for (k = 0; k < W; k++)
      fail_unless_equals_int (pix[W * H + r * W + k],
          (guint8) ((128 * H + r * 96 + k) * 5));
  fixture_clear (&f);
}

GST_END_TEST;

/* v2 sends I420 with its own plane strides */
GST_START_TEST (test_v2_i420)
{
  Fixture f;
  FakeHostFrame hf;
  gsize size;

  fixture_init (&f, FAKE_HOST_V2, NULL,
      "video/x-raw,format=I420,width=62,height=46,framerate=30/1");
  push_frames (&f, 0, 1);
  gst_buffer_unref (gst_harness_pull (f.h));
  hf = fake_host_get_frame (f.host, 0);
  fail_unless_equals_int (hf.req.format, HXFR_FORMAT_YUV420);
  fail_unless_equals_int (hf.req.n_planes, 3);
  fail_unless_equals_int (hf.req.stride[0],
      GST_VIDEO_INFO_PLANE_STRIDE (&f.info, 0));
  fail_unless_equals_int (hf.req.stride[1],
      GST_VIDEO_INFO_PLANE_STRIDE (&f.info, 1));
  g_bytes_get_data (hf.pixels, &size);
  fail_unless_equals_int (size, hf.req.offset[2] + hf.req.stride[2] * 23);
  fixture_clear (&f);
}

GST_END_TEST;

/* against a v1 host I420 is not offered and, forced, refused: never sent
 * mislabelled */
GST_START_TEST (test_v1_i420_refused)
{
  Fixture f;
  GstCaps *caps, *i420;
  GstPad *sink;
  GstFlowReturn ret;

  fixture_init (&f, FAKE_HOST_V1, NULL, NULL);
  fail_unless_equals_int (gst_element_set_state (f.enc, GST_STATE_PLAYING),
      GST_STATE_CHANGE_SUCCESS);
  sink = gst_element_get_static_pad (f.enc, "sink");
  caps = gst_pad_query_caps (sink, NULL);
  i420 = gst_caps_from_string ("video/x-raw,format=I420");
  fail_if (gst_caps_can_intersect (caps, i420));
  gst_caps_unref (caps);
  gst_caps_unref (i420);
  gst_object_unref (sink);
  gst_element_set_state (f.enc, GST_STATE_NULL);

  f.h = gst_harness_new_with_element (f.enc, "sink", "src");
  gst_harness_set_src_caps_str (f.h,
      "video/x-raw,format=I420,width=64,height=48,framerate=30/1");
  gst_video_info_set_format (&f.info, GST_VIDEO_FORMAT_I420, W, H);
  ret = gst_harness_push (f.h, make_frame (&f.info, 0));
  /* refused at caps negotiation already (set_format is the backstop) */
  fail_unless_equals_int (ret, GST_FLOW_NOT_NEGOTIATED);
  fail_unless_equals_int (fake_host_n_frames (f.host), 0);
  fixture_clear (&f);
}

GST_END_TEST;

/* v1 cannot express odd-sized NV12 (one stride, even planes) */
GST_START_TEST (test_v1_odd_nv12_refused)
{
  Fixture f;
  GstMessage *msg;

  fixture_init (&f, FAKE_HOST_V1, NULL,
      "video/x-raw,format=NV12,width=63,height=48,framerate=30/1");
  fail_unless_equals_int (gst_harness_push (f.h, make_frame (&f.info, 0)),
      GST_FLOW_NOT_NEGOTIATED);
  msg = wait_message (f.bus, GST_MESSAGE_ERROR, 5 * GST_SECOND);
  fail_unless (msg != NULL);
  fail_unless (message_mentions (msg, "odd"));
  gst_message_unref (msg);
  fixture_clear (&f);
}

GST_END_TEST;

/* a host that hangs up on HELLO gets one v1 reconnection */
GST_START_TEST (test_close_on_hello)
{
  Fixture f;

  fixture_init (&f, FAKE_HOST_V2_CLOSE_ON_HELLO, NULL, NV12_CAPS);
  push_frames (&f, 0, 3);
  fail_unless (gst_harness_push_event (f.h, gst_event_new_eos ()));
  fail_unless_equals_int (gst_harness_buffers_received (f.h), 3);
  fail_unless_equals_int (fake_host_n_connections (f.host), 2);
  fail_unless_equals_int (fake_host_n_hellos (f.host), 1);
  fail_unless_equals_int (fake_host_get_frame (f.host, 0).type,
      HXFR_MSG_FRAME_REQUEST);
  fixture_clear (&f);
}

GST_END_TEST;

static gpointer
set_playing_thread (gpointer data)
{
  return GINT_TO_POINTER (gst_element_set_state (data, GST_STATE_PLAYING));
}

/* A host that reads HELLO and then only PINGs: the negotiation has one
 * deadline (timeout), keep-alives do not restart it. */
GST_START_TEST (test_handshake_deadline)
{
  Fixture f;
  GThread *t;
  GstMessage *msg;

  fixture_init (&f, FAKE_HOST_PING_ON_HELLO, "timeout=1000", NULL);
  /* set_state blocks in the negotiation: on a thread, so that a hang is a
   * failed check here rather than a stuck test */
  t = g_thread_new ("set-playing", set_playing_thread, f.enc);
  msg = wait_message (f.bus, GST_MESSAGE_ERROR, 10 * GST_SECOND);
  fail_unless (msg != NULL, "no error within 10 s while the host PINGs "
      "instead of answering HELLO (timeout=1000)");
  fail_unless (message_mentions (msg, "HELLO_ACK"));
  gst_message_unref (msg);
  fail_unless_equals_int (GPOINTER_TO_INT (g_thread_join (t)),
      GST_STATE_CHANGE_FAILURE);
  fixture_clear (&f);
}

GST_END_TEST;

/* The host's reason is the first error an application sees, before the
 * source's generic "Internal data stream error". */
GST_START_TEST (test_error_posted_first)
{
  FakeHost *host = fake_host_new (FAKE_HOST_V2);
  GstElement *pipeline;
  GstBus *bus;
  GstMessage *msg;
  gchar *desc;

  fake_host_set_fault (host, FAKE_FAULT_ERROR, 2);
  desc = g_strdup_printf ("videotestsrc is-live=false ! "
      "video/x-raw,format=NV12,width=64,height=48,framerate=30/1 ! "
      "vsockenc name=enc socket-path=%s ! fakesink", fake_host_get_path (host));
  pipeline = gst_parse_launch (desc, NULL);
  g_free (desc);
  fail_unless (pipeline != NULL);
  bus = gst_element_get_bus (pipeline);
  gst_element_set_state (pipeline, GST_STATE_PLAYING);
  msg = gst_bus_timed_pop_filtered (bus, 10 * GST_SECOND, GST_MESSAGE_ERROR);
  fail_unless (msg != NULL);
  fail_unless_equals_string (GST_OBJECT_NAME (GST_MESSAGE_SRC (msg)), "enc");
  fail_unless (message_mentions (msg, "scripted failure"));
  gst_message_unref (msg);
  gst_element_set_state (pipeline, GST_STATE_NULL);
  gst_object_unref (bus);
  gst_object_unref (pipeline);
  fake_host_free (host);
}

GST_END_TEST;

/* the token goes in HELLO; a host that refuses it is fatal, not a v1 host */
GST_START_TEST (test_token)
{
  Fixture f;
  gchar *token;
  GstMessage *msg;

  fixture_init (&f, FAKE_HOST_V2, "token=s3cret", NV12_CAPS);
  fake_host_set_token (f.host, "s3cret");
  push_frames (&f, 0, 1);
  gst_buffer_unref (gst_harness_pull (f.h));
  token = fake_host_get_hello_token (f.host);
  fail_unless_equals_string (token, "s3cret");
  g_free (token);
  fixture_clear (&f);

  fixture_init (&f, FAKE_HOST_V2, "token=wrong", NULL);
  fake_host_set_token (f.host, "s3cret");
  fail_unless_equals_int (gst_element_set_state (f.enc, GST_STATE_PLAYING),
      GST_STATE_CHANGE_FAILURE);
  msg = wait_message (f.bus, GST_MESSAGE_ERROR, GST_SECOND);
  fail_unless (msg != NULL);
  fail_unless (message_mentions (msg, "refused"));
  fail_unless (message_mentions (msg, fake_host_get_path (f.host)));
  gst_message_unref (msg);
  fail_unless_equals_int (fake_host_n_connections (f.host), 1);
  fixture_clear (&f);
}

GST_END_TEST;

/* protocol=v1 speaks v1 without a HELLO, even to a v2 host */
GST_START_TEST (test_protocol_v1)
{
  Fixture f;

  fixture_init (&f, FAKE_HOST_V2, "protocol=v1", NV12_CAPS);
  push_frames (&f, 0, 3);
  fail_unless (gst_harness_push_event (f.h, gst_event_new_eos ()));
  fail_unless_equals_int (gst_harness_buffers_received (f.h), 3);
  fail_unless_equals_int (fake_host_n_hellos (f.host), 0);
  fail_unless_equals_int (fake_host_get_frame (f.host, 2).type,
      HXFR_MSG_FRAME_REQUEST);
  fixture_clear (&f);
}

GST_END_TEST;

/* the host may grant fewer frames in flight than asked for */
GST_START_TEST (test_grant)
{
  Fixture f;
  GstStructure *s;
  guint i, granted = 0;

  fixture_init (&f, FAKE_HOST_V2, "max-in-flight=8 adaptive-window=false",
      NULL);
  fake_host_set_grant (f.host, 2);
  f.h = gst_harness_new_with_element (f.enc, "sink", "src");
  gst_harness_set_src_caps_str (f.h, NV12_CAPS);
  gst_video_info_set_format (&f.info, GST_VIDEO_FORMAT_NV12, W, H);
  fake_host_set_delay (f.host, 3);
  push_frames (&f, 0, 20);
  fail_unless (gst_harness_push_event (f.h, gst_event_new_eos ()));
  fail_unless_equals_int (gst_harness_buffers_received (f.h), 20);
  for (i = 0; i < 20; i++)
    fail_unless (fake_host_get_frame (f.host, i).outstanding <= 1);
  s = get_stats (f.enc);
  fail_unless (gst_structure_get_uint (s, "max-in-flight", &granted));
  fail_unless_equals_int (granted, 2);
  gst_structure_free (s);
  fixture_clear (&f);
}

GST_END_TEST;

static guint
stats_window (GstElement * enc)
{
  GstStructure *s = get_stats (enc);
  guint window = 0, prop = 0;

  fail_unless (gst_structure_get_uint (s, "window", &window));
  gst_structure_free (s);
  g_object_get (enc, "window", &prop, NULL);
  fail_unless_equals_int (prop, window);
  return window;
}

/* The adaptive window (the default) against a host whose encoder takes
 * 30 ms a frame over an instant link: more frames in flight would only wait
 * in front of the encoder, and the window stays at 1 (2 at most while it
 * tries one more). */
GST_START_TEST (test_window_slow_host)
{
  Fixture f;
  guint window;

  fixture_init (&f, FAKE_HOST_V2, NULL, NV12_CAPS);
  fake_host_set_service_time (f.host, 30);
  push_frames (&f, 0, 40);
  window = stats_window (f.enc);
  fail_unless (window >= 1 && window <= 2, "window %u", window);
  fail_unless (gst_harness_push_event (f.h, gst_event_new_eos ()));
  fail_unless_equals_int (gst_harness_buffers_received (f.h), 40);
  fixture_clear (&f);
}

GST_END_TEST;

/* A link that takes 24 ms in front of a 4 ms encoder: one frame at a time
 * would leave the encoder idle most of the time, and the window grows
 * (the host sees frames overlap). */
GST_START_TEST (test_window_link_delay)
{
  Fixture f;
  guint window, i, most = 0;

  fixture_init (&f, FAKE_HOST_V2, "max-in-flight=8", NV12_CAPS);
  fake_host_set_service_time (f.host, 4);
  fake_host_set_link_delay (f.host, 24);
  push_frames (&f, 0, 80);
  window = stats_window (f.enc);
  fail_unless (window >= 3 && window <= 8, "window %u", window);
  fail_unless (gst_harness_push_event (f.h, gst_event_new_eos ()));
  fail_unless_equals_int (gst_harness_buffers_received (f.h), 80);
  for (i = 0; i < 80; i++)
    most = MAX (most, fake_host_get_frame (f.host, i).outstanding);
  fail_unless (most >= 2, "at most %u frames ahead of another", most);
  fixture_clear (&f);
}

GST_END_TEST;

/* adaptive-window=false pins the window at what was granted, also where
 * the adaptive one would stay at 1; not connected, it reads 0 */
GST_START_TEST (test_window_pinned)
{
  Fixture f;
  guint window = 99, i, most = 0;

  fixture_init (&f, FAKE_HOST_V2, "max-in-flight=4 adaptive-window=false",
      NULL);
  g_object_get (f.enc, "window", &window, NULL);
  fail_unless_equals_int (window, 0);
  f.h = gst_harness_new_with_element (f.enc, "sink", "src");
  gst_harness_set_src_caps_str (f.h, NV12_CAPS);
  gst_video_info_set_format (&f.info, GST_VIDEO_FORMAT_NV12, W, H);
  fake_host_set_service_time (f.host, 10);
  push_frames (&f, 0, 20);
  fail_unless_equals_int (stats_window (f.enc), 4);
  fail_unless (gst_harness_push_event (f.h, gst_event_new_eos ()));
  for (i = 0; i < 20; i++)
    most = MAX (most, fake_host_get_frame (f.host, i).outstanding);
  fail_unless_equals_int (most, 3);
  fixture_clear (&f);
}

GST_END_TEST;

/* TCP transport, and the deployed precedence: socket-path over tcp-host */
GST_START_TEST (test_tcp_and_precedence)
{
  Fixture f;
  FakeHost *tcp = fake_host_new_tcp (FAKE_HOST_V2);
  GstElement *enc;
  GstHarness *h;
  GstVideoInfo info;
  GstBuffer *b;
  guint port = fake_host_get_port (tcp);

  fail_unless (port > 0);
  enc = gst_element_factory_make ("vsockenc", NULL);
  g_object_set (enc, "tcp-host", "127.0.0.1", "tcp-port", port, NULL);
  h = gst_harness_new_with_element (enc, "sink", "src");
  gst_harness_set_src_caps_str (h, NV12_CAPS);
  gst_video_info_set_format (&info, GST_VIDEO_FORMAT_NV12, W, H);
  b = make_frame (&info, 0);
  fail_unless_equals_int (gst_harness_push (h, b), GST_FLOW_OK);
  gst_buffer_unref (gst_harness_pull (h));
  fail_unless_equals_int (fake_host_n_frames (tcp), 1);
  gst_harness_teardown (h);
  gst_object_unref (enc);

  /* both set: the UNIX socket wins */
  fixture_init (&f, FAKE_HOST_V2, NULL, NULL);
  g_object_set (f.enc, "tcp-host", "127.0.0.1", "tcp-port", port, NULL);
  f.h = gst_harness_new_with_element (f.enc, "sink", "src");
  gst_harness_set_src_caps_str (f.h, NV12_CAPS);
  f.info = info;
  push_frames (&f, 0, 2);
  gst_buffer_unref (gst_harness_pull (f.h));
  gst_buffer_unref (gst_harness_pull (f.h));
  fail_unless_equals_int (fake_host_n_frames (f.host), 2);
  fail_unless_equals_int (fake_host_n_connections (tcp), 1);
  fixture_clear (&f);
  fake_host_free (tcp);
}

GST_END_TEST;

GST_START_TEST (test_host_unreachable)
{
  GstElement *enc = gst_element_factory_make ("vsockenc", NULL);
  GstBus *bus = gst_bus_new ();
  GstMessage *msg;

  gst_element_set_bus (enc, bus);
  g_object_set (enc, "socket-path", "/nonexistent/vsockenc-test.sock",
      "timeout", 500, NULL);
  fail_unless_equals_int (gst_element_set_state (enc, GST_STATE_PLAYING),
      GST_STATE_CHANGE_FAILURE);
  msg = wait_message (bus, GST_MESSAGE_ERROR, GST_SECOND);
  fail_unless (msg != NULL);
  fail_unless (message_mentions (msg, "/nonexistent/vsockenc-test.sock"));
  gst_message_unref (msg);
  gst_element_set_state (enc, GST_STATE_NULL);
  gst_element_set_bus (enc, NULL);
  gst_object_unref (bus);
  gst_object_unref (enc);
}

GST_END_TEST;

/* Faults, each must end in an error on the bus within the timeout. The
 * faults the host makes itself get a timeout long enough that a busy
 * machine's host thread acts before it (at 500 ms, a close once came
 * after the element's timeout); a truncated or missing answer is found
 * by the 500 ms timeout itself. */
typedef struct
{
  FakeHostMode mode;
  FakeFault fault;
  const gchar *cause;
  const gchar *timeout;
} FaultCase;

#define HOST_ACTS "timeout=3000"
#define FOUND_BY_TIMEOUT "timeout=500"

static const FaultCase fault_cases[] = {
  {FAKE_HOST_V2, FAKE_FAULT_CLOSE, "closed", HOST_ACTS},
  {FAKE_HOST_V2, FAKE_FAULT_ERROR, "scripted failure", HOST_ACTS},
  {FAKE_HOST_V2, FAKE_FAULT_BAD_MAGIC, "magic", HOST_ACTS},
  {FAKE_HOST_V2, FAKE_FAULT_PAYLOAD_SIZE, "exceeds", HOST_ACTS},
  {FAKE_HOST_V2, FAKE_FAULT_TRUNCATE, "imed out", FOUND_BY_TIMEOUT},
  {FAKE_HOST_V2, FAKE_FAULT_SILENCE, "no answer", FOUND_BY_TIMEOUT},
  {FAKE_HOST_V2, FAKE_FAULT_WRONG_SEQ, "oldest", HOST_ACTS},
  {FAKE_HOST_V1, FAKE_FAULT_CLOSE, "closed", HOST_ACTS},
  {FAKE_HOST_V1, FAKE_FAULT_BAD_MAGIC, "magic", HOST_ACTS},
  {FAKE_HOST_V1, FAKE_FAULT_NAL_COUNT, "NAL", HOST_ACTS},
  {FAKE_HOST_V1, FAKE_FAULT_PAYLOAD_SIZE, "exceeds", HOST_ACTS},
  {FAKE_HOST_V1, FAKE_FAULT_TRUNCATE, "imed out", FOUND_BY_TIMEOUT},
  {FAKE_HOST_V1, FAKE_FAULT_SILENCE, "no answer", FOUND_BY_TIMEOUT},
};

GST_START_TEST (test_faults)
{
  const FaultCase *c = &fault_cases[__i__];
  Fixture f;
  GstMessage *msg;
  gint64 start;
  guint i;
  GstFlowReturn ret = GST_FLOW_OK;

  fixture_init (&f, c->mode, c->timeout, NV12_CAPS);
  fake_host_set_fault (f.host, c->fault, 1);
  start = g_get_monotonic_time ();
  for (i = 0; i < 20 && ret == GST_FLOW_OK; i++)
    ret = gst_harness_push (f.h, make_frame (&f.info, i));
  /* the streaming thread learns it: no hang */
  fail_unless_equals_int (ret, GST_FLOW_ERROR);
  msg = wait_message (f.bus, GST_MESSAGE_ERROR, 5 * GST_SECOND);
  fail_unless (msg != NULL);
  fail_unless (message_mentions (msg, fake_host_get_path (f.host)));
  fail_unless (message_mentions (msg, c->cause));
  gst_message_unref (msg);
  /* within the timeout (plus the backstop), not forever */
  fail_unless (g_get_monotonic_time () - start < 4 * G_USEC_PER_SEC);
  /* the frame answered before the fault came out */
  fail_unless (gst_harness_buffers_received (f.h) >= 1);
  fixture_clear (&f);
}

GST_END_TEST;

/* a host gone mid-stream, in reconnect mode: resume with an IDR */
GST_START_TEST (test_reconnect)
{
  Fixture f;
  GstMessage *msg;
  guint i, n, first_new = G_MAXUINT;
  GstStructure *s;

  fixture_init (&f, FAKE_HOST_V2, "on-disconnect=reconnect timeout=1000 "
      "keyframe-interval=0", NV12_CAPS);
  fake_host_set_fault (f.host, FAKE_FAULT_CLOSE, 3);
  for (i = 0; i < 40 && first_new == G_MAXUINT; i++) {
    guint k;

    fail_unless_equals_int (gst_harness_push (f.h, make_frame (&f.info, i)),
        GST_FLOW_OK);
    n = fake_host_n_frames (f.host);
    for (k = 0; k < n; k++)
      if (fake_host_get_frame (f.host, k).connection == 1) {
        first_new = k;
        break;
      }
  }
  fail_unless (first_new != G_MAXUINT);
  fail_unless (fake_host_get_frame (f.host, first_new).req.force_keyframe);
  fail_unless_equals_int (fake_host_get_frame (f.host, first_new).req.seq, 0);
  for (i = 4; i < first_new; i++)
    fail_if (fake_host_get_frame (f.host, i).req.force_keyframe);
  msg = wait_message (f.bus, GST_MESSAGE_WARNING, 5 * GST_SECOND);
  fail_unless (msg != NULL);
  fail_unless (message_mentions (msg, "reconnecting"));
  gst_message_unref (msg);
  fail_unless (wait_message (f.bus, GST_MESSAGE_ERROR, 0) == NULL);

  fail_unless (gst_harness_push_event (f.h, gst_event_new_eos ()));
  /* frames 0-2 and everything from the reconnection on came out; the
   * resumed stream starts with a keyframe */
  n = gst_harness_buffers_in_queue (f.h);
  fail_unless (n >= 4);
  for (i = 0; i < 3; i++)
    gst_buffer_unref (gst_harness_pull (f.h));
  {
    GstBuffer *out = gst_harness_pull (f.h);

    fail_if (GST_BUFFER_FLAG_IS_SET (out, GST_BUFFER_FLAG_DELTA_UNIT));
    fail_unless_equals_uint64 (GST_BUFFER_PTS (out),
        fake_host_get_frame (f.host, first_new).req.pts);
    gst_buffer_unref (out);
  }
  s = get_stats (f.enc);
  fail_unless_equals_uint64 (stat_u64 (s, "reconnects"), 1);
  gst_structure_free (s);
  fixture_clear (&f);
}

GST_END_TEST;

/* the host away for a while, in reconnect mode: frames meanwhile are
 * released, nothing blocks, and a host back at the same address gets the
 * stream again, starting with an IDR */
GST_START_TEST (test_reconnect_after_outage)
{
  Fixture f;
  gchar *dir, *path;
  FakeHost *back;
  guint i, received, n;
  gint64 deadline;
  GstMessage *msg;

  fixture_init (&f, FAKE_HOST_V2, "on-disconnect=reconnect timeout=1000 "
      "keyframe-interval=0", NV12_CAPS);
  path = g_strdup (fake_host_get_path (f.host));
  dir = g_path_get_dirname (path);
  push_frames (&f, 0, 3);
  for (i = 0; i < 3; i++)
    gst_buffer_unref (gst_harness_pull (f.h));

  /* the host goes away, socket file and all */
  fake_host_free (f.host);
  f.host = NULL;
  msg = NULL;
  for (i = 3; i < 40 && !msg; i++) {
    fail_unless_equals_int (gst_harness_push (f.h, make_frame (&f.info, i)),
        GST_FLOW_OK);
    msg = wait_message (f.bus, GST_MESSAGE_WARNING, 20 * GST_MSECOND);
  }
  fail_unless (msg != NULL);
  gst_message_unref (msg);
  received = gst_harness_buffers_received (f.h);
  /* a live source keeps pushing while the host is away: never blocked */
  for (n = 0; n < 20; n++, i++) {
    fail_unless_equals_int (gst_harness_push (f.h, make_frame (&f.info, i)),
        GST_FLOW_OK);
    g_usleep (10 * G_TIME_SPAN_MILLISECOND);
  }
  fail_unless_equals_int (gst_harness_buffers_received (f.h), received);

  /* back at the same address: picked up within the back-off */
  fail_unless_equals_int (g_mkdir (dir, 0700), 0);
  back = fake_host_new_at (FAKE_HOST_V2, path);
  deadline = g_get_monotonic_time () + 10 * G_USEC_PER_SEC;
  while (fake_host_n_frames (back) == 0 && g_get_monotonic_time () < deadline) {
    fail_unless_equals_int (gst_harness_push (f.h, make_frame (&f.info, i++)),
        GST_FLOW_OK);
    g_usleep (10 * G_TIME_SPAN_MILLISECOND);
  }
  fail_unless (fake_host_n_frames (back) > 0);
  fail_unless (fake_host_get_frame (back, 0).req.force_keyframe);
  fail_unless (gst_harness_push_event (f.h, gst_event_new_eos ()));
  fail_unless (fake_host_wait_answered (back, fake_host_n_frames (back),
          WAIT_US));
  fail_unless (wait_message (f.bus, GST_MESSAGE_ERROR, 0) == NULL);
  f.host = back;
  fixture_clear (&f);
  g_rmdir (dir);
  g_free (dir);
  g_free (path);
}

GST_END_TEST;

/* reconnect mode, and the host that comes back speaks only v1: I420 cannot
 * go there, an error says so, nothing is sent mislabelled */
GST_START_TEST (test_reconnect_to_v1_host)
{
  Fixture f;
  gchar *dir, *path;
  FakeHost *back;
  GstMessage *msg = NULL;
  GstFlowReturn ret = GST_FLOW_OK;
  gint64 deadline;
  guint i;

  fixture_init (&f, FAKE_HOST_V2, "on-disconnect=reconnect timeout=1000",
      "video/x-raw,format=I420,width=64,height=48,framerate=30/1");
  path = g_strdup (fake_host_get_path (f.host));
  dir = g_path_get_dirname (path);
  push_frames (&f, 0, 2);
  fake_host_free (f.host);
  fail_unless_equals_int (g_mkdir (dir, 0700), 0);
  back = fake_host_new_at (FAKE_HOST_V1, path);
  f.host = back;

  deadline = g_get_monotonic_time () + 10 * G_USEC_PER_SEC;
  for (i = 2; ret == GST_FLOW_OK && g_get_monotonic_time () < deadline; i++) {
    ret = gst_harness_push (f.h, make_frame (&f.info, i));
    g_usleep (10 * G_TIME_SPAN_MILLISECOND);
  }
  fail_unless_equals_int (ret, GST_FLOW_NOT_NEGOTIATED);
  msg = wait_message (f.bus, GST_MESSAGE_ERROR, GST_SECOND);
  fail_unless (msg != NULL);
  fail_unless (message_mentions (msg, "v1"));
  gst_message_unref (msg);
  fail_unless (fake_host_wait_connections (back, 1, WAIT_US));
  fail_unless_equals_int (fake_host_n_frames (back), 0);
  fixture_clear (&f);
  g_rmdir (dir);
  g_free (dir);
  g_free (path);
}

GST_END_TEST;

/* DROPPED and FAILED answers release the frame; the session goes on */
GST_START_TEST (test_dropped_and_failed)
{
  Fixture f;
  GstMessage *msg;
  GstStructure *s;

  fixture_init (&f, FAKE_HOST_V2, NULL, NV12_CAPS);
  fake_host_set_fault (f.host, FAKE_FAULT_DROP, 1);
  push_frames (&f, 0, 3);
  fail_unless (fake_host_wait_frames (f.host, 3, WAIT_US));
  fake_host_set_fault (f.host, FAKE_FAULT_FAILED, 3);
  push_frames (&f, 3, 2);
  fail_unless (gst_harness_push_event (f.h, gst_event_new_eos ()));
  fail_unless_equals_int (gst_harness_buffers_received (f.h), 3);
  msg = wait_message (f.bus, GST_MESSAGE_WARNING, 5 * GST_SECOND);
  fail_unless (msg != NULL);
  gst_message_unref (msg);
  fail_unless (wait_message (f.bus, GST_MESSAGE_ERROR, 0) == NULL);
  s = get_stats (f.enc);
  fail_unless_equals_uint64 (stat_u64 (s, "frames-dropped"), 1);
  fail_unless_equals_uint64 (stat_u64 (s, "frames-failed"), 1);
  gst_structure_free (s);
  fixture_clear (&f);
}

GST_END_TEST;

/* a host PING gets a PONG, a CONFIG_RESP is skipped, the stream goes on */
GST_START_TEST (test_ping)
{
  Fixture f;

  fixture_init (&f, FAKE_HOST_V2, NULL, NV12_CAPS);
  fake_host_set_fault (f.host, FAKE_FAULT_PING, 1);
  push_frames (&f, 0, 3);
  fail_unless (gst_harness_push_event (f.h, gst_event_new_eos ()));
  fail_unless_equals_int (gst_harness_buffers_received (f.h), 3);
  fail_unless (fake_host_wait_pongs (f.host, 1, WAIT_US));
  fail_unless (wait_message (f.bus, GST_MESSAGE_ERROR, 0) == NULL);
  fixture_clear (&f);
}

GST_END_TEST;

/* a v1 ERROR answers one frame: released with a warning, the session
 * goes on */
GST_START_TEST (test_v1_frame_error)
{
  Fixture f;
  GstMessage *msg;
  GstBuffer *out;

  fixture_init (&f, FAKE_HOST_V1, NULL, NV12_CAPS);
  fake_host_set_fault (f.host, FAKE_FAULT_FRAME_ERROR, 1);
  push_frames (&f, 0, 3);
  fail_unless (gst_harness_push_event (f.h, gst_event_new_eos ()));
  fail_unless_equals_int (gst_harness_buffers_received (f.h), 2);
  out = gst_harness_pull (f.h);
  fail_unless_equals_uint64 (GST_BUFFER_PTS (out), 0);
  gst_buffer_unref (out);
  out = gst_harness_pull (f.h);
  fail_unless_equals_uint64 (GST_BUFFER_PTS (out), 2 * FRAME_DUR);
  gst_buffer_unref (out);
  msg = wait_message (f.bus, GST_MESSAGE_WARNING, 5 * GST_SECOND);
  fail_unless (msg != NULL);
  gst_message_unref (msg);
  fail_unless (wait_message (f.bus, GST_MESSAGE_ERROR, 0) == NULL);
  fixture_clear (&f);
}

GST_END_TEST;

/* Simulated virtio-gpu render node */
typedef struct
{
  gint calls;
  gboolean known;
  gint open_handles;
} SimDevice;

static gint
sim_prime (gpointer data, gint fd, guint32 * handle)
{
  SimDevice *d = data;

  g_atomic_int_inc (&d->calls);
  d->open_handles++;
  *handle = 7;
  return 0;
}

static gint
sim_info (gpointer data, guint32 handle, guint32 * res)
{
  SimDevice *d = data;

  g_atomic_int_inc (&d->calls);
  if (!d->known || handle != 7)
    return -ENOENT;
  *res = 42;
  return 0;
}

static gint
sim_close (gpointer data, guint32 handle)
{
  SimDevice *d = data;

  g_atomic_int_inc (&d->calls);
  d->open_handles--;
  return 0;
}

/* NV12 64x48 DMA-BUF frames, with or without a resource id the (simulated)
 * DRM device knows, described by @caps. */
static void
check_dmabuf_caps (FakeHostMode mode, gboolean known, const gchar * caps)
{
  Fixture f;
  SimDevice dev = { 0, known, 0 };
  VsockEncDrmOps ops = { sim_prime, sim_info, sim_close, &dev };
  GstAllocator *alloc;
  GstBuffer *buf;
  gsize size;
  gint fd;
  guint8 *pattern;
  guint i;
  GstStructure *s;

  fixture_init (&f, mode, NULL, NULL);
  g_object_set_data (G_OBJECT (f.enc), VSOCKENC_DRM_OPS_KEY, &ops);
  f.h = gst_harness_new_with_element (f.enc, "sink", "src");
  gst_harness_set_src_caps_str (f.h, caps);
  gst_video_info_set_format (&f.info, GST_VIDEO_FORMAT_NV12, W, H);

  size = GST_VIDEO_INFO_SIZE (&f.info);
  fd = memfd_create ("vsockenc-test", MFD_CLOEXEC);
  fail_unless (fd >= 0);
  pattern = g_malloc (size);
  for (i = 0; i < size; i++)
    pattern[i] = (guint8) (i * 11);
  fail_unless_equals_int (write (fd, pattern, size), size);
  alloc = gst_dmabuf_allocator_new ();
  buf = gst_buffer_new ();
  gst_buffer_append_memory (buf, gst_dmabuf_allocator_alloc (alloc, fd, size));

  /* the same memory frame after frame, as from a pool */
  for (i = 0; i < 5; i++) {
    GstBuffer *b = gst_buffer_copy (buf);

    GST_BUFFER_PTS (b) = i * FRAME_DUR;
    fail_unless_equals_int (gst_harness_push (f.h, b), GST_FLOW_OK);
    gst_buffer_unref (gst_harness_pull (f.h));
  }
  /* one lookup (three calls) for the memory, none per frame */
  fail_unless_equals_int (dev.calls, 3);
  fail_unless_equals_int (dev.open_handles, 0);

  for (i = 0; i < 5; i++) {
    FakeHostFrame hf = fake_host_get_frame (f.host, i);

    if (known) {
      fail_unless_equals_int (hf.flags, 0);
      fail_unless_equals_int (hf.req.resource_id, 42);
      fail_unless_equals_int (hf.payload_size, mode == FAKE_HOST_V2 ?
          HXFR_FRAME_REQUEST2_SIZE : HXFR_FRAME_REQUEST_SIZE);
      fail_unless (hf.pixels == NULL);
    } else {
      const guint8 *pix;
      gsize n;

      fail_unless_equals_int (hf.flags, HXFR_FLAG_PIXEL_DATA);
      fail_unless_equals_int (hf.req.resource_id, 0);
      pix = g_bytes_get_data (hf.pixels, &n);
      fail_unless_equals_int (n, size);
      fail_unless (memcmp (pix, pattern, size) == 0);
    }
  }
  s = get_stats (f.enc);
  fail_unless_equals_uint64 (stat_u64 (s, "resource-id-frames"), known ? 5 : 0);
  fail_unless_equals_uint64 (stat_u64 (s, "pixel-frames"), known ? 0 : 5);
  gst_structure_free (s);

  gst_buffer_unref (buf);
  gst_object_unref (alloc);
  g_free (pattern);
  fixture_clear (&f);
}

static void
check_dmabuf (FakeHostMode mode, gboolean known)
{
  check_dmabuf_caps (mode, known, "video/x-raw(memory:DMABuf),"
      "format=NV12,width=64,height=48,framerate=30/1");
}

GST_START_TEST (test_dmabuf_resource_id)
{
  check_dmabuf (FAKE_HOST_V2, TRUE);
}

GST_END_TEST;

GST_START_TEST (test_dmabuf_fallback_pixels)
{
  check_dmabuf (FAKE_HOST_V2, FALSE);
}

GST_END_TEST;

/* v1 carries resource ids too */
GST_START_TEST (test_dmabuf_v1)
{
  check_dmabuf (FAKE_HOST_V1, TRUE);
  check_dmabuf (FAKE_HOST_V1, FALSE);
}

GST_END_TEST;

#if GST_CHECK_VERSION(1, 24, 0)
/* GStreamer 1.24's form of the same caps (what pipewiresrc offers there):
 * resource ids, and pixels read with the layout the DRM fourcc names */
GST_START_TEST (test_dmabuf_drm_caps)
{
  const gchar *caps = "video/x-raw(memory:DMABuf),format=DMA_DRM,"
      "drm-format=NV12,width=64,height=48,framerate=30/1";

  check_dmabuf_caps (FAKE_HOST_V2, TRUE, caps);
  check_dmabuf_caps (FAKE_HOST_V2, FALSE, caps);
}

GST_END_TEST;

/* a tiled layout cannot be read as pixels: not accepted */
GST_START_TEST (test_dmabuf_drm_caps_tiled_refused)
{
  GstElement *enc = gst_element_factory_make ("vsockenc", NULL);
  GstPad *sink = gst_element_get_static_pad (enc, "sink");
  GstCaps *linear = gst_caps_from_string ("video/x-raw(memory:DMABuf),"
      "format=DMA_DRM,drm-format=XR24,width=64,height=48,framerate=30/1");
  GstCaps *tiled = gst_caps_from_string ("video/x-raw(memory:DMABuf),"
      "format=DMA_DRM,drm-format=XR24:0x0100000000000001,width=64,height=48,"
      "framerate=30/1");

  fail_unless (gst_pad_query_accept_caps (sink, linear));
  fail_if (gst_pad_query_accept_caps (sink, tiled));
  gst_caps_unref (linear);
  gst_caps_unref (tiled);
  gst_object_unref (sink);
  gst_object_unref (enc);
}

GST_END_TEST;
#endif

/* NULL -> PLAYING -> NULL, twenty times, in a pipeline: every frame
 * comes out each time, nothing leaks a descriptor */
GST_START_TEST (test_state_cycles)
{
  FakeHost *host = fake_host_new (FAKE_HOST_V2);
  GstElement *pipe, *enc, *sink;
  GstBus *bus;
  gchar *desc;
  guint baseline = 0, i;

  desc = g_strdup_printf ("videotestsrc num-buffers=5 ! "
      "video/x-raw,format=NV12,width=64,height=48,framerate=30/1 ! "
      "vsockenc name=enc socket-path=%s ! fakesink name=sink",
      fake_host_get_path (host));
  pipe = gst_parse_launch (desc, NULL);
  g_free (desc);
  enc = gst_bin_get_by_name (GST_BIN (pipe), "enc");
  sink = gst_bin_get_by_name (GST_BIN (pipe), "sink");
  bus = gst_element_get_bus (pipe);

  /* a first cycle loads everything that stays loaded */
  for (i = 0; i < 21; i++) {
    GstMessage *msg;

    fail_unless (gst_element_set_state (pipe, GST_STATE_PLAYING) !=
        GST_STATE_CHANGE_FAILURE);
    msg = gst_bus_timed_pop_filtered (bus, 10 * GST_SECOND,
        GST_MESSAGE_EOS | GST_MESSAGE_ERROR);
    fail_unless (msg != NULL);
    fail_unless_equals_int (GST_MESSAGE_TYPE (msg), GST_MESSAGE_EOS);
    gst_message_unref (msg);
    fail_unless_equals_int (gst_element_set_state (pipe, GST_STATE_NULL),
        GST_STATE_CHANGE_SUCCESS);
    /* the host has seen the connection end */
    fail_unless (fake_host_wait_closed (host, i + 1, WAIT_US));
    if (i == 0)
      baseline = proc_count_fds (getpid ());
  }
  fail_unless_equals_int (proc_count_fds (getpid ()), baseline);
  fail_unless_equals_int (fake_host_n_frames (host), 21 * 5);
  fail_unless_equals_int (fake_host_n_answered (host), 21 * 5);

  gst_object_unref (bus);
  gst_object_unref (sink);
  gst_object_unref (enc);
  gst_object_unref (pipe);
  fake_host_free (host);
}

GST_END_TEST;

/* videotestsrc ! vsockenc ! h264parse ! avdec_h264 against a host that
 * really encodes: the decoded frames are the source frames */
static void
check_real_decode (FakeHostMode mode, const gchar * format)
{
  FakeHost *host = fake_host_new (mode);
  GstElement *pipe, *dec, *ref;
  GstBus *bus;
  GstMessage *msg;
  gchar *desc;
  guint n = 0;

  fake_host_set_real_encoder (host, TRUE);
  desc = g_strdup_printf ("videotestsrc num-buffers=30 pattern=smpte "
      "horizontal-speed=3 ! "
      "video/x-raw,format=%s,width=160,height=120,framerate=30/1 ! tee name=t "
      "t. ! queue ! vsockenc socket-path=%s ! h264parse ! avdec_h264 ! "
      "videoconvert ! video/x-raw,format=I420 ! appsink name=dec sync=false "
      "t. ! queue ! videoconvert ! video/x-raw,format=I420 ! "
      "appsink name=ref sync=false", format, fake_host_get_path (host));
  pipe = gst_parse_launch (desc, NULL);
  g_free (desc);
  fail_unless (pipe != NULL);
  dec = gst_bin_get_by_name (GST_BIN (pipe), "dec");
  ref = gst_bin_get_by_name (GST_BIN (pipe), "ref");
  bus = gst_element_get_bus (pipe);
  fail_unless (gst_element_set_state (pipe, GST_STATE_PLAYING) !=
      GST_STATE_CHANGE_FAILURE);

  while (TRUE) {
    GstSample *a = NULL, *b = NULL;
    gdouble mse;

    g_signal_emit_by_name (dec, "try-pull-sample", 20 * GST_SECOND, &a);
    if (!a)
      break;
    g_signal_emit_by_name (ref, "try-pull-sample", 20 * GST_SECOND, &b);
    fail_unless (b != NULL);
    fail_unless_equals_uint64 (GST_BUFFER_PTS (gst_sample_get_buffer (a)),
        GST_BUFFER_PTS (gst_sample_get_buffer (b)));
    mse = video_compare_luma_mse (a, b);
    GST_INFO ("frame %u: luma MSE %.2f", n, mse);
    fail_unless (mse <= VIDEO_COMPARE_MAX_MSE_30DB,
        "frame %u: luma MSE %.2f (PSNR < 30 dB)", n, mse);
    gst_sample_unref (a);
    gst_sample_unref (b);
    n++;
  }
  /* the last frame too: the deployed element lost it */
  fail_unless_equals_int (n, 30);
  msg = gst_bus_timed_pop_filtered (bus, 0, GST_MESSAGE_ERROR);
  fail_unless (msg == NULL);
  gst_element_set_state (pipe, GST_STATE_NULL);
  gst_object_unref (bus);
  gst_object_unref (dec);
  gst_object_unref (ref);
  gst_object_unref (pipe);
  fake_host_free (host);
}

GST_START_TEST (test_real_decode_v2)
{
  check_real_decode (FAKE_HOST_V2, "I420");
}

GST_END_TEST;

GST_START_TEST (test_real_decode_v1)
{
  check_real_decode (FAKE_HOST_V1, "NV12");
}

GST_END_TEST;

static Suite *
vsockenc_suite (void)
{
  Suite *s = suite_create ("vsockenc");
  TCase *tc = tcase_create ("general");
  static const gchar *const decode_needs[] = { "x264enc", "avdec_h264",
    "h264parse", NULL
  };

  suite_add_tcase (s, tc);
  tcase_add_test (tc, test_encode_v2);
  tcase_add_test (tc, test_eos_drains);
  tcase_add_test (tc, test_flush);
  tcase_add_test (tc, test_flush_unblocks);
  tcase_add_test (tc, test_stop_while_blocked);
  tcase_add_test (tc, test_force_key_unit);
  tcase_add_test (tc, test_keyframe_interval);
  tcase_add_test (tc, test_bitrate_v2);
  tcase_add_test (tc, test_bitrate_v1);
  tcase_add_test (tc, test_v1_fallback);
  tcase_add_test (tc, test_v1_repack);
  tcase_add_test (tc, test_v2_i420);
  tcase_add_test (tc, test_v1_i420_refused);
  tcase_add_test (tc, test_v1_odd_nv12_refused);
  tcase_add_test (tc, test_close_on_hello);
  tcase_add_test (tc, test_handshake_deadline);
  tcase_add_test (tc, test_error_posted_first);
  tcase_add_test (tc, test_host_unreachable);
  tcase_add_test (tc, test_tcp_and_precedence);
  tcase_add_test (tc, test_token);
  tcase_add_test (tc, test_protocol_v1);
  tcase_add_test (tc, test_grant);
  tcase_add_test (tc, test_window_slow_host);
  tcase_add_test (tc, test_window_link_delay);
  tcase_add_test (tc, test_window_pinned);
  tcase_add_loop_test (tc, test_faults, 0, G_N_ELEMENTS (fault_cases));
  tcase_add_test (tc, test_reconnect);
  tcase_add_test (tc, test_reconnect_after_outage);
  tcase_add_test (tc, test_reconnect_to_v1_host);
  tcase_add_test (tc, test_dropped_and_failed);
  tcase_add_test (tc, test_v1_frame_error);
  tcase_add_test (tc, test_ping);
  tcase_add_test (tc, test_dmabuf_resource_id);
  tcase_add_test (tc, test_dmabuf_fallback_pixels);
  tcase_add_test (tc, test_dmabuf_v1);
#if GST_CHECK_VERSION(1, 24, 0)
  tcase_add_test (tc, test_dmabuf_drm_caps);
  tcase_add_test (tc, test_dmabuf_drm_caps_tiled_refused);
#endif
  tcase_add_test (tc, test_state_cycles);
  tcase_add_test (tc, test_stats_interval);
  /* the decode tests need the system's encoder and decoder */
  if (elements_available (decode_needs)) {
    tcase_add_test (tc, test_real_decode_v2);
    tcase_add_test (tc, test_real_decode_v1);
  }
  return s;
}

GST_CHECK_MAIN (vsockenc);
