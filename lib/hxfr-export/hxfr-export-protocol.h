/* Helix export protocol codec: bridge (client) <-> VMM (server) over a
 * UNIX stream socket, file descriptors passed as SCM_RIGHTS.
 *
 * The only code that turns export-protocol bytes into values and back.
 * docs/export-protocol.md is the specification; the wire layouts are
 * frozen by static asserts in hxfr-export-protocol.c.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#pragma once

#include <gio/gio.h>

G_BEGIN_DECLS

#define HXEX_MAGIC 0x58455848u  /* "HXEX" on the wire, little-endian */
#define HXEX_VERSION 1
/* Version 2 adds scanout watches (docs/export-protocol.md, "Scanouts"). */
#define HXEX_VERSION_SCANOUTS 2
/* Version 3 adds the cursor plane on a watch (docs/export-protocol.md,
 * "Cursor"). */
#define HXEX_VERSION_CURSOR 3
/* Version 4 adds snapshots on a watch: the VMM copies a watched
 * scanout's picture at the flush (docs/export-protocol.md, "Snapshots"). */
#define HXEX_VERSION_SNAPSHOTS 4
#define HXEX_MAX_VERSION HXEX_VERSION_SNAPSHOTS
/* No VMM reports more scanouts than this (QEMU's max_outputs is 16). */
#define HXEX_MAX_SCANOUTS 16
#define HXEX_HEADER_SIZE 16
#define HXEX_MAX_PLANES 4
#define HXEX_ERROR_TEXT_SIZE 124
/* No message carries more than this many descriptors. */
#define HXEX_MAX_FDS 4

typedef enum
{
  HXEX_MSG_HELLO = 0x01,        /* client -> server */
  HXEX_MSG_HELLO_ACK = 0x02,    /* server -> client, 1 fd (the ring) if n_slots */
  HXEX_MSG_RESOLVE = 0x03,      /* client -> server */
  HXEX_MSG_SURFACE = 0x04,      /* server -> client, 1 fd for DMABUF */
  HXEX_MSG_RELEASE = 0x05,      /* client -> server, never answered */
  HXEX_MSG_ERROR = 0x06,        /* server -> client */
  /* version 2 only */
  HXEX_MSG_WATCH = 0x07,        /* client -> server */
  HXEX_MSG_SCANOUT = 0x08,      /* server -> client (a watch) */
  HXEX_MSG_FLUSH = 0x09,        /* server -> client (a watch) */
  HXEX_MSG_SCANOUT_CONTROL = 0x0A,      /* client -> server (a watch) */
  HXEX_MSG_SCANOUT_CONTROL_ACK = 0x0B,  /* server -> client (a watch) */
  /* version 3 only */
  HXEX_MSG_CURSOR_SHAPE = 0x0C, /* server -> client (a watch), 1 fd */
  HXEX_MSG_CURSOR_MOVE = 0x0D,  /* server -> client (a watch) */
  /* version 4 only */
  HXEX_MSG_SNAPSHOTS = 0x0E,    /* client -> server (a watch with a ring) */
  HXEX_MSG_FLUSH_SNAPSHOT = 0x0F,       /* server -> client (a watch) */
} HxexMsgType;

/* Fixed payload sizes: every message has exactly this payload. */
#define HXEX_HELLO_SIZE 16
#define HXEX_HELLO_ACK_SIZE 32
#define HXEX_RESOLVE_SIZE 16
#define HXEX_SURFACE_SIZE 80
#define HXEX_RELEASE_SIZE 8
#define HXEX_ERROR_SIZE 128
#define HXEX_WATCH_SIZE 8
#define HXEX_SCANOUT_SIZE 32
#define HXEX_FLUSH_SIZE 32
#define HXEX_SCANOUT_CONTROL_SIZE 24
#define HXEX_SCANOUT_CONTROL_ACK_SIZE 8
#define HXEX_CURSOR_SHAPE_SIZE 32
#define HXEX_CURSOR_MOVE_SIZE 24
#define HXEX_SNAPSHOTS_SIZE 8
#define HXEX_FLUSH_SNAPSHOT_SIZE 64
#define HXEX_MAX_PAYLOAD_SIZE HXEX_ERROR_SIZE

