/* Helix export, the VMM side. See helix-export.h and
 * docs/export-protocol.md.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "helix-export.h"
#include "hxfr-export-protocol.h"
#include "hxfr-transport.h"

#include <errno.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/uio.h>
#include <unistd.h>
#include <fcntl.h>

#ifdef __linux__
#include <sys/epoll.h>
#else
#include <sys/event.h>
#include <sys/time.h>
#endif

#ifdef __APPLE__
#include <IOSurface/IOSurface.h>
#endif

#include <epoxy/egl.h>
#include <virgl/virglrenderer.h>

#include "helix-virgl-defs.h"

#define FOURCC(a,b,c,d) ((guint32)(a) | ((guint32)(b) << 8) | \
    ((guint32)(c) << 16) | ((guint32)(d) << 24))

/* Messages handled per client per dispatch: the VMM's loop stays live. */
#define MAX_MESSAGES_PER_DISPATCH 32
#define MAX_EVENTS 16
/* A hotplug's refresh rate above this is nonsense, refused. */
#define MAX_REFRESH_HZ 1000

typedef struct
{
  HxexKind kind;
  guint slot;
} Held;

typedef struct
{
  HelixExport *ex;
  HxfrConn *conn;
  gint fd;
  gchar *peer;

  gboolean hello_done;
  guint16 version;              /* agreed at HELLO */
  gboolean watching;            /* sent WATCH: gets scanout events */
  /* version 4, a watch with a ring: bit N = snapshot scanout N's flushes */
  guint32 snapshot_mask;
  /* a send to it failed outside its own dispatch: closed at the next
   * safe point (never freed under a caller that may still hold it) */
  gboolean dead;
  /* scanouts (bits) whose latest CURSOR_MOVE this watcher's full socket
   * could not take: sent, the newest only, when it drains (a pointer
   * flood must not cost a slow watcher its connection) */
  guint32 moves_owed;
  guint32 kinds;
  HxexStream stream;

  gint ring_fd;
  guint8 *ring;
  gsize ring_size;
  gboolean *slot_busy;

  GHashTable *handles;          /* handle -> Held */
} Client;

typedef struct
{
  gboolean enabled;
  guint32 resource_id;
  guint32 width;
  guint32 height;
  guint32 fourcc;
} Scanout;

/* A scanout's cursor plane, as last reported (version 3) */
typedef struct
{
  gboolean has_shape;
  gint shape_fd;                /* sealed memfd with the pixels, has_shape */
  HxexCursorShape shape;
  gboolean has_position;
  HxexCursorMove move;
} Cursor;

/* Only touched from the dispatch thread: no locks. */
struct _HelixExport
{
  HelixExportOptions opts;
  HxfrListener *listener;
  gint listen_fd;
  gint poll_fd;
  GHashTable *clients;          /* fd -> Client */
  guint32 next_handle;
  gint dmabuf_state;            /* 0 untried, 1 works, -1 gave up */
  HelixExportStats stats;
  Scanout scanouts[HXEX_MAX_SCANOUTS];
  Cursor cursors[HXEX_MAX_SCANOUTS];
  /* inside dispatch: clients are not freed but marked dead (the loop or a
   * caller up the stack may hold one) */
  gboolean in_dispatch;
};

void
helix_export_options_init (HelixExportOptions * o)
{
  memset (o, 0, sizeof (*o));
  o->n_slots = HELIX_EXPORT_DEFAULT_N_SLOTS;
  o->slot_size = HELIX_EXPORT_DEFAULT_SLOT_SIZE;
  o->unix_mode = 0600;
  o->max_clients = 8;
  o->max_width = 8192;
  o->max_height = 8192;
  o->allow_dmabuf = TRUE;
}

/* Poller: one fd the VMM watches for all our sockets. */

static gboolean
poller_add (HelixExport * ex, gint fd)
{
#ifdef __linux__
  struct epoll_event ev;

  memset (&ev, 0, sizeof (ev));
  ev.events = EPOLLIN;
  ev.data.fd = fd;
  return epoll_ctl (ex->poll_fd, EPOLL_CTL_ADD, fd, &ev) == 0;
#else
  struct kevent kev;

  EV_SET (&kev, fd, EVFILT_READ, EV_ADD, 0, 0, NULL);
  return kevent (ex->poll_fd, &kev, 1, NULL, 0, NULL) == 0;
#endif
}

static void
poller_remove (HelixExport * ex, gint fd)
{
#ifdef __linux__
  epoll_ctl (ex->poll_fd, EPOLL_CTL_DEL, fd, NULL);
#else
  struct kevent kev;

  EV_SET (&kev, fd, EVFILT_READ, EV_DELETE, 0, 0, NULL);
  kevent (ex->poll_fd, &kev, 1, NULL, 0, NULL);
  EV_SET (&kev, fd, EVFILT_WRITE, EV_DELETE, 0, 0, NULL);
  kevent (ex->poll_fd, &kev, 1, NULL, 0, NULL);
#endif
}

/* Whether @fd's readiness to write wakes the VMM too (a watcher owes
 * cursor moves). */
static void
poller_want_writable (HelixExport * ex, gint fd, gboolean on)
{
#ifdef __linux__
  struct epoll_event ev;

  memset (&ev, 0, sizeof (ev));
  ev.events = EPOLLIN | (on ? EPOLLOUT : 0);
  ev.data.fd = fd;
  epoll_ctl (ex->poll_fd, EPOLL_CTL_MOD, fd, &ev);
#else
  struct kevent kev;

  EV_SET (&kev, fd, EVFILT_WRITE, on ? EV_ADD : EV_DELETE, 0, 0, NULL);
  kevent (ex->poll_fd, &kev, 1, NULL, 0, NULL);
#endif
}

/* Ready descriptors, without waiting. */
static gint
poller_ready (HelixExport * ex, gint * fds, gint max)
{
#ifdef __linux__
  struct epoll_event evs[MAX_EVENTS];
  gint n, i;

  n = epoll_wait (ex->poll_fd, evs, MIN (max, MAX_EVENTS), 0);
  for (i = 0; i < n; i++)
    fds[i] = evs[i].data.fd;
  return MAX (n, 0);
#else
  struct kevent evs[MAX_EVENTS];
  struct timespec zero = { 0, 0 };
  gint n, i;

  n = kevent (ex->poll_fd, NULL, 0, evs, MIN (max, MAX_EVENTS), &zero);
  for (i = 0; i < n; i++)
    fds[i] = (gint) evs[i].ident;
  return MAX (n, 0);
#endif
}

/* Shared memory for the ring (or a cursor image: @sealable lets it be
 * sealed on Linux, so a client can trust its size and contents). */
static gint
create_shared_fd (const gchar * what, gsize size, gboolean sealable,
    GError ** error)
{
  gint fd;

#ifdef __linux__
  fd = memfd_create (what, MFD_CLOEXEC | (sealable ? MFD_ALLOW_SEALING : 0));
#else
  {
    gchar name[64];

    g_snprintf (name, sizeof (name), "/helix-export-%d-%u", (int) getpid (),
        g_random_int ());
    fd = shm_open (name, O_RDWR | O_CREAT | O_EXCL, 0600);
    if (fd >= 0)
      shm_unlink (name);
  }
#endif
  if (fd < 0 || ftruncate (fd, (off_t) size) != 0) {
    int e = errno;

    if (fd >= 0)
      close (fd);
    g_set_error (error, G_IO_ERROR, g_io_error_from_errno (e),
        "creating %" G_GSIZE_FORMAT " bytes of shared memory: %s", size,
        g_strerror (e));
    return -1;
  }
  return fd;
}

