/* Helix export client. See hxfr-export-client.h.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "hxfr-export-client.h"
#include "hxfr-transport.h"

#include <errno.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

/* A VMM may not make us map more than this. */
#define MAX_SLOTS 1024
#define MAX_SLOT_SIZE (G_GUINT64_CONSTANT (1) << 31)

/* Locks: request_lock serialises request/answer cycles (held while
 * waiting for an answer, and while reading); write_lock serialises whole
 * messages on the socket (RELEASE takes only this one, so freeing a
 * buffer never waits for another thread's answer). Order: request_lock,
 * then write_lock. state_lock protects dead_error. */
struct _HxfrExportClient
{
  gint refcount;
  HxfrConn *conn;
  GSocket *socket;

  GMutex request_lock;
  GMutex write_lock;
  GMutex state_lock;

  /* request_lock */
  guint32 next_request_id;
  guint8 inbuf[HXEX_HEADER_SIZE + HXEX_MAX_PAYLOAD_SIZE];
  gsize in_have;
  GArray *in_fds;               /* received, not yet claimed by a message */

  /* state_lock */
  GError *dead_error;

  /* set at connect, read-only after */
  guint32 kinds;
  guint n_slots;
  guint64 slot_size;
  guint8 *ring;
  gsize ring_size;
};

static gint64
deadline_from (gint64 timeout_us)
{
  return timeout_us < 0 ? -1 : g_get_monotonic_time () + timeout_us;
}

static gboolean
wait_until (GSocket * socket, GIOCondition cond, gint64 deadline,
    GError ** error)
{
  gint64 left = -1;

  if (deadline >= 0) {
    left = deadline - g_get_monotonic_time ();
    if (left <= 0) {
      g_set_error_literal (error, G_IO_ERROR, G_IO_ERROR_TIMED_OUT,
          "timed out waiting for the VMM's helix export");
      return FALSE;
    }
  }
  return g_socket_condition_timed_wait (socket, cond, left, NULL, error);
}

static gboolean
get_dead_error (HxfrExportClient * c, GError ** error)
{
  gboolean dead;

  g_mutex_lock (&c->state_lock);
  dead = c->dead_error != NULL;
  if (dead && error)
    *error = g_error_copy (c->dead_error);
  g_mutex_unlock (&c->state_lock);
  return dead;
}

/* The connection is unusable from now on: remember why, and close. */
static void
set_dead (HxfrExportClient * c, const GError * why)
{
  g_mutex_lock (&c->state_lock);
  if (!c->dead_error)
    c->dead_error = g_error_copy (why);
  g_mutex_unlock (&c->state_lock);
  hxfr_conn_shutdown (c->conn);
}

static gboolean
send_message (HxfrExportClient * c, guint8 type, guint32 request_id,
    const guint8 * payload, gsize payload_len, gint64 deadline, GError ** error)
{
  guint8 buf[HXEX_HEADER_SIZE + HXEX_MAX_PAYLOAD_SIZE];
  HxexHeader h = { type, 0, (guint32) payload_len, request_id };
  gsize len = HXEX_HEADER_SIZE + payload_len, sent = 0;
  GError *failure = NULL;

  hxex_header_write (buf, &h);
  memcpy (buf + HXEX_HEADER_SIZE, payload, payload_len);

  g_mutex_lock (&c->write_lock);
  while (sent < len) {
    GError *err = NULL;
    gssize n = hxex_socket_send (c->socket, buf + sent, len - sent, NULL, 0,
        &err);

    if (n > 0) {
      sent += n;
      continue;
    }
    if (!g_error_matches (err, G_IO_ERROR, G_IO_ERROR_WOULD_BLOCK)) {
      failure = err;
      break;
    }
    g_error_free (err);
    if (!wait_until (c->socket, G_IO_OUT, deadline, &failure))
      break;
  }
  g_mutex_unlock (&c->write_lock);

  if (!failure)
    return TRUE;
  g_prefix_error (&failure, "Sending %s to the helix export: ",
      hxex_msg_type_name (type));
  /* half a message on the wire, or a broken socket: the stream can no
   * longer be trusted */
  if (sent > 0 || !g_error_matches (failure, G_IO_ERROR, G_IO_ERROR_TIMED_OUT))
    set_dead (c, failure);
  g_propagate_error (error, failure);
  return FALSE;
}

