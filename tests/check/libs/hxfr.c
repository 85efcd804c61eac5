/* Unit tests of the HXFR codec and transports: every message of both
 * versions byte for byte, the limits, and the socket edge cases (partial
 * writes, peer gone, half a message then silence, cancellation).
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include <gst/check/gstcheck.h>
#include <glib/gstdio.h>
#include <string.h>

#include "hxfr-protocol.h"
#include "hxfr-scanout.h"
#include "hxfr-transport.h"
#include "hxfr-video.h"
#include "hxfr-window.h"

static const guint8 *
hexbytes (const gchar * hex, gsize * len)
{
  static guint8 buf[512];
  gsize n = 0;

  while (*hex) {
    if (*hex == ' ') {
      hex++;
      continue;
    }
    fail_unless (n < sizeof (buf));
    buf[n++] = (guint8) g_ascii_strtoull ((gchar[3]) {
        hex[0], hex[1], 0}
        , NULL, 16);
    hex += 2;
  }
  *len = n;
  return buf;
}

static void
assert_bytes (const guint8 * got, gsize got_len, const gchar * hex)
{
  gsize len;
  const guint8 *want = hexbytes (hex, &len);

  fail_unless_equals_int (got_len, len);
  if (memcmp (got, want, len) != 0) {
    g_autofree gchar *a = g_strdup ("");
    gsize i;

    for (i = 0; i < got_len; i++) {
      gchar *t = g_strdup_printf ("%s%02x", a, got[i]);
      g_free (a);
      a = t;
    }
    fail ("bytes differ: got %s want %s", a, hex);
  }
}

GST_START_TEST (test_header_bytes)
{
  guint8 out[HXFR_HEADER_SIZE];
  HxfrHeader h = { HXFR_MSG_FRAME_REQUEST, HXFR_FLAG_PIXEL_DATA, 1, 44 + 6 };
  HxfrHeader back;
  GError *err = NULL;

  hxfr_header_write (out, &h);
  /* "HXFR", type 1, flags 1, session 1, payload 50 */
  assert_bytes (out, sizeof (out), "48584652 01 01 0100 32000000");
  fail_unless (hxfr_header_parse (out, &back, NULL));
  fail_unless_equals_int (back.type, 1);
  fail_unless_equals_int (back.flags, 1);
  fail_unless_equals_int (back.session_id, 1);
  fail_unless_equals_int (back.payload_size, 50);

  out[0] = 'X';
  fail_if (hxfr_header_parse (out, &back, &err));
  fail_unless (g_error_matches (err, HXFR_ERROR, HXFR_ERR_INVALID));
  /* the domain's name as logs print it */
  fail_unless_equals_string (g_quark_to_string (err->domain),
      "hxfr-error-quark");
  g_clear_error (&err);
}

GST_END_TEST;

GST_START_TEST (test_frame_request_v1_bytes)
{
  guint8 out[HXFR_MAX_FIXED_SIZE];
  HxfrFrameRequest r = { 0, }, back;
  gsize n;

  r.resource_id = 7;
  r.width = 1280;
  r.height = 720;
  r.format = HXFR_FORMAT_NV12;
  r.n_planes = 2;
  r.stride[0] = 1280;
  r.stride[1] = 1280;
  r.offset[1] = 1280 * 720;
  r.pts = 1000000000;
  r.duration = -1;
  r.force_keyframe = TRUE;
  n = hxfr_frame_request_write (&r, 1, out);
  assert_bytes (out, n,
      "07000000 00050000 d0020000 4e563132 00050000 "
      "00ca9a3b00000000 ffffffffffffffff 01 00000000000000");
  fail_unless (hxfr_frame_request_parse (out, n, 1, &back, NULL));
  fail_unless_equals_int (back.resource_id, 7);
  fail_unless_equals_int (back.width, 1280);
  fail_unless_equals_int (back.height, 720);
  fail_unless_equals_int (back.format, HXFR_FORMAT_NV12);
  fail_unless_equals_int64 (back.pts, 1000000000);
  fail_unless_equals_int64 (back.duration, -1);
  fail_unless (back.force_keyframe);
  /* v1 derives the NV12 chroma plane from the one stride */
  fail_unless_equals_int (back.n_planes, 2);
  fail_unless_equals_int (back.stride[1], 1280);
  fail_unless_equals_int (back.offset[1], 1280 * 720);

  fail_if (hxfr_frame_request_parse (out, n - 1, 1, &back, NULL));
}

GST_END_TEST;

GST_START_TEST (test_frame_request_v2_bytes)
{
  guint8 out[HXFR_MAX_FIXED_SIZE];
  HxfrFrameRequest r = { 0, }, back;
  gsize n;

  r.seq = 0x01020304;
  r.resource_id = 0;
  r.width = 33;
  r.height = 17;
  r.format = HXFR_FORMAT_YUV420;
  r.n_planes = 3;
  r.stride[0] = 36;
  r.stride[1] = 20;
  r.stride[2] = 20;
  r.offset[0] = 0;
  r.offset[1] = 648;
  r.offset[2] = 828;
  r.pts = 40000000;
  r.duration = 40000000;
  n = hxfr_frame_request_write (&r, 2, out);
  assert_bytes (out, n,
      "04030201 00000000 21000000 11000000 59553132 03 00 0000 "
      "24000000 14000000 14000000 00000000 "
      "00000000 88020000 3c030000 00000000 "
      "005a620200000000 005a620200000000");
  fail_unless (hxfr_frame_request_parse (out, n, 2, &back, NULL));
  fail_unless (memcmp (&r, &back, sizeof (r)) == 0);

  /* bad plane count */
  out[20] = 5;
  fail_if (hxfr_frame_request_parse (out, n, 2, &back, NULL));
}

GST_END_TEST;

GST_START_TEST (test_frame_response_bytes)
{
  guint8 out[HXFR_MAX_FIXED_SIZE];
  HxfrFrameResponse r = { 0, }, back;
  gsize n;

  r.pts = 5;
  r.dts = 4;
  r.keyframe = TRUE;
  r.nal_count = 2;
  n = hxfr_frame_response_write (&r, 1, out);
  assert_bytes (out, n, "0500000000000000 0400000000000000 01 000000 02000000");
  fail_unless (hxfr_frame_response_parse (out, n, 1, &back, NULL));
  fail_unless_equals_int64 (back.pts, 5);
  fail_unless_equals_int64 (back.dts, 4);
  fail_unless (back.keyframe);
  fail_unless_equals_int (back.nal_count, 2);

  memset (&r, 0, sizeof (r));
  r.seq = 9;
  r.status = HXFR_STATUS_FAILED;
  r.keyframe = FALSE;
  r.pts = 1;
  r.dts = 2;
  r.duration = 3;
  r.error_code = HXFR_ERR_RESOURCE_NOT_FOUND;
  r.host_time_us = 1500;
  n = hxfr_frame_response_write (&r, 2, out);
  assert_bytes (out, n, "09000000 02 00 0000 0100000000000000 "
      "0200000000000000 0300000000000000 feffffff dc050000");
  fail_unless (hxfr_frame_response_parse (out, n, 2, &back, NULL));
  fail_unless_equals_int (back.seq, 9);
  fail_unless_equals_int (back.status, HXFR_STATUS_FAILED);
  fail_unless_equals_int (back.error_code, HXFR_ERR_RESOURCE_NOT_FOUND);
  fail_unless_equals_int (back.host_time_us, 1500);

  out[4] = 7;                   /* unknown status */
  fail_if (hxfr_frame_response_parse (out, n, 2, &back, NULL));
}

