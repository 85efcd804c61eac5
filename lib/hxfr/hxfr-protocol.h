/* HXFR wire protocol codec, versions 1 and 2.
 *
 * The only code in the project that turns HXFR bytes into values and back.
 * Wire layouts are the packed structs below, frozen by static asserts in
 * hxfr-protocol.c; everything else works on the host-order structs.
 * docs/protocol.md is the specification this file implements.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

#define HXFR_MAGIC 0x52465848u  /* "HXFR" on the wire, little-endian */
#define HXFR_HEADER_SIZE 12

typedef enum
{
  HXFR_MSG_FRAME_REQUEST = 0x01,
  HXFR_MSG_FRAME_RESPONSE = 0x02,
  HXFR_MSG_KEYFRAME_REQ = 0x03,
  HXFR_MSG_CONFIG_REQ = 0x04,
  HXFR_MSG_CONFIG_RESP = 0x05,
  HXFR_MSG_PING = 0x10,
  HXFR_MSG_PONG = 0x11,
  /* v2 */
  HXFR_MSG_HELLO = 0x40,
  HXFR_MSG_HELLO_ACK = 0x41,
  HXFR_MSG_FRAME_REQUEST2 = 0x42,
  HXFR_MSG_FRAME_RESPONSE2 = 0x43,
  HXFR_MSG_CONTROL = 0x44,
  HXFR_MSG_ERROR = 0xFF,
} HxfrMsgType;

/* Header flags */
#define HXFR_FLAG_PIXEL_DATA 0x01

/* Error codes carried by ERROR (and FRAME_RESPONSE2 status FAILED) */
typedef enum
{
  HXFR_ERR_OK = 0,
  HXFR_ERR_INVALID = -1,
  HXFR_ERR_RESOURCE_NOT_FOUND = -2,
  HXFR_ERR_NOT_METAL_TEXTURE = -3,
  HXFR_ERR_NO_IOSURFACE = -4,
  HXFR_ERR_ENCODE_FAILED = -5,
  HXFR_ERR_NOT_CONFIGURED = -6,
  /* v2 */
  HXFR_ERR_UNAUTHORIZED = -7,
  HXFR_ERR_UNSUPPORTED = -8,
  HXFR_ERR_LIMIT = -9,
  HXFR_ERR_TOO_MANY_SESSIONS = -10,
  HXFR_ERR_TIMEOUT = -11,
  HXFR_ERR_SHUTDOWN = -12,
  /* scanout subscriptions (hxfr-scanout.h) */
  HXFR_ERR_NO_SCANOUT = -13,
  HXFR_ERR_INTERNAL = -99,
} HxfrErrorCode;

/* DRM fourccs used on the wire */
#define HXFR_FOURCC(a,b,c,d) ((guint32)(a) | ((guint32)(b) << 8) | \
    ((guint32)(c) << 16) | ((guint32)(d) << 24))
#define HXFR_FORMAT_ARGB8888 HXFR_FOURCC('A','R','2','4')       /* GStreamer BGRA */
#define HXFR_FORMAT_XRGB8888 HXFR_FOURCC('X','R','2','4')       /* BGRx, v2 only */
#define HXFR_FORMAT_ABGR8888 HXFR_FOURCC('A','B','2','4')       /* RGBA */
#define HXFR_FORMAT_XBGR8888 HXFR_FOURCC('X','B','2','4')       /* RGBx, v2 only */
#define HXFR_FORMAT_NV12 HXFR_FOURCC('N','V','1','2')
#define HXFR_FORMAT_YUV420 HXFR_FOURCC('Y','U','1','2') /* I420, v2 only */

#define HXFR_CODEC_H264 HXFR_FOURCC('H','2','6','4')
#define HXFR_CODEC_H265 HXFR_FOURCC('H','2','6','5')
#define HXFR_CODEC_AV1 HXFR_FOURCC('A','V','0','1')

#define HXFR_MAX_PLANES 4
#define HXFR_MAX_TOKEN 256
#define HXFR_ERROR_TEXT_SIZE 256
#define HXFR_ENCODER_NAME_SIZE 24

/* Fixed payload sizes */
#define HXFR_FRAME_REQUEST_SIZE 44
#define HXFR_FRAME_RESPONSE_SIZE 24
#define HXFR_CONFIG_REQ_SIZE 28
#define HXFR_ERROR_SIZE 260
#define HXFR_HELLO_SIZE 40
#define HXFR_HELLO_ACK_SIZE 48
#define HXFR_FRAME_REQUEST2_SIZE 72
#define HXFR_FRAME_RESPONSE2_SIZE 40
#define HXFR_CONTROL_SIZE 24
#define HXFR_MAX_FIXED_SIZE HXFR_ERROR_SIZE

