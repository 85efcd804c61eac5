/* libFuzzer targets for the helix export protocol (docs/export-protocol.md),
 * both ends, over real UNIX sockets so partial reads and descriptor
 * passing are exercised.
 *
 * FUZZ_EXPORT_VMM: the VMM module (vmm/export/helix-export.c)
 *   parses what a client sends. The input is cut into chunks (sizes from
 *   the input) written to a client connection while the module
 *   dispatches; some chunks carry a descriptor. virglrenderer is replaced
 *   by the stubs below: a resource's size, format and whether its DMA-BUF
 *   export works come from its id. After each input the module must be
 *   back to no clients, no slots and no handles held, and every
 *   descriptor the input passed must be closed. The module reports 3
 *   scanouts (version 2: WATCH, SCANOUT_CONTROL); its hotplug callback
 *   accepts odd indexes and reports the change at once, from inside the
 *   dispatch, as the stand-in VMM does.
 * FUZZ_EXPORT_CLIENT: the bridge's client (lib/hxfr-export) parses what
 *   a VMM answers: HELLO_ACK (with a ring descriptor or not), SURFACE,
 *   ERROR. A fake VMM thread sends the input; the client connects and
 *   resolves a few resources, and reads every byte of each surface it is
 *   handed (a plane outside the mapped ring faults). When bit 7 of byte 1
 *   is set it plays the scanout watch instead (hxfr-export-watch.h): the
 *   input is then the VMM's HELLO_ACK, initial SCANOUTs and events (also
 *   version 3's cursor messages: the memfds here are not sealed, so a
 *   shape is refused); the watch asks for one hotplug and is freed.
 *
 * Input layout (both): byte 0 seeds the chunk sizes, byte 1 says which
 * chunks carry a descriptor (bit i: chunk i, i < 8), the rest is the byte
 * stream.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <poll.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <gio/gio.h>
#include "hxfr-export-protocol.h"

#define MEMFD_SIZE (64 * 1024)

int LLVMFuzzerTestOneInput (const guint8 * data, size_t size);

/* Messages the replay driver reports: here, modules that closed cleanly
 * (VMM), connections made and surfaces resolved (client). */
guint fuzz_messages_parsed;

static gint
new_memfd (gsize size)
{
  gint fd = memfd_create ("fuzz-export", MFD_CLOEXEC);

  g_assert (fd >= 0);
  g_assert (ftruncate (fd, size) == 0);
  return fd;
}

static gsize
next_chunk (guint8 * seed, gsize left)
{
  gsize n = MIN (left, (gsize) (*seed % 53) + 1);

  *seed = (guint8) (*seed * 31 + 7);
  return n;
}

static guint
count_fds (void)
{
  DIR *d = opendir ("/proc/self/fd");
  guint n = 0;

  g_assert (d);
  while (readdir (d))
    n++;
  closedir (d);
  return n;
}

#if defined(FUZZ_EXPORT_VMM)

#include <virgl/virglrenderer.h>
#include "helix-export.h"

/* ---- virglrenderer stand-ins: everything about a resource comes from
 * its id. bits 0-1: 0 = no such resource; bits 2-3: format; bits 4-10:
 * width; bits 11-17: height (0..127, the module's limit is 96); bit 18:
 * depth 2; bit 19: DMA-BUF export works; bit 20: readback fails. */

struct virgl_box
{
  uint32_t x, y, z;
  uint32_t w, h, d;
};

static const guint32 stub_formats[4] = { 1, 2, 67, 5 };

int
virgl_renderer_resource_get_info (int res_handle,
    struct virgl_renderer_resource_info *info)
{
  guint32 id = (guint32) res_handle;

  if ((id & 3) == 0)
    return -1;
  memset (info, 0, sizeof (*info));
  info->handle = id;
  info->virgl_format = stub_formats[(id >> 2) & 3];
  info->width = (id >> 4) & 127;
  info->height = (id >> 11) & 127;
  info->depth = (id & (1u << 18)) ? 2 : 1;
  info->tex_id = id;
  info->stride = info->width * 4;
  return 0;
}

int
virgl_renderer_execute (void *execute_args, uint32_t execute_size)
{
  struct virgl_renderer_export_query *q = execute_args;

  g_assert (execute_size == sizeof (*q));
  if (!(q->in_resource_id & (1u << 19)))
    return -EINVAL;
  q->out_num_fds = 1;
  q->out_fds[0] = new_memfd (MEMFD_SIZE);
  q->out_fourcc = 0x34325241;   /* AR24 */
  q->out_strides[0] = ((q->in_resource_id >> 4) & 127) * 4;
  q->out_offsets[0] = 0;
  q->out_modifier = 0;
  return 0;
}

