/* Helix export: the codec byte for byte, and the client against the real
 * VMM module on a real virglrenderer (the stand-in VMM, --serve-only,
 * driven through its stdin).
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include <gst/check/gstcheck.h>
#include <glib/gstdio.h>
#include <string.h>
#include <signal.h>

#include "hxfr-export-client.h"

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
surface_matches_frame (const HxfrExportSurface * s, guint32 frame)
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

static guint
count_fds (void)
{
  GDir *dir = g_dir_open ("/proc/self/fd", 0, NULL);
  guint n = 0;

  fail_unless (dir != NULL);
  while (g_dir_read_name (dir))
    n++;
  g_dir_close (dir);
  return n;
}

/* The stand-in VMM as a subprocess */

typedef struct
{
  GSubprocess *proc;
  GOutputStream *in;
  GDataInputStream *out;
  GAsyncQueue *lines;
  GThread *reader;
  gchar *dir;
  gchar *socket_path;
  guint32 resource_id;
  guint32 width;
  guint32 height;
} Vmm;

static gpointer
reader_thread (gpointer data)
{
  Vmm *vmm = data;
  gchar *line;

  while ((line = g_data_input_stream_read_line (vmm->out, NULL, NULL,
              NULL)))
    g_async_queue_push (vmm->lines, line);
  g_async_queue_push (vmm->lines, g_strdup ("EOF"));
  return NULL;
}

static gchar *
vmm_line (Vmm * vmm)
{
  gchar *line = g_async_queue_timeout_pop (vmm->lines, LINE_TIMEOUT);

  fail_unless (line != NULL, "the stand-in VMM said nothing in time");
  return line;
}

static gchar *
vmm_command (Vmm * vmm, const gchar * cmd)
{
  g_autofree gchar *l = g_strconcat (cmd, "\n", NULL);

  fail_unless (g_output_stream_write_all (vmm->in, l, strlen (l), NULL, NULL,
          NULL));
  fail_unless (g_output_stream_flush (vmm->in, NULL, NULL));
  return vmm_line (vmm);
}

static guint64
vmm_stat (Vmm * vmm, const gchar * key)
{
  g_autofree gchar *line = vmm_command (vmm, "stats");
  g_autofree gchar *needle = g_strconcat (" ", key, "=", NULL);
  const gchar *p = strstr (line, needle);

  fail_unless (g_str_has_prefix (line, "STATS "), "bad stats line: %s", line);
  fail_unless (p != NULL, "no %s in %s", key, line);
  return g_ascii_strtoull (p + strlen (needle), NULL, 10);
}

static const gchar *
standin_path (void)
{
  static gchar *path;
  const gchar *root = g_getenv ("HXFR_BUILD_ROOT");

  if (!path && root)
    path = g_build_filename (root, "host-bridge", "export",
        "helix-standin-vmm", NULL);
  return path;
}

/* NULL (after saying why) when virglrenderer cannot run on this machine. */
static Vmm *
vmm_start (const gchar * const *extra)
{
  g_autoptr (GPtrArray) argv = g_ptr_array_new ();
  g_autoptr (GError) err = NULL;
  g_autofree gchar *ready = NULL;
  const gchar *path = standin_path ();
  Vmm *vmm;
  gint status;

  fail_unless (path != NULL, "HXFR_BUILD_ROOT is not set");
  if (!g_file_test (path, G_FILE_TEST_IS_EXECUTABLE)) {
    g_printerr ("SKIP: %s was not built (no virglrenderer/libepoxy)\n", path);
    return NULL;
  }
  vmm = g_new0 (Vmm, 1);
  vmm->dir = g_dir_make_tmp ("hxex-XXXXXX", &err);
  fail_unless (vmm->dir != NULL);
  vmm->socket_path = g_build_filename (vmm->dir, "export.sock", NULL);

  g_ptr_array_add (argv, (gpointer) path);
  g_ptr_array_add (argv, (gpointer) "--serve-only");
  g_ptr_array_add (argv, (gpointer) "--export-socket");
  g_ptr_array_add (argv, vmm->socket_path);
  for (; extra && *extra; extra++)
    g_ptr_array_add (argv, (gpointer) * extra);
  g_ptr_array_add (argv, NULL);

  vmm->proc = g_subprocess_newv ((const gchar * const *) argv->pdata,
      G_SUBPROCESS_FLAGS_STDIN_PIPE | G_SUBPROCESS_FLAGS_STDOUT_PIPE, &err);
  fail_unless (vmm->proc != NULL, "%s", err ? err->message : "");
  vmm->in = g_subprocess_get_stdin_pipe (vmm->proc);
  vmm->out = g_data_input_stream_new (g_subprocess_get_stdout_pipe
      (vmm->proc));
  vmm->lines = g_async_queue_new_full (g_free);
  vmm->reader = g_thread_new ("vmm-stdout", reader_thread, vmm);

  ready = vmm_line (vmm);
  if (g_str_equal (ready, "EOF")) {
    fail_unless (g_subprocess_wait (vmm->proc, NULL, NULL));
    status = g_subprocess_get_exit_status (vmm->proc);
    fail_unless_equals_int (status, 77);
    g_printerr ("SKIP: virglrenderer/EGL cannot initialise on this "
        "machine\n");
    g_thread_join (vmm->reader);
    g_async_queue_unref (vmm->lines);
    g_object_unref (vmm->out);
    g_object_unref (vmm->proc);
    g_rmdir (vmm->dir);
    g_free (vmm->dir);
    g_free (vmm->socket_path);
    g_free (vmm);
    return NULL;
  }
  fail_unless (sscanf (ready, "READY socket=%*s resource=%u width=%u "
          "height=%u", &vmm->resource_id, &vmm->width, &vmm->height) == 3,
      "unexpected first line: %s", ready);
  return vmm;
}

