/* Helix export scanout watch. See hxfr-export-watch.h and
 * docs/export-protocol.md, "Scanouts".
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "hxfr-export-watch.h"
#include "hxfr-export-client-private.h"
#include "hxfr-transport.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Linux: a cursor image must come sealed (read_cursor_image) */
#if defined (__linux__) && !defined (F_GET_SEALS)
#error "F_GET_SEALS is needed to check a cursor image's descriptor"
#endif

/* HELLO kinds of a watch: bit 0 is no surface kind, so the VMM maps no
 * readback ring for a connection that never resolves; a watch that takes
 * snapshots asks for readback slots (a version-3 VMM then makes a ring
 * nobody uses: sparse memory, never touched, closed here). */
#define WATCH_KINDS 0x1u
#define WATCH_KINDS_SNAPSHOTS HXEX_KIND_BIT (HXEX_KIND_READBACK_SLOT)

/* Locks: the client's stream serialises whole messages on the socket,
 * whichever thread sends (SCANOUT_CONTROL and SNAPSHOTS from the caller's,
 * RELEASE of a snapshot from any, the reader thread's too); control_lock
 * serialises set_enabled calls (one SCANOUT_CONTROL in flight); lock
 * protects the fields marked so and is the one the reader thread hands an
 * ACK over with. */
struct _HxexWatch
{
  HxfrConn *conn;
  /* the connection as a client: its stream, and (version 4) the ring the
   * snapshots are surfaces of; surfaces keep it (and the ring) alive */
  HxexClient *client;
  HxexStream *stream;           /* the client's */
  HxexWatchCallbacks cb;
  gpointer user_data;
  guint n_scanouts;
  guint16 version;              /* agreed at HELLO: 2 to 4 */
  gboolean snapshots;           /* version 4 with a ring */
  GThread *reader;

  GMutex control_lock;
  GMutex lock;
  GCond cond;

  /* lock */
  gboolean closing;             /* free() started: no more callbacks */
  GError *dead_error;           /* the connection is over */
  guint32 next_request_id;
  guint32 pending_id;           /* SCANOUT_CONTROL waiting, 0 = none */
  gboolean pending_done;
  HxexScanoutControlAck pending_ack;
};

/* The connection is over: remember why, wake a waiting set_enabled. */
static void
set_dead (HxexWatch * w, const GError * why)
{
  g_mutex_lock (&w->lock);
  if (!w->dead_error)
    w->dead_error = g_error_copy (why);
  g_cond_broadcast (&w->cond);
  g_mutex_unlock (&w->lock);
  /* snapshots still held: their RELEASE has nowhere to go */
  hxex_client_set_dead (w->client, why);
}

static gboolean
send_message (HxexWatch * w, guint8 type, guint32 request_id,
    const guint8 * payload, gsize payload_len, gint64 deadline, GError ** error)
{
  GError *failure = NULL;
  gboolean broken;

  if (hxex_stream_send (w->stream, type, request_id, payload, payload_len,
          NULL, 0, deadline, &broken, &failure))
    return TRUE;
  g_prefix_error (&failure, "Sending %s to the helix export: ",
      hxex_msg_type_name (type));
  if (broken)
    set_dead (w, failure);
  g_propagate_error (error, failure);
  return FALSE;
}

/* One whole message. Only CURSOR_SHAPE and HELLO_ACK carry a descriptor
 * we use: it goes to @fds (NULL: none wanted); any others are closed. */
static gboolean
read_message (HxexWatch * w, HxexHeader * h, gint64 deadline, GArray * fds,
    GError ** error)
{
  gboolean ok = hxex_stream_read (w->stream, h, deadline, error);

  if (ok && fds && (h->type == HXEX_MSG_CURSOR_SHAPE
          || h->type == HXEX_MSG_HELLO_ACK))
    ok = hxex_stream_take_fds (w->stream, h, fds, error);
  hxex_fds_clear (w->stream->fds);
  return ok;
}

/* An ERROR from the VMM as a GError. */
static void
set_vmm_error (const guint8 * body, gsize len, const gchar * what,
    GError ** error)
{
  HxexErrorMsg emsg;

  if (hxex_error_parse (body, len, &emsg, error))
    g_set_error (error, HXEX_ERROR, emsg.code, "The VMM %s: %s (%s)", what,
        emsg.message, hxex_error_code_name (emsg.code));
}