/* Reads one whole message into c->inbuf (keeping what an earlier timed
 * out call had read), and claims its descriptors into @fds. Caller holds
 * request_lock. A transport or protocol failure kills the connection; a
 * timeout does not. */
static gboolean
read_message (HxfrExportClient * c, HxexHeader * h, GArray * fds,
    gint64 deadline, GError ** error)
{
  gsize need = HXEX_HEADER_SIZE;
  gboolean have_header = FALSE;
  GError *err = NULL;
  guint i;

  for (;;) {
    gssize n;

    if (c->in_have >= need) {
      if (have_header)
        break;
      if (!hxex_header_parse (c->inbuf, h, &err))
        goto dead;
      have_header = TRUE;
      need = HXEX_HEADER_SIZE + h->payload_size;
      continue;
    }
    n = hxex_socket_receive (c->socket, c->inbuf + c->in_have,
        need - c->in_have, c->in_fds, &err);
    if (n > 0) {
      c->in_have += n;
      continue;
    }
    if (n == 0) {
      g_set_error (&err, G_IO_ERROR, G_IO_ERROR_CONNECTION_CLOSED,
          "the VMM closed the helix export connection%s",
          c->in_have ? " in the middle of a message" : "");
      goto dead;
    }
    if (!g_error_matches (err, G_IO_ERROR, G_IO_ERROR_WOULD_BLOCK))
      goto dead;
    g_clear_error (&err);
    if (!wait_until (c->socket, G_IO_IN, deadline, &err)) {
      if (g_error_matches (err, G_IO_ERROR, G_IO_ERROR_TIMED_OUT)) {
        g_propagate_error (error, err);
        return FALSE;
      }
      goto dead;
    }
  }

  if (c->in_fds->len < h->n_fds) {
    g_set_error (&err, HXEX_ERROR, HXEX_ERR_PROTOCOL,
        "%s announces %u file descriptors, %u arrived",
        hxex_msg_type_name (h->type), h->n_fds, c->in_fds->len);
    goto dead;
  }
  for (i = 0; i < h->n_fds; i++)
    g_array_append_val (fds, g_array_index (c->in_fds, gint, i));
  /* descriptors beyond what the message announces came with its bytes and
   * belong to nothing: close them rather than hand them to a later one */
  for (i = h->n_fds; i < c->in_fds->len; i++)
    close (g_array_index (c->in_fds, gint, i));
  g_array_set_size (c->in_fds, 0);
  c->in_have = 0;
  return TRUE;

dead:
  set_dead (c, err);
  g_propagate_error (error, err);
  return FALSE;
}

static void
send_release (HxfrExportClient * c, guint32 handle)
{
  guint8 payload[HXEX_RELEASE_SIZE];
  g_autoptr (GError) err = NULL;

  hxex_release_write (handle, payload);
  if (!send_message (c, HXEX_MSG_RELEASE, 0, payload, sizeof (payload),
          deadline_from (G_USEC_PER_SEC), &err))
    g_debug ("helix export: could not release handle %u: %s", handle,
        err->message);
}

