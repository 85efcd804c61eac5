/* HXFR wire protocol codec. See hxfr-protocol.h and docs/protocol.md.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "hxfr-protocol.h"
#include "hxfr-scanout.h"
#include "hxfr-wire.h"

#include <stddef.h>
#include <string.h>

/* Wire layouts. All fields little-endian, no padding. Never read or written
 * outside this file: the static asserts below freeze them. */

typedef struct HXFR_PACKED
{
  guint32 magic;
  guint8 msg_type;
  guint8 flags;
  guint16 session_id;
  guint32 payload_size;
} WireHeader;

typedef struct HXFR_PACKED
{
  guint32 resource_id;
  guint32 width;
  guint32 height;
  guint32 format;
  guint32 stride;
  gint64 pts;
  gint64 duration;
  guint8 force_keyframe;
  guint8 reserved[7];
} WireFrameRequest;

typedef struct HXFR_PACKED
{
  gint64 pts;
  gint64 dts;
  guint8 is_keyframe;
  guint8 reserved[3];
  guint32 nal_count;
} WireFrameResponse;

typedef struct HXFR_PACKED
{
  guint32 width;
  guint32 height;
  guint32 bitrate;
  guint32 framerate_num;
  guint32 framerate_den;
  guint8 profile;
  guint8 level;
  guint8 realtime;
  guint8 reserved[5];
} WireConfigReq;

typedef struct HXFR_PACKED
{
  gint32 error_code;
  gchar message[HXFR_ERROR_TEXT_SIZE];
} WireError;

typedef struct HXFR_PACKED
{
  guint16 min_version;
  guint16 max_version;
  guint32 codec;
  guint32 max_in_flight;
  guint32 bitrate;
  guint32 keyframe_interval;
  guint32 fps_n;
  guint32 fps_d;
  guint32 guest_flags;
  guint16 token_len;
  guint16 reserved0;
  guint32 reserved1;
} WireHello;

typedef struct HXFR_PACKED
{
  guint16 version;
  guint16 reserved;
  guint32 codec;
  guint32 max_in_flight;
  guint32 max_width;
  guint32 max_height;
  guint32 host_flags;
  gchar encoder[HXFR_ENCODER_NAME_SIZE];
} WireHelloAck;

typedef struct HXFR_PACKED
{
  guint32 seq;
  guint32 resource_id;
  guint32 width;
  guint32 height;
  guint32 format;
  guint8 n_planes;
  guint8 frame_flags;
  guint16 reserved;
  guint32 stride[HXFR_MAX_PLANES];
  guint32 offset[HXFR_MAX_PLANES];
  gint64 pts;
  gint64 duration;
} WireFrameRequest2;

typedef struct HXFR_PACKED
{
  guint32 seq;
  guint8 status;
  guint8 frame_flags;
  guint16 reserved;
  gint64 pts;
  gint64 dts;
  gint64 duration;
  gint32 error_code;
  guint32 host_time_us;
} WireFrameResponse2;

typedef struct HXFR_PACKED
{
  guint32 mask;
  guint32 bitrate;
  guint32 keyframe_interval;
  guint32 fps_n;
  guint32 fps_d;
  guint32 reserved;
} WireControl;

G_STATIC_ASSERT (sizeof (WireHeader) == HXFR_HEADER_SIZE);
G_STATIC_ASSERT (offsetof (WireHeader, msg_type) == 4);
G_STATIC_ASSERT (offsetof (WireHeader, session_id) == 6);
G_STATIC_ASSERT (offsetof (WireHeader, payload_size) == 8);
G_STATIC_ASSERT (sizeof (WireFrameRequest) == HXFR_FRAME_REQUEST_SIZE);
G_STATIC_ASSERT (offsetof (WireFrameRequest, stride) == 16);
G_STATIC_ASSERT (offsetof (WireFrameRequest, pts) == 20);
G_STATIC_ASSERT (offsetof (WireFrameRequest, duration) == 28);
G_STATIC_ASSERT (offsetof (WireFrameRequest, force_keyframe) == 36);
G_STATIC_ASSERT (sizeof (WireFrameResponse) == HXFR_FRAME_RESPONSE_SIZE);
G_STATIC_ASSERT (offsetof (WireFrameResponse, is_keyframe) == 16);
G_STATIC_ASSERT (offsetof (WireFrameResponse, nal_count) == 20);
G_STATIC_ASSERT (sizeof (WireConfigReq) == HXFR_CONFIG_REQ_SIZE);
G_STATIC_ASSERT (offsetof (WireConfigReq, profile) == 20);
G_STATIC_ASSERT (sizeof (WireError) == HXFR_ERROR_SIZE);
G_STATIC_ASSERT (sizeof (WireHello) == HXFR_HELLO_SIZE);
G_STATIC_ASSERT (offsetof (WireHello, token_len) == 32);
G_STATIC_ASSERT (sizeof (WireHelloAck) == HXFR_HELLO_ACK_SIZE);
G_STATIC_ASSERT (offsetof (WireHelloAck, encoder) == 24);
G_STATIC_ASSERT (sizeof (WireFrameRequest2) == HXFR_FRAME_REQUEST2_SIZE);
G_STATIC_ASSERT (offsetof (WireFrameRequest2, n_planes) == 20);
G_STATIC_ASSERT (offsetof (WireFrameRequest2, stride) == 24);
G_STATIC_ASSERT (offsetof (WireFrameRequest2, offset) == 40);
G_STATIC_ASSERT (offsetof (WireFrameRequest2, pts) == 56);
G_STATIC_ASSERT (offsetof (WireFrameRequest2, duration) == 64);
G_STATIC_ASSERT (sizeof (WireFrameResponse2) == HXFR_FRAME_RESPONSE2_SIZE);
G_STATIC_ASSERT (offsetof (WireFrameResponse2, pts) == 8);
G_STATIC_ASSERT (offsetof (WireFrameResponse2, error_code) == 32);
G_STATIC_ASSERT (sizeof (WireControl) == HXFR_CONTROL_SIZE);

