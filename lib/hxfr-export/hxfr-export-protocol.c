/* Helix export protocol codec. See hxfr-export-protocol.h and
 * docs/export-protocol.md.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "hxfr-export-protocol.h"
#include "hxfr-transport.h"

#include <stddef.h>
#include <string.h>
#include <unistd.h>
#include <gio/gunixfdmessage.h>

/* Wire layouts: little-endian, no padding, never used outside this file. */
#define HXEX_PACKED __attribute__((packed))

typedef struct HXEX_PACKED
{
  guint32 magic;
  guint8 msg_type;
  guint8 n_fds;
  guint16 reserved;
  guint32 payload_size;
  guint32 request_id;
} WireHeader;

typedef struct HXEX_PACKED
{
  guint16 min_version;
  guint16 max_version;
  guint32 kinds;
  guint64 reserved;
} WireHello;

typedef struct HXEX_PACKED
{
  guint16 version;
  guint16 reserved0;
  guint32 kinds;
  guint32 n_slots;
  guint32 reserved1;
  guint64 slot_size;
  guint32 max_width;
  guint32 max_height;
} WireHelloAck;

typedef struct HXEX_PACKED
{
  guint32 resource_id;
  guint32 kinds;
  guint64 reserved;
} WireResolve;

typedef struct HXEX_PACKED
{
  guint32 handle;
  guint8 kind;
  guint8 n_planes;
  guint16 flags;
  guint32 fourcc;
  guint32 width;
  guint32 height;
  guint32 slot;
  guint64 modifier;
  guint32 iosurface_id;
  guint32 reserved;
  guint64 size;
  guint32 stride[HXEX_MAX_PLANES];
  guint32 offset[HXEX_MAX_PLANES];
} WireSurface;

typedef struct HXEX_PACKED
{
  guint32 handle;
  guint32 reserved;
} WireRelease;

typedef struct HXEX_PACKED
{
  gint32 code;
  gchar message[HXEX_ERROR_TEXT_SIZE];
} WireError;

typedef struct HXEX_PACKED
{
  guint64 reserved;
} WireWatch;

typedef struct HXEX_PACKED
{
  guint32 index;
  guint32 flags;
  guint32 resource_id;
  guint32 width;
  guint32 height;
  guint32 fourcc;
  guint32 n_scanouts;
  guint32 reserved;
} WireScanout;

typedef struct HXEX_PACKED
{
  guint32 index;
  guint32 resource_id;
  guint32 x;
  guint32 y;
  guint32 width;
  guint32 height;
  guint64 time_ns;
} WireFlush;

typedef struct HXEX_PACKED
{
  guint32 index;
  guint32 enable;
  guint32 width;
  guint32 height;
  guint32 refresh_hz;
  guint32 reserved;
} WireScanoutControl;

typedef struct HXEX_PACKED
{
  guint32 index;
  gint32 status;
} WireScanoutControlAck;

typedef struct HXEX_PACKED
{
  guint32 index;
  guint32 width;
  guint32 height;
  guint32 hot_x;
  guint32 hot_y;
  guint32 fourcc;
  guint64 size;
} WireCursorShape;

typedef struct HXEX_PACKED
{
  guint32 index;
  guint32 flags;
  gint32 x;
  gint32 y;
  guint64 time_ns;
} WireCursorMove;

typedef struct HXEX_PACKED
{
  guint32 mask;
  guint32 reserved;
} WireSnapshots;

typedef struct HXEX_PACKED
{
  WireFlush flush;
  guint32 handle;
  guint32 slot;
  guint32 width;
  guint32 height;
  guint32 stride;
  guint32 fourcc;
  guint64 size;
} WireFlushSnapshot;

G_STATIC_ASSERT (sizeof (WireHeader) == HXEX_HEADER_SIZE);
G_STATIC_ASSERT (offsetof (WireHeader, msg_type) == 4);
G_STATIC_ASSERT (offsetof (WireHeader, n_fds) == 5);
G_STATIC_ASSERT (offsetof (WireHeader, payload_size) == 8);
G_STATIC_ASSERT (offsetof (WireHeader, request_id) == 12);
G_STATIC_ASSERT (sizeof (WireHello) == HXEX_HELLO_SIZE);
G_STATIC_ASSERT (offsetof (WireHello, kinds) == 4);
G_STATIC_ASSERT (sizeof (WireHelloAck) == HXEX_HELLO_ACK_SIZE);
G_STATIC_ASSERT (offsetof (WireHelloAck, kinds) == 4);
G_STATIC_ASSERT (offsetof (WireHelloAck, n_slots) == 8);
G_STATIC_ASSERT (offsetof (WireHelloAck, slot_size) == 16);
G_STATIC_ASSERT (offsetof (WireHelloAck, max_width) == 24);
G_STATIC_ASSERT (sizeof (WireResolve) == HXEX_RESOLVE_SIZE);
G_STATIC_ASSERT (sizeof (WireSurface) == HXEX_SURFACE_SIZE);
G_STATIC_ASSERT (offsetof (WireSurface, kind) == 4);
G_STATIC_ASSERT (offsetof (WireSurface, fourcc) == 8);
G_STATIC_ASSERT (offsetof (WireSurface, slot) == 20);
G_STATIC_ASSERT (offsetof (WireSurface, modifier) == 24);
G_STATIC_ASSERT (offsetof (WireSurface, iosurface_id) == 32);
G_STATIC_ASSERT (offsetof (WireSurface, size) == 40);
G_STATIC_ASSERT (offsetof (WireSurface, stride) == 48);
G_STATIC_ASSERT (offsetof (WireSurface, offset) == 64);
G_STATIC_ASSERT (sizeof (WireRelease) == HXEX_RELEASE_SIZE);
G_STATIC_ASSERT (sizeof (WireError) == HXEX_ERROR_SIZE);
G_STATIC_ASSERT (sizeof (WireWatch) == HXEX_WATCH_SIZE);
G_STATIC_ASSERT (sizeof (WireScanout) == HXEX_SCANOUT_SIZE);
G_STATIC_ASSERT (offsetof (WireScanout, resource_id) == 8);
G_STATIC_ASSERT (offsetof (WireScanout, fourcc) == 20);
G_STATIC_ASSERT (offsetof (WireScanout, n_scanouts) == 24);
G_STATIC_ASSERT (sizeof (WireFlush) == HXEX_FLUSH_SIZE);
G_STATIC_ASSERT (offsetof (WireFlush, x) == 8);
G_STATIC_ASSERT (offsetof (WireFlush, time_ns) == 24);
G_STATIC_ASSERT (sizeof (WireScanoutControl) == HXEX_SCANOUT_CONTROL_SIZE);
G_STATIC_ASSERT (offsetof (WireScanoutControl, refresh_hz) == 16);
G_STATIC_ASSERT (sizeof (WireScanoutControlAck) ==
    HXEX_SCANOUT_CONTROL_ACK_SIZE);