static gboolean
do_hello (HxfrExportClient * c, guint32 kinds, gint64 deadline, GError ** error)
{
  guint8 payload[HXEX_MAX_PAYLOAD_SIZE];
  g_autoptr (GArray) fds = g_array_new (FALSE, FALSE, sizeof (gint));
  HxexHello hello = { HXEX_VERSION, HXEX_VERSION, kinds };
  HxexHelloAck ack;
  HxexErrorMsg emsg;
  HxexHeader h;
  struct stat st;
  gboolean ok = FALSE;

  hxex_hello_write (&hello, payload);
  if (!send_message (c, HXEX_MSG_HELLO, 0, payload, HXEX_HELLO_SIZE,
          deadline, error)
      || !read_message (c, &h, fds, deadline, error))
    return FALSE;

  if (h.type == HXEX_MSG_ERROR) {
    if (hxex_error_parse (c->inbuf + HXEX_HEADER_SIZE, h.payload_size,
            &emsg, error))
      g_set_error (error, HXEX_ERROR, emsg.code,
          "The VMM refused the helix export connection: %s (%s)",
          emsg.message, hxex_error_code_name (emsg.code));
    goto out;
  }
  if (h.type != HXEX_MSG_HELLO_ACK) {
    g_set_error (error, HXEX_ERROR, HXEX_ERR_PROTOCOL,
        "expected HELLO_ACK, got %s", hxex_msg_type_name (h.type));
    goto out;
  }
  if (!hxex_hello_ack_parse (c->inbuf + HXEX_HEADER_SIZE, h.payload_size,
          &ack, error))
    goto out;
  if (ack.version != HXEX_VERSION) {
    g_set_error (error, HXEX_ERROR, HXEX_ERR_VERSION,
        "the VMM speaks helix export version %u, we speak %u", ack.version,
        HXEX_VERSION);
    goto out;
  }
  if (ack.n_slots > MAX_SLOTS || ack.slot_size > MAX_SLOT_SIZE
      || (guint64) ack.n_slots * ack.slot_size > G_MAXSIZE
      || (ack.n_slots > 0) != (fds->len == 1)
      || (ack.n_slots > 0 && ack.slot_size == 0)) {
    g_set_error (error, HXEX_ERROR, HXEX_ERR_PROTOCOL,
        "HELLO_ACK with %u slots of %" G_GUINT64_FORMAT " bytes and %u "
        "descriptors", ack.n_slots, ack.slot_size, fds->len);
    goto out;
  }
  c->kinds = ack.kinds;
  c->n_slots = ack.n_slots;
  c->slot_size = ack.slot_size;
  if (c->n_slots > 0) {
    gint fd = g_array_index (fds, gint, 0);

    c->ring_size = (gsize) c->n_slots * c->slot_size;
    if (fstat (fd, &st) != 0 || (guint64) st.st_size < c->ring_size) {
      g_set_error (error, HXEX_ERROR, HXEX_ERR_PROTOCOL,
          "the ring descriptor holds %" G_GINT64_FORMAT " bytes, %u slots "
          "need %" G_GSIZE_FORMAT, (gint64) st.st_size, c->n_slots,
          c->ring_size);
      goto out;
    }
    c->ring = mmap (NULL, c->ring_size, PROT_READ, MAP_SHARED, fd, 0);
    if (c->ring == MAP_FAILED) {
      int e = errno;

      c->ring = NULL;
      g_set_error (error, G_IO_ERROR, g_io_error_from_errno (e),
          "Could not map the helix export ring: %s", g_strerror (e));
      goto out;
    }
  }
  ok = TRUE;

out:
  hxex_fds_clear (fds);
  return ok;
}

HxfrExportClient *
hxfr_export_client_connect (const gchar * path, guint32 kinds,
    gint64 timeout_us, GError ** error)
{
  g_autoptr (HxfrAddress) addr = hxfr_address_new_unix (path);
  gint64 deadline = deadline_from (timeout_us);
  HxfrExportClient *c;
  HxfrConn *conn;

  conn = hxfr_conn_connect (addr, timeout_us, NULL, error);
  if (!conn) {
    g_prefix_error (error, "Could not connect to the helix export at %s: ",
        path);
    return NULL;
  }

  c = g_new0 (HxfrExportClient, 1);
  c->refcount = 1;
  c->conn = conn;
  c->socket = hxfr_conn_get_socket (conn);
  g_mutex_init (&c->request_lock);
  g_mutex_init (&c->write_lock);
  g_mutex_init (&c->state_lock);
  c->in_fds = g_array_new (FALSE, FALSE, sizeof (gint));
  c->next_request_id = 1;

  if (!do_hello (c, kinds ? kinds : HXEX_KINDS_ALL, deadline, error)) {
    g_prefix_error (error, "Helix export at %s: ", path);
    hxfr_export_client_unref (c);
    return NULL;
  }
  return c;
}