/* not G_DEFINE_QUARK: gst-indent spaces out its unquoted name, and the
 * quark's string with it */
GQuark
hxfr_error_quark (void)
{
  return g_quark_from_static_string ("hxfr-error-quark");
}

void
hxfr_limits_init_default (HxfrLimits * limits)
{
  limits->max_width = HXFR_DEFAULT_MAX_DIMENSION;
  limits->max_height = HXFR_DEFAULT_MAX_DIMENSION;
  limits->max_access_unit = HXFR_DEFAULT_MAX_ACCESS_UNIT;
  limits->max_nal_count = HXFR_DEFAULT_MAX_NAL_COUNT;
  limits->max_frame_bytes = 0;
}

const gchar *
hxfr_msg_type_name (guint type)
{
  switch (type) {
    case HXFR_MSG_FRAME_REQUEST:
      return "FRAME_REQUEST";
    case HXFR_MSG_FRAME_RESPONSE:
      return "FRAME_RESPONSE";
    case HXFR_MSG_KEYFRAME_REQ:
      return "KEYFRAME_REQ";
    case HXFR_MSG_CONFIG_REQ:
      return "CONFIG_REQ";
    case HXFR_MSG_CONFIG_RESP:
      return "CONFIG_RESP";
    case HXFR_MSG_PING:
      return "PING";
    case HXFR_MSG_PONG:
      return "PONG";
    case HXFR_MSG_HELLO:
      return "HELLO";
    case HXFR_MSG_HELLO_ACK:
      return "HELLO_ACK";
    case HXFR_MSG_FRAME_REQUEST2:
      return "FRAME_REQUEST2";
    case HXFR_MSG_FRAME_RESPONSE2:
      return "FRAME_RESPONSE2";
    case HXFR_MSG_CONTROL:
      return "CONTROL";
    case HXFR_MSG_ENABLE_SCANOUT:
      return "ENABLE_SCANOUT";
    case HXFR_MSG_DISABLE_SCANOUT:
      return "DISABLE_SCANOUT";
    case HXFR_MSG_SCANOUT_RESP:
      return "SCANOUT_RESP";
    case HXFR_MSG_SUBSCRIBE:
      return "SUBSCRIBE";
    case HXFR_MSG_SUBSCRIBE_RESP:
      return "SUBSCRIBE_RESP";
    case HXFR_MSG_SUBSCRIBE2:
      return "SUBSCRIBE2";
    case HXFR_MSG_SUBSCRIBE2_ACK:
      return "SUBSCRIBE2_ACK";
    case HXFR_MSG_SCANOUT_FRAME:
      return "SCANOUT_FRAME";
    case HXFR_MSG_SCANOUT_END:
      return "SCANOUT_END";
    case HXFR_MSG_CURSOR_IMAGE:
      return "CURSOR_IMAGE";
    case HXFR_MSG_CURSOR_POSITION:
      return "CURSOR_POSITION";
    case HXFR_MSG_ERROR:
      return "ERROR";
    default:
      return "unknown";
  }
}

const gchar *
hxfr_error_code_name (gint code)
{
  switch (code) {
    case HXFR_ERR_OK:
      return "ok";
    case HXFR_ERR_INVALID:
      return "invalid message";
    case HXFR_ERR_RESOURCE_NOT_FOUND:
      return "resource not found";
    case HXFR_ERR_NOT_METAL_TEXTURE:
      return "not a Metal texture";
    case HXFR_ERR_NO_IOSURFACE:
      return "no IOSurface";
    case HXFR_ERR_ENCODE_FAILED:
      return "encode failed";
    case HXFR_ERR_NOT_CONFIGURED:
      return "not configured";
    case HXFR_ERR_UNAUTHORIZED:
      return "unauthorized";
    case HXFR_ERR_UNSUPPORTED:
      return "unsupported";
    case HXFR_ERR_LIMIT:
      return "limit exceeded";
    case HXFR_ERR_TOO_MANY_SESSIONS:
      return "too many sessions";
    case HXFR_ERR_TIMEOUT:
      return "timeout";
    case HXFR_ERR_SHUTDOWN:
      return "host shutting down";
    case HXFR_ERR_NO_SCANOUT:
      return "no such scanout";
    case HXFR_ERR_INTERNAL:
      return "internal error";
    default:
      return "unknown error";
  }
}