GST_END_TEST;

GST_START_TEST (test_config_hello_control_error_bytes)
{
  guint8 out[HXFR_MAX_FIXED_SIZE];
  gsize n;
  HxfrConfig c = { 1920, 1080, 4000000, 30, 1, 100, 41, 1 }, cb;
  HxfrHello h = { 2, 2, HXFR_CODEC_H264, 4, 4000000, 60, 30, 1,
    HXFR_GUEST_RESOURCE_IDS, 3
  }, hb;
  HxfrHelloAck a = { 0, }, ab;
  HxfrControl ctl = { HXFR_CONTROL_BITRATE, 2000000, 0, 0, 0 }, ctlb;
  HxfrErrorMsg e;

  n = hxfr_config_write (&c, out);
  assert_bytes (out, n, "80070000 38040000 00093d00 1e000000 01000000 "
      "64 29 01 0000000000");
  fail_unless (hxfr_config_parse (out, n, &cb, NULL));
  fail_unless_equals_int (cb.width, 1920);
  fail_unless_equals_int (cb.height, 1080);
  fail_unless_equals_int (cb.bitrate, 4000000);
  fail_unless_equals_int (cb.fps_n, 30);
  fail_unless_equals_int (cb.profile, 100);
  fail_unless_equals_int (cb.level, 41);
  fail_unless_equals_int (cb.realtime, 1);

  n = hxfr_hello_write (&h, out);
  assert_bytes (out, n, "0200 0200 48323634 04000000 00093d00 3c000000 "
      "1e000000 01000000 01000000 0300 0000 00000000");
  fail_unless (hxfr_hello_parse (out, n, &hb, NULL));
  fail_unless_equals_int (hb.max_version, 2);
  fail_unless_equals_int (hb.codec, HXFR_CODEC_H264);
  fail_unless_equals_int (hb.max_in_flight, 4);
  fail_unless_equals_int (hb.keyframe_interval, 60);
  fail_unless_equals_int (hb.fps_n, 30);
  fail_unless_equals_int (hb.guest_flags, HXFR_GUEST_RESOURCE_IDS);
  fail_unless_equals_int (hb.token_len, 3);
  out[32] = 0xff;
  out[33] = 0x01;               /* token of 511 bytes */
  fail_if (hxfr_hello_parse (out, n, &hb, NULL));

  a.version = 2;
  a.codec = HXFR_CODEC_H264;
  a.max_in_flight = 4;
  a.max_width = 8192;
  a.max_height = 8192;
  a.host_flags = HXFR_HOST_RESOURCE_IDS;
  g_strlcpy (a.encoder, "x264enc", sizeof (a.encoder));
  n = hxfr_hello_ack_write (&a, out);
  assert_bytes (out, n, "0200 0000 48323634 04000000 00200000 00200000 "
      "01000000 78323634656e630000000000000000000000000000000000");
  fail_unless (hxfr_hello_ack_parse (out, n, &ab, NULL));
  fail_unless_equals_string (ab.encoder, "x264enc");
  fail_unless_equals_int (ab.max_in_flight, 4);

  n = hxfr_control_write (&ctl, out);
  assert_bytes (out, n, "01000000 80841e00 00000000 00000000 00000000 "
      "00000000");
  fail_unless (hxfr_control_parse (out, n, &ctlb, NULL));
  fail_unless_equals_int (ctlb.bitrate, 2000000);
  out[0] = 0x80;
  fail_if (hxfr_control_parse (out, n, &ctlb, NULL));

  n = hxfr_error_write (HXFR_ERR_NOT_CONFIGURED, "nope", out);
  fail_unless_equals_int (n, 260);
  assert_bytes (out, 12, "faffffff 6e6f7065 00000000");
  memset (out + 4, 'A', 256);   /* no terminator on the wire */
  fail_unless (hxfr_error_parse (out, n, &e, NULL));
  fail_unless_equals_int (e.code, HXFR_ERR_NOT_CONFIGURED);
  fail_unless_equals_int (strlen (e.message), 255);
}

GST_END_TEST;

/* The deployed scanout messages, as ../shared/PROTOCOL-scanout.md gives
 * them (section 4), and the v2 subscription (docs/protocol.md 11). */
/* The cursor plane's messages (docs/protocol.md 11.2, its example) */
GST_START_TEST (test_cursor_bytes)
{
  const guint8 image[] = {
    0x02, 0, 0, 0, 0x01, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0x00, 0x00, 0xff, 0xff, 0xff, 0x00, 0x00, 0x80
  };
  const guint8 pos[] = {
    0x64, 0, 0, 0, 0xfd, 0xff, 0xff, 0xff, 0x01, 0, 0, 0, 0, 0, 0, 0,
    0x08, 0x07, 0x06, 0x05, 0x04, 0x03, 0x02, 0x01
  };
  HxfrCursorImage ci = { 2, 1, 0, 0 }, ci2;
  HxfrCursorPosition p = { 100, -3, HXFR_CURSOR_VISIBLE,
    0x0102030405060708ull
  }, p2;
  HxfrSubscribe2Ack ack = { 2, HXFR_CODEC_H264, 1, 64, 48, "x264enc",
    HXFR_SUBSCRIBE2_CURSOR
  }, ack2;
  guint8 buf[64];

  fail_unless_equals_int (hxfr_cursor_image_write (&ci, buf), 16);
  fail_unless (memcmp (buf, image, 16) == 0);
  fail_unless (hxfr_cursor_image_parse (image, sizeof (image), &ci2, NULL));
  fail_unless (memcmp (&ci, &ci2, sizeof (ci)) == 0);
  /* the pixels must be exactly there; sizes and the hotspot bounded */
  fail_if (hxfr_cursor_image_parse (image, sizeof (image) - 1, &ci2, NULL));
  fail_if (hxfr_cursor_image_parse (image, 15, &ci2, NULL));
  memcpy (buf, image, sizeof (image));
  buf[8] = 2;                   /* hot_x == width */
  fail_if (hxfr_cursor_image_parse (buf, sizeof (image), &ci2, NULL));
  ci = (HxfrCursorImage) {
  257, 1, 0, 0};
  hxfr_cursor_image_write (&ci, buf);
  fail_if (hxfr_cursor_image_parse (buf, 16 + 257 * 4, &ci2, NULL));
  ci = (HxfrCursorImage) {
  0, 1, 0, 0};
  hxfr_cursor_image_write (&ci, buf);
  fail_if (hxfr_cursor_image_parse (buf, 16, &ci2, NULL));

  fail_unless_equals_int (hxfr_cursor_position_write (&p, buf), 24);
  fail_unless (memcmp (buf, pos, 24) == 0);
  fail_unless (hxfr_cursor_position_parse (pos, 24, &p2, NULL));
  /* field by field: the struct's padding is not the wire's */
  fail_unless (p2.x == p.x && p2.y == p.y && p2.flags == p.flags
      && p2.time == p.time);
  fail_if (hxfr_cursor_position_parse (pos, 23, &p2, NULL));

  /* SUBSCRIBE2_ACK's last word is the flags granted */
  fail_unless_equals_int (hxfr_subscribe2_ack_write (&ack, buf), 48);
  fail_unless (buf[44] == 1 && buf[45] == 0);
  fail_unless (hxfr_subscribe2_ack_parse (buf, 48, &ack2, NULL));
  fail_unless_equals_int (ack2.flags, HXFR_SUBSCRIBE2_CURSOR);
  fail_unless_equals_string (hxfr_msg_type_name (HXFR_MSG_CURSOR_IMAGE),
      "CURSOR_IMAGE");
}

