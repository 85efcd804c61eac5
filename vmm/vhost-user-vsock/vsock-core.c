/* vsock-core: virtio-vsock stream connections of one guest, relayed to
 * UNIX sockets. See vsock-core.h.
 *
 * Credit, both ways (virtio spec 5.10.6.3):
 *  - to the guest: never more payload than the guest's buf_alloc -
 *    (tx_cnt - fwd_cnt) it last told us; a connection's socket is not even
 *    read while that is 0;
 *  - from the guest: we advertise buf_alloc and hold at most that many
 *    bytes per connection; a guest that sends more is reset. So the memory
 *    held is at most max_conns * buf_alloc plus a bounded queue of RSTs.
 *
 * Copyright 2026 the helix encode offload authors
 * SPDX-License-Identifier: GPL-2.0-or-later
 */
#include "vsock-core.h"

#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>
#include <glib-unix.h>

/* RSTs for packets that match no connection, waiting for RX buffers */
#define MAX_QUEUED_RST 64
/* log lines about bad guest packets, per second */
/* lines a guest can cause (bad packets, its connections), a second */
#define GUEST_LOG_PER_SECOND 20

typedef struct
{
  HvvCore *core;
  guint32 guest_port;
  guint32 host_port;
  gint fd;
  GSource *watch;
  GIOCondition watch_cond;
  /* the guest's receive buffer, as it last told us */
  guint32 peer_buf_alloc;
  guint32 peer_fwd_cnt;
  /* payload bytes sent to the guest */
  guint32 tx_cnt;
  /* payload bytes from the guest, and of those written to the host */
  guint32 rx_cnt;
  guint32 fwd_cnt;
  guint32 fwd_cnt_sent;
  /* from the guest, not yet written to the host: a ring of buf_alloc
   * bytes (allocated with the first data), to_host_len of them from
   * to_host_head; a partial send moves nothing */
  guint8 *to_host;
  guint32 to_host_head;
  guint32 to_host_len;
  gboolean need_response;
  gboolean need_credit_update;
  gboolean host_readable;
  gboolean host_eof;
  gboolean host_eof_sent;
  gboolean host_shut_wr;
  /* SHUTDOWN flags the guest sent */
  guint32 guest_shut;
  /* the guest closed both ways: RST and free once to_host is written */
  gint64 close_deadline;
} HvvConn;

typedef struct
{
  guint32 guest_port;
  guint32 host_port;
} HvvRst;

struct _HvvCore
{
  HvvCoreConfig cfg;
  gchar *uds_path;
  HvvWakeFunc wake;
  gpointer wake_data;
  GMainContext *context;
  GPtrArray *conns;
  guint rr;
  GQueue rsts;
  GSource *timer;
  gint64 guest_log_second;
  guint guest_logged;
  guint64 guest_suppressed;
};

void
hvv_hdr_parse (HvvHdr * hdr, const guint8 * b)
{
  guint64 v64;
  guint32 v32;
  guint16 v16;

#define GET(field, off, v, conv) \
  memcpy (&v, b + off, sizeof (v)); hdr->field = conv (v)
  GET (src_cid, 0, v64, GUINT64_FROM_LE);
  GET (dst_cid, 8, v64, GUINT64_FROM_LE);
  GET (src_port, 16, v32, GUINT32_FROM_LE);
  GET (dst_port, 20, v32, GUINT32_FROM_LE);
  GET (len, 24, v32, GUINT32_FROM_LE);
  GET (type, 28, v16, GUINT16_FROM_LE);
  GET (op, 30, v16, GUINT16_FROM_LE);
  GET (flags, 32, v32, GUINT32_FROM_LE);
  GET (buf_alloc, 36, v32, GUINT32_FROM_LE);
  GET (fwd_cnt, 40, v32, GUINT32_FROM_LE);
#undef GET
}

void
hvv_hdr_write (const HvvHdr * hdr, guint8 * b)
{
  guint64 v64;
  guint32 v32;
  guint16 v16;

#define PUT(field, off, v, conv) \
  v = conv (hdr->field); memcpy (b + off, &v, sizeof (v))
  PUT (src_cid, 0, v64, GUINT64_TO_LE);
  PUT (dst_cid, 8, v64, GUINT64_TO_LE);
  PUT (src_port, 16, v32, GUINT32_TO_LE);
  PUT (dst_port, 20, v32, GUINT32_TO_LE);
  PUT (len, 24, v32, GUINT32_TO_LE);
  PUT (type, 28, v16, GUINT16_TO_LE);
  PUT (op, 30, v16, GUINT16_TO_LE);
  PUT (flags, 32, v32, GUINT32_TO_LE);
  PUT (buf_alloc, 36, v32, GUINT32_TO_LE);
  PUT (fwd_cnt, 40, v32, GUINT32_TO_LE);
#undef PUT
}