/* Unaligned little-endian access: wire structs are packed, so fields are
 * copied out rather than dereferenced in place. */

void
hxfr_header_write (guint8 out[HXFR_HEADER_SIZE], const HxfrHeader * h)
{
  WireHeader w;

  w.magic = LE32 (HXFR_MAGIC);
  w.msg_type = h->type;
  w.flags = h->flags;
  w.session_id = LE16 (h->session_id);
  w.payload_size = LE32 (h->payload_size);
  memcpy (out, &w, sizeof (w));
}

gboolean
hxfr_token_equal (const guint8 * a, gsize a_len, const guint8 * b, gsize b_len)
{
  guint8 diff = a_len != b_len;
  gsize i, n = MAX (a_len, b_len);

  /* touch n bytes whatever the contents; the length itself is not secret */
  for (i = 0; i < n; i++)
    diff |= (i < a_len ? a[i] : 0) ^ (i < b_len ? b[i] : 0);
  return diff == 0;
}

gboolean
hxfr_header_parse (const guint8 in[HXFR_HEADER_SIZE], HxfrHeader * h,
    GError ** error)
{
  WireHeader w;
  guint32 magic;

  memcpy (&w, in, sizeof (w));
  magic = FROM_LE32 (w.magic);
  if (magic != HXFR_MAGIC) {
    g_set_error (error, HXFR_ERROR, HXFR_ERR_INVALID,
        "bad magic 0x%08x (expected 0x%08x)", magic, HXFR_MAGIC);
    return FALSE;
  }
  h->type = w.msg_type;
  h->flags = w.flags;
  h->session_id = FROM_LE16 (w.session_id);
  h->payload_size = FROM_LE32 (w.payload_size);
  return TRUE;
}

gboolean
hxfr_msg_fixed_size (guint type, gsize * fixed_size, gboolean * has_tail)
{
  gsize size;
  gboolean tail = FALSE;

  switch (type) {
    case HXFR_MSG_FRAME_REQUEST:
      size = HXFR_FRAME_REQUEST_SIZE;
      tail = TRUE;
      break;
    case HXFR_MSG_FRAME_RESPONSE:
      size = HXFR_FRAME_RESPONSE_SIZE;
      tail = TRUE;
      break;
    case HXFR_MSG_KEYFRAME_REQ:
    case HXFR_MSG_PING:
    case HXFR_MSG_PONG:
      size = 0;
      break;
    case HXFR_MSG_CONFIG_REQ:
      size = HXFR_CONFIG_REQ_SIZE;
      break;
    case HXFR_MSG_CONFIG_RESP:
      /* v1 leaves it unspecified: any short payload, skipped by readers */
      size = 0;
      tail = TRUE;
      break;
    case HXFR_MSG_HELLO:
      size = HXFR_HELLO_SIZE;
      tail = TRUE;
      break;
    case HXFR_MSG_HELLO_ACK:
      size = HXFR_HELLO_ACK_SIZE;
      break;
    case HXFR_MSG_FRAME_REQUEST2:
      size = HXFR_FRAME_REQUEST2_SIZE;
      tail = TRUE;
      break;
    case HXFR_MSG_FRAME_RESPONSE2:
      size = HXFR_FRAME_RESPONSE2_SIZE;
      tail = TRUE;
      break;
    case HXFR_MSG_CONTROL:
      size = HXFR_CONTROL_SIZE;
      break;
    case HXFR_MSG_ERROR:
      size = HXFR_ERROR_SIZE;
      break;
    default:
      return FALSE;
  }
  if (fixed_size)
    *fixed_size = size;
  if (has_tail)
    *has_tail = tail;
  return TRUE;
}

#define HXFR_MAX_CONFIG_RESP 4096

/* Upper bound of the pixel bytes of one frame within @limits: 4 bytes per
 * pixel with up to 256 bytes of row padding, which covers every carried
 * format, or less if max_frame_bytes says so. The exact size is checked
 * against the geometry once the fixed part is parsed. */
guint64
hxfr_limits_max_frame_bytes (const HxfrLimits * limits)
{
  guint64 dims = ((guint64) limits->max_width * 4 + 256) * limits->max_height;

  return limits->max_frame_bytes ? MIN (dims, limits->max_frame_bytes) : dims;
}

static gboolean
type_readable_by (guint type, HxfrRole role)
{
  switch (type) {
    case HXFR_MSG_PING:
    case HXFR_MSG_PONG:
      return TRUE;
    case HXFR_MSG_FRAME_REQUEST:
    case HXFR_MSG_KEYFRAME_REQ:
    case HXFR_MSG_CONFIG_REQ:
    case HXFR_MSG_HELLO:
    case HXFR_MSG_FRAME_REQUEST2:
    case HXFR_MSG_CONTROL:
      return role == HXFR_ROLE_HOST;
    case HXFR_MSG_FRAME_RESPONSE:
    case HXFR_MSG_CONFIG_RESP:
    case HXFR_MSG_HELLO_ACK:
    case HXFR_MSG_FRAME_RESPONSE2:
    case HXFR_MSG_ERROR:
      return role == HXFR_ROLE_GUEST;
    default:
      return FALSE;
  }
}