GST_END_TEST;

GST_START_TEST (test_scanout_bytes)
{
  guint8 out[512];
  const guint8 *in;
  gsize n;
  guint32 id, ok;
  HxfrHeader h = { HXFR_MSG_SUBSCRIBE, 0, 1, HXFR_SUBSCRIBE_SIZE };
  HxfrEnableScanout en;
  HxfrScanoutResp resp;
  HxfrSubscribe2 sub = { 2, 2, HXFR_CODEC_H264, 3, 5000000, 0, 3, 1280, 720 };
  HxfrSubscribe2Ack ack = { 2, HXFR_CODEC_H264, 3, 1920, 1080, "x264enc" };
  HxfrScanoutFrame f = { 7, HXFR_SCANOUT_FRAME_KEYFRAME, 640, 480,
    16666667, -1, G_GUINT64_CONSTANT (0x0102030405060708), 1234
  };
  HxfrScanoutFrame f2;
  HxfrScanoutEnd end;
  HxfrSubscribe2 sub2;
  GError *err = NULL;

  /* the spec's own example: SUBSCRIBE to scanout 1 */
  hxfr_header_write (out, &h);
  n = HXFR_HEADER_SIZE + hxfr_subscribe_write (1, out + HXFR_HEADER_SIZE);
  assert_bytes (out, n, "48584652 30 00 0100 04000000 01000000");
  fail_unless (hxfr_subscribe_parse (out + HXFR_HEADER_SIZE, 4, &id, NULL));
  fail_unless_equals_int (id, 1);
  fail_if (hxfr_subscribe_parse (out + HXFR_HEADER_SIZE, 3, &id, NULL));

  n = hxfr_subscribe_resp_write (1, TRUE, out);
  assert_bytes (out, n, "01000000 01000000");
  fail_unless (hxfr_subscribe_resp_parse (out, n, &id, &ok, NULL));
  fail_unless (id == 1 && ok == 1);

  in = hexbytes ("02000000 80070000 38040000 3c000000", &n);
  fail_unless (hxfr_enable_scanout_parse (in, n, &en, NULL));
  fail_unless (en.scanout_id == 2 && en.width == 1920 && en.height == 1080
      && en.refresh == 60);
  in = hexbytes ("02000000", &n);
  fail_unless (hxfr_disable_scanout_parse (in, n, &id, NULL));
  fail_unless_equals_int (id, 2);

  /* 72 bytes, zeroed, the connector named as deployed */
  n = hxfr_scanout_resp_write (2, FALSE, out);
  fail_unless_equals_int (n, HXFR_SCANOUT_RESP_SIZE);
  assert_bytes (out, 16, "02000000 00000000 5669727475616c2d");
  fail_unless (hxfr_scanout_resp_parse (out, n, &resp, NULL));
  fail_unless_equals_string (resp.connector, "Virtual-3");
  fail_unless (resp.success == 0 && out[71] == 0);

  /* a pushed frame: v1 FRAME_RESPONSE, nal_count 1, then the AU's size */
  n = hxfr_pushed_frame_write (16666667, TRUE, 300, out);
  assert_bytes (out, n, "2b50fe0000000000 2b50fe0000000000 01 000000 "
      "01000000 2c010000");

  n = hxfr_subscribe2_write (&sub, out);
  memcpy (out + n, "abc", 3);
  assert_bytes (out, n, "0200 0200 48323634 03000000 404b4c00 00000000 "
      "0300 0005 d002 000000000000");
  fail_unless (hxfr_subscribe2_parse (out, n + 3, &sub2, NULL));
  fail_unless (sub2.scanout_id == 3 && sub2.token_len == 3
      && sub2.bitrate == 5000000 && sub2.max_width == 1280
      && sub2.max_height == 720);
  /* a token that overruns the payload, or a longer one than allowed */
  fail_if (hxfr_subscribe2_parse (out, n + 2, &sub2, &err));
  fail_unless (g_error_matches (err, HXFR_ERROR, HXFR_ERR_INVALID));
  g_clear_error (&err);
  sub.token_len = HXFR_MAX_TOKEN + 1;
  n = hxfr_subscribe2_write (&sub, out);
  fail_if (hxfr_subscribe2_parse (out, n + HXFR_MAX_TOKEN + 1, &sub2, NULL));

  n = hxfr_subscribe2_ack_write (&ack, out);
  fail_unless_equals_int (n, HXFR_SUBSCRIBE2_ACK_SIZE);
  assert_bytes (out, 20, "0200 0000 48323634 03000000 80070000 38040000");
  fail_unless_equals_string ((gchar *) out + 20, "x264enc");

  n = hxfr_scanout_frame_write (&f, out);
  assert_bytes (out, n, "07000000 01 000000 80020000 e0010000 "
      "2b50fe0000000000 ffffffffffffffff 0807060504030201 d2040000 "
      "00000000");
  fail_unless (hxfr_scanout_frame_parse (out, n, &f2, NULL));
  fail_unless (f2.seq == 7 && f2.pts == 16666667 && f2.duration == -1
      && f2.capture_time == f.capture_time && f2.encode_us == 1234);

  n = hxfr_scanout_end_write (HXFR_SCANOUT_END_DISABLED, "gone", out);
  assert_bytes (out, n, "01000000 00000000 676f6e65");
  fail_unless (hxfr_scanout_end_parse (out, n, &end, NULL));
  fail_unless_equals_string (end.text, "gone");
  fail_if (hxfr_scanout_end_parse (out, 4, &end, NULL));
  fail_if (hxfr_scanout_end_parse (out, HXFR_SCANOUT_END_SIZE +
          HXFR_ERROR_TEXT_SIZE + 1, &end, NULL));
}

GST_END_TEST;