static const gchar *
op_name (guint16 op)
{
  static const gchar *names[] = { "INVALID", "REQUEST", "RESPONSE", "RST",
    "SHUTDOWN", "RW", "CREDIT_UPDATE", "CREDIT_REQUEST"
  };
  return op < G_N_ELEMENTS (names) ? names[op] : "unknown";
}

/* A line the guest caused (a bad packet, a connection opened, refused or
 * closed): at most GUEST_LOG_PER_SECOND a second, then a count, so that a
 * hostile guest cannot flood the log. */
/* *INDENT-OFF* */ /* indent cannot parse G_GNUC_PRINTF */
static void
guest_log (HvvCore * core, const gchar * format, ...) G_GNUC_PRINTF (2, 3);
/* *INDENT-ON* */

static void
guest_log (HvvCore * core, const gchar * format, ...)
{
  gint64 sec = g_get_monotonic_time () / G_USEC_PER_SEC;
  va_list ap;
  gchar *msg;

  if (sec != core->guest_log_second) {
    if (core->guest_suppressed)
      g_message ("lines caused by the guest: %" G_GUINT64_FORMAT
          " more not logged", core->guest_suppressed);
    core->guest_log_second = sec;
    core->guest_logged = 0;
    core->guest_suppressed = 0;
  }
  if (core->guest_logged >= GUEST_LOG_PER_SECOND) {
    core->guest_suppressed++;
    return;
  }
  core->guest_logged++;
  va_start (ap, format);
  msg = g_strdup_vprintf (format, ap);
  va_end (ap);
  g_message ("%s", msg);
  g_free (msg);
}

static void
queue_rst (HvvCore * core, guint32 guest_port, guint32 host_port)
{
  HvvRst *r;

  if (core->rsts.length >= MAX_QUEUED_RST + core->cfg.max_conns)
    return;
  r = g_new (HvvRst, 1);
  r->guest_port = guest_port;
  r->host_port = host_port;
  g_queue_push_tail (&core->rsts, r);
  core->wake (core->wake_data);
}

static guint32
peer_credit (HvvConn * c)
{
  guint32 in_flight = c->tx_cnt - c->peer_fwd_cnt;

  return in_flight >= c->peer_buf_alloc ? 0 : c->peer_buf_alloc - in_flight;
}

static void update_watch (HvvConn * c);

static void
conn_free (HvvConn * c)
{
  if (c->watch) {
    g_source_destroy (c->watch);
    g_source_unref (c->watch);
  }
  if (c->fd >= 0)
    close (c->fd);
  g_free (c->to_host);
  g_free (c);
}

/* Closes @c; with @rst the guest is told with an RST. */
static void
conn_close (HvvConn * c, gboolean rst, const gchar * why)
{
  HvvCore *core = c->core;

  guest_log (core, "connection %u -> %u closed: %s (to guest %u, from guest "
      "%u, dropped %u)", c->guest_port, c->host_port, why, c->tx_cnt, c->rx_cnt,
      c->rx_cnt - c->fwd_cnt);
  if (rst)
    queue_rst (core, c->guest_port, c->host_port);
  g_ptr_array_remove_fast (core->conns, c);
  conn_free (c);
}

static HvvConn *
conn_find (HvvCore * core, guint32 guest_port, guint32 host_port)
{
  guint i;

  for (i = 0; i < core->conns->len; i++) {
    HvvConn *c = g_ptr_array_index (core->conns, i);
    if (c->guest_port == guest_port && c->host_port == host_port)
      return c;
  }
  return NULL;
}

/* Writes what the guest sent to the host socket, as far as it takes it.
 * FALSE: the connection was closed. */
