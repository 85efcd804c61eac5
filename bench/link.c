/* bench-link: a VM-like link between a guest and the bridge, in user space.
 *
 * This machine's kernel has no netem qdisc, so the latency of a VM boundary
 * (vsock, user-mode networking) is modelled here: a relay that accepts the
 * guest's connection, opens one to the real server, and forwards every
 * chunk it reads in either direction no earlier than a fixed one-way delay
 * after it arrived, optionally paced to a bandwidth cap. The bytes are
 * opaque; nothing is parsed.
 *
 *   bench-link --listen unix:PATH|tcp:HOST:PORT
 *       --connect unix:PATH|tcp:HOST:PORT --delay-us D
 *       [--rate-mbytes R] [--timeout S]
 *
 * Per direction, a reader thread stamps each chunk with its due time and
 * queues it; a writer thread sleeps until that time and sends it. Chunks
 * wait in a fixed set of pipes per direction, so a slow receiver holds the
 * sender back (as a full socket buffer would) instead of growing memory.
 *
 * When a connection ends it prints one line to stderr, per direction: bytes,
 * chunks, how many of them the writer had to wait for (the others were
 * already due: the link was busy, its bandwidth not its delay set the
 * pace) and how late it woke for those (mean, max): how faithful the delay
 * was on a loaded machine. The whole process ends after --timeout seconds
 * whatever happens (SIGALRM).
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#define _GNU_SOURCE             /* splice, F_SETPIPE_SZ */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <time.h>
#include <unistd.h>

#include <gio/gio.h>
#include <gio/gunixsocketaddress.h>
#include <glib-unix.h>

/* The bytes in flight wait in pipes, moved in and out with splice(2): the
 * pages go from the sender's socket buffer to the receiver's without a
 * copy in this process (Linux 6.5 or newer for pipe -> unix socket), so
 * the relay adds as little CPU to the link as it can. Each chunk has a
 * pipe of its own until it is sent (with a pipe holding one chunk while
 * the next was spliced into it, the pipe came up short of what the splices
 * had reported and the stream stalled, on Linux 6.18 here). Per direction:
 * up to N_PIPES chunks of up to PIPE_BYTES in flight (about 10 MB: three
 * 1080p NV12 frames), and a reader with no free pipe waits, leaving the
 * bytes in the socket, as a full socket buffer would make a sender wait.
 * Over the user's pipe quota a pipe stays at its default size: smaller
 * chunks, slower, still correct. */
#define N_PIPES 48
#define PIPE_BYTES (256 * 1024)
/* every wait on a queue is bounded; the process alarm bounds the loops */
#define QUEUE_WAIT_US G_USEC_PER_SEC

typedef struct
{
  gint64 due_ns;                /* not to be sent before this */
  gsize len;                    /* 0: end of stream */
  guint pipe;                   /* which pipe holds the bytes */
} Chunk;

typedef struct
{
  const char *name;
  GSocket *src, *dst;
  gint64 delay_ns;
  double ns_per_byte;           /* 0: no bandwidth cap */
  gint64 wire_free_ns;          /* reader only: when the link is idle again */
  int pipes[N_PIPES][2];
  GAsyncQueue *busy;
  GAsyncQueue *free_pipes;      /* indices + 1 of the empty pipes */
  gboolean broken;              /* writer only: stop sending, drain */
  /* writer only, read after both threads are joined */
  guint64 bytes, chunks;
  guint64 sleeps;               /* chunks the writer waited for */
  gint64 late_sum_ns, late_max_ns;      /* over those: woken how late */
} Direction;

static gint64 opt_delay_us = -1;
static double opt_rate_mbytes = 0;
static gint opt_timeout_s = 120;

