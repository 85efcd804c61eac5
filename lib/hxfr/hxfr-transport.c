/* HXFR transports. See hxfr-transport.h.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE             /* POLLRDHUP */
#endif
#include "hxfr-transport.h"

#include <errno.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/stat.h>
#include <unistd.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <gio/gunixsocketaddress.h>

#ifdef __linux__
#include <linux/vm_sockets.h>
#define HXFR_HAVE_VSOCK 1
#endif

struct _HxfrConn
{
  gint refcount;
  GSocket *socket;
  /* what GSocketClient connected, or NULL: it owns @socket, and goes with
   * the connection */
  GSocketConnection *connection;
  GMutex write_lock;            /* serialises whole messages on the socket */
  gboolean write_failed;        /* under write_lock: a send failed, maybe
                                 * mid-message; nothing more may follow */
  guint64 bytes_sent;           /* __atomic builtins: any thread may read */
  guint64 bytes_received;
  /* hxfr_conn_peek(): bytes the next read returns first (reader only) */
  guint8 unread[HXFR_HEADER_SIZE];
  guint8 unread_len, unread_off;
  gint64 unread_deadline;       /* the peeked message's, from its first byte */
};

struct _HxfrListener
{
  GSocket *socket;
  HxfrAddress *address;
  gboolean unlink_on_free;
};

/* Addresses */

HxfrAddress *
hxfr_address_new_vsock (guint32 cid, guint32 port)
{
  HxfrAddress *a = g_new0 (HxfrAddress, 1);

  a->kind = HXFR_ADDRESS_VSOCK;
  a->cid = cid;
  a->port = port;
  return a;
}

HxfrAddress *
hxfr_address_new_tcp (const gchar * host, guint32 port)
{
  HxfrAddress *a = g_new0 (HxfrAddress, 1);

  a->kind = HXFR_ADDRESS_TCP;
  a->host = g_strdup (host);
  a->port = port;
  return a;
}

HxfrAddress *
hxfr_address_new_unix (const gchar * path)
{
  HxfrAddress *a = g_new0 (HxfrAddress, 1);

  a->kind = HXFR_ADDRESS_UNIX;
  a->path = g_strdup (path);
  return a;
}

HxfrAddress *
hxfr_address_copy (const HxfrAddress * addr)
{
  HxfrAddress *a = g_new0 (HxfrAddress, 1);

  *a = *addr;
  a->host = g_strdup (addr->host);
  a->path = g_strdup (addr->path);
  return a;
}

void
hxfr_address_free (HxfrAddress * addr)
{
  if (!addr)
    return;
  g_free (addr->host);
  g_free (addr->path);
  g_free (addr);
}

static gboolean
parse_u32 (const gchar * s, guint32 max, guint32 * out)
{
  guint64 v;

  if (!g_ascii_string_to_unsigned (s, 10, 0, max, &v, NULL))
    return FALSE;
  *out = (guint32) v;
  return TRUE;
}

HxfrAddress *
hxfr_address_parse (const gchar * spec, GError ** error)
{
  const gchar *rest;

  if (g_str_has_prefix (spec, "unix:")) {
    rest = spec + 5;
    if (*rest == '\0' || strlen (rest) >= sizeof (((struct sockaddr_un *)
                NULL)->sun_path))
      goto bad;
    return hxfr_address_new_unix (rest);
  }

  if (g_str_has_prefix (spec, "tcp:")) {
    g_autoptr (GSocketConnectable) parsed = NULL;
    const gchar *colon, *host;
    guint32 port;

    /* GLib splits host and port ("[v6]:PORT" too); the port must be
     * written, as a number (GLib would take a default or a service name) */
    rest = spec + 4;
    colon = strrchr (rest, ':');
    if (!colon || !parse_u32 (colon + 1, 65535, &port))
      goto bad;
    parsed = g_network_address_parse (rest, 0, NULL);
    if (!parsed)
      goto bad;
    host = g_network_address_get_hostname (G_NETWORK_ADDRESS (parsed));
    if (*host == '\0'
        || g_network_address_get_port (G_NETWORK_ADDRESS (parsed)) != port)
      goto bad;
    return hxfr_address_new_tcp (host, port);
  }

  if (g_str_has_prefix (spec, "vsock:")) {
    g_auto (GStrv) parts = g_strsplit (spec + 6, ":", -1);
    guint32 cid = HXFR_VSOCK_CID_ANY, port;
    guint n = g_strv_length (parts);

    if (n == 1 && parse_u32 (parts[0], G_MAXUINT32, &port))
      return hxfr_address_new_vsock (cid, port);
    if (n == 2 && parse_u32 (parts[0], G_MAXUINT32, &cid)
        && parse_u32 (parts[1], G_MAXUINT32, &port))
      return hxfr_address_new_vsock (cid, port);
  }

bad:
  g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT,
      "'%s' is not an address: expected vsock:PORT, vsock:CID:PORT, "
      "tcp:HOST:PORT or unix:PATH", spec);
  return NULL;
}