static gint
create_ring_fd (gsize size, GError ** error)
{
  return create_shared_fd ("helix-export-ring", size, FALSE, error);
}

static void
client_free (Client * c)
{
  HelixExport *ex = c->ex;
  guint i;

  poller_remove (ex, c->fd);
  for (i = 0; c->slot_busy && i < ex->opts.n_slots; i++)
    if (c->slot_busy[i])
      ex->stats.slots_in_use--;
  ex->stats.handles_held -= g_hash_table_size (c->handles);
  ex->stats.clients--;
  if (c->watching)
    ex->stats.watchers--;
  g_hash_table_unref (c->handles);
  if (c->ring)
    munmap (c->ring, c->ring_size);
  if (c->ring_fd >= 0)
    close (c->ring_fd);
  g_free (c->slot_busy);
  hxex_stream_clear (&c->stream);
  g_debug ("helix export: %s disconnected", c->peer);
  g_free (c->peer);
  hxfr_conn_unref (c->conn);
  g_free (c);
}

static void
client_close (Client * c)
{
  /* the table's value destructor frees it */
  g_hash_table_remove (c->ex->clients, GINT_TO_POINTER (c->fd));
}

/* Sends one message whole, never waiting: a client that lets its socket
 * fill up is not served. FALSE = the client must be closed. */
static gboolean
client_send (Client * c, guint8 type, guint32 request_id,
    const guint8 * payload, gsize payload_len, gint fd)
{
  g_autoptr (GError) err = NULL;

  if (hxex_stream_send (&c->stream, type, request_id, payload, payload_len,
          &fd, fd >= 0 ? 1 : 0, HXEX_DEADLINE_NOW, NULL, &err))
    return TRUE;
  g_warning ("helix export: cannot send %s to %s (%s), disconnecting",
      hxex_msg_type_name (type), c->peer, err->message);
  return FALSE;
}

typedef enum
{
  MOVE_SENT,
  MOVE_OWED,                    /* nothing written: the socket is full */
  MOVE_FAILED,                  /* the watcher must be closed */
} MoveSent;

static MoveSent
send_move (Client * c, guint32 index)
{
  guint8 payload[HXEX_CURSOR_MOVE_SIZE];
  g_autoptr (GError) err = NULL;
  gboolean broken = TRUE;

  hxex_cursor_move_write (&c->ex->cursors[index].move, payload);
  if (hxex_stream_send (&c->stream, HXEX_MSG_CURSOR_MOVE, 0, payload,
          sizeof (payload), NULL, 0, HXEX_DEADLINE_NOW, &broken, &err))
    return MOVE_SENT;
  if (!broken)
    return MOVE_OWED;
  g_warning ("helix export: cannot send CURSOR_MOVE to %s (%s), "
      "disconnecting", c->peer, err->message);
  return MOVE_FAILED;
}

/* The newest position of each scanout @c is owed, in scanout order, as far
 * as its socket takes them; asks to hear when it drains if some are left.
 * FALSE = the client must be closed. */
static gboolean
pay_owed_moves (Client * c)
{
  guint32 index;

  for (index = 0; c->moves_owed && index < HXEX_MAX_SCANOUTS; index++) {
    if (!(c->moves_owed & (1u << index)))
      continue;
    switch (send_move (c, index)) {
      case MOVE_SENT:
        c->moves_owed &= ~(1u << index);
        break;
      case MOVE_OWED:
        poller_want_writable (c->ex, c->fd, TRUE);
        return TRUE;
      case MOVE_FAILED:
        return FALSE;
    }
  }
  poller_want_writable (c->ex, c->fd, FALSE);
  return TRUE;
}

/* Marks @c dead (never waited for): freed at the next safe point. */
static void
drop_watcher (Client * c)
{
  c->dead = TRUE;
  c->ex->stats.watchers_dropped++;
  /* half a message may be on the wire: the peer must see the end */
  hxfr_conn_shutdown (c->conn);
}

/* *INDENT-OFF* */ /* indent cannot parse G_GNUC_PRINTF */
static gboolean
client_send_error (Client * c, guint32 request_id, gint32 code,
    const gchar * format, ...) G_GNUC_PRINTF (4, 5);
/* *INDENT-ON* */

static gboolean
client_send_error (Client * c, guint32 request_id, gint32 code,
    const gchar * format, ...)
{
  guint8 payload[HXEX_ERROR_SIZE];
  g_autofree gchar *text = NULL;
  va_list args;

  va_start (args, format);
  text = g_strdup_vprintf (format, args);
  va_end (args);
  g_debug ("helix export: %s: error %d (%s): %s", c->peer, code,
      hxex_error_code_name (code), text);
  c->ex->stats.errors++;
  hxex_error_write (code, text, payload);
  return client_send (c, HXEX_MSG_ERROR, request_id, payload,
      sizeof (payload), -1);
}

static guint16
max_version (HelixExport * ex)
{
  return ex->opts.max_version ? MIN (ex->opts.max_version, HXEX_MAX_VERSION)
      : HXEX_MAX_VERSION;
}

static gboolean
handle_hello (Client * c, const HxexHeader * h, const guint8 * body)
{
  HelixExport *ex = c->ex;
  guint8 payload[HXEX_HELLO_ACK_SIZE];
  g_autoptr (GError) err = NULL;
  HxexHelloAck ack;
  HxexHello hello;
  guint32 offered = HXEX_KIND_BIT (HXEX_KIND_READBACK_SLOT);

  if (!hxex_hello_parse (body, h->payload_size, &hello, &err)) {
    client_send_error (c, h->request_id, HXEX_ERR_PROTOCOL, "%s", err->message);
    return FALSE;
  }
  if (c->hello_done) {
    client_send_error (c, h->request_id, HXEX_ERR_PROTOCOL, "second HELLO");
    return FALSE;
  }
  /* the highest both speak: a v1 client sees nothing of version 2 */
  if (hello.min_version > max_version (ex) || hello.max_version < HXEX_VERSION) {
    client_send_error (c, h->request_id, HXEX_ERR_VERSION,
        "this VMM speaks versions %u..%u", HXEX_VERSION, max_version (ex));
    return FALSE;
  }
  c->version = MIN (hello.max_version, max_version (ex));
  if (ex->opts.allow_dmabuf || ex->opts.simulate_dmabuf)
    offered |= HXEX_KIND_BIT (HXEX_KIND_DMABUF);
#ifdef __APPLE__
  if (ex->opts.lookup_iosurface)
    offered |= HXEX_KIND_BIT (HXEX_KIND_IOSURFACE);
#endif
  if (ex->opts.n_slots == 0)
    offered &= ~HXEX_KIND_BIT (HXEX_KIND_READBACK_SLOT);
  c->kinds = offered & (hello.kinds ? hello.kinds : HXEX_KINDS_ALL);

  if (ex->opts.n_slots > 0
      && (c->kinds & HXEX_KIND_BIT (HXEX_KIND_READBACK_SLOT))) {
    c->ring_size = (gsize) ex->opts.n_slots * ex->opts.slot_size;
    c->ring_fd = create_ring_fd (c->ring_size, &err);
    if (c->ring_fd >= 0) {
      c->ring = mmap (NULL, c->ring_size, PROT_READ | PROT_WRITE, MAP_SHARED,
          c->ring_fd, 0);
      if (c->ring == MAP_FAILED) {
        c->ring = NULL;
        g_set_error (&err, G_IO_ERROR, g_io_error_from_errno (errno),
            "mmap: %s", g_strerror (errno));
      }
    }
    if (!c->ring) {
      client_send_error (c, h->request_id, HXEX_ERR_INTERNAL,
          "no shared memory for the readback ring: %s", err->message);
      return FALSE;
    }
    c->slot_busy = g_new0 (gboolean, ex->opts.n_slots);
  }

  memset (&ack, 0, sizeof (ack));
  ack.version = c->version;
  ack.kinds = c->kinds;
  ack.n_slots = c->ring ? ex->opts.n_slots : 0;
  ack.slot_size = c->ring ? ex->opts.slot_size : 0;
  ack.max_width = ex->opts.max_width;
  ack.max_height = ex->opts.max_height;
  hxex_hello_ack_write (&ack, payload);
  c->hello_done = TRUE;
  return client_send (c, HXEX_MSG_HELLO_ACK, h->request_id, payload,
      sizeof (payload), c->ring ? c->ring_fd : -1);
}

