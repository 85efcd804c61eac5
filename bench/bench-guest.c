/* bench-guest: the guest side of bench/run.
 *
 * Pushes pre-filled frames (a cycle of a few distinct frames, filled before
 * the clock starts, so frame generation costs nothing and an encoder still
 * sees motion) through `appsrc ! <element under test> ! fakesink` as fast
 * as the pipeline takes them, and prints one JSON object: frames, fps,
 * per-frame latency p50/p99 (and every sample), CPU seconds per frame of
 * this process (getrusage), bytes on the wire per frame.
 *
 * Modes:
 *   vsockenc   appsrc ! vsockenc ! fakesink (--socket-path | --tcp-host/port,
 *              --max-in-flight, --sessions N concurrent pipelines)
 *   x264       appsrc ! [videoconvert !] x264enc (the bridge's settings)
 *              ! fakesink, all in this process
 *   shm-send / shm-recv    appsrc ! shmsink | shmsrc ! fakesink
 *   gdp-send / gdp-recv    appsrc ! gdppay ! tcpserversink |
 *                          tcpclientsrc ! gdpdepay ! fakesink
 *
 * The peers have no answer: the receiving process writes one byte per
 * frame it has into a pipe (--credit-fd) that the sender reads, which
 * bounds the frames in flight like vsockenc's window and times arrival.
 *
 * Latency of frame i = out_i - max (in_i, out_{i-K}), K the frames allowed
 * in flight: the time the frame spent in flight, not the time it waited at
 * the door for a free slot (bench-pump computes it the same way).
 * in_i = the frame leaves appsrc (enters the element under test);
 * out_i = its access unit reaches fakesink (or its credit comes back).
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <gst/gst.h>
#include <gst/app/gstappsrc.h>
#include <gst/video/video.h>

#include "bench-cpu.h"

#define N_DISTINCT 8

typedef enum
{
  MODE_VSOCKENC,
  MODE_X264,
  MODE_SHM_SEND,
  MODE_SHM_RECV,
  MODE_GDP_SEND,
  MODE_GDP_RECV,
} Mode;

typedef struct
{
  Mode mode;
  gint width, height;
  GstVideoFormat format;
  gchar *socket_path;
  gchar *tcp_host;
  gint tcp_port;
  gint max_in_flight;
  gboolean pin_window;          /* vsockenc adaptive-window=false */
  gint sessions;
  gint frames;
  gint warmup;
  gdouble max_seconds;
  gint timeout_s;
  gint credit_fd;
  gint window;                  /* peers: frames in flight */
  gchar *shm_path;
  gint bitrate;                 /* bit/s */
  gint keyframe_interval;
} Options;

static Options opt = {
  .width = 1920,.height = 1080,.format = GST_VIDEO_FORMAT_NV12,
  .tcp_host = NULL,.tcp_port = 15937,.max_in_flight = 4,.sessions = 1,
  .frames = 300,.warmup = 20,.max_seconds = 5,.timeout_s = 60,
  .credit_fd = -1,.window = 4,.bitrate = 4000000,.keyframe_interval = 60,
};

typedef struct
{
  GstElement *pipeline;
  GstElement *appsrc;
  GstElement *enc;              /* vsockenc, for its stats */
  GThread *pusher;

  GMutex lock;
  GCond cond;
  gint64 *in_at;                /* monotonic ns, by frame index */
  gint64 *out_at;
  gint *k_at;                   /* vsockenc's window as the frame entered */
  gint n_out;                   /* protected by lock */
  gint n_sent;                  /* frames pushed, final once pushed_all */
  gint window;                  /* K in the latency formula */
  gboolean pushed_all;
  gboolean eos;
  gchar *error;
  guint64 bytes_at_start;
  GstClockTime out_base;        /* PTS of frame 0 at the output */
} Session;

static GstVideoInfo vinfo;
static GstBuffer *frames[N_DISTINCT];
static GstClockTime frame_duration;
static Session *sessions;

/* start barrier: every session warmed up, then all measure together */
static GMutex start_lock;
static GCond start_cond;
static gint n_warm;
static gboolean started;
static gint64 deadline;