G_STATIC_ASSERT (sizeof (WireCursorShape) == HXEX_CURSOR_SHAPE_SIZE);
G_STATIC_ASSERT (offsetof (WireCursorShape, hot_x) == 12);
G_STATIC_ASSERT (offsetof (WireCursorShape, size) == 24);
G_STATIC_ASSERT (sizeof (WireCursorMove) == HXEX_CURSOR_MOVE_SIZE);
G_STATIC_ASSERT (sizeof (WireSnapshots) == HXEX_SNAPSHOTS_SIZE);
G_STATIC_ASSERT (sizeof (WireFlushSnapshot) == HXEX_FLUSH_SNAPSHOT_SIZE);
G_STATIC_ASSERT (offsetof (WireFlushSnapshot, handle) == 32);
G_STATIC_ASSERT (offsetof (WireFlushSnapshot, stride) == 48);
G_STATIC_ASSERT (offsetof (WireFlushSnapshot, size) == 56);
G_STATIC_ASSERT (offsetof (WireCursorMove, x) == 8);
G_STATIC_ASSERT (offsetof (WireCursorMove, time_ns) == 16);
G_STATIC_ASSERT (HXEX_MAX_PAYLOAD_SIZE >= HXEX_SURFACE_SIZE);

/* not G_DEFINE_QUARK: gst-indent spaces out its unquoted name, and the
 * quark's string with it */
GQuark
hxex_error_quark (void)
{
  return g_quark_from_static_string ("hxex-error-quark");
}

const gchar *
hxex_msg_type_name (guint type)
{
  switch (type) {
    case HXEX_MSG_HELLO:
      return "HELLO";
    case HXEX_MSG_HELLO_ACK:
      return "HELLO_ACK";
    case HXEX_MSG_RESOLVE:
      return "RESOLVE";
    case HXEX_MSG_SURFACE:
      return "SURFACE";
    case HXEX_MSG_RELEASE:
      return "RELEASE";
    case HXEX_MSG_ERROR:
      return "ERROR";
    case HXEX_MSG_WATCH:
      return "WATCH";
    case HXEX_MSG_SCANOUT:
      return "SCANOUT";
    case HXEX_MSG_FLUSH:
      return "FLUSH";
    case HXEX_MSG_SCANOUT_CONTROL:
      return "SCANOUT_CONTROL";
    case HXEX_MSG_SCANOUT_CONTROL_ACK:
      return "SCANOUT_CONTROL_ACK";
    case HXEX_MSG_CURSOR_SHAPE:
      return "CURSOR_SHAPE";
    case HXEX_MSG_CURSOR_MOVE:
      return "CURSOR_MOVE";
    case HXEX_MSG_SNAPSHOTS:
      return "SNAPSHOTS";
    case HXEX_MSG_FLUSH_SNAPSHOT:
      return "FLUSH_SNAPSHOT";
    default:
      return "unknown";
  }
}

const gchar *
hxex_error_code_name (gint code)
{
  switch (code) {
    case HXEX_ERR_UNKNOWN_RESOURCE:
      return "unknown resource";
    case HXEX_ERR_UNSUPPORTED_FORMAT:
      return "unsupported format";
    case HXEX_ERR_BUSY:
      return "busy";
    case HXEX_ERR_INTERNAL:
      return "internal error";
    case HXEX_ERR_PROTOCOL:
      return "protocol error";
    case HXEX_ERR_TOO_LARGE:
      return "too large";
    case HXEX_ERR_VERSION:
      return "no common version";
    case HXEX_ERR_RELEASED:
      return "already released";
    case HXEX_ERR_REFUSED:
      return "refused";
    case HXEX_ERR_NO_SCANOUTS:
      return "no scanouts";
    default:
      return "unknown error";
  }
}

const gchar *
hxex_kind_name (guint kind)
{
  switch (kind) {
    case HXEX_KIND_READBACK_SLOT:
      return "readback-slot";
    case HXEX_KIND_DMABUF:
      return "dmabuf";
    case HXEX_KIND_IOSURFACE:
      return "iosurface";
    default:
      return "unknown";
  }
}