static void
vmm_stop (Vmm * vmm)
{
  gint64 deadline = g_get_monotonic_time () + 10 * SECOND;
  gboolean done = FALSE;

  /* it quits at the end of its input (bounded: forced otherwise) */
  g_output_stream_close (vmm->in, NULL, NULL);
  while (!done && g_get_monotonic_time () < deadline) {
    g_autofree gchar *l = g_async_queue_timeout_pop (vmm->lines, 100 * 1000);

    done = l && g_str_equal (l, "EOF");
  }
  if (!done)
    g_subprocess_force_exit (vmm->proc);
  g_subprocess_wait (vmm->proc, NULL, NULL);
  g_thread_join (vmm->reader);
  /* a VMM that shut down cleanly removed its socket file */
  if (g_subprocess_get_if_exited (vmm->proc)) {
    fail_unless_equals_int (g_subprocess_get_exit_status (vmm->proc), 0);
    fail_if (g_file_test (vmm->socket_path, G_FILE_TEST_EXISTS));
  }
  g_unlink (vmm->socket_path);
  g_rmdir (vmm->dir);
  g_async_queue_unref (vmm->lines);
  g_object_unref (vmm->out);
  g_object_unref (vmm->proc);
  g_free (vmm->dir);
  g_free (vmm->socket_path);
  g_free (vmm);
}

static HxfrExportClient *
connect_client (Vmm * vmm)
{
  g_autoptr (GError) err = NULL;
  HxfrExportClient *c =
      hxfr_export_client_connect (vmm->socket_path, 0, 5 * SECOND, &err);

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
      1, 1, 0x6}, buf);
  fail_unless_equals_int (n, 16);
  fail_unless (buf[0] == 1 && buf[1] == 0 && buf[2] == 1 && buf[4] == 6);
  fail_unless (hxex_hello_parse (buf, 16, &hello, NULL));
  buf[0] = 2;                   /* min > max */
  fail_if (hxex_hello_parse (buf, 16, &hello, &err));
  fail_unless (g_error_matches (err, HXEX_ERROR, HXEX_ERR_PROTOCOL));
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

  fail_if (hxfr_export_client_connect (path, 0, SECOND, &err));
  fail_unless (err != NULL && err->domain == G_IO_ERROR);
  fail_unless (strstr (err->message, path) != NULL, "%s", err->message);
  g_clear_error (&err);

  /* listening, never accepting nor answering */
  mute = g_socket_new (G_SOCKET_FAMILY_UNIX, G_SOCKET_TYPE_STREAM, 0, NULL);
  fail_unless (g_socket_bind (mute, addr, TRUE, NULL));
  fail_unless (g_socket_listen (mute, NULL));
  start = g_get_monotonic_time ();
  fail_if (hxfr_export_client_connect (path, 0, SECOND / 2, &err));
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
  HxfrExportClient *c;
  HxfrExportSurface *s, *s2;
  Vmm *vmm = vmm_start (extra);

  if (!vmm)
    return;
  c = connect_client (vmm);
  fail_unless (hxfr_export_client_get_n_slots (c) > 0);
  fail_unless (hxfr_export_client_get_slot_size (c) >= 320 * 240 * 4);

  s = hxfr_export_client_resolve (c, vmm->resource_id, 5 * SECOND, &err);
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
  reply = vmm_command (vmm, "frame 37");
  fail_unless_equals_string (reply, "OK");
  s2 = hxfr_export_client_resolve (c, vmm->resource_id, 5 * SECOND, &err);
  fail_unless (s2 != NULL, "%s", err ? err->message : "");
  fail_unless (s2->slot != s->slot);
  fail_unless (surface_matches_frame (s2, 37));
  fail_unless (surface_matches_frame (s, 0));

  fail_unless_equals_int (vmm_stat (vmm, "slots_in_use"), 2);
  /* DMA-BUF export was tried once, failed (no GPU), and is not retried */
  fail_unless_equals_int (vmm_stat (vmm, "dmabufs"), 0);
  fail_unless_equals_int (vmm_stat (vmm, "dmabuf_failures"), 1);
  fail_unless_equals_int (vmm_stat (vmm, "readbacks"), 2);
  fail_unless (hxfr_export_surface_release (s, NULL));
  hxfr_export_surface_free (s);
  hxfr_export_surface_free (s2);        /* releases too */
  fail_unless_equals_int (vmm_stat (vmm, "slots_in_use"), 0);
  fail_unless_equals_int (vmm_stat (vmm, "handles_held"), 0);
  fail_unless_equals_int (vmm_stat (vmm, "bad_releases"), 0);

  hxfr_export_client_unref (c);
  vmm_stop (vmm);
}

