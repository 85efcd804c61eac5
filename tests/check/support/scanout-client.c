/* The scanout suites' client side: see scanout-client.h.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "scanout-client.h"

#include <errno.h>
#include <poll.h>
#include <string.h>
#include <unistd.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <gst/app/gstappsrc.h>
#include <gst/app/gstappsink.h>

#include "hxfr-protocol.h"
#include "../../standin/helix-test-pattern.h"

/* ------------------------------------------------------------------ */
/* Environment: stand-in + bridge                                      */


/* @standin_args: after --serve-only; @listen_opts: appended to the
 * export= option (e.g. "deployed"); @bridge_args: more bridge options. */
Env *
env_start (const gchar * const *standin_args, const gchar * listen_opts,
    const gchar * const *bridge_args)
{
  Env *e = g_new0 (Env, 1);
  GPtrArray *args = g_ptr_array_new ();
  gchar *opts;

  e->vmm = standin_runner_start (standin_args);
  if (!e->vmm) {
    g_free (e);
    g_ptr_array_unref (args);
    return NULL;
  }
  g_ptr_array_add (args, (gpointer) "--encoder");
  g_ptr_array_add (args, (gpointer) "x264enc");
  for (; bridge_args && *bridge_args; bridge_args++)
    g_ptr_array_add (args, (gpointer) * bridge_args);
  g_ptr_array_add (args, NULL);
  opts = g_strconcat ("export=", standin_runner_get_export_address (e->vmm),
      listen_opts && *listen_opts ? "," : "", listen_opts ? listen_opts : "",
      NULL);
  e->bridge = bridge_runner_start_with_listen_opts (BRIDGE_RUNNER_UNIX, opts,
      (const gchar * const *) args->pdata);
  g_free (opts);
  g_ptr_array_unref (args);
  fail_unless (e->bridge != NULL, "the bridge did not start");
  return e;
}

void
env_stop (Env * e)
{
  bridge_runner_stop_checked (e->bridge);
  standin_runner_stop (e->vmm);
  g_free (e);
}


/* ------------------------------------------------------------------ */
/* A raw client: AF_UNIX, blocking writes, reads with poll deadlines    */



Cl *
cl_connect_path (const gchar * path)
{
  Cl *c = g_new0 (Cl, 1);
  struct sockaddr_un sa = { 0, };

  c->fd = socket (AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  fail_unless (c->fd >= 0);
  sa.sun_family = AF_UNIX;
  g_strlcpy (sa.sun_path, path, sizeof (sa.sun_path));
  fail_unless (connect (c->fd, (struct sockaddr *) &sa, sizeof (sa)) == 0,
      "connect %s: %s", path, g_strerror (errno));
  return c;
}

Cl *
cl_connect (Env * e)
{
  return cl_connect_path (bridge_runner_get_socket_path (e->bridge));
}

void
cl_close (Cl * c)
{
  if (c->fd >= 0)
    close (c->fd);
  g_free (c);
}

static Rd
rd_exact (Cl * c, guint8 * buf, gsize len, gint64 deadline)
{
  gsize got = 0;

  while (got < len) {
    struct pollfd p = { c->fd, POLLIN, 0 };
    gint64 left = (deadline - g_get_monotonic_time ()) / 1000;
    ssize_t n;

    if (left <= 0)
      return RD_TIMEOUT;
    if (poll (&p, 1, (int) left) == 0)
      return RD_TIMEOUT;
    n = recv (c->fd, buf + got, len - got, 0);
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0)
      return RD_EOF;
    got += n;
  }
  return RD_OK;
}

/* False when the peer closed (EPIPE, ECONNRESET). */
gboolean
cl_write (Cl * c, const guint8 * buf, gsize len)
{
  gsize done = 0;

  while (done < len) {
    ssize_t n = send (c->fd, buf + done, len - done, MSG_NOSIGNAL);

    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0)
      return FALSE;
    done += n;
  }
  return TRUE;
}

