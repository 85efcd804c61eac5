/* Helix export client. See hxfr-export-client.h.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "hxfr-export-client.h"
#include "hxfr-export-client-private.h"
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
 * waiting for an answer, and while reading; a watch's client has one
 * reader instead, its reader thread, and never resolves); the stream
 * serialises whole messages on the socket for every thread that sends (a
 * RELEASE takes no other lock, so freeing a buffer never waits for another
 * thread's answer; on a watch RELEASE, SNAPSHOTS and SCANOUT_CONTROL share
 * it). state_lock protects dead_error. */
struct _HxexClient
{
  gint refcount;
  HxfrConn *conn;

  GMutex request_lock;
  GMutex state_lock;

  /* request_lock (the stream's reading side) */
  guint32 next_request_id;
  HxexStream stream;

  /* state_lock */
  GError *dead_error;

  /* set at connect, read-only after */
  guint32 kinds;
  guint n_slots;
  guint64 slot_size;
  guint8 *ring;
  gsize ring_size;
};

static gboolean
get_dead_error (HxexClient * c, GError ** error)
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
set_dead (HxexClient * c, const GError * why)
{
  g_mutex_lock (&c->state_lock);
  if (!c->dead_error)
    c->dead_error = g_error_copy (why);
  g_mutex_unlock (&c->state_lock);
  hxfr_conn_shutdown (c->conn);
}

static gboolean
send_message (HxexClient * c, guint8 type, guint32 request_id,
    const guint8 * payload, gsize payload_len, gint64 deadline, GError ** error)
{
  GError *failure = NULL;
  gboolean broken;

  if (hxex_stream_send (&c->stream, type, request_id, payload, payload_len,
          NULL, 0, deadline, &broken, &failure))
    return TRUE;
  g_prefix_error (&failure, "Sending %s to the helix export: ",
      hxex_msg_type_name (type));
  if (broken)
    set_dead (c, failure);
  g_propagate_error (error, failure);
  return FALSE;
}

/* Reads one whole message (keeping what an earlier timed out call had
 * read), and claims its descriptors into @fds. Caller holds request_lock.
 * A transport or protocol failure kills the connection; a timeout does
 * not. */
static gboolean
read_message (HxexClient * c, HxexHeader * h, GArray * fds,
    gint64 deadline, GError ** error)
{
  GError *err = NULL;

  if (hxex_stream_read (&c->stream, h, deadline, &err)
      && hxex_stream_take_fds (&c->stream, h, fds, &err))
    return TRUE;
  if (!g_error_matches (err, G_IO_ERROR, G_IO_ERROR_TIMED_OUT))
    set_dead (c, err);
  g_propagate_error (error, err);
  return FALSE;
}

static void
send_release (HxexClient * c, guint32 handle)
{
  guint8 payload[HXEX_RELEASE_SIZE];
  g_autoptr (GError) err = NULL;

  hxex_release_write (handle, payload);
  if (!send_message (c, HXEX_MSG_RELEASE, 0, payload, sizeof (payload),
          hxfr_deadline_from_timeout (G_USEC_PER_SEC), &err))
    g_debug ("helix export: could not release handle %u: %s", handle,
        err->message);
}

