/* Zero copy end to end: the built helix-host-bridge (--export unix:PATH)
 * against the stand-in VMM (tests/standin/helix-standin-vmm: a real
 * virglrenderer on surfaceless EGL, llvmpipe here) serving its resources
 * through the helix export. The guest is either the stand-in itself
 * (--bridge) or emulated on the core library, naming resources by id.
 *
 * Covered: frames by resource id decode and match the resources (PSNR
 * >= 30 dB), <= 128 bytes guest->host per frame, resize mid-stream; the
 * same through the DMA-BUF path (SIMULATED: the stand-in's
 * --simulate-dmabuf serves a memfd readback copy as kind DMABUF, because
 * llvmpipe cannot export a real DMA-BUF; no GPU DMA-BUF ran here);
 * vsocksrc's memory:DMABuf caps when downstream takes them, mapped memory
 * otherwise; unknown and destroyed resources fail that frame only; the
 * VMM going away fails resource-id frames with a clear message while the
 * session, the bridge and other sessions go on, and a new session after
 * the VMM is back works; no slot, handle or descriptor leaks after
 * thousands of frames.
 *
 * Skipped (with a warning) where the stand-in is not built or
 * virglrenderer cannot start (exit 77).
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <glib/gstdio.h>
#include <gst/check/gstcheck.h>
#include <gst/app/gstappsrc.h>
#include <gst/app/gstappsink.h>
#include <gst/video/video.h>
#include <gst/allocators/allocators.h>

#include "bridge-runner.h"
#include "standin-runner.h"
#include "video-compare.h"
#include "guest-emu.h"
#include "proc-stats.h"
#include "hxfr-export-client.h"

#define PULL_TIMEOUT (20 * GST_SECOND)

/* The descriptor count of @pid once it has settled: a session's thread
 * frees its sockets and mappings just after it logs its end. Polls
 * (bounded) until three reads 50 ms apart agree. */
static guint
settled_fds (GPid pid)
{
  gint64 deadline = g_get_monotonic_time () + 10 * G_USEC_PER_SEC;
  guint n = proc_count_fds (pid), same = 0;

  while (same < 3 && g_get_monotonic_time () < deadline) {
    guint m;

    g_usleep (50000);
    m = proc_count_fds (pid);
    same = m == n ? same + 1 : 0;
    n = m;
  }
  return n;
}

/* The bridge runner does not say its pid: our child named
 * helix-host-bridge (comm is cut to 15 characters). */
static GPid
bridge_pid (void)
{
  GDir *dir = g_dir_open ("/proc", 0, NULL);
  const gchar *name;
  GPid found = 0;

  fail_unless (dir != NULL);
  while (!found && (name = g_dir_read_name (dir))) {
    gchar *stat_path, *contents = NULL, *close_paren;
    int ppid = 0;

    if (!g_ascii_isdigit (name[0]))
      continue;
    stat_path = g_build_filename ("/proc", name, "stat", NULL);
    if (g_file_get_contents (stat_path, &contents, NULL, NULL)
        && strstr (contents, "(helix-host-brid)")
        && (close_paren = strrchr (contents, ')'))
        && sscanf (close_paren + 2, "%*c %d", &ppid) == 1 && ppid == getpid ())
      found = atoi (name);
    g_free (contents);
    g_free (stat_path);
  }
  g_dir_close (dir);
  fail_unless (found != 0, "bridge process not found");
  return found;
}

/* The stand-in VMM (support/standin-runner), read line by line in order:
 * @width x @height, its resource's memory served as DMABUF when
 * @dmabuf. NULL when it cannot run here. */
static StandinRunner *
vmm_start (guint width, guint height, gboolean dmabuf)
{
  gchar *w = g_strdup_printf ("%u", width), *h = g_strdup_printf ("%u", height);
  const gchar *args[] = { "--width", w, "--height", h,
    dmabuf ? "--simulate-dmabuf" : NULL, NULL
  };
  StandinRunner *v = standin_runner_start (args);

  g_free (w);
  g_free (h);
  fail_unless (!v || standin_runner_get_resource (v) != 0);
  return v;
}

/* Polls "stats" until @key is @want (bounded); returns the last line. */
static gchar *
vmm_wait_stat (StandinRunner * v, const gchar * key, guint64 want)
{
  gint64 deadline = g_get_monotonic_time () + 10 * G_USEC_PER_SEC;
  gchar *stats = NULL;

  for (;;) {
    g_free (stats);
    stats = standin_runner_ask (v, "stats");
    if (standin_runner_stat_in (stats, key) == want
        || g_get_monotonic_time () > deadline)
      break;
    g_usleep (20000);           /* polling a counter of another process */
  }
  fail_unless_equals_int (standin_runner_stat_in (stats, key), want);
  return stats;
}