GST_START_TEST (test_header_check_limits)
{
  HxfrLimits limits;
  HxfrHeader h = { 0, };
  GError *err = NULL;

  hxfr_limits_init_default (&limits);

  /* a host never reads a response; a guest never reads a request */
  h.type = HXFR_MSG_FRAME_RESPONSE;
  h.payload_size = HXFR_FRAME_RESPONSE_SIZE;
  fail_if (hxfr_header_check (&h, HXFR_ROLE_HOST, &limits, NULL));
  fail_unless (hxfr_header_check (&h, HXFR_ROLE_GUEST, &limits, NULL));

  h.type = 0x77;
  h.payload_size = 0;
  fail_if (hxfr_header_check (&h, HXFR_ROLE_HOST, &limits, &err));
  fail_unless (g_error_matches (err, HXFR_ERROR, HXFR_ERR_INVALID));
  g_clear_error (&err);

  /* short fixed part */
  h.type = HXFR_MSG_FRAME_REQUEST;
  h.payload_size = 43;
  fail_if (hxfr_header_check (&h, HXFR_ROLE_HOST, &limits, NULL));

  /* no pixels flag: nothing may follow */
  h.payload_size = 45;
  fail_if (hxfr_header_check (&h, HXFR_ROLE_HOST, &limits, NULL));

  /* pixels beyond the largest frame */
  h.flags = HXFR_FLAG_PIXEL_DATA;
  h.payload_size = G_MAXUINT32;
  fail_if (hxfr_header_check (&h, HXFR_ROLE_HOST, &limits, &err));
  fail_unless (g_error_matches (err, HXFR_ERROR, HXFR_ERR_LIMIT));
  g_clear_error (&err);
  h.payload_size = 44 + 1920 * 1080 * 4;
  fail_unless (hxfr_header_check (&h, HXFR_ROLE_HOST, &limits, NULL));

  /* fixed-size messages */
  h.type = HXFR_MSG_PING;
  h.flags = 0;
  h.payload_size = 1;
  fail_if (hxfr_header_check (&h, HXFR_ROLE_HOST, &limits, NULL));
  h.payload_size = 0;
  fail_unless (hxfr_header_check (&h, HXFR_ROLE_GUEST, &limits, NULL));
  h.type = HXFR_MSG_ERROR;
  h.payload_size = 261;
  fail_if (hxfr_header_check (&h, HXFR_ROLE_GUEST, &limits, NULL));

  /* v1 NAL list larger than an access unit may be */
  h.type = HXFR_MSG_FRAME_RESPONSE;
  h.payload_size = G_MAXUINT32;
  fail_if (hxfr_header_check (&h, HXFR_ROLE_GUEST, &limits, NULL));
}

GST_END_TEST;

GST_START_TEST (test_layouts_and_validation)
{
  HxfrLimits limits;
  HxfrFrameRequest r = { 0, };
  guint n_planes;
  guint32 stride[4], offset[4];
  gsize size;
  GError *err = NULL;

  hxfr_limits_init_default (&limits);

  /* GStreamer's default layouts */
  size = hxfr_frame_default_layout (HXFR_FORMAT_NV12, 33, 17, &n_planes,
      stride, offset);
  fail_unless_equals_int (n_planes, 2);
  fail_unless_equals_int (stride[0], 36);
  fail_unless_equals_int (stride[1], 36);
  fail_unless_equals_int (offset[1], 36 * 18);
  fail_unless_equals_int (size, 36 * 18 + 36 * 9);
  size = hxfr_frame_default_layout (HXFR_FORMAT_YUV420, 33, 17, &n_planes,
      stride, offset);
  fail_unless_equals_int (n_planes, 3);
  fail_unless_equals_int (stride[1], 20);
  fail_unless_equals_int (offset[2], 36 * 18 + 20 * 9);
  fail_unless_equals_int (size, 36 * 18 + 2 * 20 * 9);
  size = hxfr_frame_default_layout (HXFR_FORMAT_XRGB8888, 33, 17, &n_planes,
      stride, offset);
  fail_unless_equals_int (size, 33 * 4 * 17);
  fail_unless_equals_int (hxfr_frame_default_layout (0x12345678, 4, 4,
          &n_planes, stride, offset), 0);

  fail_unless (hxfr_format_is_v1 (HXFR_FORMAT_NV12));
  fail_unless (hxfr_format_is_v1 (HXFR_FORMAT_ARGB8888));
  fail_if (hxfr_format_is_v1 (HXFR_FORMAT_YUV420));
  fail_if (hxfr_format_is_v1 (HXFR_FORMAT_XRGB8888));

  r.width = 33;
  r.height = 17;
  r.format = HXFR_FORMAT_YUV420;
  size = hxfr_frame_default_layout (r.format, r.width, r.height, &r.n_planes,
      r.stride, r.offset);
  fail_unless (hxfr_frame_request_validate (&r, &limits, size, NULL));
  /* the last row may stop at its pixels (3 bytes of padding here), not
   * before; nothing may follow the padded extent */
  fail_unless (hxfr_frame_request_validate (&r, &limits, size - 3, NULL));
  fail_if (hxfr_frame_request_validate (&r, &limits, size - 4, NULL));
  fail_if (hxfr_frame_request_validate (&r, &limits, size + 1, NULL));
  /* stride below a row */
  r.stride[0] = 32;
  fail_if (hxfr_frame_request_validate (&r, &limits, size, &err));
  g_clear_error (&err);
  r.stride[0] = 36;
  /* plane offset past the end, overflow-safe */
  r.offset[2] = G_MAXUINT32;
  fail_if (hxfr_frame_request_validate (&r, &limits, size, NULL));
  r.offset[2] = 36 * 18 + 20 * 9;
  /* zero and huge sizes */
  r.width = 0;
  fail_if (hxfr_frame_request_validate (&r, &limits, 0, &err));
  fail_unless (g_error_matches (err, HXFR_ERROR, HXFR_ERR_LIMIT));
  g_clear_error (&err);
  r.width = 100000;
  fail_if (hxfr_frame_request_validate (&r, &limits, 0, NULL));
  r.width = 33;
  /* wrong plane count for the format */
  r.n_planes = 2;
  fail_if (hxfr_frame_request_validate (&r, &limits, size, NULL));
  r.n_planes = 3;
  r.format = 0x20202020;
  fail_if (hxfr_frame_request_validate (&r, &limits, size, &err));
  fail_unless (g_error_matches (err, HXFR_ERROR, HXFR_ERR_UNSUPPORTED));
  g_clear_error (&err);

  /* v1: NV12 planes from the one stride */
  size = hxfr_frame_v1_layout (HXFR_FORMAT_NV12, 720, 1280, &n_planes,
      stride, offset);
  fail_unless_equals_int (size, 1280 * 720 * 3 / 2);
  fail_unless_equals_int (offset[1], 1280 * 720);
  fail_unless_equals_int (hxfr_frame_v1_layout (HXFR_FORMAT_YUV420, 720,
          1280, &n_planes, stride, offset), 0);
}

GST_END_TEST;