static void
fill_frames (const GstVideoInfo * info)
{
  guint k;

  for (k = 0; k < N_DISTINCT; k++) {
    GstBuffer *buf = gst_buffer_new_allocate (NULL, info->size, NULL);
    GstVideoFrame vf;
    guint p;

    gst_video_frame_map (&vf, (GstVideoInfo *) info, buf, GST_MAP_WRITE);
    for (p = 0; p < GST_VIDEO_FRAME_N_PLANES (&vf); p++) {
      guint8 *data = GST_VIDEO_FRAME_PLANE_DATA (&vf, p);
      gint stride = GST_VIDEO_FRAME_PLANE_STRIDE (&vf, p);
      gint rows = GST_VIDEO_FRAME_COMP_HEIGHT (&vf, p);
      gint x, y;

      /* a textured pattern that moves a few pixels each frame: an encoder
       * has real work, the bytes are those of a plausible picture */
      for (y = 0; y < rows; y++)
        for (x = 0; x < stride; x++)
          data[(gsize) y * stride + x] =
              (guint8) (((x + k * 6) * (y + 3) >> 5) ^ (y * 3 + x / 7));
    }
    gst_video_frame_unmap (&vf);
    GST_MINI_OBJECT_FLAG_SET (gst_buffer_peek_memory (buf, 0),
        GST_MEMORY_FLAG_READONLY);
    frames[k] = buf;
  }
}

static GstPadProbeReturn
in_probe (GstPad * pad, GstPadProbeInfo * info, gpointer data)
{
  Session *s = data;
  GstBuffer *buf = GST_PAD_PROBE_INFO_BUFFER (info);
  gint64 now = g_get_monotonic_time () * 1000;
  guint64 i = GST_BUFFER_PTS (buf) / frame_duration;

  /* the main thread reads it after the answer is counted under the lock */
  if (i < (guint64) opt.frames) {
    s->in_at[i] = now;
    /* the frame waits for room in the window it meets: that wait is the
     * source running ahead, not latency (see the formula in main) */
    if (s->enc)
      g_object_get (s->enc, "window", &s->k_at[i], NULL);
  }
  return GST_PAD_PROBE_OK;
}

static GstPadProbeReturn
out_probe (GstPad * pad, GstPadProbeInfo * info, gpointer data)
{
  Session *s = data;
  GstBuffer *buf = GST_PAD_PROBE_INFO_BUFFER (info);
  gint64 now = g_get_monotonic_time () * 1000;
  guint64 i = G_MAXUINT64;

  /* x264enc moves timestamps by 1000 h (for negative DTS): index frames
   * from the first access unit out, which is frame 0 */
  if (GST_BUFFER_PTS_IS_VALID (buf)) {
    if (!GST_CLOCK_TIME_IS_VALID (s->out_base))
      s->out_base = GST_BUFFER_PTS (buf);
    if (GST_BUFFER_PTS (buf) >= s->out_base)
      i = (GST_BUFFER_PTS (buf) - s->out_base + frame_duration / 2) /
          frame_duration;
  }
  if (i < (guint64) opt.frames)
    s->out_at[i] = now;
  g_mutex_lock (&s->lock);
  s->n_out++;
  g_cond_broadcast (&s->cond);
  g_mutex_unlock (&s->lock);
  return GST_PAD_PROBE_OK;
}

/* Receivers: one byte back to the sender per frame that arrived. */
static GstPadProbeReturn
credit_probe (GstPad * pad, GstPadProbeInfo * info, gpointer data)
{
  char c = 1;

  while (write (opt.credit_fd, &c, 1) < 0 && errno == EINTR);
  return GST_PAD_PROBE_OK;
}

/* Senders of the peers: the credit pipe is the answer channel. */
static gpointer
credit_reader (gpointer data)
{
  Session *s = data;
  char buf[64];

  for (;;) {
    ssize_t n = read (opt.credit_fd, buf, sizeof (buf));
    gint64 now = g_get_monotonic_time () * 1000;

    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0)
      break;
    g_mutex_lock (&s->lock);
    while (n-- > 0) {
      if (s->n_out < opt.frames)
        s->out_at[s->n_out] = now;
      s->n_out++;
    }
    g_cond_broadcast (&s->cond);
    g_mutex_unlock (&s->lock);
  }
  return NULL;
}