G_DEFINE_BOXED_TYPE (HxfrExportClient, hxfr_export_client,
    hxfr_export_client_ref, hxfr_export_client_unref);

HxfrExportClient *
hxfr_export_client_ref (HxfrExportClient * client)
{
  g_atomic_int_inc (&client->refcount);
  return client;
}

void
hxfr_export_client_unref (HxfrExportClient * c)
{
  if (!c || !g_atomic_int_dec_and_test (&c->refcount))
    return;
  hxfr_conn_unref (c->conn);
  if (c->ring)
    munmap (c->ring, c->ring_size);
  hxex_fds_clear (c->in_fds);
  g_array_unref (c->in_fds);
  g_clear_error (&c->dead_error);
  g_mutex_clear (&c->request_lock);
  g_mutex_clear (&c->write_lock);
  g_mutex_clear (&c->state_lock);
  g_free (c);
}

void
hxfr_export_client_close (HxfrExportClient * c)
{
  GError *err = g_error_new_literal (G_IO_ERROR, G_IO_ERROR_CLOSED,
      "the helix export connection was closed");

  set_dead (c, err);
  g_error_free (err);
}

gboolean
hxfr_export_client_is_connected (HxfrExportClient * c)
{
  return !get_dead_error (c, NULL);
}

guint
hxfr_export_client_get_n_slots (HxfrExportClient * c)
{
  return c->n_slots;
}

guint64
hxfr_export_client_get_slot_size (HxfrExportClient * c)
{
  return c->slot_size;
}

guint32
hxfr_export_client_get_kinds (HxfrExportClient * c)
{
  return c->kinds;
}

/* Checks a SURFACE against what this connection agreed on and builds the
 * caller's struct. Takes ownership of the descriptors in @fds. */
static HxfrExportSurface *
surface_from_wire (HxfrExportClient * c, guint32 resource_id,
    const HxexSurface * s, GArray * fds, GError ** error)
{
  HxfrExportSurface *out;
  guint expected_fds = s->kind == HXEX_KIND_DMABUF ? 1 : 0;

  if (fds->len != expected_fds
      || (s->kind == HXEX_KIND_READBACK_SLOT && (s->slot >= c->n_slots
              || s->size > c->slot_size))) {
    g_set_error (error, HXEX_ERROR, HXEX_ERR_PROTOCOL,
        "%s SURFACE with %u descriptors, slot %u of %u, %" G_GUINT64_FORMAT
        " bytes (slots hold %" G_GUINT64_FORMAT ")", hxex_kind_name (s->kind),
        fds->len, s->slot, c->n_slots, s->size, c->slot_size);
    return NULL;
  }

  out = g_new0 (HxfrExportSurface, 1);
  out->kind = s->kind;
  out->resource_id = resource_id;
  out->handle = s->handle;
  out->fourcc = s->fourcc;
  out->modifier = s->modifier;
  out->width = s->width;
  out->height = s->height;
  out->n_planes = s->n_planes;
  memcpy (out->stride, s->stride, sizeof (out->stride));
  memcpy (out->offset, s->offset, sizeof (out->offset));
  out->size = s->size;
  out->fd = -1;
  out->slot = s->slot;
  out->iosurface_id = s->iosurface_id;
  if (s->kind == HXEX_KIND_READBACK_SLOT)
    out->data = c->ring + (gsize) s->slot * c->slot_size;
  if (s->kind == HXEX_KIND_DMABUF) {
    out->fd = g_array_index (fds, gint, 0);
    g_array_set_size (fds, 0);
  }
  out->client = hxfr_export_client_ref (c);
  return out;
}

