/* Guests emulated on the core library, for the host-side tests (vsocksrc,
 * bridge): a v1 guest exactly as docs/protocol.md section 5 (no
 * handshake, one request in flight) and a v2 guest (HELLO,
 * FRAME_REQUEST2), plus raw bytes for the malformed-input cases.
 * Header-only so that both test programs share it.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#pragma once

#include <string.h>
#include "hxfr-transport.h"

#define GUEST_TIMEOUT_US (20 * G_USEC_PER_SEC)

typedef struct
{
  HxfrConn *conn;
  guint version;
  guint32 seq;
  HxfrHelloAck ack;
  HxfrLimits limits;
} GuestEmu;

typedef struct
{
  guint8 type;                  /* FRAME_RESPONSE(2), ERROR, PONG, ... */
  HxfrFrameResponse resp;
  gint32 error_code;
  gchar text[HXFR_ERROR_TEXT_SIZE + 1];
  GBytes *au;                   /* OK answers: the access unit */
} GuestAnswer;

static inline void
guest_answer_clear (GuestAnswer * a)
{
  if (a->au)
    g_bytes_unref (a->au);
  memset (a, 0, sizeof (*a));
}

static inline GuestEmu *
guest_emu_connect (const gchar * address, GError ** error)
{
  g_autoptr (HxfrAddress) addr = hxfr_address_parse (address, error);
  GuestEmu *g;
  HxfrConn *conn;

  if (!addr)
    return NULL;
  conn = hxfr_conn_connect (addr, GUEST_TIMEOUT_US, NULL, error);
  if (!conn)
    return NULL;
  g = g_new0 (GuestEmu, 1);
  g->conn = conn;
  g->version = 1;
  hxfr_limits_init_default (&g->limits);
  return g;
}

static inline void
guest_emu_free (GuestEmu * g)
{
  if (!g)
    return;
  hxfr_conn_unref (g->conn);
  g_free (g);
}

/* Reads one message from the host. FALSE on a transport error (closed). */
static inline gboolean
guest_emu_receive (GuestEmu * g, GuestAnswer * a, GError ** error)
{
  HxfrMessage msg;

  memset (a, 0, sizeof (*a));
  if (!hxfr_conn_receive (g->conn, HXFR_ROLE_GUEST, &g->limits, &msg,
          GUEST_TIMEOUT_US, GUEST_TIMEOUT_US, NULL, error))
    return FALSE;
  a->type = msg.header.type;
  switch (a->type) {
    case HXFR_MSG_ERROR:
      a->error_code = msg.u.error.code;
      g_strlcpy (a->text, msg.u.error.message, sizeof (a->text));
      break;
    case HXFR_MSG_HELLO_ACK:
      g->ack = msg.u.hello_ack;
      break;
    case HXFR_MSG_FRAME_RESPONSE:
    case HXFR_MSG_FRAME_RESPONSE2:{
      guint8 *tail = g_malloc (MAX (msg.tail_size, 1));
      gsize size = msg.tail_size;

      a->resp = msg.u.frame_response;
      g_strlcpy (a->text, msg.text, sizeof (a->text));
      if (!hxfr_conn_read_exact (g->conn, tail, msg.tail_size,
              GUEST_TIMEOUT_US, NULL, error)) {
        g_free (tail);
        return FALSE;
      }
      if (a->type == HXFR_MSG_FRAME_RESPONSE
          && !hxfr_nal_list_unpack (tail, msg.tail_size,
              msg.u.frame_response.nal_count, &size, error)) {
        g_free (tail);
        return FALSE;
      }
      a->au = g_bytes_new_take (tail, size);
      break;
    }
    default:
      if (msg.tail_size && !hxfr_conn_skip (g->conn, msg.tail_size,
              GUEST_TIMEOUT_US, NULL, error))
        return FALSE;
      break;
  }
  return TRUE;
}