int
virgl_renderer_get_fd_for_texture2 (uint32_t tex_id, int *fd, int *stride,
    int *offset)
{
  return -1;
}

void
virgl_renderer_force_ctx_0 (void)
{
}

int
virgl_renderer_transfer_read_iov (uint32_t handle, uint32_t ctx_id,
    uint32_t level, uint32_t stride, uint32_t layer_stride,
    struct virgl_box *box, uint64_t offset, struct iovec *iov, int iovec_cnt)
{
  g_assert (iovec_cnt == 1);
  g_assert ((guint64) stride * box->h <= iov[0].iov_len);
  if (handle & (1u << 20))
    return EIO;
  /* touches every byte the module said was there: a bad slot offset
   * faults */
  memset (iov[0].iov_base, 0x5a, iov[0].iov_len);
  return 0;
}

static HelixExport *export;
static gchar *export_dir;

/* Hotplug: odd scanouts accept and show a resource whose id says its
 * size, reported (and flushed) from inside the callback. */
static gboolean
stub_set_scanout_enabled (gpointer user_data, guint32 index, gboolean enable,
    guint32 width, guint32 height, guint32 refresh_hz)
{
  guint32 id = 1 | (MIN (width, 127) << 4) | (MIN (height, 127) << 11);

  g_assert (index > 0 && index < 3);
  if (!(index & 1))
    return FALSE;
  helix_export_scanout_update (export, index, enable, enable ? id : 0,
      width, height, 0x34325241);
  if (enable)
    helix_export_scanout_flush (export, index, id, 0, 0, width, height);
  return TRUE;
}

/* A fresh module per input: its DMA-BUF state (given up after the first
 * failure) must not depend on earlier inputs. */
static void
vmm_start (void)
{
  HelixExportOptions o;
  g_autoptr (GError) err = NULL;
  gchar *path;

  helix_export_options_init (&o);
  o.n_slots = 2;
  o.slot_size = 64 * 96 * 4;
  o.max_width = 96;
  o.max_height = 96;
  o.max_clients = 2;
  o.allow_dmabuf = TRUE;
  o.n_scanouts = 3;
  o.set_scanout_enabled = stub_set_scanout_enabled;
  if (!export_dir)
    export_dir = g_dir_make_tmp ("fuzz-export-XXXXXX", NULL);
  g_assert (export_dir);
  path = g_build_filename (export_dir, "export.sock", NULL);
  export = helix_export_new (path, &o, &err);
  g_assert_no_error (err);
  g_free (path);
  helix_export_scanout_update (export, 0, TRUE, 1 | 16 << 4 | 16 << 11, 16,
      16, 0x34325241);
}

static void
dispatch_once (gint timeout_ms)
{
  struct pollfd p = { helix_export_get_fd (export), POLLIN, 0 };

  poll (&p, 1, timeout_ms);
  helix_export_dispatch (export);
}

int
LLVMFuzzerTestOneInput (const guint8 * data, size_t size)
{
  g_autoptr (GSocketAddress) addr = NULL;
  g_autofree gchar *path = NULL;
  GSocket *sock;
  HelixExportStats st;
  guint8 seed, fd_mask, drain[4096];
  gsize pos = 0;
  guint fds_before, i = 0, rounds;
  gboolean closed = FALSE;

  if (size < 2 || size > 64 * 1024)
    return 0;
  seed = data[0];
  fd_mask = data[1];
  data += 2;
  size -= 2;
  fds_before = count_fds ();
  vmm_start ();

  path = g_build_filename (export_dir, "export.sock", NULL);
  addr = g_unix_socket_address_new (path);
  sock = g_socket_new (G_SOCKET_FAMILY_UNIX, G_SOCKET_TYPE_STREAM, 0, NULL);
  g_assert (sock);
  g_assert (g_socket_connect (sock, addr, NULL, NULL));
  g_socket_set_blocking (sock, FALSE);
  if (size == 0)
    g_socket_shutdown (sock, FALSE, TRUE, NULL);
  dispatch_once (100);

  /* write a chunk, let the module dispatch, throw its answers away:
   * until everything is written or the module closed us */
  for (rounds = 0; rounds < 20000 && !closed; rounds++) {
    gssize n;

    if (pos < size) {
      gsize len = next_chunk (&seed, size - pos);
      gint fd = (i < 8 && (fd_mask & (1u << i))) ? new_memfd (MEMFD_SIZE) : -1;

      n = hxex_socket_send (sock, data + pos, len, fd >= 0 ? &fd : NULL,
          fd >= 0 ? 1 : 0, NULL);
      if (fd >= 0)
        close (fd);
      if (n > 0) {
        pos += n;
        i++;
      }
      if (pos == size)
        g_socket_shutdown (sock, FALSE, TRUE, NULL);
    }
    dispatch_once (pos < size ? 0 : 10);
    for (;;) {
      n = g_socket_receive (sock, (gchar *) drain, sizeof (drain), NULL, NULL);
      if (n == 0)
        closed = TRUE;
      if (n <= 0)
        break;
    }
  }
  /* the module closes a client at EOF: it must have by now */
  g_assert (closed);
  g_object_unref (sock);
  fuzz_messages_parsed++;

  helix_export_get_stats (export, &st);
  g_assert_cmpuint (st.clients, ==, 0);
  g_assert_cmpuint (st.slots_in_use, ==, 0);
  g_assert_cmpuint (st.handles_held, ==, 0);
  g_assert_cmpuint (st.watchers, ==, 0);
  helix_export_free (export);
  export = NULL;
  /* every descriptor passed in, every ring and DMA-BUF is closed */
  g_assert_cmpuint (count_fds (), ==, fds_before);
  return 0;
}