static guint32
fourcc_for_virgl_format (guint32 format)
{
  switch (format) {
    case VIRGL_FORMAT_B8G8R8A8_UNORM:
      return FOURCC ('A', 'R', '2', '4');
    case VIRGL_FORMAT_B8G8R8X8_UNORM:
      return FOURCC ('X', 'R', '2', '4');
    case VIRGL_FORMAT_R8G8B8A8_UNORM:
      return FOURCC ('A', 'B', '2', '4');
    case VIRGL_FORMAT_R8G8B8X8_UNORM:
      return FOURCC ('X', 'B', '2', '4');
    default:
      return 0;
  }
}

static guint32
new_handle (HelixExport * ex)
{
  guint32 h = ex->next_handle++;

  if (ex->next_handle == 0)
    ex->next_handle = 1;
  return h;
}

static void
hold (Client * c, guint32 handle, HxexKind kind, guint slot)
{
  Held *held = g_new0 (Held, 1);

  held->kind = kind;
  held->slot = slot;
  g_hash_table_insert (c->handles, GUINT_TO_POINTER (handle), held);
  c->ex->stats.handles_held++;
}

/* DMA-BUF of a resource's texture: first virglrenderer's export query
 * (fourcc, modifier, per-plane layout), then the older
 * get_fd_for_texture2. Both need a GPU with EGL_MESA_image_dma_buf_export;
 * on llvmpipe without a DRM device they fail and we fall back. Returns
 * the fd or -1. */
static gint
try_dmabuf (HelixExport * ex, guint32 resource_id,
    const struct virgl_renderer_resource_info *info, HxexSurface * s)
{
  struct virgl_renderer_export_query q;
  gint fd = -1, stride = 0, offset = 0;
  guint i;

  if (ex->dmabuf_state < 0)
    return -1;
  if (ex->dmabuf_state == 0) {
    /* only for the log: the export calls below are the real test */
    EGLDisplay dpy = epoxy_has_egl ()? eglGetCurrentDisplay () : EGL_NO_DISPLAY;

    g_debug ("helix export: renderer EGL display %s "
        "EGL_MESA_image_dma_buf_export", dpy != EGL_NO_DISPLAY
        && epoxy_has_egl_extension (dpy, "EGL_MESA_image_dma_buf_export") ?
        "has" : "lacks");
  }

  memset (&q, 0, sizeof (q));
  q.hdr.stype = VIRGL_RENDERER_STRUCTURE_TYPE_EXPORT_QUERY;
  q.hdr.stype_version = 0;
  q.hdr.size = sizeof (q);
  q.in_resource_id = resource_id;
  q.in_export_fds = 1;
  if (virgl_renderer_execute (&q, sizeof (q)) == 0 && q.out_num_fds >= 1
      && q.out_num_fds <= HXEX_MAX_PLANES && q.out_fourcc != 0) {
    gboolean one_buffer = TRUE;

    /* one descriptor on the wire: every plane must live in the first
     * buffer (always true for the single-plane RGB we serve) */
    for (i = 1; i < q.out_num_fds; i++)
      one_buffer &= q.out_fds[i] == q.out_fds[0];
    if (one_buffer) {
      fd = q.out_fds[0];
      s->fourcc = q.out_fourcc;
      s->modifier = q.out_modifier;
      s->n_planes = q.out_num_fds;
      for (i = 0; i < q.out_num_fds; i++) {
        s->stride[i] = q.out_strides[i];
        s->offset[i] = q.out_offsets[i];
      }
    } else {
      for (i = 0; i < q.out_num_fds; i++)
        if (q.out_fds[i] >= 0)
          close (q.out_fds[i]);
    }
  }
  if (fd < 0 && virgl_renderer_get_fd_for_texture2 (info->tex_id, &fd,
          &stride, &offset) == 0 && fd >= 0) {
    s->n_planes = 1;
    s->stride[0] = stride;
    s->offset[0] = offset;
    s->modifier = HXEX_DRM_FORMAT_MOD_INVALID;
  }
  if (fd < 0) {
    ex->stats.dmabuf_failures++;
    if (ex->dmabuf_state == 0) {
      g_message ("helix export: DMA-BUF export of resource %u failed: "
          "DMA-BUF export off, using readback", resource_id);
      ex->dmabuf_state = -1;
    }
    return -1;
  }
  ex->dmabuf_state = 1;
  s->kind = HXEX_KIND_DMABUF;
  s->size = lseek (fd, 0, SEEK_END) > 0 ? (guint64) lseek (fd, 0, SEEK_END)
      : (guint64) s->offset[0] + (guint64) s->stride[0] * info->height;
  return fd;
}

#ifdef __APPLE__
/* Untested: no macOS machine here. The VMM hands us a global IOSurfaceID
 * for the resource; we describe it from the IOSurface itself. */
static gboolean
try_iosurface (HelixExport * ex, guint32 resource_id, HxexSurface * s)
{
  guint32 id = 0;
  IOSurfaceRef surf;

  if (!ex->opts.lookup_iosurface
      || !ex->opts.lookup_iosurface (ex->opts.user_data, resource_id, &id))
    return FALSE;
  surf = IOSurfaceLookup (id);
  if (!surf)
    return FALSE;
  s->kind = HXEX_KIND_IOSURFACE;
  s->iosurface_id = id;
  s->width = IOSurfaceGetWidth (surf);
  s->height = IOSurfaceGetHeight (surf);
  s->n_planes = 1;
  s->stride[0] = IOSurfaceGetBytesPerRow (surf);
  s->size = IOSurfaceGetAllocSize (surf);
  /* 'BGRA' is the Metal/CoreVideo layout of DRM AR24 */
  s->fourcc = IOSurfaceGetPixelFormat (surf) == 'BGRA' ?
      FOURCC ('A', 'R', '2', '4') : 0;
  CFRelease (surf);
  return s->fourcc != 0;
}
#endif

/* Answers with @s (kind, geometry and slot filled in): a new handle the
 * client holds until it releases it; @fd (-1: none) goes with the answer
 * and is closed here, the socket holding its own reference. FALSE = the
 * client must be closed. */
