/* HXFR scanout subscriptions: the messages of a guest process that
 * subscribes to a virtio-gpu scanout the host encodes (docs/protocol.md
 * section 11).
 *
 * Two dialects share the 12-byte HXFR header (hxfr-protocol.h):
 * - deployed: helix's clients as they run today (../shared/PROTOCOL-scanout.md
 *   in the design notes): SUBSCRIBE, ENABLE_SCANOUT, DISABLE_SCANOUT,
 *   CONFIG_REQ, PING; the host answers SUBSCRIBE_RESP, SCANOUT_RESP, PONG and
 *   pushes FRAME_RESPONSE (the v1 layout with one NAL entry holding the
 *   whole access unit);
 * - v2: SUBSCRIBE2 (token, codec, scanout) answered by SUBSCRIBE2_ACK or
 *   ERROR, then SCANOUT_FRAME pushes with size and capture time, and one
 *   SCANOUT_END before the host closes.
 *
 * Bytes only: no sockets here. Every parser checks the size it is given.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#pragma once

#include "hxfr-protocol.h"

G_BEGIN_DECLS

/* Message types (the header's msg_type) */
#define HXFR_MSG_ENABLE_SCANOUT 0x20    /* deployed, client -> host */
#define HXFR_MSG_DISABLE_SCANOUT 0x21   /* deployed, client -> host */
#define HXFR_MSG_SCANOUT_RESP 0x22      /* deployed, host -> client */
#define HXFR_MSG_SUBSCRIBE 0x30 /* deployed, client -> host */
#define HXFR_MSG_SUBSCRIBE_RESP 0x31    /* deployed, host -> client */
#define HXFR_MSG_SUBSCRIBE2 0x50        /* v2, client -> host */
#define HXFR_MSG_SUBSCRIBE2_ACK 0x51    /* v2, host -> client */
#define HXFR_MSG_SCANOUT_FRAME 0x52     /* v2, host -> client */
#define HXFR_MSG_SCANOUT_END 0x53       /* v2, host -> client */
#define HXFR_MSG_CURSOR_IMAGE 0x54      /* v2, host -> client, asked for */
#define HXFR_MSG_CURSOR_POSITION 0x55   /* v2, host -> client, asked for */

/* Payload sizes (deployed: what the deployed host reads for the type) */
#define HXFR_SUBSCRIBE_SIZE 4
#define HXFR_SUBSCRIBE_RESP_SIZE 8
#define HXFR_ENABLE_SCANOUT_SIZE 16
#define HXFR_DISABLE_SCANOUT_SIZE 4
#define HXFR_SCANOUT_RESP_SIZE 72
#define HXFR_CONNECTOR_NAME_SIZE 64
/* a pushed deployed frame: FRAME_RESPONSE's 24 bytes + one NAL entry size */
#define HXFR_PUSHED_FRAME_SIZE 28
#define HXFR_SUBSCRIBE2_SIZE 32 /* + token */
#define HXFR_SUBSCRIBE2_ACK_SIZE 48
#define HXFR_SCANOUT_FRAME_SIZE 48      /* + access unit */
#define HXFR_SCANOUT_END_SIZE 8 /* + text, at most HXFR_ERROR_TEXT_SIZE */
#define HXFR_CURSOR_IMAGE_SIZE 16       /* + width * height * 4 pixels */
#define HXFR_CURSOR_POSITION_SIZE 24
/* the largest cursor image (the export's bound, HXEX_CURSOR_MAX_SIZE) */
#define HXFR_CURSOR_MAX_SIZE 256

/* SUBSCRIBE2 flags, and SUBSCRIBE2_ACK flags (what the host grants) */
#define HXFR_SUBSCRIBE2_CURSOR 0x1      /* CURSOR_IMAGE and _POSITION */
#define HXFR_SUBSCRIBE2_DRAW_CURSOR 0x2 /* the pointer drawn into the frames */
/* CURSOR_POSITION flags */
#define HXFR_CURSOR_VISIBLE 0x1

/* A deployed client's first message is one of these. */
#define HXFR_MSG_IS_DEPLOYED_SCANOUT(t) ((t) == HXFR_MSG_SUBSCRIBE || \
    (t) == HXFR_MSG_ENABLE_SCANOUT || (t) == HXFR_MSG_DISABLE_SCANOUT)

/* SCANOUT_FRAME frame_flags */
#define HXFR_SCANOUT_FRAME_KEYFRAME 0x01        /* an IDR access unit */
#define HXFR_SCANOUT_FRAME_REPEAT 0x02  /* re-encoded: the screen did not change */
#define HXFR_SCANOUT_FRAME_DISCONT 0x04 /* frames were skipped before this one */

/* SCANOUT_END reasons */
typedef enum
{
  HXFR_SCANOUT_END_DISABLED = 1,        /* the scanout was disabled */
  HXFR_SCANOUT_END_SHUTDOWN = 2,        /* the bridge is stopping */
  HXFR_SCANOUT_END_VMM_GONE = 3,        /* the VM's export went away */
  HXFR_SCANOUT_END_TOO_SLOW = 4,        /* the subscriber did not read */
  HXFR_SCANOUT_END_ENCODER = 5, /* the encoder failed */
} HxfrScanoutEndReason;

typedef struct
{
  guint32 scanout_id;
  guint32 width;
  guint32 height;
  guint32 refresh;              /* Hz; 0 = the host's choice */
} HxfrEnableScanout;

typedef struct
{
  guint32 scanout_id;
  guint32 success;
  gchar connector[HXFR_CONNECTOR_NAME_SIZE];    /* NUL-terminated */
} HxfrScanoutResp;