gsize
hxex_msg_payload_size (guint type)
{
  switch (type) {
    case HXEX_MSG_HELLO:
      return HXEX_HELLO_SIZE;
    case HXEX_MSG_HELLO_ACK:
      return HXEX_HELLO_ACK_SIZE;
    case HXEX_MSG_RESOLVE:
      return HXEX_RESOLVE_SIZE;
    case HXEX_MSG_SURFACE:
      return HXEX_SURFACE_SIZE;
    case HXEX_MSG_RELEASE:
      return HXEX_RELEASE_SIZE;
    case HXEX_MSG_ERROR:
      return HXEX_ERROR_SIZE;
    case HXEX_MSG_WATCH:
      return HXEX_WATCH_SIZE;
    case HXEX_MSG_SCANOUT:
      return HXEX_SCANOUT_SIZE;
    case HXEX_MSG_FLUSH:
      return HXEX_FLUSH_SIZE;
    case HXEX_MSG_SCANOUT_CONTROL:
      return HXEX_SCANOUT_CONTROL_SIZE;
    case HXEX_MSG_SCANOUT_CONTROL_ACK:
      return HXEX_SCANOUT_CONTROL_ACK_SIZE;
    case HXEX_MSG_CURSOR_SHAPE:
      return HXEX_CURSOR_SHAPE_SIZE;
    case HXEX_MSG_CURSOR_MOVE:
      return HXEX_CURSOR_MOVE_SIZE;
    case HXEX_MSG_SNAPSHOTS:
      return HXEX_SNAPSHOTS_SIZE;
    case HXEX_MSG_FLUSH_SNAPSHOT:
      return HXEX_FLUSH_SNAPSHOT_SIZE;
    default:
      return 0;
  }
}

/* Descriptors a message of @type may carry. */
static guint
max_fds_for_type (guint type)
{
  switch (type) {
    case HXEX_MSG_HELLO_ACK:
    case HXEX_MSG_SURFACE:
    case HXEX_MSG_CURSOR_SHAPE:
      return 1;
    default:
      return 0;
  }
}

void
hxex_header_write (guint8 out[HXEX_HEADER_SIZE], const HxexHeader * h)
{
  WireHeader w;

  memset (&w, 0, sizeof (w));
  w.magic = GUINT32_TO_LE (HXEX_MAGIC);
  w.msg_type = h->type;
  w.n_fds = h->n_fds;
  w.payload_size = GUINT32_TO_LE (h->payload_size);
  w.request_id = GUINT32_TO_LE (h->request_id);
  memcpy (out, &w, sizeof (w));
}

gboolean
hxex_header_parse (const guint8 in[HXEX_HEADER_SIZE], HxexHeader * h,
    GError ** error)
{
  WireHeader w;
  gsize expected;

  memcpy (&w, in, sizeof (w));
  if (GUINT32_FROM_LE (w.magic) != HXEX_MAGIC) {
    g_set_error (error, HXEX_ERROR, HXEX_ERR_PROTOCOL,
        "bad magic 0x%08x (expected 0x%08x, \"HXEX\")",
        GUINT32_FROM_LE (w.magic), HXEX_MAGIC);
    return FALSE;
  }
  h->type = w.msg_type;
  h->n_fds = w.n_fds;
  h->payload_size = GUINT32_FROM_LE (w.payload_size);
  h->request_id = GUINT32_FROM_LE (w.request_id);

  expected = hxex_msg_payload_size (h->type);
  if (expected == 0) {
    g_set_error (error, HXEX_ERROR, HXEX_ERR_PROTOCOL,
        "unknown message type 0x%02x", h->type);
    return FALSE;
  }
  if (h->payload_size != expected) {
    g_set_error (error, HXEX_ERROR, HXEX_ERR_PROTOCOL,
        "%s with a %u-byte payload (must be %" G_GSIZE_FORMAT ")",
        hxex_msg_type_name (h->type), h->payload_size, expected);
    return FALSE;
  }
  if (h->n_fds > max_fds_for_type (h->type)) {
    g_set_error (error, HXEX_ERROR, HXEX_ERR_PROTOCOL,
        "%s announces %u file descriptors (at most %u)",
        hxex_msg_type_name (h->type), h->n_fds, max_fds_for_type (h->type));
    return FALSE;
  }
  return TRUE;
}

static gboolean
check_len (guint type, gsize len, GError ** error)
{
  if (len != hxex_msg_payload_size (type)) {
    g_set_error (error, HXEX_ERROR, HXEX_ERR_PROTOCOL,
        "%s payload of %" G_GSIZE_FORMAT " bytes (must be %" G_GSIZE_FORMAT
        ")", hxex_msg_type_name (type), len, hxex_msg_payload_size (type));
    return FALSE;
  }
  return TRUE;
}

gsize
hxex_hello_write (const HxexHello * m, guint8 * out)
{
  WireHello w;

  memset (&w, 0, sizeof (w));
  w.min_version = GUINT16_TO_LE (m->min_version);
  w.max_version = GUINT16_TO_LE (m->max_version);
  w.kinds = GUINT32_TO_LE (m->kinds);
  memcpy (out, &w, sizeof (w));
  return sizeof (w);
}

gboolean
hxex_hello_parse (const guint8 * in, gsize len, HxexHello * m, GError ** error)
{
  WireHello w;

  if (!check_len (HXEX_MSG_HELLO, len, error))
    return FALSE;
  memcpy (&w, in, sizeof (w));
  m->min_version = GUINT16_FROM_LE (w.min_version);
  m->max_version = GUINT16_FROM_LE (w.max_version);
  m->kinds = GUINT32_FROM_LE (w.kinds);
  if (m->min_version > m->max_version) {
    g_set_error (error, HXEX_ERROR, HXEX_ERR_PROTOCOL,
        "HELLO with versions %u..%u", m->min_version, m->max_version);
    return FALSE;
  }
  return TRUE;
}

gsize
hxex_hello_ack_write (const HxexHelloAck * m, guint8 * out)
{
  WireHelloAck w;

  memset (&w, 0, sizeof (w));
  w.version = GUINT16_TO_LE (m->version);
  w.kinds = GUINT32_TO_LE (m->kinds);
  w.n_slots = GUINT32_TO_LE (m->n_slots);
  w.slot_size = GUINT64_TO_LE (m->slot_size);
  w.max_width = GUINT32_TO_LE (m->max_width);
  w.max_height = GUINT32_TO_LE (m->max_height);
  memcpy (out, &w, sizeof (w));
  return sizeof (w);
}