/* A header as helix's Go codec writes it: little-endian, packed */
void
put_header (guint8 out[12], guint8 type, guint16 session_id,
    guint32 payload_size)
{
  out[0] = 0x48;
  out[1] = 0x58;
  out[2] = 0x46;
  out[3] = 0x52;
  out[4] = type;
  out[5] = 0;
  out[6] = session_id & 0xff;
  out[7] = session_id >> 8;
  out[8] = payload_size & 0xff;
  out[9] = (payload_size >> 8) & 0xff;
  out[10] = (payload_size >> 16) & 0xff;
  out[11] = payload_size >> 24;
}

guint32
le32 (const guint8 * p)
{
  return p[0] | (p[1] << 8) | (p[2] << 16) | ((guint32) p[3] << 24);
}

void
put_le32 (guint8 * p, guint32 v)
{
  p[0] = v & 0xff;
  p[1] = (v >> 8) & 0xff;
  p[2] = (v >> 16) & 0xff;
  p[3] = v >> 24;
}

/* Sends a message whose header declares @declared bytes (a lie if it is
 * not @len). */
gboolean
cl_send (Cl * c, guint8 type, guint16 session_id, const guint8 * payload,
    gsize len, guint32 declared)
{
  guint8 *buf = g_malloc (12 + len);
  gboolean ok;

  put_header (buf, type, session_id, declared);
  if (len)
    memcpy (buf + 12, payload, len);
  ok = cl_write (c, buf, 12 + len);
  g_free (buf);
  return ok;
}


/* One whole message (payload at most 16 MiB, else the test fails). */
Rd
rd_msg (Cl * c, Msg * m, gint64 timeout_us)
{
  gint64 deadline = g_get_monotonic_time () + timeout_us;
  guint8 h[12];
  Rd r;

  memset (m, 0, sizeof (*m));
  if ((r = rd_exact (c, h, 12, deadline)) != RD_OK)
    return r;
  fail_unless (le32 (h) == 0x52465848, "bad magic from the bridge");
  m->type = h[4];
  fail_unless (h[5] == 0, "flags %u in a message of type 0x%02x", h[5], h[4]);
  m->session_id = h[6] | (h[7] << 8);
  m->size = le32 (h + 8);
  fail_unless (m->size <= 16 * 1024 * 1024, "a %u-byte payload", m->size);
  m->payload = g_malloc (m->size + 1);
  /* the rest of a begun message: a generous bound of its own */
  return rd_exact (c, m->payload, m->size, g_get_monotonic_time () +
      FRAME_TIMEOUT_US);
}

void
msg_clear (Msg * m)
{
  g_clear_pointer (&m->payload, g_free);
}

/* Drains until EOF; TRUE if it came within @timeout_us. */
gboolean
wait_eof (Cl * c, gint64 timeout_us)
{
  gint64 deadline = g_get_monotonic_time () + timeout_us;
  guint8 buf[65536];

  for (;;) {
    struct pollfd p = { c->fd, POLLIN, 0 };
    gint64 left = (deadline - g_get_monotonic_time ()) / 1000;
    ssize_t n;

    if (left <= 0 || poll (&p, 1, (int) left) == 0)
      return FALSE;
    n = recv (c->fd, buf, sizeof (buf), 0);
    if (n <= 0)
      return TRUE;
  }
}

/* ------------------------------------------------------------------ */
/* Deployed dialect (PROTOCOL-scanout.md)                              */

/* SUBSCRIBE as the Go client sends it; the first message back must be a
 * SUBSCRIBE_RESP, within 5 s. Returns its success field. */
