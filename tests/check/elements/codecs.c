/* H.265 and AV1 end to end: vsockh265enc and vsockav1enc through the built
 * helix-host-bridge (a subprocess on a UNIX socket, its encoders chosen
 * automatically: x265enc and av1enc here), decoded by avdec_h265 and
 * av1dec and compared frame by frame with the source; the caps, the
 * keyframes (flags and headers, checked with GStreamer's codecparsers) of
 * the element's own output; a keyframe asked for mid-stream; and a
 * bridge that cannot encode the codec refusing it by name.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include <math.h>
#include <string.h>
#include <unistd.h>
#include <glib/gstdio.h>
#include <gst/check/gstcheck.h>
#include <gst/app/gstappsrc.h>
#include <gst/app/gstappsink.h>
#include <gst/video/video.h>
#include <gst/codecparsers/gsth265parser.h>
#include <gst/codecparsers/gstav1parser.h>

#include "bridge-runner.h"
#include "video-compare.h"
#include "test-frames.h"

#define PULL_TIMEOUT (20 * GST_SECOND)
/* the frame before which the test asks for a keyframe */
#define KEY_AT 15

typedef struct
{
  const gchar *element;
  const gchar *parser;
  const gchar *decoder;
  const gchar *media_type;
  const gchar *stream_format;
  const gchar *alignment;
  /* the keyframe asked for before frame KEY_AT comes by frame KEY_AT +
   * key_within; the stream is long enough for it */
  guint key_within;
  guint n_frames;
} Codec;

static const Codec h264 = { "vsockenc", "h264parse", "avdec_h264",
  "video/x-h264", "byte-stream", "au", 0, 30
};

/* x265enc makes the frame asked for a keyframe */
static const Codec h265 = { "vsockh265enc", "h265parse", "avdec_h265",
  "video/x-h265", "byte-stream", "au", 0, 30
};

/* GStreamer 1.22's av1enc ignores keyframe requests: the bridge has it
 * make one every 60 frames (bridge-encoder.c), and the next of those
 * serves the request */
static const Codec av1 = { "vsockav1enc", "av1parse", "av1dec",
  "video/x-av1", "obu-stream", "tu", 60 - KEY_AT, 64
};

/* What the element output, buffer by buffer. */
typedef struct
{
  GMutex lock;
  GArray *keyframe;             /* gboolean: no DELTA_UNIT flag */
  GArray *headers;              /* gboolean: VPS+SPS+PPS / sequence header */
  GCond cond;                   /* broadcast on each buffer */
  const Codec *codec;
} Seen;

/* @n frames of videotestsrc, NV12 320x240, or I420 (the reference) */
static GPtrArray *
collect_frames (const gchar * format, guint n)
{
  return test_frames_collect ("NV12", 320, 240, n, g_str_equal (format,
          "I420"));
}

/* Whether the access unit has a VPS, an SPS and a PPS (H.265), or the
 * temporal unit a sequence header (AV1). */
static gboolean
has_headers (const Codec * codec, const guint8 * data, gsize size)
{
  if (codec == &h265) {
    GstH265Parser *p = gst_h265_parser_new ();
    GstH265NalUnit nalu;
    GstH265ParserResult res;
    guint offset = 0, seen = 0;

    do {
      /* NO_NAL_END: the last NAL unit, up to the end */
      res = gst_h265_parser_identify_nalu (p, data, offset, size, &nalu);
      if (res != GST_H265_PARSER_OK && res != GST_H265_PARSER_NO_NAL_END)
        break;
      if (nalu.type == GST_H265_NAL_VPS)
        seen |= 1;
      else if (nalu.type == GST_H265_NAL_SPS)
        seen |= 2;
      else if (nalu.type == GST_H265_NAL_PPS)
        seen |= 4;
      offset = nalu.offset + nalu.size;
    } while (res == GST_H265_PARSER_OK);
    gst_h265_parser_free (p);
    return seen == 7;
  } else {
    GstAV1Parser *p = gst_av1_parser_new ();
    GstAV1OBU obu;
    guint32 consumed = 0, offset = 0;
    gboolean seq = FALSE;

    while (offset < size && gst_av1_parser_identify_one_obu (p,
            data + offset, size - offset, &obu, &consumed) == GST_AV1_PARSER_OK
        && consumed > 0) {
      if (obu.obu_type == GST_AV1_OBU_SEQUENCE_HEADER)
        seq = TRUE;
      offset += consumed;
    }
    gst_av1_parser_free (p);
    return seq;
  }
}

