/* helix-standin-vmm: a stand-in for QEMU's virtio-gpu-gl, for tests, demos
 * and benchmarks of the helix export.
 *
 * It owns a real virglrenderer (surfaceless EGL; Mesa llvmpipe on a
 * machine without a GPU), creates 2D texture resources the way a guest
 * compositor's virgl driver does (resource_create + attach_iov of "guest
 * memory"), writes moving test content into them with transfer_write_iov,
 * and serves them through the helix export module on a UNIX socket.
 *
 * With --bridge it also plays the guest: HELLO (v2), then one
 * FRAME_REQUEST2 per frame naming the resource (no pixels), and it reads
 * the access units back (--output writes them, Annex B, to a file).
 *
 * With --serve-only it only serves, and reads commands on stdin (one per
 * line) so a test can drive the "guest":
 *   frame N        write test frame N into every resource
 *   create W H [F] create one more resource, of virgl format F (default:
 *                  --format), filled with frame 0 (prints "CREATED id")
 *   destroy ID     unref a resource
 *   stall MS       print STALLING, block the renderer thread for MS ms
 *                  (a hung VMM), print OK
 *   stats          print "STATS key=value ..."
 *   export off     stop the export (its clients are disconnected, the
 *                  socket removed: the VMM's export side going away);
 *                  the resources stay
 *   export on      serve the export again on the same socket
 *   quit           (or end of input) exit
 * It prints "READY socket=PATH resource=ID width=W height=H fourcc=F"
 * once it serves.
 *
 * Test content, frame f, pixel (x, y), memory order of the format's bytes
 * b0 b1 b2 b3: b0 = (x + 4f) & 255, b1 = (y + 2f) & 255,
 * b2 = ((x ^ y) + f) & 255, b3 = 255.
 *
 * With --bench-readback N it only measures the raw
 * virgl_renderer_transfer_read_iov rate of one WxH resource: the limit the
 * export's readback path can approach.
 *
 * --simulate-dmabuf (TESTS ONLY) answers clients that accept DMA-BUF with
 * kind DMABUF backed by a memfd readback copy, so the bridge's DMA-BUF
 * wrapping runs on a machine that cannot export a real one. It is not
 * zero copy and says nothing about a real GPU's DMA-BUF. --simulate-modifier
 * makes those DMA-BUFs claim a (e.g. tiled) modifier, which a client that
 * maps them must refuse.
 *
 * Exit status: 0 ok, 1 failure, 77 virglrenderer/EGL could not start.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "helix-export.h"
#include "hxfr-transport.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <sys/uio.h>
#include <glib-unix.h>
#include <virgl/virglrenderer.h>

#include "helix-test-pattern.h"
#include "helix-virgl-defs.h"

#define EXIT_NO_RENDERER 77


typedef struct
{
  guint32 id;
  guint32 width;
  guint32 height;
  guint8 *backing;              /* the "guest memory" */
  /* virglrenderer keeps the pointer given to attach_iov (not a copy) until
   * detach: it must live as long as the resource */
  struct iovec iov;
} Resource;

typedef struct
{
  GMainLoop *loop;
  HelixExport *export;
  HelixExportOptions export_opts;
  guint export_source;
  GHashTable *resources;        /* id -> Resource */
  guint32 next_id;
  guint32 virgl_format;
  guint32 fourcc;
  gint exit_code;

  /* guest thread <-> renderer thread */
  GMutex lock;
  GCond cond;
  gboolean job_done;
  guint32 job_frame;
  guint32 job_width;
  guint32 job_height;
  guint32 current_id;
} StandIn;

static gchar *opt_export_socket;
static gchar *opt_bridge;
static gchar *opt_output;
static gchar *opt_format = (gchar *) "bgra";
static gint opt_width = 640;
static gint opt_height = 360;
static gint opt_frames = 60;
static gint opt_resize_at = -1;
static gint opt_resize_width;
static gint opt_resize_height;
static gint opt_slots = HELIX_EXPORT_DEFAULT_N_SLOTS;
static gint opt_timeout_ms = 10000;
static gboolean opt_serve_only;
static gboolean opt_no_dmabuf;
static gboolean opt_simulate_dmabuf;
static gchar *opt_simulate_modifier;
static gint opt_bench_readback;