/* FRAME_REQUEST2 frame_flags / FRAME_RESPONSE2 frame_flags */
#define HXFR_FRAME_FORCE_KEYFRAME 0x01
#define HXFR_FRAME_KEYFRAME 0x01

/* HELLO guest_flags / HELLO_ACK host_flags */
#define HXFR_GUEST_RESOURCE_IDS 0x01
#define HXFR_HOST_RESOURCE_IDS 0x01

/* CONTROL mask */
#define HXFR_CONTROL_BITRATE 0x01
#define HXFR_CONTROL_KEYFRAME_INTERVAL 0x02
#define HXFR_CONTROL_FRAMERATE 0x04
#define HXFR_CONTROL_ALL 0x07

typedef enum
{
  HXFR_STATUS_OK = 0,
  HXFR_STATUS_DROPPED = 1,
  HXFR_STATUS_FAILED = 2,
} HxfrFrameStatus;

/* Which side reads a message: a host never accepts a host→guest message. */
typedef enum
{
  HXFR_ROLE_HOST,               /* reads what guests send */
  HXFR_ROLE_GUEST,              /* reads what hosts send */
} HxfrRole;

typedef struct
{
  guint8 type;
  guint8 flags;
  guint16 session_id;
  guint32 payload_size;
} HxfrHeader;

/* FRAME_REQUEST (v1) and FRAME_REQUEST2 (v2), host order. For v1, seq is 0
 * and the planes are the default layout derived from stride[0]. */
typedef struct
{
  guint32 seq;
  guint32 resource_id;
  guint32 width;
  guint32 height;
  guint32 format;
  guint n_planes;
  guint32 stride[HXFR_MAX_PLANES];
  guint32 offset[HXFR_MAX_PLANES];
  gint64 pts;
  gint64 duration;
  gboolean force_keyframe;
} HxfrFrameRequest;

/* FRAME_RESPONSE (v1) and FRAME_RESPONSE2 (v2) fixed parts, host order. */
typedef struct
{
  guint32 seq;
  HxfrFrameStatus status;
  gboolean keyframe;
  gint64 pts;
  gint64 dts;
  gint64 duration;
  gint32 error_code;
  guint32 host_time_us;
  guint32 nal_count;            /* v1 only */
} HxfrFrameResponse;

typedef struct
{
  guint32 width;
  guint32 height;
  guint32 bitrate;
  guint32 fps_n;
  guint32 fps_d;
  guint8 profile;
  guint8 level;
  guint8 realtime;
} HxfrConfig;

typedef struct
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
  guint16 token_len;            /* token bytes follow the fixed part */
} HxfrHello;

typedef struct
{
  guint16 version;
  guint32 codec;
  guint32 max_in_flight;
  guint32 max_width;
  guint32 max_height;
  guint32 host_flags;
  gchar encoder[HXFR_ENCODER_NAME_SIZE];        /* NUL-terminated */
} HxfrHelloAck;

typedef struct
{
  guint32 mask;
  guint32 bitrate;
  guint32 keyframe_interval;
  guint32 fps_n;
  guint32 fps_d;
} HxfrControl;

typedef struct
{
  gint32 code;
  gchar message[HXFR_ERROR_TEXT_SIZE];  /* always NUL-terminated after parsing */
} HxfrErrorMsg;

/* What a reader accepts; a message beyond these is refused before any
 * allocation. */
typedef struct
{
  guint32 max_width;
  guint32 max_height;
  guint32 max_access_unit;      /* guest side: bytes of one encoded AU */
  guint32 max_nal_count;        /* guest side: v1 NAL entries */
  guint64 max_frame_bytes;      /* host side: pixel bytes of one frame;
                                 * 0: what max_width x max_height needs */
} HxfrLimits;

/* Pixel bytes of one frame a host reading within @limits accepts at most:
 * what bounds the memory a guest can make it hold per buffered frame. */
guint64 hxfr_limits_max_frame_bytes (const HxfrLimits * limits);

/* Row and plane padding a frame may carry beyond what its planes need:
 * half as much again, plus this (small frames, page-aligned planes). */
#define HXFR_PADDING_SLACK (64 * 1024)

#define HXFR_DEFAULT_MAX_DIMENSION 8192
#define HXFR_DEFAULT_MAX_ACCESS_UNIT (64u * 1024 * 1024)
#define HXFR_DEFAULT_MAX_NAL_COUNT 4096

void hxfr_limits_init_default (HxfrLimits * limits);

#define HXFR_ERROR (hxfr_error_quark ())
GQuark hxfr_error_quark (void);

/* Domain HXFR_ERROR, code: an HxfrErrorCode. */

const gchar *hxfr_msg_type_name (guint type);
const gchar *hxfr_error_code_name (gint code);

/* Header */
/* Compares an access token in constant time (for its contents). */
gboolean hxfr_token_equal (const guint8 * a, gsize a_len, const guint8 * b,
    gsize b_len);