static gboolean
do_hello (HxexWatch * w, gint64 deadline, GError ** error)
{
  guint8 payload[HXEX_MAX_PAYLOAD_SIZE];
  const guint8 *body = hxex_stream_payload (w->stream);
  HxexHello hello = { HXEX_VERSION_SCANOUTS, HXEX_VERSION_SNAPSHOTS,
    w->cb.snapshot ? WATCH_KINDS_SNAPSHOTS : WATCH_KINDS
  };
  g_autoptr (GArray) fds = g_array_new (FALSE, FALSE, sizeof (gint));
  HxexHelloAck ack;
  HxexHeader h;

  hxex_hello_write (&hello, payload);
  if (!send_message (w, HXEX_MSG_HELLO, 0, payload, HXEX_HELLO_SIZE,
          deadline, error) || !read_message (w, &h, deadline, fds, error)) {
    hxex_fds_clear (fds);
    return FALSE;
  }
  if (h.type == HXEX_MSG_ERROR) {
    GError *err = NULL;

    set_vmm_error (body, h.payload_size, "refused a scanout watch", &err);
    /* a version-1 VMM: it has no scanouts to report */
    if (g_error_matches (err, HXEX_ERROR, HXEX_ERR_VERSION)) {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_NOT_SUPPORTED,
          "the VMM's helix export has no scanouts (version 1 only: %s)",
          err->message);
      g_error_free (err);
    } else {
      g_propagate_error (error, err);
    }
    return FALSE;
  }
  if (h.type != HXEX_MSG_HELLO_ACK
      || !hxex_hello_ack_parse (body, h.payload_size, &ack, error)
      || ack.version < HXEX_VERSION_SCANOUTS
      || ack.version > HXEX_VERSION_SNAPSHOTS
      || (ack.n_slots != 0 && !w->cb.snapshot)) {
    if (error && !*error)
      g_set_error (error, HXEX_ERROR, HXEX_ERR_PROTOCOL,
          "expected a version-2 to 4 HELLO_ACK (with slots only if asked), "
          "got %s", hxex_msg_type_name (h.type));
    hxex_fds_clear (fds);
    return FALSE;
  }
  w->version = ack.version;
  /* before version 4 a ring is of no use to a watch: not mapped */
  if (ack.version < HXEX_VERSION_SNAPSHOTS || ack.n_slots == 0) {
    hxex_fds_clear (fds);
    return TRUE;
  }
  if (!hxex_client_take_ring (w->client, &ack, fds, error))
    return FALSE;
  w->snapshots = TRUE;
  return TRUE;
}

static void
state_from_wire (const HxexScanout * m, HxfrScanoutState * st)
{
  st->index = m->index;
  st->enabled = (m->flags & HXEX_SCANOUT_ENABLED) != 0;
  st->resource_id = m->resource_id;
  st->width = m->width;
  st->height = m->height;
  st->fourcc = m->fourcc;
}

/* A SCANOUT must agree with the count the first one gave. */
static gboolean
parse_scanout (HxexWatch * w, const HxexHeader * h,
    HxfrScanoutState * st, GError ** error)
{
  HxexScanout m;

  if (!hxex_scanout_parse (hxex_stream_payload (w->stream), h->payload_size,
          &m, error))
    return FALSE;
  if (w->n_scanouts && m.n_scanouts != w->n_scanouts) {
    g_set_error (error, HXEX_ERROR, HXEX_ERR_PROTOCOL,
        "SCANOUT says %u scanouts, the watch began with %u", m.n_scanouts,
        w->n_scanouts);
    return FALSE;
  }
  state_from_wire (&m, st);
  if (!w->n_scanouts)
    w->n_scanouts = m.n_scanouts;
  return TRUE;
}