GST_END_TEST;

GST_START_TEST (test_rgbx_format)
{
  const gchar *extra[] = { "--width", "96", "--height", "64", "--format",
    "rgbx", "--no-dmabuf", NULL
  };
  g_autoptr (GError) err = NULL;
  HxfrExportClient *c;
  HxfrExportSurface *s;
  Vmm *vmm = vmm_start (extra);

  if (!vmm)
    return;
  c = connect_client (vmm);
  /* the VMM offers only what it can do */
  fail_unless_equals_int (hxfr_export_client_get_kinds (c),
      HXEX_KIND_BIT (HXEX_KIND_READBACK_SLOT));
  s = hxfr_export_client_resolve (c, vmm->resource_id, 5 * SECOND, &err);
  fail_unless (s != NULL, "%s", err ? err->message : "");
  fail_unless_equals_int (s->fourcc, GUINT32_FROM_LE (*(guint32 *) "XB24"));
  fail_unless_equals_int (s->stride[0], 96 * 4);
  fail_unless (surface_matches_frame (s, 0));
  hxfr_export_surface_free (s);
  hxfr_export_client_unref (c);
  vmm_stop (vmm);
}

GST_END_TEST;

GST_START_TEST (test_unknown_and_released)
{
  g_autoptr (GError) err = NULL;
  g_autofree gchar *created = NULL;
  g_autofree gchar *destroyed = NULL;
  HxfrExportClient *c;
  HxfrExportSurface *s;
  guint32 id;
  Vmm *vmm = vmm_start (NULL);

  if (!vmm)
    return;
  c = connect_client (vmm);

  s = hxfr_export_client_resolve (c, 999, 5 * SECOND, &err);
  fail_unless (s == NULL);
  fail_unless (g_error_matches (err, HXEX_ERROR, HXEX_ERR_UNKNOWN_RESOURCE),
      "%s", err->message);
  fail_unless (strstr (err->message, "999") != NULL, "%s", err->message);
  g_clear_error (&err);
  s = hxfr_export_client_resolve (c, 0, 5 * SECOND, &err);
  fail_unless (g_error_matches (err, HXEX_ERROR, HXEX_ERR_UNKNOWN_RESOURCE));
  g_clear_error (&err);
  /* the connection carries on */
  fail_unless (hxfr_export_client_is_connected (c));

  /* a resource the guest destroyed is unknown from then on */
  created = vmm_command (vmm, "create 48 32");
  fail_unless (sscanf (created, "CREATED %u", &id) == 1, "%s", created);
  s = hxfr_export_client_resolve (c, id, 5 * SECOND, &err);
  fail_unless (s != NULL, "%s", err ? err->message : "");
  fail_unless_equals_int (s->width, 48);
  fail_unless (surface_matches_frame (s, 0));
  destroyed = g_strdup_printf ("destroy %u", id);
  g_free (created);
  created = vmm_command (vmm, destroyed);
  fail_unless_equals_string (created, "OK");
  /* the copy in the slot outlives the resource */
  fail_unless (surface_matches_frame (s, 0));
  fail_if (hxfr_export_client_resolve (c, id, 5 * SECOND, &err));
  fail_unless (g_error_matches (err, HXEX_ERROR, HXEX_ERR_UNKNOWN_RESOURCE));
  g_clear_error (&err);

  /* not a format the export carries: R8_UNORM (virgl 64) */
  g_free (created);
  created = vmm_command (vmm, "create 32 32 64");
  fail_unless (sscanf (created, "CREATED %u", &id) == 1, "%s", created);
  fail_if (hxfr_export_client_resolve (c, id, 5 * SECOND, &err));
  fail_unless (g_error_matches (err, HXEX_ERROR,
          HXEX_ERR_UNSUPPORTED_FORMAT), "%s", err->message);
  g_clear_error (&err);

  /* larger than a slot (the stand-in's slots hold one 4K BGRA frame) */
  g_free (created);
  created = vmm_command (vmm, "create 4096 2304");
  fail_unless (sscanf (created, "CREATED %u", &id) == 1, "%s", created);
  fail_if (hxfr_export_client_resolve (c, id, 5 * SECOND, &err));
  fail_unless (g_error_matches (err, HXEX_ERROR, HXEX_ERR_TOO_LARGE), "%s",
      err->message);
  g_clear_error (&err);
  fail_unless (hxfr_export_client_is_connected (c));

  /* double release */
  fail_unless (hxfr_export_surface_release (s, &err));
  fail_if (hxfr_export_surface_release (s, &err));
  fail_unless (g_error_matches (err, HXEX_ERROR, HXEX_ERR_RELEASED));
  g_clear_error (&err);
  hxfr_export_surface_free (s);
  fail_unless_equals_int (vmm_stat (vmm, "handles_held"), 0);
  fail_unless_equals_int (vmm_stat (vmm, "bad_releases"), 0);

  hxfr_export_client_unref (c);
  vmm_stop (vmm);
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
  Vmm *vmm = vmm_start (NULL);

  if (!vmm)
    return;
  sock = g_socket_new (G_SOCKET_FAMILY_UNIX, G_SOCKET_TYPE_STREAM, 0, NULL);
  addr = g_unix_socket_address_new (vmm->socket_path);
  fail_unless (g_socket_connect (sock, addr, NULL, NULL));
  g_socket_set_timeout (sock, 10);

  /* RESOLVE before HELLO: ERROR PROTOCOL, then closed */
  h = (HxexHeader) {
  HXEX_MSG_RESOLVE, 0, HXEX_RESOLVE_SIZE, 5};
  hxex_header_write (buf, &h);
  hxex_resolve_write (&(HxexResolve) {
      1, 0}, buf + 16);
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
    HxfrExportClient *c = connect_client (vmm);
    HxfrExportSurface *s =
        hxfr_export_client_resolve (c, vmm->resource_id, 5 * SECOND, NULL);
    guint8 rel[HXEX_HEADER_SIZE + HXEX_RELEASE_SIZE];

    fail_unless (s != NULL);
    hxfr_export_surface_free (s);
    hxfr_export_client_unref (c);

    /* RELEASE of a handle never handed out: no answer, counted */
    g_clear_object (&sock);
    sock = g_socket_new (G_SOCKET_FAMILY_UNIX, G_SOCKET_TYPE_STREAM, 0, NULL);
    fail_unless (g_socket_connect (sock, addr, NULL, NULL));
    g_socket_set_timeout (sock, 10);
    h = (HxexHeader) {
    HXEX_MSG_HELLO, 0, HXEX_HELLO_SIZE, 0};
    hxex_header_write (buf, &h);
    hxex_hello_write (&(HxexHello) {
        1, 1, HXEX_KIND_BIT (HXEX_KIND_READBACK_SLOT)}, buf + 16);
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
    fail_unless_equals_int (vmm_stat (vmm, "bad_releases"), 1);
    fail_unless_equals_int (vmm_stat (vmm, "clients"), 1);
  }
  g_socket_close (sock, NULL);
  vmm_stop (vmm);
}