static gboolean
send_surface (Client * c, guint32 request_id, HxexSurface * s, gint fd)
{
  HelixExport *ex = c->ex;
  guint8 payload[HXEX_SURFACE_SIZE];
  gboolean ok;

  s->handle = new_handle (ex);
  hold (c, s->handle, s->kind, s->kind == HXEX_KIND_READBACK_SLOT ?
      s->slot : 0);
  ex->stats.resolves++;
  switch (s->kind) {
    case HXEX_KIND_READBACK_SLOT:
      ex->stats.readbacks++;
      break;
    case HXEX_KIND_DMABUF:
      ex->stats.dmabufs++;
      break;
    case HXEX_KIND_IOSURFACE:
      ex->stats.iosurfaces++;
      break;
    default:
      break;
  }
  hxex_surface_write (s, payload);
  ok = client_send (c, HXEX_MSG_SURFACE, request_id, payload,
      sizeof (payload), fd);
  if (fd >= 0)
    close (fd);
  return ok;
}

/* TESTS ONLY (HelixExportOptions.simulate_dmabuf): a readback copy in a
 * memfd of its own, sent as kind DMABUF, linear. Lets the bridge's
 * DMA-BUF wrapping run where no renderer can export a real one; a memfd
 * maps like a DMA-BUF (GstDmaBufAllocator memory is fd memory). */