static gboolean
conn_flush (HvvConn * c)
{
  guint32 cap = c->core->cfg.buf_alloc;

  while (c->to_host_len > 0) {
    guint32 first = MIN (c->to_host_len, cap - c->to_host_head);
    struct iovec iov[2] = {
      {c->to_host + c->to_host_head, first},
      {c->to_host, c->to_host_len - first},
    };
    struct msghdr msg = {.msg_iov = iov,.msg_iovlen = iov[1].iov_len ? 2 : 1 };
    gssize n = sendmsg (c->fd, &msg, MSG_DONTWAIT | MSG_NOSIGNAL);

    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
      break;
    if (n <= 0) {
      gchar *why = g_strdup_printf ("writing to the host socket: %s",
          g_strerror (errno));
      conn_close (c, TRUE, why);
      g_free (why);
      return FALSE;
    }
    c->to_host_len -= n;
    /* drained: the next data starts at the front again, so the pages
     * touched stay those of the most ever waiting */
    c->to_host_head = c->to_host_len ? (c->to_host_head + n) % cap : 0;
    c->fwd_cnt += n;
  }
  /* tell the guest about freed space in big enough steps; a guest waiting
   * for credit has none left, so it always gets one of them */
  if (c->fwd_cnt - c->fwd_cnt_sent >= c->core->cfg.buf_alloc / 4) {
    c->need_credit_update = TRUE;
    c->core->wake (c->core->wake_data);
  }
  if (c->to_host_len == 0) {
    if (c->close_deadline) {
      conn_close (c, TRUE, "closed by the guest");
      return FALSE;
    }
    if ((c->guest_shut & HVV_SHUTDOWN_SEND) && !c->host_shut_wr) {
      shutdown (c->fd, SHUT_WR);
      c->host_shut_wr = TRUE;
    }
  }
  update_watch (c);
  return TRUE;
}

static gboolean
on_host_fd (gint fd, GIOCondition cond, gpointer data)
{
  HvvConn *c = data;

  if (cond & (G_IO_IN | G_IO_HUP | G_IO_ERR)) {
    /* read in hvv_core_next_rx(), when the guest has a buffer */
    c->host_readable = TRUE;
    c->core->wake (c->core->wake_data);
  }
  if (c->to_host_len > 0 && !conn_flush (c))
    return G_SOURCE_REMOVE;
  update_watch (c);
  return G_SOURCE_CONTINUE;
}

/* The host socket is watched for reading only while the guest can take
 * data, for writing only while there is some for it. */
static void
update_watch (HvvConn * c)
{
  GIOCondition cond = 0;

  if (!c->host_readable && !c->host_eof && peer_credit (c) > 0
      && !(c->guest_shut & HVV_SHUTDOWN_RCV) && !c->need_response)
    cond |= G_IO_IN;
  if (c->to_host_len > 0)
    cond |= G_IO_OUT;
  if (c->watch && cond == c->watch_cond)
    return;
  if (c->watch) {
    g_source_destroy (c->watch);
    g_source_unref (c->watch);
    c->watch = NULL;
  }
  c->watch_cond = cond;
  if (cond == 0)
    return;
  c->watch = g_unix_fd_source_new (c->fd, cond);
  g_source_set_callback (c->watch, (GSourceFunc) (void (*)(void)) on_host_fd, c,
      NULL);
  g_source_attach (c->watch, c->core->context);
}

static gint
connect_host (HvvCore * core, guint32 port, gchar ** why)
{
  struct sockaddr_un sa = {.sun_family = AF_UNIX };
  gchar *path = g_strdup_printf ("%s_%u", core->uds_path, port);
  gint fd;

  if (strlen (path) >= sizeof (sa.sun_path)) {
    *why = g_strdup_printf ("%s: path too long", path);
    g_free (path);
    return -1;
  }
  strcpy (sa.sun_path, path);
  fd = socket (AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0 || connect (fd, (struct sockaddr *) &sa, sizeof (sa)) < 0) {
    /* a full backlog (EAGAIN) is a refusal too: no wait here */
    *why = g_strdup_printf ("connect(%s): %s", path, g_strerror (errno));
    if (fd >= 0)
      close (fd);
    fd = -1;
  }
  g_free (path);
  return fd;
}

