/* bench-scanout-sub: N v2 scanout subscribers (SUBSCRIBE2, docs/protocol.md
 * section 11.2) in one process, one thread each, timing every frame.
 *
 *   bench-scanout-sub --connect unix:PATH [--scanout K] [--subscribers N]
 *                     [--bitrate BPS] [--bitrate-step BPS] [--timeout S]
 *
 * --bitrate-step: subscriber i asks BPS + i * STEP, so that each has an
 * encoder of its own on the bridge (a rendition; issue 22).
 *
 * Each subscriber reads SCANOUT_FRAME messages; a frame's latency is
 * clock_gettime(CLOCK_MONOTONIC) once its last byte is read minus its
 * capture_time (the host's CLOCK_MONOTONIC of the flush: same machine,
 * same clock). Commands on stdin, one per line, for bench/run:
 *   mark    forget what was counted so far (prints "MARKED")
 *   report  print one line of JSON over the frames since the mark, exit
 * (end of input = report). It prints "READY" once every subscriber has its
 * first frame. REPEAT frames (the quiet-interval re-encodes of a static
 * screen) are counted apart and not timed: they are not flips.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "hxfr-protocol.h"
#include "hxfr-scanout.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#define MAX_SUBS 64
#define MAX_SAMPLES 200000

typedef struct
{
  int fd;
  int index;
  /* under lock */
  guint64 frames, repeats, idrs, disconts, bytes;
  guint64 frames_total;
  double *lat_ms;               /* non-repeat frames since the mark */
  double *enc_ms;
  guint n;
  guint64 first_capture, last_capture;
  guint32 last_seq;
  gboolean have_seq;
  guint64 seq_gaps;
  gboolean ended;
  char end_text[300];
} Sub;

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static Sub subs[MAX_SUBS];
static int n_subs = 1;
static double mark_time;

static guint64
now_ns (void)
{
  struct timespec ts;

  clock_gettime (CLOCK_MONOTONIC, &ts);
  return (guint64) ts.tv_sec * 1000000000ull + ts.tv_nsec;
}

static gboolean
read_all (int fd, void *buf, size_t len)
{
  guint8 *p = buf;

  while (len) {
    ssize_t n = read (fd, p, len);

    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0)
      return FALSE;
    p += n;
    len -= n;
  }
  return TRUE;
}

static gboolean
write_all (int fd, const void *buf, size_t len)
{
  const guint8 *p = buf;

  while (len) {
    ssize_t n = write (fd, p, len);

    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0)
      return FALSE;
    p += n;
    len -= n;
  }
  return TRUE;
}