static gboolean
send_simulated_dmabuf (Client * c, const HxexHeader * h, guint32 resource_id,
    const struct virgl_renderer_resource_info *info, HxexSurface * s)
{
  HelixExport *ex = c->ex;
  g_autoptr (GError) err = NULL;
  guint64 stride = (guint64) info->width * 4;
  gsize size = (gsize) stride * info->height;
  struct virgl_box box = { 0, 0, 0, info->width, info->height, 1 };
  struct iovec iov;
  gpointer map;
  gint fd, ret;

  fd = create_ring_fd (size, &err);
  if (fd < 0)
    return client_send_error (c, h->request_id, HXEX_ERR_INTERNAL,
        "resource %u: no memory for a simulated DMA-BUF: %s", resource_id,
        err->message);
  map = mmap (NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (map == MAP_FAILED) {
    close (fd);
    return client_send_error (c, h->request_id, HXEX_ERR_INTERNAL,
        "resource %u: mmap: %s", resource_id, g_strerror (errno));
  }
  iov.iov_base = map;
  iov.iov_len = size;
  virgl_renderer_force_ctx_0 ();
  ret = virgl_renderer_transfer_read_iov (resource_id, 0, 0,
      (uint32_t) stride, 0, &box, 0, &iov, 1);
  munmap (map, size);
  if (ret != 0) {
    close (fd);
    return client_send_error (c, h->request_id, HXEX_ERR_INTERNAL,
        "reading back resource %u failed: %s", resource_id,
        g_strerror (ret > 0 ? ret : -ret));
  }
  s->kind = HXEX_KIND_DMABUF;
  s->n_planes = 1;
  s->stride[0] = (guint32) stride;
  s->offset[0] = 0;
  s->modifier = ex->opts.simulate_dmabuf_modifier;
  s->size = size;
  return send_surface (c, h->request_id, s, fd);
}

/* @resource_id's info, and @s describing it (size, fourcc; no kind yet),
 * if it is a live 2D resource of a format we export within the size
 * limit. FALSE: @error (domain HXEX_ERROR, the code the client gets) says
 * why. */
static gboolean
look_up_resource (HelixExport * ex, guint32 resource_id,
    struct virgl_renderer_resource_info *info, HxexSurface * s, GError ** error)
{
  /* the VMM knows a destroyed resource that virglrenderer may still hold */
  if (resource_id != 0 && ex->opts.resource_alive
      && !ex->opts.resource_alive (ex->opts.user_data, resource_id)) {
    g_set_error (error, HXEX_ERROR, HXEX_ERR_UNKNOWN_RESOURCE,
        "resource %u is not a live guest resource (destroyed or never "
        "created)", resource_id);
    return FALSE;
  }
  memset (info, 0, sizeof (*info));
  if (resource_id == 0
      || virgl_renderer_resource_get_info (resource_id, info) != 0) {
    g_set_error (error, HXEX_ERROR, HXEX_ERR_UNKNOWN_RESOURCE,
        "no resource %u", resource_id);
    return FALSE;
  }

  memset (s, 0, sizeof (*s));
  s->width = info->width;
  s->height = info->height;
  s->fourcc = fourcc_for_virgl_format (info->virgl_format);
  if (s->fourcc == 0 || info->depth > 1 || info->width == 0
      || info->height == 0) {
    g_set_error (error, HXEX_ERROR, HXEX_ERR_UNSUPPORTED_FORMAT,
        "resource %u is virgl format %u, %ux%ux%u: only 2D BGRA/BGRX/RGBA/"
        "RGBX is exported", resource_id, info->virgl_format, info->width,
        info->height, info->depth);
    return FALSE;
  }
  if (info->width > ex->opts.max_width || info->height > ex->opts.max_height) {
    g_set_error (error, HXEX_ERROR, HXEX_ERR_TOO_LARGE,
        "resource %u is %ux%u, the limit is %ux%u", resource_id, info->width,
        info->height, ex->opts.max_width, ex->opts.max_height);
    return FALSE;
  }
  return TRUE;
}

/* The first slot of @c's ring it does not hold, n_slots if it holds them
 * all. */
static guint
free_slot (Client * c)
{
  guint slot;

  for (slot = 0; slot < c->ex->opts.n_slots; slot++)
    if (!c->slot_busy[slot])
      break;
  return slot;
}

/* Copies @resource_id's pixels (linear, 4 bytes a pixel) into @slot of
 * @c's ring. 0, or virglrenderer's error. */
static gint
read_back_into_slot (Client * c, guint32 resource_id,
    const struct virgl_renderer_resource_info *info, guint slot,
    guint64 stride, guint64 size)
{
  struct virgl_box box = { 0, 0, 0, info->width, info->height, 1 };
  struct iovec iov = { c->ring + (gsize) slot * c->ex->opts.slot_size,
    (gsize) size
  };

  /* ctx 0 is the renderer's own context: it reads any resource. Make
   * it current, as QEMU does before its own host-side accesses. */
  virgl_renderer_force_ctx_0 ();
  return virgl_renderer_transfer_read_iov (resource_id, 0, 0,
      (uint32_t) stride, 0, &box, 0, &iov, 1);
}

/* Copies @resource_id's pixels (linear, 4 bytes a pixel) into a free slot
 * of @c's ring, then held: the slot, *@stride and *@size the copy's
 * layout; or -1 and @error (HXEX_ERROR: TOO_LARGE, BUSY or INTERNAL). */
static gint
copy_to_free_slot (Client * c, guint32 resource_id,
    const struct virgl_renderer_resource_info *info, guint64 * stride,
    guint64 * size, GError ** error)
{
  HelixExport *ex = c->ex;
  guint slot;
  gint ret;

  *stride = (guint64) info->width * 4;
  *size = *stride * info->height;
  if (*size > ex->opts.slot_size) {
    g_set_error (error, HXEX_ERROR, HXEX_ERR_TOO_LARGE, "resource %u (%ux%u) "
        "needs %" G_GUINT64_FORMAT " bytes, a slot holds %" G_GUINT64_FORMAT,
        resource_id, info->width, info->height, *size, ex->opts.slot_size);
    return -1;
  }
  slot = free_slot (c);
  if (slot == ex->opts.n_slots) {
    g_set_error (error, HXEX_ERROR, HXEX_ERR_BUSY,
        "all %u slots are held: release some", ex->opts.n_slots);
    return -1;
  }
  ret = read_back_into_slot (c, resource_id, info, slot, *stride, *size);
  if (ret != 0) {
    g_set_error (error, HXEX_ERROR, HXEX_ERR_INTERNAL,
        "reading back resource %u failed: %s", resource_id,
        g_strerror (ret > 0 ? ret : -ret));
    return -1;
  }
  c->slot_busy[slot] = TRUE;
  ex->stats.slots_in_use++;
  return slot;
}

/* The readback answer: @resource_id copied into a free slot of @c's ring,
 * which the client holds until it releases the handle. FALSE = the client
 * must be closed. */
static gboolean
send_readback (Client * c, guint32 request_id, guint32 resource_id,
    const struct virgl_renderer_resource_info *info, HxexSurface * s)
{
  g_autoptr (GError) err = NULL;
  guint64 stride, size;
  gint slot = copy_to_free_slot (c, resource_id, info, &stride, &size, &err);

  if (slot < 0)
    return client_send_error (c, request_id, err->code, "%s", err->message);
  s->kind = HXEX_KIND_READBACK_SLOT;
  s->slot = slot;
  s->n_planes = 1;
  s->stride[0] = (guint32) stride;
  s->offset[0] = 0;
  s->modifier = HXEX_DRM_FORMAT_MOD_LINEAR;
  s->size = size;
  return send_surface (c, request_id, s, -1);
}

/* RESOLVE: the best kind the client accepts that works for the resource,
 * in order IOSurface (macOS), DMA-BUF (simulated for tests, or real),
 * readback slot. FALSE = the client must be closed. */
static gboolean
handle_resolve (Client * c, const HxexHeader * h, const guint8 * body)
{
  HelixExport *ex = c->ex;
  struct virgl_renderer_resource_info info;
  g_autoptr (GError) err = NULL;
  HxexResolve req;
  HxexSurface s;
  guint32 kinds;
  gint fd;

  if (!hxex_resolve_parse (body, h->payload_size, &req, &err)) {
    client_send_error (c, h->request_id, HXEX_ERR_PROTOCOL, "%s", err->message);
    return FALSE;
  }
  kinds = c->kinds & (req.kinds ? req.kinds : HXEX_KINDS_ALL);
  if (!look_up_resource (ex, req.resource_id, &info, &s, &err))
    return client_send_error (c, h->request_id, err->code, "%s", err->message);

#ifdef __APPLE__
  if ((kinds & HXEX_KIND_BIT (HXEX_KIND_IOSURFACE))
      && try_iosurface (ex, req.resource_id, &s))
    return send_surface (c, h->request_id, &s, -1);
#endif

  if ((kinds & HXEX_KIND_BIT (HXEX_KIND_DMABUF)) && ex->opts.simulate_dmabuf)
    return send_simulated_dmabuf (c, h, req.resource_id, &info, &s);

  if ((kinds & HXEX_KIND_BIT (HXEX_KIND_DMABUF)) && ex->opts.allow_dmabuf) {
    fd = try_dmabuf (ex, req.resource_id, &info, &s);
    if (fd >= 0)
      return send_surface (c, h->request_id, &s, fd);
  }

  if (!(kinds & HXEX_KIND_BIT (HXEX_KIND_READBACK_SLOT)) || !c->ring)
    return client_send_error (c, h->request_id, HXEX_ERR_UNSUPPORTED_FORMAT,
        "resource %u: none of the surface kinds this connection accepts "
        "(0x%x) is available", req.resource_id, kinds);
  return send_readback (c, h->request_id, req.resource_id, &info, &s);
}

static gboolean
handle_release (Client * c, const HxexHeader * h, const guint8 * body)
{
  g_autoptr (GError) err = NULL;
  guint32 handle;
  Held *held;

  if (!hxex_release_parse (body, h->payload_size, &handle, &err)) {
    client_send_error (c, h->request_id, HXEX_ERR_PROTOCOL, "%s", err->message);
    return FALSE;
  }
  held = g_hash_table_lookup (c->handles, GUINT_TO_POINTER (handle));
  if (!held) {
    /* never answered: count it, keep serving */
    c->ex->stats.bad_releases++;
    g_debug ("helix export: %s released handle %u it does not hold",
        c->peer, handle);
    return TRUE;
  }
  if (held->kind == HXEX_KIND_READBACK_SLOT) {
    c->slot_busy[held->slot] = FALSE;
    c->ex->stats.slots_in_use--;
  }
  g_hash_table_remove (c->handles, GUINT_TO_POINTER (handle));
  c->ex->stats.handles_held--;
  return TRUE;
}

/* Scanouts (protocol version 2) */

static gboolean
send_scanout (Client * c, guint32 index)
{
  const Scanout *so = &c->ex->scanouts[index];
  guint8 payload[HXEX_SCANOUT_SIZE];
  HxexScanout m = { index, so->enabled ? HXEX_SCANOUT_ENABLED : 0,
    so->resource_id, so->width, so->height, so->fourcc,
    c->ex->opts.n_scanouts
  };

  hxex_scanout_write (&m, payload);
  return client_send (c, HXEX_MSG_SCANOUT, 0, payload, sizeof (payload), -1);
}

/* Scanout @index's cursor shape and position, those known. */
static gboolean
send_cursor (Client * c, guint32 index)
{
  const Cursor *cu = &c->ex->cursors[index];
  guint8 payload[HXEX_CURSOR_SHAPE_SIZE];

  if (cu->has_shape) {
    hxex_cursor_shape_write (&cu->shape, payload);
    if (!client_send (c, HXEX_MSG_CURSOR_SHAPE, 0, payload,
            HXEX_CURSOR_SHAPE_SIZE, cu->shape_fd))
      return FALSE;
  }
  if (cu->has_position) {
    hxex_cursor_move_write (&cu->move, payload);
    if (!client_send (c, HXEX_MSG_CURSOR_MOVE, 0, payload,
            HXEX_CURSOR_MOVE_SIZE, -1))
      return FALSE;
  }
  return TRUE;
}

static gboolean
handle_watch (Client * c, const HxexHeader * h, const guint8 * body)
{
  HelixExport *ex = c->ex;
  g_autoptr (GError) err = NULL;
  guint i;

  if (!hxex_watch_parse (body, h->payload_size, &err)) {
    client_send_error (c, h->request_id, HXEX_ERR_PROTOCOL, "%s", err->message);
    return FALSE;
  }
  /* not a protocol error: the connection stays an ordinary one */
  if (ex->opts.n_scanouts == 0)
    return client_send_error (c, h->request_id, HXEX_ERR_NO_SCANOUTS,
        "this VMM reports no scanouts");
  c->watching = TRUE;
  ex->stats.watchers++;
  g_debug ("helix export: %s watches %u scanouts", c->peer,
      ex->opts.n_scanouts);
  for (i = 0; i < ex->opts.n_scanouts; i++)
    if (!send_scanout (c, i))
      return FALSE;
  /* version 3: the cursors as they are now, so a new watcher needs no
   * guest activity to learn them */
  for (i = 0; i < ex->opts.n_scanouts && c->version >= HXEX_VERSION_CURSOR; i++)
    if (!send_cursor (c, i))
      return FALSE;
  return TRUE;
}

/* Why a SCANOUT_CONTROL is refused before the VMM is asked; NULL = ask. */
static const gchar *
control_refusal (HelixExport * ex, const HxexScanoutControl * m)
{
  if (m->index >= ex->opts.n_scanouts)
    return "no such scanout";
  if (m->index == 0)
    return "scanout 0 is the VMM's own";
  if (m->enable && (m->width == 0 || m->height == 0
          || m->width > ex->opts.max_width || m->height > ex->opts.max_height))
    return "size out of range";
  if (m->enable && m->refresh_hz > MAX_REFRESH_HZ)
    return "refresh rate out of range";
  if (!ex->opts.set_scanout_enabled)
    return "this VMM does not hotplug";
  return NULL;
}

static gboolean
handle_scanout_control (Client * c, const HxexHeader * h, const guint8 * body)
{
  HelixExport *ex = c->ex;
  guint8 payload[HXEX_SCANOUT_CONTROL_ACK_SIZE];
  g_autoptr (GError) err = NULL;
  HxexScanoutControl m;
  HxexScanoutControlAck ack;
  const gchar *why;

  if (!hxex_scanout_control_parse (body, h->payload_size, &m, &err)) {
    client_send_error (c, h->request_id, HXEX_ERR_PROTOCOL, "%s", err->message);
    return FALSE;
  }
  if (h->request_id == 0) {
    client_send_error (c, 0, HXEX_ERR_PROTOCOL,
        "SCANOUT_CONTROL with request id 0");
    return FALSE;
  }
  why = control_refusal (ex, &m);
  if (!why && !ex->opts.set_scanout_enabled (ex->opts.user_data, m.index,
          m.enable, m.width, m.height, m.refresh_hz))
    why = "the VMM refused";
  /* the callback may have reported to this very watcher, and failed */
  if (c->dead)
    return FALSE;
  ex->stats.scanout_controls++;
  if (why) {
    ex->stats.scanout_refusals++;
    g_debug ("helix export: %s: scanout %u %s %ux%u refused: %s", c->peer,
        m.index, m.enable ? "enable" : "disable", m.width, m.height, why);
  }
  ack.index = m.index;
  ack.status = why ? HXEX_ERR_REFUSED : 0;
  hxex_scanout_control_ack_write (&ack, payload);
  return client_send (c, HXEX_MSG_SCANOUT_CONTROL_ACK, h->request_id,
      payload, sizeof (payload), -1);
}

/* A version-2 message on a connection that may not send it, or anything
 * but SCANOUT_CONTROL on a watch: the reason, NULL = fine. */
static const gchar *
message_misplaced (Client * c, guint8 type)
{
  gboolean v2_type = type == HXEX_MSG_WATCH || type == HXEX_MSG_SCANOUT_CONTROL;
  gboolean watch_type = type == HXEX_MSG_SCANOUT_CONTROL
      || type == HXEX_MSG_SNAPSHOTS;

  if (v2_type && c->version < HXEX_VERSION_SCANOUTS)
    return "needs protocol version 2";
  if (type == HXEX_MSG_SNAPSHOTS && c->version < HXEX_VERSION_SNAPSHOTS)
    return "needs protocol version 4";
  if (c->watching && type == HXEX_MSG_WATCH)
    return "a second WATCH";
  /* a version-4 watch gives its snapshots back */
  if (c->watching && !watch_type && !(type == HXEX_MSG_RELEASE
          && c->version >= HXEX_VERSION_SNAPSHOTS))
    return "not allowed on a watch";
  if (!c->watching && watch_type)
    return "needs a WATCH first";
  if (type == HXEX_MSG_SNAPSHOTS && !c->ring)
    return "a watch without a ring has no slots for snapshots";
  return NULL;
}

/* SNAPSHOTS (version 4): the scanouts whose flushes this watcher wants
 * copied at the flush. Never answered. */
static gboolean
handle_snapshots (Client * c, const HxexHeader * h, const guint8 * body)
{
  HelixExport *ex = c->ex;
  g_autoptr (GError) err = NULL;
  guint32 mask;

  if (!hxex_snapshots_parse (body, h->payload_size, &mask, &err)) {
    client_send_error (c, h->request_id, HXEX_ERR_PROTOCOL, "%s", err->message);
    return FALSE;
  }
  if (mask >> ex->opts.n_scanouts) {
    client_send_error (c, h->request_id, HXEX_ERR_PROTOCOL,
        "SNAPSHOTS of scanouts 0x%x: this VMM has %u", mask,
        ex->opts.n_scanouts);
    return FALSE;
  }
  if (mask != c->snapshot_mask)
    g_debug ("helix export: %s wants snapshots of scanouts 0x%x", c->peer,
        mask);
  c->snapshot_mask = mask;
  return TRUE;
}

/* One whole message, just read. FALSE = close the client. */
static gboolean
handle_message (Client * c, const HxexHeader * h)
{
  const guint8 *body = hxex_stream_payload (&c->stream);

  if (h->n_fds > 0 || c->stream.fds->len > 0) {
    client_send_error (c, h->request_id, HXEX_ERR_PROTOCOL,
        "clients do not send file descriptors");
    return FALSE;
  }
  if (h->type != HXEX_MSG_HELLO && !c->hello_done) {
    client_send_error (c, h->request_id, HXEX_ERR_PROTOCOL,
        "%s before HELLO", hxex_msg_type_name (h->type));
    return FALSE;
  }
  if (h->type != HXEX_MSG_HELLO && message_misplaced (c, h->type)) {
    client_send_error (c, h->request_id, HXEX_ERR_PROTOCOL, "%s: %s",
        hxex_msg_type_name (h->type), message_misplaced (c, h->type));
    return FALSE;
  }
  switch (h->type) {
    case HXEX_MSG_HELLO:
      return handle_hello (c, h, body);
    case HXEX_MSG_WATCH:
      return handle_watch (c, h, body);
    case HXEX_MSG_SCANOUT_CONTROL:
      return handle_scanout_control (c, h, body);
    case HXEX_MSG_SNAPSHOTS:
      return handle_snapshots (c, h, body);
    case HXEX_MSG_RESOLVE:
      return handle_resolve (c, h, body);
    case HXEX_MSG_RELEASE:
      return handle_release (c, h, body);
    default:
      client_send_error (c, h->request_id, HXEX_ERR_PROTOCOL,
          "%s is not a client message", hxex_msg_type_name (h->type));
      return FALSE;
  }
}

/* Reads what is there, handles whole messages. FALSE = close. */
static gboolean
client_readable (Client * c)
{
  guint handled = 0;

  while (handled < MAX_MESSAGES_PER_DISPATCH && !c->dead) {
    g_autoptr (GError) err = NULL;
    HxexHeader h;

    if (!hxex_stream_read (&c->stream, &h, HXEX_DEADLINE_NOW, &err)) {
      if (err->domain == HXEX_ERROR) {
        client_send_error (c, 0, HXEX_ERR_PROTOCOL, "%s", err->message);
        return FALSE;
      }
      return g_error_matches (err, G_IO_ERROR, G_IO_ERROR_WOULD_BLOCK);
    }
    if (!handle_message (c, &h) || c->dead)
      return FALSE;
    handled++;
  }
  return !c->dead;
}

static void
accept_clients (HelixExport * ex)
{
  for (;;) {
    g_autoptr (GError) err = NULL;
    HxfrConn *conn = hxfr_listener_accept (ex->listener, 0, NULL, &err);
    Client *c;

    if (!conn)
      return;
    if (g_hash_table_size (ex->clients) >= ex->opts.max_clients) {
      g_warning ("helix export: refusing a client: %u already connected",
          ex->opts.max_clients);
      hxfr_conn_unref (conn);
      continue;
    }
    c = g_new0 (Client, 1);
    c->ex = ex;
    c->conn = conn;
    c->fd = g_socket_get_fd (hxfr_conn_get_socket (conn));
    c->peer = hxfr_conn_describe_peer (conn);
    c->ring_fd = -1;
    hxex_stream_init (&c->stream, hxfr_conn_get_socket (conn),
        "the client closed the helix export connection");
    c->handles = g_hash_table_new_full (NULL, NULL, NULL, g_free);
    if (!poller_add (ex, c->fd)) {
      g_warning ("helix export: cannot watch a client: %s", g_strerror (errno));
      g_hash_table_unref (c->handles);
      hxex_stream_clear (&c->stream);
      g_free (c->peer);
      g_free (c);
      hxfr_conn_unref (conn);
      continue;
    }
    ex->stats.clients++;
    g_hash_table_insert (ex->clients, GINT_TO_POINTER (c->fd), c);
    g_debug ("helix export: %s connected", c->peer);
  }
}

static gboolean
client_is_dead (gpointer key, gpointer value, gpointer user_data)
{
  return ((Client *) value)->dead;
}

/* Frees the clients marked dead; only where none is held up the stack. */
static void
reap_dead (HelixExport * ex)
{
  g_hash_table_foreach_remove (ex->clients, client_is_dead, NULL);
}

void
helix_export_dispatch (HelixExport * ex)
{
  gint ready[MAX_EVENTS];
  gint n, i;

  ex->in_dispatch = TRUE;
  n = poller_ready (ex, ready, MAX_EVENTS);
  for (i = 0; i < n; i++) {
    Client *c;

    if (ready[i] == ex->listen_fd) {
      accept_clients (ex);
      continue;
    }
    c = g_hash_table_lookup (ex->clients, GINT_TO_POINTER (ready[i]));
    if (c && (c->dead || !pay_owed_moves (c) || !client_readable (c)))
      client_close (c);
  }
  ex->in_dispatch = FALSE;
  reap_dead (ex);
}

/* One event to watcher @c; one that cannot take it at once is marked
 * dead (never waited for). FALSE: it died. */
static gboolean
watcher_send (Client * c, guint8 type, const guint8 * payload, gsize len,
    gint fd)
{
  /* the moves it is owed first: events stay in order */
  if (pay_owed_moves (c) && client_send (c, type, 0, payload, len, fd)) {
    if (type == HXEX_MSG_FLUSH || type == HXEX_MSG_FLUSH_SNAPSHOT)
      c->ex->stats.flushes_sent++;
    return TRUE;
  }
  drop_watcher (c);
  return FALSE;
}

/* Sends one event to every live watcher (watcher_send); the dead are
 * freed here unless a dispatch up the stack may hold one. */
static void
broadcast (HelixExport * ex, guint16 min_version, guint8 type,
    const guint8 * payload, gsize len, gint fd)
{
  GHashTableIter it;
  gpointer value;
  gboolean any_dead = FALSE;

  g_hash_table_iter_init (&it, ex->clients);
  while (g_hash_table_iter_next (&it, NULL, &value)) {
    Client *c = value;

    if (!c->watching || c->dead || c->version < min_version)
      continue;
    any_dead |= !watcher_send (c, type, payload, len, fd);
  }
  if (any_dead && !ex->in_dispatch)
    reap_dead (ex);
}

void
helix_export_scanout_update (HelixExport * ex, guint32 index,
    gboolean enabled, guint32 resource_id, guint32 width, guint32 height,
    guint32 fourcc)
{
  Scanout now = { !!enabled, resource_id, width, height, fourcc };
  guint8 payload[HXEX_SCANOUT_SIZE];
  HxexScanout m;

  if (index >= ex->opts.n_scanouts
      || memcmp (&now, &ex->scanouts[index], sizeof (now)) == 0)
    return;
  ex->scanouts[index] = now;
  ex->stats.scanout_updates++;
  m = (HxexScanout) {
  index, now.enabled ? HXEX_SCANOUT_ENABLED : 0, resource_id, width,
        height, fourcc, ex->opts.n_scanouts};
  hxex_scanout_write (&m, payload);
  broadcast (ex, HXEX_VERSION_SCANOUTS, HXEX_MSG_SCANOUT, payload,
      sizeof (payload), -1);
}

/* Version 4: @c's copy of the flushed resource, made now into a free slot
 * of its ring, as FLUSH_SNAPSHOT; @info from one look-up per flush
 * (@looked_up FALSE: the resource cannot be exported). FALSE: no copy
 * (counted), the caller sends a plain FLUSH. The slot is held until the
 * watcher releases the handle, as a SURFACE's. */
static gboolean
snapshot_for (Client * c, const HxexFlush * f, gboolean looked_up,
    const struct virgl_renderer_resource_info *info, guint8 * payload)
{
  HelixExport *ex = c->ex;
  g_autoptr (GError) err = NULL;
  HxexFlushSnapshot m;
  guint64 stride, size;
  gint slot = looked_up ? copy_to_free_slot (c, f->resource_id, info,
      &stride, &size, &err) : -1;

  if (slot < 0) {
    if (err)
      g_debug ("helix export: no snapshot of resource %u: %s",
          f->resource_id, err->message);
    ex->stats.snapshot_misses++;
    return FALSE;
  }
  memset (&m, 0, sizeof (m));
  m.flush = *f;
  m.handle = new_handle (ex);
  m.slot = slot;
  m.width = info->width;
  m.height = info->height;
  m.stride = (guint32) stride;
  m.fourcc = fourcc_for_virgl_format (info->virgl_format);
  m.size = size;
  hold (c, m.handle, HXEX_KIND_READBACK_SLOT, slot);
  ex->stats.snapshots++;
  hxex_flush_snapshot_write (&m, payload);
  return TRUE;
}

void
helix_export_scanout_flush (HelixExport * ex, guint32 index,
    guint32 resource_id, guint32 x, guint32 y, guint32 width, guint32 height)
{
  guint8 payload[HXEX_FLUSH_SIZE];
  guint8 snapshot[HXEX_FLUSH_SNAPSHOT_SIZE];
  HxexFlush m = { index, resource_id, x, y, width, height,
    (guint64) g_get_monotonic_time () * 1000
  };
  struct virgl_renderer_resource_info info;
  gint looked_up = -1;          /* -1: not yet, once per flush */
  gboolean any_dead = FALSE;
  GHashTableIter it;
  gpointer value;

  if (index >= ex->opts.n_scanouts)
    return;
  ex->stats.flushes++;
  hxex_flush_write (&m, payload);
  g_hash_table_iter_init (&it, ex->clients);
  while (g_hash_table_iter_next (&it, NULL, &value)) {
    Client *c = value;

    if (!c->watching || c->dead || c->version < HXEX_VERSION_SCANOUTS)
      continue;
    if (c->ring && (c->snapshot_mask & (1u << index))) {
      if (looked_up < 0) {
        g_autoptr (GError) err = NULL;
        HxexSurface desc;

        looked_up = look_up_resource (ex, resource_id, &info, &desc, &err);
        if (!looked_up)
          g_debug ("helix export: no snapshot of scanout %u: %s", index,
              err->message);
      }
      if (snapshot_for (c, &m, looked_up, &info, snapshot)) {
        any_dead |= !watcher_send (c, HXEX_MSG_FLUSH_SNAPSHOT, snapshot,
            sizeof (snapshot), -1);
        continue;
      }
    }
    any_dead |= !watcher_send (c, HXEX_MSG_FLUSH, payload, sizeof (payload),
        -1);
  }
  if (any_dead && !ex->in_dispatch)
    reap_dead (ex);
}

/* The pixels in a sealed memfd: every watcher gets the same descriptor,
 * and the seals promise them a size and contents that cannot change. */
static gint
cursor_image_fd (const guint32 * argb, gsize size, GError ** error)
{
  gint fd = create_shared_fd ("helix-export-cursor", size, TRUE, error);

  if (fd < 0)
    return -1;
  if (pwrite (fd, argb, size, 0) != (gssize) size) {
    g_set_error (error, G_IO_ERROR, g_io_error_from_errno (errno),
        "writing the cursor image: %s", g_strerror (errno));
    close (fd);
    return -1;
  }
#ifdef __linux__
  if (fcntl (fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE
          | F_SEAL_SEAL) != 0) {
    g_set_error (error, G_IO_ERROR, g_io_error_from_errno (errno),
        "sealing the cursor image: %s", g_strerror (errno));
    close (fd);
    return -1;
  }
#endif
  return fd;
}

gboolean
helix_export_cursor_shape (HelixExport * ex, guint32 index, guint32 width,
    guint32 height, guint32 hot_x, guint32 hot_y, const guint32 * argb,
    GError ** error)
{
  HxexCursorShape m = { index, width, height, hot_x, hot_y,
    HXEX_CURSOR_FOURCC, (guint64) width * height * 4
  };
  guint8 payload[HXEX_CURSOR_SHAPE_SIZE];
  Cursor *cu;
  gint fd;

  /* what the client's parser accepts, checked before anything goes out */
  hxex_cursor_shape_write (&m, payload);
  if (index >= ex->opts.n_scanouts
      || !hxex_cursor_shape_parse (payload, sizeof (payload), &m, error)) {
    if (error && !*error)
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT,
          "cursor of scanout %u (%u scanouts)", index, ex->opts.n_scanouts);
    return FALSE;
  }
  fd = cursor_image_fd (argb, m.size, error);
  if (fd < 0)
    return FALSE;
  cu = &ex->cursors[index];
  if (cu->has_shape)
    close (cu->shape_fd);
  cu->has_shape = TRUE;
  cu->shape_fd = fd;
  cu->shape = m;
  ex->stats.cursor_shapes++;
  broadcast (ex, HXEX_VERSION_CURSOR, HXEX_MSG_CURSOR_SHAPE, payload,
      sizeof (payload), fd);
  return TRUE;
}