static void
handle_request (HvvCore * core, const HvvHdr * h)
{
  gchar *why = NULL;
  HvvConn *c;
  gint fd;

  if (core->conns->len >= core->cfg.max_conns) {
    guest_log (core, "connection %u -> %u refused: %u connections already",
        h->src_port, h->dst_port, core->conns->len);
    queue_rst (core, h->src_port, h->dst_port);
    return;
  }
  fd = connect_host (core, h->dst_port, &why);
  if (fd < 0) {
    guest_log (core, "connection %u -> %u refused: %s", h->src_port,
        h->dst_port, why);
    g_free (why);
    queue_rst (core, h->src_port, h->dst_port);
    return;
  }
  c = g_new0 (HvvConn, 1);
  c->core = core;
  c->guest_port = h->src_port;
  c->host_port = h->dst_port;
  c->fd = fd;
  c->peer_buf_alloc = h->buf_alloc;
  c->peer_fwd_cnt = h->fwd_cnt;
  c->need_response = TRUE;
  g_ptr_array_add (core->conns, c);
  guest_log (core, "connection %u -> %u: %s_%u (guest buffer %u)",
      c->guest_port,
      c->host_port, core->uds_path, c->host_port, c->peer_buf_alloc);
  core->wake (core->wake_data);
}

/* @len more bytes for the host; the credit check made room for them */
static void
to_host_append (HvvConn * c, const guint8 * payload, guint32 len)
{
  guint32 cap = c->core->cfg.buf_alloc;
  guint32 tail = (c->to_host_head + c->to_host_len) % cap;
  guint32 first = MIN (len, cap - tail);

  if (len == 0)
    return;
  g_assert (c->to_host_len + (guint64) len <= cap);
  if (!c->to_host)
    c->to_host = g_malloc (cap);
  memcpy (c->to_host + tail, payload, first);
  memcpy (c->to_host, payload + first, len - first);
  c->to_host_len += len;
}

static void
handle_rw (HvvConn * c, const guint8 * payload, guint32 len)
{
  guint32 held = c->rx_cnt - c->fwd_cnt;

  if (c->guest_shut & HVV_SHUTDOWN_SEND) {
    conn_close (c, TRUE, "guest sent data after its SHUTDOWN(SEND)");
    return;
  }
  if (held + (guint64) len > c->core->cfg.buf_alloc) {
    gchar *why = g_strdup_printf ("guest exceeded its credit (%u bytes held,"
        " %u more, buffer %u)", held, len, c->core->cfg.buf_alloc);
    conn_close (c, TRUE, why);
    g_free (why);
    return;
  }
  to_host_append (c, payload, len);
  c->rx_cnt += len;
  conn_flush (c);
}

static void
handle_shutdown (HvvConn * c, guint32 flags)
{
  c->guest_shut |= flags;
  if (c->guest_shut == (HVV_SHUTDOWN_RCV | HVV_SHUTDOWN_SEND)) {
    /* the guest closed: what it sent still goes to the host, then RST */
    c->close_deadline = g_get_monotonic_time () +
        c->core->cfg.close_timeout_ms * (gint64) 1000;
  }
  conn_flush (c);
}