static GstPadProbeReturn
on_coded (GstPad * pad, GstPadProbeInfo * info, gpointer user_data)
{
  Seen *seen = user_data;
  GstBuffer *buf = GST_PAD_PROBE_INFO_BUFFER (info);
  gboolean key = !GST_BUFFER_FLAG_IS_SET (buf, GST_BUFFER_FLAG_DELTA_UNIT);
  gboolean headers;
  GstMapInfo map;

  fail_unless (gst_buffer_map (buf, &map, GST_MAP_READ));
  headers = has_headers (seen->codec, map.data, map.size);
  gst_buffer_unmap (buf, &map);
  g_mutex_lock (&seen->lock);
  g_array_append_val (seen->keyframe, key);
  g_array_append_val (seen->headers, headers);
  g_cond_broadcast (&seen->cond);
  g_mutex_unlock (&seen->lock);
  return GST_PAD_PROBE_OK;
}

static GstElement *
guest_pipeline (BridgeRunner * r, const Codec * codec)
{
  gchar *desc = g_strdup_printf ("appsrc name=src format=time ! %s name=enc "
      "socket-path=%s keyframe-interval=0 ! %s ! %s ! videoconvert ! "
      "video/x-raw,format=I420 ! appsink name=sink sync=false",
      codec->element, bridge_runner_get_socket_path (r), codec->parser,
      codec->decoder);
  GstElement *p = gst_parse_launch (desc, NULL);

  fail_unless (p != NULL, "%s", desc);
  g_free (desc);
  return p;
}

/* Pushes frames [@from, @to) and waits until the element has output as
 * many (decoders may hold some back until the end). */
static void
push_and_wait (GstElement * src, GPtrArray * frames, guint from, guint to,
    Seen * seen)
{
  gint64 deadline = g_get_monotonic_time () + 20 * G_TIME_SPAN_SECOND;
  guint i;

  for (i = from; i < to; i++)
    fail_unless_equals_int (gst_app_src_push_sample (GST_APP_SRC (src),
            g_ptr_array_index (frames, i)), GST_FLOW_OK);
  if (to == frames->len)
    gst_app_src_end_of_stream (GST_APP_SRC (src));
  g_mutex_lock (&seen->lock);
  while (seen->keyframe->len < to)
    if (!g_cond_wait_until (&seen->cond, &seen->lock, deadline))
      break;
  fail_unless (seen->keyframe->len >= to, "%u of %u frames encoded",
      seen->keyframe->len, to);
  g_mutex_unlock (&seen->lock);
}

/* One stream through a bridge that encodes @codec: frame by frame 30 dB
 * or better, the caps, the first access unit a keyframe with its headers,
 * the others delta units until a keyframe is asked for after frame
 * KEY_AT, which comes, with its headers. */