gboolean
hxfr_header_check (const HxfrHeader * h, HxfrRole role,
    const HxfrLimits * limits, GError ** error)
{
  gsize fixed;
  gboolean has_tail;
  guint64 max_tail = 0;

  if (!hxfr_msg_fixed_size (h->type, &fixed, &has_tail)
      || !type_readable_by (h->type, role)) {
    g_set_error (error, HXFR_ERROR, HXFR_ERR_INVALID,
        "unexpected message type 0x%02x (%s)", h->type,
        hxfr_msg_type_name (h->type));
    return FALSE;
  }

  if (h->payload_size < fixed) {
    g_set_error (error, HXFR_ERROR, HXFR_ERR_INVALID,
        "%s payload of %u bytes is shorter than its %" G_GSIZE_FORMAT
        "-byte fixed part", hxfr_msg_type_name (h->type), h->payload_size,
        fixed);
    return FALSE;
  }

  if (has_tail) {
    switch (h->type) {
      case HXFR_MSG_FRAME_REQUEST:
      case HXFR_MSG_FRAME_REQUEST2:
        max_tail = (h->flags & HXFR_FLAG_PIXEL_DATA) ?
            hxfr_limits_max_frame_bytes (limits) : 0;
        break;
      case HXFR_MSG_FRAME_RESPONSE:
        max_tail = (guint64) limits->max_access_unit +
            4 * (guint64) limits->max_nal_count;
        break;
      case HXFR_MSG_FRAME_RESPONSE2:
        max_tail = MAX (limits->max_access_unit, HXFR_ERROR_TEXT_SIZE);
        break;
      case HXFR_MSG_HELLO:
        max_tail = HXFR_MAX_TOKEN;
        break;
      case HXFR_MSG_CONFIG_RESP:
        max_tail = HXFR_MAX_CONFIG_RESP;
        break;
      default:
        g_assert_not_reached ();
    }
  }

  if (h->payload_size - fixed > max_tail) {
    g_set_error (error, HXFR_ERROR,
        has_tail ? HXFR_ERR_LIMIT : HXFR_ERR_INVALID,
        "%s payload of %u bytes exceeds the %" G_GUINT64_FORMAT
        " allowed", hxfr_msg_type_name (h->type), h->payload_size,
        (guint64) fixed + max_tail);
    return FALSE;
  }
  return TRUE;
}

gboolean
hxfr_wire_check_len (const gchar * what, gsize len, gsize expected,
    GError ** error)
{
  if (len != expected) {
    g_set_error (error, HXFR_ERROR, HXFR_ERR_INVALID,
        "%s: %" G_GSIZE_FORMAT " bytes, expected %" G_GSIZE_FORMAT, what,
        len, expected);
    return FALSE;
  }
  return TRUE;
}

gsize
hxfr_frame_request_write (const HxfrFrameRequest * r, guint version,
    guint8 * out)
{
  if (version < 2) {
    WireFrameRequest w = { 0, };

    w.resource_id = LE32 (r->resource_id);
    w.width = LE32 (r->width);
    w.height = LE32 (r->height);
    w.format = LE32 (r->format);
    w.stride = LE32 (r->stride[0]);
    w.pts = LE64 (r->pts);
    w.duration = LE64 (r->duration);
    w.force_keyframe = r->force_keyframe ? 1 : 0;
    memcpy (out, &w, sizeof (w));
    return sizeof (w);
  } else {
    WireFrameRequest2 w = { 0, };
    guint i;

    w.seq = LE32 (r->seq);
    w.resource_id = LE32 (r->resource_id);
    w.width = LE32 (r->width);
    w.height = LE32 (r->height);
    w.format = LE32 (r->format);
    w.n_planes = r->n_planes;
    w.frame_flags = r->force_keyframe ? HXFR_FRAME_FORCE_KEYFRAME : 0;
    for (i = 0; i < HXFR_MAX_PLANES; i++) {
      w.stride[i] = LE32 (i < r->n_planes ? r->stride[i] : 0);
      w.offset[i] = LE32 (i < r->n_planes ? r->offset[i] : 0);
    }
    w.pts = LE64 (r->pts);
    w.duration = LE64 (r->duration);
    memcpy (out, &w, sizeof (w));
    return sizeof (w);
  }
}

