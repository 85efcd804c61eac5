/* Helix export: the codec byte for byte, and the client against the real
 * VMM module on a real virglrenderer (the stand-in VMM, --serve-only,
 * driven through its stdin).
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <gst/check/gstcheck.h>
#include <glib/gstdio.h>
#include <string.h>
#include <signal.h>
#include <unistd.h>
#include <fcntl.h>
#include <sys/socket.h>
#include <sys/mman.h>
#include <gio/gunixsocketaddress.h>

#include "hxfr-export-client.h"
#include "standin-runner.h"
#include "proc-stats.h"
#include "hxfr-export-watch.h"
#include "../../standin/helix-test-pattern.h"

#define SECOND G_USEC_PER_SEC
#define LINE_TIMEOUT (20 * SECOND)

/* Test pattern of the stand-in (see helix-standin-vmm.c) */
static void
expected_pixel (guint32 x, guint32 y, guint32 frame, guint8 px[4])
{
  px[0] = (x + 4 * frame) & 255;
  px[1] = (y + 2 * frame) & 255;
  px[2] = ((x ^ y) + frame) & 255;
  px[3] = 255;
}

static gboolean
surface_matches_frame (const HxexClientSurface * s, guint32 frame)
{
  guint32 x, y;

  for (y = 0; y < s->height; y++) {
    const guint8 *row = s->data + s->offset[0] + (gsize) y * s->stride[0];

    for (x = 0; x < s->width; x++) {
      guint8 px[4];

      expected_pixel (x, y, frame, px);
      if (memcmp (row + 4 * x, px, 4) != 0) {
        GST_ERROR ("frame %u pixel %u,%u: %02x%02x%02x%02x, expected "
            "%02x%02x%02x%02x", frame, x, y, row[4 * x], row[4 * x + 1],
            row[4 * x + 2], row[4 * x + 3], px[0], px[1], px[2], px[3]);
        return FALSE;
      }
    }
  }
  return TRUE;
}

/* The stand-in VMM is support/standin-runner, read line by line in order
 * (standin_runner_ask): these tests read every line it says. */

static HxexClient *
connect_client (StandinRunner * vmm)
{
  g_autoptr (GError) err = NULL;
  HxexClient *c = hxex_client_connect (standin_runner_get_socket_path (vmm), 0,
      5 * SECOND, &err);

  fail_unless (c != NULL, "connect: %s", err ? err->message : "");
  return c;
}

/* Codec */

GST_START_TEST (test_codec_bytes)
{
  static const guint8 resolve_bytes[] = {
    'H', 'X', 'E', 'X', 0x03, 0x00, 0x00, 0x00,
    0x10, 0x00, 0x00, 0x00, 0x04, 0x03, 0x02, 0x01,
    0x2a, 0x00, 0x00, 0x00, 0x02, 0x00, 0x00, 0x00,
    0, 0, 0, 0, 0, 0, 0, 0,
  };
  guint8 buf[HXEX_HEADER_SIZE + HXEX_MAX_PAYLOAD_SIZE];
  HxexHeader h = { HXEX_MSG_RESOLVE, 0, HXEX_RESOLVE_SIZE, 0x01020304 };
  HxexResolve r = { 42, HXEX_KIND_BIT (HXEX_KIND_READBACK_SLOT) };
  HxexSurface s, s2;
  HxexHelloAck ack, ack2;
  HxexHello hello;
  HxexErrorMsg em;
  GError *err = NULL;
  guint32 handle;
  gsize n;

  hxex_header_write (buf, &h);
  n = hxex_resolve_write (&r, buf + HXEX_HEADER_SIZE);
  fail_unless_equals_int (n, HXEX_RESOLVE_SIZE);
  fail_unless (memcmp (buf, resolve_bytes, sizeof (resolve_bytes)) == 0);

  memset (&h, 0, sizeof (h));
  fail_unless (hxex_header_parse (resolve_bytes, &h, NULL));
  fail_unless_equals_int (h.type, HXEX_MSG_RESOLVE);
  fail_unless_equals_int (h.request_id, 0x01020304);
  fail_unless (hxex_resolve_parse (resolve_bytes + 16, 16, &r, NULL));
  fail_unless_equals_int (r.resource_id, 42);

  /* HELLO: versions, kinds */
  n = hxex_hello_write (&(HxexHello) {
      1, 1, 0x6}
      , buf);
  fail_unless_equals_int (n, 16);
  fail_unless (buf[0] == 1 && buf[1] == 0 && buf[2] == 1 && buf[4] == 6);
  fail_unless (hxex_hello_parse (buf, 16, &hello, NULL));
  buf[0] = 2;                   /* min > max */
  fail_if (hxex_hello_parse (buf, 16, &hello, &err));
  fail_unless (g_error_matches (err, HXEX_ERROR, HXEX_ERR_PROTOCOL));
  /* the domain's name as logs print it */
  fail_unless_equals_string (g_quark_to_string (err->domain),
      "hxex-error-quark");
  g_clear_error (&err);

  /* HELLO_ACK: slot_size is 64-bit at offset 16 */
  memset (&ack, 0, sizeof (ack));
  ack.version = 1;
  ack.kinds = 2;
  ack.n_slots = 8;
  ack.slot_size = G_GUINT64_CONSTANT (0x123456789);
  ack.max_width = 8192;
  ack.max_height = 4096;
  fail_unless_equals_int (hxex_hello_ack_write (&ack, buf), 32);
  fail_unless (buf[8] == 8 && buf[16] == 0x89 && buf[20] == 0x01);
  fail_unless (buf[24] == 0x00 && buf[25] == 0x20 && buf[29] == 0x10);
  memset (&ack2, 0, sizeof (ack2));
  fail_unless (hxex_hello_ack_parse (buf, 32, &ack2, NULL));
  fail_unless (memcmp (&ack, &ack2, sizeof (ack)) == 0);

  /* SURFACE */
  memset (&s, 0, sizeof (s));
  s.handle = 7;
  s.kind = HXEX_KIND_READBACK_SLOT;
  s.n_planes = 1;
  s.fourcc = GUINT32_FROM_LE (*(guint32 *) "AR24");
  s.width = 640;
  s.height = 480;
  s.slot = 3;
  s.modifier = HXEX_DRM_FORMAT_MOD_LINEAR;
  s.size = 640 * 480 * 4;
  s.stride[0] = 2560;
  /* the example in docs/export-protocol.md, byte for byte */
  {
    static const guint8 doc_surface[] = {
      0x48, 0x58, 0x45, 0x58, 0x04, 0x00, 0x00, 0x00,
      0x50, 0x00, 0x00, 0x00, 0x04, 0x03, 0x02, 0x01,
      0x07, 0x00, 0x00, 0x00, 0x01, 0x01, 0x00, 0x00,
      0x41, 0x52, 0x32, 0x34, 0x80, 0x02, 0x00, 0x00,
      0xe0, 0x01, 0x00, 0x00, 0x03, 0x00, 0x00, 0x00,
      0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
      0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
      0x00, 0xc0, 0x12, 0x00, 0x00, 0x00, 0x00, 0x00,
      0x00, 0x0a, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
      0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
      0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
      0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    };
    HxexHeader sh = { HXEX_MSG_SURFACE, 0, HXEX_SURFACE_SIZE, 0x01020304 };

    fail_unless_equals_int (sizeof (doc_surface), 96);
    hxex_header_write (buf, &sh);
    hxex_surface_write (&s, buf + HXEX_HEADER_SIZE);
    fail_unless (memcmp (buf, doc_surface, sizeof (doc_surface)) == 0);
  }
  fail_unless_equals_int (hxex_surface_write (&s, buf), 80);
  fail_unless (buf[0] == 7 && buf[4] == 1 && buf[5] == 1);
  fail_unless (memcmp (buf + 8, "AR24", 4) == 0);
  fail_unless (buf[12] == 0x80 && buf[13] == 0x02 && buf[20] == 3);
  fail_unless (buf[48] == 0x00 && buf[49] == 0x0a);
  memset (&s2, 0, sizeof (s2));
  fail_unless (hxex_surface_parse (buf, 80, &s2, NULL));
  fail_unless (memcmp (&s, &s2, sizeof (s)) == 0);

  /* the plane must fit the announced size */
  s2 = s;
  s2.size = 2560 * 479;
  hxex_surface_write (&s2, buf);
  fail_if (hxex_surface_parse (buf, 80, &s2, &err));
  fail_unless (g_error_matches (err, HXEX_ERROR, HXEX_ERR_PROTOCOL));
  g_clear_error (&err);
  /* rows shorter than the pixels */
  s2 = s;
  s2.stride[0] = 2556;
  hxex_surface_write (&s2, buf);
  fail_if (hxex_surface_parse (buf, 80, &s2, NULL));
  /* offset overflow cannot wrap */
  s2 = s;
  s2.offset[0] = G_MAXUINT32;
  hxex_surface_write (&s2, buf);
  fail_if (hxex_surface_parse (buf, 80, &s2, NULL));
  /* no planes, too many planes, unknown kind, handle 0 */
  s2 = s;
  hxex_surface_write (&s2, buf);
  buf[5] = 0;
  fail_if (hxex_surface_parse (buf, 80, &s2, NULL));
  buf[5] = 5;
  fail_if (hxex_surface_parse (buf, 80, &s2, NULL));
  buf[5] = 1;
  buf[4] = 9;
  fail_if (hxex_surface_parse (buf, 80, &s2, NULL));
  buf[4] = 1;
  buf[0] = 0;
  fail_if (hxex_surface_parse (buf, 80, &s2, NULL));

  /* RELEASE, ERROR */
  fail_unless_equals_int (hxex_release_write (0xdeadbeef, buf), 8);
  fail_unless (buf[0] == 0xef && buf[3] == 0xde);
  fail_unless (hxex_release_parse (buf, 8, &handle, NULL));
  fail_unless_equals_int (handle, 0xdeadbeef);
  memset (buf, 'x', 128);
  fail_unless_equals_int (hxex_error_write (-3, NULL, buf), 128);
  fail_unless (buf[0] == 0xfd && buf[3] == 0xff && buf[4] == 0);
  memset (buf + 4, 'y', 124);   /* no NUL on the wire */
  fail_unless (hxex_error_parse (buf, 128, &em, NULL));
  fail_unless_equals_int (em.code, -3);
  fail_unless_equals_int (strlen (em.message), 124);

  /* header checks */
  memcpy (buf, resolve_bytes, 16);
  buf[0] = 'h';
  fail_if (hxex_header_parse (buf, &h, NULL));
  memcpy (buf, resolve_bytes, 16);
  buf[4] = 0x0C;                /* unknown type */
  fail_if (hxex_header_parse (buf, &h, NULL));
  memcpy (buf, resolve_bytes, 16);
  buf[8] = 0x11;                /* payload size of another type */
  fail_if (hxex_header_parse (buf, &h, NULL));
  memcpy (buf, resolve_bytes, 16);
  buf[5] = 1;                   /* RESOLVE carries no descriptor */
  fail_if (hxex_header_parse (buf, &h, NULL));
  h = (HxexHeader) {
  HXEX_MSG_SURFACE, 2, HXEX_SURFACE_SIZE, 1};
  hxex_header_write (buf, &h);
  fail_if (hxex_header_parse (buf, &h, NULL));
  /* wrong payload lengths handed to the parsers */
  fail_if (hxex_resolve_parse (resolve_bytes + 16, 15, &r, NULL));
  fail_if (hxex_surface_parse (buf, 79, &s2, NULL));
}

GST_END_TEST;

/* No VMM, or one that never answers: clear errors, bounded waits. */
GST_START_TEST (test_connect_failures)
{
  g_autofree gchar *dir = g_dir_make_tmp ("hxex-XXXXXX", NULL);
  g_autofree gchar *path = g_build_filename (dir, "mute.sock", NULL);
  g_autoptr (GSocketAddress) addr = g_unix_socket_address_new (path);
  g_autoptr (GSocket) mute = NULL;
  g_autoptr (GError) err = NULL;
  gint64 start;

  fail_if (hxex_client_connect (path, 0, SECOND, &err));
  fail_unless (err != NULL && err->domain == G_IO_ERROR);
  fail_unless (strstr (err->message, path) != NULL, "%s", err->message);
  g_clear_error (&err);

  /* listening, never accepting nor answering */
  mute = g_socket_new (G_SOCKET_FAMILY_UNIX, G_SOCKET_TYPE_STREAM, 0, NULL);
  fail_unless (g_socket_bind (mute, addr, TRUE, NULL));
  fail_unless (g_socket_listen (mute, NULL));
  start = g_get_monotonic_time ();
  fail_if (hxex_client_connect (path, 0, SECOND / 2, &err));
  fail_unless (g_error_matches (err, G_IO_ERROR, G_IO_ERROR_TIMED_OUT), "%s",
      err->message);
  fail_unless (g_get_monotonic_time () - start < 3 * SECOND);
  g_socket_close (mute, NULL);
  g_unlink (path);
  g_rmdir (dir);
}

GST_END_TEST;

/* Against the stand-in VMM */

GST_START_TEST (test_resolve_pixels)
{
  const gchar *extra[] = { "--width", "320", "--height", "240", NULL };
  g_autoptr (GError) err = NULL;
  g_autofree gchar *reply = NULL;
  HxexClient *c;
  HxexClientSurface *s, *s2;
  StandinRunner *vmm = standin_runner_start (extra);

  if (!vmm)
    return;
  c = connect_client (vmm);
  fail_unless (hxex_client_get_n_slots (c) > 0);
  fail_unless (hxex_client_get_slot_size (c) >= 320 * 240 * 4);

  s = hxex_client_resolve (c, standin_runner_get_resource (vmm),
      5 * SECOND, &err);
  fail_unless (s != NULL, "%s", err ? err->message : "");
  /* no GPU here: DMA-BUF export fails and the module falls back */
  fail_unless_equals_int (s->kind, HXEX_KIND_READBACK_SLOT);
  fail_unless_equals_int (s->fourcc, GUINT32_FROM_LE (*(guint32 *) "AR24"));
  fail_unless_equals_int (s->width, 320);
  fail_unless_equals_int (s->height, 240);
  fail_unless_equals_int (s->n_planes, 1);
  fail_unless (s->stride[0] >= 320 * 4);
  fail_unless_equals_int (s->fd, -1);
  fail_unless (s->data != NULL);
  fail_unless (surface_matches_frame (s, 0));

  /* the guest draws frame 37; a new resolve sees it, the held slot keeps
   * the old content */
  reply = standin_runner_ask (vmm, "frame 37");
  fail_unless_equals_string (reply, "OK");
  s2 = hxex_client_resolve (c, standin_runner_get_resource (vmm),
      5 * SECOND, &err);
  fail_unless (s2 != NULL, "%s", err ? err->message : "");
  fail_unless (s2->slot != s->slot);
  fail_unless (surface_matches_frame (s2, 37));
  fail_unless (surface_matches_frame (s, 0));

  fail_unless_equals_int (standin_runner_ask_stat (vmm, "slots_in_use"), 2);
  /* DMA-BUF export was tried once, failed (no GPU), and is not retried */
  fail_unless_equals_int (standin_runner_ask_stat (vmm, "dmabufs"), 0);
  fail_unless_equals_int (standin_runner_ask_stat (vmm, "dmabuf_failures"), 1);
  fail_unless_equals_int (standin_runner_ask_stat (vmm, "readbacks"), 2);
  fail_unless (hxex_client_surface_release (s, NULL));
  hxex_client_surface_free (s);
  hxex_client_surface_free (s2);        /* releases too */
  fail_unless_equals_int (standin_runner_ask_stat (vmm, "slots_in_use"), 0);
  fail_unless_equals_int (standin_runner_ask_stat (vmm, "handles_held"), 0);
  fail_unless_equals_int (standin_runner_ask_stat (vmm, "bad_releases"), 0);

  hxex_client_unref (c);
  standin_runner_stop_checked (vmm);
}

GST_END_TEST;