/* v2 handshake; the answer (HELLO_ACK or ERROR) in @a. */
static inline gboolean
guest_emu_hello (GuestEmu * g, guint32 max_in_flight, const gchar * token,
    GuestAnswer * a, GError ** error)
{
  HxfrHello h = { 0, };
  guint8 fixed[HXFR_MAX_FIXED_SIZE];
  GOutputVector tail = { token, token ? strlen (token) : 0 };
  gsize len;

  h.min_version = 2;
  h.max_version = 2;
  h.codec = HXFR_CODEC_H264;
  h.max_in_flight = max_in_flight;
  h.bitrate = 2000000;
  h.keyframe_interval = 30;
  h.fps_n = 30;
  h.fps_d = 1;
  h.token_len = tail.size;
  len = hxfr_hello_write (&h, fixed);
  if (!hxfr_conn_send (g->conn, HXFR_MSG_HELLO, 0, 1, fixed, len, &tail,
          tail.size ? 1 : 0, GUEST_TIMEOUT_US, NULL, error)
      || !guest_emu_receive (g, a, error))
    return FALSE;
  if (a->type == HXFR_MSG_HELLO_ACK)
    g->version = 2;
  return TRUE;
}

/* Sends one frame of @pixels laid out as @r says (strides/offsets filled in
 * by the caller, or the default layout when r->n_planes is 0). */
static inline gboolean
guest_emu_send_frame (GuestEmu * g, HxfrFrameRequest * r,
    const guint8 * pixels, gsize size, GError ** error)
{
  guint8 fixed[HXFR_MAX_FIXED_SIZE];
  GOutputVector tail = { pixels, size };
  gsize len;

  if (r->n_planes == 0) {
    if (g->version == 1)
      hxfr_frame_v1_layout (r->format, r->height, r->stride[0],
          &r->n_planes, r->stride, r->offset);
    else
      hxfr_frame_default_layout (r->format, r->width, r->height,
          &r->n_planes, r->stride, r->offset);
  }
  r->seq = g->seq++;
  len = hxfr_frame_request_write (r, g->version, fixed);
  return hxfr_conn_send (g->conn, g->version == 1 ? HXFR_MSG_FRAME_REQUEST :
      HXFR_MSG_FRAME_REQUEST2, size ? HXFR_FLAG_PIXEL_DATA : 0, 1, fixed, len,
      &tail, size ? 1 : 0, GUEST_TIMEOUT_US, NULL, error);
}

static inline gboolean
guest_emu_send_simple (GuestEmu * g, guint8 type, const void *fixed,
    gsize len, GError ** error)
{
  return hxfr_conn_send (g->conn, type, 0, 1, fixed, len, NULL, 0,
      GUEST_TIMEOUT_US, NULL, error);
}

/* Raw bytes, for malformed messages and floods: all of them, blocking
 * (a send may take only part). */
static inline gboolean
guest_emu_send_raw (GuestEmu * g, const void *data, gsize len)
{
  const gchar *p = data;

  while (len > 0) {
    gssize n = g_socket_send_with_blocking (hxfr_conn_get_socket (g->conn),
        p, len, TRUE, NULL, NULL);

    if (n <= 0)
      return FALSE;
    p += n;
    len -= n;
  }
  return TRUE;
}

/* TRUE once the host has closed the connection (waits, bounded). */
static inline gboolean
guest_emu_wait_closed (GuestEmu * g)
{
  GError *err = NULL;
  gboolean closed;

  closed = !hxfr_conn_skip (g->conn, G_MAXSIZE, GUEST_TIMEOUT_US, NULL, &err)
      && !g_error_matches (err, G_IO_ERROR, G_IO_ERROR_TIMED_OUT);
  g_clear_error (&err);
  return closed;
}

/* An NV12 test frame: a gradient and a square moving with @n. */
static inline guint8 *
guest_emu_make_nv12 (guint w, guint h, guint stride, guint n, gsize * size)
{
  guint rows = (h + 1) & ~1u;
  guint8 *p;
  guint x, y;

  *size = (gsize) stride * rows + (gsize) stride * (rows / 2);
  p = g_malloc0 (*size);
  for (y = 0; y < h; y++)
    for (x = 0; x < w; x++) {
      gboolean sq = x >= (n * 4) % w && x < (n * 4) % w + w / 4 && y > h / 4
          && y < h / 2;
      p[y * stride + x] = sq ? 235 : (guint8) (16 + (x + y) * 200 / (w + h));
    }
  for (y = 0; y < rows / 2; y++)
    for (x = 0; x < (w + 1) / 2; x++) {
      p[stride * rows + y * stride + 2 * x] = (guint8) (64 + x % 128);
      p[stride * rows + y * stride + 2 * x + 1] = (guint8) (192 - y % 128);
    }
  return p;
}