static GOptionEntry entries[] = {
  {"export-socket", 's', 0, G_OPTION_ARG_FILENAME, &opt_export_socket,
      "UNIX socket the helix export listens on (required)", "PATH"},
  {"bridge", 'b', 0, G_OPTION_ARG_STRING, &opt_bridge,
      "Play the guest against this bridge (unix:PATH or tcp:HOST:PORT)",
      "ADDR"},
  {"serve-only", 0, 0, G_OPTION_ARG_NONE, &opt_serve_only,
      "Only serve the export; read commands on stdin", NULL},
  {"width", 'W', 0, G_OPTION_ARG_INT, &opt_width, "Resource width", "PX"},
  {"height", 'H', 0, G_OPTION_ARG_INT, &opt_height, "Resource height", "PX"},
  {"frames", 'n', 0, G_OPTION_ARG_INT, &opt_frames, "Frames to request",
      "N"},
  {"format", 'f', 0, G_OPTION_ARG_STRING, &opt_format,
      "bgra, bgrx, rgba or rgbx (GStreamer names)", "FMT"},
  {"resize-at", 0, 0, G_OPTION_ARG_INT, &opt_resize_at,
      "Switch to a resource of another size from frame N on", "N"},
  {"resize-width", 0, 0, G_OPTION_ARG_INT, &opt_resize_width,
      "Width after --resize-at (default: half)", "PX"},
  {"resize-height", 0, 0, G_OPTION_ARG_INT, &opt_resize_height,
      "Height after --resize-at (default: half)", "PX"},
  {"output", 'o', 0, G_OPTION_ARG_FILENAME, &opt_output,
      "Write the access units (H.264 Annex B) to this file", "FILE"},
  {"slots", 0, 0, G_OPTION_ARG_INT, &opt_slots,
      "Readback slots per export client", "N"},
  {"no-dmabuf", 0, 0, G_OPTION_ARG_NONE, &opt_no_dmabuf,
      "Never try DMA-BUF export", NULL},
  {"simulate-dmabuf", 0, 0, G_OPTION_ARG_NONE, &opt_simulate_dmabuf,
      "TESTS ONLY: serve resources as DMABUF backed by a memfd readback copy",
      NULL},
  {"simulate-modifier", 0, 0, G_OPTION_ARG_STRING, &opt_simulate_modifier,
      "TESTS ONLY: the DRM modifier the simulated DMA-BUFs claim (default 0, "
      "linear)", "HEX"},
  {"timeout-ms", 0, 0, G_OPTION_ARG_INT, &opt_timeout_ms,
      "Bound on every wait for the bridge", "MS"},
  {"bench-readback", 0, 0, G_OPTION_ARG_INT, &opt_bench_readback,
      "Measure N raw virgl_renderer_transfer_read_iov of one resource (the "
      "limit of the readback path), print the rate, exit", "N"},
  {NULL}
};

static void
resource_free (Resource * r)
{
  struct iovec *iov = NULL;
  int n_iov = 0;

  virgl_renderer_resource_detach_iov (r->id, &iov, &n_iov);
  virgl_renderer_resource_unref (r->id);
  g_free (r->backing);
  g_free (r);
}

/* As a guest's virgl driver does it: a 2D texture the compositor renders
 * into and scans out, backed by guest pages. Renderer thread only. */