static guint64
vsockenc_bytes (Session * s)
{
  GstStructure *st = NULL;
  guint64 sent = 0, received = 0;

  if (!s->enc)
    return 0;
  g_object_get (s->enc, "stats", &st, NULL);
  if (!st)
    return 0;
  gst_structure_get_uint64 (st, "bytes-sent", &sent);
  gst_structure_get_uint64 (st, "bytes-received", &received);
  gst_structure_free (st);
  return sent + received;
}

static guint
vsockenc_in_flight (Session * s)
{
  GstStructure *st = NULL;
  guint n = 0;

  if (!s->enc)
    return 0;
  g_object_get (s->enc, "stats", &st, NULL);
  if (st) {
    gst_structure_get_uint (st, "max-in-flight", &n);
    gst_structure_free (st);
  }
  return n;
}

static gboolean
push_one (Session * s, gint i)
{
  GstBuffer *buf = gst_buffer_copy (frames[i % N_DISTINCT]);

  GST_BUFFER_PTS (buf) = i * frame_duration;
  GST_BUFFER_DTS (buf) = GST_CLOCK_TIME_NONE;
  GST_BUFFER_DURATION (buf) = frame_duration;
  if (opt.mode == MODE_SHM_SEND || opt.mode == MODE_GDP_SEND) {
    g_mutex_lock (&s->lock);
    while (i - s->n_out >= opt.window && !s->error)
      g_cond_wait (&s->cond, &s->lock);
    g_mutex_unlock (&s->lock);
  }
  return gst_app_src_push_buffer (GST_APP_SRC (s->appsrc), buf) == GST_FLOW_OK;
}

static gboolean
wait_out (Session * s, gint n)
{
  gint64 end = g_get_monotonic_time () + opt.timeout_s * G_TIME_SPAN_SECOND;
  gboolean ok = TRUE;

  g_mutex_lock (&s->lock);
  while (s->n_out < n && !s->error && ok)
    ok = g_cond_wait_until (&s->cond, &s->lock, end);
  ok = s->n_out >= n;
  g_mutex_unlock (&s->lock);
  return ok;
}

static gpointer
pusher (gpointer data)
{
  Session *s = data;
  gint i;

  for (i = 0; i < opt.warmup; i++)
    if (!push_one (s, i))
      goto done;
  if (!wait_out (s, opt.warmup))
    goto done;

  g_mutex_lock (&start_lock);
  n_warm++;
  g_cond_broadcast (&start_cond);
  while (!started)
    g_cond_wait (&start_cond, &start_lock);
  g_mutex_unlock (&start_lock);

  for (; i < opt.frames; i++) {
    if (g_get_monotonic_time () > deadline)
      break;
    if (!push_one (s, i))
      break;
  }
done:
  g_mutex_lock (&s->lock);
  s->n_sent = i;
  s->pushed_all = TRUE;
  g_cond_broadcast (&s->cond);
  g_mutex_unlock (&s->lock);
  gst_app_src_end_of_stream (GST_APP_SRC (s->appsrc));
  return NULL;
}

static gboolean
bus_watch (GstBus * bus, GstMessage * msg, gpointer data)
{
  Session *s = data;

  switch (GST_MESSAGE_TYPE (msg)) {
    case GST_MESSAGE_ERROR:{
      GError *err = NULL;
      gchar *dbg = NULL;

      gst_message_parse_error (msg, &err, &dbg);
      g_mutex_lock (&s->lock);
      if (!s->error)
        s->error = g_strdup_printf ("%s: %s (%s)", GST_OBJECT_NAME
            (GST_MESSAGE_SRC (msg)), err->message, dbg ? dbg : "");
      g_cond_broadcast (&s->cond);
      g_mutex_unlock (&s->lock);
      g_clear_error (&err);
      g_free (dbg);
      break;
    }
    case GST_MESSAGE_EOS:
      g_mutex_lock (&s->lock);
      s->eos = TRUE;
      g_cond_broadcast (&s->cond);
      g_mutex_unlock (&s->lock);
      break;
    default:
      break;
  }
  return G_SOURCE_CONTINUE;
}