/* WATCH, then one SCANOUT per scanout, in index order. */
static gboolean
do_watch (HxexWatch * w, gint64 deadline, GError ** error)
{
  guint8 payload[HXEX_WATCH_SIZE];
  guint i;

  hxex_watch_write (payload);
  if (!send_message (w, HXEX_MSG_WATCH, 0, payload, HXEX_WATCH_SIZE,
          deadline, error))
    return FALSE;
  for (i = 0; i == 0 || i < w->n_scanouts; i++) {
    HxfrScanoutState st;
    HxexHeader h;

    if (!read_message (w, &h, deadline, NULL, error))
      return FALSE;
    if (h.type == HXEX_MSG_ERROR && i == 0) {
      GError *err = NULL;

      set_vmm_error (hxex_stream_payload (w->stream), h.payload_size,
          "refused a scanout watch", &err);
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_NOT_SUPPORTED, "%s",
          err->message);
      g_error_free (err);
      return FALSE;
    }
    if (h.type != HXEX_MSG_SCANOUT) {
      g_set_error (error, HXEX_ERROR, HXEX_ERR_PROTOCOL,
          "expected SCANOUT %u, got %s", i, hxex_msg_type_name (h.type));
      return FALSE;
    }
    if (!parse_scanout (w, &h, &st, error))
      return FALSE;
    if (st.index != i) {
      g_set_error (error, HXEX_ERROR, HXEX_ERR_PROTOCOL,
          "initial SCANOUT %u where %u was due", st.index, i);
      return FALSE;
    }
    if (w->cb.state)
      w->cb.state (w->user_data, &st);
  }
  return TRUE;
}

static gboolean
callbacks_allowed (HxexWatch * w)
{
  gboolean ok;

  g_mutex_lock (&w->lock);
  ok = !w->closing;
  g_mutex_unlock (&w->lock);
  return ok;
}

/* A FLUSH's fields as the watch's callbacks get them */
static void
to_scanout_flush (const HxexFlush * m, HxfrScanoutFlush * f)
{
  f->index = m->index;
  f->resource_id = m->resource_id;
  f->x = m->x;
  f->y = m->y;
  f->width = m->width;
  f->height = m->height;
  f->time_ns = m->time_ns;
}

/* Version 4: the picture of a flush, in a slot of our ring. Checked
 * (the parser's checks, then slot and size against the ring, as any
 * SURFACE's) before it becomes a surface; the surface is the callback's,
 * or released at once. */
static gboolean
handle_flush_snapshot (HxexWatch * w, const HxexHeader * h, GError ** error)
{
  g_autoptr (GArray) no_fds = g_array_new (FALSE, FALSE, sizeof (gint));
  HxexClientSurface *surface;
  HxexFlushSnapshot m;
  HxfrScanoutFlush f;
  HxexSurface s;

  if (!hxex_flush_snapshot_parse (hxex_stream_payload (w->stream),
          h->payload_size, &m, error))
    return FALSE;
  if (!w->snapshots || m.flush.index >= w->n_scanouts) {
    g_set_error (error, HXEX_ERROR, HXEX_ERR_PROTOCOL,
        "FLUSH_SNAPSHOT of scanout %u of %u on a watch %s", m.flush.index,
        w->n_scanouts, w->snapshots ? "with a ring" : "without a ring");
    return FALSE;
  }
  memset (&s, 0, sizeof (s));
  s.handle = m.handle;
  s.kind = HXEX_KIND_READBACK_SLOT;
  s.n_planes = 1;
  s.fourcc = m.fourcc;
  s.width = m.width;
  s.height = m.height;
  s.slot = m.slot;
  s.modifier = HXEX_DRM_FORMAT_MOD_LINEAR;
  s.size = m.size;
  s.stride[0] = m.stride;
  surface = hxex_client_surface_new (w->client, m.flush.resource_id, &s,
      no_fds, error);
  if (!surface)
    return FALSE;
  to_scanout_flush (&m.flush, &f);
  if (w->cb.snapshot && callbacks_allowed (w))
    w->cb.snapshot (w->user_data, &f, surface);
  else
    hxex_client_surface_free (surface);
  return TRUE;
}

static gboolean
handle_flush (HxexWatch * w, const HxexHeader * h, GError ** error)
{
  HxfrScanoutFlush f;
  HxexFlush m;

  if (!hxex_flush_parse (hxex_stream_payload (w->stream), h->payload_size, &m,
          error))
    return FALSE;
  if (m.index >= w->n_scanouts) {
    g_set_error (error, HXEX_ERROR, HXEX_ERR_PROTOCOL,
        "FLUSH of scanout %u of %u", m.index, w->n_scanouts);
    return FALSE;
  }
  to_scanout_flush (&m, &f);
  if (w->cb.flush && callbacks_allowed (w))
    w->cb.flush (w->user_data, &f);
  return TRUE;
}

/* The image of a CURSOR_SHAPE, copied out of the VMM's descriptor. The
 * descriptor is the VMM's word only: it must be a sealed memfd (Linux:
 * its size cannot shrink under us, reading it never blocks) of at least
 * @size bytes, and @size is at most 256 KiB (the parser's bound). */