guint32
deployed_subscribe (Cl * c, guint32 index)
{
  guint8 p[4];
  Msg m;
  guint32 success;

  put_le32 (p, index);
  fail_unless (cl_send (c, 0x30, (guint16) index, p, 4, 4));
  fail_unless_equals_int (rd_msg (c, &m, 5 * G_USEC_PER_SEC), RD_OK);
  fail_unless (m.type == 0x31, "answer to SUBSCRIBE: type 0x%02x (%s)",
      m.type, m.type == 0xff ? (gchar *) m.payload + 4 : "");
  fail_unless_equals_int (m.size, 8);
  fail_unless_equals_int (le32 (m.payload), index);
  fail_unless_equals_int (m.session_id, index & 0xffff);
  success = le32 (m.payload + 4);
  msg_clear (&m);
  return success;
}


void
frame_clear (Frame * f)
{
  g_clear_pointer (&f->au, g_bytes_unref);
}

/* A pushed frame exactly as the Go reader takes it; anything but a
 * FRAME_RESPONSE fails the test (it would kill helix's stream). */
Rd
deployed_frame (Cl * c, Frame * f, gint64 timeout_us)
{
  Msg m;
  Rd r = rd_msg (c, &m, timeout_us);
  guint32 nal_count, nal_size;

  memset (f, 0, sizeof (*f));
  if (r != RD_OK) {
    msg_clear (&m);
    return r;
  }
  fail_unless (m.type == 0x02, "a deployed subscriber got type 0x%02x", m.type);
  fail_unless (m.size >= 28, "FRAME_RESPONSE of %u bytes", m.size);
  nal_count = le32 (m.payload + 20);
  nal_size = le32 (m.payload + 24);
  fail_unless_equals_int (nal_count, 1);
  fail_unless (m.size == 28 + nal_size, "payload_size %u, nal_size %u",
      m.size, nal_size);
  fail_unless (nal_size > 0);
  f->pts = (gint64) GUINT64_FROM_LE (*(guint64 *) m.payload);
  f->keyframe = m.payload[16];
  fail_unless (f->keyframe <= 1, "is_keyframe %u", f->keyframe);
  f->session_id = m.session_id;
  f->au = g_bytes_new (m.payload + 28, nal_size);
  f->t_arrival = g_get_monotonic_time ();
  msg_clear (&m);
  return RD_OK;
}

/* deployed pts: the per-scanout frame counter at 60 fps */
gint64
deployed_index (const Frame * f)
{
  return (f->pts + 8333333) / 16666667;
}

/* ------------------------------------------------------------------ */
/* v2 dialect                                                           */

/* SUBSCRIBE2; returns 0 and fills *ack on SUBSCRIBE2_ACK, else the ERROR
 * code (text in @text if not NULL). */
gint32
v2_subscribe (Cl * c, guint32 index, const gchar * token,
    HxfrSubscribe2Ack * ack, gchar ** text)
{
  return v2_subscribe_at (c, index, 0, token, ack, text);
}

gint32
v2_subscribe_at (Cl * c, guint32 index, guint32 bitrate, const gchar * token,
    HxfrSubscribe2Ack * ack, gchar ** text)
{
  return v2_subscribe_flags (c, index, bitrate, 0, token, ack, text);
}

gint32
v2_subscribe_flags (Cl * c, guint32 index, guint32 bitrate, guint32 flags,
    const gchar * token, HxfrSubscribe2Ack * ack, gchar ** text)
{
  HxfrSubscribe2 s = { 2, 2, HXFR_CODEC_H264, index, bitrate, flags, 0 };
  guint8 buf[HXFR_SUBSCRIBE2_SIZE + HXFR_MAX_TOKEN];
  gsize len;
  Msg m;
  gint32 code = 0;

  s.token_len = token ? strlen (token) : 0;
  len = hxfr_subscribe2_write (&s, buf);
  if (token)
    memcpy (buf + len, token, s.token_len);
  len += s.token_len;
  fail_unless (cl_send (c, HXFR_MSG_SUBSCRIBE2, 7, buf, len, len));
  fail_unless_equals_int (rd_msg (c, &m, 5 * G_USEC_PER_SEC), RD_OK);
  if (m.type == HXFR_MSG_SUBSCRIBE2_ACK) {
    HxfrSubscribe2Ack a;

    fail_unless (hxfr_subscribe2_ack_parse (m.payload, m.size, &a, NULL));
    fail_unless_equals_int (a.scanout_id, index);
    if (ack)
      *ack = a;
  } else {
    HxfrErrorMsg e;

    fail_unless (m.type == HXFR_MSG_ERROR, "answer to SUBSCRIBE2: 0x%02x",
        m.type);
    fail_unless (hxfr_error_parse (m.payload, m.size, &e, NULL));
    code = e.code;
    fail_unless (code != 0);
    if (text)
      *text = g_strdup (e.message);
  }
  msg_clear (&m);
  return code;
}