static gboolean
do_hello (HxexClient * c, guint32 kinds, gint64 deadline, GError ** error)
{
  guint8 payload[HXEX_MAX_PAYLOAD_SIZE];
  g_autoptr (GArray) fds = g_array_new (FALSE, FALSE, sizeof (gint));
  HxexHello hello = { HXEX_VERSION, HXEX_VERSION, kinds };
  HxexHelloAck ack;
  HxexErrorMsg emsg;
  HxexHeader h;
  gboolean ok = FALSE;

  hxex_hello_write (&hello, payload);
  if (!send_message (c, HXEX_MSG_HELLO, 0, payload, HXEX_HELLO_SIZE,
          deadline, error)
      || !read_message (c, &h, fds, deadline, error))
    return FALSE;

  if (h.type == HXEX_MSG_ERROR) {
    if (hxex_error_parse (hxex_stream_payload (&c->stream), h.payload_size,
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
  if (!hxex_hello_ack_parse (hxex_stream_payload (&c->stream), h.payload_size,
          &ack, error))
    goto out;
  if (ack.version != HXEX_VERSION) {
    g_set_error (error, HXEX_ERROR, HXEX_ERR_VERSION,
        "the VMM speaks helix export version %u, we speak %u", ack.version,
        HXEX_VERSION);
    goto out;
  }
  ok = hxex_client_take_ring (c, &ack, fds, error);

out:
  hxex_fds_clear (fds);
  return ok;
}

gboolean
hxex_client_take_ring (HxexClient * c, const HxexHelloAck * ack,
    GArray * fds, GError ** error)
{
  gboolean ok = FALSE;
  struct stat st;

  if (ack->n_slots > MAX_SLOTS || ack->slot_size > MAX_SLOT_SIZE
      || (guint64) ack->n_slots * ack->slot_size > G_MAXSIZE
      || (ack->n_slots > 0) != (fds->len == 1)
      || (ack->n_slots > 0 && ack->slot_size == 0)) {
    g_set_error (error, HXEX_ERROR, HXEX_ERR_PROTOCOL,
        "HELLO_ACK with %u slots of %" G_GUINT64_FORMAT " bytes and %u "
        "descriptors", ack->n_slots, ack->slot_size, fds->len);
    goto out;
  }
  c->kinds = ack->kinds;
  c->n_slots = ack->n_slots;
  c->slot_size = ack->slot_size;
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

HxexClient *
hxex_client_connect (const gchar * path, guint32 kinds,
    gint64 timeout_us, GError ** error)
{
  g_autoptr (HxfrAddress) addr = hxfr_address_new_unix (path);
  gint64 deadline = hxfr_deadline_from_timeout (timeout_us);
  HxexClient *c;
  HxfrConn *conn;

  conn = hxfr_conn_connect (addr, timeout_us, NULL, error);
  if (!conn) {
    g_prefix_error (error, "Could not connect to the helix export at %s: ",
        path);
    return NULL;
  }

  c = hxex_client_new_for_conn (conn,
      "the VMM closed the helix export connection");
  hxfr_conn_unref (conn);

  if (!do_hello (c, kinds ? kinds : HXEX_KINDS_ALL, deadline, error)) {
    g_prefix_error (error, "Helix export at %s: ", path);
    hxex_client_unref (c);
    return NULL;
  }
  return c;
}

HxexClient *
hxex_client_new_for_conn (HxfrConn * conn, const gchar * peer_closed)
{
  HxexClient *c = g_new0 (HxexClient, 1);

  c->refcount = 1;
  c->conn = hxfr_conn_ref (conn);
  hxex_stream_init (&c->stream, hxfr_conn_get_socket (conn), peer_closed);
  g_mutex_init (&c->request_lock);
  g_mutex_init (&c->state_lock);
  c->next_request_id = 1;
  return c;
}

HxexStream *
hxex_client_get_stream (HxexClient * c)
{
  return &c->stream;
}

void
hxex_client_set_dead (HxexClient * c, const GError * why)
{
  set_dead (c, why);
}

G_DEFINE_BOXED_TYPE (HxexClient, hxex_client,
    hxex_client_ref, hxex_client_unref);

HxexClient *
hxex_client_ref (HxexClient * client)
{
  g_atomic_int_inc (&client->refcount);
  return client;
}

void
hxex_client_unref (HxexClient * c)
{
  if (!c || !g_atomic_int_dec_and_test (&c->refcount))
    return;
  hxfr_conn_unref (c->conn);
  if (c->ring)
    munmap (c->ring, c->ring_size);
  hxex_stream_clear (&c->stream);
  g_clear_error (&c->dead_error);
  g_mutex_clear (&c->request_lock);
  g_mutex_clear (&c->state_lock);
  g_free (c);
}

void
hxex_client_close (HxexClient * c)
{
  GError *err = g_error_new_literal (G_IO_ERROR, G_IO_ERROR_CLOSED,
      "the helix export connection was closed");

  set_dead (c, err);
  g_error_free (err);
}

gboolean
hxex_client_is_connected (HxexClient * c)
{
  return !get_dead_error (c, NULL);
}

guint
hxex_client_get_n_slots (HxexClient * c)
{
  return c->n_slots;
}

guint64
hxex_client_get_slot_size (HxexClient * c)
{
  return c->slot_size;
}

guint32
hxex_client_get_kinds (HxexClient * c)
{
  return c->kinds;
}

/* Checks a SURFACE against what this connection agreed on and builds the
 * caller's struct. Takes ownership of the descriptors in @fds. */
HxexClientSurface *
hxex_client_surface_new (HxexClient * c, guint32 resource_id,
    const HxexSurface * s, GArray * fds, GError ** error)
{
  HxexClientSurface *out;
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

  out = g_new0 (HxexClientSurface, 1);
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
  out->client = hxex_client_ref (c);
  return out;
}

HxexClientSurface *
hxex_client_resolve (HxexClient * c, guint32 resource_id,
    gint64 timeout_us, GError ** error)
{
  return hxex_client_resolve_kinds (c, resource_id, 0, timeout_us, error);
}

HxexClientSurface *
hxex_client_resolve_kinds (HxexClient * c, guint32 resource_id,
    guint32 kinds, gint64 timeout_us, GError ** error)
{
  g_autoptr (GArray) fds = g_array_new (FALSE, FALSE, sizeof (gint));
  guint8 payload[HXEX_MAX_PAYLOAD_SIZE];
  gint64 deadline = hxfr_deadline_from_timeout (timeout_us);
  HxexResolve req = { resource_id, kinds };
  HxexClientSurface *out = NULL;
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
    const guint8 *body = hxex_stream_payload (&c->stream);
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
      out = hxex_client_surface_new (c, resource_id, &s, fds, &err);
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
hxex_client_surface_release (HxexClientSurface * surface, GError ** error)
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
hxex_client_surface_free (HxexClientSurface * surface)
{
  if (!surface)
    return;
  if (!g_atomic_int_get (&surface->released))
    hxex_client_surface_release (surface, NULL);
  if (surface->fd >= 0)
    close (surface->fd);
  hxex_client_unref (surface->client);
  g_free (surface);
}