static gchar *
pipeline_description (void)
{
  gchar *caps = g_strdup_printf ("video/x-raw,format=%s,width=%d,height=%d,"
      "framerate=30/1", gst_video_format_to_string (opt.format), opt.width,
      opt.height);
  gchar *desc = NULL;

  switch (opt.mode) {
    case MODE_VSOCKENC:{
      gchar *addr = opt.socket_path ?
          g_strdup_printf ("socket-path=%s", opt.socket_path) :
          g_strdup_printf ("tcp-host=%s tcp-port=%d", opt.tcp_host,
          opt.tcp_port);

      desc = g_strdup_printf ("appsrc name=src caps=\"%s\" ! vsockenc "
          "name=enc %s max-in-flight=%d adaptive-window=%s timeout=%d "
          "bitrate=%d keyframe-interval=%d ! fakesink name=sink sync=false",
          caps, addr, opt.max_in_flight, opt.pin_window ? "false" : "true",
          opt.timeout_s * 1000, opt.bitrate, opt.keyframe_interval);
      g_free (addr);
      break;
    }
    case MODE_X264:
      /* what helix-host-bridge sets (bridge/bridge-encoder.c), with
       * vsockenc's default bitrate and keyframe interval; x264enc takes no
       * RGB: the bridge converts first, and so do we */
      desc = g_strdup_printf ("appsrc name=src caps=\"%s\" ! %s x264enc "
          "name=enc tune=zerolatency speed-preset=ultrafast bframes=0 "
          "b-adapt=false rc-lookahead=0 sync-lookahead=0 sliced-threads=true "
          "qp-min=15 byte-stream=true "
          "bitrate=%d key-int-max=%d ! fakesink name=sink sync=false", caps,
          opt.format == GST_VIDEO_FORMAT_NV12 ? "" : "videoconvert !",
          opt.bitrate / 1000, opt.keyframe_interval);
      break;
    case MODE_SHM_SEND:
      desc = g_strdup_printf ("appsrc name=src caps=\"%s\" ! shmsink "
          "name=enc socket-path=%s wait-for-connection=true shm-size=%"
          G_GSIZE_FORMAT " sync=false async=false", caps, opt.shm_path,
          (gsize) (opt.window + 2) * GST_VIDEO_INFO_SIZE (&vinfo));
      break;
    case MODE_SHM_RECV:
      desc = g_strdup_printf ("shmsrc socket-path=%s ! "
          "fakesink name=sink sync=false async=false", opt.shm_path);
      break;
    case MODE_GDP_SEND:
      desc = g_strdup_printf ("appsrc name=src caps=\"%s\" ! gdppay ! "
          "tcpserversink name=enc host=%s port=%d sync=false async=false",
          caps, opt.tcp_host, opt.tcp_port);
      break;
    case MODE_GDP_RECV:
      desc = g_strdup_printf ("tcpclientsrc host=%s port=%d ! gdpdepay ! "
          "fakesink name=sink sync=false async=false", opt.tcp_host,
          opt.tcp_port);
      break;
  }
  g_free (caps);
  return desc;
}

static GstBusSyncReply
bus_sync (GstBus * bus, GstMessage * msg, gpointer data)
{
  bus_watch (bus, msg, data);
  return GST_BUS_DROP;
}

static gpointer
watchdog (gpointer data)
{
  g_usleep ((gulong) opt.timeout_s * G_USEC_PER_SEC);
  fprintf (stderr, "bench-guest: timeout after %d s\n", opt.timeout_s);
  fflush (stderr);
  _exit (3);
  return NULL;
}

static gboolean
is_sender_of_peer (void)
{
  return opt.mode == MODE_SHM_SEND || opt.mode == MODE_GDP_SEND;
}