gchar *
hxfr_address_to_string (const HxfrAddress * addr)
{
  switch (addr->kind) {
    case HXFR_ADDRESS_VSOCK:
      if (addr->cid == HXFR_VSOCK_CID_ANY)
        return g_strdup_printf ("vsock:%u", addr->port);
      return g_strdup_printf ("vsock:%u:%u", addr->cid, addr->port);
    case HXFR_ADDRESS_TCP:
      if (strchr (addr->host, ':'))
        return g_strdup_printf ("tcp:[%s]:%u", addr->host, addr->port);
      return g_strdup_printf ("tcp:%s:%u", addr->host, addr->port);
    case HXFR_ADDRESS_UNIX:
    default:
      return g_strdup_printf ("unix:%s", addr->path);
  }
}

/* Socket creation: GLib has no vsock address type, so vsock goes through
 * a native sockaddr. */
static GSocket *
socket_for_address (const HxfrAddress * addr, GSocketAddress ** sockaddr,
    GCancellable * cancellable, GError ** error)
{
  GSocket *sock = NULL;

  switch (addr->kind) {
    case HXFR_ADDRESS_UNIX:
      *sockaddr = g_unix_socket_address_new (addr->path);
      sock = g_socket_new (G_SOCKET_FAMILY_UNIX, G_SOCKET_TYPE_STREAM,
          G_SOCKET_PROTOCOL_DEFAULT, error);
      break;
    case HXFR_ADDRESS_TCP:{
      GInetAddress *inet = g_inet_address_new_from_string (addr->host);

      if (!inet) {
        GResolver *resolver = g_resolver_get_default ();
        GList *list = g_resolver_lookup_by_name (resolver, addr->host,
            cancellable, error);

        g_object_unref (resolver);
        if (!list)
          return NULL;
        inet = g_object_ref (list->data);
        g_resolver_free_addresses (list);
      }
      *sockaddr = g_inet_socket_address_new (inet, addr->port);
      sock = g_socket_new (g_inet_address_get_family (inet),
          G_SOCKET_TYPE_STREAM, G_SOCKET_PROTOCOL_TCP, error);
      g_object_unref (inet);
      if (sock)
        g_socket_set_option (sock, IPPROTO_TCP, TCP_NODELAY, 1, NULL);
      break;
    }
    case HXFR_ADDRESS_VSOCK:{
#ifdef HXFR_HAVE_VSOCK
      struct sockaddr_vm svm;
      int fd;

      memset (&svm, 0, sizeof (svm));
      svm.svm_family = AF_VSOCK;
      svm.svm_cid = addr->cid == HXFR_VSOCK_CID_ANY ? VMADDR_CID_ANY :
          addr->cid;
      svm.svm_port = addr->port;
      *sockaddr = g_native_socket_address_new (&svm, sizeof (svm));
      fd = socket (AF_VSOCK, SOCK_STREAM | SOCK_CLOEXEC, 0);
      if (fd < 0) {
        int e = errno;

        g_set_error (error, G_IO_ERROR, g_io_error_from_errno (e),
            "socket(AF_VSOCK): %s", g_strerror (e));
        return NULL;
      }
      sock = g_socket_new_from_fd (fd, error);
      if (!sock)
        close (fd);
#else
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_NOT_SUPPORTED,
          "vsock is not available on this platform");
#endif
      break;
    }
  }
  if (!sock)
    g_clear_object (sockaddr);
  return sock;
}

gint64
hxfr_deadline_from_timeout (gint64 timeout_us)
{
  return timeout_us < 0 ? -1 : g_get_monotonic_time () + timeout_us;
}

gint64
hxfr_deadline_left (gint64 deadline)
{
  gint64 left;

  if (deadline < 0)
    return -1;
  left = deadline - g_get_monotonic_time ();
  return MAX (left, 0);
}

static gboolean
wait_condition (GSocket * sock, GIOCondition cond, gint64 deadline,
    GCancellable * cancellable, GError ** error)
{
  gint64 left = hxfr_deadline_left (deadline);

  if (left == 0) {
    g_set_error_literal (error, G_IO_ERROR, G_IO_ERROR_TIMED_OUT, "timed out");
    return FALSE;
  }
  return g_socket_condition_timed_wait (sock, cond, left, cancellable, error);
}

HxfrConn *
hxfr_conn_new (GSocket * socket)
{
  HxfrConn *conn = g_new0 (HxfrConn, 1);

  conn->refcount = 1;
  conn->socket = g_object_ref (socket);
  g_mutex_init (&conn->write_lock);
  g_socket_set_blocking (socket, FALSE);
  return conn;
}

/* vsock: GIO has no address type for it, so the socket is made by hand */
static HxfrConn *
connect_vsock (const HxfrAddress * addr, gint64 deadline,
    GCancellable * cancellable, GError ** error)
{
  g_autoptr (GSocketAddress) sockaddr = NULL;
  g_autoptr (GSocket) sock = NULL;
  g_autoptr (GError) err = NULL;

  sock = socket_for_address (addr, &sockaddr, cancellable, error);
  if (!sock)
    return NULL;
  g_socket_set_blocking (sock, FALSE);
  if (!g_socket_connect (sock, sockaddr, cancellable, &err)) {
    if (!g_error_matches (err, G_IO_ERROR, G_IO_ERROR_PENDING)) {
      g_propagate_error (error, g_steal_pointer (&err));
      return NULL;
    }
    g_clear_error (&err);
    if (!wait_condition (sock, G_IO_OUT, deadline, cancellable, error)
        || !g_socket_check_connect_result (sock, error))
      return NULL;
  }
  return hxfr_conn_new (sock);
}

