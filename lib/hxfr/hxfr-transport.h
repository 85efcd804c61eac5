/* HXFR transports: vsock, TCP and UNIX stream sockets, connect and listen,
 * complete reads and writes with a bound on every wait, and the message
 * reader shared by both sides. The only socket code in the project.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#pragma once

#include <gio/gio.h>
#include "hxfr-protocol.h"

G_BEGIN_DECLS

typedef enum
{
  HXFR_ADDRESS_VSOCK,
  HXFR_ADDRESS_TCP,
  HXFR_ADDRESS_UNIX,
} HxfrAddressKind;

typedef struct
{
  HxfrAddressKind kind;
  guint32 cid;                  /* vsock */
  guint32 port;                 /* vsock, tcp */
  gchar *host;                  /* tcp */
  gchar *path;                  /* unix */
} HxfrAddress;

#define HXFR_VSOCK_CID_ANY 0xFFFFFFFFu
#define HXFR_VSOCK_CID_HOST 2

/* "vsock:PORT" (listen on any CID), "vsock:CID:PORT", "tcp:HOST:PORT"
 * ("[v6]:PORT" for IPv6 literals), "unix:PATH". */
HxfrAddress *hxfr_address_parse (const gchar * spec, GError ** error);
HxfrAddress *hxfr_address_new_vsock (guint32 cid, guint32 port);
HxfrAddress *hxfr_address_new_tcp (const gchar * host, guint32 port);
HxfrAddress *hxfr_address_new_unix (const gchar * path);
HxfrAddress *hxfr_address_copy (const HxfrAddress * addr);
void hxfr_address_free (HxfrAddress * addr);
/* The parseable form: "unix:/run/hx.sock", "tcp:127.0.0.1:15937", ... */
gchar *hxfr_address_to_string (const HxfrAddress * addr);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (HxfrAddress, hxfr_address_free);

/* A connected stream. Reference counted; writes are serialised inside, so
 * any thread may send; one thread at a time reads. */
typedef struct _HxfrConn HxfrConn;

/* The deadline of a phase that may take @timeout_us from now (monotonic,
 * microseconds); -1 for -1 (no bound). */
gint64 hxfr_deadline_from_timeout (gint64 timeout_us);
/* What is left of @deadline (monotonic, microseconds), 0 once it has
 * passed; -1 for -1 (no deadline). Pass it as the timeout of each call of
 * a phase (a handshake, one message) so the phase has one bound. */
gint64 hxfr_deadline_left (gint64 deadline);

/* Timeouts are in microseconds for the whole call; -1 waits without bound
 * (only for the first byte of a message, where idling is legitimate, and
 * always together with a GCancellable). A timeout gives
 * G_IO_ERROR_TIMED_OUT, a cancelled wait G_IO_ERROR_CANCELLED, a peer that
 * closed G_IO_ERROR_CONNECTION_CLOSED. */
HxfrConn *hxfr_conn_connect (const HxfrAddress * addr, gint64 timeout_us,
    GCancellable * cancellable, GError ** error);
HxfrConn *hxfr_conn_new (GSocket * socket);
HxfrConn *hxfr_conn_ref (HxfrConn * conn);
void hxfr_conn_unref (HxfrConn * conn);
GSocket *hxfr_conn_get_socket (HxfrConn * conn);

/* Ends both directions: a thread blocked reading wakes with
 * CONNECTION_CLOSED. Safe from any thread. */
void hxfr_conn_shutdown (HxfrConn * conn);

gboolean hxfr_conn_read_exact (HxfrConn * conn, gpointer buf, gsize len,
    gint64 timeout_us, GCancellable * cancellable, GError ** error);
/* Reads the first @len (at most HXFR_HEADER_SIZE) bytes of the stream
 * without consuming them: the next read returns them first (to tell one
 * kind of client from another by its first header). The first byte may
 * take @first_byte_timeout_us, the rest @idle_timeout_us from it; on a
 * failure what did arrive is still returned by the next read. Only before
 * anything else was read. Reader thread only. */
gboolean hxfr_conn_peek (HxfrConn * conn, guint8 * out, gsize len,
    gint64 first_byte_timeout_us, gint64 idle_timeout_us,
    GCancellable * cancellable, GError ** error);
/* hxfr_conn_peek() of a whole header, parsed (magic checked): what kind of
 * client this is, told by its first message, which stays unread. */
gboolean hxfr_conn_peek_header (HxfrConn * conn, gint64 first_byte_timeout_us,
    gint64 idle_timeout_us, HxfrHeader * header, GCancellable * cancellable,
    GError ** error);
/* The deadline (monotonic us) of the message whose first bytes
 * hxfr_conn_peek() holds, set when its first byte came: the rest of that
 * message must arrive within it, not within a fresh one. 0 when nothing
 * peeked is unread. */
gint64 hxfr_conn_get_message_deadline (HxfrConn * conn);
/* Reads and throws away @len bytes. */
gboolean hxfr_conn_skip (HxfrConn * conn, gsize len, gint64 timeout_us,
    GCancellable * cancellable, GError ** error);
/* Waits until a byte can be read (or the peer closed). */
gboolean hxfr_conn_wait_readable (HxfrConn * conn, gint64 timeout_us,
    GCancellable * cancellable, GError ** error);

/* Sends one message: the header (payload_size computed here), @fixed, then
 * each @tail vector, as one atomic unit with respect to other senders. */
gboolean hxfr_conn_send (HxfrConn * conn, guint8 type, guint8 flags,
    guint16 session_id, const void *fixed, gsize fixed_len,
    const GOutputVector * tail, guint n_tail, gint64 timeout_us,
    GCancellable * cancellable, GError ** error);