typedef struct
{
  guint16 min_version;
  guint16 max_version;
  guint32 codec;                /* HXFR_CODEC_H264 */
  guint32 scanout_id;
  guint32 bitrate;              /* bit/s, 0 = the host's default */
  guint32 flags;                /* HXFR_SUBSCRIBE2_*; others reserved, 0 */
  guint16 token_len;            /* <= HXFR_MAX_TOKEN; the token follows */
  guint16 max_width;            /* scaled down to fit, keeping its aspect; */
  guint16 max_height;           /* 0: the scanout's own */
} HxfrSubscribe2;

typedef struct
{
  guint16 version;              /* 2 */
  guint32 codec;
  guint32 scanout_id;
  guint32 width;                /* what the scanout shows now */
  guint32 height;
  gchar encoder[HXFR_ENCODER_NAME_SIZE];        /* NUL-terminated */
  guint32 flags;                /* HXFR_SUBSCRIBE2_* granted */
} HxfrSubscribe2Ack;

/* CURSOR_IMAGE: the pointer's image; width * height * 4 bytes of ARGB8888
 * (B G R A in memory, straight alpha) follow, rows top down */
typedef struct
{
  guint32 width;                /* 1..HXFR_CURSOR_MAX_SIZE */
  guint32 height;
  guint32 hot_x;                /* < width */
  guint32 hot_y;                /* < height */
} HxfrCursorImage;

typedef struct
{
  gint32 x;                     /* the hotspot, in scanout pixels */
  gint32 y;
  guint32 flags;                /* HXFR_CURSOR_VISIBLE */
  guint64 time;                 /* host CLOCK_MONOTONIC ns of the move */
} HxfrCursorPosition;

typedef struct
{
  guint32 seq;                  /* +1 per frame sent to this subscriber */
  guint8 frame_flags;           /* HXFR_SCANOUT_FRAME_* */
  guint32 width;
  guint32 height;
  gint64 pts;                   /* ns since this subscription's first frame */
  gint64 duration;              /* ns until the next flip, -1 = not known */
  guint64 capture_time;         /* host CLOCK_MONOTONIC ns of the flush */
  guint32 encode_us;            /* flush -> access unit, on the host */
} HxfrScanoutFrame;

typedef struct
{
  guint32 reason;               /* HxfrScanoutEndReason */
  gchar text[HXFR_ERROR_TEXT_SIZE + 1]; /* NUL-terminated */
} HxfrScanoutEnd;

/* Writers return the bytes written to @out (sized for the fixed part). */
gsize hxfr_subscribe_write (guint32 scanout_id, guint8 * out);
gboolean hxfr_subscribe_parse (const guint8 * in, gsize len,
    guint32 * scanout_id, GError ** error);
gsize hxfr_subscribe_resp_write (guint32 scanout_id, gboolean success,
    guint8 * out);
gboolean hxfr_subscribe_resp_parse (const guint8 * in, gsize len,
    guint32 * scanout_id, guint32 * success, GError ** error);
gsize hxfr_enable_scanout_write (const HxfrEnableScanout * e, guint8 * out);
gboolean hxfr_enable_scanout_parse (const guint8 * in, gsize len,
    HxfrEnableScanout * e, GError ** error);
gsize hxfr_disable_scanout_write (guint32 scanout_id, guint8 * out);
gboolean hxfr_disable_scanout_parse (const guint8 * in, gsize len,
    guint32 * scanout_id, GError ** error);
/* The connector name is "Virtual-<scanout_id + 1>", as deployed. */
gsize hxfr_scanout_resp_write (guint32 scanout_id, gboolean success,
    guint8 * out);
gboolean hxfr_scanout_resp_parse (const guint8 * in, gsize len,
    HxfrScanoutResp * r, GError ** error);
/* The fixed part of a deployed pushed frame for an access unit of
 * @au_size bytes; the access unit follows it on the wire. */
gsize hxfr_pushed_frame_write (gint64 pts, gboolean keyframe, gsize au_size,
    guint8 * out);

gsize hxfr_subscribe2_write (const HxfrSubscribe2 * s, guint8 * out);
gboolean hxfr_subscribe2_parse (const guint8 * in, gsize len,
    HxfrSubscribe2 * s, GError ** error);
gsize hxfr_subscribe2_ack_write (const HxfrSubscribe2Ack * a, guint8 * out);
gboolean hxfr_subscribe2_ack_parse (const guint8 * in, gsize len,
    HxfrSubscribe2Ack * a, GError ** error);
gsize hxfr_scanout_frame_write (const HxfrScanoutFrame * f, guint8 * out);
gboolean hxfr_scanout_frame_parse (const guint8 * in, gsize len,
    HxfrScanoutFrame * f, GError ** error);
/* @text: at most HXFR_ERROR_TEXT_SIZE bytes are written (not terminated) */
gsize hxfr_scanout_end_write (guint32 reason, const gchar * text,
    guint8 * out);
gboolean hxfr_scanout_end_parse (const guint8 * in, gsize len,
    HxfrScanoutEnd * e, GError ** error);
const gchar *hxfr_scanout_end_reason_name (guint32 reason);
gsize hxfr_cursor_image_write (const HxfrCursorImage * c, guint8 * out);
/* @len: the whole payload; checks the sizes, the hotspot and that
 * width * height * 4 pixel bytes follow */
gboolean hxfr_cursor_image_parse (const guint8 * in, gsize len,
    HxfrCursorImage * c, GError ** error);
gsize hxfr_cursor_position_write (const HxfrCursorPosition * p, guint8 * out);
gboolean hxfr_cursor_position_parse (const guint8 * in, gsize len,
    HxfrCursorPosition * p, GError ** error);

G_END_DECLS