/* RD_OK with a frame; RD_EOF also after a SCANOUT_END (*end_reason set,
 * else 0) or an ERROR (-code in *end_reason). */
Rd
v2_frame (Cl * c, Frame * f, gint64 timeout_us, gint32 * end_reason)
{
  Msg m;
  Rd r = rd_msg (c, &m, timeout_us);

  memset (f, 0, sizeof (*f));
  if (end_reason)
    *end_reason = 0;
  if (r != RD_OK) {
    msg_clear (&m);
    return r;
  }
  if (m.type == HXFR_MSG_SCANOUT_END) {
    HxfrScanoutEnd e;

    fail_unless (hxfr_scanout_end_parse (m.payload, m.size, &e, NULL));
    if (end_reason)
      *end_reason = e.reason;
    msg_clear (&m);
    return RD_EOF;
  }
  if (m.type == HXFR_MSG_ERROR) {
    HxfrErrorMsg e;

    fail_unless (hxfr_error_parse (m.payload, m.size, &e, NULL));
    if (end_reason)
      *end_reason = e.code;
    msg_clear (&m);
    return RD_EOF;
  }
  fail_unless (m.type == HXFR_MSG_SCANOUT_FRAME, "v2 subscriber got 0x%02x",
      m.type);
  {
    HxfrScanoutFrame sf;

    fail_unless (m.size > HXFR_SCANOUT_FRAME_SIZE);
    fail_unless (hxfr_scanout_frame_parse (m.payload,
            HXFR_SCANOUT_FRAME_SIZE, &sf, NULL));
    f->flags = sf.frame_flags;
    f->keyframe = (sf.frame_flags & HXFR_SCANOUT_FRAME_KEYFRAME) != 0;
    f->width = sf.width;
    f->height = sf.height;
    f->seq = sf.seq;
    f->pts = sf.pts;
    f->capture_time = sf.capture_time;
  }
  f->session_id = m.session_id;
  f->au = g_bytes_new (m.payload + HXFR_SCANOUT_FRAME_SIZE,
      m.size - HXFR_SCANOUT_FRAME_SIZE);
  f->t_arrival = g_get_monotonic_time ();
  msg_clear (&m);
  return RD_OK;
}

/* ------------------------------------------------------------------ */
/* H.264 access units                                                   */


/* The NAL units of an Annex B access unit; fails unless it starts with a
 * start code. */
GArray *
au_nals (GBytes * au)
{
  gsize len;
  const guint8 *d = g_bytes_get_data (au, &len);
  GArray *nals = g_array_new (FALSE, TRUE, sizeof (Nal));
  gsize i = 0;
  Nal *cur = NULL;

  fail_unless (len >= 4 && d[0] == 0 && d[1] == 0 && (d[2] == 1 || (d[2] == 0
              && d[3] == 1)), "access unit without a leading start code");
  while (i + 3 <= len) {
    if (d[i] == 0 && d[i + 1] == 0 && d[i + 2] == 1) {
      gsize sc = (i > 0 && d[i - 1] == 0) ? 4 : 3;
      Nal n = { 0, };

      if (cur)
        cur->size = (i - (sc - 3)) - (cur->data - d);
      n.start_code = sc;
      n.data = d + i + 3;
      n.type = i + 3 < len ? (d[i + 3] & 0x1f) : 0;
      g_array_append_val (nals, n);
      cur = &g_array_index (nals, Nal, nals->len - 1);
      i += 3;
    } else {
      i++;
    }
  }
  if (cur)
    cur->size = len - (cur->data - d);
  return nals;
}