static GBytes *
read_cursor_image (gint fd, gsize size, GError ** error)
{
  struct stat st;
  guint8 *data;
  gsize got = 0;

  if (fstat (fd, &st) != 0 || !S_ISREG (st.st_mode)
      || (guint64) st.st_size < size) {
    g_set_error (error, HXEX_ERROR, HXEX_ERR_PROTOCOL,
        "CURSOR_SHAPE descriptor is not shared memory of %" G_GSIZE_FORMAT
        " bytes", size);
    return NULL;
  }
#ifdef F_GET_SEALS
  {
    gint seals = fcntl (fd, F_GET_SEALS);

    if (seals < 0 || !(seals & F_SEAL_SHRINK) || !(seals & F_SEAL_WRITE)) {
      g_set_error (error, HXEX_ERROR, HXEX_ERR_PROTOCOL,
          "CURSOR_SHAPE descriptor is not a sealed memfd");
      return NULL;
    }
  }
#endif
  data = g_malloc (size);
  while (got < size) {
    gssize n = pread (fd, data + got, size - got, (off_t) got);

    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0) {
      g_set_error (error, HXEX_ERROR, HXEX_ERR_PROTOCOL,
          "reading the CURSOR_SHAPE image: %s", n < 0 ? g_strerror (errno) :
          "it ended early");
      g_free (data);
      return NULL;
    }
    got += n;
  }
  return g_bytes_new_take (data, size);
}

static gboolean
handle_cursor_shape (HxexWatch * w, const HxexHeader * h, GArray * fds,
    GError ** error)
{
  HxfrCursorShape shape;
  HxexCursorShape *m = &shape.desc;

  if (!hxex_cursor_shape_parse (hxex_stream_payload (w->stream),
          h->payload_size, m, error))
    return FALSE;
  if (m->index >= w->n_scanouts || fds->len != 1) {
    g_set_error (error, HXEX_ERROR, HXEX_ERR_PROTOCOL,
        "CURSOR_SHAPE of scanout %u of %u with %u descriptors (1)", m->index,
        w->n_scanouts, fds->len);
    return FALSE;
  }
  shape.pixels = read_cursor_image (g_array_index (fds, gint, 0), m->size,
      error);
  if (!shape.pixels)
    return FALSE;
  if (w->cb.cursor_shape && callbacks_allowed (w))
    w->cb.cursor_shape (w->user_data, &shape);
  g_bytes_unref (shape.pixels);
  return TRUE;
}

static gboolean
handle_cursor_move (HxexWatch * w, const HxexHeader * h, GError ** error)
{
  HxexCursorMove m;

  if (!hxex_cursor_move_parse (hxex_stream_payload (w->stream),
          h->payload_size, &m, error))
    return FALSE;
  if (m.index >= w->n_scanouts) {
    g_set_error (error, HXEX_ERROR, HXEX_ERR_PROTOCOL,
        "CURSOR_MOVE of scanout %u of %u", m.index, w->n_scanouts);
    return FALSE;
  }
  if (w->cb.cursor_move && callbacks_allowed (w))
    w->cb.cursor_move (w->user_data, &m);
  return TRUE;
}

/* Hands the ACK to the set_enabled call waiting for it; one nobody waits
 * for any more (it timed out) is dropped. */
static gboolean
handle_ack (HxexWatch * w, const HxexHeader * h, GError ** error)
{
  HxexScanoutControlAck ack;

  if (!hxex_scanout_control_ack_parse (hxex_stream_payload (w->stream),
          h->payload_size, &ack, error))
    return FALSE;
  g_mutex_lock (&w->lock);
  if (h->request_id != 0 && h->request_id == w->pending_id) {
    w->pending_ack = ack;
    w->pending_done = TRUE;
    g_cond_broadcast (&w->cond);
  }
  g_mutex_unlock (&w->lock);
  return TRUE;
}