typedef enum
{
  HXEX_KIND_READBACK_SLOT = 1,
  HXEX_KIND_DMABUF = 2,
  HXEX_KIND_IOSURFACE = 3,
} HxexKind;

#define HXEX_KIND_BIT(k) (1u << (k))
#define HXEX_KINDS_ALL (HXEX_KIND_BIT (HXEX_KIND_READBACK_SLOT) | \
    HXEX_KIND_BIT (HXEX_KIND_DMABUF) | HXEX_KIND_BIT (HXEX_KIND_IOSURFACE))

/* Codes carried by ERROR, and the codes of HXEX_ERROR GErrors. */
typedef enum
{
  HXEX_ERR_UNKNOWN_RESOURCE = 1,
  HXEX_ERR_UNSUPPORTED_FORMAT = 2,
  HXEX_ERR_BUSY = 3,
  HXEX_ERR_INTERNAL = 4,
  HXEX_ERR_PROTOCOL = 5,        /* malformed or unexpected message */
  HXEX_ERR_TOO_LARGE = 6,       /* does not fit a slot */
  HXEX_ERR_VERSION = 7,         /* no common protocol version */
  HXEX_ERR_RELEASED = 8,        /* client side: surface already released */
  HXEX_ERR_REFUSED = 9,         /* SCANOUT_CONTROL refused */
  HXEX_ERR_NO_SCANOUTS = 10,    /* WATCH on a VMM that reports no scanouts */
} HxexErrorCode;

#define HXEX_DRM_FORMAT_MOD_LINEAR 0ull
#define HXEX_DRM_FORMAT_MOD_INVALID 0x00ffffffffffffffull

typedef struct
{
  guint8 type;
  guint8 n_fds;
  guint32 payload_size;
  guint32 request_id;
} HxexHeader;

typedef struct
{
  guint16 min_version;
  guint16 max_version;
  guint32 kinds;                /* HXEX_KIND_BIT mask the client can take */
} HxexHello;

typedef struct
{
  guint16 version;
  guint32 kinds;                /* kinds the server may answer with */
  guint32 n_slots;
  guint64 slot_size;
  guint32 max_width;
  guint32 max_height;
} HxexHelloAck;

typedef struct
{
  guint32 resource_id;
  guint32 kinds;                /* accepted for this request, 0 = any */
} HxexResolve;

typedef struct
{
  guint32 handle;
  HxexKind kind;
  guint n_planes;
  guint32 flags;
  guint32 fourcc;
  guint32 width;
  guint32 height;
  guint32 slot;                 /* READBACK_SLOT */
  guint64 modifier;
  guint32 iosurface_id;         /* IOSURFACE */
  guint64 size;                 /* bytes of the slot / DMA-BUF in use */
  guint32 stride[HXEX_MAX_PLANES];
  guint32 offset[HXEX_MAX_PLANES];
} HxexSurface;

typedef struct
{
  gint32 code;
  gchar message[HXEX_ERROR_TEXT_SIZE + 1];      /* NUL-terminated */
} HxexErrorMsg;

/* SCANOUT flags */
#define HXEX_SCANOUT_ENABLED 0x1u

typedef struct
{
  guint32 index;
  guint32 flags;                /* HXEX_SCANOUT_ENABLED */
  guint32 resource_id;          /* 0 = nothing shown */
  guint32 width;
  guint32 height;
  guint32 fourcc;               /* DRM fourcc, 0 = unknown */
  guint32 n_scanouts;
} HxexScanout;