static Resource *
resource_create_format (StandIn * s, guint32 width, guint32 height,
    guint32 virgl_format, GError ** error)
{
  struct virgl_renderer_resource_create_args args;
  Resource *r;
  int ret;

  memset (&args, 0, sizeof (args));
  args.handle = s->next_id;
  args.target = PIPE_TEXTURE_2D;
  args.format = virgl_format;
  args.bind = VIRGL_BIND_RENDER_TARGET | VIRGL_BIND_SAMPLER_VIEW |
      VIRGL_BIND_SCANOUT | VIRGL_BIND_SHARED;
  args.width = width;
  args.height = height;
  args.depth = 1;
  args.array_size = 1;
  ret = virgl_renderer_resource_create (&args, NULL, 0);
  if (ret != 0) {
    g_set_error (error, G_IO_ERROR, G_IO_ERROR_FAILED,
        "virgl_renderer_resource_create(%ux%u): %s", width, height,
        g_strerror (ret));
    return NULL;
  }
  r = g_new0 (Resource, 1);
  r->id = s->next_id++;
  r->width = width;
  r->height = height;
  r->backing = g_malloc0 ((gsize) width * height * 4);
  r->iov.iov_base = r->backing;
  r->iov.iov_len = (gsize) width * height * 4;
  ret = virgl_renderer_resource_attach_iov (r->id, &r->iov, 1);
  if (ret != 0) {
    g_set_error (error, G_IO_ERROR, G_IO_ERROR_FAILED,
        "virgl_renderer_resource_attach_iov: %s", g_strerror (ret));
    virgl_renderer_resource_unref (r->id);
    g_free (r->backing);
    g_free (r);
    return NULL;
  }
  g_hash_table_insert (s->resources, GUINT_TO_POINTER (r->id), r);
  return r;
}

static Resource *
resource_create (StandIn * s, guint32 width, guint32 height, GError ** error)
{
  return resource_create_format (s, width, height, s->virgl_format, error);
}

/* The guest wrote frame @frame into its memory; the host copies it into
 * the texture (what virtio-gpu TRANSFER_TO_HOST_2D/3D does). */
static gboolean
resource_write_frame (Resource * r, guint32 frame, GError ** error)
{
  struct virgl_box box = { 0, 0, 0, r->width, r->height, 1 };
  int ret;

  helix_test_pattern_fill (r->backing, r->width, r->height, frame);
  ret = virgl_renderer_transfer_write_iov (r->id, 0, 0, r->width * 4, 0,
      &box, 0, NULL, 0);
  if (ret != 0) {
    g_set_error (error, G_IO_ERROR, G_IO_ERROR_FAILED,
        "virgl_renderer_transfer_write_iov(%u): %s", r->id, g_strerror (ret));
    return FALSE;
  }
  return TRUE;
}

static guint
count_open_fds (void)
{
  GDir *dir = g_dir_open ("/proc/self/fd", 0, NULL);
  guint n = 0;

  if (!dir)
    return 0;
  while (g_dir_read_name (dir))
    n++;
  g_dir_close (dir);
  return n;
}

static gboolean
on_export_readable (gint fd, GIOCondition cond, gpointer user_data)
{
  StandIn *s = user_data;

  helix_export_dispatch (s->export);
  return G_SOURCE_CONTINUE;
}

static void
print_stats (StandIn * s)
{
  HelixExportStats st;

  memset (&st, 0, sizeof (st));
  if (s->export)
    helix_export_get_stats (s->export, &st);
  g_print ("STATS clients=%u slots_in_use=%u handles_held=%u resolves=%"
      G_GUINT64_FORMAT " readbacks=%" G_GUINT64_FORMAT " dmabufs=%"
      G_GUINT64_FORMAT " errors=%" G_GUINT64_FORMAT " bad_releases=%"
      G_GUINT64_FORMAT " dmabuf_failures=%" G_GUINT64_FORMAT " fds=%u\n",
      st.clients, st.slots_in_use, st.handles_held, st.resolves,
      st.readbacks, st.dmabufs, st.errors, st.bad_releases,
      st.dmabuf_failures, count_open_fds ());
}