gboolean
hxex_hello_ack_parse (const guint8 * in, gsize len, HxexHelloAck * m,
    GError ** error)
{
  WireHelloAck w;

  if (!check_len (HXEX_MSG_HELLO_ACK, len, error))
    return FALSE;
  memcpy (&w, in, sizeof (w));
  m->version = GUINT16_FROM_LE (w.version);
  m->kinds = GUINT32_FROM_LE (w.kinds);
  m->n_slots = GUINT32_FROM_LE (w.n_slots);
  m->slot_size = GUINT64_FROM_LE (w.slot_size);
  m->max_width = GUINT32_FROM_LE (w.max_width);
  m->max_height = GUINT32_FROM_LE (w.max_height);
  return TRUE;
}

gsize
hxex_resolve_write (const HxexResolve * m, guint8 * out)
{
  WireResolve w;

  memset (&w, 0, sizeof (w));
  w.resource_id = GUINT32_TO_LE (m->resource_id);
  w.kinds = GUINT32_TO_LE (m->kinds);
  memcpy (out, &w, sizeof (w));
  return sizeof (w);
}

gboolean
hxex_resolve_parse (const guint8 * in, gsize len, HxexResolve * m,
    GError ** error)
{
  WireResolve w;

  if (!check_len (HXEX_MSG_RESOLVE, len, error))
    return FALSE;
  memcpy (&w, in, sizeof (w));
  m->resource_id = GUINT32_FROM_LE (w.resource_id);
  m->kinds = GUINT32_FROM_LE (w.kinds);
  return TRUE;
}

gsize
hxex_surface_write (const HxexSurface * m, guint8 * out)
{
  WireSurface w;
  guint i;

  memset (&w, 0, sizeof (w));
  w.handle = GUINT32_TO_LE (m->handle);
  w.kind = m->kind;
  w.n_planes = m->n_planes;
  w.flags = GUINT16_TO_LE (m->flags);
  w.fourcc = GUINT32_TO_LE (m->fourcc);
  w.width = GUINT32_TO_LE (m->width);
  w.height = GUINT32_TO_LE (m->height);
  w.slot = GUINT32_TO_LE (m->slot);
  w.modifier = GUINT64_TO_LE (m->modifier);
  w.iosurface_id = GUINT32_TO_LE (m->iosurface_id);
  w.size = GUINT64_TO_LE (m->size);
  for (i = 0; i < HXEX_MAX_PLANES && i < m->n_planes; i++) {
    w.stride[i] = GUINT32_TO_LE (m->stride[i]);
    w.offset[i] = GUINT32_TO_LE (m->offset[i]);
  }
  memcpy (out, &w, sizeof (w));
  return sizeof (w);
}

gboolean
hxex_surface_parse (const guint8 * in, gsize len, HxexSurface * m,
    GError ** error)
{
  WireSurface w;
  guint i;

  if (!check_len (HXEX_MSG_SURFACE, len, error))
    return FALSE;
  memcpy (&w, in, sizeof (w));
  memset (m, 0, sizeof (*m));
  m->handle = GUINT32_FROM_LE (w.handle);
  m->kind = w.kind;
  m->n_planes = w.n_planes;
  m->flags = GUINT16_FROM_LE (w.flags);
  m->fourcc = GUINT32_FROM_LE (w.fourcc);
  m->width = GUINT32_FROM_LE (w.width);
  m->height = GUINT32_FROM_LE (w.height);
  m->slot = GUINT32_FROM_LE (w.slot);
  m->modifier = GUINT64_FROM_LE (w.modifier);
  m->iosurface_id = GUINT32_FROM_LE (w.iosurface_id);
  m->size = GUINT64_FROM_LE (w.size);

  if (m->kind < HXEX_KIND_READBACK_SLOT || m->kind > HXEX_KIND_IOSURFACE) {
    g_set_error (error, HXEX_ERROR, HXEX_ERR_PROTOCOL,
        "SURFACE of unknown kind %u", m->kind);
    return FALSE;
  }
  if (m->handle == 0 || m->width == 0 || m->height == 0) {
    g_set_error (error, HXEX_ERROR, HXEX_ERR_PROTOCOL,
        "SURFACE with handle %u and size %ux%u", m->handle, m->width,
        m->height);
    return FALSE;
  }
  if (m->n_planes < 1 || m->n_planes > HXEX_MAX_PLANES) {
    g_set_error (error, HXEX_ERROR, HXEX_ERR_PROTOCOL,
        "SURFACE with %u planes", m->n_planes);
    return FALSE;
  }
  for (i = 0; i < m->n_planes; i++) {
    m->stride[i] = GUINT32_FROM_LE (w.stride[i]);
    m->offset[i] = GUINT32_FROM_LE (w.offset[i]);
  }
  /* The pixel planes must lie inside the bytes the surface announces: a
   * reader maps exactly @size bytes. Only single-plane RGB formats have a
   * known row size; for the others, at least the rows must fit. */
  if (m->kind != HXEX_KIND_IOSURFACE) {
    guint bpp = hxex_fourcc_bpp (m->fourcc);

    for (i = 0; i < m->n_planes; i++) {
      guint64 rows = i == 0 ? m->height : (m->height + 1) / 2;
      guint64 end;

      if (i == 0 && bpp && (guint64) m->stride[0] < (guint64) m->width * bpp) {
        g_set_error (error, HXEX_ERROR, HXEX_ERR_PROTOCOL,
            "SURFACE stride %u below %u pixels of %u bytes", m->stride[0],
            m->width, bpp);
        return FALSE;
      }
      end = (guint64) m->offset[i] + (guint64) m->stride[i] * rows;
      if (m->stride[i] == 0 || end > m->size) {
        g_set_error (error, HXEX_ERROR, HXEX_ERR_PROTOCOL,
            "SURFACE plane %u (offset %u, stride %u, %" G_GUINT64_FORMAT
            " rows) outside its %" G_GUINT64_FORMAT " bytes", i,
            m->offset[i], m->stride[i], rows, m->size);
        return FALSE;
      }
    }
  }
  return TRUE;
}