typedef struct
{
  GSocketConnection *connection;
  GError *error;
  gboolean done;
  gboolean timed_out;
  GCancellable *cancellable;
} Connecting;

static void
on_connected (GObject * source, GAsyncResult * res, gpointer data)
{
  Connecting *c = data;

  c->connection = g_socket_client_connect_finish (G_SOCKET_CLIENT (source),
      res, &c->error);
  c->done = TRUE;
}

static gboolean
on_connect_deadline (gpointer data)
{
  Connecting *c = data;

  c->timed_out = TRUE;
  g_cancellable_cancel (c->cancellable);
  return G_SOURCE_REMOVE;
}

static void
on_caller_cancelled (GCancellable * caller, gpointer data)
{
  g_cancellable_cancel (G_CANCELLABLE (data));
}

/* TCP and UNIX through GSocketClient, which tries every address a name
 * resolves to; the name lookup too is inside @deadline (the client's own
 * timeout covers neither, and counts whole seconds per attempt). */
static HxfrConn *
connect_with_client (const HxfrAddress * addr, gint64 deadline,
    GCancellable * cancellable, GError ** error)
{
  g_autoptr (GSocketClient) client = g_socket_client_new ();
  g_autoptr (GSocketConnectable) target = NULL;
  g_autoptr (GMainContext) ctx = g_main_context_new ();
  Connecting c = { 0, };
  GSocket *sock;
  HxfrConn *conn;
  GSource *timer = NULL;
  gulong handler = 0;

  /* our protocol is not HTTP: no proxy (that would also open the proxy
   * resolver and a network monitor, descriptors kept for the process) */
  g_socket_client_set_enable_proxy (client, FALSE);
  target = addr->kind == HXFR_ADDRESS_UNIX ?
      G_SOCKET_CONNECTABLE (g_unix_socket_address_new (addr->path)) :
      g_network_address_new (addr->host, addr->port);
  c.cancellable = g_cancellable_new ();
  if (cancellable)
    handler = g_cancellable_connect (cancellable,
        G_CALLBACK (on_caller_cancelled), c.cancellable, NULL);
  g_main_context_push_thread_default (ctx);
  if (deadline >= 0) {
    timer = g_timeout_source_new (MAX (deadline - g_get_monotonic_time (), 0)
        / 1000);
    g_source_set_callback (timer, on_connect_deadline, &c, NULL);
    g_source_attach (timer, ctx);
  }
  g_socket_client_connect_async (client, target, c.cancellable, on_connected,
      &c);
  while (!c.done)
    g_main_context_iteration (ctx, TRUE);
  if (timer) {
    g_source_destroy (timer);
    g_source_unref (timer);
  }
  g_main_context_pop_thread_default (ctx);
  if (cancellable)
    g_cancellable_disconnect (cancellable, handler);
  g_object_unref (c.cancellable);

  if (!c.connection) {
    if (c.timed_out) {
      g_clear_error (&c.error);
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_TIMED_OUT,
          "connecting to %s timed out", addr->kind == HXFR_ADDRESS_UNIX ?
          addr->path : addr->host);
    } else {
      g_propagate_error (error, c.error);
    }
    return NULL;
  }
  sock = g_socket_connection_get_socket (c.connection);
  if (addr->kind == HXFR_ADDRESS_TCP)
    g_socket_set_option (sock, IPPROTO_TCP, TCP_NODELAY, 1, NULL);
  conn = hxfr_conn_new (sock);
  conn->connection = c.connection;
  return conn;
}

HxfrConn *
hxfr_conn_connect (const HxfrAddress * addr, gint64 timeout_us,
    GCancellable * cancellable, GError ** error)
{
  gint64 deadline = hxfr_deadline_from_timeout (timeout_us);

  if (addr->kind == HXFR_ADDRESS_VSOCK)
    return connect_vsock (addr, deadline, cancellable, error);
  return connect_with_client (addr, deadline, cancellable, error);
}

HxfrConn *
hxfr_conn_ref (HxfrConn * conn)
{
  g_atomic_int_inc (&conn->refcount);
  return conn;
}

void
hxfr_conn_unref (HxfrConn * conn)
{
  if (!conn || !g_atomic_int_dec_and_test (&conn->refcount))
    return;
  /* the peer sees the end now, even if another descriptor of this socket
   * still lives somewhere (close alone sends no FIN then); closed here, not
   * when the last reference to the connection goes (GSocketClient may
   * hold one a while longer) */
  g_socket_shutdown (conn->socket, TRUE, TRUE, NULL);
  g_socket_close (conn->socket, NULL);
  g_object_unref (conn->socket);
  g_clear_object (&conn->connection);
  g_mutex_clear (&conn->write_lock);
  g_free (conn);
}

GSocket *
hxfr_conn_get_socket (HxfrConn * conn)
{
  return conn->socket;
}

void
hxfr_conn_shutdown (HxfrConn * conn)
{
  g_socket_shutdown (conn->socket, TRUE, TRUE, NULL);
}

guint64
hxfr_conn_get_bytes_sent (HxfrConn * conn)
{
  return __atomic_load_n (&conn->bytes_sent, __ATOMIC_RELAXED);
}

guint64
hxfr_conn_get_bytes_received (HxfrConn * conn)
{
  return __atomic_load_n (&conn->bytes_received, __ATOMIC_RELAXED);
}