static GstElement *
build (Session * s)
{
  GError *err = NULL;
  gchar *desc = pipeline_description ();
  GstElement *p = gst_parse_launch (desc, &err);
  GstBus *bus;

  if (!p) {
    fprintf (stderr, "bench-guest: %s: %s\n", desc, err->message);
    exit (1);
  }
  g_free (desc);
  s->pipeline = p;
  bus = gst_element_get_bus (p);
  gst_bus_set_sync_handler (bus, bus_sync, s, NULL);
  gst_object_unref (bus);
  return p;
}

static void
add_probe (GstElement * pipeline, const gchar * element, const gchar * pad,
    GstPadProbeCallback cb, gpointer data)
{
  GstElement *e = gst_bin_get_by_name (GST_BIN (pipeline), element);
  GstPad *p = gst_element_get_static_pad (e, pad);

  gst_pad_add_probe (p, GST_PAD_PROBE_TYPE_BUFFER, cb, data, NULL);
  gst_object_unref (p);
  gst_object_unref (e);
}

/* The receiving half of a peer: counts what arrives, tells the sender. */
static int
run_receiver (void)
{
  Session s = { 0 };
  GstElement *p;
  gint64 end = g_get_monotonic_time () + opt.timeout_s * G_TIME_SPAN_SECOND;

  g_mutex_init (&s.lock);
  g_cond_init (&s.cond);
  p = build (&s);
  add_probe (p, "sink", "sink", credit_probe, &s);
  gst_element_set_state (p, GST_STATE_PLAYING);
  g_mutex_lock (&s.lock);
  while (!s.eos && !s.error)
    if (!g_cond_wait_until (&s.cond, &s.lock, end))
      break;
  g_mutex_unlock (&s.lock);
  if (s.error)
    fprintf (stderr, "bench-guest: %s\n", s.error);
  gst_element_set_state (p, GST_STATE_NULL);
  return s.eos ? 0 : 1;
}

static gint
cmp_double (gconstpointer a, gconstpointer b)
{
  gdouble x = *(const gdouble *) a, y = *(const gdouble *) b;

  return x < y ? -1 : x > y;
}