gsize
hxex_release_write (guint32 handle, guint8 * out)
{
  WireRelease w;

  memset (&w, 0, sizeof (w));
  w.handle = GUINT32_TO_LE (handle);
  memcpy (out, &w, sizeof (w));
  return sizeof (w);
}

gboolean
hxex_release_parse (const guint8 * in, gsize len, guint32 * handle,
    GError ** error)
{
  WireRelease w;

  if (!check_len (HXEX_MSG_RELEASE, len, error))
    return FALSE;
  memcpy (&w, in, sizeof (w));
  *handle = GUINT32_FROM_LE (w.handle);
  return TRUE;
}

gsize
hxex_error_write (gint32 code, const gchar * message, guint8 * out)
{
  WireError w;

  memset (&w, 0, sizeof (w));
  w.code = GINT32_TO_LE (code);
  if (message)
    g_strlcpy (w.message, message, sizeof (w.message));
  memcpy (out, &w, sizeof (w));
  return sizeof (w);
}

gboolean
hxex_error_parse (const guint8 * in, gsize len, HxexErrorMsg * m,
    GError ** error)
{
  WireError w;

  if (!check_len (HXEX_MSG_ERROR, len, error))
    return FALSE;
  memcpy (&w, in, sizeof (w));
  m->code = GINT32_FROM_LE (w.code);
  memcpy (m->message, w.message, HXEX_ERROR_TEXT_SIZE);
  m->message[HXEX_ERROR_TEXT_SIZE] = '\0';
  return TRUE;
}

/* Version 2: scanouts */

gsize
hxex_watch_write (guint8 * out)
{
  memset (out, 0, HXEX_WATCH_SIZE);
  return HXEX_WATCH_SIZE;
}

gboolean
hxex_watch_parse (const guint8 * in, gsize len, GError ** error)
{
  return check_len (HXEX_MSG_WATCH, len, error);
}

gsize
hxex_scanout_write (const HxexScanout * m, guint8 * out)
{
  WireScanout w;

  memset (&w, 0, sizeof (w));
  w.index = GUINT32_TO_LE (m->index);
  w.flags = GUINT32_TO_LE (m->flags);
  w.resource_id = GUINT32_TO_LE (m->resource_id);
  w.width = GUINT32_TO_LE (m->width);
  w.height = GUINT32_TO_LE (m->height);
  w.fourcc = GUINT32_TO_LE (m->fourcc);
  w.n_scanouts = GUINT32_TO_LE (m->n_scanouts);
  memcpy (out, &w, sizeof (w));
  return sizeof (w);
}

gboolean
hxex_scanout_parse (const guint8 * in, gsize len, HxexScanout * m,
    GError ** error)
{
  WireScanout w;

  if (!check_len (HXEX_MSG_SCANOUT, len, error))
    return FALSE;
  memcpy (&w, in, sizeof (w));
  m->index = GUINT32_FROM_LE (w.index);
  m->flags = GUINT32_FROM_LE (w.flags);
  m->resource_id = GUINT32_FROM_LE (w.resource_id);
  m->width = GUINT32_FROM_LE (w.width);
  m->height = GUINT32_FROM_LE (w.height);
  m->fourcc = GUINT32_FROM_LE (w.fourcc);
  m->n_scanouts = GUINT32_FROM_LE (w.n_scanouts);
  if (m->n_scanouts == 0 || m->n_scanouts > HXEX_MAX_SCANOUTS
      || m->index >= m->n_scanouts) {
    g_set_error (error, HXEX_ERROR, HXEX_ERR_PROTOCOL,
        "SCANOUT %u of %u (at most %u scanouts)", m->index, m->n_scanouts,
        HXEX_MAX_SCANOUTS);
    return FALSE;
  }
  return TRUE;
}

/* FLUSH's fields, also the first 32 bytes of FLUSH_SNAPSHOT */
static void
flush_to_wire (const HxexFlush * m, WireFlush * w)
{
  w->index = GUINT32_TO_LE (m->index);
  w->resource_id = GUINT32_TO_LE (m->resource_id);
  w->x = GUINT32_TO_LE (m->x);
  w->y = GUINT32_TO_LE (m->y);
  w->width = GUINT32_TO_LE (m->width);
  w->height = GUINT32_TO_LE (m->height);
  w->time_ns = GUINT64_TO_LE (m->time_ns);
}

static gboolean
flush_from_wire (const WireFlush * w, HxexFlush * m, guint type,
    GError ** error)
{
  m->index = GUINT32_FROM_LE (w->index);
  m->resource_id = GUINT32_FROM_LE (w->resource_id);
  m->x = GUINT32_FROM_LE (w->x);
  m->y = GUINT32_FROM_LE (w->y);
  m->width = GUINT32_FROM_LE (w->width);
  m->height = GUINT32_FROM_LE (w->height);
  m->time_ns = GUINT64_FROM_LE (w->time_ns);
  if (m->index >= HXEX_MAX_SCANOUTS) {
    g_set_error (error, HXEX_ERROR, HXEX_ERR_PROTOCOL,
        "%s of scanout %u (at most %u scanouts)", hxex_msg_type_name (type),
        m->index, HXEX_MAX_SCANOUTS);
    return FALSE;
  }
  return TRUE;
}

gsize
hxex_flush_write (const HxexFlush * m, guint8 * out)
{
  WireFlush w;

  memset (&w, 0, sizeof (w));
  flush_to_wire (m, &w);
  memcpy (out, &w, sizeof (w));
  return sizeof (w);
}

gboolean
hxex_flush_parse (const guint8 * in, gsize len, HxexFlush * m, GError ** error)
{
  WireFlush w;

  if (!check_len (HXEX_MSG_FLUSH, len, error))
    return FALSE;
  memcpy (&w, in, sizeof (w));
  return flush_from_wire (&w, m, HXEX_MSG_FLUSH, error);
}