static gboolean
export_start (StandIn * s, GError ** error)
{
  s->export = helix_export_new (opt_export_socket, &s->export_opts, error);
  if (!s->export)
    return FALSE;
  s->export_source = g_unix_fd_add (helix_export_get_fd (s->export), G_IO_IN,
      on_export_readable, s);
  return TRUE;
}

static void
export_stop (StandIn * s)
{
  if (!s->export)
    return;
  g_source_remove (s->export_source);
  helix_export_free (s->export);
  s->export = NULL;
}

static void
handle_command (StandIn * s, const gchar * line)
{
  g_autoptr (GError) err = NULL;
  g_auto (GStrv) argv = g_strsplit (line, " ", -1);
  guint argc = g_strv_length (argv);

  if (argc == 0 || argv[0][0] == '\0')
    return;
  if (g_str_equal (argv[0], "quit")) {
    g_main_loop_quit (s->loop);
  } else if (g_str_equal (argv[0], "frame") && argc == 2) {
    GHashTableIter it;
    gpointer value;
    guint32 frame = (guint32) g_ascii_strtoull (argv[1], NULL, 10);

    g_hash_table_iter_init (&it, s->resources);
    while (g_hash_table_iter_next (&it, NULL, &value))
      if (!resource_write_frame (value, frame, &err))
        break;
    g_print ("%s\n", err ? err->message : "OK");
  } else if (g_str_equal (argv[0], "create") && (argc == 3 || argc == 4)) {
    Resource *r = resource_create_format (s, atoi (argv[1]), atoi (argv[2]),
        argc == 4 ? (guint32) atoi (argv[3]) : s->virgl_format, &err);

    if (r && resource_write_frame (r, 0, &err))
      g_print ("CREATED %u\n", r->id);
    else
      g_print ("FAILED %s\n", err->message);
  } else if (g_str_equal (argv[0], "destroy") && argc == 2) {
    guint32 id = (guint32) g_ascii_strtoull (argv[1], NULL, 10);

    g_print ("%s\n", g_hash_table_remove (s->resources,
            GUINT_TO_POINTER (id)) ? "OK" : "FAILED no such resource");
  } else if (g_str_equal (argv[0], "stall") && argc == 2) {
    /* said first, so a test knows the renderer thread is now stuck */
    g_print ("STALLING\n");
    fflush (stdout);
    g_usleep ((gulong) g_ascii_strtoull (argv[1], NULL, 10) * 1000);
    g_print ("OK\n");
  } else if (g_str_equal (argv[0], "stats")) {
    print_stats (s);
  } else if (g_str_equal (argv[0], "export") && argc == 2
      && g_str_equal (argv[1], "off")) {
    export_stop (s);
    g_print ("OK\n");
  } else if (g_str_equal (argv[0], "export") && argc == 2
      && g_str_equal (argv[1], "on")) {
    if (s->export || export_start (s, &err))
      g_print ("OK\n");
    else
      g_print ("FAILED %s\n", err->message);
  } else {
    g_print ("FAILED unknown command '%s'\n", line);
  }
  fflush (stdout);
}

static gboolean
on_stdin (gint fd, GIOCondition cond, gpointer user_data)
{
  StandIn *s = user_data;
  static GString *pending;
  gchar buf[512];
  gssize n;
  gchar *nl;

  if (!pending)
    pending = g_string_new (NULL);
  n = read (fd, buf, sizeof (buf));
  if (n <= 0) {
    g_main_loop_quit (s->loop);
    return G_SOURCE_REMOVE;
  }
  g_string_append_len (pending, buf, n);
  while ((nl = strchr (pending->str, '\n'))) {
    g_autofree gchar *line = g_strndup (pending->str, nl - pending->str);

    g_string_erase (pending, 0, nl - pending->str + 1);
    handle_command (s, g_strstrip (line));
  }
  return G_SOURCE_CONTINUE;
}

/* Guest side: runs on its own thread; asks the renderer thread for each
 * frame's content. */