static BridgeRunner *
bridge_start (StandinRunner * v)
{
  const gchar *args[] = { "--encoder", "x264enc", "--export",
    standin_runner_get_export_address (v), NULL
  };
  BridgeRunner *r = bridge_runner_start (BRIDGE_RUNNER_UNIX, args);

  fail_unless (r != NULL);
  return r;
}

/* Guests */

/* A v2 guest; @resource_ids: whether the bridge must say it resolves
 * resource ids (it does when its export connection is up). */
static GuestEmu *
guest_v2 (BridgeRunner * r, guint max_in_flight, gboolean resource_ids)
{
  GuestEmu *g = guest_emu_connect (bridge_runner_get_address (r), NULL);
  GuestAnswer a;

  fail_unless (g != NULL);
  fail_unless (guest_emu_hello (g, max_in_flight, NULL, &a, NULL));
  fail_unless_equals_int (a.type, HXFR_MSG_HELLO_ACK);
  fail_unless_equals_int (!!(g->ack.host_flags & HXFR_HOST_RESOURCE_IDS),
      resource_ids);
  guest_answer_clear (&a);
  return g;
}

/* A request naming resource @id (BGRA @w x @h as the guest believes). */
static void
send_resource (GuestEmu * g, guint32 id, guint w, guint h, gint64 pts)
{
  HxfrFrameRequest req = { 0, };

  req.resource_id = id;
  req.width = w;
  req.height = h;
  req.format = HXFR_FORMAT_ARGB8888;
  req.n_planes = 1;
  req.stride[0] = w * 4;
  req.pts = pts;
  req.duration = 33333333;
  fail_unless (guest_emu_send_frame (g, &req, NULL, 0, NULL));
}

static void
send_pixels (GuestEmu * g, guint n, gint64 pts)
{
  HxfrFrameRequest req = { 0, };
  gsize size;
  guint8 *px = guest_emu_make_nv12 (160, 120, 160, n, &size);

  req.width = 160;
  req.height = 120;
  req.format = HXFR_FORMAT_NV12;
  req.stride[0] = 160;
  req.pts = pts;
  fail_unless (guest_emu_send_frame (g, &req, px, size, NULL));
  g_free (px);
}

/* The next answer must be FRAME_RESPONSE2 @seq with @status (and, for
 * FAILED, @code and a text containing @text). */
static void
expect_answer (GuestEmu * g, guint32 seq, guint status, gint32 code,
    const gchar * text)
{
  GuestAnswer a;
  GError *err = NULL;

  fail_unless (guest_emu_receive (g, &a, &err), "%s", err ? err->message : "");
  fail_unless_equals_int (a.type, HXFR_MSG_FRAME_RESPONSE2);
  fail_unless_equals_int (a.resp.seq, seq);
  fail_unless_equals_int (a.resp.status, status);
  if (status == HXFR_STATUS_OK)
    fail_unless (g_bytes_get_size (a.au) > 0);
  if (status == HXFR_STATUS_FAILED) {
    fail_unless_equals_int (a.resp.error_code, code);
    fail_unless (strstr (a.text, text) != NULL, "'%s' not in '%s'", text,
        a.text);
    GST_INFO ("frame %u failed as expected: %s", seq, a.text);
  }
  guest_answer_clear (&a);
}

/* Decoding and references */

/* The stand-in's test content (helix-standin-vmm.c), frame @f, pixel
 * (@x, @y), byte @b in memory order. */
static inline guint8
standin_byte (guint f, guint x, guint y, guint b)
{
  switch (b) {
    case 0:
      return (x + 4 * f) & 255;
    case 1:
      return (y + 2 * f) & 255;
    case 2:
      return ((x ^ y) + f) & 255;
    default:
      return 255;
  }
}