gsize
hxex_snapshots_write (guint32 mask, guint8 * out)
{
  WireSnapshots w;

  memset (&w, 0, sizeof (w));
  w.mask = GUINT32_TO_LE (mask);
  memcpy (out, &w, sizeof (w));
  return sizeof (w);
}

gboolean
hxex_snapshots_parse (const guint8 * in, gsize len, guint32 * mask,
    GError ** error)
{
  WireSnapshots w;

  if (!check_len (HXEX_MSG_SNAPSHOTS, len, error))
    return FALSE;
  memcpy (&w, in, sizeof (w));
  *mask = GUINT32_FROM_LE (w.mask);
  if (*mask >> HXEX_MAX_SCANOUTS) {
    g_set_error (error, HXEX_ERROR, HXEX_ERR_PROTOCOL,
        "SNAPSHOTS of scanouts 0x%08x (at most %u scanouts)", *mask,
        HXEX_MAX_SCANOUTS);
    return FALSE;
  }
  return TRUE;
}

gsize
hxex_flush_snapshot_write (const HxexFlushSnapshot * m, guint8 * out)
{
  WireFlushSnapshot w;

  memset (&w, 0, sizeof (w));
  flush_to_wire (&m->flush, &w.flush);
  w.handle = GUINT32_TO_LE (m->handle);
  w.slot = GUINT32_TO_LE (m->slot);
  w.width = GUINT32_TO_LE (m->width);
  w.height = GUINT32_TO_LE (m->height);
  w.stride = GUINT32_TO_LE (m->stride);
  w.fourcc = GUINT32_TO_LE (m->fourcc);
  w.size = GUINT64_TO_LE (m->size);
  memcpy (out, &w, sizeof (w));
  return sizeof (w);
}

gboolean
hxex_flush_snapshot_parse (const guint8 * in, gsize len,
    HxexFlushSnapshot * m, GError ** error)
{
  WireFlushSnapshot w;

  if (!check_len (HXEX_MSG_FLUSH_SNAPSHOT, len, error))
    return FALSE;
  memcpy (&w, in, sizeof (w));
  if (!flush_from_wire (&w.flush, &m->flush, HXEX_MSG_FLUSH_SNAPSHOT, error))
    return FALSE;
  m->handle = GUINT32_FROM_LE (w.handle);
  m->slot = GUINT32_FROM_LE (w.slot);
  m->width = GUINT32_FROM_LE (w.width);
  m->height = GUINT32_FROM_LE (w.height);
  m->stride = GUINT32_FROM_LE (w.stride);
  m->fourcc = GUINT32_FROM_LE (w.fourcc);
  m->size = GUINT64_FROM_LE (w.size);
  /* 64-bit products: no wrap can make a short slot look long enough */
  if (m->handle == 0 || m->width == 0 || m->height == 0
      || hxex_fourcc_bpp (m->fourcc) != 4
      || (guint64) m->stride < (guint64) m->width * 4
      || m->size < (guint64) m->stride * m->height) {
    g_set_error (error, HXEX_ERROR, HXEX_ERR_PROTOCOL,
        "FLUSH_SNAPSHOT handle %u: %ux%u stride %u fourcc 0x%08x in %"
        G_GUINT64_FORMAT " bytes (a handle, a size, 4-byte RGB, rows inside)",
        m->handle, m->width, m->height, m->stride, m->fourcc, m->size);
    return FALSE;
  }
  return TRUE;
}

gsize
hxex_scanout_control_write (const HxexScanoutControl * m, guint8 * out)
{
  WireScanoutControl w;

  memset (&w, 0, sizeof (w));
  w.index = GUINT32_TO_LE (m->index);
  w.enable = GUINT32_TO_LE (m->enable);
  w.width = GUINT32_TO_LE (m->width);
  w.height = GUINT32_TO_LE (m->height);
  w.refresh_hz = GUINT32_TO_LE (m->refresh_hz);
  memcpy (out, &w, sizeof (w));
  return sizeof (w);
}

gboolean
hxex_scanout_control_parse (const guint8 * in, gsize len,
    HxexScanoutControl * m, GError ** error)
{
  WireScanoutControl w;

  if (!check_len (HXEX_MSG_SCANOUT_CONTROL, len, error))
    return FALSE;
  memcpy (&w, in, sizeof (w));
  m->index = GUINT32_FROM_LE (w.index);
  m->enable = GUINT32_FROM_LE (w.enable);
  m->width = GUINT32_FROM_LE (w.width);
  m->height = GUINT32_FROM_LE (w.height);
  m->refresh_hz = GUINT32_FROM_LE (w.refresh_hz);
  if (m->enable > 1) {
    g_set_error (error, HXEX_ERROR, HXEX_ERR_PROTOCOL,
        "SCANOUT_CONTROL with enable %u (0 or 1)", m->enable);
    return FALSE;
  }
  return TRUE;
}

gsize
hxex_scanout_control_ack_write (const HxexScanoutControlAck * m, guint8 * out)
{
  WireScanoutControlAck w;

  w.index = GUINT32_TO_LE (m->index);
  w.status = GINT32_TO_LE (m->status);
  memcpy (out, &w, sizeof (w));
  return sizeof (w);
}

gboolean
hxex_scanout_control_ack_parse (const guint8 * in, gsize len,
    HxexScanoutControlAck * m, GError ** error)
{
  WireScanoutControlAck w;

  if (!check_len (HXEX_MSG_SCANOUT_CONTROL_ACK, len, error))
    return FALSE;
  memcpy (&w, in, sizeof (w));
  m->index = GUINT32_FROM_LE (w.index);
  m->status = GINT32_FROM_LE (w.status);
  return TRUE;
}

#define FOURCC(a,b,c,d) ((guint32)(a) | ((guint32)(b) << 8) | \
    ((guint32)(c) << 16) | ((guint32)(d) << 24))

guint
hxex_fourcc_bpp (guint32 fourcc)
{
  if (fourcc == FOURCC ('A', 'R', '2', '4')
      || fourcc == FOURCC ('X', 'R', '2', '4')
      || fourcc == FOURCC ('A', 'B', '2', '4')
      || fourcc == FOURCC ('X', 'B', '2', '4'))
    return 4;
  return 0;
}