gboolean
hxfr_frame_request_parse (const guint8 * in, gsize len, guint version,
    HxfrFrameRequest * r, GError ** error)
{
  guint i;

  memset (r, 0, sizeof (*r));
  if (version < 2) {
    WireFrameRequest w;

    if (!hxfr_wire_check_len ("FRAME_REQUEST", len, sizeof (w), error))
      return FALSE;
    memcpy (&w, in, sizeof (w));
    r->resource_id = FROM_LE32 (w.resource_id);
    r->width = FROM_LE32 (w.width);
    r->height = FROM_LE32 (w.height);
    r->format = FROM_LE32 (w.format);
    r->pts = FROM_LE64 (w.pts);
    r->duration = FROM_LE64 (w.duration);
    r->force_keyframe = w.force_keyframe != 0;
    /* v1 carries one stride: derive the planes of the default layout */
    if (hxfr_frame_v1_layout (r->format, r->height, FROM_LE32 (w.stride),
            &r->n_planes, r->stride, r->offset) == 0) {
      r->n_planes = 1;
      r->stride[0] = FROM_LE32 (w.stride);
    }
  } else {
    WireFrameRequest2 w;

    if (!hxfr_wire_check_len ("FRAME_REQUEST2", len, sizeof (w), error))
      return FALSE;
    memcpy (&w, in, sizeof (w));
    r->seq = FROM_LE32 (w.seq);
    r->resource_id = FROM_LE32 (w.resource_id);
    r->width = FROM_LE32 (w.width);
    r->height = FROM_LE32 (w.height);
    r->format = FROM_LE32 (w.format);
    r->n_planes = w.n_planes;
    if (r->n_planes < 1 || r->n_planes > HXFR_MAX_PLANES) {
      g_set_error (error, HXFR_ERROR, HXFR_ERR_INVALID,
          "FRAME_REQUEST2: %u planes", r->n_planes);
      return FALSE;
    }
    for (i = 0; i < HXFR_MAX_PLANES; i++) {
      r->stride[i] = FROM_LE32 (w.stride[i]);
      r->offset[i] = FROM_LE32 (w.offset[i]);
    }
    r->pts = FROM_LE64 (w.pts);
    r->duration = FROM_LE64 (w.duration);
    r->force_keyframe = (w.frame_flags & HXFR_FRAME_FORCE_KEYFRAME) != 0;
  }
  return TRUE;
}

gsize
hxfr_frame_response_write (const HxfrFrameResponse * r, guint version,
    guint8 * out)
{
  if (version < 2) {
    WireFrameResponse w = { 0, };

    w.pts = LE64 (r->pts);
    w.dts = LE64 (r->dts);
    w.is_keyframe = r->keyframe ? 1 : 0;
    w.nal_count = LE32 (r->nal_count);
    memcpy (out, &w, sizeof (w));
    return sizeof (w);
  } else {
    WireFrameResponse2 w = { 0, };

    w.seq = LE32 (r->seq);
    w.status = r->status;
    w.frame_flags = r->keyframe ? HXFR_FRAME_KEYFRAME : 0;
    w.pts = LE64 (r->pts);
    w.dts = LE64 (r->dts);
    w.duration = LE64 (r->duration);
    w.error_code = (gint32) LE32 ((guint32) r->error_code);
    w.host_time_us = LE32 (r->host_time_us);
    memcpy (out, &w, sizeof (w));
    return sizeof (w);
  }
}

gboolean
hxfr_frame_response_parse (const guint8 * in, gsize len, guint version,
    HxfrFrameResponse * r, GError ** error)
{
  memset (r, 0, sizeof (*r));
  if (version < 2) {
    WireFrameResponse w;

    if (!hxfr_wire_check_len ("FRAME_RESPONSE", len, sizeof (w), error))
      return FALSE;
    memcpy (&w, in, sizeof (w));
    r->status = HXFR_STATUS_OK;
    r->pts = FROM_LE64 (w.pts);
    r->dts = FROM_LE64 (w.dts);
    r->duration = -1;
    r->keyframe = w.is_keyframe != 0;
    r->nal_count = FROM_LE32 (w.nal_count);
  } else {
    WireFrameResponse2 w;

    if (!hxfr_wire_check_len ("FRAME_RESPONSE2", len, sizeof (w), error))
      return FALSE;
    memcpy (&w, in, sizeof (w));
    if (w.status > HXFR_STATUS_FAILED) {
      g_set_error (error, HXFR_ERROR, HXFR_ERR_INVALID,
          "FRAME_RESPONSE2: unknown status %u", w.status);
      return FALSE;
    }
    r->seq = FROM_LE32 (w.seq);
    r->status = w.status;
    r->keyframe = (w.frame_flags & HXFR_FRAME_KEYFRAME) != 0;
    r->pts = FROM_LE64 (w.pts);
    r->dts = FROM_LE64 (w.dts);
    r->duration = FROM_LE64 (w.duration);
    r->error_code = (gint32) FROM_LE32 ((guint32) w.error_code);
    r->host_time_us = FROM_LE32 (w.host_time_us);
  }
  return TRUE;
}

gsize
hxfr_config_write (const HxfrConfig * c, guint8 * out)
{
  WireConfigReq w = { 0, };

  w.width = LE32 (c->width);
  w.height = LE32 (c->height);
  w.bitrate = LE32 (c->bitrate);
  w.framerate_num = LE32 (c->fps_n);
  w.framerate_den = LE32 (c->fps_d);
  w.profile = c->profile;
  w.level = c->level;
  w.realtime = c->realtime;
  memcpy (out, &w, sizeof (w));
  return sizeof (w);
}

gboolean
hxfr_config_parse (const guint8 * in, gsize len, HxfrConfig * c,
    GError ** error)
{
  WireConfigReq w;

  if (!hxfr_wire_check_len ("CONFIG_REQ", len, sizeof (w), error))
    return FALSE;
  memcpy (&w, in, sizeof (w));
  c->width = FROM_LE32 (w.width);
  c->height = FROM_LE32 (w.height);
  c->bitrate = FROM_LE32 (w.bitrate);
  c->fps_n = FROM_LE32 (w.framerate_num);
  c->fps_d = FROM_LE32 (w.framerate_den);
  c->profile = w.profile;
  c->level = w.level;
  c->realtime = w.realtime;
  return TRUE;
}