GST_START_TEST (test_nal_list_unpack)
{
  guint8 buf[64];
  gsize out = 0;
  guint32 len;

  /* two entries: 00 00 01 65 and aa bb */
  len = GUINT32_TO_LE (4);
  memcpy (buf, &len, 4);
  memcpy (buf + 4, "\x00\x00\x01\x65", 4);
  len = GUINT32_TO_LE (2);
  memcpy (buf + 8, &len, 4);
  memcpy (buf + 12, "\xaa\xbb", 2);
  fail_unless (hxfr_nal_list_unpack (buf, 14, 2, &out, NULL));
  fail_unless_equals_int (out, 6);
  fail_unless (memcmp (buf, "\x00\x00\x01\x65\xaa\xbb", 6) == 0);

  /* entry overrunning the list */
  len = GUINT32_TO_LE (100);
  memcpy (buf, &len, 4);
  fail_if (hxfr_nal_list_unpack (buf, 14, 1, &out, NULL));
  /* huge size that would wrap a 32-bit sum */
  len = GUINT32_TO_LE (0xfffffffc);
  memcpy (buf, &len, 4);
  fail_if (hxfr_nal_list_unpack (buf, 14, 1, &out, NULL));
  /* count beyond the bytes */
  fail_if (hxfr_nal_list_unpack (buf, 3, 1, &out, NULL));
  /* trailing bytes after the last entry */
  len = GUINT32_TO_LE (1);
  memcpy (buf, &len, 4);
  fail_if (hxfr_nal_list_unpack (buf, 14, 1, &out, NULL));
}

GST_END_TEST;

GST_START_TEST (test_address_parse)
{
  HxfrAddress *a;
  gchar *s;
  GError *err = NULL;

  a = hxfr_address_parse ("vsock:5000", NULL);
  fail_unless (a && a->kind == HXFR_ADDRESS_VSOCK);
  fail_unless_equals_int (a->cid, HXFR_VSOCK_CID_ANY);
  fail_unless_equals_int (a->port, 5000);
  hxfr_address_free (a);
  a = hxfr_address_parse ("vsock:2:5000", NULL);
  fail_unless_equals_int (a->cid, 2);
  s = hxfr_address_to_string (a);
  fail_unless_equals_string (s, "vsock:2:5000");
  g_free (s);
  hxfr_address_free (a);

  a = hxfr_address_parse ("tcp:127.0.0.1:15937", NULL);
  fail_unless (a && a->kind == HXFR_ADDRESS_TCP);
  fail_unless_equals_string (a->host, "127.0.0.1");
  fail_unless_equals_int (a->port, 15937);
  hxfr_address_free (a);
  a = hxfr_address_parse ("tcp:[::1]:80", NULL);
  fail_unless_equals_string (a->host, "::1");
  fail_unless_equals_int (a->port, 80);
  s = hxfr_address_to_string (a);
  fail_unless_equals_string (s, "tcp:[::1]:80");
  g_free (s);
  hxfr_address_free (a);

  a = hxfr_address_parse ("unix:/run/hx.sock", NULL);
  fail_unless (a && a->kind == HXFR_ADDRESS_UNIX);
  fail_unless_equals_string (a->path, "/run/hx.sock");
  hxfr_address_free (a);

  fail_if (hxfr_address_parse ("tcp:host", &err));
  fail_unless (err != NULL);
  g_clear_error (&err);
  fail_if (hxfr_address_parse ("tcp:host:99999", NULL));
  fail_if (hxfr_address_parse ("tcp:[::1]", NULL));
  fail_if (hxfr_address_parse ("tcp:[]:80", NULL));
  fail_if (hxfr_address_parse ("tcp::80", NULL));
  fail_if (hxfr_address_parse ("tcp:[::1:80", NULL));
  fail_if (hxfr_address_parse ("tcp:localhost:http", NULL));
  fail_if (hxfr_address_parse ("vsock:", NULL));
  fail_if (hxfr_address_parse ("vsock:1:2:3", NULL));
  fail_if (hxfr_address_parse ("unix:", NULL));
  fail_if (hxfr_address_parse ("udp:1.2.3.4:5", NULL));
}

GST_END_TEST;

/* A connected pair over a listener, for transport tests */
typedef struct
{
  gchar *dir;
  HxfrListener *listener;
  HxfrConn *client;
  HxfrConn *server;
} Pair;

static void
pair_open (Pair * p, gboolean tcp)
{
  HxfrAddress *addr;

  p->dir = g_dir_make_tmp ("hxfr-test-XXXXXX", NULL);
  fail_unless (p->dir != NULL);
  if (tcp) {
    addr = hxfr_address_new_tcp ("127.0.0.1", 0);
  } else {
    gchar *path = g_build_filename (p->dir, "s.sock", NULL);
    addr = hxfr_address_new_unix (path);
    g_free (path);
  }
  p->listener = hxfr_listener_new (addr, 0600, NULL);
  fail_unless (p->listener != NULL);
  hxfr_address_free (addr);
  p->client = hxfr_conn_connect (hxfr_listener_get_address (p->listener),
      G_USEC_PER_SEC * 5, NULL, NULL);
  fail_unless (p->client != NULL);
  p->server = hxfr_listener_accept (p->listener, G_USEC_PER_SEC * 5, NULL,
      NULL);
  fail_unless (p->server != NULL);
}

static void
pair_close (Pair * p)
{
  const HxfrAddress *addr = hxfr_listener_get_address (p->listener);
  gchar *path = addr->kind == HXFR_ADDRESS_UNIX ? g_strdup (addr->path) : NULL;

  hxfr_conn_unref (p->client);
  hxfr_conn_unref (p->server);
  hxfr_listener_free (p->listener);
  /* the socket file is gone with the listener */
  if (path)
    fail_if (g_file_test (path, G_FILE_TEST_EXISTS));
  g_free (path);
  g_rmdir (p->dir);
  g_free (p->dir);
}

typedef struct
{
  HxfrConn *conn;
  gsize size;
} BigSend;

static gpointer
big_send_thread (gpointer data)
{
  BigSend *b = data;
  guint8 fixed[HXFR_MAX_FIXED_SIZE];
  HxfrFrameRequest r = { 0, };
  guint8 *pixels = g_malloc (b->size);
  GOutputVector v = { pixels, b->size };
  gsize i;
  gboolean ok;

  for (i = 0; i < b->size; i++)
    pixels[i] = (guint8) (i * 7);
  r.seq = 1;
  r.width = 1920;
  r.height = 1080;
  r.format = HXFR_FORMAT_XRGB8888;
  r.n_planes = 1;
  r.stride[0] = 1920 * 4;
  ok = hxfr_conn_send (b->conn, HXFR_MSG_FRAME_REQUEST2, HXFR_FLAG_PIXEL_DATA,
      1, fixed, hxfr_frame_request_write (&r, 2, fixed), &v, 1,
      10 * G_USEC_PER_SEC, NULL, NULL);
  g_free (pixels);
  return GINT_TO_POINTER (ok);
}

static void
do_big_message (gboolean tcp)
{
  Pair p;
  BigSend b;
  GThread *t;
  HxfrMessage msg;
  HxfrLimits limits;
  guint8 *buf;
  gsize i, size = 1920 * 1080 * 4;

  pair_open (&p, tcp);
  hxfr_limits_init_default (&limits);
  b.conn = p.client;
  b.size = size;
  /* far larger than a socket buffer: forces partial writes */
  t = g_thread_new ("sender", big_send_thread, &b);
  fail_unless (hxfr_conn_receive (p.server, HXFR_ROLE_HOST, &limits, &msg,
          5 * G_USEC_PER_SEC, 5 * G_USEC_PER_SEC, NULL, NULL));
  fail_unless_equals_int (msg.header.type, HXFR_MSG_FRAME_REQUEST2);
  fail_unless_equals_int (msg.tail_size, size);
  buf = g_malloc (size);
  fail_unless (hxfr_conn_read_exact (p.server, buf, size, 5 * G_USEC_PER_SEC,
          NULL, NULL));
  for (i = 0; i < size; i++)
    if (buf[i] != (guint8) (i * 7))
      fail ("byte %" G_GSIZE_FORMAT " differs", i);
  g_free (buf);
  fail_unless (GPOINTER_TO_INT (g_thread_join (t)));
  fail_unless_equals_int (hxfr_conn_get_bytes_received (p.server),
      12 + 72 + size);
  fail_unless_equals_int (hxfr_conn_get_bytes_sent (p.client), 12 + 72 + size);
  pair_close (&p);
}

