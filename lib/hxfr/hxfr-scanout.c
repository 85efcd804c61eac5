/* HXFR scanout subscription codec. See hxfr-scanout.h and docs/protocol.md
 * section 11.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "hxfr-scanout.h"
#include "hxfr-wire.h"

#include <string.h>

/* Wire layouts: little-endian, packed, frozen by the asserts below. */

typedef struct HXFR_PACKED
{
  guint32 scanout_id;
  guint32 success;
} WireSubscribeResp;

typedef struct HXFR_PACKED
{
  guint32 scanout_id;
  guint32 width;
  guint32 height;
  guint32 refresh;
} WireEnableScanout;

typedef struct HXFR_PACKED
{
  guint32 scanout_id;
  guint32 success;
  gchar connector[HXFR_CONNECTOR_NAME_SIZE];
} WireScanoutResp;

/* the deployed pushed frame: v1 FRAME_RESPONSE with exactly one entry */
typedef struct HXFR_PACKED
{
  gint64 pts;
  gint64 dts;
  guint8 is_keyframe;
  guint8 reserved[3];
  guint32 nal_count;
  guint32 nal_size;
} WirePushedFrame;

typedef struct HXFR_PACKED
{
  guint16 min_version;
  guint16 max_version;
  guint32 codec;
  guint32 scanout_id;
  guint32 bitrate;
  guint32 flags;
  guint16 token_len;
  guint16 max_width;
  guint16 max_height;
  guint8 reserved[6];
} WireSubscribe2;

typedef struct HXFR_PACKED
{
  guint16 version;
  guint16 reserved0;
  guint32 codec;
  guint32 scanout_id;
  guint32 width;
  guint32 height;
  gchar encoder[HXFR_ENCODER_NAME_SIZE];
  guint32 flags;
} WireSubscribe2Ack;

typedef struct HXFR_PACKED
{
  guint32 width;
  guint32 height;
  guint32 hot_x;
  guint32 hot_y;
} WireCursorImage;

typedef struct HXFR_PACKED
{
  gint32 x;
  gint32 y;
  guint32 flags;
  guint32 reserved;
  guint64 time;
} WireCursorPosition;

typedef struct HXFR_PACKED
{
  guint32 seq;
  guint8 frame_flags;
  guint8 reserved0[3];
  guint32 width;
  guint32 height;
  gint64 pts;
  gint64 duration;
  guint64 capture_time;
  guint32 encode_us;
  guint32 reserved1;
} WireScanoutFrame;

typedef struct HXFR_PACKED
{
  guint32 reason;
  guint32 reserved;
} WireScanoutEnd;

G_STATIC_ASSERT (sizeof (WireSubscribeResp) == HXFR_SUBSCRIBE_RESP_SIZE);
G_STATIC_ASSERT (sizeof (WireEnableScanout) == HXFR_ENABLE_SCANOUT_SIZE);
G_STATIC_ASSERT (sizeof (WireScanoutResp) == HXFR_SCANOUT_RESP_SIZE);
G_STATIC_ASSERT (sizeof (WirePushedFrame) == HXFR_PUSHED_FRAME_SIZE);
G_STATIC_ASSERT (sizeof (WireSubscribe2) == HXFR_SUBSCRIBE2_SIZE);
G_STATIC_ASSERT (sizeof (WireSubscribe2Ack) == HXFR_SUBSCRIBE2_ACK_SIZE);
G_STATIC_ASSERT (sizeof (WireScanoutFrame) == HXFR_SCANOUT_FRAME_SIZE);
G_STATIC_ASSERT (sizeof (WireScanoutEnd) == HXFR_SCANOUT_END_SIZE);
G_STATIC_ASSERT (sizeof (WireCursorImage) == HXFR_CURSOR_IMAGE_SIZE);
G_STATIC_ASSERT (sizeof (WireCursorPosition) == HXFR_CURSOR_POSITION_SIZE);

#define check_size hxfr_wire_check_len

static gsize
write_u32 (guint32 v, guint8 * out)
{
  v = LE32 (v);
  memcpy (out, &v, 4);
  return 4;
}

static guint32
read_u32 (const guint8 * in)
{
  guint32 v;

  memcpy (&v, in, 4);
  return FROM_LE32 (v);
}

gsize
hxfr_subscribe_write (guint32 scanout_id, guint8 * out)
{
  return write_u32 (scanout_id, out);
}

gboolean
hxfr_subscribe_parse (const guint8 * in, gsize len, guint32 * scanout_id,
    GError ** error)
{
  if (!check_size ("SUBSCRIBE", len, HXFR_SUBSCRIBE_SIZE, error))
    return FALSE;
  *scanout_id = read_u32 (in);
  return TRUE;
}