static void
count_bytes (guint64 * counter, gsize n)
{
  __atomic_fetch_add (counter, (guint64) n, __ATOMIC_RELAXED);
}

static gboolean
read_with_deadline (HxfrConn * conn, guint8 * buf, gsize len,
    gint64 deadline, GCancellable * cancellable, GError ** error)
{
  gsize done = 0;

  if (conn->unread_off < conn->unread_len) {
    done = MIN (len, (gsize) (conn->unread_len - conn->unread_off));
    memcpy (buf, conn->unread + conn->unread_off, done);
    conn->unread_off += done;
  }
  while (done < len) {
    GError *err = NULL;
    gssize n = g_socket_receive_with_blocking (conn->socket,
        (gchar *) buf + done, len - done, FALSE, cancellable, &err);

    if (n > 0) {
      done += n;
      count_bytes (&conn->bytes_received, n);
      continue;
    }
    if (n == 0) {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_CONNECTION_CLOSED,
          "peer closed the connection%s", done ? " mid-message" : "");
      return FALSE;
    }
    if (!g_error_matches (err, G_IO_ERROR, G_IO_ERROR_WOULD_BLOCK)) {
      g_propagate_error (error, err);
      return FALSE;
    }
    g_error_free (err);
    if (!wait_condition (conn->socket, G_IO_IN, deadline, cancellable, error))
      return FALSE;
  }
  return TRUE;
}

gboolean
hxfr_conn_read_exact (HxfrConn * conn, gpointer buf, gsize len,
    gint64 timeout_us, GCancellable * cancellable, GError ** error)
{
  return read_with_deadline (conn, buf, len, hxfr_deadline_from_timeout
      (timeout_us), cancellable, error);
}

gboolean
hxfr_conn_peek (HxfrConn * conn, guint8 * out, gsize len,
    gint64 first_byte_timeout_us, gint64 idle_timeout_us,
    GCancellable * cancellable, GError ** error)
{
  gint64 deadline;

  g_return_val_if_fail (len <= sizeof (conn->unread), FALSE);
  g_return_val_if_fail (conn->unread_off == 0, FALSE);
  if (!hxfr_conn_wait_readable (conn, first_byte_timeout_us, cancellable,
          error))
    return FALSE;
  deadline = hxfr_deadline_from_timeout (idle_timeout_us);
  conn->unread_deadline = deadline;
  /* read into the put-back buffer itself: whatever arrived stays there for
   * the next reader, even if the rest does not come */
  while (conn->unread_len < len) {
    GError *err = NULL;
    gssize n = g_socket_receive_with_blocking (conn->socket,
        (gchar *) conn->unread + conn->unread_len, len - conn->unread_len,
        FALSE, cancellable, &err);

    if (n > 0) {
      conn->unread_len += n;
      count_bytes (&conn->bytes_received, n);
      continue;
    }
    if (n == 0) {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_CONNECTION_CLOSED,
          "peer closed the connection%s", conn->unread_len ?
          " mid-message" : "");
      return FALSE;
    }
    if (!g_error_matches (err, G_IO_ERROR, G_IO_ERROR_WOULD_BLOCK)) {
      g_propagate_error (error, err);
      return FALSE;
    }
    g_error_free (err);
    if (!wait_condition (conn->socket, G_IO_IN, deadline, cancellable, error))
      return FALSE;
  }
  memcpy (out, conn->unread, len);
  return TRUE;
}


gboolean
hxfr_conn_peek_header (HxfrConn * conn, gint64 first_byte_timeout_us,
    gint64 idle_timeout_us, HxfrHeader * header, GCancellable * cancellable,
    GError ** error)
{
  guint8 bytes[HXFR_HEADER_SIZE];

  return hxfr_conn_peek (conn, bytes, sizeof (bytes), first_byte_timeout_us,
      idle_timeout_us, cancellable, error)
      && hxfr_header_parse (bytes, header, error);
}

gint64
hxfr_conn_get_message_deadline (HxfrConn * conn)
{
  return conn->unread_off < conn->unread_len ? conn->unread_deadline : 0;
}

gboolean
hxfr_conn_skip (HxfrConn * conn, gsize len, gint64 timeout_us,
    GCancellable * cancellable, GError ** error)
{
  guint8 scratch[4096];
  gint64 deadline = hxfr_deadline_from_timeout (timeout_us);

  while (len > 0) {
    gsize n = MIN (len, sizeof (scratch));

    if (!read_with_deadline (conn, scratch, n, deadline, cancellable, error))
      return FALSE;
    len -= n;
  }
  return TRUE;
}

gboolean
hxfr_conn_peer_has_closed (HxfrConn * conn)
{
  struct pollfd pfd = { 0, };

  pfd.fd = g_socket_get_fd (conn->socket);
#ifdef POLLRDHUP
  /* TCP reports a FIN as RDHUP only; UNIX and vsock as HUP */
  pfd.events = POLLRDHUP;
#endif
  if (poll (&pfd, 1, 0) != 1)
    return FALSE;
  return (pfd.revents & (POLLHUP | POLLERR
#ifdef POLLRDHUP
          | POLLRDHUP
#endif
      )) != 0;
}

gboolean
hxfr_conn_wait_readable (HxfrConn * conn, gint64 timeout_us,
    GCancellable * cancellable, GError ** error)
{
  if (conn->unread_off < conn->unread_len)
    return TRUE;
  return wait_condition (conn->socket, G_IO_IN,
      hxfr_deadline_from_timeout (timeout_us), cancellable, error);
}