/* The stand-in's content, BGRA, as I420 references. */
static GPtrArray *
standin_refs (guint w, guint h, guint first_frame, guint n)
{
  GstElement *p = gst_parse_launch ("appsrc name=src format=time ! "
      "videoconvert ! video/x-raw,format=I420 ! appsink name=sink "
      "sync=false", NULL);
  GstElement *src = gst_bin_get_by_name (GST_BIN (p), "src");
  GstElement *sink = gst_bin_get_by_name (GST_BIN (p), "sink");
  GPtrArray *out = g_ptr_array_new_with_free_func ((GDestroyNotify)
      gst_sample_unref);
  GstVideoInfo info;
  GstCaps *caps;
  GstSample *smp;
  guint f, x, y, b;

  gst_video_info_set_format (&info, GST_VIDEO_FORMAT_BGRA, w, h);
  caps = gst_video_info_to_caps (&info);
  g_object_set (src, "caps", caps, NULL);
  gst_caps_unref (caps);
  gst_element_set_state (p, GST_STATE_PLAYING);
  for (f = first_frame; f < first_frame + n; f++) {
    GstBuffer *buf = gst_buffer_new_allocate (NULL, (gsize) w * h * 4, NULL);
    GstMapInfo map;

    gst_buffer_map (buf, &map, GST_MAP_WRITE);
    for (y = 0; y < h; y++)
      for (x = 0; x < w; x++)
        for (b = 0; b < 4; b++)
          map.data[((gsize) y * w + x) * 4 + b] = standin_byte (f, x, y, b);
    gst_buffer_unmap (buf, &map);
    GST_BUFFER_PTS (buf) = f * GST_SECOND / 30;
    gst_app_src_push_buffer (GST_APP_SRC (src), buf);
  }
  gst_app_src_end_of_stream (GST_APP_SRC (src));
  while ((smp = gst_app_sink_try_pull_sample (GST_APP_SINK (sink),
              PULL_TIMEOUT)))
    g_ptr_array_add (out, smp);
  fail_unless_equals_int (out->len, n);
  gst_element_set_state (p, GST_STATE_NULL);
  gst_object_unref (src);
  gst_object_unref (sink);
  gst_object_unref (p);
  return out;
}

static GPtrArray *
decode_file (const gchar * path)
{
  gchar *desc = g_strdup_printf ("filesrc location=%s ! h264parse ! "
      "avdec_h264 ! videoconvert ! video/x-raw,format=I420 ! "
      "appsink name=sink sync=false", path);
  GstElement *pl = gst_parse_launch (desc, NULL);
  GstElement *sink = gst_bin_get_by_name (GST_BIN (pl), "sink");
  GPtrArray *decoded = g_ptr_array_new_with_free_func ((GDestroyNotify)
      gst_sample_unref);
  GstSample *smp;

  gst_element_set_state (pl, GST_STATE_PLAYING);
  while ((smp = gst_app_sink_try_pull_sample (GST_APP_SINK (sink),
              PULL_TIMEOUT)))
    g_ptr_array_add (decoded, smp);
  gst_element_set_state (pl, GST_STATE_NULL);
  gst_object_unref (sink);
  gst_object_unref (pl);
  g_free (desc);
  return decoded;
}

typedef enum
{
  PATH_READBACK,
  PATH_DMABUF,                  /* simulated, linear */
  PATH_DMABUF_TILED,            /* simulated, claims I915 X-tiling */
} ExportPath;

/* The stand-in plays the guest (--bridge): 20 frames by resource id, a
 * resize at frame 10; the decoded frames match the resources; at most
 * 128 bytes per frame go guest->host; the bridge holds no more
 * descriptors after the session than before. */