static gboolean
handle_event (HxexWatch * w, const HxexHeader * h, GArray * fds,
    GError ** error)
{
  HxfrScanoutState st;

  if ((h->type == HXEX_MSG_CURSOR_SHAPE || h->type == HXEX_MSG_CURSOR_MOVE)
      && w->version < HXEX_VERSION_CURSOR) {
    g_set_error (error, HXEX_ERROR, HXEX_ERR_PROTOCOL,
        "%s on a version-%u watch", hxex_msg_type_name (h->type), w->version);
    return FALSE;
  }
  switch (h->type) {
    case HXEX_MSG_SCANOUT:
      if (!parse_scanout (w, h, &st, error))
        return FALSE;
      if (w->cb.state && callbacks_allowed (w))
        w->cb.state (w->user_data, &st);
      return TRUE;
    case HXEX_MSG_FLUSH:
      return handle_flush (w, h, error);
    case HXEX_MSG_FLUSH_SNAPSHOT:
      return handle_flush_snapshot (w, h, error);
    case HXEX_MSG_SCANOUT_CONTROL_ACK:
      return handle_ack (w, h, error);
    case HXEX_MSG_CURSOR_SHAPE:
      return handle_cursor_shape (w, h, fds, error);
    case HXEX_MSG_CURSOR_MOVE:
      return handle_cursor_move (w, h, error);
    case HXEX_MSG_ERROR:
      set_vmm_error (hxex_stream_payload (w->stream), h->payload_size,
          "ended the scanout watch", error);
      return FALSE;
    default:
      g_set_error (error, HXEX_ERROR, HXEX_ERR_PROTOCOL,
          "unexpected %s on a scanout watch", hxex_msg_type_name (h->type));
      return FALSE;
  }
}

static gpointer
reader_thread (gpointer data)
{
  HxexWatch *w = data;
  GError *err = NULL;
  GArray *fds = g_array_new (FALSE, FALSE, sizeof (gint));

  for (;;) {
    HxexHeader h;
    gboolean ok = read_message (w, &h, -1, fds, &err)
        && handle_event (w, &h, fds, &err);

    hxex_fds_clear (fds);
    if (!ok)
      break;
  }
  g_array_unref (fds);
  if (!err)
    err = g_error_new_literal (HXEX_ERROR, HXEX_ERR_PROTOCOL,
        "the scanout watch ended");
  set_dead (w, err);
  if (w->cb.closed && callbacks_allowed (w))
    w->cb.closed (w->user_data, err);
  g_error_free (err);
  return NULL;
}

static HxexWatch *
watch_alloc (HxfrConn * conn, const HxexWatchCallbacks * callbacks,
    gpointer user_data)
{
  HxexWatch *w = g_new0 (HxexWatch, 1);

  w->conn = conn;
  w->client = hxex_client_new_for_conn (conn,
      "the VMM closed the helix export watch");
  w->stream = hxex_client_get_stream (w->client);
  if (callbacks)
    w->cb = *callbacks;
  w->user_data = user_data;
  g_mutex_init (&w->control_lock);
  g_mutex_init (&w->lock);
  g_cond_init (&w->cond);
  w->next_request_id = 1;
  return w;
}

static void
watch_dealloc (HxexWatch * w)
{
  /* snapshots not freed yet keep the client (and its ring) */
  hxex_client_unref (w->client);
  hxfr_conn_unref (w->conn);
  g_clear_error (&w->dead_error);
  g_mutex_clear (&w->control_lock);
  g_mutex_clear (&w->lock);
  g_cond_clear (&w->cond);
  g_free (w);
}

HxexWatch *
hxex_watch_new (const gchar * path,
    const HxexWatchCallbacks * callbacks, gpointer user_data,
    gint64 timeout_us, GError ** error)
{
  g_autoptr (HxfrAddress) addr = hxfr_address_new_unix (path);
  gint64 deadline = hxfr_deadline_from_timeout (timeout_us);
  HxexWatch *w;
  HxfrConn *conn;

  conn = hxfr_conn_connect (addr, timeout_us, NULL, error);
  if (!conn) {
    g_prefix_error (error, "Could not connect to the helix export at %s: ",
        path);
    return NULL;
  }
  w = watch_alloc (conn, callbacks, user_data);
  if (!do_hello (w, deadline, error) || !do_watch (w, deadline, error)) {
    g_prefix_error (error, "Helix export watch at %s: ", path);
    watch_dealloc (w);
    return NULL;
  }
  w->reader = g_thread_new ("hxex-watch", reader_thread, w);
  return w;
}

guint
hxex_watch_get_n_scanouts (HxexWatch * w)
{
  return w->n_scanouts;
}

gboolean
hxex_watch_has_cursor (HxexWatch * w)
{
  return w->version >= HXEX_VERSION_CURSOR;
}

gboolean
hxex_watch_has_snapshots (HxexWatch * w)
{
  return w->snapshots;
}