/* @progress_bound: @timeout_us bounds each wait for the peer to take bytes
 * (it restarts whenever some are taken), not the whole message */
static gboolean
send_message (HxfrConn * conn, guint8 type, guint8 flags,
    guint16 session_id, const void *fixed, gsize fixed_len,
    const GOutputVector * tail, guint n_tail, gint64 timeout_us,
    gboolean progress_bound, GCancellable * cancellable, GError ** error)
{
  guint8 header_bytes[HXFR_HEADER_SIZE];
  GOutputVector stack_vecs[8];
  GOutputVector *vecs;
  guint n_vecs = 0, first = 0, i;
  guint64 payload = fixed_len;
  HxfrHeader header;
  gint64 deadline = hxfr_deadline_from_timeout (timeout_us);
  gboolean ok = TRUE;

  for (i = 0; i < n_tail; i++)
    payload += tail[i].size;
  if (payload > G_MAXUINT32) {
    g_set_error (error, HXFR_ERROR, HXFR_ERR_LIMIT,
        "%s payload of %" G_GUINT64_FORMAT " bytes does not fit a message",
        hxfr_msg_type_name (type), payload);
    return FALSE;
  }
  header.type = type;
  header.flags = flags;
  header.session_id = session_id;
  header.payload_size = (guint32) payload;
  hxfr_header_write (header_bytes, &header);

  vecs = n_tail + 2 <= G_N_ELEMENTS (stack_vecs) ? stack_vecs :
      g_new (GOutputVector, n_tail + 2);
  vecs[n_vecs].buffer = header_bytes;
  vecs[n_vecs++].size = HXFR_HEADER_SIZE;
  if (fixed_len) {
    vecs[n_vecs].buffer = fixed;
    vecs[n_vecs++].size = fixed_len;
  }
  for (i = 0; i < n_tail; i++)
    if (tail[i].size)
      vecs[n_vecs++] = tail[i];

  g_mutex_lock (&conn->write_lock);
  /* after a failed send the stream may end inside a message, and a peer
   * that did not drain it within the bound is not going to: another
   * message (an ERROR, say) would only wait out its own timeout */
  if (conn->write_failed) {
    g_set_error (error, G_IO_ERROR, G_IO_ERROR_BROKEN_PIPE,
        "an earlier message to this peer could not be sent");
    ok = FALSE;
    first = n_vecs;
  }
  while (first < n_vecs) {
    GError *err = NULL;
    gssize n = g_socket_send_message (conn->socket, NULL, vecs + first,
        n_vecs - first, NULL, 0, G_SOCKET_MSG_NONE, cancellable, &err);

    if (n < 0) {
      if (!g_error_matches (err, G_IO_ERROR, G_IO_ERROR_WOULD_BLOCK)) {
        g_propagate_error (error, err);
        ok = FALSE;
        break;
      }
      g_error_free (err);
      if (!wait_condition (conn->socket, G_IO_OUT, deadline, cancellable,
              error)) {
        ok = FALSE;
        break;
      }
      continue;
    }
    count_bytes (&conn->bytes_sent, n);
    if (progress_bound && n > 0)
      deadline = hxfr_deadline_from_timeout (timeout_us);
    /* advance past what was written, possibly mid-vector */
    while (first < n_vecs && (gsize) n >= vecs[first].size) {
      n -= vecs[first].size;
      first++;
    }
    if (first < n_vecs && n > 0) {
      vecs[first].buffer = (const guint8 *) vecs[first].buffer + n;
      vecs[first].size -= n;
    }
  }
  if (!ok)
    conn->write_failed = TRUE;
  g_mutex_unlock (&conn->write_lock);

  if (vecs != stack_vecs)
    g_free (vecs);
  return ok;
}

gboolean
hxfr_conn_send (HxfrConn * conn, guint8 type, guint8 flags,
    guint16 session_id, const void *fixed, gsize fixed_len,
    const GOutputVector * tail, guint n_tail, gint64 timeout_us,
    GCancellable * cancellable, GError ** error)
{
  return send_message (conn, type, flags, session_id, fixed, fixed_len, tail,
      n_tail, timeout_us, FALSE, cancellable, error);
}

gboolean
hxfr_conn_send_to_slow_reader (HxfrConn * conn, guint8 type, guint8 flags,
    guint16 session_id, const void *fixed, gsize fixed_len,
    const GOutputVector * tail, guint n_tail, gint64 stall_timeout_us,
    GCancellable * cancellable, GError ** error)
{
  return send_message (conn, type, flags, session_id, fixed, fixed_len, tail,
      n_tail, stall_timeout_us, TRUE, cancellable, error);
}

gboolean
hxfr_conn_set_send_buffer (HxfrConn * conn, gint bytes, GError ** error)
{
  return g_socket_set_option (conn->socket, SOL_SOCKET, SO_SNDBUF, bytes,
      error);
}

gboolean
hxfr_conn_send_error (HxfrConn * conn, guint16 session_id, gint32 code,
    const gchar * message, gint64 timeout_us, GError ** error)
{
  guint8 payload[HXFR_ERROR_SIZE];

  hxfr_error_write (code, message, payload);
  return hxfr_conn_send (conn, HXFR_MSG_ERROR, 0, session_id, payload,
      sizeof (payload), NULL, 0, timeout_us, NULL, error);
}