void
helix_export_cursor_move (HelixExport * ex, guint32 index, gboolean visible,
    gint32 x, gint32 y)
{
  HxexCursorMove m = { index, visible ? HXEX_CURSOR_VISIBLE : 0, x, y,
    (guint64) g_get_monotonic_time () * 1000
  };
  GHashTableIter it;
  gpointer value;
  gboolean any_dead = FALSE;
  Cursor *cu;

  if (index >= ex->opts.n_scanouts)
    return;
  cu = &ex->cursors[index];
  /* a guest repeating itself is not news */
  if (cu->has_position && cu->move.flags == m.flags && cu->move.x == x
      && cu->move.y == y)
    return;
  cu->has_position = TRUE;
  cu->move = m;
  ex->stats.cursor_moves++;
  g_hash_table_iter_init (&it, ex->clients);
  while (g_hash_table_iter_next (&it, NULL, &value)) {
    Client *c = value;

    if (!c->watching || c->dead || c->version < HXEX_VERSION_CURSOR)
      continue;
    /* owed already: this newer position replaces the one owed */
    if (c->moves_owed & (1u << index)) {
      ex->stats.cursor_moves_coalesced++;
      continue;
    }
    if (!pay_owed_moves (c)) {
      drop_watcher (c);
      any_dead = TRUE;
      continue;
    }
    switch (c->moves_owed ? MOVE_OWED : send_move (c, index)) {
      case MOVE_SENT:
        break;
      case MOVE_OWED:
        c->moves_owed |= 1u << index;
        poller_want_writable (ex, c->fd, TRUE);
        break;
      case MOVE_FAILED:
        drop_watcher (c);
        any_dead = TRUE;
        break;
    }
  }
  if (any_dead && !ex->in_dispatch)
    reap_dead (ex);
}