gboolean
au_has_idr (GBytes * au)
{
  GArray *n = au_nals (au);
  gboolean idr = FALSE;
  guint i;

  for (i = 0; i < n->len; i++)
    idr |= g_array_index (n, Nal, i).type == 5;
  g_array_unref (n);
  return idr;
}

/* is_keyframe exactly on IDR access units; SPS then PPS (4-byte start
 * codes) before the first IDR slice. */
void
check_au (const Frame * f)
{
  GArray *n = au_nals (f->au);
  gint sps = -1, pps = -1, idr = -1, slice = -1;
  guint i;

  for (i = 0; i < n->len; i++) {
    const Nal *x = &g_array_index (n, Nal, i);

    if (x->type == 7 && sps < 0)
      sps = i;
    if (x->type == 8 && pps < 0)
      pps = i;
    if (x->type == 5 && idr < 0)
      idr = i;
    if ((x->type == 1 || x->type == 5) && slice < 0)
      slice = i;
  }
  fail_unless (slice >= 0, "an access unit without a slice");
  fail_unless (f->keyframe == (idr >= 0), "is_keyframe=%d on an access unit "
      "%s an IDR slice", f->keyframe, idr >= 0 ? "with" : "without");
  if (idr >= 0) {
    fail_unless (sps >= 0 && pps > sps && idr > pps,
        "IDR without SPS then PPS before it (sps %d pps %d idr %d)", sps, pps,
        idr);
    fail_unless_equals_int (g_array_index (n, Nal, sps).start_code, 4);
    fail_unless_equals_int (g_array_index (n, Nal, pps).start_code, 4);
  }
  g_array_unref (n);
}


/* Exp-Golomb reader over an RBSP (emulation prevention removed). */
typedef struct
{
  GByteArray *rbsp;
  gsize bit;
} Bits;

static guint
bits_u (Bits * b, guint n)
{
  guint v = 0;

  while (n--) {
    gsize byte = b->bit / 8;

    fail_unless (byte < b->rbsp->len, "SPS too short");
    v = (v << 1) | ((b->rbsp->data[byte] >> (7 - b->bit % 8)) & 1);
    b->bit++;
  }
  return v;
}

static guint
bits_ue (Bits * b)
{
  guint zeros = 0;

  while (bits_u (b, 1) == 0)
    fail_unless (++zeros < 32);
  return (1u << zeros) - 1 + bits_u (b, zeros);
}

static gint
bits_se (Bits * b)
{
  guint k = bits_ue (b);

  return (k & 1) ? (gint) ((k + 1) / 2) : -(gint) (k / 2);
}

