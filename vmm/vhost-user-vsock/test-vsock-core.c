/* The connection and credit layer of helix-vhost-user-vsock, driven as
 * the guest would drive it (packets in, packets out), against UNIX
 * listeners in a temporary directory. No AF_VSOCK, no vhost-user.
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */
#include "vsock-core.h"

#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>
#include <glib/gstdio.h>

#define GUEST_CID 3
#define BUF_ALLOC 8192

typedef struct
{
  gchar *dir;
  gchar *uds;
  gint listen_fd;
  HvvCore *core;
  guint wakes;
  guint8 rx[HVV_HDR_SIZE + HVV_MAX_PAYLOAD];
} Fixture;

static void
on_wake (gpointer data)
{
  ((Fixture *) data)->wakes++;
}

static gint
listen_at (const gchar * path)
{
  struct sockaddr_un sa = {.sun_family = AF_UNIX };
  gint fd = socket (AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

  g_assert_cmpint (fd, >=, 0);
  g_strlcpy (sa.sun_path, path, sizeof (sa.sun_path));
  g_assert_cmpint (bind (fd, (struct sockaddr *) &sa, sizeof (sa)), ==, 0);
  g_assert_cmpint (listen (fd, 16), ==, 0);
  return fd;
}

static void
setup_max (Fixture * f, guint max_conns)
{
  HvvCoreConfig cfg = {
    .guest_cid = GUEST_CID,
    .max_conns = max_conns,
    .buf_alloc = BUF_ALLOC,
    .close_timeout_ms = 300,
  };
  gchar *p;

  f->dir = g_dir_make_tmp ("hvv-XXXXXX", NULL);
  g_assert_nonnull (f->dir);
  f->uds = g_build_filename (f->dir, "v", NULL);
  p = g_strdup_printf ("%s_5000", f->uds);
  f->listen_fd = listen_at (p);
  g_free (p);
  cfg.uds_path = f->uds;
  f->core = hvv_core_new (&cfg, on_wake, f);
}

static void
setup (Fixture * f, gconstpointer data)
{
  setup_max (f, 4);
}

static void
teardown (Fixture * f, gconstpointer data)
{
  gchar *p = g_strdup_printf ("%s_5000", f->uds);

  hvv_core_free (f->core);
  close (f->listen_fd);
  unlink (p);
  g_free (p);
  g_rmdir (f->dir);
  g_free (f->uds);
  g_free (f->dir);
}

/* a guest packet */
static void
send_pkt (Fixture * f, guint32 src_port, guint32 dst_port, guint16 op,
    guint32 flags, const void *payload, guint32 len, guint32 buf_alloc,
    guint32 fwd_cnt)
{
  guint8 b[HVV_HDR_SIZE + 4096];
  HvvHdr h = {
    .src_cid = GUEST_CID,.dst_cid = HVV_HOST_CID,.src_port = src_port,
    .dst_port = dst_port,.len = len,.type = HVV_TYPE_STREAM,.op = op,
    .flags = flags,.buf_alloc = buf_alloc,.fwd_cnt = fwd_cnt,
  };
  g_assert_cmpuint (len, <=, 4096);
  hvv_hdr_write (&h, b);
  if (len)
    memcpy (b + HVV_HDR_SIZE, payload, len);
  hvv_core_tx (f->core, b, HVV_HDR_SIZE + len, HVV_HDR_SIZE + len);
}

/* the next packet for the guest (main context iterated a while for it),
 * FALSE if none came */
static gboolean
next_rx (Fixture * f, HvvHdr * h, gsize cap, guint timeout_ms)
{
  gint64 end = g_get_monotonic_time () + timeout_ms * 1000;
  gsize n;

  for (;;) {
    n = hvv_core_next_rx (f->core, f->rx, cap);
    if (n || g_get_monotonic_time () > end)
      break;
    g_main_context_iteration (NULL, FALSE);
    g_usleep (1000);
  }
  if (!n)
    return FALSE;
  hvv_hdr_parse (h, f->rx);
  g_assert_cmpuint (n, ==, HVV_HDR_SIZE + h->len);
  g_assert_cmpuint (h->src_cid, ==, HVV_HOST_CID);
  g_assert_cmpuint (h->dst_cid, ==, GUEST_CID);
  return TRUE;
}

static gint
connect_guest (Fixture * f, guint32 port)
{
  HvvHdr h;
  gint fd;

  send_pkt (f, port, 5000, HVV_OP_REQUEST, 0, NULL, 0, 4096, 0);
  g_assert_true (next_rx (f, &h, sizeof (f->rx), 1000));
  g_assert_cmpuint (h.op, ==, HVV_OP_RESPONSE);
  g_assert_cmpuint (h.dst_port, ==, port);
  g_assert_cmpuint (h.src_port, ==, 5000);
  g_assert_cmpuint (h.buf_alloc, ==, BUF_ALLOC);
  fd = accept (f->listen_fd, NULL, NULL);
  g_assert_cmpint (fd, >=, 0);
  return fd;
}

static void
expect_rst (Fixture * f, guint32 guest_port)
{
  HvvHdr h;

  g_assert_true (next_rx (f, &h, sizeof (f->rx), 1000));
  g_assert_cmpuint (h.op, ==, HVV_OP_RST);
  g_assert_cmpuint (h.dst_port, ==, guest_port);
}

static void
expect_host_eof (gint fd)
{
  gchar b[64];
  struct timeval tv = { 2, 0 };

  setsockopt (fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof (tv));
  g_assert_cmpint (read (fd, b, sizeof (b)), ==, 0);
}

static void
test_data_both_ways (Fixture * f, gconstpointer data)
{
  gint fd = connect_guest (f, 1234);
  gchar b[64];
  HvvHdr h;

  send_pkt (f, 1234, 5000, HVV_OP_RW, 0, "hello", 5, 4096, 0);
  g_assert_cmpint (read (fd, b, sizeof (b)), ==, 5);
  g_assert_cmpmem (b, 5, "hello", 5);
  g_assert_cmpint (write (fd, "world!", 6), ==, 6);
  g_assert_true (next_rx (f, &h, sizeof (f->rx), 2000));
  g_assert_cmpuint (h.op, ==, HVV_OP_RW);
  g_assert_cmpuint (h.len, ==, 6);
  g_assert_cmpmem (f->rx + HVV_HDR_SIZE, 6, "world!", 6);
  g_assert_cmpuint (h.fwd_cnt, ==, 5);
  /* the host closes: the guest gets SHUTDOWN(SEND), then closes too */
  close (fd);
  g_assert_true (next_rx (f, &h, sizeof (f->rx), 2000));
  g_assert_cmpuint (h.op, ==, HVV_OP_SHUTDOWN);
  g_assert_cmpuint (h.flags, ==, HVV_SHUTDOWN_SEND);
  send_pkt (f, 1234, 5000, HVV_OP_SHUTDOWN, 3, NULL, 0, 4096, 6);
  expect_rst (f, 1234);
  g_assert_cmpuint (hvv_core_n_conns (f->core), ==, 0);
}

/* the guest gave 100 bytes of buffer: no more than that until it says it
 * consumed some */
static void
test_credit_to_guest (Fixture * f, gconstpointer data)
{
  gint fd;
  guint8 big[1000];
  HvvHdr h;
  guint got = 0;

  send_pkt (f, 7, 5000, HVV_OP_REQUEST, 0, NULL, 0, 100, 0);
  g_assert_true (next_rx (f, &h, sizeof (f->rx), 1000));
  g_assert_cmpuint (h.op, ==, HVV_OP_RESPONSE);
  fd = accept (f->listen_fd, NULL, NULL);
  memset (big, 'x', sizeof (big));
  g_assert_cmpint (write (fd, big, sizeof (big)), ==, sizeof (big));
  /* small RX buffers: several packets, 100 bytes in all */
  while (next_rx (f, &h, HVV_HDR_SIZE + 30, 300)) {
    g_assert_cmpuint (h.op, ==, HVV_OP_RW);
    g_assert_cmpuint (h.len, <=, 30);
    got += h.len;
  }
  g_assert_cmpuint (got, ==, 100);
  /* the guest read 60 of them */
  send_pkt (f, 7, 5000, HVV_OP_CREDIT_UPDATE, 0, NULL, 0, 100, 60);
  while (next_rx (f, &h, sizeof (f->rx), 300))
    got += h.len;
  g_assert_cmpuint (got, ==, 160);
  /* it shrank its buffer below what is in flight: nothing */
  send_pkt (f, 7, 5000, HVV_OP_CREDIT_UPDATE, 0, NULL, 0, 50, 60);
  g_assert_false (next_rx (f, &h, sizeof (f->rx), 200));
  /* a credit request is answered with our counters */
  send_pkt (f, 7, 5000, HVV_OP_CREDIT_REQUEST, 0, NULL, 0, 50, 60);
  g_assert_true (next_rx (f, &h, sizeof (f->rx), 200));
  g_assert_cmpuint (h.op, ==, HVV_OP_CREDIT_UPDATE);
  g_assert_cmpuint (h.buf_alloc, ==, BUF_ALLOC);
  /* everything read by the guest, told with a credit request this time:
   * the rest flows (the socket is watched again) */
  send_pkt (f, 7, 5000, HVV_OP_CREDIT_REQUEST, 0, NULL, 0, 2000, got);
  while (next_rx (f, &h, sizeof (f->rx), 300))
    if (h.op == HVV_OP_RW)
      got += h.len;
  g_assert_cmpuint (got, ==, sizeof (big));
  close (fd);
}

/* the guest sends more than the buffer we advertised: reset, and the
 * backend held no more than that buffer */
static void
test_guest_exceeds_credit (Fixture * f, gconstpointer data)
{
  gint fd = connect_guest (f, 9);
  guint8 chunk[4096];
  guint i;
  HvvHdr h;

  memset (chunk, 'y', sizeof (chunk));
  /* nobody reads the host socket: its buffer fills, then ours */
  for (i = 0; i < 4096 && hvv_core_n_conns (f->core) == 1; i++) {
    send_pkt (f, 9, 5000, HVV_OP_RW, 0, chunk, sizeof (chunk), 4096, 0);
    g_assert_cmpuint (hvv_core_buffered (f->core), <=, BUF_ALLOC);
  }
  g_assert_cmpuint (hvv_core_n_conns (f->core), ==, 0);
  /* credit updates may come first; then the RST */
  do
    g_assert_true (next_rx (f, &h, sizeof (f->rx), 1000));
  while (h.op == HVV_OP_CREDIT_UPDATE);
  g_assert_cmpuint (h.op, ==, HVV_OP_RST);
  close (fd);
}

/* what the guest wrote keeps flowing while the host reads: credit updates
 * let it go on */
static void
test_credit_from_guest (Fixture * f, gconstpointer data)
{
  gint fd = connect_guest (f, 11);
  guint8 chunk[1024], b[65536];
  guint32 sent = 0, peer_fwd = 0, got = 0;
  HvvHdr h;

  memset (chunk, 'z', sizeof (chunk));
  while (sent < 1024 * 1024) {
    /* as a guest does: only within the credit it was given */
    while (sent - peer_fwd + sizeof (chunk) <= BUF_ALLOC) {
      send_pkt (f, 11, 5000, HVV_OP_RW, 0, chunk, sizeof (chunk), 4096, 0);
      sent += sizeof (chunk);
    }
    g_assert_cmpuint (hvv_core_n_conns (f->core), ==, 1);
    got += read (fd, b, sizeof (b));
    for (;;) {
      g_main_context_iteration (NULL, FALSE);
      if (!next_rx (f, &h, sizeof (f->rx), 50))
        break;
      g_assert_cmpuint (h.op, ==, HVV_OP_CREDIT_UPDATE);
      peer_fwd = h.fwd_cnt;
    }
  }
  g_assert_cmpuint (hvv_core_buffered (f->core), <=, BUF_ALLOC);
  close (fd);
}

/* the guest's bytes reach the host in order while the host socket is full
 * and they wait in the connection's buffer: chunks of 1000 bytes wrap
 * around its 8192, and the host takes part of what is waiting at a time */
static void
test_in_order_through_full_socket (Fixture * f, gconstpointer data)
{
  gint fd = connect_guest (f, 13);
  guint8 chunk[1000], b[3000];
  guint32 sent = 0, peer_fwd = 0, got = 0, i;
  gint64 end = g_get_monotonic_time () + 20 * G_USEC_PER_SEC;
  HvvHdr h;

  /* until the host socket is full and the guest's credit is used up */
  while (hvv_core_buffered (f->core) == 0
      || sent - peer_fwd + sizeof (chunk) <= BUF_ALLOC) {
    g_assert_cmpint (g_get_monotonic_time (), <, end);
    while (sent - peer_fwd + sizeof (chunk) <= BUF_ALLOC) {
      for (i = 0; i < sizeof (chunk); i++)
        chunk[i] = (sent + i) % 251;
      send_pkt (f, 13, 5000, HVV_OP_RW, 0, chunk, sizeof (chunk), 4096, 0);
      sent += sizeof (chunk);
    }
    g_main_context_iteration (NULL, FALSE);
    while (next_rx (f, &h, sizeof (f->rx), 0)) {
      g_assert_cmpuint (h.op, ==, HVV_OP_CREDIT_UPDATE);
      peer_fwd = h.fwd_cnt;
    }
  }
  g_assert_cmpuint (hvv_core_n_conns (f->core), ==, 1);
  g_assert_cmpuint (hvv_core_buffered (f->core), >, 0);
  /* the host reads a little at a time; the core writes what fits */
  while (got < sent) {
    gssize n = read (fd, b, sizeof (b));

    g_assert_cmpint (n, >, 0);
    for (i = 0; i < n; i++)
      if (b[i] != (got + i) % 251)
        g_error ("byte %u from the guest came as %u, sent as %u", got + i,
            b[i], (got + i) % 251);
    got += n;
    g_main_context_iteration (NULL, FALSE);
  }
  g_assert_cmpuint (hvv_core_buffered (f->core), ==, 0);
  close (fd);
}

static void
test_refused (Fixture * f, gconstpointer data)
{
  /* no listener on port 6000 */
  send_pkt (f, 1, 6000, HVV_OP_REQUEST, 0, NULL, 0, 4096, 0);
  expect_rst (f, 1);
  g_assert_cmpuint (hvv_core_n_conns (f->core), ==, 0);
}

static void
test_max_conns (Fixture * f, gconstpointer data)
{
  gint fds[4];
  guint i;

  for (i = 0; i < 4; i++)
    fds[i] = connect_guest (f, 100 + i);
  send_pkt (f, 200, 5000, HVV_OP_REQUEST, 0, NULL, 0, 4096, 0);
  expect_rst (f, 200);
  g_assert_cmpuint (hvv_core_n_conns (f->core), ==, 4);
  /* the guest vanishes: everything freed, the host sees every socket end */
  hvv_core_reset (f->core);
  g_assert_cmpuint (hvv_core_n_conns (f->core), ==, 0);
  for (i = 0; i < 4; i++) {
    expect_host_eof (fds[i]);
    close (fds[i]);
  }
  g_assert_cmpuint (hvv_core_next_rx (f->core, f->rx, sizeof (f->rx)), ==, 0);
}

/* the guest closes with data still to write to a slow host: written
 * first, then RST */
static void
test_guest_close_flushes (Fixture * f, gconstpointer data)
{
  gint fd = connect_guest (f, 12);
  gchar b[16];

  send_pkt (f, 12, 5000, HVV_OP_RW, 0, "bye", 3, 4096, 0);
  send_pkt (f, 12, 5000, HVV_OP_SHUTDOWN, 3, NULL, 0, 4096, 0);
  expect_rst (f, 12);
  g_assert_cmpint (read (fd, b, sizeof (b)), ==, 3);
  expect_host_eof (fd);
  close (fd);
}

/* bad packets: each logged and reset (none crashes, none makes or keeps a
 * connection) */
static void
test_hostile_packets (Fixture * f, gconstpointer data)
{
  guint8 b[HVV_HDR_SIZE + 64];
  HvvHdr good = {
    .src_cid = GUEST_CID,.dst_cid = HVV_HOST_CID,.src_port = 50,
    .dst_port = 5000,.type = HVV_TYPE_STREAM,.op = HVV_OP_REQUEST,
    .buf_alloc = 4096,
  };
  HvvHdr h;
  gint fd;
  guint i;
  struct
  {
    const gchar *what;
    HvvHdr h;
    gsize desc_len;
  } bad[] = {
    {"wrong source cid",.h = good,.desc_len = HVV_HDR_SIZE},
    {"wrong destination cid",.h = good,.desc_len = HVV_HDR_SIZE},
    {"seqpacket",.h = good,.desc_len = HVV_HDR_SIZE},
    {"unknown op",.h = good,.desc_len = HVV_HDR_SIZE},
    {"op 0",.h = good,.desc_len = HVV_HDR_SIZE},
    {"len beyond the buffers",.h = good,.desc_len = HVV_HDR_SIZE + 10},
    {"len beyond the maximum",.h = good,.desc_len = (gsize) 1 << 20},
    {"payload on a request",.h = good,.desc_len = HVV_HDR_SIZE + 4},
    {"data on no connection",.h = good,.desc_len = HVV_HDR_SIZE + 4},
    {"response from the guest",.h = good,.desc_len = HVV_HDR_SIZE},
  };

  bad[0].h.src_cid = 99;
  bad[1].h.dst_cid = 7;
  bad[2].h.type = 2;
  bad[3].h.op = 99;
  bad[4].h.op = 0;
  bad[5].h.op = HVV_OP_RW;
  bad[5].h.len = 11;
  bad[6].h.op = HVV_OP_RW;
  bad[6].h.len = HVV_MAX_PAYLOAD + 1;
  bad[7].h.len = 4;
  bad[8].h.op = HVV_OP_RW;
  bad[8].h.len = 4;
  bad[9].h.op = HVV_OP_RESPONSE;
  for (i = 0; i < G_N_ELEMENTS (bad); i++) {
    g_test_message ("%s", bad[i].what);
    memset (b, 0, sizeof (b));
    hvv_hdr_write (&bad[i].h, b);
    hvv_core_tx (f->core, b, MIN (bad[i].desc_len, sizeof (b)),
        bad[i].desc_len);
    expect_rst (f, 50);
    g_assert_cmpuint (hvv_core_n_conns (f->core), ==, 0);
  }
  /* shorter than a header: dropped, nothing to answer */
  hvv_core_tx (f->core, b, 10, 10);
  g_assert_false (next_rx (f, &h, sizeof (f->rx), 50));

  /* on a live connection: a duplicate request, bad shutdown flags, data
   * after SHUTDOWN(SEND): the connection is reset */
  fd = connect_guest (f, 60);
  send_pkt (f, 60, 5000, HVV_OP_REQUEST, 0, NULL, 0, 4096, 0);
  expect_rst (f, 60);
  g_assert_cmpuint (hvv_core_n_conns (f->core), ==, 0);
  close (fd);
  fd = connect_guest (f, 61);
  send_pkt (f, 61, 5000, HVV_OP_SHUTDOWN, 8, NULL, 0, 4096, 0);
  expect_rst (f, 61);
  close (fd);
  fd = connect_guest (f, 62);
  send_pkt (f, 62, 5000, HVV_OP_SHUTDOWN, HVV_SHUTDOWN_SEND, NULL, 0, 4096, 0);
  send_pkt (f, 62, 5000, HVV_OP_RW, 0, "late", 4, 4096, 0);
  expect_rst (f, 62);
  g_assert_cmpuint (hvv_core_n_conns (f->core), ==, 0);
  close (fd);
  /* an RST for nothing gets no answer */
  send_pkt (f, 63, 5000, HVV_OP_RST, 0, NULL, 0, 0, 0);
  g_assert_false (next_rx (f, &h, sizeof (f->rx), 50));
}

/* random packets, many of them almost valid: no crash, the connections
 * and what is held stay bounded, the RST queue too */
static void
test_random_packets (Fixture * f, gconstpointer data)
{
  GRand *r = g_rand_new_with_seed (24);
  guint8 b[HVV_HDR_SIZE + 256];
  guint i, j, accepted = 0;
  gint fds[64];

  for (i = 0; i < 20000; i++) {
    HvvHdr h = {
      .src_cid = g_rand_int_range (r, 0, 8) ? GUEST_CID : g_rand_int (r),
      .dst_cid = g_rand_int_range (r, 0, 8) ? HVV_HOST_CID : g_rand_int (r),
      .src_port = g_rand_int_range (r, 1, 6),
      .dst_port = g_rand_int_range (r, 0, 8) ? 5000 : g_rand_int (r),
      .len = g_rand_int_range (r, 0, 4) ? (guint32) g_rand_int_range (r, 0, 200)
          : g_rand_int (r),
      .type = g_rand_int_range (r, 0, 8) ? 1 : g_rand_int_range (r, 0, 4),
      .op = g_rand_int_range (r, 0, 9),
      .flags = g_rand_int_range (r, 0, 5),
      .buf_alloc = g_rand_int (r),
      .fwd_cnt = g_rand_int (r),
    };
    gsize len = g_rand_int_range (r, 0, sizeof (b));

    for (j = 0; j < sizeof (b); j++)
      b[j] = g_rand_int (r);
    hvv_hdr_write (&h, b);
    hvv_core_tx (f->core, b, len, len + (g_rand_boolean (r) ? 0 : 10));
    g_assert_cmpuint (hvv_core_n_conns (f->core), <=, 4);
    g_assert_cmpuint (hvv_core_buffered (f->core), <=, 4 * BUF_ALLOC);
    /* accept what connected, so that the backlog never fills */
    while (accepted < G_N_ELEMENTS (fds)) {
      struct timeval tv = { 0, 0 };
      fd_set s;
      FD_ZERO (&s);
      FD_SET (f->listen_fd, &s);
      if (select (f->listen_fd + 1, &s, NULL, NULL, &tv) <= 0)
        break;
      fds[accepted++] = accept (f->listen_fd, NULL, NULL);
    }
    if (g_rand_int_range (r, 0, 4) == 0)
      while (hvv_core_next_rx (f->core, f->rx, g_rand_int_range (r,
                  HVV_HDR_SIZE, sizeof (f->rx))));
    g_main_context_iteration (NULL, FALSE);
  }
  hvv_core_reset (f->core);
  for (i = 0; i < accepted; i++)
    close (fds[i]);
  g_rand_free (r);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_log_set_always_fatal (G_LOG_LEVEL_CRITICAL);
#define T(name, fn) g_test_add ("/vhost-user-vsock/" name, Fixture, NULL, \
      setup, fn, teardown)
  T ("data-both-ways", test_data_both_ways);
  T ("credit-to-guest", test_credit_to_guest);
  T ("credit-from-guest", test_credit_from_guest);
  T ("guest-exceeds-credit", test_guest_exceeds_credit);
  T ("in-order-through-a-full-socket", test_in_order_through_full_socket);
  T ("refused", test_refused);
  T ("max-connections-and-reset", test_max_conns);
  T ("guest-close-flushes", test_guest_close_flushes);
  T ("hostile-packets", test_hostile_packets);
  T ("random-packets", test_random_packets);
#undef T
  return g_test_run ();
}