gsize
hxfr_subscribe_resp_write (guint32 scanout_id, gboolean success, guint8 * out)
{
  WireSubscribeResp w;

  w.scanout_id = LE32 (scanout_id);
  w.success = LE32 (success ? 1 : 0);
  memcpy (out, &w, sizeof (w));
  return sizeof (w);
}

gboolean
hxfr_subscribe_resp_parse (const guint8 * in, gsize len, guint32 * scanout_id,
    guint32 * success, GError ** error)
{
  WireSubscribeResp w;

  if (!check_size ("SUBSCRIBE_RESP", len, sizeof (w), error))
    return FALSE;
  memcpy (&w, in, sizeof (w));
  *scanout_id = FROM_LE32 (w.scanout_id);
  *success = FROM_LE32 (w.success);
  return TRUE;
}

gsize
hxfr_enable_scanout_write (const HxfrEnableScanout * e, guint8 * out)
{
  WireEnableScanout w;

  w.scanout_id = LE32 (e->scanout_id);
  w.width = LE32 (e->width);
  w.height = LE32 (e->height);
  w.refresh = LE32 (e->refresh);
  memcpy (out, &w, sizeof (w));
  return sizeof (w);
}

gboolean
hxfr_enable_scanout_parse (const guint8 * in, gsize len,
    HxfrEnableScanout * e, GError ** error)
{
  WireEnableScanout w;

  if (!check_size ("ENABLE_SCANOUT", len, sizeof (w), error))
    return FALSE;
  memcpy (&w, in, sizeof (w));
  e->scanout_id = FROM_LE32 (w.scanout_id);
  e->width = FROM_LE32 (w.width);
  e->height = FROM_LE32 (w.height);
  e->refresh = FROM_LE32 (w.refresh);
  return TRUE;
}

gsize
hxfr_disable_scanout_write (guint32 scanout_id, guint8 * out)
{
  return write_u32 (scanout_id, out);
}

gboolean
hxfr_disable_scanout_parse (const guint8 * in, gsize len,
    guint32 * scanout_id, GError ** error)
{
  if (!check_size ("DISABLE_SCANOUT", len, HXFR_DISABLE_SCANOUT_SIZE, error))
    return FALSE;
  *scanout_id = read_u32 (in);
  return TRUE;
}

gsize
hxfr_scanout_resp_write (guint32 scanout_id, gboolean success, guint8 * out)
{
  WireScanoutResp w;

  /* zeroed, as deployed: the name's tail is NULs */
  memset (&w, 0, sizeof (w));
  w.scanout_id = LE32 (scanout_id);
  w.success = LE32 (success ? 1 : 0);
  g_snprintf (w.connector, sizeof (w.connector), "Virtual-%u", scanout_id + 1);
  memcpy (out, &w, sizeof (w));
  return sizeof (w);
}

gboolean
hxfr_scanout_resp_parse (const guint8 * in, gsize len, HxfrScanoutResp * r,
    GError ** error)
{
  WireScanoutResp w;

  if (!check_size ("SCANOUT_RESP", len, sizeof (w), error))
    return FALSE;
  memcpy (&w, in, sizeof (w));
  r->scanout_id = FROM_LE32 (w.scanout_id);
  r->success = FROM_LE32 (w.success);
  memcpy (r->connector, w.connector, sizeof (r->connector));
  r->connector[sizeof (r->connector) - 1] = '\0';
  return TRUE;
}

gsize
hxfr_pushed_frame_write (gint64 pts, gboolean keyframe, gsize au_size,
    guint8 * out)
{
  WirePushedFrame w;

  g_return_val_if_fail (au_size <= G_MAXUINT32 - sizeof (w), 0);
  /* the reserved bytes are written as 0 (the deployed host leaves them
   * uninitialised; its clients ignore them) */
  memset (&w, 0, sizeof (w));
  w.pts = LE64 (pts);
  w.dts = w.pts;
  w.is_keyframe = keyframe ? 1 : 0;
  w.nal_count = LE32 (1);
  w.nal_size = LE32 ((guint32) au_size);
  memcpy (out, &w, sizeof (w));
  return sizeof (w);
}

gsize
hxfr_subscribe2_write (const HxfrSubscribe2 * s, guint8 * out)
{
  WireSubscribe2 w;

  memset (&w, 0, sizeof (w));
  w.min_version = LE16 (s->min_version);
  w.max_version = LE16 (s->max_version);
  w.codec = LE32 (s->codec);
  w.scanout_id = LE32 (s->scanout_id);
  w.bitrate = LE32 (s->bitrate);
  w.flags = LE32 (s->flags);
  w.token_len = LE16 (s->token_len);
  w.max_width = LE16 (s->max_width);
  w.max_height = LE16 (s->max_height);
  memcpy (out, &w, sizeof (w));
  return sizeof (w);
}