gboolean
hxex_watch_set_snapshots (HxexWatch * w, guint32 mask, gint64 timeout_us,
    GError ** error)
{
  guint8 payload[HXEX_SNAPSHOTS_SIZE];

  if (!w->snapshots) {
    g_set_error (error, G_IO_ERROR, G_IO_ERROR_NOT_SUPPORTED,
        "the VMM's helix export takes no snapshots for this watch (version "
        "%u)", w->version);
    return FALSE;
  }
  if (w->n_scanouts < 32)
    mask &= (1u << w->n_scanouts) - 1;
  hxex_snapshots_write (mask, payload);
  return send_message (w, HXEX_MSG_SNAPSHOTS, 0, payload, sizeof (payload),
      hxfr_deadline_from_timeout (timeout_us), error);
}

/* Waits for the reader thread to hand over the ACK of @id. Caller holds
 * control_lock. */
static gboolean
wait_ack (HxexWatch * w, guint32 id, gint64 deadline,
    HxexScanoutControlAck * ack, GError ** error)
{
  gboolean ok = FALSE;

  g_mutex_lock (&w->lock);
  while (!w->pending_done && !w->dead_error)
    if (!g_cond_wait_until (&w->cond, &w->lock, deadline))
      break;
  if (w->pending_done) {
    *ack = w->pending_ack;
    ok = TRUE;
  } else if (w->dead_error) {
    g_propagate_error (error, g_error_copy (w->dead_error));
  } else {
    g_set_error (error, G_IO_ERROR, G_IO_ERROR_TIMED_OUT,
        "the VMM did not answer SCANOUT_CONTROL %u in time", id);
  }
  /* a late ACK then matches nobody */
  w->pending_id = 0;
  g_mutex_unlock (&w->lock);
  return ok;
}

gboolean
hxex_watch_set_enabled (HxexWatch * w, guint32 index,
    gboolean enable, guint32 width, guint32 height, guint32 refresh_hz,
    gint64 timeout_us, GError ** error)
{
  gint64 deadline = hxfr_deadline_from_timeout (timeout_us);
  /* g_cond_wait_until needs a real deadline: "forever" is a long one */
  gint64 wait_deadline = deadline < 0 ? G_MAXINT64 : deadline;
  guint8 payload[HXEX_SCANOUT_CONTROL_SIZE];
  HxexScanoutControl m = { index, enable ? 1 : 0, width, height,
    refresh_hz
  };
  HxexScanoutControlAck ack;
  gboolean ok = FALSE;
  guint32 id;

  g_mutex_lock (&w->control_lock);
  g_mutex_lock (&w->lock);
  if (w->dead_error) {
    g_propagate_error (error, g_error_copy (w->dead_error));
    g_mutex_unlock (&w->lock);
    goto out;
  }
  id = w->next_request_id++;
  if (w->next_request_id == 0)
    w->next_request_id = 1;
  w->pending_id = id;
  w->pending_done = FALSE;
  g_mutex_unlock (&w->lock);

  hxex_scanout_control_write (&m, payload);
  if (!send_message (w, HXEX_MSG_SCANOUT_CONTROL, id, payload,
          sizeof (payload), deadline, error)
      || !wait_ack (w, id, wait_deadline, &ack, error))
    goto out;
  if (ack.index != index) {
    g_set_error (error, HXEX_ERROR, HXEX_ERR_PROTOCOL,
        "SCANOUT_CONTROL_ACK for scanout %u, asked for %u", ack.index, index);
    goto out;
  }
  if (ack.status != 0) {
    g_set_error (error, HXEX_ERROR, ack.status,
        "The VMM refused to %s scanout %u (%ux%u@%u): %s",
        enable ? "enable" : "disable", index, width, height, refresh_hz,
        hxex_error_code_name (ack.status));
    goto out;
  }
  ok = TRUE;

out:
  g_mutex_lock (&w->lock);
  w->pending_id = 0;
  g_mutex_unlock (&w->lock);
  g_mutex_unlock (&w->control_lock);
  return ok;
}

void
hxex_watch_free (HxexWatch * w)
{
  if (!w)
    return;
  g_mutex_lock (&w->lock);
  w->closing = TRUE;
  g_mutex_unlock (&w->lock);
  /* wakes the reader thread: its read ends, it sees closing and returns
   * without a callback */
  hxfr_conn_shutdown (w->conn);
  g_thread_join (w->reader);
  watch_dealloc (w);
}