HxfrExportSurface *
hxfr_export_client_resolve (HxfrExportClient * c, guint32 resource_id,
    gint64 timeout_us, GError ** error)
{
  return hxfr_export_client_resolve_kinds (c, resource_id, 0, timeout_us,
      error);
}

HxfrExportSurface *
hxfr_export_client_resolve_kinds (HxfrExportClient * c, guint32 resource_id,
    guint32 kinds, gint64 timeout_us, GError ** error)
{
  g_autoptr (GArray) fds = g_array_new (FALSE, FALSE, sizeof (gint));
  guint8 payload[HXEX_MAX_PAYLOAD_SIZE];
  gint64 deadline = deadline_from (timeout_us);
  HxexResolve req = { resource_id, kinds };
  HxfrExportSurface *out = NULL;
  guint32 id;

  g_mutex_lock (&c->request_lock);
  if (get_dead_error (c, error))
    goto out;

  id = c->next_request_id++;
  if (c->next_request_id == 0)
    c->next_request_id = 1;
  hxex_resolve_write (&req, payload);
  if (!send_message (c, HXEX_MSG_RESOLVE, id, payload, HXEX_RESOLVE_SIZE,
          deadline, error))
    goto out;

  for (;;) {
    const guint8 *body = c->inbuf + HXEX_HEADER_SIZE;
    GError *err = NULL;
    HxexHeader h;
    HxexSurface s;
    HxexErrorMsg emsg;

    hxex_fds_clear (fds);
    if (!read_message (c, &h, fds, deadline, error))
      goto out;

    if (h.type == HXEX_MSG_SURFACE) {
      if (!hxex_surface_parse (body, h.payload_size, &s, &err))
        goto protocol_error;
      if (h.request_id != id) {
        /* the answer to a request that timed out: give it back */
        send_release (c, s.handle);
        continue;
      }
      out = surface_from_wire (c, resource_id, &s, fds, &err);
      if (!out)
        goto protocol_error;
      goto out;
    }
    if (h.type == HXEX_MSG_ERROR) {
      if (!hxex_error_parse (body, h.payload_size, &emsg, &err))
        goto protocol_error;
      if (h.request_id != id)
        continue;
      g_set_error (error, HXEX_ERROR, emsg.code,
          "The VMM could not export resource %u: %s (%s)", resource_id,
          emsg.message, hxex_error_code_name (emsg.code));
      goto out;
    }
    g_set_error (&err, HXEX_ERROR, HXEX_ERR_PROTOCOL,
        "unexpected %s from the VMM", hxex_msg_type_name (h.type));

  protocol_error:
    set_dead (c, err);
    g_propagate_prefixed_error (error, err, "Helix export: ");
    goto out;
  }

out:
  hxex_fds_clear (fds);
  g_mutex_unlock (&c->request_lock);
  return out;
}

gboolean
hxfr_export_surface_release (HxfrExportSurface * surface, GError ** error)
{
  if (!g_atomic_int_compare_and_exchange (&surface->released, 0, 1)) {
    g_set_error (error, HXEX_ERROR, HXEX_ERR_RELEASED,
        "surface %u of resource %u was already released", surface->handle,
        surface->resource_id);
    return FALSE;
  }
  /* a dead connection has nothing to give back to */
  if (!get_dead_error (surface->client, NULL))
    send_release (surface->client, surface->handle);
  return TRUE;
}

void
hxfr_export_surface_free (HxfrExportSurface * surface)
{
  if (!surface)
    return;
  if (!g_atomic_int_get (&surface->released))
    hxfr_export_surface_release (surface, NULL);
  if (surface->fd >= 0)
    close (surface->fd);
  hxfr_export_client_unref (surface->client);
  g_free (surface);
}