/* Socket helpers */

gssize
hxex_socket_send (GSocket * socket, const guint8 * buf, gsize len,
    const gint * fds, guint n_fds, GError ** error)
{
  GOutputVector vec = { buf, len };
  GSocketControlMessage *cmsg = NULL;
  gssize n;

  if (n_fds > 0) {
    g_autoptr (GUnixFDList) list = g_unix_fd_list_new ();
    guint i;

    /* the list dups the descriptors: the caller keeps its own */
    for (i = 0; i < n_fds; i++)
      if (g_unix_fd_list_append (list, fds[i], error) < 0)
        return -1;
    cmsg = g_unix_fd_message_new_with_fd_list (list);
  }
  n = g_socket_send_message (socket, NULL, &vec, 1, cmsg ? &cmsg : NULL,
      cmsg ? 1 : 0, G_SOCKET_MSG_NONE, NULL, error);
  g_clear_object (&cmsg);
  return n;
}

gssize
hxex_socket_receive (GSocket * socket, guint8 * buf, gsize len,
    GArray * fds, GError ** error)
{
  GInputVector vec = { buf, len };
  GSocketControlMessage **cmsgs = NULL;
  gint n_cmsgs = 0, i;
  gint flags = G_SOCKET_MSG_NONE;
  gssize n;

  n = g_socket_receive_message (socket, NULL, &vec, 1, &cmsgs, &n_cmsgs,
      &flags, NULL, error);
  for (i = 0; i < n_cmsgs; i++) {
    if (G_IS_UNIX_FD_MESSAGE (cmsgs[i])) {
      gint n_stolen = 0, j;
      gint *stolen = g_unix_fd_message_steal_fds (G_UNIX_FD_MESSAGE (cmsgs[i]),
          &n_stolen);

      for (j = 0; j < n_stolen; j++)
        g_array_append_val (fds, stolen[j]);
      g_free (stolen);
    }
    g_object_unref (cmsgs[i]);
  }
  g_free (cmsgs);
  return n;
}

void
hxex_fds_clear (GArray * fds)
{
  guint i;

  for (i = 0; i < fds->len; i++)
    close (g_array_index (fds, gint, i));
  g_array_set_size (fds, 0);
}

/* Framing */

void
hxex_stream_init (HxexStream * s, GSocket * socket, const gchar * peer_closed)
{
  memset (s, 0, sizeof (*s));
  s->socket = socket;
  s->peer_closed = peer_closed;
  g_mutex_init (&s->send_lock);
  s->fds = g_array_new (FALSE, FALSE, sizeof (gint));
}

void
hxex_stream_clear (HxexStream * s)
{
  if (!s->fds)
    return;
  hxex_fds_clear (s->fds);
  g_clear_pointer (&s->fds, g_array_unref);
  g_mutex_clear (&s->send_lock);
}

/* After @failure of a send or receive: waits until @cond or the deadline
 * if it was only a full (or empty) socket; FALSE with the reason if the
 * call must fail. Takes @failure. */
static gboolean
stream_wait (HxexStream * s, GIOCondition cond, gint64 deadline,
    GError * failure, GError ** error)
{
  gint64 left;

  if (!g_error_matches (failure, G_IO_ERROR, G_IO_ERROR_WOULD_BLOCK)
      || deadline == HXEX_DEADLINE_NOW) {
    g_propagate_error (error, failure);
    return FALSE;
  }
  g_error_free (failure);
  left = hxfr_deadline_left (deadline);
  if (left == 0) {
    g_set_error_literal (error, G_IO_ERROR, G_IO_ERROR_TIMED_OUT,
        "timed out waiting for the VMM's helix export");
    return FALSE;
  }
  return g_socket_condition_timed_wait (s->socket, cond, left, NULL, error);
}

gboolean
hxex_stream_read (HxexStream * s, HxexHeader * h, gint64 deadline,
    GError ** error)
{
  for (;;) {
    gsize need = HXEX_HEADER_SIZE +
        (s->have_header ? s->header.payload_size : 0);
    GError *err = NULL;
    gssize n;

    if (s->have >= need && s->have_header) {
      *h = s->header;
      s->have = 0;
      s->have_header = FALSE;
      return TRUE;
    }
    if (s->have >= need) {
      if (!hxex_header_parse (s->buf, &s->header, error))
        return FALSE;
      s->have_header = TRUE;
      continue;
    }
    n = hxex_socket_receive (s->socket, s->buf + s->have, need - s->have,
        s->fds, &err);
    if (n > 0) {
      s->have += n;
      continue;
    }
    if (n == 0) {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_CONNECTION_CLOSED, "%s%s",
          s->peer_closed, s->have ? " in the middle of a message" : "");
      return FALSE;
    }
    if (!stream_wait (s, G_IO_IN, deadline, err, error))
      return FALSE;
  }
}

const guint8 *
hxex_stream_payload (HxexStream * s)
{
  return s->buf + HXEX_HEADER_SIZE;
}

gboolean
hxex_stream_take_fds (HxexStream * s, const HxexHeader * h, GArray * out,
    GError ** error)
{
  guint i;

  if (s->fds->len < h->n_fds) {
    g_set_error (error, HXEX_ERROR, HXEX_ERR_PROTOCOL,
        "%s announces %u file descriptors, %u arrived",
        hxex_msg_type_name (h->type), h->n_fds, s->fds->len);
    return FALSE;
  }
  for (i = 0; i < h->n_fds; i++)
    g_array_append_val (out, g_array_index (s->fds, gint, i));
  for (i = h->n_fds; i < s->fds->len; i++)
    close (g_array_index (s->fds, gint, i));
  g_array_set_size (s->fds, 0);
  return TRUE;
}