static void
run_standin_guest (ExportPath path)
{
  gchar *standin = standin_runner_path ();
  gchar *dir, *export_sock, *export_arg, *out_path, *addr, *stdout_s = NULL;
  const gchar *args[] = { "--encoder", "x264enc", "--export", NULL, NULL };
  BridgeRunner *r;
  GSubprocess *vmm;
  GError *err = NULL;
  GPtrArray *decoded, *refs;
  guint per_frame, fds_before, i;
  GPid pid;
  const gchar *p;

  if (!standin)
    return;
  dir = g_dir_make_tmp ("hxzerocopy-XXXXXX", NULL);
  export_sock = g_build_filename (dir, "export.sock", NULL);
  export_arg = g_strconcat ("unix:", export_sock, NULL);
  out_path = g_build_filename (dir, "out.h264", NULL);
  args[3] = export_arg;
  r = bridge_runner_start (BRIDGE_RUNNER_UNIX, args);
  fail_unless (r != NULL);
  addr = g_strdup (bridge_runner_get_address (r));
  pid = bridge_pid ();
  {
    /* a first session (pixels, the VMM is not there yet), so that what is
     * created once (plugins, clock, threads) exists before counting */
    GuestEmu *g = guest_v2 (r, 1, FALSE);

    send_pixels (g, 0, 0);
    expect_answer (g, 0, HXFR_STATUS_OK, 0, NULL);
    guest_emu_free (g);
    fail_unless (bridge_runner_wait_log (r, "session 1 end", 1, 10));
  }
  fds_before = settled_fds (pid);

  vmm = g_subprocess_new (G_SUBPROCESS_FLAGS_STDOUT_PIPE, &err, standin,
      "--export-socket", export_sock, "--bridge", addr, "--frames", "20",
      "--width", "160", "--height", "120", "--resize-at", "10",
      "--output", out_path, "--timeout-ms", "20000",
      path == PATH_READBACK ? "--no-dmabuf" : "--simulate-dmabuf",
      path == PATH_DMABUF_TILED ? "--simulate-modifier" : NULL,
      "0100000000000001", NULL);
  fail_unless (vmm != NULL, "%s", err ? err->message : "");
  /* bounded: the stand-in bounds every wait by --timeout-ms */
  fail_unless (g_subprocess_communicate_utf8 (vmm, NULL, NULL, &stdout_s,
          NULL, &err), "%s", err ? err->message : "");
  if (g_subprocess_get_if_exited (vmm)
      && g_subprocess_get_exit_status (vmm) == 77) {
    GST_WARNING ("virglrenderer could not start here: skipped");
    goto out;
  }
  fail_unless (g_subprocess_get_if_exited (vmm)
      && g_subprocess_get_exit_status (vmm) == 0, "stand-in: %s", stdout_s);
  fail_unless (strstr (stdout_s, "ok=20 dropped=0 failed=0") != NULL,
      "%s", stdout_s);
  p = strstr (stdout_s, "guest_to_host_bytes_per_frame=");
  fail_unless (p != NULL);
  per_frame = atoi (p + strlen ("guest_to_host_bytes_per_frame="));
  fail_unless (per_frame <= 128, "%u bytes per frame", per_frame);
  GST_INFO ("path %d: %u bytes per frame guest->host", path, per_frame);
  /* the path taken: every frame as the kind under test; a tiled DMA-BUF
   * (which mapping cannot read) once, then readback for the session */
  p = strstr (stdout_s, "STATS");
  fail_unless (p != NULL, "%s", stdout_s);
  fail_unless_equals_int (standin_runner_stat_in (p, "dmabufs"),
      path == PATH_DMABUF ? 20 : path == PATH_DMABUF_TILED ? 1 : 0);
  fail_unless_equals_int (standin_runner_stat_in (p, "readbacks"),
      path == PATH_DMABUF ? 0 : 20);
  fail_unless_equals_int (standin_runner_stat_in (p, "bad_releases"), 0);

  decoded = decode_file (out_path);
  refs = standin_refs (160, 120, 0, 10);
  {
    GPtrArray *more = standin_refs (80, 60, 10, 10);

    for (i = 0; i < more->len; i++)
      g_ptr_array_add (refs, gst_sample_ref (g_ptr_array_index (more, i)));
    g_ptr_array_unref (more);
  }
  fail_unless_equals_int (decoded->len, refs->len);
  for (i = 0; i < refs->len; i++) {
    gdouble mse = video_compare_luma_mse (g_ptr_array_index (decoded, i),
        g_ptr_array_index (refs, i));

    fail_unless (mse <= VIDEO_COMPARE_MAX_MSE_30DB,
        "frame %u luma MSE %.1f (PSNR below 30 dB)", i, mse);
  }
  g_ptr_array_unref (decoded);
  g_ptr_array_unref (refs);
  fail_unless (bridge_runner_wait_log (r, "encoded=20 dropped=0 failed=0",
          1, 10));
  /* the session has ended (logged last): its DMA-BUFs, export connection
   * and ring mapping are gone */
  fail_unless_equals_int (settled_fds (pid), fds_before);

out:
  g_object_unref (vmm);
  bridge_runner_stop_checked (r);
  g_unlink (out_path);
  g_rmdir (dir);
  g_free (stdout_s);
  g_free (addr);
  g_free (out_path);
  g_free (export_arg);
  g_free (export_sock);
  g_free (dir);
  g_free (standin);
}

GST_START_TEST (test_resource_ids_readback)
{
  run_standin_guest (PATH_READBACK);
}

GST_END_TEST;

/* SIMULATED DMA-BUF: a memfd with a readback copy stands in for the
 * renderer's DMA-BUF (no GPU here); what runs for real is the bridge's
 * side: the descriptor passed over the export socket, wrapped with
 * GstDmaBufAllocator, mapped by the encoder's videoconvert, released and
 * closed with the buffer. */
GST_START_TEST (test_resource_ids_dmabuf_simulated)
{
  run_standin_guest (PATH_DMABUF);
}

GST_END_TEST;

/* A DMA-BUF whose modifier says tiled cannot be read by mapping, and the
 * bridge's encoder does not import DMA-BUFs: vsocksrc gives it back and
 * asks for readback, for that frame and the rest of the session. */