static int
run_sender (void)
{
  gint64 t0, t1 = 0, end;
  gdouble cpu0, cpu1;
  GArray *lat = g_array_new (FALSE, FALSE, sizeof (gdouble));
  guint64 bytes = 0, n_total = 0, k_sum = 0;
  gint k, i;
  gboolean ok = TRUE;
  GString *json;

  fill_frames (&vinfo);
  sessions = g_new0 (Session, opt.sessions);
  for (k = 0; k < opt.sessions; k++) {
    Session *s = &sessions[k];

    s->out_base = GST_CLOCK_TIME_NONE;
    g_mutex_init (&s->lock);
    g_cond_init (&s->cond);
    s->in_at = g_new0 (gint64, opt.frames);
    s->out_at = g_new0 (gint64, opt.frames);
    s->k_at = g_new0 (gint, opt.frames);
    build (s);
    s->appsrc = gst_bin_get_by_name (GST_BIN (s->pipeline), "src");
    /* block=true and room for two frames: appsrc paces the pusher */
    g_object_set (s->appsrc, "format", GST_FORMAT_TIME, "block", TRUE,
        "max-bytes", (guint64) 2 * GST_VIDEO_INFO_SIZE (&vinfo), NULL);
    if (opt.mode == MODE_VSOCKENC)
      s->enc = gst_bin_get_by_name (GST_BIN (s->pipeline), "enc");
    add_probe (s->pipeline, "src", "src", in_probe, s);
    if (is_sender_of_peer ())
      g_thread_unref (g_thread_new ("credits", credit_reader, s));
    else
      add_probe (s->pipeline, "sink", "sink", out_probe, s);
    if (gst_element_set_state (s->pipeline, GST_STATE_PLAYING) ==
        GST_STATE_CHANGE_FAILURE) {
      fprintf (stderr, "bench-guest: could not start pipeline %d: %s\n", k,
          s->error ? s->error : "state change failed");
      return 1;
    }
  }
  if (is_sender_of_peer ()) {
    /* the listening socket exists: the driver may start the receiver */
    printf ("ready\n");
    fflush (stdout);
  }
  if (opt.mode == MODE_GDP_SEND) {
    /* tcpserversink throws away what it renders while nobody listens */
    GstElement *e = gst_bin_get_by_name (GST_BIN (sessions[0].pipeline),
        "enc");
    gint64 until = g_get_monotonic_time () + opt.timeout_s * G_USEC_PER_SEC;
    guint handles = 0;

    while (handles == 0 && g_get_monotonic_time () < until) {
      g_object_get (e, "num-handles", &handles, NULL);
      if (handles == 0)
        g_usleep (5000);
    }
    gst_object_unref (e);
  }
  for (k = 0; k < opt.sessions; k++)
    sessions[k].pusher = g_thread_new ("pusher", pusher, &sessions[k]);

  /* every session warmed up (its first frames answered), or one failed */
  end = g_get_monotonic_time () + opt.timeout_s * G_TIME_SPAN_SECOND;
  g_mutex_lock (&start_lock);
  while (n_warm < opt.sessions) {
    gboolean failed = FALSE;

    for (k = 0; k < opt.sessions; k++)
      failed |= sessions[k].pushed_all || sessions[k].error != NULL;
    if (failed || g_get_monotonic_time () > end)
      break;
    g_cond_wait_until (&start_cond, &start_lock,
        g_get_monotonic_time () + 20 * G_TIME_SPAN_MILLISECOND);
  }
  t0 = g_get_monotonic_time () * 1000;
  cpu0 = bench_cpu_seconds ();
  for (k = 0; k < opt.sessions; k++)
    sessions[k].bytes_at_start = vsockenc_bytes (&sessions[k]);
  deadline = g_get_monotonic_time () +
      (gint64) (opt.max_seconds * G_USEC_PER_SEC);
  started = TRUE;
  g_cond_broadcast (&start_cond);
  g_mutex_unlock (&start_lock);

  for (k = 0; k < opt.sessions; k++) {
    Session *s = &sessions[k];

    g_thread_join (s->pusher);
    g_mutex_lock (&s->lock);
    while (!s->error && !(s->pushed_all && (s->n_out >= s->n_sent ||
                (s->eos && !is_sender_of_peer ()))))
      if (!g_cond_wait_until (&s->cond, &s->lock, end))
        break;
    if (!s->error && s->n_out < s->n_sent && !s->eos)
      s->error = g_strdup_printf ("only %d of %d frames came back in time",
          s->n_out, s->n_sent);
    g_mutex_unlock (&s->lock);
    if (s->error) {
      fprintf (stderr, "bench-guest: session %d: %s\n", k, s->error);
      ok = FALSE;
    }
  }
  cpu1 = bench_cpu_seconds ();
  if (!ok)
    _exit (1);

  for (k = 0; k < opt.sessions; k++) {
    Session *s = &sessions[k];

    s->window = opt.mode == MODE_VSOCKENC ? (gint) vsockenc_in_flight (s) :
        opt.mode == MODE_X264 ? 1 : opt.window;
    if (s->window < 1)
      s->window = 1;
    for (i = opt.warmup; i < s->n_sent; i++) {
      gint64 start = s->in_at[i];
      /* K: the window the frame met (vsockenc's moves), else the fixed one */
      gint kw = s->k_at[i] > 0 ? s->k_at[i] : s->window;
      gdouble ms;

      if (!s->in_at[i] || !s->out_at[i])
        continue;               /* dropped by the host: no access unit */
      if (i >= kw && s->out_at[i - kw] > start)
        start = s->out_at[i - kw];
      ms = (s->out_at[i] - start) / 1e6;
      k_sum += kw;
      g_array_append_val (lat, ms);
      t1 = MAX (t1, s->out_at[i]);
      n_total++;
    }
    if (opt.mode == MODE_VSOCKENC)
      bytes += vsockenc_bytes (s) - s->bytes_at_start;
    else if (opt.mode == MODE_GDP_SEND) {
      GstElement *e = gst_bin_get_by_name (GST_BIN (s->pipeline), "enc");
      guint64 served = 0;

      g_object_get (e, "bytes-served", &served, NULL);
      bytes += served;          /* every frame, warm-up included */
      gst_object_unref (e);
    }
  }
  if (n_total == 0 || t1 <= t0) {
    fprintf (stderr, "bench-guest: no frame measured (sent %d, out %d)\n",
        sessions[0].n_sent, sessions[0].n_out);
    return 1;
  }
  g_array_sort (lat, cmp_double);

  json = g_string_new (NULL);
  g_string_append_printf (json, "{\"frames\": %" G_GUINT64_FORMAT
      ", \"seconds\": %.6f, \"fps\": %.3f, \"p50_ms\": %.4f, "
      "\"p99_ms\": %.4f, \"cpu_s_per_frame\": %.9f, \"frame_bytes\": %"
      G_GSIZE_FORMAT ", \"in_flight\": %d, \"window_mean\": %.2f, "
      "\"bytes_per_frame\": ", n_total,
      (t1 - t0) / 1e9, n_total / ((t1 - t0) / 1e9),
      g_array_index (lat, gdouble, lat->len / 2),
      g_array_index (lat, gdouble, MIN (lat->len * 99 / 100, lat->len - 1)),
      (cpu1 - cpu0) / n_total, GST_VIDEO_INFO_SIZE (&vinfo),
      sessions[0].window, (gdouble) k_sum / n_total);
  if (opt.mode == MODE_VSOCKENC)
    g_string_append_printf (json, "%.1f", (gdouble) bytes / n_total);
  else if (opt.mode == MODE_GDP_SEND)
    g_string_append_printf (json, "%.1f",
        (gdouble) bytes / (n_total + opt.warmup * opt.sessions));
  else if (opt.mode == MODE_SHM_SEND)
    g_string_append_printf (json, "%" G_GSIZE_FORMAT,
        GST_VIDEO_INFO_SIZE (&vinfo));
  else
    g_string_append (json, "0");
  g_string_append (json, ", \"latencies_ms\": [");
  for (i = 0; i < (gint) lat->len; i++)
    g_string_append_printf (json, "%s%.4f", i ? ", " : "",
        g_array_index (lat, gdouble, i));
  g_string_append (json, "]}");
  printf ("%s\n", json->str);
  fflush (stdout);
  g_string_free (json, TRUE);
  if (is_sender_of_peer ()) {
    /* the receiver ends when we hang up: keep it alive until the driver
     * has read its CPU time and peak RSS and closes our stdin (the
     * watchdog bounds the wait) */
    char c;

    while (read (0, &c, 1) > 0 || errno == EINTR);
  }

  for (k = 0; k < opt.sessions; k++)
    gst_element_set_state (sessions[k].pipeline, GST_STATE_NULL);
  return 0;
}