/* The picture size an access unit's SPS says (FALSE: no SPS). */
gboolean
au_sps_size (GBytes * au, guint * width, guint * height)
{
  GArray *n = au_nals (au);
  const Nal *sps = NULL;
  guint i;
  Bits b = { g_byte_array_new (), 8 };
  guint profile, w_mbs, h_units, fmo, crop_l = 0, crop_r = 0, crop_t = 0,
      crop_b = 0, chroma = 1;

  for (i = 0; i < n->len && !sps; i++)
    if (g_array_index (n, Nal, i).type == 7)
      sps = &g_array_index (n, Nal, i);
  if (!sps) {
    g_array_unref (n);
    g_byte_array_unref (b.rbsp);
    return FALSE;
  }
  for (i = 0; i < sps->size; i++) {
    if (i >= 2 && sps->data[i] == 3 && sps->data[i - 1] == 0
        && sps->data[i - 2] == 0)
      continue;
    g_byte_array_append (b.rbsp, sps->data + i, 1);
  }
  profile = bits_u (&b, 8);
  bits_u (&b, 16);              /* constraints, level */
  bits_ue (&b);                 /* sps id */
  if (profile == 100 || profile == 110 || profile == 122 || profile == 244
      || profile == 44 || profile == 83 || profile == 86 || profile == 118
      || profile == 128) {
    chroma = bits_ue (&b);
    if (chroma == 3)
      bits_u (&b, 1);
    bits_ue (&b);
    bits_ue (&b);
    bits_u (&b, 1);
    fail_if (bits_u (&b, 1), "SPS with scaling matrices: not parsed here");
  }
  bits_ue (&b);                 /* log2_max_frame_num - 4 */
  switch (bits_ue (&b)) {
    case 0:
      bits_ue (&b);
      break;
    case 1:{
      guint cycle;

      bits_u (&b, 1);
      bits_se (&b);
      bits_se (&b);
      cycle = bits_ue (&b);
      while (cycle--)
        bits_se (&b);
      break;
    }
    default:
      break;
  }
  bits_ue (&b);                 /* max_num_ref_frames */
  bits_u (&b, 1);
  w_mbs = bits_ue (&b) + 1;
  h_units = bits_ue (&b) + 1;
  fmo = bits_u (&b, 1);
  if (!fmo)
    bits_u (&b, 1);
  bits_u (&b, 1);
  if (bits_u (&b, 1)) {
    crop_l = bits_ue (&b);
    crop_r = bits_ue (&b);
    crop_t = bits_ue (&b);
    crop_b = bits_ue (&b);
  }
  fail_unless (chroma == 1, "4:2:0 expected");
  *width = w_mbs * 16 - 2 * (crop_l + crop_r);
  *height = (2 - fmo) * h_units * 16 - 2 * (2 - fmo) * (crop_t + crop_b);
  g_array_unref (n);
  g_byte_array_unref (b.rbsp);
  return TRUE;
}

/* ------------------------------------------------------------------ */
/* Decoding and the pattern                                             */

/* Decodes @aus (GBytes*, starting with an IDR) to I420 samples. */
GPtrArray *
decode_aus (GPtrArray * aus)
{
  GstElement *p = gst_parse_launch ("appsrc name=src format=time "
      "caps=video/x-h264,stream-format=byte-stream,alignment=au ! h264parse "
      "! avdec_h264 ! videoconvert ! video/x-raw,format=I420 ! appsink "
      "name=sink sync=false", NULL);
  GstElement *src, *sink;
  GPtrArray *out = g_ptr_array_new_with_free_func ((GDestroyNotify)
      gst_sample_unref);
  GstSample *s;
  guint i;

  fail_unless (p != NULL, "h264parse/avdec_h264 missing");
  src = gst_bin_get_by_name (GST_BIN (p), "src");
  sink = gst_bin_get_by_name (GST_BIN (p), "sink");
  /* all frames queued until EOS: unlimited */
  g_object_set (sink, "max-buffers", 0, NULL);
  fail_unless (gst_element_set_state (p, GST_STATE_PLAYING) !=
      GST_STATE_CHANGE_FAILURE);
  for (i = 0; i < aus->len; i++) {
    GBytes *au = g_ptr_array_index (aus, i);
    GstBuffer *b = gst_buffer_new_wrapped_bytes (au);

    GST_BUFFER_PTS (b) = i * GST_SECOND / 60;
    fail_unless_equals_int (gst_app_src_push_buffer (GST_APP_SRC (src), b),
        GST_FLOW_OK);
  }
  gst_app_src_end_of_stream (GST_APP_SRC (src));
  while ((s = gst_app_sink_try_pull_sample (GST_APP_SINK (sink),
              20 * GST_SECOND)))
    g_ptr_array_add (out, s);
  fail_unless (gst_app_sink_is_eos (GST_APP_SINK (sink)), "decoder stuck");
  gst_element_set_state (p, GST_STATE_NULL);
  gst_object_unref (src);
  gst_object_unref (sink);
  gst_object_unref (p);
  return out;
}