static gboolean
render_job (gpointer user_data)
{
  StandIn *s = user_data;
  g_autoptr (GError) err = NULL;
  Resource *r = g_hash_table_lookup (s->resources,
      GUINT_TO_POINTER (s->current_id));

  if (!r || r->width != s->job_width || r->height != s->job_height) {
    /* a mode change: the compositor allocates a new scanout buffer */
    if (r)
      g_hash_table_remove (s->resources, GUINT_TO_POINTER (r->id));
    r = resource_create (s, s->job_width, s->job_height, &err);
  }
  if (r && resource_write_frame (r, s->job_frame, &err))
    s->current_id = r->id;
  else
    s->current_id = 0;
  if (err)
    g_printerr ("helix-standin-vmm: %s\n", err->message);

  g_mutex_lock (&s->lock);
  s->job_done = TRUE;
  g_cond_signal (&s->cond);
  g_mutex_unlock (&s->lock);
  return G_SOURCE_REMOVE;
}

static guint32
render_frame (StandIn * s, guint32 frame, guint32 width, guint32 height)
{
  gint64 deadline = g_get_monotonic_time () + 10 * G_USEC_PER_SEC;
  guint32 id = 0;

  g_mutex_lock (&s->lock);
  s->job_done = FALSE;
  s->job_frame = frame;
  s->job_width = width;
  s->job_height = height;
  g_main_context_invoke (NULL, render_job, s);
  while (!s->job_done)
    if (!g_cond_wait_until (&s->cond, &s->lock, deadline))
      break;
  if (s->job_done)
    id = s->current_id;
  g_mutex_unlock (&s->lock);
  return id;
}