gboolean
hxfr_conn_get_peer_uid (HxfrConn * conn, guint * uid)
{
  g_autoptr (GCredentials) creds = NULL;
  uid_t u;

  if (g_socket_get_family (conn->socket) != G_SOCKET_FAMILY_UNIX)
    return FALSE;
  creds = g_socket_get_credentials (conn->socket, NULL);
  if (!creds)
    return FALSE;
  u = g_credentials_get_unix_user (creds, NULL);
  if (u == (uid_t) - 1)
    return FALSE;
  *uid = u;
  return TRUE;
}

gboolean
hxfr_conn_get_peer_cid (HxfrConn * conn, guint32 * cid)
{
#ifdef HXFR_HAVE_VSOCK
  struct sockaddr_vm svm;
  socklen_t len = sizeof (svm);

  if (getpeername (g_socket_get_fd (conn->socket), (struct sockaddr *) &svm,
          &len) != 0 || svm.svm_family != AF_VSOCK)
    return FALSE;
  *cid = svm.svm_cid;
  return TRUE;
#else
  return FALSE;
#endif
}

static gchar *
peer_string (HxfrConn * conn, gboolean with_port)
{
  g_autoptr (GSocketAddress) remote = NULL;
  guint32 cid;
  guint uid;

  if (hxfr_conn_get_peer_cid (conn, &cid))
    return g_strdup_printf ("vsock cid %u", cid);
  if (hxfr_conn_get_peer_uid (conn, &uid))
    return g_strdup_printf ("unix uid %u", uid);
  remote = g_socket_get_remote_address (conn->socket, NULL);
  if (remote && G_IS_INET_SOCKET_ADDRESS (remote)) {
    GInetSocketAddress *isa = G_INET_SOCKET_ADDRESS (remote);
    g_autofree gchar *ip =
        g_inet_address_to_string (g_inet_socket_address_get_address (isa));

    if (!with_port)
      return g_strdup_printf ("tcp %s", ip);
    return g_strdup_printf ("tcp %s:%u", ip,
        g_inet_socket_address_get_port (isa));
  }
  return g_strdup ("unknown peer");
}

gchar *
hxfr_conn_describe_peer (HxfrConn * conn)
{
  return peer_string (conn, TRUE);
}

gchar *
hxfr_conn_get_peer_identity (HxfrConn * conn)
{
  return peer_string (conn, FALSE);
}

/* Message reader */

static gboolean
check_frame_request (HxfrMessage * msg, const HxfrLimits * limits,
    GError ** error)
{
  HxfrFrameRequest *r = &msg->u.frame_request;
  gboolean pixels = (msg->header.flags & HXFR_FLAG_PIXEL_DATA) != 0;

  if (!pixels) {
    if (r->resource_id == 0) {
      g_set_error (error, HXFR_ERROR, HXFR_ERR_INVALID,
          "frame request with neither a resource id nor pixels");
      return FALSE;
    }
    return hxfr_frame_request_validate (r, limits, 0, error);
  }
  if (msg->tail_size == 0) {
    g_set_error (error, HXFR_ERROR, HXFR_ERR_INVALID,
        "frame request flagged PIXEL_DATA carries no pixels");
    return FALSE;
  }
  if (!hxfr_frame_request_validate (r, limits, msg->tail_size, error))
    return FALSE;
  if (msg->header.type == HXFR_MSG_FRAME_REQUEST) {
    guint n_planes;
    guint32 strides[HXFR_MAX_PLANES], offsets[HXFR_MAX_PLANES];
    gsize expected = hxfr_frame_v1_layout (r->format, r->height, r->stride[0],
        &n_planes, strides, offsets);

    /* v1 frames are the whole default-layout buffer, nothing less */
    if (msg->tail_size != expected) {
      g_set_error (error, HXFR_ERROR, HXFR_ERR_INVALID,
          "%" G_GSIZE_FORMAT " pixel bytes for a %ux%u %s frame with stride "
          "%u, which needs %" G_GSIZE_FORMAT, msg->tail_size, r->width,
          r->height, hxfr_format_to_string (r->format), r->stride[0], expected);
      return FALSE;
    }
  }
  return TRUE;
}

static gboolean
parse_fixed (HxfrMessage * msg, const guint8 * fixed, gsize fixed_len,
    GError ** error)
{
  switch (msg->header.type) {
    case HXFR_MSG_FRAME_REQUEST:
      return hxfr_frame_request_parse (fixed, fixed_len, 1,
          &msg->u.frame_request, error);
    case HXFR_MSG_FRAME_REQUEST2:
      return hxfr_frame_request_parse (fixed, fixed_len, 2,
          &msg->u.frame_request, error);
    case HXFR_MSG_FRAME_RESPONSE:
      return hxfr_frame_response_parse (fixed, fixed_len, 1,
          &msg->u.frame_response, error);
    case HXFR_MSG_FRAME_RESPONSE2:
      return hxfr_frame_response_parse (fixed, fixed_len, 2,
          &msg->u.frame_response, error);
    case HXFR_MSG_CONFIG_REQ:
      return hxfr_config_parse (fixed, fixed_len, &msg->u.config, error);
    case HXFR_MSG_HELLO:
      return hxfr_hello_parse (fixed, fixed_len, &msg->u.hello, error);
    case HXFR_MSG_HELLO_ACK:
      return hxfr_hello_ack_parse (fixed, fixed_len, &msg->u.hello_ack, error);
    case HXFR_MSG_CONTROL:
      return hxfr_control_parse (fixed, fixed_len, &msg->u.control, error);
    case HXFR_MSG_ERROR:
      return hxfr_error_parse (fixed, fixed_len, &msg->u.error, error);
    default:
      return TRUE;
  }
}