void
hvv_core_tx (HvvCore * core, const guint8 * pkt, gsize len, gsize desc_len)
{
  HvvHdr h;
  HvvConn *c;

  if (len < HVV_HDR_SIZE || desc_len < HVV_HDR_SIZE) {
    guest_log (core,
        "bad guest packet: %" G_GSIZE_FORMAT " bytes, shorter than a header",
        desc_len);
    return;
  }
  hvv_hdr_parse (&h, pkt);
  c = NULL;
  if (h.src_cid != core->cfg.guest_cid) {
    guest_log (core,
        "bad guest packet: %s from cid %" G_GUINT64_FORMAT ", not the guest's %"
        G_GUINT64_FORMAT, op_name (h.op), h.src_cid, core->cfg.guest_cid);
    goto reset;
  }
  if (h.dst_cid != HVV_HOST_CID) {
    guest_log (core,
        "bad guest packet: %s to cid %" G_GUINT64_FORMAT ", not the host's",
        op_name (h.op), h.dst_cid);
    goto reset;
  }
  if (h.type != HVV_TYPE_STREAM) {
    guest_log (core, "bad guest packet: %s of type %u (only streams)",
        op_name (h.op), h.type);
    goto reset;
  }
  if (h.len > HVV_MAX_PAYLOAD || h.len > desc_len - HVV_HDR_SIZE
      || h.len > len - HVV_HDR_SIZE) {
    guest_log (core,
        "bad guest packet: %s of %u payload bytes in %" G_GSIZE_FORMAT
        " bytes of buffers", op_name (h.op), h.len, desc_len);
    goto reset;
  }
  if (h.op != HVV_OP_RW && h.len != 0) {
    guest_log (core, "bad guest packet: %s with %u payload bytes",
        op_name (h.op), h.len);
    goto reset;
  }
  c = conn_find (core, h.src_port, h.dst_port);
  if (h.op == HVV_OP_REQUEST) {
    if (c) {
      guest_log (core,
          "bad guest packet: REQUEST %u -> %u: that connection exists",
          h.src_port, h.dst_port);
      goto reset;
    }
    handle_request (core, &h);
    return;
  }
  if (!c) {
    /* no reply to an RST; anything else on no connection is reset */
    if (h.op != HVV_OP_RST) {
      g_debug ("%s %u -> %u: no such connection", op_name (h.op), h.src_port,
          h.dst_port);
      queue_rst (core, h.src_port, h.dst_port);
    }
    return;
  }
  /* every packet tells the guest's buffer */
  c->peer_buf_alloc = h.buf_alloc;
  c->peer_fwd_cnt = h.fwd_cnt;
  if (c->host_readable && peer_credit (c) > 0)
    core->wake (core->wake_data);
  /* credit may have come with any packet: watch the socket again */
  update_watch (c);
  switch (h.op) {
    case HVV_OP_RW:
      handle_rw (c, pkt + HVV_HDR_SIZE, h.len);
      return;
    case HVV_OP_CREDIT_UPDATE:
      return;
    case HVV_OP_CREDIT_REQUEST:
      c->need_credit_update = TRUE;
      core->wake (core->wake_data);
      return;
    case HVV_OP_SHUTDOWN:
      if (h.flags == 0 || (h.flags & ~(guint32) (HVV_SHUTDOWN_RCV |
                  HVV_SHUTDOWN_SEND))) {
        guest_log (core, "bad guest packet: SHUTDOWN %u -> %u with flags 0x%x",
            h.src_port, h.dst_port, h.flags);
        goto reset;
      }
      handle_shutdown (c, h.flags);
      return;
    case HVV_OP_RST:
      conn_close (c, FALSE, "reset by the guest");
      return;
    default:
      guest_log (core, "bad guest packet: op %u (%s) %u -> %u", h.op,
          op_name (h.op), h.src_port, h.dst_port);
      goto reset;
  }

reset:
  if (!c && h.src_cid == core->cfg.guest_cid && h.dst_cid == HVV_HOST_CID)
    c = conn_find (core, h.src_port, h.dst_port);
  if (c)
    conn_close (c, TRUE, "bad packet from the guest");
  else if (h.op != HVV_OP_RST)
    queue_rst (core, h.src_port, h.dst_port);
}

static gsize
packet (HvvCore * core, HvvConn * c, guint8 * buf, guint32 guest_port,
    guint32 host_port, guint16 op, guint32 flags, guint32 len)
{
  HvvHdr h = {
    .src_cid = HVV_HOST_CID,
    .dst_cid = core->cfg.guest_cid,
    .src_port = host_port,
    .dst_port = guest_port,
    .len = len,
    .type = HVV_TYPE_STREAM,
    .op = op,
    .flags = flags,
    .buf_alloc = c ? core->cfg.buf_alloc : 0,
    .fwd_cnt = c ? c->fwd_cnt : 0,
  };
  if (c) {
    c->fwd_cnt_sent = c->fwd_cnt;
    c->need_credit_update = FALSE;
  }
  hvv_hdr_write (&h, buf);
  return HVV_HDR_SIZE + len;
}