static void
stream_codec (const Codec * codec)
{
  BridgeRunner *r = bridge_runner_start (BRIDGE_RUNNER_UNIX, NULL);
  guint n = codec->n_frames;
  GPtrArray *frames = collect_frames ("NV12", n);
  GPtrArray *refs = collect_frames ("I420", n);
  GPtrArray *decoded = g_ptr_array_new_with_free_func ((GDestroyNotify)
      gst_sample_unref);
  GstElement *p, *src, *sink, *enc;
  GstPad *pad;
  GstCaps *caps;
  GstStructure *st;
  Seen seen = { 0, };
  guint i, later_key = 0;

  fail_unless (r != NULL);
  g_mutex_init (&seen.lock);
  g_cond_init (&seen.cond);
  seen.keyframe = g_array_new (FALSE, FALSE, sizeof (gboolean));
  seen.headers = g_array_new (FALSE, FALSE, sizeof (gboolean));
  seen.codec = codec;
  p = guest_pipeline (r, codec);
  src = gst_bin_get_by_name (GST_BIN (p), "src");
  sink = gst_bin_get_by_name (GST_BIN (p), "sink");
  enc = gst_bin_get_by_name (GST_BIN (p), "enc");
  pad = gst_element_get_static_pad (enc, "src");
  gst_pad_add_probe (pad, GST_PAD_PROBE_TYPE_BUFFER, on_coded, &seen, NULL);
  gst_element_set_state (p, GST_STATE_PLAYING);

  push_and_wait (src, frames, 0, KEY_AT, &seen);
  /* every frame so far answered: KEY_AT is the first the request can
   * apply to */
  fail_unless (gst_pad_send_event (pad,
          gst_video_event_new_upstream_force_key_unit (GST_CLOCK_TIME_NONE,
              TRUE, 1)));
  push_and_wait (src, frames, KEY_AT, n, &seen);
  while (decoded->len < n) {
    GstSample *s = gst_app_sink_try_pull_sample (GST_APP_SINK (sink),
        PULL_TIMEOUT);

    fail_unless (s != NULL, "decoded %u of %u frames", decoded->len, n);
    g_ptr_array_add (decoded, s);
  }

  for (i = 0; i < n; i++) {
    gdouble mse = video_compare_luma_mse (g_ptr_array_index (decoded, i),
        g_ptr_array_index (refs, i));

    fail_unless (mse <= VIDEO_COMPARE_MAX_MSE_30DB, "%s: frame %u luma MSE "
        "%.1f (PSNR below 30 dB)", codec->element, i, mse);
    if (i == 0 || i == n - 1)
      g_print ("%s: frame %u luma PSNR %.1f dB\n", codec->element, i,
          10 * log10 (255.0 * 255.0 / MAX (mse, 1e-3)));
  }

  caps = gst_pad_get_current_caps (pad);
  fail_unless (caps != NULL);
  {
    gchar *str = gst_caps_to_string (caps);

    g_print ("%s: caps %s\n", codec->element, str);
    g_free (str);
  }
  st = gst_caps_get_structure (caps, 0);
  fail_unless (gst_structure_has_name (st, codec->media_type), "%"
      GST_PTR_FORMAT, caps);
  fail_unless_equals_string (gst_structure_get_string (st, "stream-format"),
      codec->stream_format);
  fail_unless_equals_string (gst_structure_get_string (st, "alignment"),
      codec->alignment);
  /* H.265: profile, tier and level from the first SPS */
  if (codec == &h265) {
    fail_unless_equals_string (gst_structure_get_string (st, "profile"),
        "main");
    fail_unless (gst_structure_get_string (st, "tier") != NULL);
    fail_unless (gst_structure_get_string (st, "level") != NULL);
  }
  gst_caps_unref (caps);

  fail_unless_equals_int (seen.keyframe->len, n);
  fail_unless (g_array_index (seen.keyframe, gboolean, 0),
      "%s: the first access unit is not a keyframe", codec->element);
  fail_unless (g_array_index (seen.headers, gboolean, 0),
      "%s: the first keyframe has no headers", codec->element);
  for (i = 1; i < KEY_AT; i++)
    fail_if (g_array_index (seen.keyframe, gboolean, i), "%s: frame %u is a "
        "keyframe nobody asked for", codec->element, i);
  for (i = KEY_AT; i <= KEY_AT + codec->key_within && !later_key; i++)
    if (g_array_index (seen.keyframe, gboolean, i))
      later_key = i;
  fail_unless (later_key, "%s: the keyframe asked for before frame %u did "
      "not come by frame %u", codec->element, KEY_AT,
      KEY_AT + codec->key_within);
  fail_unless (g_array_index (seen.headers, gboolean, later_key),
      "%s: keyframe %u has no headers", codec->element, later_key);
  g_print ("%s: keyframes at 0 and %u (asked for before %u)\n",
      codec->element, later_key, KEY_AT);

  gst_element_set_state (p, GST_STATE_NULL);
  gst_object_unref (pad);
  gst_object_unref (enc);
  gst_object_unref (src);
  gst_object_unref (sink);
  gst_object_unref (p);
  g_array_unref (seen.keyframe);
  g_array_unref (seen.headers);
  g_mutex_clear (&seen.lock);
  g_cond_clear (&seen.cond);
  g_ptr_array_unref (frames);
  g_ptr_array_unref (refs);
  g_ptr_array_unref (decoded);
  bridge_runner_stop_checked (r);
}