static int
connect_unix (const char *path)
{
  struct sockaddr_un sa;
  int fd = socket (AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

  memset (&sa, 0, sizeof (sa));
  sa.sun_family = AF_UNIX;
  if (fd < 0 || strlen (path) >= sizeof (sa.sun_path))
    return -1;
  strcpy (sa.sun_path, path);
  if (connect (fd, (struct sockaddr *) &sa, sizeof (sa)) < 0) {
    close (fd);
    return -1;
  }
  return fd;
}

static gboolean
subscribe (Sub * s, guint32 scanout, guint32 bitrate)
{
  guint8 msg[HXFR_HEADER_SIZE + HXFR_SUBSCRIBE2_SIZE];
  guint8 ack[HXFR_SUBSCRIBE2_ACK_SIZE + HXFR_ERROR_TEXT_SIZE + 64];
  HxfrHeader h = { HXFR_MSG_SUBSCRIBE2, 0, 0, HXFR_SUBSCRIBE2_SIZE };
  HxfrSubscribe2 sub = { 2, 2, HXFR_CODEC_H264, scanout, bitrate, 0, 0 };
  HxfrSubscribe2Ack a;
  GError *err = NULL;

  hxfr_header_write (msg, &h);
  hxfr_subscribe2_write (&sub, msg + HXFR_HEADER_SIZE);
  if (!write_all (s->fd, msg, sizeof (msg))
      || !read_all (s->fd, msg, HXFR_HEADER_SIZE)
      || !hxfr_header_parse (msg, &h, &err)) {
    fprintf (stderr, "subscriber %d: no answer to SUBSCRIBE2%s%s\n",
        s->index, err ? ": " : "", err ? err->message : "");
    return FALSE;
  }
  if (h.payload_size > sizeof (ack)
      || !read_all (s->fd, ack, h.payload_size)) {
    fprintf (stderr, "subscriber %d: bad answer (type 0x%02x, %u bytes)\n",
        s->index, h.type, h.payload_size);
    return FALSE;
  }
  if (h.type != HXFR_MSG_SUBSCRIBE2_ACK
      || !hxfr_subscribe2_ack_parse (ack, h.payload_size, &a, NULL)) {
    fprintf (stderr, "subscriber %d: refused (type 0x%02x): %.*s\n",
        s->index, h.type, h.payload_size > 8 ? (int) h.payload_size - 8 : 0,
        (const char *) ack + 8);
    return FALSE;
  }
  pthread_mutex_lock (&lock);
  printf ("ACK %d %ux%u encoder=%s\n", s->index, a.width, a.height, a.encoder);
  fflush (stdout);
  pthread_mutex_unlock (&lock);
  return TRUE;
}

static void *
sub_thread (void *data)
{
  Sub *s = data;
  guint8 hdr[HXFR_HEADER_SIZE], fixed[HXFR_SCANOUT_FRAME_SIZE];
  size_t cap = 1 << 20;
  guint8 *au = malloc (cap);

  for (;;) {
    HxfrHeader h;
    HxfrScanoutFrame f;
    guint64 t;
    size_t rest;

    if (!read_all (s->fd, hdr, sizeof (hdr))
        || !hxfr_header_parse (hdr, &h, NULL))
      break;
    if (h.type != HXFR_MSG_SCANOUT_FRAME) {
      size_t n = MIN (h.payload_size, sizeof (s->end_text) - 1);
      guint8 tmp[sizeof (s->end_text)];

      if (h.payload_size > sizeof (tmp) || !read_all (s->fd, tmp, n))
        break;
      pthread_mutex_lock (&lock);
      if (h.type == HXFR_MSG_SCANOUT_END && n >= 8)
        snprintf (s->end_text, sizeof (s->end_text), "SCANOUT_END %u: %.*s",
            tmp[0] | tmp[1] << 8, (int) n - 8, tmp + 8);
      else
        snprintf (s->end_text, sizeof (s->end_text), "message 0x%02x", h.type);
      pthread_mutex_unlock (&lock);
      if (h.type == HXFR_MSG_SCANOUT_END || h.type == HXFR_MSG_ERROR)
        break;
      continue;
    }
    if (h.payload_size < HXFR_SCANOUT_FRAME_SIZE
        || !read_all (s->fd, fixed, sizeof (fixed)))
      break;
    rest = h.payload_size - HXFR_SCANOUT_FRAME_SIZE;
    if (rest > cap) {
      cap = rest;
      au = realloc (au, cap);
    }
    if (!read_all (s->fd, au, rest))
      break;
    t = now_ns ();
    hxfr_scanout_frame_parse (fixed, sizeof (fixed), &f, NULL);
    pthread_mutex_lock (&lock);
    s->frames_total++;
    if (s->have_seq && f.seq != s->last_seq + 1)
      s->seq_gaps++;
    s->last_seq = f.seq;
    s->have_seq = TRUE;
    s->bytes += h.payload_size;
    if (f.frame_flags & HXFR_SCANOUT_FRAME_KEYFRAME)
      s->idrs++;
    if (f.frame_flags & HXFR_SCANOUT_FRAME_DISCONT)
      s->disconts++;
    if (f.frame_flags & HXFR_SCANOUT_FRAME_REPEAT) {
      s->repeats++;
    } else {
      s->frames++;
      if (!s->first_capture)
        s->first_capture = f.capture_time;
      s->last_capture = f.capture_time;
      if (s->n < MAX_SAMPLES) {
        s->lat_ms[s->n] = ((gint64) (t - f.capture_time)) / 1e6;
        s->enc_ms[s->n] = f.encode_us / 1e3;
        s->n++;
      }
    }
    pthread_mutex_unlock (&lock);
  }
  pthread_mutex_lock (&lock);
  s->ended = TRUE;
  if (!s->end_text[0])
    snprintf (s->end_text, sizeof (s->end_text), "connection closed");
  pthread_mutex_unlock (&lock);
  free (au);
  return NULL;
}

static int
cmp_double (const void *a, const void *b)
{
  double x = *(const double *) a, y = *(const double *) b;

  return x < y ? -1 : x > y;
}

static double
pct (double *v, guint n, double p)
{
  if (!n)
    return -1;
  return v[MIN (n - 1, (guint) (p * n))];
}

static void
mark (void)
{
  int i;

  pthread_mutex_lock (&lock);
  for (i = 0; i < n_subs; i++) {
    Sub *s = &subs[i];

    s->frames = s->repeats = s->idrs = s->disconts = s->bytes = 0;
    s->seq_gaps = 0;
    s->n = 0;
    s->first_capture = s->last_capture = 0;
  }
  mark_time = now_ns () / 1e9;
  printf ("MARKED\n");
  fflush (stdout);
  pthread_mutex_unlock (&lock);
}

static void
report (void)
{
  int i;
  guint n = 0, k;
  double *lat, *enc;
  guint64 min_frames = G_MAXUINT64, max_frames = 0;
  Sub *s0 = &subs[0];

  pthread_mutex_lock (&lock);
  for (i = 0; i < n_subs; i++)
    n += subs[i].n;
  lat = malloc (sizeof (double) * (n + 1));
  enc = malloc (sizeof (double) * (n + 1));
  for (i = 0, k = 0; i < n_subs; i++) {
    memcpy (lat + k, subs[i].lat_ms, sizeof (double) * subs[i].n);
    memcpy (enc + k, subs[i].enc_ms, sizeof (double) * subs[i].n);
    k += subs[i].n;
    min_frames = MIN (min_frames, subs[i].frames);
    max_frames = MAX (max_frames, subs[i].frames);
  }
  qsort (lat, n, sizeof (double), cmp_double);
  qsort (enc, n, sizeof (double), cmp_double);
  printf ("{\"subscribers\": %d, \"frames\": %" G_GUINT64_FORMAT
      ", \"frames_min\": %" G_GUINT64_FORMAT ", \"frames_max\": %"
      G_GUINT64_FORMAT ", \"repeats\": %" G_GUINT64_FORMAT ", \"idrs\": %"
      G_GUINT64_FORMAT ", \"disconts\": %" G_GUINT64_FORMAT
      ", \"seq_gaps\": %" G_GUINT64_FORMAT ", \"bytes\": %" G_GUINT64_FORMAT
      ", \"capture_span_s\": %.4f, \"since_mark_s\": %.3f, \"samples\": %u,"
      " \"p50_ms\": %.3f, \"p99_ms\": %.3f, \"max_ms\": %.3f,"
      " \"encode_p50_ms\": %.3f, \"encode_p99_ms\": %.3f, \"ended\": [",
      n_subs, s0->frames, min_frames, max_frames, s0->repeats, s0->idrs,
      s0->disconts, s0->seq_gaps, s0->bytes,
      (s0->last_capture - s0->first_capture) / 1e9,
      now_ns () / 1e9 - mark_time, n, pct (lat, n, 0.5), pct (lat, n, 0.99),
      n ? lat[n - 1] : -1, pct (enc, n, 0.5), pct (enc, n, 0.99));
  for (i = 0; i < n_subs; i++)
    printf ("%s\"%s\"", i ? ", " : "", subs[i].ended ? subs[i].end_text : "");
  printf ("]}\n");
  fflush (stdout);
  pthread_mutex_unlock (&lock);
  free (lat);
  free (enc);
}

static void *
watchdog (void *data)
{
  sleep (GPOINTER_TO_UINT (data));
  fprintf (stderr, "bench-scanout-sub: timed out\n");
  report ();
  _exit (2);
}

int
main (int argc, char **argv)
{
  const char *addr = NULL;
  guint32 scanout = 0, bitrate = 0, bitrate_step = 0;
  guint timeout = 120;
  pthread_t th[MAX_SUBS], wd;
  char line[128];
  int i;

  for (i = 1; i + 1 < argc; i += 2) {
    if (!strcmp (argv[i], "--connect"))
      addr = argv[i + 1];
    else if (!strcmp (argv[i], "--scanout"))
      scanout = atoi (argv[i + 1]);
    else if (!strcmp (argv[i], "--subscribers"))
      n_subs = CLAMP (atoi (argv[i + 1]), 1, MAX_SUBS);
    else if (!strcmp (argv[i], "--bitrate"))
      bitrate = atoi (argv[i + 1]);
    else if (!strcmp (argv[i], "--bitrate-step"))
      bitrate_step = atoi (argv[i + 1]);
    else if (!strcmp (argv[i], "--timeout"))
      timeout = atoi (argv[i + 1]);
    else
      break;
  }
  if (i < argc || !addr || strncmp (addr, "unix:", 5)) {
    fprintf (stderr, "usage: %s --connect unix:PATH [--scanout K] "
        "[--subscribers N] [--bitrate BPS] [--bitrate-step BPS] "
        "[--timeout S]\n", argv[0]);
    return 1;
  }
  pthread_create (&wd, NULL, watchdog, GUINT_TO_POINTER (timeout));
  for (i = 0; i < n_subs; i++) {
    Sub *s = &subs[i];

    s->index = i;
    s->lat_ms = malloc (sizeof (double) * MAX_SAMPLES);
    s->enc_ms = malloc (sizeof (double) * MAX_SAMPLES);
    s->fd = connect_unix (addr + 5);
    if (s->fd < 0) {
      fprintf (stderr, "connect %s: %s\n", addr, strerror (errno));
      return 1;
    }
    if (!subscribe (s, scanout, bitrate + i * bitrate_step))
      return 1;
  }
  for (i = 0; i < n_subs; i++)
    pthread_create (&th[i], NULL, sub_thread, &subs[i]);
  for (;;) {
    gboolean all = TRUE;

    pthread_mutex_lock (&lock);
    for (i = 0; i < n_subs; i++)
      all = all && (subs[i].frames_total > 0 || subs[i].ended);
    pthread_mutex_unlock (&lock);
    if (all)
      break;
    usleep (2000);
  }
  printf ("READY\n");
  fflush (stdout);
  mark_time = now_ns () / 1e9;
  while (fgets (line, sizeof (line), stdin)) {
    if (!strncmp (line, "mark", 4))
      mark ();
    else if (!strncmp (line, "report", 6))
      break;
  }
  report ();
  /* the threads block in read(): the bridge sees us go */
  _exit (0);
}