GST_START_TEST (test_resource_ids_dmabuf_tiled_falls_back)
{
  run_standin_guest (PATH_DMABUF_TILED);
}

GST_END_TEST;

/* vsocksrc on its own (standalone, listen=) with an export client: a
 * DMA-BUF surface goes out as memory:DMABuf when downstream asks for it,
 * as mapped system-memory caps otherwise; both carry the resource's
 * pixels, and freeing the buffer gives the surface back. */
GST_START_TEST (test_vsocksrc_dmabuf_caps)
{
  StandinRunner *v = vmm_start (64, 48, TRUE);
  guint round;

  if (!v)
    return;
  for (round = 0; round < 2; round++) {
    gboolean want_dmabuf = round == 0;
    gchar *dir = g_dir_make_tmp ("hxzerocopy-XXXXXX", NULL);
    gchar *sock = g_build_filename (dir, "src.sock", NULL);
    gchar *desc = g_strdup_printf ("vsocksrc name=src listen=unix:%s ! "
        "appsink name=sink sync=false", sock);
    GstElement *pl = gst_parse_launch (desc, NULL);
    GstElement *src = gst_bin_get_by_name (GST_BIN (pl), "src");
    GstElement *sink = gst_bin_get_by_name (GST_BIN (pl), "sink");
    HxexClient *client;
    GstCapsFeatures *features;
    GError *err = NULL;
    GstSample *smp;
    GstBuffer *buf;
    GstMemory *mem;
    GstVideoFrame frame;
    GstVideoInfo info;
    GuestEmu *g;
    GuestAnswer a;
    gchar *addr, *stats;
    guint x, y, b, bad = 0;

    client = hxex_client_connect (standin_runner_get_socket_path (v), 0,
        5 * G_USEC_PER_SEC, &err);
    fail_unless (client != NULL, "%s", err ? err->message : "");
    g_object_set (src, "export-client", client, NULL);
    {
      GstCaps *caps = gst_caps_from_string (want_dmabuf ?
          "video/x-raw(memory:DMABuf)" : "video/x-raw");

      g_object_set (sink, "caps", caps, NULL);
      gst_caps_unref (caps);
    }
    fail_unless (gst_element_set_state (pl, GST_STATE_PLAYING) !=
        GST_STATE_CHANGE_FAILURE);

    addr = g_strconcat ("unix:", sock, NULL);
    g = guest_emu_connect (addr, NULL);
    fail_unless (g != NULL);
    fail_unless (guest_emu_hello (g, 2, NULL, &a, NULL));
    fail_unless_equals_int (a.type, HXFR_MSG_HELLO_ACK);
    guest_answer_clear (&a);
    send_resource (g, standin_runner_get_resource (v), 64, 48, 0);
    /* standalone vsocksrc answers DROPPED once it has the frame */
    expect_answer (g, 0, HXFR_STATUS_DROPPED, 0, NULL);

    smp = gst_app_sink_try_pull_sample (GST_APP_SINK (sink), PULL_TIMEOUT);
    fail_unless (smp != NULL);
    features = gst_caps_get_features (gst_sample_get_caps (smp), 0);
    fail_unless_equals_int (gst_caps_features_contains (features,
            GST_CAPS_FEATURE_MEMORY_DMABUF), want_dmabuf);
    buf = gst_sample_get_buffer (smp);
    fail_unless_equals_int (gst_buffer_n_memory (buf), 1);
    mem = gst_buffer_peek_memory (buf, 0);
    fail_unless (gst_is_dmabuf_memory (mem));
    fail_unless (gst_dmabuf_memory_get_fd (mem) >= 0);
    /* mapping a DMA-BUF memory: what a CPU consumer does */
    fail_unless (gst_video_info_from_caps (&info, gst_sample_get_caps (smp)));
    fail_unless_equals_int (GST_VIDEO_INFO_FORMAT (&info),
        GST_VIDEO_FORMAT_BGRA);
    fail_unless (gst_video_frame_map (&frame, &info, buf, GST_MAP_READ));
    for (y = 0; y < 48; y++)
      for (x = 0; x < 64; x++)
        for (b = 0; b < 4; b++)
          bad += ((const guint8 *) GST_VIDEO_FRAME_PLANE_DATA (&frame, 0))
              [y * GST_VIDEO_FRAME_PLANE_STRIDE (&frame, 0) + x * 4 + b] !=
              standin_byte (0, x, y, b);
    gst_video_frame_unmap (&frame);
    fail_unless_equals_int (bad, 0);

    stats = standin_runner_ask (v, "stats");
    fail_unless_equals_int (standin_runner_stat_in (stats, "dmabufs"),
        round + 1);
    fail_unless_equals_int (standin_runner_stat_in (stats, "handles_held"), 1);
    g_free (stats);
    gst_sample_unref (smp);
    gst_element_set_state (pl, GST_STATE_NULL);
    gst_object_unref (src);
    gst_object_unref (sink);
    gst_object_unref (pl);
    /* the buffer is gone: its surface was released */
    g_free (vmm_wait_stat (v, "handles_held", 0));

    guest_emu_free (g);
    hxex_client_close (client);
    hxex_client_unref (client);
    g_unlink (sock);
    g_rmdir (dir);
    g_free (addr);
    g_free (desc);
    g_free (sock);
    g_free (dir);
  }
  standin_runner_stop (v);
}