void hxfr_header_write (guint8 out[HXFR_HEADER_SIZE], const HxfrHeader * h);
gboolean hxfr_header_parse (const guint8 in[HXFR_HEADER_SIZE],
    HxfrHeader * h, GError ** error);

/* Size of the fixed part of a message of this type, and whether it may be
 * followed by a variable tail. Unknown types return FALSE. */
gboolean hxfr_msg_fixed_size (guint type, gsize * fixed_size,
    gboolean * has_tail);

/* Checks a parsed header against the direction and the limits: message type
 * valid for @role to read, payload_size consistent with the type, frame
 * payloads below what the largest frame allowed by @limits can need.
 * HXFR_ERROR_LIMIT or HXFR_ERROR_INVALID on failure. */
gboolean hxfr_header_check (const HxfrHeader * h, HxfrRole role,
    const HxfrLimits * limits, GError ** error);

/* Fixed parts: write returns the number of bytes written into @out (which
 * must hold HXFR_MAX_FIXED_SIZE); parse reads exactly the fixed size. */
gsize hxfr_frame_request_write (const HxfrFrameRequest * r, guint version,
    guint8 * out);
gboolean hxfr_frame_request_parse (const guint8 * in, gsize len,
    guint version, HxfrFrameRequest * r, GError ** error);

gsize hxfr_frame_response_write (const HxfrFrameResponse * r, guint version,
    guint8 * out);
gboolean hxfr_frame_response_parse (const guint8 * in, gsize len,
    guint version, HxfrFrameResponse * r, GError ** error);

gsize hxfr_config_write (const HxfrConfig * c, guint8 * out);
gboolean hxfr_config_parse (const guint8 * in, gsize len, HxfrConfig * c,
    GError ** error);

gsize hxfr_hello_write (const HxfrHello * h, guint8 * out);
gboolean hxfr_hello_parse (const guint8 * in, gsize len, HxfrHello * h,
    GError ** error);

gsize hxfr_hello_ack_write (const HxfrHelloAck * a, guint8 * out);
gboolean hxfr_hello_ack_parse (const guint8 * in, gsize len,
    HxfrHelloAck * a, GError ** error);

gsize hxfr_control_write (const HxfrControl * c, guint8 * out);
gboolean hxfr_control_parse (const guint8 * in, gsize len, HxfrControl * c,
    GError ** error);

gsize hxfr_error_write (gint32 code, const gchar * message, guint8 * out);
gboolean hxfr_error_parse (const guint8 * in, gsize len, HxfrErrorMsg * e,
    GError ** error);

/* Pixel layouts */

/* Planes, and the bytes per row of each plane's samples, of a wire format.
 * FALSE for a fourcc the protocol does not carry. */
gboolean hxfr_format_info (guint32 fourcc, guint * n_planes);
/* Rows and minimum bytes per row of @plane of a @width x @height frame:
 * chroma planes of 4:2:0 formats have ceil(h/2) rows of ceil(w/2)
 * samples. FALSE for an unknown format or plane. */
gboolean hxfr_format_plane_size (guint32 fourcc, guint plane, guint32 width,
    guint32 height, guint64 * rows, guint64 * row_bytes);
/* TRUE if the format can be expressed in v1. */
gboolean hxfr_format_is_v1 (guint32 fourcc);
const gchar *hxfr_format_to_string (guint32 fourcc);

/* Fills stride/offset/n_planes with the default (GStreamer) layout of a
 * format: row stride rounded up to 4 bytes, planes packed one after the
 * other, chroma rows rounded up. Returns the total size, 0 if unknown. */
gsize hxfr_frame_default_layout (guint32 fourcc, guint32 width,
    guint32 height, guint * n_planes, guint32 * stride, guint32 * offset);

/* The v1 layout: every plane uses stride[0], planes packed, chroma height
 * rounded up. Returns the size, 0 if the format is unknown. */
gsize hxfr_frame_v1_layout (guint32 fourcc, guint32 height, guint32 stride,
    guint * n_planes, guint32 * strides, guint32 * offsets);

/* Checks a request's geometry against @limits and, when @pixel_size is not
 * 0, that each plane lies inside the @pixel_size bytes that follow.
 * Overflow-safe. */
gboolean hxfr_frame_request_validate (const HxfrFrameRequest * r,
    const HxfrLimits * limits, gsize pixel_size, GError ** error);

/* A v1 NAL list (count × {u32 size, bytes}) of @size bytes, compacted in
 * place into the concatenation of its entries. Returns the compacted size
 * through @out_size. Checks every entry against the buffer. */
gboolean hxfr_nal_list_unpack (guint8 * buf, gsize size, guint32 count,
    gsize * out_size, GError ** error);

G_END_DECLS