GST_START_TEST (test_rgbx_format)
{
  const gchar *extra[] = { "--width", "96", "--height", "64", "--format",
    "rgbx", "--no-dmabuf", NULL
  };
  g_autoptr (GError) err = NULL;
  HxexClient *c;
  HxexClientSurface *s;
  StandinRunner *vmm = standin_runner_start (extra);

  if (!vmm)
    return;
  c = connect_client (vmm);
  /* the VMM offers only what it can do */
  fail_unless_equals_int (hxex_client_get_kinds (c),
      HXEX_KIND_BIT (HXEX_KIND_READBACK_SLOT));
  s = hxex_client_resolve (c, standin_runner_get_resource (vmm),
      5 * SECOND, &err);
  fail_unless (s != NULL, "%s", err ? err->message : "");
  fail_unless_equals_int (s->fourcc, GUINT32_FROM_LE (*(guint32 *) "XB24"));
  fail_unless_equals_int (s->stride[0], 96 * 4);
  fail_unless (surface_matches_frame (s, 0));
  hxex_client_surface_free (s);
  hxex_client_unref (c);
  standin_runner_stop_checked (vmm);
}

GST_END_TEST;

GST_START_TEST (test_unknown_and_released)
{
  g_autoptr (GError) err = NULL;
  g_autofree gchar *created = NULL;
  g_autofree gchar *destroyed = NULL;
  HxexClient *c;
  HxexClientSurface *s;
  guint32 id;
  StandinRunner *vmm = standin_runner_start (NULL);

  if (!vmm)
    return;
  c = connect_client (vmm);

  s = hxex_client_resolve (c, 999, 5 * SECOND, &err);
  fail_unless (s == NULL);
  fail_unless (g_error_matches (err, HXEX_ERROR, HXEX_ERR_UNKNOWN_RESOURCE),
      "%s", err->message);
  fail_unless (strstr (err->message, "999") != NULL, "%s", err->message);
  g_clear_error (&err);
  s = hxex_client_resolve (c, 0, 5 * SECOND, &err);
  fail_unless (g_error_matches (err, HXEX_ERROR, HXEX_ERR_UNKNOWN_RESOURCE));
  g_clear_error (&err);
  /* the connection carries on */
  fail_unless (hxex_client_is_connected (c));

  /* a resource the guest destroyed is unknown from then on */
  created = standin_runner_ask (vmm, "create 48 32");
  fail_unless (sscanf (created, "CREATED %u", &id) == 1, "%s", created);
  s = hxex_client_resolve (c, id, 5 * SECOND, &err);
  fail_unless (s != NULL, "%s", err ? err->message : "");
  fail_unless_equals_int (s->width, 48);
  fail_unless (surface_matches_frame (s, 0));
  destroyed = g_strdup_printf ("destroy %u", id);
  g_free (created);
  created = standin_runner_ask (vmm, destroyed);
  fail_unless_equals_string (created, "OK");
  /* the copy in the slot outlives the resource */
  fail_unless (surface_matches_frame (s, 0));
  fail_if (hxex_client_resolve (c, id, 5 * SECOND, &err));
  fail_unless (g_error_matches (err, HXEX_ERROR, HXEX_ERR_UNKNOWN_RESOURCE));
  g_clear_error (&err);

  /* not a format the export carries: R8_UNORM (virgl 64) */
  g_free (created);
  created = standin_runner_ask (vmm, "create 32 32 64");
  fail_unless (sscanf (created, "CREATED %u", &id) == 1, "%s", created);
  fail_if (hxex_client_resolve (c, id, 5 * SECOND, &err));
  fail_unless (g_error_matches (err, HXEX_ERROR,
          HXEX_ERR_UNSUPPORTED_FORMAT), "%s", err->message);
  g_clear_error (&err);

  /* larger than a slot (the stand-in's slots hold one 4K BGRA frame) */
  g_free (created);
  created = standin_runner_ask (vmm, "create 4096 2304");
  fail_unless (sscanf (created, "CREATED %u", &id) == 1, "%s", created);
  fail_if (hxex_client_resolve (c, id, 5 * SECOND, &err));
  fail_unless (g_error_matches (err, HXEX_ERROR, HXEX_ERR_TOO_LARGE), "%s",
      err->message);
  g_clear_error (&err);
  fail_unless (hxex_client_is_connected (c));

  /* double release */
  fail_unless (hxex_client_surface_release (s, &err));
  fail_if (hxex_client_surface_release (s, &err));
  fail_unless (g_error_matches (err, HXEX_ERROR, HXEX_ERR_RELEASED));
  g_clear_error (&err);
  hxex_client_surface_free (s);
  fail_unless_equals_int (standin_runner_ask_stat (vmm, "handles_held"), 0);
  fail_unless_equals_int (standin_runner_ask_stat (vmm, "bad_releases"), 0);

  hxex_client_unref (c);
  standin_runner_stop_checked (vmm);
}

GST_END_TEST;

/* ---- the framing both ends share (HxexStream), over a socket pair ---- */