gsize
hxfr_hello_write (const HxfrHello * h, guint8 * out)
{
  WireHello w = { 0, };

  w.min_version = LE16 (h->min_version);
  w.max_version = LE16 (h->max_version);
  w.codec = LE32 (h->codec);
  w.max_in_flight = LE32 (h->max_in_flight);
  w.bitrate = LE32 (h->bitrate);
  w.keyframe_interval = LE32 (h->keyframe_interval);
  w.fps_n = LE32 (h->fps_n);
  w.fps_d = LE32 (h->fps_d);
  w.guest_flags = LE32 (h->guest_flags);
  w.token_len = LE16 (h->token_len);
  memcpy (out, &w, sizeof (w));
  return sizeof (w);
}

gboolean
hxfr_hello_parse (const guint8 * in, gsize len, HxfrHello * h, GError ** error)
{
  WireHello w;

  if (!hxfr_wire_check_len ("HELLO", len, sizeof (w), error))
    return FALSE;
  memcpy (&w, in, sizeof (w));
  h->min_version = FROM_LE16 (w.min_version);
  h->max_version = FROM_LE16 (w.max_version);
  h->codec = FROM_LE32 (w.codec);
  h->max_in_flight = FROM_LE32 (w.max_in_flight);
  h->bitrate = FROM_LE32 (w.bitrate);
  h->keyframe_interval = FROM_LE32 (w.keyframe_interval);
  h->fps_n = FROM_LE32 (w.fps_n);
  h->fps_d = FROM_LE32 (w.fps_d);
  h->guest_flags = FROM_LE32 (w.guest_flags);
  h->token_len = FROM_LE16 (w.token_len);
  if (h->token_len > HXFR_MAX_TOKEN) {
    g_set_error (error, HXFR_ERROR, HXFR_ERR_INVALID,
        "HELLO: token of %u bytes (at most %u)", h->token_len, HXFR_MAX_TOKEN);
    return FALSE;
  }
  if (h->min_version > h->max_version || h->max_in_flight == 0) {
    g_set_error (error, HXFR_ERROR, HXFR_ERR_INVALID,
        "HELLO: versions %u..%u, %u frames in flight", h->min_version,
        h->max_version, h->max_in_flight);
    return FALSE;
  }
  return TRUE;
}

gsize
hxfr_hello_ack_write (const HxfrHelloAck * a, guint8 * out)
{
  WireHelloAck w = { 0, };

  w.version = LE16 (a->version);
  w.codec = LE32 (a->codec);
  w.max_in_flight = LE32 (a->max_in_flight);
  w.max_width = LE32 (a->max_width);
  w.max_height = LE32 (a->max_height);
  w.host_flags = LE32 (a->host_flags);
  g_strlcpy (w.encoder, a->encoder, sizeof (w.encoder));
  memcpy (out, &w, sizeof (w));
  return sizeof (w);
}

gboolean
hxfr_hello_ack_parse (const guint8 * in, gsize len, HxfrHelloAck * a,
    GError ** error)
{
  WireHelloAck w;

  if (!hxfr_wire_check_len ("HELLO_ACK", len, sizeof (w), error))
    return FALSE;
  memcpy (&w, in, sizeof (w));
  a->version = FROM_LE16 (w.version);
  a->codec = FROM_LE32 (w.codec);
  a->max_in_flight = FROM_LE32 (w.max_in_flight);
  a->max_width = FROM_LE32 (w.max_width);
  a->max_height = FROM_LE32 (w.max_height);
  a->host_flags = FROM_LE32 (w.host_flags);
  memcpy (a->encoder, w.encoder, sizeof (a->encoder));
  a->encoder[sizeof (a->encoder) - 1] = '\0';
  if (a->max_in_flight == 0) {
    g_set_error (error, HXFR_ERROR, HXFR_ERR_INVALID,
        "HELLO_ACK grants no frame in flight");
    return FALSE;
  }
  return TRUE;
}

gsize
hxfr_control_write (const HxfrControl * c, guint8 * out)
{
  WireControl w = { 0, };

  w.mask = LE32 (c->mask);
  w.bitrate = LE32 (c->bitrate);
  w.keyframe_interval = LE32 (c->keyframe_interval);
  w.fps_n = LE32 (c->fps_n);
  w.fps_d = LE32 (c->fps_d);
  memcpy (out, &w, sizeof (w));
  return sizeof (w);
}

gboolean
hxfr_control_parse (const guint8 * in, gsize len, HxfrControl * c,
    GError ** error)
{
  WireControl w;

  if (!hxfr_wire_check_len ("CONTROL", len, sizeof (w), error))
    return FALSE;
  memcpy (&w, in, sizeof (w));
  c->mask = FROM_LE32 (w.mask);
  c->bitrate = FROM_LE32 (w.bitrate);
  c->keyframe_interval = FROM_LE32 (w.keyframe_interval);
  c->fps_n = FROM_LE32 (w.fps_n);
  c->fps_d = FROM_LE32 (w.fps_d);
  if (c->mask & ~HXFR_CONTROL_ALL) {
    g_set_error (error, HXFR_ERROR, HXFR_ERR_INVALID,
        "CONTROL: unknown mask bits 0x%x", c->mask & ~HXFR_CONTROL_ALL);
    return FALSE;
  }
  if ((c->mask & HXFR_CONTROL_FRAMERATE) && c->fps_d == 0) {
    g_set_error (error, HXFR_ERROR, HXFR_ERR_INVALID,
        "CONTROL: framerate denominator 0");
    return FALSE;
  }
  return TRUE;
}