HelixExport *
helix_export_new (const gchar * socket_path,
    const HelixExportOptions * options, GError ** error)
{
  g_autoptr (HxfrAddress) addr = hxfr_address_new_unix (socket_path);
  HelixExport *ex;

  ex = g_new0 (HelixExport, 1);
  if (options)
    ex->opts = *options;
  else
    helix_export_options_init (&ex->opts);
  ex->opts.slot_size = (ex->opts.slot_size + 4095) & ~G_GUINT64_CONSTANT (4095);
  ex->next_handle = 1;
  ex->poll_fd = -1;
  ex->clients = g_hash_table_new_full (NULL, NULL, NULL,
      (GDestroyNotify) client_free);

  if (ex->opts.n_slots > 1024 || ex->opts.slot_size > (G_GUINT64_CONSTANT (1)
          << 31)) {
    g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT,
        "helix export: %u slots of %" G_GUINT64_FORMAT " bytes is too much "
        "(at most 1024 slots of 2 GiB)", ex->opts.n_slots, ex->opts.slot_size);
    goto fail;
  }
  if (ex->opts.n_scanouts > HXEX_MAX_SCANOUTS) {
    g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT,
        "helix export: %u scanouts (at most %u)", ex->opts.n_scanouts,
        HXEX_MAX_SCANOUTS);
    goto fail;
  }