GST_END_TEST;

GST_START_TEST (test_busy)
{
  const gchar *extra[] = { "--slots", "3", NULL };
  g_autoptr (GError) err = NULL;
  HxfrExportSurface *held[3];
  HxfrExportClient *c;
  HxfrExportSurface *s;
  guint i;
  Vmm *vmm = vmm_start (extra);

  if (!vmm)
    return;
  c = connect_client (vmm);
  fail_unless_equals_int (hxfr_export_client_get_n_slots (c), 3);
  for (i = 0; i < 3; i++) {
    held[i] = hxfr_export_client_resolve (c, vmm->resource_id, 5 * SECOND,
        &err);
    fail_unless (held[i] != NULL, "%s", err ? err->message : "");
  }
  s = hxfr_export_client_resolve (c, vmm->resource_id, 5 * SECOND, &err);
  fail_unless (s == NULL);
  fail_unless (g_error_matches (err, HXEX_ERROR, HXEX_ERR_BUSY), "%s",
      err->message);
  g_clear_error (&err);

  /* one back, one more out */
  hxfr_export_surface_free (held[1]);
  held[1] = hxfr_export_client_resolve (c, vmm->resource_id, 5 * SECOND,
      &err);
  fail_unless (held[1] != NULL, "%s", err ? err->message : "");

  /* slots belong to a connection: another client has its own ring */
  {
    HxfrExportClient *c2 = connect_client (vmm);

    s = hxfr_export_client_resolve (c2, vmm->resource_id, 5 * SECOND, &err);
    fail_unless (s != NULL, "%s", err ? err->message : "");
    fail_unless (surface_matches_frame (s, 0));
    fail_unless_equals_int (vmm_stat (vmm, "slots_in_use"), 4);
    hxfr_export_surface_free (s);
    hxfr_export_client_unref (c2);
  }

  /* a client that goes away gives all its slots back, while what it
   * holds stays readable on its side */
  hxfr_export_client_close (c);
  fail_unless (surface_matches_frame (held[0], 0));
  {
    gint64 deadline = g_get_monotonic_time () + 10 * SECOND;

    while (vmm_stat (vmm, "clients") > 0 && g_get_monotonic_time () <
        deadline);
  }
  fail_unless_equals_int (vmm_stat (vmm, "clients"), 0);
  fail_unless_equals_int (vmm_stat (vmm, "slots_in_use"), 0);
  fail_unless_equals_int (vmm_stat (vmm, "handles_held"), 0);
  for (i = 0; i < 3; i++)
    hxfr_export_surface_free (held[i]);
  hxfr_export_client_unref (c);
  vmm_stop (vmm);
}