/* @len: the payload's fixed part and token, as payload_size gives it */
gboolean
hxfr_subscribe2_parse (const guint8 * in, gsize len, HxfrSubscribe2 * s,
    GError ** error)
{
  WireSubscribe2 w;

  if (len < sizeof (w)) {
    g_set_error (error, HXFR_ERROR, HXFR_ERR_INVALID,
        "SUBSCRIBE2 payload is %" G_GSIZE_FORMAT " bytes, at least %u needed",
        len, HXFR_SUBSCRIBE2_SIZE);
    return FALSE;
  }
  memcpy (&w, in, sizeof (w));
  s->min_version = FROM_LE16 (w.min_version);
  s->max_version = FROM_LE16 (w.max_version);
  s->codec = FROM_LE32 (w.codec);
  s->scanout_id = FROM_LE32 (w.scanout_id);
  s->bitrate = FROM_LE32 (w.bitrate);
  s->flags = FROM_LE32 (w.flags);
  s->token_len = FROM_LE16 (w.token_len);
  s->max_width = FROM_LE16 (w.max_width);
  s->max_height = FROM_LE16 (w.max_height);
  if (s->token_len > HXFR_MAX_TOKEN) {
    g_set_error (error, HXFR_ERROR, HXFR_ERR_INVALID,
        "SUBSCRIBE2 token of %u bytes (at most %u)", s->token_len,
        HXFR_MAX_TOKEN);
    return FALSE;
  }
  if (len != sizeof (w) + s->token_len)
    return check_size ("SUBSCRIBE2", len, sizeof (w) + s->token_len, error);
  if (s->min_version > s->max_version) {
    g_set_error (error, HXFR_ERROR, HXFR_ERR_INVALID,
        "SUBSCRIBE2 versions %u..%u", s->min_version, s->max_version);
    return FALSE;
  }
  return TRUE;
}

gsize
hxfr_subscribe2_ack_write (const HxfrSubscribe2Ack * a, guint8 * out)
{
  WireSubscribe2Ack w;

  memset (&w, 0, sizeof (w));
  w.version = LE16 (a->version);
  w.codec = LE32 (a->codec);
  w.scanout_id = LE32 (a->scanout_id);
  w.width = LE32 (a->width);
  w.height = LE32 (a->height);
  g_strlcpy (w.encoder, a->encoder, sizeof (w.encoder));
  w.flags = LE32 (a->flags);
  memcpy (out, &w, sizeof (w));
  return sizeof (w);
}

gboolean
hxfr_subscribe2_ack_parse (const guint8 * in, gsize len,
    HxfrSubscribe2Ack * a, GError ** error)
{
  WireSubscribe2Ack w;

  if (!check_size ("SUBSCRIBE2_ACK", len, sizeof (w), error))
    return FALSE;
  memcpy (&w, in, sizeof (w));
  a->version = FROM_LE16 (w.version);
  a->codec = FROM_LE32 (w.codec);
  a->scanout_id = FROM_LE32 (w.scanout_id);
  a->width = FROM_LE32 (w.width);
  a->height = FROM_LE32 (w.height);
  memcpy (a->encoder, w.encoder, sizeof (a->encoder));
  a->encoder[sizeof (a->encoder) - 1] = '\0';
  a->flags = FROM_LE32 (w.flags);
  return TRUE;
}

gsize
hxfr_scanout_frame_write (const HxfrScanoutFrame * f, guint8 * out)
{
  WireScanoutFrame w;

  memset (&w, 0, sizeof (w));
  w.seq = LE32 (f->seq);
  w.frame_flags = f->frame_flags;
  w.width = LE32 (f->width);
  w.height = LE32 (f->height);
  w.pts = LE64 (f->pts);
  w.duration = LE64 (f->duration);
  w.capture_time = (guint64) LE64 ((gint64) f->capture_time);
  w.encode_us = LE32 (f->encode_us);
  memcpy (out, &w, sizeof (w));
  return sizeof (w);
}

/* @len: the fixed part only (the access unit is read separately) */
gboolean
hxfr_scanout_frame_parse (const guint8 * in, gsize len, HxfrScanoutFrame * f,
    GError ** error)
{
  WireScanoutFrame w;

  if (!check_size ("SCANOUT_FRAME", len, sizeof (w), error))
    return FALSE;
  memcpy (&w, in, sizeof (w));
  f->seq = FROM_LE32 (w.seq);
  f->frame_flags = w.frame_flags;
  f->width = FROM_LE32 (w.width);
  f->height = FROM_LE32 (w.height);
  f->pts = FROM_LE64 (w.pts);
  f->duration = FROM_LE64 (w.duration);
  f->capture_time = (guint64) FROM_LE64 ((gint64) w.capture_time);
  f->encode_us = FROM_LE32 (w.encode_us);
  return TRUE;
}