GST_END_TEST;

/* A resource id the VMM does not know: that frame FAILED -2 with the
 * VMM's reason, the frames around it encode, the session goes on. */
GST_START_TEST (test_unknown_resource)
{
  StandinRunner *v = vmm_start (160, 120, FALSE);
  BridgeRunner *r;
  GuestEmu *g;

  if (!v)
    return;
  r = bridge_start (v);
  g = guest_v2 (r, 4, TRUE);
  send_resource (g, standin_runner_get_resource (v), 160, 120, 0);
  send_resource (g, 9999, 160, 120, 33333333);
  send_resource (g, standin_runner_get_resource (v), 160, 120, 66666666);
  expect_answer (g, 0, HXFR_STATUS_OK, 0, NULL);
  expect_answer (g, 1, HXFR_STATUS_FAILED, HXFR_ERR_RESOURCE_NOT_FOUND,
      "resource 9999: The VMM could not export resource 9999: no resource "
      "9999");
  expect_answer (g, 2, HXFR_STATUS_OK, 0, NULL);
  guest_emu_free (g);
  fail_unless (bridge_runner_wait_log (r, "encoded=2 dropped=0 failed=1", 1,
          10));
  bridge_runner_stop_checked (r);
  standin_runner_stop (v);
}

GST_END_TEST;

/* The guest destroys a resource mid-stream (the stand-in's "destroy"):
 * the next frame naming it FAILED -2 "no resource N"; a new resource
 * (another size) and the first one go on encoding in the same session. */
GST_START_TEST (test_destroyed_resource)
{
  StandinRunner *v = vmm_start (160, 120, FALSE);
  BridgeRunner *r;
  GuestEmu *g;
  gchar *line, *text;
  guint32 id;

  if (!v)
    return;
  r = bridge_start (v);
  line = standin_runner_ask (v, "create 96 64");
  fail_unless (g_str_has_prefix (line, "CREATED "), "%s", line);
  id = atoi (line + strlen ("CREATED "));
  g_free (line);

  g = guest_v2 (r, 1, TRUE);
  send_resource (g, id, 96, 64, 0);
  expect_answer (g, 0, HXFR_STATUS_OK, 0, NULL);
  text = g_strdup_printf ("destroy %u", id);
  line = standin_runner_ask (v, text);
  fail_unless_equals_string (line, "OK");
  g_free (line);
  g_free (text);
  send_resource (g, id, 96, 64, 33333333);
  text = g_strdup_printf ("no resource %u", id);
  expect_answer (g, 1, HXFR_STATUS_FAILED, HXFR_ERR_RESOURCE_NOT_FOUND, text);
  g_free (text);
  send_resource (g, standin_runner_get_resource (v), 160, 120, 66666666);
  expect_answer (g, 2, HXFR_STATUS_OK, 0, NULL);
  send_pixels (g, 3, 100000000);
  expect_answer (g, 3, HXFR_STATUS_OK, 0, NULL);
  guest_emu_free (g);
  fail_unless (bridge_runner_wait_log (r, "encoded=3 dropped=0 failed=1", 1,
          10));
  line = vmm_wait_stat (v, "clients", 0);
  fail_unless_equals_int (standin_runner_stat_in (line, "bad_releases"), 0);
  g_free (line);
  bridge_runner_stop_checked (r);
  standin_runner_stop (v);
}

GST_END_TEST;

/* The VMM goes away mid-stream (SIGKILL). Decided behaviour: every later
 * frame of that session named by resource id is FAILED (-99) with "the
 * VMM's helix export is gone"; the session itself goes on (pixel frames
 * encode), the bridge serves other sessions, and a session that starts
 * after the VMM is back (same socket path, a stale socket file replaced)
 * resolves resource ids again. A session does not reconnect on its own:
 * its guest lived in the VMM that went away. */