GST_START_TEST (test_transport_big_message_unix)
{
  do_big_message (FALSE);
}

GST_END_TEST;

GST_START_TEST (test_transport_big_message_tcp)
{
  do_big_message (TRUE);
}

GST_END_TEST;

GST_START_TEST (test_transport_peer_gone_and_timeouts)
{
  Pair p;
  HxfrMessage msg;
  HxfrLimits limits;
  guint8 half[5] = { 'H', 'X', 'F', 'R', 0x10 };
  GError *err = NULL;
  GCancellable *cancel;
  gint64 start;

  hxfr_limits_init_default (&limits);
  pair_open (&p, FALSE);

  /* nothing arrives: bounded wait */
  start = g_get_monotonic_time ();
  fail_if (hxfr_conn_receive (p.server, HXFR_ROLE_HOST, &limits, &msg,
          100000, 100000, NULL, &err));
  fail_unless (g_error_matches (err, G_IO_ERROR, G_IO_ERROR_TIMED_OUT));
  fail_unless (g_get_monotonic_time () - start < 5 * G_USEC_PER_SEC);
  g_clear_error (&err);

  /* half a header then silence: the idle bound ends it */
  fail_unless (g_socket_send (hxfr_conn_get_socket (p.client),
          (const gchar *) half, sizeof (half), NULL, NULL) == sizeof (half));
  fail_if (hxfr_conn_receive (p.server, HXFR_ROLE_HOST, &limits, &msg,
          G_USEC_PER_SEC, 200000, NULL, &err));
  fail_unless (g_error_matches (err, G_IO_ERROR, G_IO_ERROR_TIMED_OUT));
  g_clear_error (&err);

  /* peer closes mid-message: CONNECTION_CLOSED, not a spin */
  hxfr_conn_shutdown (p.client);
  fail_if (hxfr_conn_receive (p.server, HXFR_ROLE_HOST, &limits, &msg,
          G_USEC_PER_SEC, G_USEC_PER_SEC, NULL, &err));
  fail_unless (g_error_matches (err, G_IO_ERROR, G_IO_ERROR_CONNECTION_CLOSED)
      || g_error_matches (err, HXFR_ERROR, HXFR_ERR_INVALID));
  g_clear_error (&err);
  pair_close (&p);

  /* cancellation wakes an unbounded wait */
  pair_open (&p, TRUE);
  cancel = g_cancellable_new ();
  g_cancellable_cancel (cancel);
  fail_if (hxfr_conn_receive (p.server, HXFR_ROLE_HOST, &limits, &msg,
          -1, -1, cancel, &err));
  fail_unless (g_error_matches (err, G_IO_ERROR, G_IO_ERROR_CANCELLED));
  g_clear_error (&err);
  g_object_unref (cancel);
  pair_close (&p);
}

GST_END_TEST;

GST_START_TEST (test_transport_send_to_a_peer_that_never_reads)
{
  Pair p;
  guint8 *big = g_malloc0 (8 << 20);
  GOutputVector v = { big, 8 << 20 };
  GError *err = NULL;
  gint64 start;

  pair_open (&p, FALSE);
  /* the peer reads nothing: the first send ends at its bound... */
  fail_if (hxfr_conn_send (p.client, HXFR_MSG_PING, 0, 1, NULL, 0, &v, 1,
          200000, NULL, &err));
  fail_unless (g_error_matches (err, G_IO_ERROR, G_IO_ERROR_TIMED_OUT));
  g_clear_error (&err);
  /* ...and nothing more goes after a message cut short, at once */
  start = g_get_monotonic_time ();
  fail_if (hxfr_conn_send_error (p.client, 1, HXFR_ERR_TIMEOUT, "late",
          5 * G_USEC_PER_SEC, &err));
  fail_unless (g_error_matches (err, G_IO_ERROR, G_IO_ERROR_BROKEN_PIPE));
  fail_unless (g_get_monotonic_time () - start < G_USEC_PER_SEC);
  g_clear_error (&err);
  g_free (big);
  pair_close (&p);
}

GST_END_TEST;

GST_START_TEST (test_transport_rejects_before_reading_payload)
{
  Pair p;
  HxfrMessage msg;
  HxfrLimits limits;
  guint8 fixed[HXFR_MAX_FIXED_SIZE];
  HxfrFrameRequest r = { 0, };
  GError *err = NULL;
  guint8 junk[64] = { 0, };
  GOutputVector v = { junk, sizeof (junk) };

  hxfr_limits_init_default (&limits);
  pair_open (&p, FALSE);

  /* v1 request labelled BGRA, carrying too few bytes for it */
  r.width = 16;
  r.height = 2;
  r.format = HXFR_FORMAT_ARGB8888;
  r.stride[0] = 64;
  fail_unless (hxfr_conn_send (p.client, HXFR_MSG_FRAME_REQUEST,
          HXFR_FLAG_PIXEL_DATA, 1, fixed, hxfr_frame_request_write (&r, 1,
              fixed), &v, 1, G_USEC_PER_SEC, NULL, NULL));
  fail_if (hxfr_conn_receive (p.server, HXFR_ROLE_HOST, &limits, &msg,
          G_USEC_PER_SEC, G_USEC_PER_SEC, NULL, &err));
  fail_unless (g_error_matches (err, HXFR_ERROR, HXFR_ERR_INVALID), "%s",
      err->message);
  g_clear_error (&err);
  pair_close (&p);

  /* a host-bound type read by a guest */
  pair_open (&p, FALSE);
  fail_unless (hxfr_conn_send (p.client, HXFR_MSG_PING, 0, 1, NULL, 0, NULL,
          0, G_USEC_PER_SEC, NULL, NULL));
  fail_unless (hxfr_conn_receive (p.server, HXFR_ROLE_GUEST, &limits, &msg,
          G_USEC_PER_SEC, G_USEC_PER_SEC, NULL, NULL));
  fail_unless_equals_int (msg.header.type, HXFR_MSG_PING);
  fail_unless (hxfr_conn_send (p.client, HXFR_MSG_HELLO, 0, 1, fixed,
          HXFR_HELLO_SIZE, NULL, 0, G_USEC_PER_SEC, NULL, NULL));
  fail_if (hxfr_conn_receive (p.server, HXFR_ROLE_GUEST, &limits, &msg,
          G_USEC_PER_SEC, G_USEC_PER_SEC, NULL, &err));
  g_clear_error (&err);
  pair_close (&p);
}

GST_END_TEST;