gboolean
hxfr_conn_read_message (HxfrConn * conn, gsize max_payload,
    gint64 first_byte_timeout_us, gint64 idle_timeout_us, HxfrHeader * header,
    GBytes ** payload, gboolean * begun, GCancellable * cancellable,
    GError ** error)
{
  guint8 bytes[HXFR_HEADER_SIZE];
  gint64 deadline;
  guint8 *data;

  *payload = NULL;
  *begun = FALSE;
  if (!hxfr_conn_wait_readable (conn, first_byte_timeout_us, cancellable,
          error))
    return FALSE;
  *begun = TRUE;
  deadline = hxfr_conn_get_message_deadline (conn);
  if (deadline == 0)
    deadline = hxfr_deadline_from_timeout (idle_timeout_us);
  if (!read_with_deadline (conn, bytes, sizeof (bytes), deadline, cancellable,
          error) || !hxfr_header_parse (bytes, header, error))
    return FALSE;
  if (header->payload_size > max_payload) {
    g_set_error (error, HXFR_ERROR, HXFR_ERR_LIMIT, "%s (0x%02x) with a %u-"
        "byte payload (at most %" G_GSIZE_FORMAT " here)",
        hxfr_msg_type_name (header->type), header->type,
        header->payload_size, max_payload);
    return FALSE;
  }
  if (!header->payload_size)
    return TRUE;
  data = g_malloc (header->payload_size);
  if (!read_with_deadline (conn, data, header->payload_size, deadline,
          cancellable, error)) {
    g_free (data);
    return FALSE;
  }
  *payload = g_bytes_new_take (data, header->payload_size);
  return TRUE;
}

gboolean
hxfr_conn_receive (HxfrConn * conn, HxfrRole role, const HxfrLimits * limits,
    HxfrMessage * msg, gint64 first_byte_timeout_us, gint64 idle_timeout_us,
    GCancellable * cancellable, GError ** error)
{
  guint8 header[HXFR_HEADER_SIZE];
  guint8 fixed[HXFR_MAX_FIXED_SIZE];
  gsize fixed_len;
  gint64 deadline;
  guint type;

  memset (msg, 0, sizeof (*msg));
  if (!hxfr_conn_wait_readable (conn, first_byte_timeout_us, cancellable,
          error))
    return FALSE;

  /* From the first byte on, the rest of the message must arrive within the
   * idle bound: a guest that sends half a message cannot hold us. A message
   * begun in hxfr_conn_peek() keeps the deadline it got there. */
  deadline = hxfr_conn_get_message_deadline (conn);
  if (deadline == 0)
    deadline = hxfr_deadline_from_timeout (idle_timeout_us);
  if (!read_with_deadline (conn, header, sizeof (header), deadline,
          cancellable, error)
      || !hxfr_header_parse (header, &msg->header, error)
      || !hxfr_header_check (&msg->header, role, limits, error))
    return FALSE;

  type = msg->header.type;
  hxfr_msg_fixed_size (type, &fixed_len, NULL);
  if (!read_with_deadline (conn, fixed, fixed_len, deadline, cancellable, error)
      || !parse_fixed (msg, fixed, fixed_len, error))
    return FALSE;
  msg->tail_size = msg->header.payload_size - fixed_len;
  msg->deadline = deadline;

  switch (type) {
    case HXFR_MSG_FRAME_REQUEST:
    case HXFR_MSG_FRAME_REQUEST2:
      return check_frame_request (msg, limits, error);
    case HXFR_MSG_HELLO:
      if (msg->tail_size != msg->u.hello.token_len) {
        g_set_error (error, HXFR_ERROR, HXFR_ERR_INVALID,
            "HELLO announces a %u-byte token but carries %" G_GSIZE_FORMAT,
            msg->u.hello.token_len, msg->tail_size);
        return FALSE;
      }
      if (!read_with_deadline (conn, msg->token, msg->tail_size, deadline,
              cancellable, error))
        return FALSE;
      msg->tail_size = 0;
      return TRUE;
    case HXFR_MSG_CONFIG_RESP:
      /* unspecified by v1: skipped */
      if (!hxfr_conn_skip (conn, msg->tail_size, hxfr_deadline_left (deadline),
              cancellable, error))
        return FALSE;
      msg->tail_size = 0;
      return TRUE;
    case HXFR_MSG_FRAME_RESPONSE:
      if (msg->u.frame_response.nal_count > limits->max_nal_count) {
        g_set_error (error, HXFR_ERROR, HXFR_ERR_LIMIT,
            "FRAME_RESPONSE with %u NAL entries (at most %u)",
            msg->u.frame_response.nal_count, limits->max_nal_count);
        return FALSE;
      }
      return TRUE;
    case HXFR_MSG_FRAME_RESPONSE2:
      switch (msg->u.frame_response.status) {
        case HXFR_STATUS_OK:
          return TRUE;
        case HXFR_STATUS_DROPPED:
          if (msg->tail_size != 0) {
            g_set_error (error, HXFR_ERROR, HXFR_ERR_INVALID,
                "DROPPED answer carries %" G_GSIZE_FORMAT " bytes",
                msg->tail_size);
            return FALSE;
          }
          return TRUE;
        default:
          if (msg->tail_size > HXFR_ERROR_TEXT_SIZE) {
            g_set_error (error, HXFR_ERROR, HXFR_ERR_INVALID,
                "FAILED answer with a %" G_GSIZE_FORMAT "-byte message",
                msg->tail_size);
            return FALSE;
          }
          if (!read_with_deadline (conn, (guint8 *) msg->text, msg->tail_size,
                  deadline, cancellable, error))
            return FALSE;
          msg->text[msg->tail_size] = '\0';
          msg->tail_size = 0;
          return TRUE;
      }
    default:
      return TRUE;
  }
}