/* Pattern frame @f at @w x @h, converted to I420 in @colorimetry: the
 * decoded stream's, which says how the bridge converted it (cached). */
static GstSample *
pattern_sample (guint f, guint w, guint h, const gchar * colorimetry)
{
  static GHashTable *cache;
  gchar *key = g_strdup_printf ("%u:%ux%u:%s", f & 255, w, h, colorimetry);
  GstSample *s;

  if (!cache)
    cache = g_hash_table_new_full (g_str_hash, g_str_equal, g_free,
        (GDestroyNotify) gst_sample_unref);
  if (!(s = g_hash_table_lookup (cache, key))) {
    GstVideoInfo info;
    GstBuffer *buf;
    GstMapInfo map;
    GstCaps *caps, *to;
    GstSample *bgra;
    GError *err = NULL;

    gst_video_info_set_format (&info, GST_VIDEO_FORMAT_BGRA, w, h);
    buf = gst_buffer_new_allocate (NULL, info.size, NULL);
    gst_buffer_map (buf, &map, GST_MAP_WRITE);
    helix_test_pattern_fill (map.data, w, h, f & 255);
    gst_buffer_unmap (buf, &map);
    caps = gst_video_info_to_caps (&info);
    bgra = gst_sample_new (buf, caps, NULL, NULL);
    to = gst_caps_new_simple ("video/x-raw", "format", G_TYPE_STRING, "I420",
        "width", G_TYPE_INT, w, "height", G_TYPE_INT, h, "colorimetry",
        G_TYPE_STRING, colorimetry, NULL);
    s = gst_video_convert_sample (bgra, to, 10 * GST_SECOND, &err);
    fail_unless (s != NULL, "convert: %s", err ? err->message : "");
    gst_caps_unref (to);
    gst_caps_unref (caps);
    gst_buffer_unref (buf);
    gst_sample_unref (bgra);
    g_hash_table_insert (cache, key, s);
    key = NULL;
  }
  g_free (key);
  return s;
}

guint
best_pattern (GstSample * s, gdouble * mse)
{
  GstVideoInfo info;
  guint f, best = 0;
  gchar *colorimetry;

  fail_unless (gst_video_info_from_caps (&info, gst_sample_get_caps (s)));
  colorimetry = gst_video_colorimetry_to_string (&info.colorimetry);
  fail_unless (colorimetry != NULL, "decoded frames of no colorimetry");
  *mse = G_MAXDOUBLE;
  for (f = 0; f < 256; f++) {
    gdouble m = video_compare_luma_mse (s, pattern_sample (f, info.width,
            info.height, colorimetry));

    if (m < *mse) {
      *mse = m;
      best = f;
    }
  }
  g_free (colorimetry);
  return best;
}

/* Every decoded frame is the pattern of scanout @k: frame f + 64 k with
 * f in [0, @max_flip] (wrapped at 256), PSNR >= 30 dB. */
void
check_pattern (GPtrArray * decoded, guint k, guint64 max_flip)
{
  guint i;

  fail_unless (decoded->len > 0, "nothing decoded");
  for (i = 0; i < decoded->len; i++) {
    gdouble mse;
    guint f = best_pattern (g_ptr_array_index (decoded, i), &mse);
    guint flip = (f + 256 - (PATTERN_STRIDE * k) % 256) % 256;

    fail_unless (mse <= MAX_MSE, "decoded frame %u: best pattern %u at MSE "
        "%.1f (PSNR < 30 dB)", i, f, mse);
    fail_unless (max_flip >= 255 || flip <= max_flip, "decoded frame %u is "
        "pattern %u = flip %u of scanout %u, but only %" G_GUINT64_FORMAT
        " flips were shown (another scanout's picture?)", i, f, flip, k,
        max_flip);
  }
}

static gchar *
flips_key (guint k)
{
  return g_strdup_printf ("flips%u", k);
}