typedef struct
{
  guint32 index;
  guint32 resource_id;
  guint32 x, y, width, height;
  guint64 time_ns;              /* VMM CLOCK_MONOTONIC */
} HxexFlush;

typedef struct
{
  guint32 index;
  guint32 enable;               /* 1 connect, 0 disconnect */
  guint32 width;
  guint32 height;
  guint32 refresh_hz;
} HxexScanoutControl;

typedef struct
{
  guint32 index;
  gint32 status;                /* 0 ok, else an HxexErrorCode */
} HxexScanoutControlAck;

/* Cursor images are ARGB8888 (fourcc AR24: B G R A in memory), at most
 * this wide and high: virtio-gpu's are 64x64; the bound is what a hostile
 * VMM can make a client hold per scanout (256 KiB). */
#define HXEX_CURSOR_MAX_SIZE 256
#define HXEX_CURSOR_FOURCC 0x34325241u  /* AR24 */
/* CURSOR_MOVE flags */
#define HXEX_CURSOR_VISIBLE 0x1u

typedef struct
{
  guint32 index;
  guint32 width;                /* 1..HXEX_CURSOR_MAX_SIZE */
  guint32 height;
  guint32 hot_x;                /* < width */
  guint32 hot_y;                /* < height */
  guint32 fourcc;               /* HXEX_CURSOR_FOURCC */
  guint64 size;                 /* width * height * 4, in the descriptor */
} HxexCursorShape;

typedef struct
{
  guint32 index;
  guint32 flags;                /* HXEX_CURSOR_VISIBLE */
  gint32 x;                     /* the hotspot, in scanout pixels */
  gint32 y;
  guint64 time_ns;              /* VMM CLOCK_MONOTONIC */
} HxexCursorMove;

/* Version 4: a FLUSH whose picture the VMM copied, at the flush, into a
 * readback slot of the watch's ring; the watcher holds @handle (RELEASE)
 * until it has read the slot. */
typedef struct
{
  HxexFlush flush;
  guint32 handle;               /* non-zero */
  guint32 slot;                 /* < the watch's n_slots */
  guint32 width;                /* of the picture (the resource) */
  guint32 height;
  guint32 stride;               /* bytes a row, >= width * 4 */
  guint32 fourcc;               /* AR24, XR24, AB24 or XB24 */
  guint64 size;                 /* bytes of the slot in use, >= stride * height */
} HxexFlushSnapshot;

#define HXEX_ERROR (hxex_error_quark ())
GQuark hxex_error_quark (void);

const gchar *hxex_msg_type_name (guint type);
const gchar *hxex_error_code_name (gint code);
const gchar *hxex_kind_name (guint kind);

void hxex_header_write (guint8 out[HXEX_HEADER_SIZE], const HxexHeader * h);
/* Checks magic, type, the payload size of the type and the descriptor
 * count the type allows. HXEX_ERROR_PROTOCOL on failure. */
gboolean hxex_header_parse (const guint8 in[HXEX_HEADER_SIZE],
    HxexHeader * h, GError ** error);
/* Payload size of a message type, 0 if the type is unknown. */
gsize hxex_msg_payload_size (guint type);

/* write returns the payload size written to @out (HXEX_MAX_PAYLOAD_SIZE
 * bytes available); parse reads exactly the payload size of the type. */
gsize hxex_hello_write (const HxexHello * m, guint8 * out);
gboolean hxex_hello_parse (const guint8 * in, gsize len, HxexHello * m,
    GError ** error);
gsize hxex_hello_ack_write (const HxexHelloAck * m, guint8 * out);
gboolean hxex_hello_ack_parse (const guint8 * in, gsize len,
    HxexHelloAck * m, GError ** error);
gsize hxex_resolve_write (const HxexResolve * m, guint8 * out);
gboolean hxex_resolve_parse (const guint8 * in, gsize len, HxexResolve * m,
    GError ** error);