GST_END_TEST;

typedef struct
{
  HxfrExportClient *client;
  guint32 resource_id;
  GError *error;
  gint64 elapsed;
} ResolveJob;

static gpointer
resolve_thread (gpointer data)
{
  ResolveJob *job = data;
  gint64 start = g_get_monotonic_time ();
  HxfrExportSurface *s = hxfr_export_client_resolve (job->client,
      job->resource_id, 30 * SECOND, &job->error);

  job->elapsed = g_get_monotonic_time () - start;
  hxfr_export_surface_free (s);
  return NULL;
}

GST_START_TEST (test_vmm_stalls_then_dies)
{
  g_autoptr (GError) err = NULL;
  g_autofree gchar *reply = NULL;
  HxfrExportClient *c;
  HxfrExportSurface *s, *kept;
  ResolveJob job = { 0 };
  GThread *t;
  gint64 start, elapsed;
  Vmm *vmm = vmm_start (NULL);

  if (!vmm)
    return;
  c = connect_client (vmm);
  kept = hxfr_export_client_resolve (c, vmm->resource_id, 5 * SECOND, &err);
  fail_unless (kept != NULL);

  /* a hung renderer thread: the client gives up at its timeout */
  reply = vmm_command (vmm, "stall 2000");
  fail_unless_equals_string (reply, "STALLING");
  g_clear_pointer (&reply, g_free);
  start = g_get_monotonic_time ();
  s = hxfr_export_client_resolve (c, vmm->resource_id, SECOND / 2, &err);
  elapsed = g_get_monotonic_time () - start;
  fail_unless (s == NULL);
  fail_unless (g_error_matches (err, G_IO_ERROR, G_IO_ERROR_TIMED_OUT), "%s",
      err->message);
  fail_unless (elapsed < 2 * SECOND);
  g_clear_error (&err);
  reply = vmm_line (vmm);       /* the stall is over */
  fail_unless_equals_string (reply, "OK");

  /* the late answer is given back; the next request gets its own */
  s = hxfr_export_client_resolve (c, vmm->resource_id, 5 * SECOND, &err);
  fail_unless (s != NULL, "%s", err ? err->message : "");
  fail_unless (surface_matches_frame (s, 0));
  hxfr_export_surface_free (s);
  fail_unless_equals_int (vmm_stat (vmm, "handles_held"), 1);

  /* the VMM dies while a request waits on it */
  g_free (reply);
  reply = vmm_command (vmm, "stall 20000");
  fail_unless_equals_string (reply, "STALLING");
  job.client = c;
  job.resource_id = vmm->resource_id;
  t = g_thread_new ("resolve", resolve_thread, &job);
  /* the request is sent or about to be: either order must give the same
   * clear error, never a wait for the 30 s timeout */
  g_usleep (300 * 1000);
  g_subprocess_send_signal (vmm->proc, SIGKILL);
  g_thread_join (t);
  fail_unless (job.error != NULL);
  fail_unless (job.error->domain == G_IO_ERROR);
  fail_if (g_error_matches (job.error, G_IO_ERROR, G_IO_ERROR_TIMED_OUT));
  fail_unless (job.elapsed < 10 * SECOND);
  GST_INFO ("after the VMM died: %s", job.error->message);
  g_clear_error (&job.error);
  fail_if (hxfr_export_client_is_connected (c));

  /* later calls fail at once; what was handed out stays readable */
  start = g_get_monotonic_time ();
  fail_if (hxfr_export_client_resolve (c, vmm->resource_id, 5 * SECOND,
          &err));
  fail_unless (err != NULL);
  fail_unless (g_get_monotonic_time () - start < SECOND);
  fail_unless (surface_matches_frame (kept, 0));
  fail_unless (hxfr_export_surface_release (kept, NULL));
  hxfr_export_surface_free (kept);
  hxfr_export_client_unref (c);
  vmm_stop (vmm);
}