static gboolean
play_guest (StandIn * s, GError ** error)
{
  g_autoptr (HxfrAddress) addr = NULL;
  g_autoptr (GFile) out_file = NULL;
  g_autoptr (GOutputStream) out = NULL;
  gint64 timeout = (gint64) opt_timeout_ms * 1000;
  guint8 fixed[HXFR_MAX_FIXED_SIZE];
  HxfrHello hello;
  HxfrMessage msg;
  HxfrLimits limits;
  HxfrConn *conn;
  guint64 bytes_after_hello, au_bytes = 0;
  guint n_ok = 0, n_dropped = 0, n_failed = 0, frame;
  gboolean ok = FALSE;
  gsize n;

  addr = hxfr_address_parse (opt_bridge, error);
  if (!addr)
    return FALSE;
  if (opt_output) {
    out_file = g_file_new_for_path (opt_output);
    out = G_OUTPUT_STREAM (g_file_replace (out_file, NULL, FALSE,
            G_FILE_CREATE_NONE, NULL, error));
    if (!out)
      return FALSE;
  }
  conn = hxfr_conn_connect (addr, timeout, NULL, error);
  if (!conn)
    return FALSE;
  hxfr_limits_init_default (&limits);

  memset (&hello, 0, sizeof (hello));
  hello.min_version = 2;
  hello.max_version = 2;
  hello.codec = HXFR_CODEC_H264;
  hello.max_in_flight = 1;
  hello.bitrate = 4000000;
  hello.keyframe_interval = 30;
  hello.fps_n = 30;
  hello.fps_d = 1;
  hello.guest_flags = HXFR_GUEST_RESOURCE_IDS;
  n = hxfr_hello_write (&hello, fixed);
  if (!hxfr_conn_send (conn, HXFR_MSG_HELLO, 0, 1, fixed, n, NULL, 0,
          timeout, NULL, error)
      || !hxfr_conn_receive (conn, HXFR_ROLE_GUEST, &limits, &msg, timeout,
          timeout, NULL, error))
    goto done;
  if (msg.header.type != HXFR_MSG_HELLO_ACK) {
    g_set_error (error, HXFR_ERROR, HXFR_ERR_UNSUPPORTED,
        "the bridge answered HELLO with %s (%d: %s)",
        hxfr_msg_type_name (msg.header.type), msg.u.error.code,
        msg.u.error.message);
    goto done;
  }
  if (!(msg.u.hello_ack.host_flags & HXFR_HOST_RESOURCE_IDS))
    g_printerr ("helix-standin-vmm: warning: the bridge says it cannot "
        "resolve resource ids (no --export?)\n");
  bytes_after_hello = hxfr_conn_get_bytes_sent (conn);

  for (frame = 0; frame < (guint) opt_frames; frame++) {
    gboolean resized = opt_resize_at >= 0 && frame >= (guint) opt_resize_at;
    guint32 w = resized ? opt_resize_width : opt_width;
    guint32 h = resized ? opt_resize_height : opt_height;
    HxfrFrameRequest req;
    guint32 id = render_frame (s, frame, w, h);

    if (id == 0) {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_FAILED,
          "could not render frame %u", frame);
      goto done;
    }
    memset (&req, 0, sizeof (req));
    req.seq = frame;
    req.resource_id = id;
    req.width = w;
    req.height = h;
    req.format = s->fourcc;
    req.n_planes = 1;
    req.stride[0] = w * 4;
    req.pts = (gint64) frame * G_GINT64_CONSTANT (33333333);
    req.duration = G_GINT64_CONSTANT (33333333);
    req.force_keyframe = frame == 0 || (opt_resize_at >= 0
        && frame == (guint) opt_resize_at);
    n = hxfr_frame_request_write (&req, 2, fixed);
    if (!hxfr_conn_send (conn, HXFR_MSG_FRAME_REQUEST2, 0, 1, fixed, n, NULL,
            0, timeout, NULL, error))
      goto done;
    if (!hxfr_conn_receive (conn, HXFR_ROLE_GUEST, &limits, &msg, timeout,
            timeout, NULL, error))
      goto done;
    if (msg.header.type == HXFR_MSG_ERROR) {
      g_set_error (error, HXFR_ERROR, msg.u.error.code,
          "the bridge sent ERROR %d: %s", msg.u.error.code,
          msg.u.error.message);
      goto done;
    }
    if (msg.header.type != HXFR_MSG_FRAME_RESPONSE2
        || msg.u.frame_response.seq != frame) {
      g_set_error (error, HXFR_ERROR, HXFR_ERR_INVALID,
          "expected FRAME_RESPONSE2 seq %u, got %s seq %u", frame,
          hxfr_msg_type_name (msg.header.type), msg.u.frame_response.seq);
      goto done;
    }
    switch (msg.u.frame_response.status) {
      case HXFR_STATUS_OK:{
        g_autofree guint8 *au = g_malloc (MAX (msg.tail_size, 1));

        if (!hxfr_conn_read_exact (conn, au, msg.tail_size, timeout, NULL,
                error))
          goto done;
        if (out && !g_output_stream_write_all (out, au, msg.tail_size, NULL,
                NULL, error))
          goto done;
        au_bytes += msg.tail_size;
        n_ok++;
        break;
      }
      case HXFR_STATUS_DROPPED:
        n_dropped++;
        break;
      default:
        n_failed++;
        g_printerr ("helix-standin-vmm: frame %u failed: %d %s\n", frame,
            msg.u.frame_response.error_code, msg.text);
        break;
    }
  }
  g_print ("frames=%u ok=%u dropped=%u failed=%u au_bytes=%" G_GUINT64_FORMAT
      " guest_to_host_bytes_per_frame=%" G_GUINT64_FORMAT "\n", frame, n_ok,
      n_dropped, n_failed, au_bytes, frame ? (hxfr_conn_get_bytes_sent (conn)
          - bytes_after_hello) / frame : 0);
  ok = n_failed == 0;
  if (!ok)
    g_set_error (error, G_IO_ERROR, G_IO_ERROR_FAILED, "%u frames failed",
        n_failed);

done:
  if (out)
    g_output_stream_close (out, NULL, NULL);
  hxfr_conn_unref (conn);
  return ok;
}