gsize hxex_surface_write (const HxexSurface * m, guint8 * out);
/* Also checks the description is self-consistent: known kind, 1..4
 * planes, non-zero size, planes inside @size. */
gboolean hxex_surface_parse (const guint8 * in, gsize len, HxexSurface * m,
    GError ** error);
gsize hxex_release_write (guint32 handle, guint8 * out);
gboolean hxex_release_parse (const guint8 * in, gsize len, guint32 * handle,
    GError ** error);
gsize hxex_error_write (gint32 code, const gchar * message, guint8 * out);
gboolean hxex_error_parse (const guint8 * in, gsize len, HxexErrorMsg * m,
    GError ** error);

/* Version 2. The parsers check what holds whatever the peer: index <
 * n_scanouts <= HXEX_MAX_SCANOUTS (SCANOUT), enable 0 or 1 (CONTROL);
 * the receiver checks the rest against its own state (its n_scanouts). */
gsize hxex_watch_write (guint8 * out);
gboolean hxex_watch_parse (const guint8 * in, gsize len, GError ** error);
gsize hxex_scanout_write (const HxexScanout * m, guint8 * out);
gboolean hxex_scanout_parse (const guint8 * in, gsize len, HxexScanout * m,
    GError ** error);
gsize hxex_flush_write (const HxexFlush * m, guint8 * out);
gboolean hxex_flush_parse (const guint8 * in, gsize len, HxexFlush * m,
    GError ** error);
gsize hxex_scanout_control_write (const HxexScanoutControl * m,
    guint8 * out);
gboolean hxex_scanout_control_parse (const guint8 * in, gsize len,
    HxexScanoutControl * m, GError ** error);
gsize hxex_scanout_control_ack_write (const HxexScanoutControlAck * m,
    guint8 * out);
gboolean hxex_scanout_control_ack_parse (const guint8 * in, gsize len,
    HxexScanoutControlAck * m, GError ** error);

/* Version 3. The shape's parser checks the sizes against
 * HXEX_CURSOR_MAX_SIZE, the hotspot inside, the fourcc and size; both
 * check index < HXEX_MAX_SCANOUTS. */
gsize hxex_cursor_shape_write (const HxexCursorShape * m, guint8 * out);
gboolean hxex_cursor_shape_parse (const guint8 * in, gsize len,
    HxexCursorShape * m, GError ** error);
gsize hxex_cursor_move_write (const HxexCursorMove * m, guint8 * out);
gboolean hxex_cursor_move_parse (const guint8 * in, gsize len,
    HxexCursorMove * m, GError ** error);

/* Version 4. SNAPSHOTS: bit N of @mask = snapshots of scanout N's
 * flushes wanted (the parser checks nothing the receiver's n_scanouts
 * does not). FLUSH_SNAPSHOT: the parser checks what holds whatever the
 * ring (index, handle, sizes, stride, fourcc, size >= stride * height,
 * in 64 bits); the receiver checks slot and size against its ring. */
gsize hxex_snapshots_write (guint32 mask, guint8 * out);
gboolean hxex_snapshots_parse (const guint8 * in, gsize len, guint32 * mask,
    GError ** error);
gsize hxex_flush_snapshot_write (const HxexFlushSnapshot * m, guint8 * out);
gboolean hxex_flush_snapshot_parse (const guint8 * in, gsize len,
    HxexFlushSnapshot * m, GError ** error);

/* Bytes per pixel of the single-plane RGB fourccs the export carries
 * (AR24, XR24, AB24, XB24), 0 for anything else. */
guint hxex_fourcc_bpp (guint32 fourcc);

/* Socket helpers shared by both ends. Both work on a non-blocking
 * GSocket and never wait. */

/* Sends @len bytes (header + payload) with @n_fds descriptors attached to
 * the first byte. Returns the number of bytes sent (> 0; the descriptors
 * went with them), -1 with G_IO_ERROR_WOULD_BLOCK when nothing could be
 * sent, -1 on error. The caller sends the rest with no descriptors. */
