/* bench-pump: the transport ceiling of this machine.
 *
 * A plain C client/server (blocking read/write, no GStreamer, no GLib)
 * moving the bytes a v2 guest moves for one frame (12-byte header, 72-byte
 * FRAME_REQUEST2, the pixels) over a unix or tcp loopback socket, with one
 * small answer per frame, and at most --in-flight frames unanswered: the
 * same pattern as vsockenc -> helix-host-bridge with nothing else around
 * it. The bytes are opaque here: both sides are told the sizes, nothing is
 * parsed (the protocol lives in lib/hxfr only).
 *
 *   bench-pump server --listen unix:PATH|tcp:HOST:PORT --frame-bytes N
 *       [--answer-bytes M] [--timeout S]
 *   bench-pump client --connect unix:PATH|tcp:HOST:PORT --frame-bytes N
 *       [--answer-bytes M] [--frames F] [--warmup W] [--max-seconds S]
 *       [--in-flight K]
 *
 * The client prints one JSON object: fps, latency p50/p99 (ms, from the
 * moment a frame may go, i.e. a slot in the window is free, to its answer
 * read: the same definition as bench-guest's), CPU seconds per frame
 * of the client, bytes per frame both ways.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "bench-cpu.h"

#define HEADER_AND_REQUEST (12 + 72)
#define N_DISTINCT 8
#define DEFAULT_ANSWER (12 + 40 + 16)   /* FRAME_RESPONSE2 + a tiny AU */

static int64_t
now_ns (void)
{
  struct timespec ts;

  clock_gettime (CLOCK_MONOTONIC, &ts);
  return (int64_t) ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void
die (const char *what)
{
  fprintf (stderr, "bench-pump: %s: %s\n", what, strerror (errno));
  exit (2);
}

/* "unix:PATH" or "tcp:HOST:PORT"; fills @ss, returns its length. */
static socklen_t
parse_address (const char *spec, struct sockaddr_storage *ss)
{
  memset (ss, 0, sizeof (*ss));
  if (strncmp (spec, "unix:", 5) == 0) {
    struct sockaddr_un *sun = (struct sockaddr_un *) ss;

    if (strlen (spec + 5) >= sizeof (sun->sun_path)) {
      fprintf (stderr, "bench-pump: path too long\n");
      exit (2);
    }
    sun->sun_family = AF_UNIX;
    strcpy (sun->sun_path, spec + 5);
    return sizeof (*sun);
  }
  if (strncmp (spec, "tcp:", 4) == 0) {
    struct sockaddr_in *sin = (struct sockaddr_in *) ss;
    char host[256];
    const char *colon = strrchr (spec + 4, ':');

    if (!colon || (size_t) (colon - spec - 4) >= sizeof (host)) {
      fprintf (stderr, "bench-pump: bad address %s\n", spec);
      exit (2);
    }
    memcpy (host, spec + 4, colon - spec - 4);
    host[colon - spec - 4] = '\0';
    sin->sin_family = AF_INET;
    sin->sin_port = htons (atoi (colon + 1));
    if (inet_pton (AF_INET, host, &sin->sin_addr) != 1) {
      fprintf (stderr, "bench-pump: only numeric IPv4 hosts: %s\n", host);
      exit (2);
    }
    return sizeof (*sin);
  }
  fprintf (stderr, "bench-pump: address must be unix:PATH or tcp:HOST:PORT\n");
  exit (2);
}

static void
set_nodelay (int fd, const struct sockaddr_storage *ss)
{
  int one = 1;

  /* as lib/hxfr/hxfr-transport.c does for tcp */
  if (ss->ss_family == AF_INET)
    setsockopt (fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof (one));
}

static int
read_exact (int fd, void *buf, size_t len)
{
  char *p = buf;

  while (len > 0) {
    ssize_t n = read (fd, p, len);

    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0)
      return n == 0 ? 0 : -1;
    p += n;
    len -= n;
  }
  return 1;
}

static int
writev_all (int fd, struct iovec *iov, int n_iov)
{
  while (n_iov > 0) {
    ssize_t n = writev (fd, iov, n_iov);

    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0)
      return -1;
    while (n_iov > 0 && (size_t) n >= iov->iov_len) {
      n -= iov->iov_len;
      iov++;
      n_iov--;
    }
    if (n_iov > 0) {
      iov->iov_base = (char *) iov->iov_base + n;
      iov->iov_len -= n;
    }
  }
  return 0;
}