int
main (int argc, char **argv)
{
  gchar *mode = NULL, *format = NULL;
  GError *err = NULL;
  GOptionEntry entries[] = {
    {"mode", 0, 0, G_OPTION_ARG_STRING, &mode,
        "vsockenc, x264, shm-send, shm-recv, gdp-send, gdp-recv", "MODE"},
    {"width", 0, 0, G_OPTION_ARG_INT, &opt.width, "Frame width", "W"},
    {"height", 0, 0, G_OPTION_ARG_INT, &opt.height, "Frame height", "H"},
    {"format", 0, 0, G_OPTION_ARG_STRING, &format, "NV12 or BGRx", "F"},
    {"socket-path", 0, 0, G_OPTION_ARG_STRING, &opt.socket_path,
        "vsockenc socket-path", "PATH"},
    {"tcp-host", 0, 0, G_OPTION_ARG_STRING, &opt.tcp_host,
        "vsockenc tcp-host, gdp host", "HOST"},
    {"tcp-port", 0, 0, G_OPTION_ARG_INT, &opt.tcp_port,
        "vsockenc tcp-port, gdp port", "PORT"},
    {"max-in-flight", 0, 0, G_OPTION_ARG_INT, &opt.max_in_flight,
        "vsockenc max-in-flight", "N"},
    {"pin-window", 0, 0, G_OPTION_ARG_NONE, &opt.pin_window,
        "vsockenc adaptive-window=false: always max-in-flight", NULL},
    {"sessions", 0, 0, G_OPTION_ARG_INT, &opt.sessions,
        "Concurrent pipelines (vsockenc)", "N"},
    {"frames", 0, 0, G_OPTION_ARG_INT, &opt.frames,
        "Frames per session at most, warm-up included", "N"},
    {"warmup", 0, 0, G_OPTION_ARG_INT, &opt.warmup,
        "Frames not measured", "N"},
    {"max-seconds", 0, 0, G_OPTION_ARG_DOUBLE, &opt.max_seconds,
        "Stop pushing after this long (measured part)", "S"},
    {"timeout", 0, 0, G_OPTION_ARG_INT, &opt.timeout_s,
        "Exit with status 3 after this long, whatever happens", "S"},
    {"credit-fd", 0, 0, G_OPTION_ARG_INT, &opt.credit_fd,
        "Peers: pipe to the other process (read by senders)", "FD"},
    {"window", 0, 0, G_OPTION_ARG_INT, &opt.window,
        "Peers: frames in flight", "N"},
    {"shm-path", 0, 0, G_OPTION_ARG_STRING, &opt.shm_path,
        "shmsink/shmsrc socket path", "PATH"},
    {NULL}
  };
  GOptionContext *ctx = g_option_context_new ("- guest side of bench/run");

  g_option_context_add_main_entries (ctx, entries, NULL);
  g_option_context_add_group (ctx, gst_init_get_option_group ());
  if (!g_option_context_parse (ctx, &argc, &argv, &err)) {
    fprintf (stderr, "bench-guest: %s\n", err->message);
    return 2;
  }
  g_option_context_free (ctx);
  gst_init (&argc, &argv);

  if (!mode || g_str_equal (mode, "vsockenc"))
    opt.mode = MODE_VSOCKENC;
  else if (g_str_equal (mode, "x264"))
    opt.mode = MODE_X264;
  else if (g_str_equal (mode, "shm-send"))
    opt.mode = MODE_SHM_SEND;
  else if (g_str_equal (mode, "shm-recv"))
    opt.mode = MODE_SHM_RECV;
  else if (g_str_equal (mode, "gdp-send"))
    opt.mode = MODE_GDP_SEND;
  else if (g_str_equal (mode, "gdp-recv"))
    opt.mode = MODE_GDP_RECV;
  else {
    fprintf (stderr, "bench-guest: unknown mode %s\n", mode);
    return 2;
  }
  opt.format = gst_video_format_from_string (format ? format : "NV12");
  if (opt.format != GST_VIDEO_FORMAT_NV12 &&
      opt.format != GST_VIDEO_FORMAT_BGRx) {
    fprintf (stderr, "bench-guest: format must be NV12 or BGRx\n");
    return 2;
  }
  if (!opt.tcp_host)
    opt.tcp_host = g_strdup ("127.0.0.1");
  if (opt.frames <= opt.warmup || opt.sessions < 1 || opt.window < 1
      || opt.timeout_s < 1 || opt.width < 16 || opt.height < 16) {
    fprintf (stderr, "bench-guest: bad frames/warmup/sessions/window\n");
    return 2;
  }
  if ((opt.mode == MODE_SHM_SEND || opt.mode == MODE_SHM_RECV) && !opt.shm_path) {
    fprintf (stderr, "bench-guest: --shm-path needed\n");
    return 2;
  }
  if ((is_sender_of_peer () || opt.mode == MODE_SHM_RECV ||
          opt.mode == MODE_GDP_RECV) && opt.credit_fd < 0) {
    fprintf (stderr, "bench-guest: --credit-fd needed\n");
    return 2;
  }
  if (is_sender_of_peer () && opt.sessions != 1) {
    fprintf (stderr, "bench-guest: peers run one session\n");
    return 2;
  }
  gst_video_info_set_format (&vinfo, opt.format, opt.width, opt.height);
  frame_duration = gst_util_uint64_scale_int (GST_SECOND, 1, 30);
  g_thread_unref (g_thread_new ("watchdog", watchdog, NULL));

  if (opt.mode == MODE_SHM_RECV || opt.mode == MODE_GDP_RECV)
    return run_receiver ();
  return run_sender ();
}