gssize hxex_socket_send (GSocket * socket, const guint8 * buf, gsize len,
    const gint * fds, guint n_fds, GError ** error);
/* Receives up to @len bytes; descriptors that arrive are appended to
 * @fds (a GArray of gint, the caller owns them). 0 = peer closed, -1 with
 * G_IO_ERROR_WOULD_BLOCK when nothing is there. */
gssize hxex_socket_receive (GSocket * socket, guint8 * buf, gsize len,
    GArray * fds, GError ** error);
/* Closes and removes every descriptor in @fds. */
void hxex_fds_clear (GArray * fds);

/* Framing: the message stream of one export connection, the same for the
 * bridge's client and watch and for the VMM. Whole messages in and out,
 * descriptors with the first byte of a message, every wait bounded by one
 * deadline per message. Sends are serialised here (any thread may send,
 * while another reads); the owner has one reader at a time. */

/* A deadline (monotonic microseconds) that never waits: a read or send
 * that would block fails with G_IO_ERROR_WOULD_BLOCK (the VMM's side,
 * driven by its poll loop). -1 waits without bound. */
#define HXEX_DEADLINE_NOW 0

typedef struct
{
  GSocket *socket;              /* not owned */
  const gchar *peer_closed;     /* error text when the peer closes */
  GMutex send_lock;             /* one whole message at a time */
  /* the message being read; after a read, until the next one, the one
   * read (payload at HXEX_HEADER_SIZE) */
  guint8 buf[HXEX_HEADER_SIZE + HXEX_MAX_PAYLOAD_SIZE];
  gsize have;
  gboolean have_header;
  HxexHeader header;
  /* descriptors received and not taken (hxex_stream_take_fds) */
  GArray *fds;
} HxexStream;

/* @peer_closed: e.g. "the VMM closed the helix export connection". */
void hxex_stream_init (HxexStream * stream, GSocket * socket,
    const gchar * peer_closed);
/* Closes the descriptors not taken. The socket is the caller's. */
void hxex_stream_clear (HxexStream * stream);

/* Reads one whole message, its header checked (hxex_header_parse) before
 * its payload is read; the payload is at hxex_stream_payload() until the
 * next read, the descriptors that came with it in stream->fds. What
 * arrived of a message that is not whole by @deadline is kept for the
 * next call. Errors: G_IO_ERROR_TIMED_OUT (the deadline passed),
 * G_IO_ERROR_WOULD_BLOCK (HXEX_DEADLINE_NOW), G_IO_ERROR_CONNECTION_CLOSED
 * (the peer closed), another G_IO_ERROR (the socket), HXEX_ERROR (a bad
 * header: the stream is lost). */
gboolean hxex_stream_read (HxexStream * stream, HxexHeader * header,
    gint64 deadline, GError ** error);
const guint8 *hxex_stream_payload (HxexStream * stream);
/* Moves the descriptors @header announces from stream->fds to @out and
 * closes any beyond them (they belong to no message). HXEX_ERR_PROTOCOL
 * if fewer arrived than announced. */
gboolean hxex_stream_take_fds (HxexStream * stream, const HxexHeader * header,
    GArray * out, GError ** error);

/* Sends one message whole, @fds (the caller keeps its own) with its first
 * byte, waiting for room until @deadline. On failure *@broken (may be
 * NULL) says whether the stream is lost: part of the message went out, or
 * the socket failed; a deadline that passed (or HXEX_DEADLINE_NOW and a
 * full socket) before the first byte leaves it usable. */
gboolean hxex_stream_send (HxexStream * stream, guint8 type,
    guint32 request_id, const guint8 * payload, gsize payload_len,
    const gint * fds, guint n_fds, gint64 deadline, gboolean * broken,
    GError ** error);

G_END_DECLS