#elif defined(FUZZ_EXPORT_CLIENT)

#include "hxfr-export-client.h"
#include "hxfr-transport.h"
#include "hxfr-export-watch.h"

typedef struct
{
  GSocket *listener;
  const guint8 *data;
  gsize size;
  guint8 seed, fd_mask;
} FakeVmm;

static GSocket *vmm_listener;
static gchar *vmm_path;

/* One connection before any input: GLib makes two eventfds (its default
 * and worker contexts) on the first GSocketClient connect and keeps them
 * for the process. Made here, they are part of every input's baseline, so
 * the per-input check still catches each descriptor an input leaks. */
static void
warm_up (void)
{
  g_autoptr (HxfrAddress) addr = hxfr_address_new_unix (vmm_path);
  HxfrConn *conn = hxfr_conn_connect (addr, 2 * G_USEC_PER_SEC, NULL, NULL);
  GSocket *accepted = g_socket_accept (vmm_listener, NULL, NULL);

  g_assert (conn && accepted);
  hxfr_conn_unref (conn);
  g_socket_close (accepted, NULL);
  g_object_unref (accepted);
}

static void
client_init (void)
{
  g_autoptr (GSocketAddress) addr = NULL;
  gchar *dir = g_dir_make_tmp ("fuzz-export-XXXXXX", NULL);

  g_assert (dir);
  vmm_path = g_build_filename (dir, "export.sock", NULL);
  addr = g_unix_socket_address_new (vmm_path);
  vmm_listener = g_socket_new (G_SOCKET_FAMILY_UNIX, G_SOCKET_TYPE_STREAM, 0,
      NULL);
  g_assert (vmm_listener);
  g_assert (g_socket_bind (vmm_listener, addr, TRUE, NULL));
  g_assert (g_socket_listen (vmm_listener, NULL));
  g_free (dir);
  warm_up ();
}

/* Sends @data in chunks, chunk i carrying a fresh memfd when bit i of
 * @fd_mask is set. Blocking socket with a timeout; stops on error. */
static void
send_chunks (GSocket * sock, const guint8 * data, gsize size, guint8 seed,
    guint8 fd_mask)
{
  gsize pos = 0;
  guint i = 0;

  while (pos < size) {
    gsize n = next_chunk (&seed, size - pos);
    gint fd = (i < 8 && (fd_mask & (1u << i))) ? new_memfd (MEMFD_SIZE) : -1;
    gssize sent = hxex_socket_send (sock, data + pos, n, fd >= 0 ? &fd : NULL,
        fd >= 0 ? 1 : 0, NULL);

    if (fd >= 0)
      close (fd);
    if (sent <= 0)
      return;
    pos += sent;
    i++;
  }
}

static gpointer
fake_vmm (gpointer user_data)
{
  FakeVmm *v = user_data;
  GSocket *s;
  gchar buf[4096];

  g_socket_set_timeout (v->listener, 5);
  s = g_socket_accept (v->listener, NULL, NULL);
  if (!s)
    return NULL;
  g_socket_set_timeout (s, 5);
  send_chunks (s, v->data, v->size, v->seed, v->fd_mask);
  g_socket_shutdown (s, FALSE, TRUE, NULL);
  /* take whatever the client sends until it hangs up */
  while (g_socket_receive (s, buf, sizeof (buf), NULL, NULL) > 0);
  g_object_unref (s);
  return NULL;
}