gboolean
hxex_stream_send (HxexStream * s, guint8 type, guint32 request_id,
    const guint8 * payload, gsize payload_len, const gint * fds,
    guint n_fds, gint64 deadline, gboolean * broken, GError ** error)
{
  guint8 buf[HXEX_HEADER_SIZE + HXEX_MAX_PAYLOAD_SIZE];
  HxexHeader h = { type, (guint8) n_fds, (guint32) payload_len, request_id };
  gsize len = HXEX_HEADER_SIZE + payload_len, done = 0;
  GError *failure = NULL;
  gboolean ok = TRUE;

  g_return_val_if_fail (payload_len <= HXEX_MAX_PAYLOAD_SIZE, FALSE);
  g_return_val_if_fail (n_fds <= HXEX_MAX_FDS, FALSE);
  hxex_header_write (buf, &h);
  memcpy (buf + HXEX_HEADER_SIZE, payload, payload_len);
  g_mutex_lock (&s->send_lock);
  while (ok && done < len) {
    GError *err = NULL;
    gssize n = hxex_socket_send (s->socket, buf + done, len - done,
        done == 0 ? fds : NULL, done == 0 ? n_fds : 0, &err);

    if (n > 0)
      done += n;
    else if (n == 0)
      ok = stream_wait (s, G_IO_OUT, deadline, g_error_new_literal
          (G_IO_ERROR, G_IO_ERROR_FAILED, "no progress"), &failure);
    else
      ok = stream_wait (s, G_IO_OUT, deadline, err, &failure);
  }
  g_mutex_unlock (&s->send_lock);
  if (broken)
    *broken = !ok && (done > 0
        || !(g_error_matches (failure, G_IO_ERROR, G_IO_ERROR_TIMED_OUT)
            || g_error_matches (failure, G_IO_ERROR, G_IO_ERROR_WOULD_BLOCK)));
  if (failure)
    g_propagate_error (error, failure);
  return ok;
}

/* Version 3: the cursor */

gsize
hxex_cursor_shape_write (const HxexCursorShape * m, guint8 * out)
{
  WireCursorShape w;

  memset (&w, 0, sizeof (w));
  w.index = GUINT32_TO_LE (m->index);
  w.width = GUINT32_TO_LE (m->width);
  w.height = GUINT32_TO_LE (m->height);
  w.hot_x = GUINT32_TO_LE (m->hot_x);
  w.hot_y = GUINT32_TO_LE (m->hot_y);
  w.fourcc = GUINT32_TO_LE (m->fourcc);
  w.size = GUINT64_TO_LE (m->size);
  memcpy (out, &w, sizeof (w));
  return sizeof (w);
}

gboolean
hxex_cursor_shape_parse (const guint8 * in, gsize len, HxexCursorShape * m,
    GError ** error)
{
  WireCursorShape w;

  if (!check_len (HXEX_MSG_CURSOR_SHAPE, len, error))
    return FALSE;
  memcpy (&w, in, sizeof (w));
  m->index = GUINT32_FROM_LE (w.index);
  m->width = GUINT32_FROM_LE (w.width);
  m->height = GUINT32_FROM_LE (w.height);
  m->hot_x = GUINT32_FROM_LE (w.hot_x);
  m->hot_y = GUINT32_FROM_LE (w.hot_y);
  m->fourcc = GUINT32_FROM_LE (w.fourcc);
  m->size = GUINT64_FROM_LE (w.size);
  if (m->index >= HXEX_MAX_SCANOUTS || m->width == 0 || m->height == 0
      || m->width > HXEX_CURSOR_MAX_SIZE || m->height > HXEX_CURSOR_MAX_SIZE
      || m->hot_x >= m->width || m->hot_y >= m->height
      || m->fourcc != HXEX_CURSOR_FOURCC
      || m->size != (guint64) m->width * m->height * 4) {
    g_set_error (error, HXEX_ERROR, HXEX_ERR_PROTOCOL,
        "CURSOR_SHAPE of scanout %u: %ux%u hotspot %u,%u fourcc 0x%08x size %"
        G_GUINT64_FORMAT " (at most %ux%u AR24, hotspot inside, 4 bytes a "
        "pixel)", m->index, m->width, m->height, m->hot_x, m->hot_y,
        m->fourcc, m->size, HXEX_CURSOR_MAX_SIZE, HXEX_CURSOR_MAX_SIZE);
    return FALSE;
  }
  return TRUE;
}

gsize
hxex_cursor_move_write (const HxexCursorMove * m, guint8 * out)
{
  WireCursorMove w;

  memset (&w, 0, sizeof (w));
  w.index = GUINT32_TO_LE (m->index);
  w.flags = GUINT32_TO_LE (m->flags);
  w.x = GINT32_TO_LE (m->x);
  w.y = GINT32_TO_LE (m->y);
  w.time_ns = GUINT64_TO_LE (m->time_ns);
  memcpy (out, &w, sizeof (w));
  return sizeof (w);
}

gboolean
hxex_cursor_move_parse (const guint8 * in, gsize len, HxexCursorMove * m,
    GError ** error)
{
  WireCursorMove w;

  if (!check_len (HXEX_MSG_CURSOR_MOVE, len, error))
    return FALSE;
  memcpy (&w, in, sizeof (w));
  m->index = GUINT32_FROM_LE (w.index);
  /* reserved bits are ignored on reading */
  m->flags = GUINT32_FROM_LE (w.flags) & HXEX_CURSOR_VISIBLE;
  m->x = GINT32_FROM_LE (w.x);
  m->y = GINT32_FROM_LE (w.y);
  m->time_ns = GUINT64_FROM_LE (w.time_ns);
  if (m->index >= HXEX_MAX_SCANOUTS) {
    g_set_error (error, HXEX_ERROR, HXEX_ERR_PROTOCOL,
        "CURSOR_MOVE of scanout %u (at most %u scanouts)", m->index,
        HXEX_MAX_SCANOUTS);
    return FALSE;
  }
  return TRUE;
}