#ifdef __linux__
  ex->poll_fd = epoll_create1 (EPOLL_CLOEXEC);
#else
  ex->poll_fd = kqueue ();
#endif
  if (ex->poll_fd < 0) {
    int e = errno;

    g_set_error (error, G_IO_ERROR, g_io_error_from_errno (e),
        "helix export: cannot create a poll descriptor: %s", g_strerror (e));
    goto fail;
  }

  ex->listener = hxfr_listener_new (addr, ex->opts.unix_mode, error);
  if (!ex->listener) {
    g_prefix_error (error, "helix export: ");
    goto fail;
  }
  ex->listen_fd = g_socket_get_fd (hxfr_listener_get_socket (ex->listener));
  if (!poller_add (ex, ex->listen_fd)) {
    int e = errno;

    g_set_error (error, G_IO_ERROR, g_io_error_from_errno (e),
        "helix export: cannot watch the socket: %s", g_strerror (e));
    goto fail;
  }
  return ex;

fail:
  helix_export_free (ex);
  return NULL;
}

gint
helix_export_get_fd (HelixExport * ex)
{
  return ex->poll_fd;
}

void
helix_export_get_stats (HelixExport * ex, HelixExportStats * stats)
{
  *stats = ex->stats;
}

void
helix_export_free (HelixExport * ex)
{
  if (!ex)
    return;
  for (guint i = 0; i < HXEX_MAX_SCANOUTS; i++)
    if (ex->cursors[i].has_shape)
      close (ex->cursors[i].shape_fd);
  g_hash_table_unref (ex->clients);
  hxfr_listener_free (ex->listener);
  if (ex->poll_fd >= 0)
    close (ex->poll_fd);
  g_free (ex);
}