/* Reads every byte of every plane the surface describes. */
static guint
touch_surface (const HxexClientSurface * s)
{
  guint sum = 0, i;
  guint64 b;

  if (s->kind != HXEX_KIND_READBACK_SLOT)
    return 0;
  g_assert (s->data);
  for (i = 0; i < s->n_planes; i++) {
    guint64 rows = i == 0 ? s->height : (s->height + 1) / 2;
    guint64 end = (guint64) s->offset[i] + (guint64) s->stride[i] * rows;

    g_assert (end <= s->size);
    for (b = s->offset[i]; b < end; b += 61)
      sum += s->data[b];
  }
  return sum;
}

static void
watch_state (gpointer user_data, const HxfrScanoutState * st)
{
  guint *n = user_data;

  g_assert (st->index < HXEX_MAX_SCANOUTS);
  (*n)++;
}

static void
watch_flush (gpointer user_data, const HxfrScanoutFlush * f)
{
  guint *n = user_data;

  g_assert (f->index < HXEX_MAX_SCANOUTS);
  (*n)++;
}

/* version 3: an image the watch took is within its bounds, and readable
 * to its last byte */
static void
watch_cursor_shape (gpointer user_data, const HxfrCursorShape * shape)
{
  gsize size;
  const volatile guint8 *px = g_bytes_get_data (shape->pixels, &size);
  guint *n = user_data;

  g_assert (shape->desc.width <= HXEX_CURSOR_MAX_SIZE);
  g_assert (shape->desc.height <= HXEX_CURSOR_MAX_SIZE);
  g_assert_cmpuint (size, ==, shape->desc.size);
  (void) px[0];
  (void) px[size - 1];
  (*n)++;
}

static void
watch_cursor_move (gpointer user_data, const HxexCursorMove * move)
{
  guint *n = user_data;

  g_assert (move->index < HXEX_MAX_SCANOUTS);
  (*n)++;
}

static void
watch_closed (gpointer user_data, const GError * why)
{
  g_assert (why != NULL);
}

/* The watch against the input: every event checked, one hotplug asked. */
static void
play_watch (void)
{
  static const HxexWatchCallbacks cb = {
    watch_state, watch_flush, watch_closed, watch_cursor_shape,
    watch_cursor_move
  };
  guint events = 0;
  HxexWatch *w = hxex_watch_new (vmm_path, &cb, &events,
      2 * G_USEC_PER_SEC, NULL);

  if (!w)
    return;
  fuzz_messages_parsed++;
  g_assert (hxex_watch_get_n_scanouts (w) >= 1);
  g_assert (hxex_watch_get_n_scanouts (w) <= HXEX_MAX_SCANOUTS);
  hxex_watch_set_enabled (w, 1, TRUE, 64, 64, 60, G_USEC_PER_SEC, NULL);
  hxex_watch_free (w);
}

int
LLVMFuzzerTestOneInput (const guint8 * data, size_t size)
{
  FakeVmm v;
  GThread *thread;
  HxexClient *c;
  guint fds_before, i;

  if (size < 3 || size > 64 * 1024)
    return 0;
  if (!vmm_listener)
    client_init ();
  fds_before = count_fds ();

  v.listener = vmm_listener;
  v.seed = data[0];
  v.fd_mask = data[1];
  v.data = data + 2;
  v.size = size - 2;
  thread = g_thread_new ("fake-vmm", fake_vmm, &v);

  c = NULL;
  if (v.fd_mask & 0x80)
    play_watch ();
  else
    c = hxex_client_connect (vmm_path, 0, 2 * G_USEC_PER_SEC, NULL);
  if (c) {
    fuzz_messages_parsed++;
    /* the VMM hangs up after its bytes, so no resolve waits long */
    for (i = 0; i < 4 && hxex_client_is_connected (c); i++) {
      HxexClientSurface *s = hxex_client_resolve (c, i + 1,
          2 * G_USEC_PER_SEC, NULL);

      if (s) {
        fuzz_messages_parsed++;
        touch_surface (s);
        if (i & 1)
          hxex_client_surface_release (s, NULL);
        hxex_client_surface_free (s);
      }
    }
    hxex_client_unref (c);
  }
  g_thread_join (thread);
  /* the ring, DMA-BUFs and stray descriptors are all closed */
  g_assert_cmpuint (count_fds (), ==, fds_before);
  return 0;
}

#else
#error "define FUZZ_EXPORT_VMM or FUZZ_EXPORT_CLIENT"
#endif