GST_END_TEST;

typedef struct
{
  HxfrExportClient *client;
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
    HxfrExportSurface *s = hxfr_export_client_resolve (job->client,
        job->resource_id, 10 * SECOND, NULL);

    if (!s || s->data[3] != 255)
      job->failures++;
    hxfr_export_surface_free (s);
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
  HxfrExportClient *c;
  guint fds_before, vmm_fds_before, i;
  Vmm *vmm = vmm_start (extra);

  if (!vmm)
    return;
  c = connect_client (vmm);
  /* warm up (lazy allocations on both sides), then measure */
  cycle_thread (&(CycleJob) {
      c, vmm->resource_id, 10, 0});
  fds_before = count_fds ();
  vmm_fds_before = vmm_stat (vmm, "fds");

  /* one thread, then four sharing the connection */
  jobs[0] = (CycleJob) {
  c, vmm->resource_id, 2000, 0};
  cycle_thread (&jobs[0]);
  fail_unless_equals_int (jobs[0].failures, 0);
  for (i = 0; i < 4; i++) {
    jobs[i] = (CycleJob) {
    c, vmm->resource_id, 500, 0};
    threads[i] = g_thread_new ("cycles", cycle_thread, &jobs[i]);
  }
  for (i = 0; i < 4; i++) {
    g_thread_join (threads[i]);
    fail_unless_equals_int (jobs[i].failures, 0);
  }

  fail_unless_equals_int (count_fds (), fds_before);
  fail_unless_equals_int (vmm_stat (vmm, "fds"), vmm_fds_before);
  fail_unless_equals_int (vmm_stat (vmm, "slots_in_use"), 0);
  fail_unless_equals_int (vmm_stat (vmm, "handles_held"), 0);
  fail_unless_equals_int (vmm_stat (vmm, "resolves"), 10 + 2000 + 4 * 500);
  fail_unless_equals_int (vmm_stat (vmm, "bad_releases"), 0);

  hxfr_export_client_unref (c);
  /* the ring's descriptor was closed once mapped: only the socket goes */
  fail_unless_equals_int (count_fds (), fds_before - 1);
  vmm_stop (vmm);
}

GST_END_TEST;

static Suite *
export_suite (void)
{
  Suite *s = suite_create ("export");
  TCase *tc = tcase_create ("general");

  suite_add_tcase (s, tc);
  tcase_add_test (tc, test_codec_bytes);
  tcase_add_test (tc, test_connect_failures);
  tcase_add_test (tc, test_resolve_pixels);
  tcase_add_test (tc, test_rgbx_format);
  tcase_add_test (tc, test_unknown_and_released);
  tcase_add_test (tc, test_raw_protocol);
  tcase_add_test (tc, test_busy);
  tcase_add_test (tc, test_vmm_stalls_then_dies);
  tcase_add_test (tc, test_many_cycles_no_leak);
  return s;
}

GST_CHECK_MAIN (export);