gsize
hxfr_error_write (gint32 code, const gchar * message, guint8 * out)
{
  WireError w;

  memset (&w, 0, sizeof (w));
  w.error_code = (gint32) LE32 ((guint32) code);
  g_strlcpy (w.message, message ? message : "", sizeof (w.message));
  memcpy (out, &w, sizeof (w));
  return sizeof (w);
}

gboolean
hxfr_error_parse (const guint8 * in, gsize len, HxfrErrorMsg * e,
    GError ** error)
{
  WireError w;

  if (!hxfr_wire_check_len ("ERROR", len, sizeof (w), error))
    return FALSE;
  memcpy (&w, in, sizeof (w));
  e->code = (gint32) FROM_LE32 ((guint32) w.error_code);
  memcpy (e->message, w.message, sizeof (e->message));
  e->message[sizeof (e->message) - 1] = '\0';
  return TRUE;
}

/* Pixel layouts */

typedef struct
{
  guint32 fourcc;
  guint n_planes;
  gboolean v1;
  const gchar *name;
} FormatDesc;

static const FormatDesc formats[] = {
  {HXFR_FORMAT_NV12, 2, TRUE, "NV12"},
  {HXFR_FORMAT_YUV420, 3, FALSE, "I420"},
  {HXFR_FORMAT_ARGB8888, 1, TRUE, "BGRA"},
  {HXFR_FORMAT_XRGB8888, 1, FALSE, "BGRx"},
  {HXFR_FORMAT_ABGR8888, 1, TRUE, "RGBA"},
  {HXFR_FORMAT_XBGR8888, 1, FALSE, "RGBx"},
};

static const FormatDesc *
find_format (guint32 fourcc)
{
  guint i;

  for (i = 0; i < G_N_ELEMENTS (formats); i++)
    if (formats[i].fourcc == fourcc)
      return &formats[i];
  return NULL;
}

gboolean
hxfr_format_info (guint32 fourcc, guint * n_planes)
{
  const FormatDesc *f = find_format (fourcc);

  if (f && n_planes)
    *n_planes = f->n_planes;
  return f != NULL;
}

gboolean
hxfr_format_is_v1 (guint32 fourcc)
{
  const FormatDesc *f = find_format (fourcc);

  return f && f->v1;
}

const gchar *
hxfr_format_to_string (guint32 fourcc)
{
  const FormatDesc *f = find_format (fourcc);

  return f ? f->name : "unknown";
}

gboolean
hxfr_format_plane_size (guint32 fourcc, guint plane, guint32 width,
    guint32 height, guint64 * rows, guint64 * row_bytes)
{
  const FormatDesc *f = find_format (fourcc);
  guint64 cw = ((guint64) width + 1) / 2, ch = ((guint64) height + 1) / 2;

  if (!f || plane >= f->n_planes)
    return FALSE;
  switch (fourcc) {
    case HXFR_FORMAT_NV12:
      *rows = plane == 0 ? height : ch;
      *row_bytes = plane == 0 ? width : cw * 2;
      break;
    case HXFR_FORMAT_YUV420:
      *rows = plane == 0 ? height : ch;
      *row_bytes = plane == 0 ? width : cw;
      break;
    default:
      *rows = height;
      *row_bytes = (guint64) width *4;
      break;
  }
  return TRUE;
}

gsize
hxfr_frame_default_layout (guint32 fourcc, guint32 width, guint32 height,
    guint * n_planes, guint32 * stride, guint32 * offset)
{
  const FormatDesc *f = find_format (fourcc);
  guint64 size = 0;
  guint i;

  if (!f || width == 0 || height == 0 || width > G_MAXUINT16 * 4u
      || height > G_MAXUINT16 * 4u)
    return 0;
  *n_planes = f->n_planes;
  for (i = 0; i < f->n_planes; i++) {
    guint64 rows, row_bytes;

    hxfr_format_plane_size (fourcc, i, width, height, &rows, &row_bytes);
    stride[i] = (guint32) ((row_bytes + 3) & ~(guint64) 3);
    offset[i] = (guint32) size;
    /* GStreamer sizes the luma plane of 4:2:0 formats by an even height */
    if (i == 0 && f->n_planes > 1)
      rows = ((guint64) height + 1) & ~(guint64) 1;
    size += (guint64) stride[i] * rows;
  }
  return (gsize) size;
}