/* Listener */

static gboolean
unix_socket_is_live (const gchar * path)
{
  g_autoptr (GSocket) probe = NULL;
  g_autoptr (GSocketAddress) sa = NULL;

  probe = g_socket_new (G_SOCKET_FAMILY_UNIX, G_SOCKET_TYPE_STREAM,
      G_SOCKET_PROTOCOL_DEFAULT, NULL);
  if (!probe)
    return FALSE;
  sa = g_unix_socket_address_new (path);
  return g_socket_connect (probe, sa, NULL, NULL);
}

HxfrListener *
hxfr_listener_new (const HxfrAddress * addr, guint unix_mode, GError ** error)
{
  g_autoptr (GSocketAddress) sockaddr = NULL;
  g_autoptr (GSocket) sock = NULL;
  HxfrListener *l;

  if (addr->kind == HXFR_ADDRESS_UNIX) {
    struct stat st;

    if (lstat (addr->path, &st) == 0) {
      if (!S_ISSOCK (st.st_mode)) {
        g_set_error (error, G_IO_ERROR, G_IO_ERROR_EXISTS,
            "%s exists and is not a socket", addr->path);
        return NULL;
      }
      if (unix_socket_is_live (addr->path)) {
        g_set_error (error, G_IO_ERROR, G_IO_ERROR_ADDRESS_IN_USE,
            "%s is in use by another listener", addr->path);
        return NULL;
      }
      unlink (addr->path);
    }
  }

  sock = socket_for_address (addr, &sockaddr, NULL, error);
  if (!sock)
    return NULL;
  if (!g_socket_bind (sock, sockaddr, TRUE, error))
    return NULL;
  if (addr->kind == HXFR_ADDRESS_UNIX && unix_mode != 0
      && chmod (addr->path, unix_mode) != 0) {
    int e = errno;

    g_set_error (error, G_IO_ERROR, g_io_error_from_errno (e),
        "chmod %s: %s", addr->path, g_strerror (e));
    unlink (addr->path);
    return NULL;
  }
  g_socket_set_listen_backlog (sock, 64);
  if (!g_socket_listen (sock, error)) {
    if (addr->kind == HXFR_ADDRESS_UNIX)
      unlink (addr->path);
    return NULL;
  }
  g_socket_set_blocking (sock, FALSE);

  l = g_new0 (HxfrListener, 1);
  l->socket = g_steal_pointer (&sock);
  l->address = hxfr_address_copy (addr);
  l->unlink_on_free = addr->kind == HXFR_ADDRESS_UNIX;
  if (addr->kind == HXFR_ADDRESS_TCP && addr->port == 0) {
    g_autoptr (GSocketAddress) local =
        g_socket_get_local_address (l->socket, NULL);

    if (local && G_IS_INET_SOCKET_ADDRESS (local))
      l->address->port =
          g_inet_socket_address_get_port (G_INET_SOCKET_ADDRESS (local));
  }
  return l;
}

const HxfrAddress *
hxfr_listener_get_address (HxfrListener * listener)
{
  return listener->address;
}

GSocket *
hxfr_listener_get_socket (HxfrListener * listener)
{
  return listener->socket;
}

HxfrConn *
hxfr_listener_accept (HxfrListener * listener, gint64 timeout_us,
    GCancellable * cancellable, GError ** error)
{
  gint64 deadline = hxfr_deadline_from_timeout (timeout_us);

  for (;;) {
    GError *err = NULL;
    g_autoptr (GSocket) sock =
        g_socket_accept (listener->socket, cancellable, &err);

    if (sock) {
      if (listener->address->kind == HXFR_ADDRESS_TCP)
        g_socket_set_option (sock, IPPROTO_TCP, TCP_NODELAY, 1, NULL);
      return hxfr_conn_new (sock);
    }
    if (!g_error_matches (err, G_IO_ERROR, G_IO_ERROR_WOULD_BLOCK)) {
      g_propagate_error (error, err);
      return NULL;
    }
    g_error_free (err);
    if (!wait_condition (listener->socket, G_IO_IN, deadline, cancellable,
            error))
      return NULL;
  }
}

void
hxfr_listener_free (HxfrListener * listener)
{
  if (!listener)
    return;
  g_socket_close (listener->socket, NULL);
  g_object_unref (listener->socket);
  if (listener->unlink_on_free)
    unlink (listener->address->path);
  hxfr_address_free (listener->address);
  g_free (listener);
}