static int
run_server (const char *listen_spec, size_t frame_bytes, size_t answer_bytes,
    int timeout_s)
{
  struct sockaddr_storage ss;
  socklen_t len = parse_address (listen_spec, &ss);
  int lfd, fd, one = 1;
  char *frame, *answer;
  struct pollfd pfd;

  lfd = socket (ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (lfd < 0)
    die ("socket");
  if (ss.ss_family == AF_UNIX)
    unlink (((struct sockaddr_un *) &ss)->sun_path);
  else
    setsockopt (lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof (one));
  if (bind (lfd, (struct sockaddr *) &ss, len) < 0)
    die ("bind");
  if (listen (lfd, 4) < 0)
    die ("listen");
  /* the driver waits for this line before starting the client */
  printf ("listening\n");
  fflush (stdout);

  pfd.fd = lfd;
  pfd.events = POLLIN;
  if (poll (&pfd, 1, timeout_s * 1000) <= 0) {
    fprintf (stderr, "bench-pump: no client within %d s\n", timeout_s);
    return 2;
  }
  fd = accept (lfd, NULL, NULL);
  if (fd < 0)
    die ("accept");
  set_nodelay (fd, &ss);
  /* no client may hold the server past the driver's own bound */
  alarm (timeout_s);

  frame = malloc (frame_bytes);
  answer = calloc (1, answer_bytes);
  if (!frame || !answer)
    die ("malloc");
  for (;;) {
    struct iovec iov = { answer, answer_bytes };
    int r = read_exact (fd, frame, frame_bytes);

    if (r == 0)
      break;
    if (r < 0)
      die ("read");
    if (writev_all (fd, &iov, 1) < 0)
      die ("write");
  }
  close (fd);
  close (lfd);
  if (ss.ss_family == AF_UNIX)
    unlink (((struct sockaddr_un *) &ss)->sun_path);
  free (frame);
  free (answer);
  /* stay alive, as the bridge does, so the driver can read our CPU time
   * and peak RSS; SIGTERM (or the alarm) ends us */
  for (;;)
    pause ();
  return 0;
}

typedef struct
{
  int fd;
  size_t answer_bytes;
  long n_frames;
  int64_t *sent_at;
  int64_t *answered_at;
  pthread_mutex_t lock;
  pthread_cond_t cond;
  long answered;                /* protected by lock */
  int failed;                   /* protected by lock */
} Client;

static void *
reader_thread (void *data)
{
  Client *c = data;
  char *answer = malloc (c->answer_bytes);
  long i;

  for (i = 0; i < c->n_frames; i++) {
    if (read_exact (c->fd, answer, c->answer_bytes) != 1) {
      pthread_mutex_lock (&c->lock);
      c->failed = 1;
      pthread_cond_signal (&c->cond);
      pthread_mutex_unlock (&c->lock);
      break;
    }
    c->answered_at[i] = now_ns ();
    pthread_mutex_lock (&c->lock);
    c->answered = i + 1;
    pthread_cond_signal (&c->cond);
    pthread_mutex_unlock (&c->lock);
  }
  free (answer);
  return NULL;
}

static int
cmp_i64 (const void *a, const void *b)
{
  int64_t x = *(const int64_t *) a, y = *(const int64_t *) b;

  return x < y ? -1 : x > y;
}

static int
run_client (const char *connect_spec, size_t frame_bytes, size_t answer_bytes,
    long n_frames, long warmup, double max_seconds, int in_flight)
{
  struct sockaddr_storage ss;
  socklen_t len = parse_address (connect_spec, &ss);
  Client c = { 0 };
  pthread_t reader;
  char *frame[N_DISTINCT];
  int64_t start, deadline, t_first = 0, t_last;
  double cpu_first = 0, cpu_last;
  long i, sent = 0, n, k;
  int64_t *lat;

  c.fd = socket (ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (c.fd < 0)
    die ("socket");
  if (connect (c.fd, (struct sockaddr *) &ss, len) < 0)
    die ("connect");
  set_nodelay (c.fd, &ss);

  /* a cycle of frames filled before the clock starts, as bench-guest
   * does: generating them costs nothing, and they do not all sit in the
   * cache */
  for (k = 0; k < N_DISTINCT; k++) {
    frame[k] = malloc (frame_bytes);
    if (!frame[k])
      die ("malloc");
    for (i = 0; i < (long) frame_bytes; i++)
      frame[k][i] = (char) (i * 7 + k);
  }

  c.answer_bytes = answer_bytes;
  c.n_frames = n_frames;
  c.sent_at = calloc (n_frames, sizeof (int64_t));
  c.answered_at = calloc (n_frames, sizeof (int64_t));
  pthread_mutex_init (&c.lock, NULL);
  pthread_cond_init (&c.cond, NULL);
  if (pthread_create (&reader, NULL, reader_thread, &c) != 0)
    die ("pthread_create");

  start = now_ns ();
  deadline = start + (int64_t) (max_seconds * 1e9);
  for (i = 0; i < n_frames; i++) {
    struct iovec iov = { frame[i % N_DISTINCT], frame_bytes };

    pthread_mutex_lock (&c.lock);
    while (!c.failed && i - c.answered >= in_flight)
      pthread_cond_wait (&c.cond, &c.lock);
    pthread_mutex_unlock (&c.lock);
    if (c.failed)
      break;
    if (i == warmup) {
      t_first = now_ns ();
      cpu_first = bench_cpu_seconds ();
    }
    if (i > warmup && now_ns () > deadline)
      break;
    c.sent_at[i] = now_ns ();
    if (writev_all (c.fd, &iov, 1) < 0)
      die ("write");
    sent = i + 1;
  }
  pthread_mutex_lock (&c.lock);
  while (!c.failed && c.answered < sent)
    pthread_cond_wait (&c.cond, &c.lock);
  pthread_mutex_unlock (&c.lock);
  t_last = now_ns ();
  cpu_last = bench_cpu_seconds ();
  /* the reader still waits for frames never sent: end it by closing */
  shutdown (c.fd, SHUT_RDWR);
  pthread_join (reader, NULL);
  close (c.fd);

  if (c.failed && c.answered < sent) {
    fprintf (stderr, "bench-pump: connection lost after %ld answers\n",
        c.answered);
    return 1;
  }
  n = sent - warmup;
  if (n <= 0) {
    fprintf (stderr, "bench-pump: no frame past the warm-up\n");
    return 1;
  }
  lat = malloc (n * sizeof (int64_t));
  for (k = 0; k < n; k++)
    lat[k] = c.answered_at[warmup + k] - c.sent_at[warmup + k];
  qsort (lat, n, sizeof (int64_t), cmp_i64);

  printf ("{\"frames\": %ld, \"seconds\": %.6f, \"fps\": %.3f, "
      "\"p50_ms\": %.4f, \"p99_ms\": %.4f, \"cpu_s_per_frame\": %.9f, "
      "\"bytes_per_frame\": %zu, \"latencies_ms\": [", n,
      (t_last - t_first) / 1e9, n / ((t_last - t_first) / 1e9),
      lat[n / 2] / 1e6, lat[(n * 99) / 100 < n ? (n * 99) / 100 : n - 1] / 1e6,
      (cpu_last - cpu_first) / n, frame_bytes + answer_bytes);
  for (k = 0; k < n; k++)
    printf ("%s%.4f", k ? ", " : "", lat[k] / 1e6);
  printf ("]}\n");
  free (lat);
  for (k = 0; k < N_DISTINCT; k++)
    free (frame[k]);
  free (c.sent_at);
  free (c.answered_at);
  return 0;
}

static void
usage (void)
{
  fprintf (stderr,
      "usage: bench-pump server --listen ADDR --frame-bytes N "
      "[--answer-bytes M] [--timeout S]\n"
      "       bench-pump client --connect ADDR --frame-bytes N "
      "[--answer-bytes M] [--frames F] [--warmup W] [--max-seconds S] "
      "[--in-flight K]\n"
      "ADDR: unix:PATH or tcp:127.0.0.1:PORT; N counts pixels only "
      "(the 84 header+request bytes are added)\n");
  exit (2);
}

int
main (int argc, char **argv)
{
  const char *addr = NULL;
  size_t pixels = 0, answer = DEFAULT_ANSWER;
  long frames = 300, warmup = 20;
  double max_seconds = 5;
  int in_flight = 4, timeout_s = 60, i, server;

  if (argc < 2)
    usage ();
  server = strcmp (argv[1], "server") == 0;
  if (!server && strcmp (argv[1], "client") != 0)
    usage ();
  for (i = 2; i + 1 < argc; i += 2) {
    const char *k = argv[i], *v = argv[i + 1];

    if (!strcmp (k, "--listen") || !strcmp (k, "--connect"))
      addr = v;
    else if (!strcmp (k, "--frame-bytes"))
      pixels = strtoul (v, NULL, 10);
    else if (!strcmp (k, "--answer-bytes"))
      answer = strtoul (v, NULL, 10);
    else if (!strcmp (k, "--frames"))
      frames = atol (v);
    else if (!strcmp (k, "--warmup"))
      warmup = atol (v);
    else if (!strcmp (k, "--max-seconds"))
      max_seconds = atof (v);
    else if (!strcmp (k, "--in-flight"))
      in_flight = atoi (v);
    else if (!strcmp (k, "--timeout"))
      timeout_s = atoi (v);
    else
      usage ();
  }
  if (i != argc || !addr || pixels == 0 || answer == 0 || frames <= warmup
      || in_flight < 1 || timeout_s < 1)
    usage ();
  signal (SIGPIPE, SIG_IGN);
  if (server)
    return run_server (addr, HEADER_AND_REQUEST + pixels, answer, timeout_s);
  return run_client (addr, HEADER_AND_REQUEST + pixels, answer, frames,
      warmup, max_seconds, in_flight);
}