/* The next packet of @c, or 0. */
static gsize
conn_next_rx (HvvConn * c, guint8 * buf, gsize cap)
{
  HvvCore *core = c->core;

  if (c->need_response) {
    c->need_response = FALSE;
    update_watch (c);
    return packet (core, c, buf, c->guest_port, c->host_port,
        HVV_OP_RESPONSE, 0, 0);
  }
  if (c->host_readable && !(c->guest_shut & HVV_SHUTDOWN_RCV)) {
    gsize want = MIN (MIN (cap - HVV_HDR_SIZE, HVV_MAX_PAYLOAD),
        peer_credit (c));
    gssize n;

    if (want > 0) {
      do
        n = recv (c->fd, buf + HVV_HDR_SIZE, want, MSG_DONTWAIT);
      while (n < 0 && errno == EINTR);
      if (n > 0) {
        c->tx_cnt += n;
        update_watch (c);
        return packet (core, c, buf, c->guest_port, c->host_port, HVV_OP_RW,
            0, n);
      }
      c->host_readable = FALSE;
      if (n == 0) {
        c->host_eof = TRUE;
      } else if (errno != EAGAIN && errno != EWOULDBLOCK) {
        gchar *why = g_strdup_printf ("reading the host socket: %s",
            g_strerror (errno));
        conn_close (c, TRUE, why);
        g_free (why);
        return 0;
      }
      update_watch (c);
    }
  } else if (c->host_readable && (c->guest_shut & HVV_SHUTDOWN_RCV)) {
    c->host_readable = FALSE;
  }
  if (c->host_eof && !c->host_eof_sent) {
    c->host_eof_sent = TRUE;
    return packet (core, c, buf, c->guest_port, c->host_port,
        HVV_OP_SHUTDOWN, HVV_SHUTDOWN_SEND, 0);
  }
  if (c->need_credit_update)
    return packet (core, c, buf, c->guest_port, c->host_port,
        HVV_OP_CREDIT_UPDATE, 0, 0);
  return 0;
}

gsize
hvv_core_next_rx (HvvCore * core, guint8 * buf, gsize cap)
{
  HvvRst *r;
  guint i, n;

  if (cap < HVV_HDR_SIZE)
    return 0;
  r = g_queue_pop_head (&core->rsts);
  if (r) {
    gsize len = packet (core, NULL, buf, r->guest_port, r->host_port,
        HVV_OP_RST, 0, 0);
    g_free (r);
    return len;
  }
  /* round robin: one packet per connection in turn */
  for (i = 0; i < core->conns->len;) {
    HvvConn *c;
    gsize len;

    n = core->conns->len;
    c = g_ptr_array_index (core->conns, (core->rr + i) % n);
    len = conn_next_rx (c, buf, cap);
    if (len) {
      core->rr = (core->rr + i + 1) % n;
      return len;
    }
    /* closed: its RST is queued */
    if (core->conns->len != n)
      return hvv_core_next_rx (core, buf, cap);
    i++;
  }
  return 0;
}

static gboolean
on_timer (gpointer data)
{
  HvvCore *core = data;
  gint64 now = g_get_monotonic_time ();
  guint i;

  for (i = core->conns->len; i > 0; i--) {
    HvvConn *c = g_ptr_array_index (core->conns, i - 1);
    if (c->close_deadline && now > c->close_deadline)
      conn_close (c, TRUE, "closed by the guest, but the host socket took "
          "not all its data in time");
  }
  return G_SOURCE_CONTINUE;
}

HvvCore *
hvv_core_new (const HvvCoreConfig * config, HvvWakeFunc wake,
    gpointer wake_data)
{
  HvvCore *core = g_new0 (HvvCore, 1);

  core->cfg = *config;
  core->uds_path = g_strdup (config->uds_path);
  core->cfg.uds_path = core->uds_path;
  core->wake = wake;
  core->wake_data = wake_data;
  core->context = g_main_context_ref_thread_default ();
  core->conns = g_ptr_array_new ();
  g_queue_init (&core->rsts);
  core->timer = g_timeout_source_new (500);
  g_source_set_callback (core->timer, on_timer, core, NULL);
  g_source_attach (core->timer, core->context);
  return core;
}

void
hvv_core_reset (HvvCore * core)
{
  guint n = core->conns->len;

  while (core->conns->len > 0) {
    HvvConn *c = g_ptr_array_steal_index_fast (core->conns, 0);
    conn_free (c);
  }
  g_queue_clear_full (&core->rsts, g_free);
  core->rr = 0;
  if (n)
    g_message ("guest gone or reset: %u connections closed", n);
}

void
hvv_core_free (HvvCore * core)
{
  hvv_core_reset (core);
  g_ptr_array_unref (core->conns);
  g_source_destroy (core->timer);
  g_source_unref (core->timer);
  g_main_context_unref (core->context);
  g_free (core->uds_path);
  g_free (core);
}

guint
hvv_core_n_conns (HvvCore * core)
{
  return core->conns->len;
}

gsize
hvv_core_buffered (HvvCore * core)
{
  gsize n = 0;
  guint i;

  for (i = 0; i < core->conns->len; i++)
    n += ((HvvConn *) g_ptr_array_index (core->conns, i))->to_host_len;
  return n;
}