gsize
hxfr_frame_v1_layout (guint32 fourcc, guint32 height, guint32 stride,
    guint * n_planes, guint32 * strides, guint32 * offsets)
{
  const FormatDesc *f = find_format (fourcc);
  guint64 luma_rows;

  if (!f || !f->v1)
    return 0;
  *n_planes = f->n_planes;
  strides[0] = stride;
  offsets[0] = 0;
  if (f->n_planes == 1)
    return (gsize) ((guint64) stride * height);
  /* NV12: interleaved chroma with the luma stride, after an even number of
   * luma rows (the guest's buffer as GStreamer lays it out) */
  luma_rows = ((guint64) height + 1) & ~(guint64) 1;
  if ((guint64) stride * luma_rows > G_MAXUINT32)
    return 0;
  strides[1] = stride;
  offsets[1] = (guint32) (stride * luma_rows);
  return (gsize) ((guint64) stride * luma_rows + (guint64) stride *
      (luma_rows / 2));
}

gboolean
hxfr_frame_request_validate (const HxfrFrameRequest * r,
    const HxfrLimits * limits, gsize pixel_size, GError ** error)
{
  guint n_planes, i;
  guint64 extent = 0, needed = 0;

  if (!hxfr_format_info (r->format, &n_planes)) {
    g_set_error (error, HXFR_ERROR, HXFR_ERR_UNSUPPORTED,
        "unsupported format 0x%08x", r->format);
    return FALSE;
  }
  if (r->width == 0 || r->height == 0 || r->width > limits->max_width
      || r->height > limits->max_height) {
    g_set_error (error, HXFR_ERROR, HXFR_ERR_LIMIT,
        "frame size %ux%u outside 1x1..%ux%u", r->width, r->height,
        limits->max_width, limits->max_height);
    return FALSE;
  }
  if (r->n_planes != n_planes) {
    g_set_error (error, HXFR_ERROR, HXFR_ERR_INVALID,
        "%s has %u planes, request says %u", hxfr_format_to_string (r->format),
        n_planes, r->n_planes);
    return FALSE;
  }
  if (pixel_size == 0)
    return TRUE;

  for (i = 0; i < n_planes; i++) {
    guint64 rows, row_bytes, end;

    hxfr_format_plane_size (r->format, i, r->width, r->height, &rows,
        &row_bytes);
    needed += rows * row_bytes;
    if (r->stride[i] < row_bytes) {
      g_set_error (error, HXFR_ERROR, HXFR_ERR_INVALID,
          "plane %u stride %u is below the %" G_GUINT64_FORMAT
          " bytes a %ux%u %s row needs", i, r->stride[i], row_bytes,
          r->width, r->height, hxfr_format_to_string (r->format));
      return FALSE;
    }
    end = (guint64) r->offset[i] + (guint64) r->stride[i] * (rows - 1) +
        row_bytes;
    if (end > pixel_size) {
      g_set_error (error, HXFR_ERROR, HXFR_ERR_INVALID,
          "plane %u ends at byte %" G_GUINT64_FORMAT ", past the %"
          G_GSIZE_FORMAT " pixel bytes sent", i, end, pixel_size);
      return FALSE;
    }
    extent = MAX (extent, (guint64) r->offset[i] + (guint64) r->stride[i] *
        rows);
  }
  /* Strides and plane offsets may pad, within a bound: the host holds what
   * is sent, and a 16x16 frame must not claim a buffer of 8192x8192. */
  if (pixel_size > needed + needed / 2 + HXFR_PADDING_SLACK) {
    g_set_error (error, HXFR_ERROR, HXFR_ERR_INVALID,
        "%" G_GSIZE_FORMAT " pixel bytes for a %ux%u %s frame whose planes "
        "need %" G_GUINT64_FORMAT ": too much padding", pixel_size, r->width,
        r->height, hxfr_format_to_string (r->format), needed);
    return FALSE;
  }
  /* The last row of a plane may stop short of its stride; nothing may
   * follow the last plane's padded extent. */
  if (pixel_size > extent) {
    g_set_error (error, HXFR_ERROR, HXFR_ERR_INVALID,
        "%" G_GSIZE_FORMAT " pixel bytes sent for a %ux%u %s frame of %"
        G_GUINT64_FORMAT, pixel_size, r->width, r->height,
        hxfr_format_to_string (r->format), extent);
    return FALSE;
  }
  return TRUE;
}

gboolean
hxfr_nal_list_unpack (guint8 * buf, gsize size, guint32 count,
    gsize * out_size, GError ** error)
{
  gsize in = 0, out = 0;
  guint32 i;

  for (i = 0; i < count; i++) {
    guint32 len;

    if (size - in < 4) {
      g_set_error (error, HXFR_ERROR, HXFR_ERR_INVALID,
          "NAL list truncated at entry %u of %u", i, count);
      return FALSE;
    }
    memcpy (&len, buf + in, 4);
    len = FROM_LE32 (len);
    in += 4;
    if (len > size - in) {
      g_set_error (error, HXFR_ERROR, HXFR_ERR_INVALID,
          "NAL entry %u of %u bytes overruns the %" G_GSIZE_FORMAT
          "-byte list", i, len, size);
      return FALSE;
    }
    memmove (buf + out, buf + in, len);
    in += len;
    out += len;
  }
  if (in != size) {
    g_set_error (error, HXFR_ERROR, HXFR_ERR_INVALID,
        "%" G_GSIZE_FORMAT " bytes after the last of %u NAL entries",
        size - in, count);
    return FALSE;
  }
  *out_size = out;
  return TRUE;
}