static void
stream_pair (HxexStream * tx, HxexStream * rx)
{
  gint sv[2];
  GSocket *a, *b;

  fail_unless (socketpair (AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0);
  a = g_socket_new_from_fd (sv[0], NULL);
  b = g_socket_new_from_fd (sv[1], NULL);
  fail_unless (a && b);
  g_socket_set_blocking (a, FALSE);
  g_socket_set_blocking (b, FALSE);
  hxex_stream_init (tx, a, "the receiver closed the stream");
  hxex_stream_init (rx, b, "the sender closed the stream");
}

static void
stream_pair_free (HxexStream * tx, HxexStream * rx)
{
  g_object_unref (tx->socket);
  g_object_unref (rx->socket);
  hxex_stream_clear (tx);
  hxex_stream_clear (rx);
}

static gint64
deadline_in_ms (gint ms)
{
  return g_get_monotonic_time () + ms * 1000;
}

/* A message cut by a timeout is finished by the next read; descriptors
 * travel with a message, the announced ones are taken and the rest closed;
 * a peer gone mid-message is said so; a send that did not start leaves the
 * stream usable, one to a closed peer does not. */
GST_START_TEST (test_stream_framing)
{
  guint8 buf[HXEX_HEADER_SIZE + HXEX_MAX_PAYLOAD_SIZE] = { 0, };
  guint8 zeros[HXEX_MAX_PAYLOAD_SIZE] = { 0, };
  g_autoptr (GArray) fds = g_array_new (FALSE, FALSE, sizeof (gint));
  HxexHeader h = { HXEX_MSG_RESOLVE, 0, HXEX_RESOLVE_SIZE, 7 }, got;
  HxexStream tx, rx;
  HxexResolve req;
  GError *err = NULL;
  gboolean broken;
  gint pipefd[2];
  gchar c;

  stream_pair (&tx, &rx);

  /* nothing there: a read that may not wait says so */
  fail_if (hxex_stream_read (&rx, &got, HXEX_DEADLINE_NOW, &err));
  fail_unless (g_error_matches (err, G_IO_ERROR, G_IO_ERROR_WOULD_BLOCK));
  g_clear_error (&err);

  /* 20 of 32 bytes, a timeout, the other 12: one whole message */
  hxex_header_write (buf, &h);
  hxex_resolve_write (&(HxexResolve) {
      42, 0}
      , buf + HXEX_HEADER_SIZE);
  fail_unless_equals_int (g_socket_send (tx.socket, (gchar *) buf, 20, NULL,
          NULL), 20);
  fail_if (hxex_stream_read (&rx, &got, deadline_in_ms (50), &err));
  fail_unless (g_error_matches (err, G_IO_ERROR, G_IO_ERROR_TIMED_OUT));
  g_clear_error (&err);
  fail_unless_equals_int (g_socket_send (tx.socket, (gchar *) buf + 20, 12,
          NULL, NULL), 12);
  fail_unless (hxex_stream_read (&rx, &got, deadline_in_ms (5000), NULL));
  fail_unless_equals_int (got.type, HXEX_MSG_RESOLVE);
  fail_unless_equals_int (got.request_id, 7);
  fail_unless (hxex_resolve_parse (hxex_stream_payload (&rx),
          got.payload_size, &req, NULL));
  fail_unless_equals_int (req.resource_id, 42);

  /* a SURFACE announcing one descriptor, sent with two (a pipe's ends):
   * the first is taken, the second closed, so the pipe reads its end */
  fail_unless (pipe (pipefd) == 0);
  h = (HxexHeader) {
  HXEX_MSG_SURFACE, 1, HXEX_SURFACE_SIZE, 8};
  memset (buf, 0, sizeof (buf));
  hxex_header_write (buf, &h);
  fail_unless_equals_int (hxex_socket_send (tx.socket, buf,
          HXEX_HEADER_SIZE + HXEX_SURFACE_SIZE, pipefd, 2, NULL),
      HXEX_HEADER_SIZE + HXEX_SURFACE_SIZE);
  close (pipefd[0]);
  close (pipefd[1]);
  fail_unless (hxex_stream_read (&rx, &got, deadline_in_ms (5000), NULL));
  fail_unless (hxex_stream_take_fds (&rx, &got, fds, NULL));
  fail_unless_equals_int (fds->len, 1);
  fail_unless_equals_int (rx.fds->len, 0);
  fail_unless (fcntl (g_array_index (fds, gint, 0), F_SETFL, O_NONBLOCK) == 0);
  fail_unless_equals_int (read (g_array_index (fds, gint, 0), &c, 1), 0);
  hxex_fds_clear (fds);

  /* announced, not sent: a protocol error */
  fail_unless (hxex_stream_send (&tx, HXEX_MSG_SURFACE, 9, zeros,
          HXEX_SURFACE_SIZE, NULL, 0, deadline_in_ms (5000), NULL, NULL));
  fail_unless (hxex_stream_read (&rx, &got, deadline_in_ms (5000), NULL));
  fail_unless_equals_int (got.n_fds, 0);
  h = (HxexHeader) {
  HXEX_MSG_SURFACE, 1, HXEX_SURFACE_SIZE, 10};
  hxex_header_write (buf, &h);
  fail_unless_equals_int (g_socket_send (tx.socket, (gchar *) buf,
          HXEX_HEADER_SIZE + HXEX_SURFACE_SIZE, NULL, NULL),
      HXEX_HEADER_SIZE + HXEX_SURFACE_SIZE);
  fail_unless (hxex_stream_read (&rx, &got, deadline_in_ms (5000), NULL));
  fail_if (hxex_stream_take_fds (&rx, &got, fds, &err));
  fail_unless (g_error_matches (err, HXEX_ERROR, HXEX_ERR_PROTOCOL));
  g_clear_error (&err);

  /* hxex_stream_send: the descriptor goes with the message */
  fail_unless (pipe (pipefd) == 0);
  fail_unless (hxex_stream_send (&tx, HXEX_MSG_SURFACE, 11, zeros,
          HXEX_SURFACE_SIZE, &pipefd[1], 1, deadline_in_ms (5000), NULL, NULL));
  close (pipefd[1]);
  fail_unless (hxex_stream_read (&rx, &got, deadline_in_ms (5000), NULL));
  fail_unless_equals_int (got.request_id, 11);
  fail_unless (hxex_stream_take_fds (&rx, &got, fds, NULL));
  fail_unless_equals_int (fds->len, 1);
  fail_unless_equals_int (write (g_array_index (fds, gint, 0), "x", 1), 1);
  fail_unless_equals_int (read (pipefd[0], &c, 1), 1);
  close (pipefd[0]);
  hxex_fds_clear (fds);

  /* a full socket: a send that could not start leaves the stream usable */
  while (g_socket_send (tx.socket, (gchar *) zeros, 1, NULL, NULL) == 1);
  fail_if (hxex_stream_send (&tx, HXEX_MSG_RELEASE, 0, zeros,
          HXEX_RELEASE_SIZE, NULL, 0, HXEX_DEADLINE_NOW, &broken, &err));
  fail_unless (g_error_matches (err, G_IO_ERROR, G_IO_ERROR_WOULD_BLOCK));
  fail_if (broken);
  g_clear_error (&err);
  fail_if (hxex_stream_send (&tx, HXEX_MSG_RELEASE, 0, zeros,
          HXEX_RELEASE_SIZE, NULL, 0, deadline_in_ms (50), &broken, &err));
  fail_unless (g_error_matches (err, G_IO_ERROR, G_IO_ERROR_TIMED_OUT));
  fail_if (broken);
  g_clear_error (&err);
  stream_pair_free (&tx, &rx);

  /* the sender goes after half a header */
  stream_pair (&tx, &rx);
  fail_unless_equals_int (g_socket_send (tx.socket, (gchar *) buf, 10, NULL,
          NULL), 10);
  g_socket_close (tx.socket, NULL);
  fail_if (hxex_stream_read (&rx, &got, deadline_in_ms (5000), &err));
  fail_unless (g_error_matches (err, G_IO_ERROR, G_IO_ERROR_CONNECTION_CLOSED));
  fail_unless_equals_string (err->message,
      "the sender closed the stream in the middle of a message");
  g_clear_error (&err);
  /* and a send to it fails for good */
  fail_if (hxex_stream_send (&rx, HXEX_MSG_RELEASE, 0, zeros,
          HXEX_RELEASE_SIZE, NULL, 0, deadline_in_ms (5000), &broken, &err));
  fail_unless (err != NULL);
  fail_unless (broken);
  g_clear_error (&err);
  stream_pair_free (&tx, &rx);
}

GST_END_TEST;

/* A client that speaks the wire directly: RELEASE of a handle it does not
 * hold is ignored (counted), a malformed message closes the connection. */
GST_START_TEST (test_raw_protocol)
{
  g_autoptr (GSocket) sock = NULL;
  g_autoptr (GSocketAddress) addr = NULL;
  g_autoptr (GArray) fds = g_array_new (FALSE, FALSE, sizeof (gint));
  guint8 buf[HXEX_HEADER_SIZE + HXEX_MAX_PAYLOAD_SIZE];
  HxexHeader h;
  gsize got = 0;
  StandinRunner *vmm = standin_runner_start (NULL);

  if (!vmm)
    return;
  sock = g_socket_new (G_SOCKET_FAMILY_UNIX, G_SOCKET_TYPE_STREAM, 0, NULL);
  addr = g_unix_socket_address_new (standin_runner_get_socket_path (vmm));
  fail_unless (g_socket_connect (sock, addr, NULL, NULL));
  g_socket_set_timeout (sock, 10);

  /* RESOLVE before HELLO: ERROR PROTOCOL, then closed */
  h = (HxexHeader) {
  HXEX_MSG_RESOLVE, 0, HXEX_RESOLVE_SIZE, 5};
  hxex_header_write (buf, &h);
  hxex_resolve_write (&(HxexResolve) {
      1, 0}
      , buf + 16);
  fail_unless_equals_int (g_socket_send (sock, (gchar *) buf, 32, NULL, NULL),
      32);
  {
    guint8 ebuf[HXEX_HEADER_SIZE + HXEX_ERROR_SIZE];

    while (got < sizeof (ebuf)) {
      gssize n = hxex_socket_receive (sock, ebuf + got, sizeof (ebuf) - got,
          fds, NULL);

      fail_unless (n > 0);
      got += n;
    }
    memcpy (buf, ebuf, HXEX_HEADER_SIZE + 4);
  }
  fail_unless (hxex_header_parse (buf, &h, NULL));
  fail_unless_equals_int (h.type, HXEX_MSG_ERROR);
  fail_unless_equals_int (h.request_id, 5);
  fail_unless_equals_int (GINT32_FROM_LE (*(gint32 *) (buf + 16)),
      HXEX_ERR_PROTOCOL);
  fail_unless_equals_int (hxex_socket_receive (sock, buf, 16, fds, NULL), 0);
  fail_unless_equals_int (fds->len, 0);
  g_socket_close (sock, NULL);

  /* the export still serves others */
  {
    HxexClient *c = connect_client (vmm);
    HxexClientSurface *s =
        hxex_client_resolve (c, standin_runner_get_resource (vmm),
        5 * SECOND, NULL);
    guint8 rel[HXEX_HEADER_SIZE + HXEX_RELEASE_SIZE];

    fail_unless (s != NULL);
    hxex_client_surface_free (s);
    hxex_client_unref (c);

    /* RELEASE of a handle never handed out: no answer, counted */
    g_clear_object (&sock);
    sock = g_socket_new (G_SOCKET_FAMILY_UNIX, G_SOCKET_TYPE_STREAM, 0, NULL);
    fail_unless (g_socket_connect (sock, addr, NULL, NULL));
    g_socket_set_timeout (sock, 10);
    h = (HxexHeader) {
    HXEX_MSG_HELLO, 0, HXEX_HELLO_SIZE, 0};
    hxex_header_write (buf, &h);
    hxex_hello_write (&(HxexHello) {
        1, 1, HXEX_KIND_BIT (HXEX_KIND_READBACK_SLOT)}
        , buf + 16);
    h = (HxexHeader) {
    HXEX_MSG_RELEASE, 0, HXEX_RELEASE_SIZE, 0};
    hxex_header_write (rel, &h);
    hxex_release_write (4242, rel + 16);
    fail_unless_equals_int (g_socket_send (sock, (gchar *) buf, 32, NULL,
            NULL), 32);
    fail_unless_equals_int (g_socket_send (sock, (gchar *) rel, 24, NULL,
            NULL), 24);
    /* HELLO_ACK with the ring */
    got = 0;
    while (got < HXEX_HEADER_SIZE + HXEX_HELLO_ACK_SIZE) {
      gssize n = hxex_socket_receive (sock, buf + got,
          HXEX_HEADER_SIZE + HXEX_HELLO_ACK_SIZE - got, fds, NULL);

      fail_unless (n > 0);
      got += n;
    }
    fail_unless (hxex_header_parse (buf, &h, NULL));
    fail_unless_equals_int (h.type, HXEX_MSG_HELLO_ACK);
    fail_unless_equals_int (h.n_fds, 1);
    fail_unless_equals_int (fds->len, 1);
    hxex_fds_clear (fds);
    fail_unless_equals_int (standin_runner_ask_stat (vmm, "bad_releases"), 1);
    fail_unless_equals_int (standin_runner_ask_stat (vmm, "clients"), 1);
  }
  g_socket_close (sock, NULL);

  /* 16 bytes that are no header: ERROR PROTOCOL, then closed */
  {
    HxexStream st;
    HxexErrorMsg emsg;
    GError *err = NULL;

    g_clear_object (&sock);
    sock = g_socket_new (G_SOCKET_FAMILY_UNIX, G_SOCKET_TYPE_STREAM, 0, NULL);
    fail_unless (g_socket_connect (sock, addr, NULL, NULL));
    g_socket_set_blocking (sock, FALSE);
    hxex_stream_init (&st, sock, "the VMM closed the connection");
    memset (buf, 0xff, HXEX_HEADER_SIZE);
    fail_unless_equals_int (g_socket_send (sock, (gchar *) buf,
            HXEX_HEADER_SIZE, NULL, NULL), HXEX_HEADER_SIZE);
    fail_unless (hxex_stream_read (&st, &h, g_get_monotonic_time () +
            LINE_TIMEOUT, NULL));
    fail_unless_equals_int (h.type, HXEX_MSG_ERROR);
    fail_unless (hxex_error_parse (hxex_stream_payload (&st), h.payload_size,
            &emsg, NULL));
    fail_unless_equals_int (emsg.code, HXEX_ERR_PROTOCOL);
    fail_if (hxex_stream_read (&st, &h, g_get_monotonic_time () +
            LINE_TIMEOUT, &err));
    fail_unless (g_error_matches (err, G_IO_ERROR,
            G_IO_ERROR_CONNECTION_CLOSED));
    g_clear_error (&err);
    hxex_stream_clear (&st);
  }
  g_socket_close (sock, NULL);
  standin_runner_stop_checked (vmm);
}

GST_END_TEST;

GST_START_TEST (test_busy)
{
  const gchar *extra[] = { "--slots", "3", NULL };
  g_autoptr (GError) err = NULL;
  HxexClientSurface *held[3];
  HxexClient *c;
  HxexClientSurface *s;
  guint i;
  StandinRunner *vmm = standin_runner_start (extra);

  if (!vmm)
    return;
  c = connect_client (vmm);
  fail_unless_equals_int (hxex_client_get_n_slots (c), 3);
  for (i = 0; i < 3; i++) {
    held[i] =
        hxex_client_resolve (c, standin_runner_get_resource (vmm),
        5 * SECOND, &err);
    fail_unless (held[i] != NULL, "%s", err ? err->message : "");
  }
  s = hxex_client_resolve (c, standin_runner_get_resource (vmm),
      5 * SECOND, &err);
  fail_unless (s == NULL);
  fail_unless (g_error_matches (err, HXEX_ERROR, HXEX_ERR_BUSY), "%s",
      err->message);
  g_clear_error (&err);

  /* one back, one more out */
  hxex_client_surface_free (held[1]);
  held[1] =
      hxex_client_resolve (c, standin_runner_get_resource (vmm),
      5 * SECOND, &err);
  fail_unless (held[1] != NULL, "%s", err ? err->message : "");

  /* slots belong to a connection: another client has its own ring */
  {
    HxexClient *c2 = connect_client (vmm);

    s = hxex_client_resolve (c2, standin_runner_get_resource (vmm),
        5 * SECOND, &err);
    fail_unless (s != NULL, "%s", err ? err->message : "");
    fail_unless (surface_matches_frame (s, 0));
    fail_unless_equals_int (standin_runner_ask_stat (vmm, "slots_in_use"), 4);
    hxex_client_surface_free (s);
    hxex_client_unref (c2);
  }

  /* a client that goes away gives all its slots back, while what it
   * holds stays readable on its side */
  hxex_client_close (c);
  fail_unless (surface_matches_frame (held[0], 0));
  {
    gint64 deadline = g_get_monotonic_time () + 10 * SECOND;

    while (standin_runner_ask_stat (vmm, "clients") > 0
        && g_get_monotonic_time () < deadline);
  }
  fail_unless_equals_int (standin_runner_ask_stat (vmm, "clients"), 0);
  fail_unless_equals_int (standin_runner_ask_stat (vmm, "slots_in_use"), 0);
  fail_unless_equals_int (standin_runner_ask_stat (vmm, "handles_held"), 0);
  for (i = 0; i < 3; i++)
    hxex_client_surface_free (held[i]);
  hxex_client_unref (c);
  standin_runner_stop_checked (vmm);
}

GST_END_TEST;

typedef struct
{
  HxexClient *client;
  guint32 resource_id;
  GError *error;
  gint64 elapsed;
} ResolveJob;

static gpointer
resolve_thread (gpointer data)
{
  ResolveJob *job = data;
  gint64 start = g_get_monotonic_time ();
  HxexClientSurface *s = hxex_client_resolve (job->client,
      job->resource_id, 30 * SECOND, &job->error);

  job->elapsed = g_get_monotonic_time () - start;
  hxex_client_surface_free (s);
  return NULL;
}

GST_START_TEST (test_vmm_stalls_then_dies)
{
  g_autoptr (GError) err = NULL;
  g_autofree gchar *reply = NULL;
  HxexClient *c;
  HxexClientSurface *s, *kept;
  ResolveJob job = { 0 };
  GThread *t;
  gint64 start, elapsed;
  StandinRunner *vmm = standin_runner_start (NULL);

  if (!vmm)
    return;
  c = connect_client (vmm);
  kept =
      hxex_client_resolve (c, standin_runner_get_resource (vmm),
      5 * SECOND, &err);
  fail_unless (kept != NULL);

  /* a hung renderer thread: the client gives up at its timeout */
  reply = standin_runner_ask (vmm, "stall 2000");
  fail_unless_equals_string (reply, "STALLING");
  g_clear_pointer (&reply, g_free);
  start = g_get_monotonic_time ();
  s = hxex_client_resolve (c, standin_runner_get_resource (vmm),
      SECOND / 2, &err);
  elapsed = g_get_monotonic_time () - start;
  fail_unless (s == NULL);
  fail_unless (g_error_matches (err, G_IO_ERROR, G_IO_ERROR_TIMED_OUT), "%s",
      err->message);
  fail_unless (elapsed < 2 * SECOND);
  g_clear_error (&err);
  reply = standin_runner_next_line (vmm);       /* the stall is over */
  fail_unless_equals_string (reply, "OK");

  /* the late answer is given back; the next request gets its own */
  s = hxex_client_resolve (c, standin_runner_get_resource (vmm),
      5 * SECOND, &err);
  fail_unless (s != NULL, "%s", err ? err->message : "");
  fail_unless (surface_matches_frame (s, 0));
  hxex_client_surface_free (s);
  fail_unless_equals_int (standin_runner_ask_stat (vmm, "handles_held"), 1);

  /* the VMM dies while a request waits on it */
  g_free (reply);
  reply = standin_runner_ask (vmm, "stall 20000");
  fail_unless_equals_string (reply, "STALLING");
  job.client = c;
  job.resource_id = standin_runner_get_resource (vmm);
  t = g_thread_new ("resolve", resolve_thread, &job);
  /* the request is sent or about to be: either order must give the same
   * clear error, never a wait for the 30 s timeout */
  g_usleep (300 * 1000);
  standin_runner_kill (vmm);
  g_thread_join (t);
  fail_unless (job.error != NULL);
  fail_unless (job.error->domain == G_IO_ERROR);
  fail_if (g_error_matches (job.error, G_IO_ERROR, G_IO_ERROR_TIMED_OUT));
  fail_unless (job.elapsed < 10 * SECOND);
  GST_INFO ("after the VMM died: %s", job.error->message);
  g_clear_error (&job.error);
  fail_if (hxex_client_is_connected (c));

  /* later calls fail at once; what was handed out stays readable */
  start = g_get_monotonic_time ();
  fail_if (hxex_client_resolve (c, standin_runner_get_resource (vmm),
          5 * SECOND, &err));
  fail_unless (err != NULL);
  fail_unless (g_get_monotonic_time () - start < SECOND);
  fail_unless (surface_matches_frame (kept, 0));
  fail_unless (hxex_client_surface_release (kept, NULL));
  hxex_client_surface_free (kept);
  hxex_client_unref (c);
  standin_runner_stop_checked (vmm);
}

GST_END_TEST;

typedef struct
{
  HxexClient *client;
  guint32 resource_id;
  guint cycles;
  guint failures;
} CycleJob;

static gpointer
cycle_thread (gpointer data)
{
  CycleJob *job = data;
  guint i;

  for (i = 0; i < job->cycles; i++) {
    HxexClientSurface *s = hxex_client_resolve (job->client,
        job->resource_id, 10 * SECOND, NULL);

    if (!s || s->data[3] != 255)
      job->failures++;
    hxex_client_surface_free (s);
  }
  return NULL;
}

GST_START_TEST (test_many_cycles_no_leak)
{
  const gchar *extra[] = { "--width", "64", "--height", "64", "--slots", "4",
    NULL
  };
  CycleJob jobs[4];
  GThread *threads[4];
  HxexClient *c;
  guint fds_before, vmm_fds_before, i;
  StandinRunner *vmm = standin_runner_start (extra);

  if (!vmm)
    return;
  c = connect_client (vmm);
  /* warm up (lazy allocations on both sides), then measure */
  cycle_thread (&(CycleJob) {
      c, standin_runner_get_resource (vmm), 10, 0}
  );
  fds_before = proc_count_fds (getpid ());
  vmm_fds_before = standin_runner_ask_stat (vmm, "fds");

  /* one thread, then four sharing the connection */
  jobs[0] = (CycleJob) {
  c, standin_runner_get_resource (vmm), 2000, 0};
  cycle_thread (&jobs[0]);
  fail_unless_equals_int (jobs[0].failures, 0);
  for (i = 0; i < 4; i++) {
    jobs[i] = (CycleJob) {
    c, standin_runner_get_resource (vmm), 500, 0};
    threads[i] = g_thread_new ("cycles", cycle_thread, &jobs[i]);
  }
  for (i = 0; i < 4; i++) {
    g_thread_join (threads[i]);
    fail_unless_equals_int (jobs[i].failures, 0);
  }

  fail_unless_equals_int (proc_count_fds (getpid ()), fds_before);
  fail_unless_equals_int (standin_runner_ask_stat (vmm, "fds"), vmm_fds_before);
  fail_unless_equals_int (standin_runner_ask_stat (vmm, "slots_in_use"), 0);
  fail_unless_equals_int (standin_runner_ask_stat (vmm, "handles_held"), 0);
  fail_unless_equals_int (standin_runner_ask_stat (vmm, "resolves"),
      10 + 2000 + 4 * 500);
  fail_unless_equals_int (standin_runner_ask_stat (vmm, "bad_releases"), 0);

  hxex_client_unref (c);
  /* the ring's descriptor was closed once mapped: only the socket goes */
  fail_unless_equals_int (proc_count_fds (getpid ()), fds_before - 1);
  standin_runner_stop_checked (vmm);
}

GST_END_TEST;

/* Scanout watches (export protocol version 2) */

#define FOURCC_AR24 0x34325241u

typedef struct
{
  gboolean is_flush;
  HxfrScanoutState state;
  HxfrScanoutFlush flush;
} WatchEvent;

/* What a watch's callbacks saw, for the test thread to wait on. */
typedef struct
{
  GMutex lock;
  GCond cond;
  GArray *events;               /* WatchEvent */
  guint n_flushes;
  gboolean closed;
  GError *closed_error;
  GPtrArray *shapes;            /* HxfrCursorShape, pixels ref'd */
  GArray *moves;                /* HxexCursorMove */
  GPtrArray *snapshots;         /* HxexClientSurface, held (version 4) */
} WatchRec;

static void
rec_push (WatchRec * r, const WatchEvent * ev)
{
  g_mutex_lock (&r->lock);
  g_array_append_val (r->events, *ev);
  r->n_flushes += ev->is_flush;
  g_cond_broadcast (&r->cond);
  g_mutex_unlock (&r->lock);
}

static void
rec_state (gpointer user_data, const HxfrScanoutState * st)
{
  WatchEvent ev = { FALSE, *st, {0} };

  rec_push (user_data, &ev);
}

static void
rec_flush (gpointer user_data, const HxfrScanoutFlush * fl)
{
  WatchEvent ev = { TRUE, {0}, *fl };

  rec_push (user_data, &ev);
}

static void
rec_closed (gpointer user_data, const GError * why)
{
  WatchRec *r = user_data;

  g_mutex_lock (&r->lock);
  r->closed = TRUE;
  r->closed_error = g_error_copy (why);
  g_cond_broadcast (&r->cond);
  g_mutex_unlock (&r->lock);
}

static void
shape_free (gpointer data)
{
  HxfrCursorShape *sh = data;

  g_bytes_unref (sh->pixels);
  g_free (sh);
}

static void
rec_cursor_shape (gpointer user_data, const HxfrCursorShape * shape)
{
  WatchRec *r = user_data;
  HxfrCursorShape *copy = g_memdup2 (shape, sizeof (*shape));

  g_bytes_ref (copy->pixels);
  g_mutex_lock (&r->lock);
  g_ptr_array_add (r->shapes, copy);
  g_cond_broadcast (&r->cond);
  g_mutex_unlock (&r->lock);
}

static void
rec_cursor_move (gpointer user_data, const HxexCursorMove * move)
{
  WatchRec *r = user_data;

  g_mutex_lock (&r->lock);
  g_array_append_val (r->moves, *move);
  g_cond_broadcast (&r->cond);
  g_mutex_unlock (&r->lock);
}

static const HxexWatchCallbacks rec_callbacks = {
  rec_state, rec_flush, rec_closed, rec_cursor_shape, rec_cursor_move
};

/* A snapshot is a flush too (n_flushes, rec_wait), kept until the test
 * frees it */
static void
rec_snapshot (gpointer user_data, const HxfrScanoutFlush * fl,
    HxexClientSurface * surface)
{
  WatchRec *r = user_data;
  WatchEvent ev = { TRUE, {0}, *fl };

  g_mutex_lock (&r->lock);
  g_ptr_array_add (r->snapshots, surface);
  g_mutex_unlock (&r->lock);
  rec_push (r, &ev);
}

static const HxexWatchCallbacks rec_snapshot_callbacks = {
  rec_state, rec_flush, rec_closed, rec_cursor_shape, rec_cursor_move,
  rec_snapshot
};

static WatchRec *
rec_new (void)
{
  WatchRec *r = g_new0 (WatchRec, 1);

  g_mutex_init (&r->lock);
  g_cond_init (&r->cond);
  r->events = g_array_new (FALSE, FALSE, sizeof (WatchEvent));
  r->shapes = g_ptr_array_new_with_free_func (shape_free);
  r->moves = g_array_new (FALSE, FALSE, sizeof (HxexCursorMove));
  r->snapshots = g_ptr_array_new_with_free_func ((GDestroyNotify)
      hxex_client_surface_free);
  return r;
}

static void
rec_free (WatchRec * r)
{
  g_array_unref (r->events);
  g_ptr_array_unref (r->shapes);
  g_array_unref (r->moves);
  g_ptr_array_unref (r->snapshots);
  g_clear_error (&r->closed_error);
  g_mutex_clear (&r->lock);
  g_cond_clear (&r->cond);
  g_free (r);
}

/* Waits for the first event from *cursor on that is a state (or flush)
 * of scanout @index naming @resource_id (G_MAXUINT32: any); moves the
 * cursor past it. */
static WatchEvent
rec_wait (WatchRec * r, guint * cursor, gboolean is_flush, guint32 index,
    guint32 resource_id)
{
  gint64 deadline = g_get_monotonic_time () + LINE_TIMEOUT;
  WatchEvent found;
  gboolean ok = FALSE;

  g_mutex_lock (&r->lock);
  while (!ok) {
    for (; *cursor < r->events->len && !ok; (*cursor)++) {
      const WatchEvent *ev = &g_array_index (r->events, WatchEvent, *cursor);
      guint32 i = is_flush ? ev->flush.index : ev->state.index;
      guint32 id = is_flush ? ev->flush.resource_id : ev->state.resource_id;

      ok = ev->is_flush == is_flush && i == index && (resource_id ==
          G_MAXUINT32 || id == resource_id);
      found = *ev;
    }
    if (!ok && !g_cond_wait_until (&r->cond, &r->lock, deadline))
      break;
  }
  g_mutex_unlock (&r->lock);
  fail_unless (ok, "no %s of scanout %u resource %u came", is_flush ?
      "FLUSH" : "SCANOUT", index, resource_id);
  return found;
}

static void
rec_wait_flushes (WatchRec * r, guint n)
{
  gint64 deadline = g_get_monotonic_time () + LINE_TIMEOUT;

  g_mutex_lock (&r->lock);
  while (r->n_flushes < n && !r->closed)
    if (!g_cond_wait_until (&r->cond, &r->lock, deadline))
      break;
  fail_unless (r->n_flushes >= n, "%u flushes of %u, closed %d",
      r->n_flushes, n, r->closed);
  g_mutex_unlock (&r->lock);
}

static HxexWatch *
watch_new (StandinRunner * vmm, WatchRec * r)
{
  g_autoptr (GError) err = NULL;
  HxexWatch *w = hxex_watch_new (standin_runner_get_socket_path (vmm),
      &rec_callbacks, r, 10 * SECOND, &err);

  fail_unless (w != NULL, "watch: %s", err ? err->message : "");
  return w;
}

/* Pops stand-in lines up to the one starting with @prefix. */
static gchar *
vmm_wait_line (StandinRunner * vmm, const gchar * prefix)
{
  for (;;) {
    gchar *l = standin_runner_next_line (vmm);

    fail_if (l == NULL, "the stand-in ended before %s", prefix);
    if (g_str_has_prefix (l, prefix))
      return l;
    g_free (l);
  }
}

/* Test frame @frame of the pattern everywhere in @s */
static gboolean
resolve_matches (StandinRunner * vmm, guint32 resource_id, guint32 frame,
    guint32 width, guint32 height)
{
  g_autoptr (GError) err = NULL;
  HxexClient *c = connect_client (vmm);
  HxexClientSurface *s = hxex_client_resolve (c, resource_id, 5 * SECOND, &err);
  gboolean ok;

  fail_unless (s != NULL, "resolve %u: %s", resource_id,
      err ? err->message : "");
  ok = s->width == width && s->height == height
      && surface_matches_frame (s, frame);
  hxex_client_surface_free (s);
  hxex_client_unref (c);
  return ok;
}

/* A raw connection, for what our own client never sends */

static GSocket *
raw_connect (StandinRunner * vmm)
{
  g_autoptr (GSocketAddress) addr =
      g_unix_socket_address_new (standin_runner_get_socket_path (vmm));
  GSocket *sock =
      g_socket_new (G_SOCKET_FAMILY_UNIX, G_SOCKET_TYPE_STREAM, 0, NULL);

  fail_unless (g_socket_connect (sock, addr, NULL, NULL));
  g_socket_set_timeout (sock, 10);
  return sock;
}

static void
raw_send (GSocket * sock, guint8 type, guint32 request_id,
    const guint8 * payload, gsize len)
{
  guint8 buf[HXEX_HEADER_SIZE + HXEX_MAX_PAYLOAD_SIZE];
  HxexHeader h = { type, 0, (guint32) len, request_id };

  hxex_header_write (buf, &h);
  memcpy (buf + HXEX_HEADER_SIZE, payload, len);
  fail_unless (g_socket_send (sock, (gchar *) buf, HXEX_HEADER_SIZE + len,
          NULL, NULL) == (gssize) (HXEX_HEADER_SIZE + len));
}

/* One whole message into @buf (descriptors closed); FALSE at EOF. */
static gboolean
raw_recv (GSocket * sock, HxexHeader * h, guint8 * buf)
{
  g_autoptr (GArray) fds = g_array_new (FALSE, FALSE, sizeof (gint));
  gsize got = 0, need = HXEX_HEADER_SIZE;

  while (got < need) {
    g_autoptr (GError) err = NULL;
    gssize n = hxex_socket_receive (sock, buf + got, need - got, fds, &err);

    fail_if (n < 0, "raw receive: %s", err ? err->message : "");
    if (n == 0) {
      fail_unless (got == 0, "EOF inside a message");
      return FALSE;
    }
    got += n;
    if (got == HXEX_HEADER_SIZE && need == HXEX_HEADER_SIZE) {
      fail_unless (hxex_header_parse (buf, h, NULL));
      need += h->payload_size;
    }
  }
  hxex_fds_clear (fds);
  return TRUE;
}

static guint16
raw_hello (GSocket * sock, guint16 min, guint16 max, guint32 kinds)
{
  guint8 buf[HXEX_HEADER_SIZE + HXEX_MAX_PAYLOAD_SIZE];
  HxexHello hello = { min, max, kinds };
  HxexHelloAck ack;
  HxexHeader h;

  hxex_hello_write (&hello, buf);
  raw_send (sock, HXEX_MSG_HELLO, 0, buf, HXEX_HELLO_SIZE);
  fail_unless (raw_recv (sock, &h, buf));
  if (h.type == HXEX_MSG_ERROR)
    return 0;
  fail_unless_equals_int (h.type, HXEX_MSG_HELLO_ACK);
  fail_unless (hxex_hello_ack_parse (buf + HXEX_HEADER_SIZE, h.payload_size,
          &ack, NULL));
  return ack.version;
}

/* HELLO v2 without a ring, WATCH, the initial SCANOUTs: a watch by hand */
static GSocket *
raw_watch (StandinRunner * vmm, guint n_scanouts)
{
  guint8 buf[HXEX_HEADER_SIZE + HXEX_MAX_PAYLOAD_SIZE];
  GSocket *sock = raw_connect (vmm);
  HxexScanout so;
  HxexHeader h;
  guint i;

  fail_unless_equals_int (raw_hello (sock, 2, 2, 0x1), 2);
  hxex_watch_write (buf);
  raw_send (sock, HXEX_MSG_WATCH, 0, buf, HXEX_WATCH_SIZE);
  for (i = 0; i < n_scanouts; i++) {
    fail_unless (raw_recv (sock, &h, buf));
    fail_unless_equals_int (h.type, HXEX_MSG_SCANOUT);
    fail_unless (hxex_scanout_parse (buf + 16, h.payload_size, &so, NULL));
    fail_unless_equals_int (so.index, i);
    fail_unless_equals_int (so.n_scanouts, n_scanouts);
  }
  return sock;
}

/* Expects ERROR @code (with @request_id), then the VMM's close when
 * @closes. */
static void
raw_expect_error (GSocket * sock, guint32 request_id, gint32 code,
    gboolean closes)
{
  guint8 buf[HXEX_HEADER_SIZE + HXEX_MAX_PAYLOAD_SIZE];
  HxexErrorMsg em;
  HxexHeader h;

  fail_unless (raw_recv (sock, &h, buf));
  fail_unless_equals_int (h.type, HXEX_MSG_ERROR);
  fail_unless_equals_int (h.request_id, request_id);
  fail_unless (hxex_error_parse (buf + 16, h.payload_size, &em, NULL));
  fail_unless_equals_int (em.code, code);
  GST_INFO ("VMM said: %s", em.message);
  if (closes)
    fail_if (raw_recv (sock, &h, buf), "still open after the error");
}

static void
raw_control (GSocket * sock, guint32 request_id, guint32 index,
    guint32 enable, guint32 width, guint32 height)
{
  guint8 buf[HXEX_SCANOUT_CONTROL_SIZE];
  HxexScanoutControl m = { index, enable, width, height, 60 };

  hxex_scanout_control_write (&m, buf);
  raw_send (sock, HXEX_MSG_SCANOUT_CONTROL, request_id, buf, sizeof (buf));
}

GST_START_TEST (test_codec_scanouts)
{
  guint8 buf[HXEX_MAX_PAYLOAD_SIZE];
  HxexScanout so = { 3, HXEX_SCANOUT_ENABLED, 42, 1920, 1080, FOURCC_AR24,
    4
  }, so2;
  HxexFlush fl = { 3, 42, 1, 2, 3, 4, G_GUINT64_CONSTANT (0x0102030405060708)
  }, fl2;
  HxexScanoutControl ctl = { 2, 1, 1280, 720, 60 }, ctl2;
  HxexScanoutControlAck ack = { 2, HXEX_ERR_REFUSED }, ack2;
  guint8 hdr[HXEX_HEADER_SIZE];
  HxexHeader h;
  guint t;

  fail_unless_equals_int (hxex_watch_write (buf), 8);
  fail_unless (hxex_watch_parse (buf, 8, NULL));
  fail_if (hxex_watch_parse (buf, 7, NULL));

  fail_unless_equals_int (hxex_scanout_write (&so, buf), 32);
  fail_unless (buf[0] == 3 && buf[4] == 1 && buf[8] == 42);
  fail_unless (buf[12] == 0x80 && buf[13] == 0x07 && buf[16] == 0x38);
  fail_unless (memcmp (buf + 20, "AR24", 4) == 0 && buf[24] == 4);
  fail_unless (hxex_scanout_parse (buf, 32, &so2, NULL));
  fail_unless (memcmp (&so, &so2, sizeof (so)) == 0);
  buf[0] = 4;                   /* index == n_scanouts */
  fail_if (hxex_scanout_parse (buf, 32, &so2, NULL));
  buf[0] = 0;
  buf[24] = 17;                 /* more than 16 scanouts */
  fail_if (hxex_scanout_parse (buf, 32, &so2, NULL));
  buf[24] = 0;
  fail_if (hxex_scanout_parse (buf, 32, &so2, NULL));

  fail_unless_equals_int (hxex_flush_write (&fl, buf), 32);
  fail_unless (buf[0] == 3 && buf[4] == 42 && buf[8] == 1 && buf[20] == 4);
  fail_unless (buf[24] == 0x08 && buf[31] == 0x01);
  fail_unless (hxex_flush_parse (buf, 32, &fl2, NULL));
  fail_unless (memcmp (&fl, &fl2, sizeof (fl)) == 0);
  buf[0] = 16;
  fail_if (hxex_flush_parse (buf, 32, &fl2, NULL));

  fail_unless_equals_int (hxex_scanout_control_write (&ctl, buf), 24);
  fail_unless (buf[0] == 2 && buf[4] == 1 && buf[8] == 0x00 && buf[9] == 5);
  fail_unless (buf[16] == 60 && buf[20] == 0);
  fail_unless (hxex_scanout_control_parse (buf, 24, &ctl2, NULL));
  fail_unless (memcmp (&ctl, &ctl2, sizeof (ctl)) == 0);
  buf[4] = 2;                   /* enable is 0 or 1 */
  fail_if (hxex_scanout_control_parse (buf, 24, &ctl2, NULL));

  fail_unless_equals_int (hxex_scanout_control_ack_write (&ack, buf), 8);
  fail_unless (buf[0] == 2 && buf[4] == 9);
  fail_unless (hxex_scanout_control_ack_parse (buf, 8, &ack2, NULL));
  fail_unless (memcmp (&ack, &ack2, sizeof (ack)) == 0);

  /* every new type has its fixed size; 0x10 is unknown */
  for (t = HXEX_MSG_WATCH; t <= HXEX_MSG_FLUSH_SNAPSHOT + 1; t++) {
    h = (HxexHeader) {
    t, 0, (guint32) hxex_msg_payload_size (t), 1};
    hxex_header_write (hdr, &h);
    if (t <= HXEX_MSG_FLUSH_SNAPSHOT)
      fail_unless (hxex_header_parse (hdr, &h, NULL), "type %u", t);
    else
      fail_if (hxex_header_parse (hdr, &h, NULL));
    h.payload_size++;
    hxex_header_write (hdr, &h);
    fail_if (hxex_header_parse (hdr, &h, NULL));
  }
  fail_unless_equals_int (hxex_msg_payload_size (HXEX_MSG_FLUSH), 32);
  fail_unless_equals_int (hxex_msg_payload_size (HXEX_MSG_SCANOUT_CONTROL), 24);
}

GST_END_TEST;

GST_START_TEST (test_watch_initial_state)
{
  const gchar *extra[] = { "--width", "96", "--height", "64", "--scanouts",
    "3", "--scanout", "1:64x48@0", NULL
  };
  g_autofree gchar *reply = NULL;
  WatchRec *r = rec_new ();
  HxexWatch *w;
  WatchEvent *ev;
  StandinRunner *vmm = standin_runner_start (extra);

  if (!vmm) {
    rec_free (r);
    return;
  }
  w = watch_new (vmm, r);
  fail_unless_equals_int (hxex_watch_get_n_scanouts (w), 3);
  /* every scanout's state, in order, before new() returned */
  fail_unless_equals_int (r->events->len, 3);
  ev = &g_array_index (r->events, WatchEvent, 0);
  fail_unless (!ev->is_flush && ev->state.index == 0 && ev->state.enabled);
  fail_unless (ev->state.resource_id != 0);
  fail_unless_equals_int (ev->state.width, 96);
  fail_unless_equals_int (ev->state.height, 64);
  fail_unless_equals_int (ev->state.fourcc, FOURCC_AR24);
  ev = &g_array_index (r->events, WatchEvent, 1);
  fail_unless (ev->state.index == 1 && ev->state.enabled);
  fail_unless_equals_int (ev->state.width, 64);
  fail_unless_equals_int (ev->state.height, 48);
  /* each scanout shows its first flip: test frame 0 + 64 * K */
  fail_unless (resolve_matches (vmm, ev->state.resource_id, 64, 64, 48));
  ev = &g_array_index (r->events, WatchEvent, 2);
  fail_unless (ev->state.index == 2 && !ev->state.enabled);
  fail_unless_equals_int (ev->state.resource_id, 0);
  fail_unless_equals_int (standin_runner_ask_stat (vmm, "watchers"), 1);

  /* the export goes away: the watch is told, once */
  reply = standin_runner_ask (vmm, "export off");
  fail_unless_equals_string (reply, "OK");
  g_mutex_lock (&r->lock);
  while (!r->closed)
    fail_unless (g_cond_wait_until (&r->cond, &r->lock,
            g_get_monotonic_time () + LINE_TIMEOUT));
  g_mutex_unlock (&r->lock);
  fail_unless (r->closed_error->domain == G_IO_ERROR);
  fail_if (hxex_watch_set_enabled (w, 1, FALSE, 0, 0, 0, SECOND, NULL));
  hxex_watch_free (w);
  rec_free (r);
  standin_runner_stop_checked (vmm);
}

GST_END_TEST;

GST_START_TEST (test_watch_flip)
{
  const gchar *extra[] = { "--width", "80", "--height", "40", "--scanouts",
    "2", "--scanout", "1:64x48@0", NULL
  };
  gint64 before_ns = g_get_monotonic_time () * 1000;
  g_autofree gchar *reply = NULL;
  WatchRec *r = rec_new ();
  HxexWatch *w;
  WatchEvent st, fl;
  guint32 frames, id, id0, cursor = 2, i;
  StandinRunner *vmm = standin_runner_start (extra);

  if (!vmm) {
    rec_free (r);
    return;
  }
  w = watch_new (vmm, r);
  id0 = g_array_index (r->events, WatchEvent, 1).state.resource_id;

  /* a flip shows the other buffer: SCANOUT names it, FLUSH damages it */
  reply = standin_runner_ask (vmm, "flip 1");
  fail_unless (sscanf (reply, "FLIPPED 1 frames=%u resource=%u", &frames,
          &id) == 2, "%s", reply);
  fail_unless_equals_int (frames, 2);
  fail_unless (id != id0);
  st = rec_wait (r, &cursor, FALSE, 1, id);
  fail_unless (st.state.enabled);
  fail_unless_equals_int (st.state.width, 64);
  fail_unless_equals_int (st.state.fourcc, FOURCC_AR24);
  fl = rec_wait (r, &cursor, TRUE, 1, id);
  fail_unless (fl.flush.x == 0 && fl.flush.y == 0);
  fail_unless (fl.flush.width == 64 && fl.flush.height == 48);
  fail_unless (fl.flush.time_ns >= (guint64) before_ns);
  fail_unless (fl.flush.time_ns <= (guint64) g_get_monotonic_time () * 1000);
  /* what it shows: flip 1 of scanout 1 = test frame 1 + 64 */
  fail_unless (resolve_matches (vmm, id, 1 + 64, 64, 48));

  /* the other scanout differs by its index; flips count per scanout */
  g_free (reply);
  reply = standin_runner_ask (vmm, "flip 0 3");
  fail_unless (sscanf (reply, "FLIPPED 0 frames=%u resource=%u", &frames,
          &id) == 2, "%s", reply);
  fail_unless_equals_int (frames, 4);
  rec_wait (r, &cursor, TRUE, 0, id);
  fail_unless (resolve_matches (vmm, id, 3, 80, 40));
  fail_unless_equals_int (standin_runner_ask_stat (vmm, "flips0"), 4);
  fail_unless_equals_int (standin_runner_ask_stat (vmm, "flips1"), 2);

  /* a resize: new resources, shown and flushed */
  g_free (reply);
  reply = standin_runner_ask (vmm, "resize 1 32 16");
  fail_unless (sscanf (reply, "SCANOUT 1 enabled=1 resource=%u width=32 "
          "height=16", &id) == 1, "%s", reply);
  st = rec_wait (r, &cursor, FALSE, 1, id);
  fail_unless (st.state.width == 32 && st.state.height == 16);
  fl = rec_wait (r, &cursor, TRUE, 1, id);
  fail_unless (fl.flush.width == 32 && fl.flush.height == 16);
  fail_unless (resolve_matches (vmm, id, 2 + 64, 32, 16));

  /* flipping on its own at a rate, then static again */
  g_free (reply);
  reply = standin_runner_ask (vmm, "rate 1 200");
  fail_unless_equals_string (reply, "RATE 1 hz=200");
  for (i = 0; i < 5; i++)
    rec_wait (r, &cursor, TRUE, 1, G_MAXUINT32);
  g_free (reply);
  reply = standin_runner_ask (vmm, "rate 1 0");
  fail_unless_equals_string (reply, "RATE 1 hz=0");
  fail_unless (standin_runner_ask_stat (vmm, "flips1") >= 3 + 5);
  fail_unless (standin_runner_ask_stat (vmm, "flushes_sent") >= 4 + 1 + 5);

  hxex_watch_free (w);
  rec_free (r);
  standin_runner_stop_checked (vmm);
}

GST_END_TEST;

GST_START_TEST (test_watch_hotplug)
{
  const gchar *extra[] = { "--scanouts", "3", NULL };
  g_autoptr (GError) err = NULL;
  g_autofree gchar *line = NULL;
  WatchRec *r = rec_new ();
  HxexWatch *w;
  WatchEvent st, fl;
  guint cursor = 3;
  StandinRunner *vmm = standin_runner_start (extra);
  struct
  {
    guint32 index, enable, width, height;
  } refused[] = {
    {0, 1, 640, 480}, {0, 0, 0, 0}, {3, 1, 640, 480}, {99, 0, 0, 0},
    {G_MAXUINT32, 1, 64, 64}, {2, 1, 0, 480}, {2, 1, 100000, 64},
    {2, 1, 64, G_MAXUINT32},
  };
  guint i;

  if (!vmm) {
    rec_free (r);
    return;
  }
  w = watch_new (vmm, r);
  fail_if (g_array_index (r->events, WatchEvent, 2).state.enabled);

  /* connect scanout 2: shown, one flip, the VMM says so */
  fail_unless (hxex_watch_set_enabled (w, 2, TRUE, 320, 200, 60,
          10 * SECOND, &err), "%s", err ? err->message : "");
  line = vmm_wait_line (vmm, "HOTPLUG ");
  fail_unless_equals_string (line, "HOTPLUG 2 enabled=1 320x200");
  st = rec_wait (r, &cursor, FALSE, 2, G_MAXUINT32);
  fail_unless (st.state.enabled && st.state.resource_id != 0);
  fail_unless (st.state.width == 320 && st.state.height == 200);
  fl = rec_wait (r, &cursor, TRUE, 2, st.state.resource_id);
  fail_unless (fl.flush.width == 320);
  fail_unless (resolve_matches (vmm, st.state.resource_id, 128, 320, 200));

  /* and disconnect it */
  fail_unless (hxex_watch_set_enabled (w, 2, FALSE, 0, 0, 0,
          10 * SECOND, &err), "%s", err ? err->message : "");
  g_free (line);
  line = vmm_wait_line (vmm, "HOTPLUG ");
  fail_unless_equals_string (line, "HOTPLUG 2 enabled=0 0x0");
  st = rec_wait (r, &cursor, FALSE, 2, 0);
  fail_if (st.state.enabled);

  /* scanout 0, out of range, absurd sizes: refused, the watch goes on */
  for (i = 0; i < G_N_ELEMENTS (refused); i++) {
    fail_if (hxex_watch_set_enabled (w, refused[i].index,
            refused[i].enable, refused[i].width, refused[i].height, 60,
            10 * SECOND, &err), "case %u", i);
    fail_unless (g_error_matches (err, HXEX_ERROR, HXEX_ERR_REFUSED),
        "case %u: %s", i, err->message);
    g_clear_error (&err);
  }
  fail_unless (hxex_watch_set_enabled (w, 1, TRUE, 64, 32, 0,
          10 * SECOND, &err), "%s", err ? err->message : "");
  g_free (line);
  line = vmm_wait_line (vmm, "HOTPLUG ");
  fail_unless_equals_string (line, "HOTPLUG 1 enabled=1 64x32");
  fail_unless_equals_int (standin_runner_ask_stat (vmm, "scanout_refusals"),
      G_N_ELEMENTS (refused));
  fail_unless_equals_int (standin_runner_ask_stat (vmm, "scanout_controls"),
      G_N_ELEMENTS (refused) + 3);
  g_mutex_lock (&r->lock);
  fail_if (r->closed);
  g_mutex_unlock (&r->lock);

  hxex_watch_free (w);
  rec_free (r);
  standin_runner_stop_checked (vmm);
}

GST_END_TEST;

/* Watchers that misbehave are answered or closed; the VMM serves on. */
GST_START_TEST (test_watch_hostile)
{
  const gchar *extra[] = { "--width", "64", "--height", "48", "--scanouts",
    "2", "--scanout", "1:64x48@0", NULL
  };
  guint8 buf[HXEX_HEADER_SIZE + HXEX_MAX_PAYLOAD_SIZE];
  HxexScanoutControlAck ack;
  HxexHeader h;
  GSocket *sock;
  StandinRunner *vmm = standin_runner_start (extra);

  if (!vmm)
    return;

  /* a bad index is refused, the watch stays */
  sock = raw_watch (vmm, 2);
  raw_control (sock, 7, 77, 1, 64, 64);
  fail_unless (raw_recv (sock, &h, buf));
  fail_unless_equals_int (h.type, HXEX_MSG_SCANOUT_CONTROL_ACK);
  fail_unless_equals_int (h.request_id, 7);
  fail_unless (hxex_scanout_control_ack_parse (buf + 16, 8, &ack, NULL));
  fail_unless (ack.index == 77 && ack.status == HXEX_ERR_REFUSED);
  /* request id 0 is a protocol error */
  raw_control (sock, 0, 1, 0, 0, 0);
  raw_expect_error (sock, 0, HXEX_ERR_PROTOCOL, TRUE);
  g_object_unref (sock);

  /* enable must be 0 or 1 */
  sock = raw_watch (vmm, 2);
  raw_control (sock, 3, 1, 2, 64, 64);
  raw_expect_error (sock, 3, HXEX_ERR_PROTOCOL, TRUE);
  g_object_unref (sock);

  /* RESOLVE on a watch */
  sock = raw_watch (vmm, 2);
  hxex_resolve_write (&(HxexResolve) {
      standin_runner_get_resource (vmm), 0}
      , buf);
  raw_send (sock, HXEX_MSG_RESOLVE, 9, buf, HXEX_RESOLVE_SIZE);
  raw_expect_error (sock, 9, HXEX_ERR_PROTOCOL, TRUE);
  g_object_unref (sock);

  /* a second WATCH */
  sock = raw_watch (vmm, 2);
  hxex_watch_write (buf);
  raw_send (sock, HXEX_MSG_WATCH, 4, buf, HXEX_WATCH_SIZE);
  raw_expect_error (sock, 4, HXEX_ERR_PROTOCOL, TRUE);
  g_object_unref (sock);

  /* SCANOUT_CONTROL without a WATCH, and a VMM-only message */
  sock = raw_connect (vmm);
  fail_unless_equals_int (raw_hello (sock, 1, 2, 0x1), 2);
  raw_control (sock, 5, 1, 1, 64, 64);
  raw_expect_error (sock, 5, HXEX_ERR_PROTOCOL, TRUE);
  g_object_unref (sock);
  sock = raw_watch (vmm, 2);
  raw_send (sock, HXEX_MSG_FLUSH, 0, buf, HXEX_FLUSH_SIZE);
  raw_expect_error (sock, 0, HXEX_ERR_PROTOCOL, TRUE);
  g_object_unref (sock);

  fail_unless_equals_int (standin_runner_ask_stat (vmm, "clients"), 0);
  fail_unless_equals_int (standin_runner_ask_stat (vmm, "watchers"), 0);
  fail_unless (resolve_matches (vmm, standin_runner_get_resource (vmm), 0, 64,
          48));
  standin_runner_stop_checked (vmm);
}

GST_END_TEST;

/* A watcher that never reads while the screen flips is disconnected; the
 * VMM keeps serving the others. */
GST_START_TEST (test_watch_never_reads)
{
  const gchar *extra[] = { "--width", "64", "--height", "48", "--scanouts",
    "2", "--scanout", "1:16x16@0", NULL
  };
  g_autofree gchar *reply = NULL;
  guint8 buf[HXEX_HEADER_SIZE + HXEX_MAX_PAYLOAD_SIZE];
  WatchRec *r = rec_new ();
  HxexWatch *w;
  GSocket *mute;
  HxexHeader h;
  guint rounds, flips = 0, frames, id, cursor;
  StandinRunner *vmm = standin_runner_start (extra);

  if (!vmm) {
    rec_free (r);
    return;
  }
  mute = raw_watch (vmm, 2);
  w = watch_new (vmm, r);
  fail_unless_equals_int (standin_runner_ask_stat (vmm, "watchers"), 2);

  /* small batches, each read by the good watch before the next, so only
   * the mute one falls behind */
  for (rounds = 0; rounds < 500; rounds++) {
    g_clear_pointer (&reply, g_free);
    reply = standin_runner_ask (vmm, "flip 1 20");
    fail_unless (g_str_has_prefix (reply, "FLIPPED 1 "), "%s", reply);
    flips += 20;
    rec_wait_flushes (r, flips);
    if (standin_runner_ask_stat (vmm, "watchers_dropped") > 0)
      break;
  }
  GST_INFO ("the mute watcher was dropped after %u flips", flips);
  fail_unless_equals_int (standin_runner_ask_stat (vmm, "watchers_dropped"), 1);
  fail_unless_equals_int (standin_runner_ask_stat (vmm, "watchers"), 1);

  /* the mute one finds the end of its stream after what was queued */
  while (raw_recv (mute, &h, buf))
    fail_unless (h.type == HXEX_MSG_SCANOUT || h.type == HXEX_MSG_FLUSH);
  g_object_unref (mute);

  /* the good one still gets every flip, and pixels still come */
  g_clear_pointer (&reply, g_free);
  reply = standin_runner_ask (vmm, "flip 1");
  fail_unless (sscanf (reply, "FLIPPED 1 frames=%u resource=%u", &frames,
          &id) == 2, "%s", reply);
  cursor = 0;
  rec_wait_flushes (r, flips + 1);
  g_mutex_lock (&r->lock);
  cursor = r->events->len - 1;
  g_mutex_unlock (&r->lock);
  rec_wait (r, &cursor, TRUE, 1, id);
  fail_unless (resolve_matches (vmm, id, frames - 1 + 64, 16, 16));
  g_mutex_lock (&r->lock);
  fail_if (r->closed);
  g_mutex_unlock (&r->lock);

  hxex_watch_free (w);
  rec_free (r);
  standin_runner_stop_checked (vmm);
}

GST_END_TEST;

/* A v1 client sees nothing new; a v2 connection still resolves. */
GST_START_TEST (test_watch_versions)
{
  const gchar *extra[] = { "--width", "64", "--height", "48", "--scanouts",
    "2", NULL
  };
  guint8 buf[HXEX_HEADER_SIZE + HXEX_MAX_PAYLOAD_SIZE];
  HxexSurface s;
  HxexHeader h;
  GSocket *sock;
  StandinRunner *vmm = standin_runner_start (extra);

  if (!vmm)
    return;
  /* max_version 1: version 1, and WATCH is not a v1 message */
  sock = raw_connect (vmm);
  fail_unless_equals_int (raw_hello (sock, 1, 1, 0), 1);
  hxex_watch_write (buf);
  raw_send (sock, HXEX_MSG_WATCH, 2, buf, HXEX_WATCH_SIZE);
  raw_expect_error (sock, 2, HXEX_ERR_PROTOCOL, TRUE);
  g_object_unref (sock);
  /* our v1 client */
  fail_unless (resolve_matches (vmm, standin_runner_get_resource (vmm), 0, 64,
          48));

  /* 1..2: version 2, RESOLVE as in v1 */
  sock = raw_connect (vmm);
  fail_unless_equals_int (raw_hello (sock, 1, 2,
          HXEX_KIND_BIT (HXEX_KIND_READBACK_SLOT)), 2);
  hxex_resolve_write (&(HxexResolve) {
      standin_runner_get_resource (vmm), 0}
      , buf);
  raw_send (sock, HXEX_MSG_RESOLVE, 11, buf, HXEX_RESOLVE_SIZE);
  fail_unless (raw_recv (sock, &h, buf));
  fail_unless_equals_int (h.type, HXEX_MSG_SURFACE);
  fail_unless_equals_int (h.request_id, 11);
  fail_unless (hxex_surface_parse (buf + 16, h.payload_size, &s, NULL));
  fail_unless (s.width == 64 && s.height == 48);
  g_object_unref (sock);

  /* 1..3: version 3 (the cursor) */
  sock = raw_connect (vmm);
  fail_unless_equals_int (raw_hello (sock, 1, 3, 0), 3);
  g_object_unref (sock);

  /* 1..4: version 4 (snapshots) */
  sock = raw_connect (vmm);
  fail_unless_equals_int (raw_hello (sock, 1, 4, 0), 4);
  g_object_unref (sock);

  /* no version in common */
  sock = raw_connect (vmm);
  fail_unless_equals_int (raw_hello (sock, 5, 6, 0), 0);
  g_object_unref (sock);
  standin_runner_stop_checked (vmm);
}

GST_END_TEST;

/* A VMM without scanouts refuses WATCH clearly; the connection stays an
 * ordinary one. */
GST_START_TEST (test_watch_no_scanouts)
{
  g_autoptr (GError) err = NULL;
  guint8 buf[HXEX_HEADER_SIZE + HXEX_MAX_PAYLOAD_SIZE];
  HxexHeader h;
  GSocket *sock;
  StandinRunner *vmm = standin_runner_start (NULL);

  if (!vmm)
    return;
  fail_if (hxex_watch_new (standin_runner_get_socket_path (vmm),
          &rec_callbacks, NULL, 10 * SECOND, &err));
  fail_unless (g_error_matches (err, G_IO_ERROR, G_IO_ERROR_NOT_SUPPORTED),
      "%s", err->message);
  fail_unless (strstr (err->message, "no scanouts") != NULL, "%s",
      err->message);

  sock = raw_connect (vmm);
  fail_unless_equals_int (raw_hello (sock, 2, 2, 0), 2);
  hxex_watch_write (buf);
  raw_send (sock, HXEX_MSG_WATCH, 6, buf, HXEX_WATCH_SIZE);
  raw_expect_error (sock, 6, HXEX_ERR_NO_SCANOUTS, FALSE);
  hxex_resolve_write (&(HxexResolve) {
      standin_runner_get_resource (vmm), 0}
      , buf);
  raw_send (sock, HXEX_MSG_RESOLVE, 12, buf, HXEX_RESOLVE_SIZE);
  fail_unless (raw_recv (sock, &h, buf));
  fail_unless_equals_int (h.type, HXEX_MSG_SURFACE);
  g_object_unref (sock);
  fail_unless_equals_int (standin_runner_ask_stat (vmm, "watchers"), 0);
  standin_runner_stop_checked (vmm);
}

GST_END_TEST;

/* The cursor plane (export protocol version 3) */

GST_START_TEST (test_codec_cursor)
{
  guint8 buf[HXEX_HEADER_SIZE + HXEX_MAX_PAYLOAD_SIZE];
  const guint8 shape_bytes[] = {
    0x01, 0, 0, 0, 0x40, 0, 0, 0, 0x20, 0, 0, 0, 0x03, 0, 0, 0,
    0x1f, 0, 0, 0, 'A', 'R', '2', '4', 0x00, 0x20, 0, 0, 0, 0, 0, 0
  };
  const guint8 move_bytes[] = {
    0x01, 0, 0, 0, 0x01, 0, 0, 0, 0xfe, 0xff, 0xff, 0xff, 0x10, 0x02, 0, 0,
    0x08, 0x07, 0x06, 0x05, 0x04, 0x03, 0x02, 0x01
  };
  HxexCursorShape sh = { 1, 64, 32, 3, 31, HXEX_CURSOR_FOURCC, 64 * 32 * 4 };
  HxexCursorShape bad[] = {
    {16, 64, 32, 0, 0, HXEX_CURSOR_FOURCC, 64 * 32 * 4},
    {0, 0, 32, 0, 0, HXEX_CURSOR_FOURCC, 0},
    {0, 257, 4, 0, 0, HXEX_CURSOR_FOURCC, 257 * 4 * 4},
    {0, 4096, 4096, 0, 0, HXEX_CURSOR_FOURCC, 4096ull * 4096 * 4},
    {0, 64, 32, 64, 0, HXEX_CURSOR_FOURCC, 64 * 32 * 4},
    {0, 64, 32, 0, 32, HXEX_CURSOR_FOURCC, 64 * 32 * 4},
    {0, 64, 32, 0, 0, 0x34325258, 64 * 32 * 4},
    {0, 64, 32, 0, 0, HXEX_CURSOR_FOURCC, 64 * 32 * 4 + 1},
  };
  HxexCursorMove mv = { 1, HXEX_CURSOR_VISIBLE, -2, 528,
    0x0102030405060708ull
  };
  HxexCursorShape sh2;
  HxexCursorMove mv2;
  HxexHeader h = { HXEX_MSG_CURSOR_SHAPE, 1, HXEX_CURSOR_SHAPE_SIZE, 0 };
  guint i;

  fail_unless_equals_int (hxex_cursor_shape_write (&sh, buf), 32);
  fail_unless (memcmp (buf, shape_bytes, 32) == 0);
  fail_unless (hxex_cursor_shape_parse (buf, 32, &sh2, NULL));
  fail_unless (memcmp (&sh, &sh2, sizeof (sh)) == 0);
  fail_if (hxex_cursor_shape_parse (buf, 31, &sh2, NULL));
  for (i = 0; i < G_N_ELEMENTS (bad); i++) {
    g_autoptr (GError) err = NULL;

    hxex_cursor_shape_write (&bad[i], buf);
    fail_if (hxex_cursor_shape_parse (buf, 32, &sh2, &err), "bad shape %u", i);
    fail_unless (g_error_matches (err, HXEX_ERROR, HXEX_ERR_PROTOCOL));
  }

  fail_unless_equals_int (hxex_cursor_move_write (&mv, buf), 24);
  fail_unless (memcmp (buf, move_bytes, 24) == 0);
  fail_unless (hxex_cursor_move_parse (buf, 24, &mv2, NULL));
  fail_unless (memcmp (&mv, &mv2, sizeof (mv)) == 0);
  /* reserved flag bits are ignored; an index past any VMM's is not */
  buf[5] = 0x80;
  fail_unless (hxex_cursor_move_parse (buf, 24, &mv2, NULL));
  fail_unless_equals_int (mv2.flags, HXEX_CURSOR_VISIBLE);
  buf[0] = 16;
  fail_if (hxex_cursor_move_parse (buf, 24, &mv2, NULL));

  /* the header: a shape may carry its one descriptor, a move none */
  hxex_header_write (buf, &h);
  fail_unless (hxex_header_parse (buf, &h, NULL));
  h.n_fds = 2;
  hxex_header_write (buf, &h);
  fail_if (hxex_header_parse (buf, &h, NULL));
  h = (HxexHeader) {
  HXEX_MSG_CURSOR_MOVE, 1, HXEX_CURSOR_MOVE_SIZE, 0};
  hxex_header_write (buf, &h);
  fail_if (hxex_header_parse (buf, &h, NULL));
  fail_unless_equals_string (hxex_msg_type_name (HXEX_MSG_CURSOR_SHAPE),
      "CURSOR_SHAPE");
}

GST_END_TEST;

/* Waits until @r has @n_shapes shapes and @n_moves moves. */
static void
rec_wait_cursor (WatchRec * r, guint n_shapes, guint n_moves)
{
  gint64 deadline = g_get_monotonic_time () + LINE_TIMEOUT;

  g_mutex_lock (&r->lock);
  while ((r->shapes->len < n_shapes || r->moves->len < n_moves) && !r->closed)
    if (!g_cond_wait_until (&r->cond, &r->lock, deadline))
      break;
  fail_unless (r->shapes->len >= n_shapes && r->moves->len >= n_moves,
      "%u shapes of %u, %u moves of %u, closed %d", r->shapes->len, n_shapes,
      r->moves->len, n_moves, r->closed);
  g_mutex_unlock (&r->lock);
}

/* Shape @i of @r is the stand-in's image @serial, @w x @h. */
static void
check_shape (WatchRec * r, guint i, guint32 index, guint32 w, guint32 h,
    guint32 hot_x, guint32 hot_y, guint32 serial)
{
  const HxfrCursorShape *sh = g_ptr_array_index (r->shapes, i);
  gsize size;
  const guint8 *px = g_bytes_get_data (sh->pixels, &size);
  guint32 x, y;

  fail_unless_equals_int (sh->desc.index, index);
  fail_unless_equals_int (sh->desc.width, w);
  fail_unless_equals_int (sh->desc.height, h);
  fail_unless_equals_int (sh->desc.hot_x, hot_x);
  fail_unless_equals_int (sh->desc.hot_y, hot_y);
  fail_unless_equals_int (size, (gsize) w * h * 4);
  for (y = 0; y < h; y++)
    for (x = 0; x < w; x++) {
      guint32 want = helix_test_cursor_pixel (x, y, w, serial);
      const guint8 *p = px + ((gsize) y * w + x) * 4;

      /* B G R A in memory */
      fail_unless (p[0] == (want & 255) && p[1] == ((want >> 8) & 255)
          && p[2] == ((want >> 16) & 255) && p[3] == want >> 24,
          "cursor pixel %u,%u of image %u", x, y, serial);
    }
}

static HxexCursorMove
rec_move (WatchRec * r, guint i)
{
  HxexCursorMove m;

  g_mutex_lock (&r->lock);
  m = g_array_index (r->moves, HxexCursorMove, i);
  g_mutex_unlock (&r->lock);
  return m;
}

GST_START_TEST (test_watch_cursor)
{
  const gchar *extra[] = { "--width", "96", "--height", "64", "--scanouts",
    "2", "--scanout", "1:64x48@0", NULL
  };
  g_autofree gchar *reply = NULL;
  WatchRec *r = rec_new (), *late = rec_new ();
  HxexWatch *w, *w2;
  HxexCursorMove m;
  gint64 before_ns = g_get_monotonic_time () * 1000;
  StandinRunner *vmm = standin_runner_start (extra);

  if (!vmm) {
    rec_free (r);
    rec_free (late);
    return;
  }
  w = watch_new (vmm, r);
  fail_unless (hxex_watch_has_cursor (w));
  /* nothing known yet: nothing after the states */
  standin_runner_command_expect (vmm, "flip 1", "FLIPPED 1");
  rec_wait_flushes (r, 1);
  fail_unless_equals_int (r->shapes->len, 0);
  fail_unless_equals_int (r->moves->len, 0);

  standin_runner_command_expect (vmm, "cursor 1 64 64 3 5",
      "CURSOR 1 serial=1 64x64");
  rec_wait_cursor (r, 1, 0);
  check_shape (r, 0, 1, 64, 64, 3, 5, 1);
  standin_runner_command_expect (vmm, "move 1 10 -20", "MOVED 1 x=10 y=-20");
  rec_wait_cursor (r, 1, 1);
  m = rec_move (r, 0);
  fail_unless (m.index == 1 && (m.flags & HXEX_CURSOR_VISIBLE) && m.x == 10
      && m.y == -20);
  fail_unless (m.time_ns >= (guint64) before_ns);
  /* the same position again is not news; hiding is */
  standin_runner_command_expect (vmm, "move 1 10 -20", "MOVED 1");
  standin_runner_command_expect (vmm, "move 1 10 -20 hidden", "MOVED 1");
  rec_wait_cursor (r, 1, 2);
  m = rec_move (r, 1);
  fail_unless (m.index == 1 && !(m.flags & HXEX_CURSOR_VISIBLE) && m.x == 10
      && m.y == -20);
  fail_unless_equals_int (standin_runner_stat (vmm, "cursor_moves"), 2);

  /* the largest image the protocol allows; one larger is refused by the
   * VMM module, and the last good one stays */
  standin_runner_command_expect (vmm, "cursor 1 256 256 255 255",
      "CURSOR 1 serial=2 256x256");
  rec_wait_cursor (r, 2, 2);
  check_shape (r, 1, 1, 256, 256, 255, 255, 2);
  standin_runner_command_expect (vmm, "cursor 1 257 16 0 0", "FAILED");
  standin_runner_command_expect (vmm, "cursor 1 16 16 16 0", "FAILED");
  standin_runner_command_expect (vmm, "cursor 0 2 3 1 2",
      "CURSOR 0 serial=1 2x3");
  standin_runner_command_expect (vmm, "move 1 33 44", "MOVED 1");
  rec_wait_cursor (r, 3, 3);
  check_shape (r, 2, 0, 2, 3, 1, 2, 1);
  fail_unless_equals_int (standin_runner_stat (vmm, "cursor_shapes"), 3);

  /* a late watcher gets every scanout's cursor at once, as it is now */
  w2 = watch_new (vmm, late);
  rec_wait_cursor (late, 2, 1);
  check_shape (late, 0, 0, 2, 3, 1, 2, 1);
  check_shape (late, 1, 1, 256, 256, 255, 255, 2);
  m = rec_move (late, 0);
  fail_unless (m.index == 1 && (m.flags & HXEX_CURSOR_VISIBLE) && m.x == 33
      && m.y == 44);
  hxex_watch_free (w2);
  hxex_watch_free (w);
  fail_if (r->closed);

  /* a new export module (the stand-in re-reports what it shows) */
  standin_runner_command_expect (vmm, "export off", "OK");
  standin_runner_command_expect (vmm, "export on", "OK");
  rec_free (late);
  late = rec_new ();
  w2 = watch_new (vmm, late);
  rec_wait_cursor (late, 2, 1);
  check_shape (late, 1, 1, 256, 256, 255, 255, 2);
  hxex_watch_free (w2);
  rec_free (r);
  rec_free (late);
  standin_runner_stop_checked (vmm);
}

GST_END_TEST;

/* A version-2 watcher never sees a cursor message: the moves and shapes
 * that happen around a flip reach it as nothing. */
GST_START_TEST (test_watch_cursor_v2)
{
  const gchar *extra[] = { "--width", "32", "--height", "16", "--scanouts",
    "1", NULL
  };
  guint8 buf[HXEX_HEADER_SIZE + HXEX_MAX_PAYLOAD_SIZE];
  HxexHeader h;
  GSocket *sock;
  StandinRunner *vmm = standin_runner_start (extra);

  if (!vmm)
    return;
  standin_runner_command_expect (vmm, "cursor 0 8 8 0 0", "CURSOR 0");
  standin_runner_command_expect (vmm, "move 0 1 2", "MOVED 0");
  sock = raw_watch (vmm, 1);
  standin_runner_command_expect (vmm, "move 0 3 4", "MOVED 0");
  standin_runner_command_expect (vmm, "cursor 0 4 4 0 0", "CURSOR 0");
  standin_runner_command_expect (vmm, "flip 0", "FLIPPED 0");
  do {
    fail_unless (raw_recv (sock, &h, buf));
    fail_if (h.type == HXEX_MSG_CURSOR_SHAPE || h.type == HXEX_MSG_CURSOR_MOVE);
  } while (h.type != HXEX_MSG_FLUSH);
  g_object_unref (sock);
  standin_runner_stop_checked (vmm);
}

GST_END_TEST;

/* A hostile VMM: a fake export that answers HELLO and WATCH properly,
 * then sends one cursor message of the test's choosing. */

typedef struct
{
  guint16 version;
  HxexCursorShape shape;        /* width 0: send @move instead */
  HxexCursorMove move;
  gint fd;                      /* with the shape; -1: none */
  GSocket *listener;
} FakeVmm;

static gpointer
fake_vmm_thread (gpointer data)
{
  FakeVmm *f = data;
  guint8 payload[HXEX_MAX_PAYLOAD_SIZE];
  HxexStream st;
  HxexHeader h;
  HxexHelloAck ack = { f->version, 0, 0, 0, 64, 64 };
  HxexScanout so = { 0, HXEX_SCANOUT_ENABLED, 0, 0, 0, 0, 1 };
  gint64 deadline = g_get_monotonic_time () + LINE_TIMEOUT;
  GSocket *sock = g_socket_accept (f->listener, NULL, NULL);

  fail_unless (sock != NULL);
  hxex_stream_init (&st, sock, "the watch closed");
  fail_unless (hxex_stream_read (&st, &h, deadline, NULL));
  fail_unless_equals_int (h.type, HXEX_MSG_HELLO);
  hxex_hello_ack_write (&ack, payload);
  fail_unless (hxex_stream_send (&st, HXEX_MSG_HELLO_ACK, 0, payload,
          HXEX_HELLO_ACK_SIZE, NULL, 0, deadline, NULL, NULL));
  fail_unless (hxex_stream_read (&st, &h, deadline, NULL));
  fail_unless_equals_int (h.type, HXEX_MSG_WATCH);
  hxex_scanout_write (&so, payload);
  fail_unless (hxex_stream_send (&st, HXEX_MSG_SCANOUT, 0, payload,
          HXEX_SCANOUT_SIZE, NULL, 0, deadline, NULL, NULL));
  if (f->shape.width || f->fd >= 0) {
    hxex_cursor_shape_write (&f->shape, payload);
    fail_unless (hxex_stream_send (&st, HXEX_MSG_CURSOR_SHAPE, 0, payload,
            HXEX_CURSOR_SHAPE_SIZE, &f->fd, f->fd >= 0 ? 1 : 0, deadline,
            NULL, NULL));
  } else {
    hxex_cursor_move_write (&f->move, payload);
    fail_unless (hxex_stream_send (&st, HXEX_MSG_CURSOR_MOVE, 0, payload,
            HXEX_CURSOR_MOVE_SIZE, NULL, 0, deadline, NULL, NULL));
  }
  /* the watch hangs up on us; until then nothing more */
  while (hxex_stream_read (&st, &h, deadline, NULL));
  hxex_stream_clear (&st);
  g_object_unref (sock);
  return NULL;
}

/* A memfd of @size bytes of 0x7f, sealed against shrinking and writing
 * when @seal. */
static gint
cursor_memfd (gsize size, gboolean seal)
{
  gint fd = memfd_create ("test-cursor", MFD_CLOEXEC | MFD_ALLOW_SEALING);
  g_autofree guint8 *data = g_malloc (size ? size : 1);

  fail_unless (fd >= 0);
  memset (data, 0x7f, size);
  fail_unless (write (fd, data, size) == (gssize) size);
  if (seal)
    fail_unless (fcntl (fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW |
            F_SEAL_WRITE) == 0);
  return fd;
}

/* Runs the watch against @f; TRUE if it took the message (its shape or
 * move then in @r), FALSE if it closed with a protocol error. */
static gboolean
watch_fake_vmm (FakeVmm * f, WatchRec * r)
{
  g_autofree gchar *dir = g_dir_make_tmp ("hxex-fake-XXXXXX", NULL);
  g_autofree gchar *path = g_build_filename (dir, "export.sock", NULL);
  g_autoptr (GSocketAddress) addr = g_unix_socket_address_new (path);
  g_autoptr (GError) err = NULL;
  gboolean took;
  GThread *t;
  HxexWatch *w;

  f->listener = g_socket_new (G_SOCKET_FAMILY_UNIX, G_SOCKET_TYPE_STREAM, 0,
      NULL);
  fail_unless (g_socket_bind (f->listener, addr, TRUE, NULL));
  fail_unless (g_socket_listen (f->listener, NULL));
  t = g_thread_new ("fake-vmm", fake_vmm_thread, f);
  w = hxex_watch_new (path, &rec_callbacks, r, 10 * SECOND, &err);
  fail_unless (w != NULL, "%s", err ? err->message : "");
  fail_unless_equals_int (hxex_watch_has_cursor (w), f->version >= 3);
  g_mutex_lock (&r->lock);
  while (!r->closed && r->shapes->len == 0 && r->moves->len == 0)
    fail_unless (g_cond_wait_until (&r->cond, &r->lock,
            g_get_monotonic_time () + LINE_TIMEOUT));
  took = !r->closed;
  if (r->closed)
    fail_unless (g_error_matches (r->closed_error, HXEX_ERROR,
            HXEX_ERR_PROTOCOL), "%s", r->closed_error->message);
  g_mutex_unlock (&r->lock);
  hxex_watch_free (w);
  g_thread_join (t);
  g_object_unref (f->listener);
  if (f->fd >= 0)
    close (f->fd);
  g_unlink (path);
  g_rmdir (dir);
  return took;
}

GST_START_TEST (test_watch_cursor_hostile)
{
  HxexCursorShape good = { 0, 4, 2, 1, 1, HXEX_CURSOR_FOURCC, 4 * 2 * 4 };
  HxexCursorShape huge = { 0, 4096, 4096, 0, 0, HXEX_CURSOR_FOURCC,
    4096ull * 4096 * 4
  };
  HxexCursorShape other = { 3, 4, 2, 1, 1, HXEX_CURSOR_FOURCC, 4 * 2 * 4 };
  struct
  {
    const gchar *what;
    guint16 version;
    HxexCursorShape shape;
    gint fd_size;               /* -1: no descriptor */
    gboolean seal;
    HxexCursorMove move;
    gboolean takes;
  } cases[] = {
    {"a good shape", 3, good, 32, TRUE, {0}, TRUE},
    {"a good move", 3, {0}, -1, FALSE, {0, 1, 5, 6, 0}, TRUE},
    {"4096x4096", 3, huge, 4096 * 4096 * 4, TRUE, {0}, FALSE},
    {"no descriptor", 3, good, -1, FALSE, {0}, FALSE},
    {"an unsealed memfd", 3, good, 32, FALSE, {0}, FALSE},
    {"a memfd too small", 3, good, 31, TRUE, {0}, FALSE},
    {"a scanout it does not have", 3, other, 32, TRUE, {0}, FALSE},
    {"a move of a scanout it does not have", 3, {0}, -1, FALSE, {1, 1, 5, 6,
            0}, FALSE},
    {"a shape on a version-2 watch", 2, good, 32, TRUE, {0}, FALSE},
    {"a move on a version-2 watch", 2, {0}, -1, FALSE, {0, 1, 5, 6, 0},
        FALSE},
  };
  guint i;

  for (i = 0; i < G_N_ELEMENTS (cases); i++) {
    FakeVmm f = { cases[i].version, cases[i].shape, cases[i].move, -1 };
    WatchRec *r = rec_new ();

    GST_INFO ("hostile VMM: %s", cases[i].what);
    if (cases[i].fd_size >= 0)
      f.fd = cursor_memfd (cases[i].fd_size, cases[i].seal);
    fail_unless_equals_int (watch_fake_vmm (&f, r), cases[i].takes);
    if (!cases[i].takes) {
      fail_unless_equals_int (r->shapes->len, 0);
      fail_unless_equals_int (r->moves->len, 0);
    } else if (cases[i].shape.width) {
      const HxfrCursorShape *sh = g_ptr_array_index (r->shapes, 0);
      const guint8 *px = g_bytes_get_data (sh->pixels, NULL);

      fail_unless (sh->desc.width == 4 && sh->desc.height == 2
          && sh->desc.hot_x == 1);
      fail_unless_equals_int (g_bytes_get_size (sh->pixels), 32);
      fail_unless (px[0] == 0x7f && px[31] == 0x7f);
    } else {
      HxexCursorMove m = rec_move (r, 0);

      fail_unless ((m.flags & HXEX_CURSOR_VISIBLE) && m.x == 5 && m.y == 6);
    }
    rec_free (r);
  }
}

GST_END_TEST;


/* Snapshots (export protocol version 4) */

GST_START_TEST (test_codec_snapshots)
{
  guint8 buf[HXEX_MAX_PAYLOAD_SIZE];
  HxexFlushSnapshot m = { {2, 7, 1, 2, 30, 40, 123456789}, 9, 3, 64, 48,
  256, FOURCC_AR24, 256 * 48
  }, m2, bad;
  guint32 mask;

  fail_unless_equals_int (hxex_flush_snapshot_write (&m, buf), 64);
  /* the FLUSH fields first, then handle, slot, size, stride, fourcc, size */
  fail_unless (buf[0] == 2 && buf[4] == 7 && buf[16] == 30);
  fail_unless (buf[32] == 9 && buf[36] == 3 && buf[40] == 64 && buf[44] == 48);
  fail_unless (buf[48] == 0 && buf[49] == 1 && buf[52] == 'A');
  fail_unless (buf[56] == 0 && buf[57] == 0x30);
  fail_unless (hxex_flush_snapshot_parse (buf, 64, &m2, NULL));
  fail_unless (memcmp (&m, &m2, sizeof (m)) == 0);
  fail_if (hxex_flush_snapshot_parse (buf, 63, &m2, NULL));

  /* what no ring makes right */
  bad = m;
  bad.handle = 0;
  hxex_flush_snapshot_write (&bad, buf);
  fail_if (hxex_flush_snapshot_parse (buf, 64, &m2, NULL), "handle 0");
  bad = m;
  bad.width = 0;
  hxex_flush_snapshot_write (&bad, buf);
  fail_if (hxex_flush_snapshot_parse (buf, 64, &m2, NULL), "width 0");
  bad = m;
  bad.stride = 64 * 4 - 1;
  hxex_flush_snapshot_write (&bad, buf);
  fail_if (hxex_flush_snapshot_parse (buf, 64, &m2, NULL), "short rows");
  bad = m;
  bad.size = 256 * 48 - 1;
  hxex_flush_snapshot_write (&bad, buf);
  fail_if (hxex_flush_snapshot_parse (buf, 64, &m2, NULL), "short size");
  /* 32-bit products would wrap to a small size */
  bad = m;
  bad.width = 0x40000000;
  bad.stride = 0xffffffffu;
  bad.height = 0x10001;
  bad.size = 0xffff;
  hxex_flush_snapshot_write (&bad, buf);
  fail_if (hxex_flush_snapshot_parse (buf, 64, &m2, NULL), "wrapping sizes");
  bad = m;
  bad.fourcc = 0x3231564e;      /* NV12: not a 4-byte RGB */
  hxex_flush_snapshot_write (&bad, buf);
  fail_if (hxex_flush_snapshot_parse (buf, 64, &m2, NULL), "fourcc");
  bad = m;
  bad.flush.index = HXEX_MAX_SCANOUTS;
  hxex_flush_snapshot_write (&bad, buf);
  fail_if (hxex_flush_snapshot_parse (buf, 64, &m2, NULL), "index");

  fail_unless_equals_int (hxex_snapshots_write (0x8002, buf), 8);
  fail_unless (buf[0] == 0x02 && buf[1] == 0x80 && buf[4] == 0);
  fail_unless (hxex_snapshots_parse (buf, 8, &mask, NULL));
  fail_unless_equals_int (mask, 0x8002);
  hxex_snapshots_write (0x10000, buf);
  fail_if (hxex_snapshots_parse (buf, 8, &mask, NULL), "scanout 16");
}

GST_END_TEST;

static HxexClientSurface *
rec_snapshot_at (WatchRec * r, guint i)
{
  HxexClientSurface *s;

  g_mutex_lock (&r->lock);
  fail_unless (i < r->snapshots->len, "snapshot %u of %u", i,
      r->snapshots->len);
  s = g_ptr_array_index (r->snapshots, i);
  g_mutex_unlock (&r->lock);
  return s;
}

static guint
rec_n_snapshots (WatchRec * r)
{
  guint n;

  g_mutex_lock (&r->lock);
  n = r->snapshots->len;
  g_mutex_unlock (&r->lock);
  return n;
}

/* "flip K": its flip count and resource */
static void
flip (StandinRunner * vmm, guint k, guint * frames, guint * id)
{
  g_autofree gchar *cmd = g_strdup_printf ("flip %u", k);
  g_autofree gchar *reply = standin_runner_ask (vmm, cmd);
  g_autofree gchar *want = g_strdup_printf ("FLIPPED %u frames=%%u "
      "resource=%%u", k);

  fail_unless (sscanf (reply, want, frames, id) == 2, "%s", reply);
}

/* The picture of a flush, copied at the flush: what was flushed, not what
 * the guest drew over it right after; only the scanouts asked for; no
 * free slot: a plain FLUSH, and the next one free is used again. */
GST_START_TEST (test_watch_snapshots)
{
  const gchar *extra[] = { "--width", "64", "--height", "48", "--scanouts",
    "2", "--scanout", "1:32x16@0", "--slots", "2", NULL
  };
  g_autoptr (GError) err = NULL;
  g_autofree gchar *reply = NULL;
  WatchRec *r = rec_new ();
  HxexClientSurface *s;
  HxexWatch *w;
  guint frames, id, n;
  StandinRunner *vmm = standin_runner_start (extra);

  if (!vmm) {
    rec_free (r);
    return;
  }
  w = hxex_watch_new (standin_runner_get_socket_path (vmm),
      &rec_snapshot_callbacks, r, 10 * SECOND, &err);
  fail_unless (w != NULL, "%s", err ? err->message : "");
  fail_unless (hxex_watch_has_snapshots (w));
  /* none asked for yet: plain flushes, the VMM copies nothing */
  flip (vmm, 1, &frames, &id);
  rec_wait_flushes (r, 1);
  fail_unless_equals_int (rec_n_snapshots (r), 0);
  fail_unless_equals_int (standin_runner_ask_stat (vmm, "snapshots"), 0);

  fail_unless (hxex_watch_set_snapshots (w, 1u << 1, 5 * SECOND, &err), "%s",
      err ? err->message : "");
  reply = standin_runner_ask (vmm, "scribble 1 on");
  fail_unless_equals_string (reply, "OK scribble 1 on");
  /* SNAPSHOTS is not answered: flips until one comes (bounded) */
  for (n = 1; rec_n_snapshots (r) == 0 && n < 50;) {
    flip (vmm, 1, &frames, &id);
    rec_wait_flushes (r, ++n);
  }
  fail_unless_equals_int (rec_n_snapshots (r), 1);
  s = rec_snapshot_at (r, 0);
  fail_unless (s->kind == HXEX_KIND_READBACK_SLOT && s->width == 32
      && s->height == 16 && s->resource_id == id);
  /* the flushed frame; the resource itself shows the scribble by now */
  fail_unless (surface_matches_frame (s, frames - 1 + 64));
  fail_unless (resolve_matches (vmm, id, frames - 1 + 64 + 128, 32, 16));
  /* scanout 0 was not asked for */
  flip (vmm, 0, &frames, &id);
  rec_wait_flushes (r, ++n);
  fail_unless_equals_int (rec_n_snapshots (r), 1);

  /* the second slot, then none free: a plain FLUSH, counted */
  flip (vmm, 1, &frames, &id);
  rec_wait_flushes (r, ++n);
  fail_unless_equals_int (rec_n_snapshots (r), 2);
  fail_unless (surface_matches_frame (rec_snapshot_at (r, 1), frames - 1 + 64));
  flip (vmm, 1, &frames, &id);
  rec_wait_flushes (r, ++n);
  fail_unless_equals_int (rec_n_snapshots (r), 2);
  fail_unless_equals_int (standin_runner_ask_stat (vmm, "snapshot_misses"), 1);
  fail_unless_equals_int (standin_runner_ask_stat (vmm, "slots_in_use"), 2);
  /* one given back: used again */
  g_mutex_lock (&r->lock);
  g_ptr_array_remove_index (r->snapshots, 0);
  g_mutex_unlock (&r->lock);
  flip (vmm, 1, &frames, &id);
  rec_wait_flushes (r, ++n);
  fail_unless_equals_int (rec_n_snapshots (r), 2);
  fail_unless (surface_matches_frame (rec_snapshot_at (r, 1), frames - 1 + 64));

  /* asked for none again: plain flushes */
  fail_unless (hxex_watch_set_snapshots (w, 0, 5 * SECOND, NULL));
  g_mutex_lock (&r->lock);
  g_ptr_array_set_size (r->snapshots, 0);
  g_mutex_unlock (&r->lock);
  fail_unless_equals_int (standin_runner_ask_stat (vmm, "slots_in_use"), 0);
  flip (vmm, 1, &frames, &id);
  rec_wait_flushes (r, ++n);
  fail_unless_equals_int (rec_n_snapshots (r), 0);

  hxex_watch_free (w);
  rec_free (r);
  standin_runner_stop_checked (vmm);
}

GST_END_TEST;

/* HELLO @min..@max with @kinds, WATCH, the initial SCANOUTs */
static GSocket *
raw_watch_versions (StandinRunner * vmm, guint16 min, guint16 max,
    guint32 kinds, guint16 version, guint n_scanouts)
{
  guint8 buf[HXEX_HEADER_SIZE + HXEX_MAX_PAYLOAD_SIZE];
  GSocket *sock = raw_connect (vmm);
  HxexHeader h;
  guint i;

  fail_unless_equals_int (raw_hello (sock, min, max, kinds), version);
  hxex_watch_write (buf);
  raw_send (sock, HXEX_MSG_WATCH, 0, buf, HXEX_WATCH_SIZE);
  for (i = 0; i < n_scanouts; i++) {
    fail_unless (raw_recv (sock, &h, buf));
    fail_unless_equals_int (h.type, HXEX_MSG_SCANOUT);
  }
  return sock;
}

/* Old and new peers, and watchers that misuse version 4: closed alone. */
GST_START_TEST (test_watch_snapshots_peers)
{
  const gchar *extra[] = { "--width", "64", "--height", "48", "--scanouts",
    "2", "--scanout", "1:32x16@0", NULL
  };
  const gchar *v3_vmm[] = { "--width", "64", "--height", "48", "--scanouts",
    "2", "--scanout", "1:32x16@0", "--export-version", "3", NULL
  };
  guint8 buf[HXEX_HEADER_SIZE + HXEX_MAX_PAYLOAD_SIZE];
  g_autoptr (GError) err = NULL;
  WatchRec *r = rec_new ();
  HxexWatch *w;
  GSocket *sock, *v3;
  HxexHeader h;
  guint frames, id;
  StandinRunner *vmm = standin_runner_start (extra);

  if (!vmm) {
    rec_free (r);
    return;
  }
  /* a version-3 watch (with a ring even) gets plain FLUSHes, and may not
   * ask for snapshots */
  v3 = raw_watch_versions (vmm, 2, 3, HXEX_KIND_BIT (HXEX_KIND_READBACK_SLOT),
      3, 2);
  flip (vmm, 1, &frames, &id);
  fail_unless (raw_recv (v3, &h, buf));
  fail_unless_equals_int (h.type, HXEX_MSG_SCANOUT);
  fail_unless (raw_recv (v3, &h, buf));
  fail_unless_equals_int (h.type, HXEX_MSG_FLUSH);
  hxex_snapshots_write (0x2, buf);
  raw_send (v3, HXEX_MSG_SNAPSHOTS, 0, buf, HXEX_SNAPSHOTS_SIZE);
  raw_expect_error (v3, 0, HXEX_ERR_PROTOCOL, TRUE);
  g_object_unref (v3);

  /* a version-4 watch without a ring */
  sock = raw_watch_versions (vmm, 2, 4, 0x1, 4, 2);
  hxex_snapshots_write (0x2, buf);
  raw_send (sock, HXEX_MSG_SNAPSHOTS, 0, buf, HXEX_SNAPSHOTS_SIZE);
  raw_expect_error (sock, 0, HXEX_ERR_PROTOCOL, TRUE);
  g_object_unref (sock);

  /* with a ring: a scanout it does not have; and one that is fine, with
   * a RELEASE of a handle it never held (ignored, counted) */
  sock = raw_watch_versions (vmm, 2, 4,
      HXEX_KIND_BIT (HXEX_KIND_READBACK_SLOT), 4, 2);
  hxex_snapshots_write (0x4, buf);
  raw_send (sock, HXEX_MSG_SNAPSHOTS, 0, buf, HXEX_SNAPSHOTS_SIZE);
  raw_expect_error (sock, 0, HXEX_ERR_PROTOCOL, TRUE);
  g_object_unref (sock);
  sock = raw_watch_versions (vmm, 2, 4,
      HXEX_KIND_BIT (HXEX_KIND_READBACK_SLOT), 4, 2);
  hxex_snapshots_write (0x2, buf);
  raw_send (sock, HXEX_MSG_SNAPSHOTS, 0, buf, HXEX_SNAPSHOTS_SIZE);
  hxex_release_write (0x7777, buf);
  raw_send (sock, HXEX_MSG_RELEASE, 0, buf, HXEX_RELEASE_SIZE);
  flip (vmm, 1, &frames, &id);
  fail_unless (raw_recv (sock, &h, buf));
  fail_unless_equals_int (h.type, HXEX_MSG_SCANOUT);
  fail_unless (raw_recv (sock, &h, buf));
  fail_unless_equals_int (h.type, HXEX_MSG_FLUSH_SNAPSHOT);
  fail_unless_equals_int (standin_runner_ask_stat (vmm, "bad_releases"), 1);
  /* RESOLVE is still not a watch's */
  hxex_resolve_write (&(HxexResolve) {
      id, 0}
      , buf);
  raw_send (sock, HXEX_MSG_RESOLVE, 3, buf, HXEX_RESOLVE_SIZE);
  raw_expect_error (sock, 3, HXEX_ERR_PROTOCOL, TRUE);
  g_object_unref (sock);
  fail_unless_equals_int (standin_runner_ask_stat (vmm, "watchers"), 0);
  fail_unless_equals_int (standin_runner_ask_stat (vmm, "slots_in_use"), 0);
  fail_unless (resolve_matches (vmm, id, frames - 1 + 64, 32, 16));
  standin_runner_stop_checked (vmm);

  /* our watch against a version-3 VMM: no snapshots, flushes as before */
  vmm = standin_runner_start (v3_vmm);
  fail_unless (vmm != NULL);
  w = hxex_watch_new (standin_runner_get_socket_path (vmm),
      &rec_snapshot_callbacks, r, 10 * SECOND, &err);
  fail_unless (w != NULL, "%s", err ? err->message : "");
  fail_if (hxex_watch_has_snapshots (w));
  fail_unless (hxex_watch_has_cursor (w));
  fail_if (hxex_watch_set_snapshots (w, 0x2, SECOND, &err));
  fail_unless (g_error_matches (err, G_IO_ERROR, G_IO_ERROR_NOT_SUPPORTED));
  flip (vmm, 1, &frames, &id);
  rec_wait_flushes (r, 1);
  fail_unless_equals_int (rec_n_snapshots (r), 0);
  fail_unless (resolve_matches (vmm, id, frames - 1 + 64, 32, 16));
  hxex_watch_free (w);
  rec_free (r);
  standin_runner_stop_checked (vmm);
}

GST_END_TEST;

/* A hostile VMM sending FLUSH_SNAPSHOT: the watch takes only what fits its
 * ring, else it closes (only itself) and calls back nothing. */

typedef struct
{
  HxexFlushSnapshot snap;
  guint32 n_slots;
  GSocket *listener;
} FakeSnapVmm;

static gpointer
fake_snap_vmm_thread (gpointer data)
{
  FakeSnapVmm *f = data;
  guint8 payload[HXEX_MAX_PAYLOAD_SIZE];
  HxexStream st;
  HxexHeader h;
  HxexHelloAck ack = { 4, HXEX_KIND_BIT (HXEX_KIND_READBACK_SLOT), f->n_slots,
    4096, 64, 64
  };
  HxexScanout so = { 0, HXEX_SCANOUT_ENABLED, 5, 16, 16, FOURCC_AR24, 1 };
  gint64 deadline = g_get_monotonic_time () + LINE_TIMEOUT;
  GSocket *sock = g_socket_accept (f->listener, NULL, NULL);
  gint ring = memfd_create ("test-ring", MFD_CLOEXEC);

  fail_unless (sock != NULL && ring >= 0);
  fail_unless (ftruncate (ring, (off_t) f->n_slots * 4096) == 0);
  hxex_stream_init (&st, sock, "the watch closed");
  fail_unless (hxex_stream_read (&st, &h, deadline, NULL));
  fail_unless_equals_int (h.type, HXEX_MSG_HELLO);
  hxex_hello_ack_write (&ack, payload);
  fail_unless (hxex_stream_send (&st, HXEX_MSG_HELLO_ACK, 0, payload,
          HXEX_HELLO_ACK_SIZE, &ring, 1, deadline, NULL, NULL));
  close (ring);
  fail_unless (hxex_stream_read (&st, &h, deadline, NULL));
  fail_unless_equals_int (h.type, HXEX_MSG_WATCH);
  hxex_scanout_write (&so, payload);
  fail_unless (hxex_stream_send (&st, HXEX_MSG_SCANOUT, 0, payload,
          HXEX_SCANOUT_SIZE, NULL, 0, deadline, NULL, NULL));
  hxex_flush_snapshot_write (&f->snap, payload);
  fail_unless (hxex_stream_send (&st, HXEX_MSG_FLUSH_SNAPSHOT, 0, payload,
          HXEX_FLUSH_SNAPSHOT_SIZE, NULL, 0, deadline, NULL, NULL));
  /* the watch hangs up on us (or releases); until then nothing more */
  while (hxex_stream_read (&st, &h, deadline, NULL));
  hxex_stream_clear (&st);
  g_object_unref (sock);
  return NULL;
}

GST_START_TEST (test_watch_snapshot_hostile)
{
  const HxexFlushSnapshot good = { {0, 5, 0, 0, 16, 16, 1}, 3, 1, 16, 16, 64,
  FOURCC_AR24, 64 * 16
  };
  struct
  {
    const gchar *what;
    guint32 n_slots;
    guint32 slot;
    guint64 size;
    guint32 index;
    gboolean takes;
  } cases[] = {
    {"a good one", 2, 1, 64 * 16, 0, TRUE},
    {"a slot past the ring", 2, 2, 64 * 16, 0, FALSE},
    {"a slot far past the ring", 2, G_MAXUINT32, 64 * 16, 0, FALSE},
    {"more than a slot holds", 2, 1, 4097, 0, FALSE},
    {"a scanout it does not have", 2, 1, 64 * 16, 1, FALSE},
  };
  guint i;

  for (i = 0; i < G_N_ELEMENTS (cases); i++) {
    g_autofree gchar *dir = g_dir_make_tmp ("hxex-fake-XXXXXX", NULL);
    g_autofree gchar *path = g_build_filename (dir, "export.sock", NULL);
    g_autoptr (GSocketAddress) addr = g_unix_socket_address_new (path);
    g_autoptr (GError) err = NULL;
    FakeSnapVmm f = { good, cases[i].n_slots, NULL };
    WatchRec *r = rec_new ();
    gboolean took;
    GThread *t;
    HxexWatch *w;

    GST_INFO ("hostile VMM: %s", cases[i].what);
    f.snap.slot = cases[i].slot;
    f.snap.size = cases[i].size;
    f.snap.flush.index = cases[i].index;
    f.listener = g_socket_new (G_SOCKET_FAMILY_UNIX, G_SOCKET_TYPE_STREAM, 0,
        NULL);
    fail_unless (g_socket_bind (f.listener, addr, TRUE, NULL));
    fail_unless (g_socket_listen (f.listener, NULL));
    t = g_thread_new ("fake-vmm", fake_snap_vmm_thread, &f);
    w = hxex_watch_new (path, &rec_snapshot_callbacks, r, 10 * SECOND, &err);
    fail_unless (w != NULL, "%s", err ? err->message : "");
    fail_unless (hxex_watch_has_snapshots (w));
    g_mutex_lock (&r->lock);
    while (!r->closed && r->snapshots->len == 0)
      fail_unless (g_cond_wait_until (&r->cond, &r->lock,
              g_get_monotonic_time () + LINE_TIMEOUT));
    took = r->snapshots->len == 1;
    if (r->closed)
      fail_unless (g_error_matches (r->closed_error, HXEX_ERROR,
              HXEX_ERR_PROTOCOL), "%s", r->closed_error->message);
    g_mutex_unlock (&r->lock);
    fail_unless_equals_int (took, cases[i].takes);
    if (took) {
      HxexClientSurface *s = rec_snapshot_at (r, 0);

      fail_unless (s->width == 16 && s->stride[0] == 64 && s->slot == 1);
      /* the ring's second slot, as mapped */
      fail_unless (s->data != NULL && s->data[0] == 0 && s->data[1023] == 0);
    }
    hxex_watch_free (w);
    /* a surface outlives its watch: the ring stays mapped */
    if (took)
      fail_unless (rec_snapshot_at (r, 0)->data[5] == 0);
    g_thread_join (t);
    g_object_unref (f.listener);
    rec_free (r);
    g_unlink (path);
    g_rmdir (dir);
  }
}

GST_END_TEST;

/* A pointer flood against a watcher that does not read: it is not
 * dropped (a move is not worth a watcher); it is owed the newest
 * position, sent once its socket drains, in order, before later events.
 * A watcher that reads keeps up. */
GST_START_TEST (test_watch_cursor_flood)
{
  const gchar *extra[] = { "--width", "64", "--height", "48", "--scanouts",
    "2", "--scanout", "1:16x16@0", NULL
  };
  guint8 buf[HXEX_HEADER_SIZE + HXEX_MAX_PAYLOAD_SIZE];
  WatchRec *r = rec_new ();
  HxexWatch *w;
  GSocket *mute;
  HxexHeader h;
  HxexCursorMove m;
  gint32 x = 0, last_x = -1;
  guint batch;
  StandinRunner *vmm = standin_runner_start (extra);

  if (!vmm) {
    rec_free (r);
    return;
  }
  mute = raw_watch_versions (vmm, HXEX_VERSION_CURSOR,
      HXEX_VERSION_CURSOR, 0x1, HXEX_VERSION_CURSOR, 2);
  w = watch_new (vmm, r);
  /* batches of 2000 distinct positions, x = 0, 1, 2, ... until the mute
   * one is behind (its socket holds a few hundred) */
  for (batch = 0; batch < 50; batch++) {
    g_autofree gchar *cmd = g_strdup_printf ("moves 1 2000 %d 7 1 0", x);

    standin_runner_command_expect (vmm, cmd, "MOVED 1");
    x += 2000;
    /* the reader gets the last one, whatever it skipped */
    for (;;) {
      guint n;

      rec_wait_cursor (r, 0, 1);
      g_mutex_lock (&r->lock);
      n = r->moves->len;
      m = g_array_index (r->moves, HxexCursorMove, n - 1);
      g_mutex_unlock (&r->lock);
      if (m.x == x - 1)
        break;
      rec_wait_cursor (r, 0, n + 1);
    }
    if (standin_runner_stat (vmm, "cursor_moves_coalesced") > 0)
      break;
  }
  fail_unless (standin_runner_stat (vmm, "cursor_moves_coalesced") > 0);
  fail_unless_equals_int (standin_runner_stat (vmm, "watchers_dropped"), 0);
  fail_unless_equals_int (standin_runner_stat (vmm, "watchers"), 2);

  /* the mute one reads now: positions in order, ending at the newest */
  g_socket_set_timeout (mute, 10);
  while (last_x != x - 1) {
    fail_unless (raw_recv (mute, &h, buf), "closed before the newest move");
    fail_unless_equals_int (h.type, HXEX_MSG_CURSOR_MOVE);
    fail_unless (hxex_cursor_move_parse (buf + HXEX_HEADER_SIZE,
            h.payload_size, &m, NULL));
    fail_unless (m.index == 1 && m.y == 7 && m.x > last_x, "x %d after %d",
        m.x, last_x);
    last_x = m.x;
  }
  /* and a flip's events come after it (the scanout's new resource, then
   * its flush), no move again */
  standin_runner_command_expect (vmm, "flip 1", "FLIPPED 1");
  do {
    fail_unless (raw_recv (mute, &h, buf));
    fail_unless (h.type == HXEX_MSG_SCANOUT || h.type == HXEX_MSG_FLUSH,
        "type %u", h.type);
  } while (h.type != HXEX_MSG_FLUSH);
  fail_unless_equals_int (standin_runner_stat (vmm, "watchers_dropped"), 0);

  g_object_unref (mute);
  hxex_watch_free (w);
  rec_free (r);
  standin_runner_stop_checked (vmm);
}

GST_END_TEST;

static Suite *
export_suite (void)
{
  Suite *s = suite_create ("export");
  TCase *tc = tcase_create ("general");

  suite_add_tcase (s, tc);
  tcase_add_test (tc, test_codec_bytes);
  tcase_add_test (tc, test_stream_framing);
  tcase_add_test (tc, test_connect_failures);
  tcase_add_test (tc, test_resolve_pixels);
  tcase_add_test (tc, test_rgbx_format);
  tcase_add_test (tc, test_unknown_and_released);
  tcase_add_test (tc, test_raw_protocol);
  tcase_add_test (tc, test_busy);
  tcase_add_test (tc, test_vmm_stalls_then_dies);
  tcase_add_test (tc, test_many_cycles_no_leak);
  tcase_add_test (tc, test_codec_scanouts);
  tcase_add_test (tc, test_watch_initial_state);
  tcase_add_test (tc, test_watch_flip);
  tcase_add_test (tc, test_watch_hotplug);
  tcase_add_test (tc, test_watch_hostile);
  tcase_add_test (tc, test_watch_never_reads);
  tcase_add_test (tc, test_watch_versions);
  tcase_add_test (tc, test_watch_no_scanouts);
  tcase_add_test (tc, test_codec_cursor);
  tcase_add_test (tc, test_watch_cursor);
  tcase_add_test (tc, test_watch_cursor_v2);
  tcase_add_test (tc, test_watch_cursor_hostile);
  tcase_add_test (tc, test_codec_snapshots);
  tcase_add_test (tc, test_watch_snapshots);
  tcase_add_test (tc, test_watch_snapshots_peers);
  tcase_add_test (tc, test_watch_snapshot_hostile);
  tcase_add_test (tc, test_watch_cursor_flood);
  return s;
}

GST_CHECK_MAIN (export);