GST_START_TEST (test_vmm_goes_away)
{
  StandinRunner *v = vmm_start (160, 120, FALSE);
  BridgeRunner *r;
  GuestEmu *g, *other;

  if (!v)
    return;
  r = bridge_start (v);
  g = guest_v2 (r, 1, TRUE);
  send_resource (g, standin_runner_get_resource (v), 160, 120, 0);
  expect_answer (g, 0, HXFR_STATUS_OK, 0, NULL);

  standin_runner_kill (v);
  send_resource (g, standin_runner_get_resource (v), 160, 120, 33333333);
  expect_answer (g, 1, HXFR_STATUS_FAILED, HXFR_ERR_INTERNAL,
      "the VMM's helix export is gone");
  send_pixels (g, 2, 66666666);
  expect_answer (g, 2, HXFR_STATUS_OK, 0, NULL);
  send_resource (g, standin_runner_get_resource (v), 160, 120, 100000000);
  expect_answer (g, 3, HXFR_STATUS_FAILED, HXFR_ERR_INTERNAL,
      "the VMM's helix export is gone");

  /* another session while the VMM is away: pixels work; resource ids fail
   * with a clear reason (no export to connect to) */
  other = guest_v2 (r, 1, FALSE);
  send_pixels (other, 0, 0);
  expect_answer (other, 0, HXFR_STATUS_OK, 0, NULL);
  send_resource (other, standin_runner_get_resource (v), 160, 120, 33333333);
  expect_answer (other, 1, HXFR_STATUS_FAILED, HXFR_ERR_RESOURCE_NOT_FOUND,
      "no helix export");
  guest_emu_free (other);
  fail_unless (bridge_runner_wait_log (r, "helix export unavailable", 1, 10));

  /* the VMM is back: a new session resolves again */
  standin_runner_restart (v);
  other = guest_v2 (r, 1, TRUE);
  send_resource (other, standin_runner_get_resource (v), 160, 120, 0);
  expect_answer (other, 0, HXFR_STATUS_OK, 0, NULL);
  guest_emu_free (other);

  /* the first session is still served */
  send_pixels (g, 4, 133333333);
  expect_answer (g, 4, HXFR_STATUS_OK, 0, NULL);
  guest_emu_free (g);
  fail_unless (bridge_runner_wait_log (r, "encoded=3 dropped=0 failed=2", 1,
          10));
  fail_unless (bridge_runner_wait_log (r, "encoded=1 dropped=0 failed=1", 1,
          10));
  fail_unless (bridge_runner_wait_log (r, "encoded=1 dropped=0 failed=0", 1,
          10));
  bridge_runner_stop_checked (r);
  standin_runner_stop (v);
}

GST_END_TEST;

/* Only the export side of the VMM stops and comes back (the stand-in's
 * "export off" / "export on": its resources stay): the running session's
 * resource-id frames fail with the clear reason, a new session resolves
 * the same resource again. */
GST_START_TEST (test_export_side_restarts)
{
  StandinRunner *v = vmm_start (160, 120, FALSE);
  BridgeRunner *r;
  GuestEmu *g, *other;
  gchar *line;

  if (!v)
    return;
  r = bridge_start (v);
  g = guest_v2 (r, 1, TRUE);
  send_resource (g, standin_runner_get_resource (v), 160, 120, 0);
  expect_answer (g, 0, HXFR_STATUS_OK, 0, NULL);
  line = standin_runner_ask (v, "export off");
  fail_unless_equals_string (line, "OK");
  g_free (line);
  send_resource (g, standin_runner_get_resource (v), 160, 120, 33333333);
  expect_answer (g, 1, HXFR_STATUS_FAILED, HXFR_ERR_INTERNAL,
      "the VMM's helix export is gone");
  line = standin_runner_ask (v, "export on");
  fail_unless_equals_string (line, "OK");
  g_free (line);

  other = guest_v2 (r, 1, TRUE);
  send_resource (other, standin_runner_get_resource (v), 160, 120, 0);
  expect_answer (other, 0, HXFR_STATUS_OK, 0, NULL);
  guest_emu_free (other);
  send_pixels (g, 2, 66666666);
  expect_answer (g, 2, HXFR_STATUS_OK, 0, NULL);
  guest_emu_free (g);
  fail_unless (bridge_runner_wait_log (r, "encoded=2 dropped=0 failed=1", 1,
          10));
  line = vmm_wait_stat (v, "clients", 0);
  fail_unless_equals_int (standin_runner_stat_in (line, "handles_held"), 0);
  g_free (line);
  bridge_runner_stop_checked (r);
  standin_runner_stop (v);
}

GST_END_TEST;