guint64
flips (Env * e, guint k)
{
  gchar *key = flips_key (k);
  guint64 v = standin_runner_stat (e->vmm, key);

  g_free (key);
  return v;
}

/* ------------------------------------------------------------------ */
/* A subscriber reading on a thread                                     */


static gpointer
reader_thread (gpointer data)
{
  Reader *r = data;

  for (;;) {
    Frame f;
    Rd rd;
    gboolean paused;

    g_mutex_lock (&r->lock);
    paused = r->paused;
    if (r->stop) {
      g_mutex_unlock (&r->lock);
      break;
    }
    g_mutex_unlock (&r->lock);
    if (paused) {
      /* not a timing of the test: only how often a pause is looked at */
      g_usleep (5000);
      continue;
    }
    rd = r->v2 ? v2_frame (r->cl, &f, 200 * 1000, &r->end_reason) :
        deployed_frame (r->cl, &f, 200 * 1000);
    if (rd == RD_TIMEOUT)
      continue;
    if (rd == RD_EOF) {
      g_mutex_lock (&r->lock);
      r->eof = TRUE;
      g_mutex_unlock (&r->lock);
      break;
    }
    check_au (&f);
    g_clear_pointer (&f.au, g_bytes_unref);
    g_mutex_lock (&r->lock);
    g_array_append_val (r->frames, f);
    g_mutex_unlock (&r->lock);
  }
  return NULL;
}

/* @cl subscribed already */
Reader *
reader_start (Cl * cl, gboolean v2)
{
  Reader *r = g_new0 (Reader, 1);

  r->cl = cl;
  r->v2 = v2;
  g_mutex_init (&r->lock);
  r->frames = g_array_new (FALSE, TRUE, sizeof (Frame));
  r->thread = g_thread_new ("reader", reader_thread, r);
  return r;
}

guint
reader_count (Reader * r)
{
  guint n;

  g_mutex_lock (&r->lock);
  n = r->frames->len;
  g_mutex_unlock (&r->lock);
  return n;
}

void
reader_pause (Reader * r, gboolean paused)
{
  g_mutex_lock (&r->lock);
  r->paused = paused;
  g_mutex_unlock (&r->lock);
}

/* Waits (bounded) until @r has @n frames. */
gboolean
reader_wait (Reader * r, guint n, guint timeout_s)
{
  gint64 deadline = g_get_monotonic_time () + timeout_s * G_USEC_PER_SEC;

  while (reader_count (r) < n && g_get_monotonic_time () < deadline)
    g_usleep (10000);
  return reader_count (r) >= n;
}

void
reader_stop (Reader * r)
{
  g_mutex_lock (&r->lock);
  r->stop = TRUE;
  g_mutex_unlock (&r->lock);
  g_thread_join (r->thread);
  cl_close (r->cl);
  g_array_unref (r->frames);
  g_mutex_clear (&r->lock);
  g_free (r);
}

Reader *
streaming_reader (Env * e, gboolean v2)
{
  Cl *c = cl_connect (e);
  Reader *r;

  if (v2) {
    fail_unless_equals_int (v2_subscribe (c, 1, NULL, NULL, NULL), 0);
  } else {
    fail_unless_equals_int (deployed_subscribe (c, 1), 1);
  }
  r = reader_start (c, v2);
  fail_unless (reader_wait (r, 20, 20), "a subscriber of scanout 1 gets "
      "nothing");
  return r;
}

/* Frames of @readers counted over @seconds (a measuring window). */
void
count_window (Reader ** readers, guint n, gdouble seconds, guint * counts)
{
  guint before[8], i;

  for (i = 0; i < n; i++)
    before[i] = reader_count (readers[i]);
  g_usleep ((gulong) (seconds * G_USEC_PER_SEC));
  for (i = 0; i < n; i++)
    counts[i] = reader_count (readers[i]) - before[i];
}

/* ------------------------------------------------------------------ */