gsize
hxfr_scanout_end_write (guint32 reason, const gchar * text, guint8 * out)
{
  WireScanoutEnd w = { 0, };
  gsize n = text ? MIN (strlen (text), HXFR_ERROR_TEXT_SIZE) : 0;

  w.reason = LE32 (reason);
  memcpy (out, &w, sizeof (w));
  if (n)
    memcpy (out + sizeof (w), text, n);
  return sizeof (w) + n;
}

/* @len: the whole payload, text included */
gboolean
hxfr_scanout_end_parse (const guint8 * in, gsize len, HxfrScanoutEnd * e,
    GError ** error)
{
  WireScanoutEnd w;
  gsize n;

  if (len < sizeof (w) || len > sizeof (w) + HXFR_ERROR_TEXT_SIZE) {
    g_set_error (error, HXFR_ERROR, HXFR_ERR_INVALID,
        "SCANOUT_END payload is %" G_GSIZE_FORMAT " bytes (%u..%u)", len,
        HXFR_SCANOUT_END_SIZE, HXFR_SCANOUT_END_SIZE + HXFR_ERROR_TEXT_SIZE);
    return FALSE;
  }
  memcpy (&w, in, sizeof (w));
  e->reason = FROM_LE32 (w.reason);
  n = len - sizeof (w);
  memcpy (e->text, in + sizeof (w), n);
  e->text[n] = '\0';
  return TRUE;
}

const gchar *
hxfr_scanout_end_reason_name (guint32 reason)
{
  switch (reason) {
    case HXFR_SCANOUT_END_DISABLED:
      return "scanout disabled";
    case HXFR_SCANOUT_END_SHUTDOWN:
      return "bridge stopping";
    case HXFR_SCANOUT_END_VMM_GONE:
      return "VM export gone";
    case HXFR_SCANOUT_END_TOO_SLOW:
      return "subscriber too slow";
    case HXFR_SCANOUT_END_ENCODER:
      return "encoder failed";
    default:
      return "unknown reason";
  }
}

gsize
hxfr_cursor_image_write (const HxfrCursorImage * c, guint8 * out)
{
  WireCursorImage w;

  w.width = LE32 (c->width);
  w.height = LE32 (c->height);
  w.hot_x = LE32 (c->hot_x);
  w.hot_y = LE32 (c->hot_y);
  memcpy (out, &w, sizeof (w));
  return sizeof (w);
}

gboolean
hxfr_cursor_image_parse (const guint8 * in, gsize len, HxfrCursorImage * c,
    GError ** error)
{
  WireCursorImage w;

  if (len < sizeof (w))
    return check_size ("CURSOR_IMAGE", len, sizeof (w), error);
  memcpy (&w, in, sizeof (w));
  c->width = FROM_LE32 (w.width);
  c->height = FROM_LE32 (w.height);
  c->hot_x = FROM_LE32 (w.hot_x);
  c->hot_y = FROM_LE32 (w.hot_y);
  if (c->width == 0 || c->height == 0 || c->width > HXFR_CURSOR_MAX_SIZE
      || c->height > HXFR_CURSOR_MAX_SIZE || c->hot_x >= c->width
      || c->hot_y >= c->height) {
    g_set_error (error, HXFR_ERROR, HXFR_ERR_INVALID,
        "CURSOR_IMAGE %ux%u with its hotspot at %u,%u (1..%u, inside)",
        c->width, c->height, c->hot_x, c->hot_y, HXFR_CURSOR_MAX_SIZE);
    return FALSE;
  }
  return check_size ("CURSOR_IMAGE", len, sizeof (w) +
      (gsize) c->width * c->height * 4, error);
}

gsize
hxfr_cursor_position_write (const HxfrCursorPosition * p, guint8 * out)
{
  WireCursorPosition w;

  memset (&w, 0, sizeof (w));
  w.x = LE32 (p->x);
  w.y = LE32 (p->y);
  w.flags = LE32 (p->flags);
  w.time = LE64 (p->time);
  memcpy (out, &w, sizeof (w));
  return sizeof (w);
}

gboolean
hxfr_cursor_position_parse (const guint8 * in, gsize len,
    HxfrCursorPosition * p, GError ** error)
{
  WireCursorPosition w;

  if (!check_size ("CURSOR_POSITION", len, sizeof (w), error))
    return FALSE;
  memcpy (&w, in, sizeof (w));
  p->x = (gint32) FROM_LE32 (w.x);
  p->y = (gint32) FROM_LE32 (w.y);
  p->flags = FROM_LE32 (w.flags);
  p->time = FROM_LE64 (w.time);
  return TRUE;
}