static gint64
now_ns (void)
{
  struct timespec ts;

  clock_gettime (CLOCK_MONOTONIC, &ts);
  return (gint64) ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* Waits until @t_ns and accounts how late the wake-up was. A chunk
 * already due (the writer was behind: the link is busy, not delayed)
 * costs no system call and is not counted. GLib has only relative sleeps;
 * an absolute one does not drift when the thread is woken late. */
static void
sleep_until (Direction * d, gint64 t_ns)
{
  struct timespec ts = { t_ns / 1000000000, t_ns % 1000000000 };
  gint64 late;

  if (now_ns () >= t_ns)
    return;
  while (clock_nanosleep (CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR);
  late = now_ns () - t_ns;
  d->sleeps++;
  d->late_sum_ns += late;
  d->late_max_ns = MAX (d->late_max_ns, late);
}

static Chunk *
pop_bounded (GAsyncQueue * q)
{
  Chunk *c;

  while (!(c = g_async_queue_timeout_pop (q, QUEUE_WAIT_US)));
  return c;
}

/* the time the last byte of @len bytes read now arrives at the far end */
static gint64
due_time (Direction * d, gsize len)
{
  gint64 t = now_ns ();

  if (d->ns_per_byte > 0) {
    d->wire_free_ns = MAX (t, d->wire_free_ns) +
        (gint64) (len * d->ns_per_byte);
    t = d->wire_free_ns;
  }
  return t + d->delay_ns;
}

static gpointer
reader (gpointer data)
{
  Direction *d = data;
  int src = g_socket_get_fd (d->src);

  for (;;) {
    Chunk *c = g_new (Chunk, 1);
    guint slot;
    gssize n;

    while (!(slot = GPOINTER_TO_UINT (g_async_queue_timeout_pop
                (d->free_pipes, QUEUE_WAIT_US))));
    slot--;
    do
      n = splice (src, NULL, d->pipes[slot][1], NULL, PIPE_BYTES,
          SPLICE_F_MOVE);
    while (n < 0 && errno == EINTR);
    if (n < 0 && errno != ECONNRESET)
      g_printerr ("bench-link: %s: splice in: %s\n", d->name,
          g_strerror (errno));
    c->len = n > 0 ? n : 0;
    c->pipe = slot;
    c->due_ns = due_time (d, c->len);
    g_async_queue_push (d->busy, c);
    if (n <= 0)
      return NULL;
  }
}

/* Moves *@len bytes from the pipe @from to @dst, or with @discard nowhere
 * (once @dst failed the pipe must still be emptied for its next chunk);
 * *@len is what is left. FALSE when @dst fails. */
static gboolean
splice_out (int from, int dst, gsize * len, gboolean discard)
{
  char scratch[65536];

  while (*len > 0) {
    gssize n = discard ? read (from, scratch, MIN (*len, sizeof (scratch))) :
        splice (from, NULL, dst, NULL, *len, SPLICE_F_MOVE);

    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0)
      return FALSE;
    *len -= n;
  }
  return TRUE;
}

static gpointer
writer (gpointer data)
{
  Direction *d = data;
  int dst = g_socket_get_fd (d->dst);

  for (;;) {
    Chunk *c = pop_bounded (d->busy);

    if (c->len == 0) {
      /* pass the end of stream on, as a half-close */
      g_socket_shutdown (d->dst, FALSE, TRUE, NULL);
      g_free (c);
      return NULL;
    }
    sleep_until (d, c->due_ns);
    d->chunks++;
    d->bytes += c->len;
    if (!splice_out (d->pipes[c->pipe][0], dst, &c->len, d->broken)
        && !d->broken) {
      /* the receiver is gone: wake our reader with an end of stream and
       * drain what it queued */
      d->broken = TRUE;
      g_socket_shutdown (d->src, TRUE, FALSE, NULL);
      splice_out (d->pipes[c->pipe][0], dst, &c->len, TRUE);
    }
    g_async_queue_push (d->free_pipes, GUINT_TO_POINTER (c->pipe + 1));
    g_free (c);
  }
}

static gboolean
direction_init (Direction * d, const char *name, GSocket * src, GSocket * dst)
{
  GError *err = NULL;
  guint i;

  memset (d, 0, sizeof (*d));
  d->name = name;
  d->src = src;
  d->dst = dst;
  d->delay_ns = opt_delay_us * 1000;
  d->ns_per_byte = opt_rate_mbytes > 0 ? 1e3 / opt_rate_mbytes : 0;
  d->busy = g_async_queue_new ();
  d->free_pipes = g_async_queue_new ();
  for (i = 0; i < N_PIPES; i++)
    d->pipes[i][0] = d->pipes[i][1] = -1;
  /* GSocket keeps its descriptors non-blocking; splice here blocks */
  if (!g_unix_set_fd_nonblocking (g_socket_get_fd (src), FALSE, &err) ||
      !g_unix_set_fd_nonblocking (g_socket_get_fd (dst), FALSE, &err)) {
    g_printerr ("bench-link: %s\n", err->message);
    g_clear_error (&err);
    return FALSE;
  }
  for (i = 0; i < N_PIPES; i++) {
    if (!g_unix_open_pipe (d->pipes[i], FD_CLOEXEC, &err)) {
      g_printerr ("bench-link: pipe: %s\n", err->message);
      g_clear_error (&err);
      return FALSE;
    }
    /* a smaller pipe (over the user's pipe quota) still works, it holds
     * less in flight */
    fcntl (d->pipes[i][1], F_SETPIPE_SZ, PIPE_BYTES);
    g_async_queue_push (d->free_pipes, GUINT_TO_POINTER (i + 1));
  }
  return TRUE;
}

static void
direction_report (const Direction * d, GString * out)
{
  g_string_append_printf (out, " %s: %" G_GUINT64_FORMAT " bytes %"
      G_GUINT64_FORMAT " chunks %" G_GUINT64_FORMAT " waited for, woken "
      "late mean %.1f us max %.1f us;", d->name, d->bytes, d->chunks,
      d->sleeps, d->sleeps ? d->late_sum_ns / 1e3 / d->sleeps : 0.0,
      d->late_max_ns / 1e3);
}

static void
direction_clear (Direction * d)
{
  guint i;

  g_async_queue_unref (d->busy);
  g_async_queue_unref (d->free_pipes);
  for (i = 0; i < N_PIPES; i++) {
    if (d->pipes[i][0] >= 0) {
      close (d->pipes[i][0]);
      close (d->pipes[i][1]);
    }
  }
}

/* One guest connection: its own upstream connection and four threads. */
static gpointer
relay_connection (gpointer data)
{
  GSocket *guest = data;
  GSocketAddress *up_addr = g_object_get_data (G_OBJECT (guest), "up");
  GError *err = NULL;
  GSocket *up;
  Direction to_host, to_guest;
  GThread *t[4];
  GString *report;
  guint i;

  up = g_socket_new (g_socket_address_get_family (up_addr),
      G_SOCKET_TYPE_STREAM, G_SOCKET_PROTOCOL_DEFAULT, &err);
  if (!up || !g_socket_connect (up, up_addr, NULL, &err)) {
    g_printerr ("bench-link: connect: %s\n", err->message);
    g_clear_error (&err);
    g_clear_object (&up);
    g_object_unref (guest);
    return NULL;
  }
  if (g_socket_address_get_family (up_addr) == G_SOCKET_FAMILY_IPV4)
    g_socket_set_option (up, IPPROTO_TCP, TCP_NODELAY, 1, NULL);

  if (!direction_init (&to_host, "guest->host", guest, up) ||
      !direction_init (&to_guest, "host->guest", up, guest))
    exit (2);
  t[0] = g_thread_new ("up-read", reader, &to_host);
  t[1] = g_thread_new ("up-write", writer, &to_host);
  t[2] = g_thread_new ("down-read", reader, &to_guest);
  t[3] = g_thread_new ("down-write", writer, &to_guest);
  for (i = 0; i < G_N_ELEMENTS (t); i++)
    g_thread_join (t[i]);

  report = g_string_new ("bench-link: connection closed;");
  direction_report (&to_host, report);
  direction_report (&to_guest, report);
  g_printerr ("%s\n", report->str);
  g_string_free (report, TRUE);
  direction_clear (&to_host);
  direction_clear (&to_guest);
  g_object_unref (up);
  g_object_unref (guest);
  return NULL;
}

/* "unix:PATH" or "tcp:HOST:PORT" (numeric host) */
static GSocketAddress *
parse_address (const char *spec)
{
  if (g_str_has_prefix (spec, "unix:"))
    return g_unix_socket_address_new (spec + 5);
  if (g_str_has_prefix (spec, "tcp:")) {
    const char *colon = strrchr (spec + 4, ':');
    g_autofree gchar *host = NULL;

    if (!colon)
      return NULL;
    host = g_strndup (spec + 4, colon - spec - 4);
    return g_inet_socket_address_new_from_string (host, atoi (colon + 1));
  }
  return NULL;
}

static GSocket *
listen_on (GSocketAddress * addr)
{
  GError *err = NULL;
  GSocket *s = g_socket_new (g_socket_address_get_family (addr),
      G_SOCKET_TYPE_STREAM, G_SOCKET_PROTOCOL_DEFAULT, &err);

  if (G_IS_UNIX_SOCKET_ADDRESS (addr))
    unlink (g_unix_socket_address_get_path (G_UNIX_SOCKET_ADDRESS (addr)));
  if (!s || !g_socket_bind (s, addr, TRUE, &err) || !g_socket_listen (s, &err)) {
    g_printerr ("bench-link: listen: %s\n", err->message);
    exit (2);
  }
  return s;
}

int
main (int argc, char **argv)
{
  gchar *listen_spec = NULL, *connect_spec = NULL;
  GOptionEntry entries[] = {
    {"listen", 0, 0, G_OPTION_ARG_STRING, &listen_spec,
        "where the guest connects", "unix:PATH|tcp:HOST:PORT"},
    {"connect", 0, 0, G_OPTION_ARG_STRING, &connect_spec,
        "the real server", "unix:PATH|tcp:HOST:PORT"},
    {"delay-us", 0, 0, G_OPTION_ARG_INT64, &opt_delay_us,
        "one-way delay in each direction, microseconds", "D"},
    {"rate-mbytes", 0, 0, G_OPTION_ARG_DOUBLE, &opt_rate_mbytes,
        "bandwidth cap per direction, MB/s (10^6 bytes; default none)", "R"},
    {"timeout", 0, 0, G_OPTION_ARG_INT, &opt_timeout_s,
        "end the process after S seconds (default 120)", "S"},
    {NULL}
  };
  GOptionContext *ctx = g_option_context_new ("- a delaying relay");
  GError *err = NULL;
  GSocketAddress *listen_addr, *up_addr;
  GSocket *lsock;

  g_option_context_add_main_entries (ctx, entries, NULL);
  if (!g_option_context_parse (ctx, &argc, &argv, &err) || !listen_spec
      || !connect_spec || opt_delay_us < 0 || opt_timeout_s < 1) {
    g_printerr ("bench-link: %s\n", err ? err->message :
        "--listen, --connect and --delay-us are required");
    return 2;
  }
  g_option_context_free (ctx);
  listen_addr = parse_address (listen_spec);
  up_addr = parse_address (connect_spec);
  if (!listen_addr || !up_addr) {
    g_printerr ("bench-link: addresses are unix:PATH or tcp:HOST:PORT\n");
    return 2;
  }

  signal (SIGPIPE, SIG_IGN);
  /* the default 50 us of timer slack would be a quarter of a 0.2 ms RTT */
  prctl (PR_SET_TIMERSLACK, 1000UL);
  alarm (opt_timeout_s);
  lsock = listen_on (listen_addr);
  /* the driver waits for this line before starting the guest */
  printf ("listening\n");
  fflush (stdout);

  for (;;) {
    GSocket *guest = g_socket_accept (lsock, NULL, &err);

    if (!guest) {
      g_printerr ("bench-link: accept: %s\n", err->message);
      return 2;
    }
    g_object_set_data_full (G_OBJECT (guest), "up", g_object_ref (up_addr),
        g_object_unref);
    g_thread_unref (g_thread_new ("conn", relay_connection, guest));
  }
}