/* Thousands of small frames by resource id, pipelined: afterwards the
 * VMM holds no slot or handle for the bridge, nothing was released twice
 * or unknown, and the bridge and the VMM hold as many descriptors as
 * before. @dmabuf: every frame carries a descriptor (simulated DMA-BUF). */
static void
run_many_frames (gboolean dmabuf, guint n_frames)
{
  StandinRunner *v = vmm_start (64, 64, dmabuf);
  BridgeRunner *r;
  GuestEmu *g;
  GPid pid;
  guint fds_before, vmm_fds_before, sent = 0, answered = 0, window;
  gchar *stats, *end;

  if (!v)
    return;
  r = bridge_start (v);
  pid = bridge_pid ();

  /* a first session, so that lazily created things (plugins, threads)
   * exist before counting */
  g = guest_v2 (r, 1, TRUE);
  send_resource (g, standin_runner_get_resource (v), 64, 64, 0);
  expect_answer (g, 0, HXFR_STATUS_OK, 0, NULL);
  guest_emu_free (g);
  fail_unless (bridge_runner_wait_log (r, "session 1 end", 1, 10));
  stats = vmm_wait_stat (v, "clients", 0);
  vmm_fds_before = standin_runner_stat_in (stats, "fds");
  g_free (stats);
  fds_before = settled_fds (pid);

  g = guest_v2 (r, 4, TRUE);
  window = g->ack.max_in_flight;
  fail_unless (window >= 1);
  while (answered < n_frames) {
    while (sent < n_frames && sent - answered < window) {
      send_resource (g, standin_runner_get_resource (v), 64, 64,
          (gint64) sent * 33333333);
      sent++;
    }
    expect_answer (g, answered, HXFR_STATUS_OK, 0, NULL);
    answered++;
  }
  /* every surface comes back once the encoder is done with it */
  stats = vmm_wait_stat (v, "handles_held", 0);
  fail_unless_equals_int (standin_runner_stat_in (stats, "slots_in_use"), 0);
  fail_unless_equals_int (standin_runner_stat_in (stats, "clients"), 1);
  fail_unless_equals_int (standin_runner_stat_in (stats, "bad_releases"), 0);
  fail_unless_equals_int (standin_runner_stat_in (stats, "errors"), 0);
  fail_unless_equals_int (standin_runner_stat_in (stats, dmabuf ? "dmabufs" :
          "readbacks"), n_frames + 1);
  g_free (stats);
  guest_emu_free (g);

  end = g_strdup_printf ("encoded=%u dropped=0 failed=0", n_frames);
  fail_unless (bridge_runner_wait_log (r, end, 1, 30));
  g_free (end);
  stats = vmm_wait_stat (v, "clients", 0);
  fail_unless_equals_int (standin_runner_stat_in (stats, "slots_in_use"), 0);
  fail_unless_equals_int (standin_runner_stat_in (stats, "handles_held"), 0);
  fail_unless_equals_int (standin_runner_stat_in (stats, "fds"),
      vmm_fds_before);
  g_free (stats);
  fail_unless_equals_int (settled_fds (pid), fds_before);
  GST_INFO ("%u frames (%s): bridge fds %u before and after", n_frames,
      dmabuf ? "dmabuf" : "readback", fds_before);
  bridge_runner_stop_checked (r);
  standin_runner_stop (v);
}

GST_START_TEST (test_no_leaks_readback)
{
  run_many_frames (FALSE, 3000);
}

GST_END_TEST;

GST_START_TEST (test_no_leaks_dmabuf_simulated)
{
  run_many_frames (TRUE, 3000);
}

GST_END_TEST;

static Suite *
zerocopy_suite (void)
{
  Suite *s = suite_create ("zerocopy");
  TCase *tc = tcase_create ("general");

  /* the stand-in's stdin pipe: a test that fails must not die of SIGPIPE
   * before it reports */
  signal (SIGPIPE, SIG_IGN);
  suite_add_tcase (s, tc);
  tcase_set_timeout (tc, 240);
  tcase_add_test (tc, test_resource_ids_readback);
  tcase_add_test (tc, test_resource_ids_dmabuf_simulated);
  tcase_add_test (tc, test_resource_ids_dmabuf_tiled_falls_back);
  tcase_add_test (tc, test_vsocksrc_dmabuf_caps);
  tcase_add_test (tc, test_unknown_resource);
  tcase_add_test (tc, test_destroyed_resource);
  tcase_add_test (tc, test_vmm_goes_away);
  tcase_add_test (tc, test_export_side_restarts);
  tcase_add_test (tc, test_no_leaks_readback);
  tcase_add_test (tc, test_no_leaks_dmabuf_simulated);
  return s;
}

GST_CHECK_MAIN (zerocopy);