/* As hxfr_conn_send(), for a peer that may read slowly but steadily (a
 * scanout subscriber): @stall_timeout_us bounds each wait for it to take
 * bytes, not the whole message. */
gboolean hxfr_conn_send_to_slow_reader (HxfrConn * conn, guint8 type,
    guint8 flags, guint16 session_id, const void *fixed, gsize fixed_len,
    const GOutputVector * tail, guint n_tail, gint64 stall_timeout_us,
    GCancellable * cancellable, GError ** error);
/* SO_SNDBUF: bounds what the kernel holds for a slow peer (the kernel
 * doubles it for its bookkeeping). */
gboolean hxfr_conn_set_send_buffer (HxfrConn * conn, gint bytes,
    GError ** error);
gboolean hxfr_conn_send_error (HxfrConn * conn, guint16 session_id,
    gint32 code, const gchar * message, gint64 timeout_us, GError ** error);

guint64 hxfr_conn_get_bytes_sent (HxfrConn * conn);
guint64 hxfr_conn_get_bytes_received (HxfrConn * conn);

/* TRUE once the peer has closed (or shut down its sending side): a check,
 * it does not read or wait. */
gboolean hxfr_conn_peer_has_closed (HxfrConn * conn);

/* Peer identity, for access control and logs. */
gboolean hxfr_conn_get_peer_uid (HxfrConn * conn, guint * uid);
gboolean hxfr_conn_get_peer_cid (HxfrConn * conn, guint32 * cid);
gchar *hxfr_conn_describe_peer (HxfrConn * conn);
/* Who is connecting, for per-peer limits: "vsock cid N", "unix uid N" or
 * "tcp ADDRESS" (no port: every connection of a host is one peer). */
gchar *hxfr_conn_get_peer_identity (HxfrConn * conn);

/* One parsed message. The small variable parts (HELLO token, FAILED
 * text) are read in; the large ones (pixels, access unit, v1 NAL list) are
 * left on the socket: @tail_size says how many bytes the caller must read
 * (hxfr_conn_read_exact) or skip before the next message. */
typedef struct
{
  HxfrHeader header;
  union
  {
    HxfrFrameRequest frame_request;     /* FRAME_REQUEST, FRAME_REQUEST2 */
    HxfrFrameResponse frame_response;   /* FRAME_RESPONSE, FRAME_RESPONSE2 */
    HxfrConfig config;
    HxfrHello hello;
    HxfrHelloAck hello_ack;
    HxfrControl control;
    HxfrErrorMsg error;
  } u;
  guint8 token[HXFR_MAX_TOKEN];
  gchar text[HXFR_ERROR_TEXT_SIZE + 1];
  gsize tail_size;
  /* monotonic time by which the tail too must have been read (one message,
   * one deadline); -1: none */
  gint64 deadline;
} HxfrMessage;

/* Reads the next message whole, for the protocols whose messages are read
 * entire (scanout subscriptions): its header (magic checked) and its
 * payload, at most @max_payload bytes, checked before anything is
 * allocated (a larger one: HXFR_ERR_LIMIT, and the connection is out of
 * step). Waits up to @first_byte_timeout_us (-1: for ever) for it to begin;
 * from its first byte, or from the first byte hxfr_conn_peek() saw, it has
 * @idle_timeout_us to arrive whole. *@payload: NULL for an empty one.
 * *@begun: whether a byte of it had come (a timeout then is a peer
 * stalling mid-message, not a silent one). */
gboolean hxfr_conn_read_message (HxfrConn * conn, gsize max_payload,
    gint64 first_byte_timeout_us, gint64 idle_timeout_us, HxfrHeader * header,
    GBytes ** payload, gboolean * begun, GCancellable * cancellable,
    GError ** error);

/* Reads the next message @role may receive, checking magic, type, every
 * size against @limits, and for frame requests the geometry against the
 * pixel bytes announced, before anything is allocated. Waits up to
 * @first_byte_timeout_us for it to begin and @idle_timeout_us for the rest
 * (a half-sent message then silence). HXFR_ERROR errors carry the
 * HxfrErrorCode to answer with; G_IO_ERROR ones are transport failures. */
gboolean hxfr_conn_receive (HxfrConn * conn, HxfrRole role,
    const HxfrLimits * limits, HxfrMessage * msg,
    gint64 first_byte_timeout_us, gint64 idle_timeout_us,
    GCancellable * cancellable, GError ** error);

/* A listening socket. */
typedef struct _HxfrListener HxfrListener;

/* Binds and listens. For unix: a stale socket file (nobody accepting) is
 * replaced, a live one is an error; @unix_mode (e.g. 0660, 0 = leave as the
 * umask made it) is applied to the file. TCP port 0 picks a free port. */
HxfrListener *hxfr_listener_new (const HxfrAddress * addr, guint unix_mode,
    GError ** error);
/* The bound address (with the port filled in for tcp port 0). */
const HxfrAddress *hxfr_listener_get_address (HxfrListener * listener);
GSocket *hxfr_listener_get_socket (HxfrListener * listener);
/* Accepts one connection, waiting up to @timeout_us (-1: until cancelled). */
HxfrConn *hxfr_listener_accept (HxfrListener * listener, gint64 timeout_us,
    GCancellable * cancellable, GError ** error);
/* Closes and, for unix, removes the socket file. */
void hxfr_listener_free (HxfrListener * listener);

G_END_DECLS