GST_START_TEST (test_h265)
{
  stream_codec (&h265);
}

GST_END_TEST;

GST_START_TEST (test_av1)
{
  stream_codec (&av1);
}

GST_END_TEST;

/* The element's error once the bridge has answered its HELLO. */
static gchar *
refusal (BridgeRunner * r, const Codec * codec)
{
  GstElement *p = guest_pipeline (r, codec);
  GstElement *src = gst_bin_get_by_name (GST_BIN (p), "src");
  GPtrArray *frames = collect_frames ("NV12", 1);
  GstBus *bus = gst_element_get_bus (p);
  GstMessage *msg;
  GError *err = NULL;
  gchar *text;

  gst_element_set_state (p, GST_STATE_PLAYING);
  gst_app_src_push_sample (GST_APP_SRC (src), g_ptr_array_index (frames, 0));
  gst_app_src_end_of_stream (GST_APP_SRC (src));
  /* the encoder's own error (upstream's "internal data stream error" may
   * come first) */
  do {
    msg = gst_bus_timed_pop_filtered (bus, PULL_TIMEOUT, GST_MESSAGE_ERROR);
    fail_unless (msg != NULL, "%s: no error", codec->element);
    if (GST_IS_VIDEO_ENCODER (GST_MESSAGE_SRC (msg)))
      gst_message_parse_error (msg, &err, NULL);
    gst_message_unref (msg);
  } while (!err);
  text = g_strdup (err->message);
  g_print ("%s refused: %s\n", codec->element, text);
  g_error_free (err);
  gst_element_set_state (p, GST_STATE_NULL);
  gst_object_unref (bus);
  gst_object_unref (src);
  gst_object_unref (p);
  g_ptr_array_unref (frames);
  return text;
}

/* A bridge that encodes H.264 only (--encoder x264enc): each other codec
 * is refused with an error that names it and says why; the bridge goes
 * on serving. And an H.265-only one refuses H.264. */
GST_START_TEST (test_unsupported_codec)
{
  const gchar *args[] = { "--encoder", "x264enc", NULL };
  BridgeRunner *r = bridge_runner_start (BRIDGE_RUNNER_UNIX, args);
  gchar *text;

  fail_unless (r != NULL);
  text = refusal (r, &h265);
  fail_unless (strstr (text, "H.265 cannot be encoded here") != NULL, "%s",
      text);
  fail_unless (strstr (text, "--encoder x264enc") != NULL, "%s", text);
  g_free (text);
  text = refusal (r, &av1);
  fail_unless (strstr (text, "AV1 cannot be encoded here") != NULL, "%s", text);
  g_free (text);
  fail_unless (bridge_runner_wait_log (r, "H.265 cannot be encoded here", 1,
          10));
  bridge_runner_stop_checked (r);
  /* and the other way round: H.264 from an H.265-only bridge */
  args[1] = "x265enc";
  r = bridge_runner_start (BRIDGE_RUNNER_UNIX, args);
  fail_unless (r != NULL);
  text = refusal (r, &h264);
  fail_unless (strstr (text, "H.264 cannot be encoded here: this bridge "
          "runs with --encoder x265enc, which encodes H.265 only") != NULL,
      "%s", text);
  g_free (text);
  bridge_runner_stop_checked (r);
}