/* A host name is resolved (within the timeout: GSocketClient, which also
 * tries each address it resolves to; here localhost is 127.0.0.1 only).
 * Then the peek of a first header: the next read gets it again, whole. */
GST_START_TEST (test_transport_connect_by_name_and_peek)
{
  g_autoptr (HxfrAddress) any = hxfr_address_new_tcp ("127.0.0.1", 0);
  HxfrListener *l = hxfr_listener_new (any, 0, NULL);
  g_autoptr (HxfrAddress) by_name = NULL;
  HxfrConn *client, *server;
  HxfrHeader h = { HXFR_MSG_PING, 0, 7, 0 };
  guint8 out[HXFR_HEADER_SIZE], peeked[HXFR_HEADER_SIZE],
      again[HXFR_HEADER_SIZE];
  GError *err = NULL;

  fail_unless (l != NULL);
  by_name = hxfr_address_new_tcp ("localhost",
      hxfr_listener_get_address (l)->port);
  client = hxfr_conn_connect (by_name, 10 * G_USEC_PER_SEC, NULL, &err);
  fail_unless (client != NULL, "localhost: %s", err ? err->message : "");
  server = hxfr_listener_accept (l, 10 * G_USEC_PER_SEC, NULL, NULL);
  fail_unless (server != NULL);

  hxfr_header_write (out, &h);
  fail_unless (hxfr_conn_send (client, HXFR_MSG_PING, 0, 7, NULL, 0, NULL, 0,
          G_USEC_PER_SEC, NULL, NULL));
  fail_unless (hxfr_conn_peek (server, peeked, sizeof (peeked),
          10 * G_USEC_PER_SEC, 10 * G_USEC_PER_SEC, NULL, NULL));
  fail_unless (memcmp (peeked, out, sizeof (out)) == 0);
  /* not consumed: the next read returns the same bytes */
  fail_unless (hxfr_conn_wait_readable (server, 0, NULL, NULL));
  fail_unless (hxfr_conn_read_exact (server, again, sizeof (again),
          G_USEC_PER_SEC, NULL, NULL));
  fail_unless (memcmp (again, out, sizeof (out)) == 0);

  hxfr_conn_unref (client);
  hxfr_conn_unref (server);
  hxfr_listener_free (l);
}

GST_END_TEST;

GST_START_TEST (test_listener_stale_and_live_socket)
{
  gchar *dir = g_dir_make_tmp ("hxfr-test-XXXXXX", NULL);
  gchar *path = g_build_filename (dir, "b.sock", NULL);
  HxfrAddress *addr = hxfr_address_new_unix (path);
  HxfrListener *l1, *l2;
  GError *err = NULL;
  struct stat st;

  l1 = hxfr_listener_new (addr, 0660, NULL);
  fail_unless (l1 != NULL);
  fail_unless (g_stat (path, &st) == 0);
  fail_unless_equals_int (st.st_mode & 0777, 0660);
  /* a live listener is not stolen */
  l2 = hxfr_listener_new (addr, 0, &err);
  fail_unless (l2 == NULL);
  fail_unless (g_error_matches (err, G_IO_ERROR, G_IO_ERROR_ADDRESS_IN_USE));
  g_clear_error (&err);
  /* a stale file (listener gone without unlinking) is replaced */
  g_socket_close (hxfr_listener_get_socket (l1), NULL);
  l2 = hxfr_listener_new (addr, 0, &err);
  fail_unless (l2 != NULL, "%s", err ? err->message : "");
  hxfr_listener_free (l2);
  fail_if (g_file_test (path, G_FILE_TEST_EXISTS));
  hxfr_listener_free (l1);
  hxfr_address_free (addr);
  g_free (path);
  g_rmdir (dir);
  g_free (dir);
}

GST_END_TEST;

/* NAL units found in an Annex B access unit, 3- and 4-byte start codes */
GST_START_TEST (test_au_find_nal)
{
  static const guint8 au[] = {
    0x00, 0x00, 0x00, 0x01, 0x09, 0xf0,
    0x00, 0x00, 0x00, 0x01, 0x67, 0x64, 0x00, 0x1f, 0xac,
    0x00, 0x00, 0x01, 0x68, 0xee,
    0x00, 0x00, 0x01, 0x65, 0x88, 0x84,
  };
  const guint8 *nal;
  gsize size = 0;

  nal = hxfr_video_au_find_nal (au, sizeof (au), 7, &size);
  fail_unless (nal == au + 10);
  fail_unless_equals_int (size, 5);
  nal = hxfr_video_au_find_nal (au, sizeof (au), 8, &size);
  fail_unless (nal == au + 18);
  fail_unless_equals_int (size, 2);
  /* the last one ends with the access unit */
  nal = hxfr_video_au_find_nal (au, sizeof (au), 5, &size);
  fail_unless (nal == au + 23);
  fail_unless_equals_int (size, 3);
  fail_unless (hxfr_video_au_find_nal (au, sizeof (au), 6, &size) == NULL);
  fail_unless (hxfr_video_au_find_nal (au, 3, 9, &size) == NULL);
  /* the one AUD everybody uses is one */
  fail_unless_equals_int (hxfr_video_au_aud_length (au, sizeof (au)), 6);
  fail_unless (memcmp (au, hxfr_video_aud, sizeof (hxfr_video_aud)) == 0);
}

GST_END_TEST;

GST_START_TEST (test_formats)
{
  guint64 rows, row_bytes;

  /* v1 has no X variants and no I420: nothing is sent mislabelled */
  fail_unless_equals_int (hxfr_video_format_to_fourcc (GST_VIDEO_FORMAT_BGRx,
          1), HXFR_FORMAT_ARGB8888);
  fail_unless_equals_int (hxfr_video_format_to_fourcc (GST_VIDEO_FORMAT_BGRx,
          2), HXFR_FORMAT_XRGB8888);
  fail_unless_equals_int (hxfr_video_format_to_fourcc (GST_VIDEO_FORMAT_I420,
          1), 0);
  fail_unless_equals_int (hxfr_video_format_to_fourcc (GST_VIDEO_FORMAT_I420,
          2), HXFR_FORMAT_YUV420);
  fail_unless_equals_int (hxfr_video_format_to_fourcc (GST_VIDEO_FORMAT_YUY2,
          2), 0);
  fail_unless_equals_int (hxfr_video_format_from_fourcc (HXFR_FORMAT_XBGR8888),
      GST_VIDEO_FORMAT_RGBx);
  fail_unless_equals_int (hxfr_video_format_from_fourcc (0x20202020),
      GST_VIDEO_FORMAT_UNKNOWN);

  fail_unless (hxfr_format_plane_size (HXFR_FORMAT_NV12, 1, 33, 17, &rows,
          &row_bytes));
  fail_unless_equals_int (rows, 9);
  fail_unless_equals_int (row_bytes, 34);
  fail_unless (hxfr_format_plane_size (HXFR_FORMAT_YUV420, 2, 33, 17, &rows,
          &row_bytes));
  fail_unless_equals_int (row_bytes, 17);
  fail_if (hxfr_format_plane_size (HXFR_FORMAT_NV12, 2, 33, 17, &rows,
          &row_bytes));
}

GST_END_TEST;