static gpointer
guest_thread (gpointer user_data)
{
  StandIn *s = user_data;
  g_autoptr (GError) err = NULL;

  if (!play_guest (s, &err)) {
    g_printerr ("helix-standin-vmm: %s\n", err->message);
    s->exit_code = 1;
  }
  g_main_loop_quit (s->loop);
  return NULL;
}

static void
write_fence (void *cookie, uint32_t fence)
{
}

static struct virgl_renderer_callbacks virgl_cbs = {
  .version = 1,
  .write_fence = write_fence,
};

/* The ceiling of the readback path: the renderer's own copy rate for
 * this resource, with no protocol around it. */
static gint
bench_readback (StandIn * s)
{
  g_autoptr (GError) err = NULL;
  Resource *r = resource_create (s, opt_width, opt_height, &err);
  struct virgl_box box = { 0, 0, 0, opt_width, opt_height, 1 };
  gsize size = (gsize) opt_width * opt_height * 4;
  g_autofree guint8 *dst = g_malloc (size);
  struct iovec iov = { dst, size };
  gint64 start, elapsed;
  gint i;

  if (!r || !resource_write_frame (r, 0, &err)) {
    g_printerr ("helix-standin-vmm: %s\n", err->message);
    return 1;
  }
  start = g_get_monotonic_time ();
  for (i = 0; i < opt_bench_readback; i++) {
    int ret = virgl_renderer_transfer_read_iov (r->id, 0, 0, opt_width * 4,
        0, &box, 0, &iov, 1);

    if (ret != 0) {
      g_printerr ("helix-standin-vmm: transfer_read_iov: %s\n",
          g_strerror (ret));
      return 1;
    }
  }
  elapsed = MAX (g_get_monotonic_time () - start, 1);
  g_print ("readback %dx%d %s: %d reads in %.3f s: %.1f reads/s, %.1f MB/s\n",
      opt_width, opt_height, opt_format, opt_bench_readback,
      elapsed / 1e6, opt_bench_readback * 1e6 / elapsed,
      (double) size * opt_bench_readback / elapsed);
  return 0;
}

static gboolean
on_signal (gpointer user_data)
{
  g_main_loop_quit (user_data);
  return G_SOURCE_CONTINUE;
}