GST_END_TEST;

/* A bridge on a machine without x265enc and av1enc (the system plugins
 * seen through a directory of links to all but theirs): H.265 and AV1
 * guests are told no encoder for their codec is installed, and which
 * ones would do. */
GST_START_TEST (test_no_encoder_installed)
{
  const gchar *system = g_getenv ("GST_PLUGIN_SYSTEM_PATH_1_0");
  gchar *old_registry = g_strdup (g_getenv ("GST_REGISTRY"));
  gchar *dir = g_dir_make_tmp ("hxcodecs-XXXXXX", NULL);
  gchar *registry = g_build_filename (dir, "registry.bin", NULL);
  gchar *old_system = g_strdup (system);
  GDir *d;
  const gchar *name;
  BridgeRunner *r;
  gchar *text;

  fail_unless (system != NULL && dir != NULL);
  d = g_dir_open (system, 0, NULL);
  fail_unless (d != NULL, "%s", system);
  while ((name = g_dir_read_name (d))) {
    gchar *from, *to;

    if (g_str_equal (name, "libgstx265.so") || g_str_equal (name,
            "libgstaom.so") || g_str_equal (name, "libgstsvtav1.so"))
      continue;
    from = g_build_filename (system, name, NULL);
    to = g_build_filename (dir, name, NULL);
    fail_unless (symlink (from, to) == 0, "%s", to);
    g_free (from);
    g_free (to);
  }
  g_dir_close (d);
  /* the bridge's environment, not this process's (its registry is read) */
  g_setenv ("GST_PLUGIN_SYSTEM_PATH_1_0", dir, TRUE);
  g_setenv ("GST_REGISTRY", registry, TRUE);
  r = bridge_runner_start (BRIDGE_RUNNER_UNIX, NULL);
  g_setenv ("GST_PLUGIN_SYSTEM_PATH_1_0", old_system, TRUE);
  if (old_registry)
    g_setenv ("GST_REGISTRY", old_registry, TRUE);
  else
    g_unsetenv ("GST_REGISTRY");
  fail_unless (r != NULL);
  fail_unless (bridge_runner_wait_log (r, "encoders: H.264 x264enc, H.265 "
          "none, AV1 none", 1, 10));

  text = refusal (r, &h265);
  fail_unless (strstr (text, "H.265 cannot be encoded here: no H.265 "
          "encoder is installed (") != NULL, "%s", text);
  fail_unless (strstr (text, "x265enc)") != NULL, "%s", text);
  g_free (text);
  text = refusal (r, &av1);
  fail_unless (strstr (text, "AV1 cannot be encoded here: no AV1 encoder "
          "is installed (") != NULL, "%s", text);
  fail_unless (strstr (text, "av1enc)") != NULL, "%s", text);
  g_free (text);
  bridge_runner_stop_checked (r);

  d = g_dir_open (dir, 0, NULL);
  while ((name = g_dir_read_name (d))) {
    gchar *path = g_build_filename (dir, name, NULL);

    g_unlink (path);
    g_free (path);
  }
  g_dir_close (d);
  g_rmdir (dir);
  g_free (dir);
  g_free (registry);
  g_free (old_system);
  g_free (old_registry);
}

GST_END_TEST;

static Suite *
codecs_suite (void)
{
  Suite *s = suite_create ("codecs");
  TCase *tc = tcase_create ("general");

  suite_add_tcase (s, tc);
  tcase_set_timeout (tc, 240);
  tcase_add_test (tc, test_h265);
  tcase_add_test (tc, test_av1);
  tcase_add_test (tc, test_unsupported_codec);
  tcase_add_test (tc, test_no_encoder_installed);
  return s;
}

GST_CHECK_MAIN (codecs);