/* The adaptive window against a simulated guest that always has a frame to
 * send: a link of @link_us round trip (half each way, as many frames at
 * once as it is given), a host whose one encoder takes @service_us per
 * frame after @read_us of reading the request. @shared: the reading and
 * the encoding take turns on one core (guest, host and encoder on the same
 * machine), so that nothing overlaps. @at counts the answers taken under
 * each window (up to 16). No clock: the times are the model's. */
typedef struct
{
  gint64 sent, answer, host;
} SimFrame;

typedef struct
{
  SimFrame q[16];
  guint head, len;
  gint64 now, host_free;
  /* 0, or a link that carries one frame at a time each way, this long
   * each (its bandwidth), and answers as big as the requests (a
   * pass-through): the link, not the host, spaces the answers, and the
   * host's time ends when its answer is written, on the wire */
  gint64 wire_us, link_free, back_free;
} Sim;

static void
simulate (Sim * sim, HxfrWindow * w, guint answers, gint64 service_us,
    gint64 link_us, gint64 read_us, gboolean shared, guint at[17])
{
  guint n;

  for (n = 0; n < answers; n++) {
    SimFrame *f;

    while (sim->len < w->window) {
      gint64 depart = MAX (sim->now, sim->link_free), arrive, read_done, start;

      sim->link_free = depart + sim->wire_us;
      arrive = sim->link_free + link_us / 2;
      f = &sim->q[(sim->head + sim->len) % G_N_ELEMENTS (sim->q)];
      if (shared) {
        read_done = MAX (arrive, sim->host_free) + read_us;
        start = read_done;
      } else {
        read_done = arrive + read_us;
        start = MAX (read_done, sim->host_free);
      }
      sim->host_free = start + service_us;
      sim->back_free = MAX (sim->host_free, sim->back_free) + sim->wire_us;
      f->sent = sim->now;
      f->host = sim->back_free - read_done;
      f->answer = sim->back_free + link_us / 2;
      sim->len++;
    }
    f = &sim->q[sim->head];
    sim->head = (sim->head + 1) % G_N_ELEMENTS (sim->q);
    sim->len--;
    sim->now = MAX (sim->now, f->answer);
    at[hxfr_window_update (w, sim->now, sim->now - f->sent, f->host)]++;
  }
}

GST_START_TEST (test_window_adapts)
{
  HxfrWindow w;
  Sim sim;
  guint at[17], i;

  /* the encoder is the bottleneck, the link short: one frame in flight,
   * but for the seldom tries of a second */
  memset (&sim, 0, sizeof (sim));
  memset (at, 0, sizeof (at));
  hxfr_window_init (&w, 4);
  simulate (&sim, &w, 4000, 10000, 200, 800, FALSE, at);
  fail_unless (at[1] >= 4000 * 95 / 100, "%u of 4000 at 1", at[1]);
  fail_unless_equals_int (at[3] + at[4], 0);

  /* a 15 ms link, 5 ms per frame: 4 in flight fill it (20 ms of round
   * trip, 4 encodes), a fifth would only queue: 4, though 8 are granted,
   * but for the seldom tries of 3 and 5 */
  memset (&sim, 0, sizeof (sim));
  memset (at, 0, sizeof (at));
  hxfr_window_init (&w, 8);
  simulate (&sim, &w, 4000, 5000, 15000, 0, FALSE, at);
  fail_unless (at[4] >= 4000 * 90 / 100, "%u of 4000 at 4", at[4]);
  for (i = 6; i <= 8; i++)
    fail_unless_equals_int (at[i], 0);

  /* the link goes away: back to one */
  memset (at, 0, sizeof (at));
  simulate (&sim, &w, 4000, 5000, 0, 0, FALSE, at);
  fail_unless_equals_int (w.window, 1);
  fail_unless (at[1] >= 4000 * 50 / 100, "%u of 4000 at 1", at[1]);

  /* a host that answers at once over a 1 ms link: the whole grant */
  memset (&sim, 0, sizeof (sim));
  memset (at, 0, sizeof (at));
  hxfr_window_init (&w, 4);
  simulate (&sim, &w, 4000, 50, 1000, 300, FALSE, at);
  fail_unless (at[4] >= 4000 * 90 / 100, "%u of 4000 at 4", at[4]);

  /* reading and encoding share one core: the model sees a link of 3 ms
   * against 7 ms of encoding and asks for 2, but 2 only queue */
  memset (&sim, 0, sizeof (sim));
  memset (at, 0, sizeof (at));
  hxfr_window_init (&w, 4);
  simulate (&sim, &w, 4000, 7000, 0, 3000, TRUE, at);
  fail_unless (at[1] >= 4000 * 95 / 100, "%u of 4000 at 1", at[1]);
  fail_unless (w.service_us > 6000 && w.service_us < 8000);

  /* a pass-through over a link whose bandwidth is the limit (0.3 ms a
   * frame on the wire each way, 1 ms of round trip besides): the host's
   * time includes writing its answer onto the wire, so S looks like the
   * wire's 0.3 ms, not the 50 us of work; the window must still open to
   * the whole grant (measured rather than believed) */
  memset (&sim, 0, sizeof (sim));
  memset (at, 0, sizeof (at));
  sim.wire_us = 300;
  hxfr_window_init (&w, 4);
  simulate (&sim, &w, 4000, 50, 1000, 0, FALSE, at);
  fail_unless (at[4] >= 4000 * 90 / 100, "%u of 4000 at 4", at[4]);
  fail_unless (w.service_us > 250 && w.service_us < 450);
}

GST_END_TEST;

static Suite *
hxfr_suite (void)
{
  Suite *s = suite_create ("hxfr");
  TCase *tc = tcase_create ("codec");
  TCase *tt = tcase_create ("transport");

  suite_add_tcase (s, tc);
  tcase_add_test (tc, test_header_bytes);
  tcase_add_test (tc, test_frame_request_v1_bytes);
  tcase_add_test (tc, test_frame_request_v2_bytes);
  tcase_add_test (tc, test_frame_response_bytes);
  tcase_add_test (tc, test_config_hello_control_error_bytes);
  tcase_add_test (tc, test_scanout_bytes);
  tcase_add_test (tc, test_cursor_bytes);
  tcase_add_test (tc, test_header_check_limits);
  tcase_add_test (tc, test_layouts_and_validation);
  tcase_add_test (tc, test_nal_list_unpack);
  tcase_add_test (tc, test_address_parse);
  tcase_add_test (tc, test_formats);
  tcase_add_test (tc, test_au_find_nal);
  tcase_add_test (tc, test_window_adapts);
  suite_add_tcase (s, tt);
  tcase_add_test (tt, test_transport_big_message_unix);
  tcase_add_test (tt, test_transport_big_message_tcp);
  tcase_add_test (tt, test_transport_peer_gone_and_timeouts);
  tcase_add_test (tt, test_transport_send_to_a_peer_that_never_reads);
  tcase_add_test (tt, test_transport_rejects_before_reading_payload);
  tcase_add_test (tt, test_listener_stale_and_live_socket);
  tcase_add_test (tt, test_transport_connect_by_name_and_peek);
  return s;
}

GST_CHECK_MAIN (hxfr);