int
main (int argc, char **argv)
{
  g_autoptr (GOptionContext) ctx = NULL;
  g_autoptr (GError) err = NULL;
  HelixExportOptions opts;
  StandIn s;
  Resource *r;
  GThread *guest = NULL;
  static int cookie;
  int ret;

  ctx = g_option_context_new ("- a stand-in VMM serving virglrenderer "
      "resources through the helix export");
  g_option_context_add_main_entries (ctx, entries, NULL);
  if (!g_option_context_parse (ctx, &argc, &argv, &err)) {
    g_printerr ("helix-standin-vmm: %s\n", err->message);
    return 1;
  }
  if (!opt_export_socket && opt_bench_readback <= 0) {
    g_printerr ("helix-standin-vmm: needs --export-socket\n");
    return 1;
  }
  if ((opt_bench_readback <= 0 && !opt_bridge && !opt_serve_only)
      || opt_width <= 0 || opt_height <= 0 || opt_frames < 0) {
    g_printerr ("helix-standin-vmm: needs --bridge, --serve-only or "
        "--bench-readback, and a positive size\n");
    return 1;
  }
  if (opt_resize_width <= 0)
    opt_resize_width = MAX (opt_width / 2, 2);
  if (opt_resize_height <= 0)
    opt_resize_height = MAX (opt_height / 2, 2);

  memset (&s, 0, sizeof (s));
  g_mutex_init (&s.lock);
  g_cond_init (&s.cond);
  s.next_id = 1;
  if (g_ascii_strcasecmp (opt_format, "bgra") == 0) {
    s.virgl_format = 1;
    s.fourcc = HXFR_FORMAT_ARGB8888;
  } else if (g_ascii_strcasecmp (opt_format, "bgrx") == 0) {
    s.virgl_format = 2;
    s.fourcc = HXFR_FORMAT_XRGB8888;
  } else if (g_ascii_strcasecmp (opt_format, "rgba") == 0) {
    s.virgl_format = 67;
    s.fourcc = HXFR_FORMAT_ABGR8888;
  } else if (g_ascii_strcasecmp (opt_format, "rgbx") == 0) {
    s.virgl_format = 134;
    s.fourcc = HXFR_FORMAT_XBGR8888;
  } else {
    g_printerr ("helix-standin-vmm: unknown format %s\n", opt_format);
    return 1;
  }

  /* Surfaceless EGL: no window system, no DRM device needed (llvmpipe).
   * virglrenderer refuses a NULL cookie. Desktop GL first, then GLES. */
  g_setenv ("EGL_PLATFORM", "surfaceless", FALSE);
  ret = virgl_renderer_init (&cookie, VIRGL_RENDERER_USE_EGL |
      VIRGL_RENDERER_USE_SURFACELESS, &virgl_cbs);
  if (ret != 0)
    ret = virgl_renderer_init (&cookie, VIRGL_RENDERER_USE_EGL |
        VIRGL_RENDERER_USE_SURFACELESS | VIRGL_RENDERER_USE_GLES, &virgl_cbs);
  if (ret != 0) {
    g_printerr ("helix-standin-vmm: SKIP: virglrenderer could not start "
        "(surfaceless EGL): %s\n", g_strerror (ABS (ret)));
    return EXIT_NO_RENDERER;
  }

  s.resources = g_hash_table_new_full (NULL, NULL, NULL,
      (GDestroyNotify) resource_free);
  if (opt_bench_readback > 0) {
    s.exit_code = bench_readback (&s);
    g_hash_table_unref (s.resources);
    virgl_renderer_cleanup (&cookie);
    return s.exit_code;
  }
  s.loop = g_main_loop_new (NULL, FALSE);

  helix_export_options_init (&opts);
  opts.n_slots = opt_slots;
  opts.allow_dmabuf = !opt_no_dmabuf;
  opts.simulate_dmabuf = opt_simulate_dmabuf;
  if (opt_simulate_modifier)
    opts.simulate_dmabuf_modifier =
        g_ascii_strtoull (opt_simulate_modifier, NULL, 16);
  opts.slot_size = (guint64) MAX (opt_width, opt_resize_width) *
      MAX (opt_height, opt_resize_height) * 4;
  opts.slot_size = MAX (opts.slot_size, HELIX_EXPORT_DEFAULT_SLOT_SIZE);
  s.export_opts = opts;
  if (!export_start (&s, &err)) {
    g_printerr ("helix-standin-vmm: %s\n", err->message);
    return 1;
  }
  g_unix_signal_add (SIGINT, on_signal, s.loop);
  g_unix_signal_add (SIGTERM, on_signal, s.loop);

  if (opt_serve_only) {
    r = resource_create (&s, opt_width, opt_height, &err);
    if (!r || !resource_write_frame (r, 0, &err)) {
      g_printerr ("helix-standin-vmm: %s\n", err->message);
      return 1;
    }
    g_unix_fd_add (0, G_IO_IN | G_IO_HUP, on_stdin, &s);
    g_print ("READY socket=%s resource=%u width=%u height=%u fourcc=%s\n",
        opt_export_socket, r->id, r->width, r->height, opt_format);
    fflush (stdout);
  } else {
    guest = g_thread_new ("guest", guest_thread, &s);
  }

  g_main_loop_run (s.loop);

  /* after a signal the guest thread still ends: all its waits are
   * bounded */
  if (guest) {
    g_thread_join (guest);
    print_stats (&s);
  }
  export_stop (&s);
  g_hash_table_unref (s.resources);
  g_main_loop_unref (s.loop);
  virgl_renderer_cleanup (&cookie);
  return s.exit_code;
}
