/* helix-vhost-user-vsock: a vhost-user-vsock backend for QEMU's
 * vhost-user-vsock-pci device, for hosts without the vhost_vsock module.
 * The guest gets a real virtio-vsock device; each of its stream
 * connections to CID 2 port P is relayed to the UNIX socket "<uds>_P"
 * (the hybrid-vsock convention of Firecracker and cloud-hypervisor), where
 * helix-host-bridge listens with --listen unix:<uds>_P. It never opens an
 * AF_VSOCK socket itself.
 *
 *   helix-vhost-user-vsock --socket /run/hx-vu.sock --uds-path /run/hx-vsock --guest-cid 3
 *   qemu-system-x86_64 ... -object memory-backend-memfd,id=mem,size=2G,share=on \
 *     -machine memory-backend=mem -chardev socket,id=vu,path=/run/hx-vu.sock \
 *     -device vhost-user-vsock-pci,chardev=vu
 *
 * Licence: this program is linked with QEMU's libvhost-user (GPL-2.0 or
 * later), so it is GPL-2.0-or-later as a whole. It is a separate program:
 * nothing of it is linked into the project's LGPL libraries and plugins.
 *
 * Copyright 2026 the helix encode offload authors
 * SPDX-License-Identifier: GPL-2.0-or-later
 */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>
#include <glib-unix.h>

#include "libvhost-user-glib.h"
#include "vsock-core.h"

#define RX_QUEUE 0
#define TX_QUEUE 1
/* the longest one message of the front end may take to come whole */
#define FRONT_END_TIMEOUT_S 5
/* guest packets handled in one go (a virtqueue holds at most 32768) */
#define TX_BATCH 256

typedef struct
{
  VugDev dev;
  gboolean dev_up;
  gint listen_fd;
  GSource *accept_src;
  GMainLoop *loop;
  HvvCore *core;
  guint64 guest_cid;
  gboolean once;
  gboolean pump_scheduled;
  gboolean tx_scheduled;
  guint8 buf[HVV_HDR_SIZE + HVV_MAX_PAYLOAD];
  /* the backend's own memory (RssAnon: the guest's shared memory it maps
   * is RssShmem), at the device's start and the most seen since */
  glong anon_start_kb;
  glong anon_max_kb;
} Backend;

static Backend be;

static glong
status_kb (const gchar * key)
{
  gchar *s = NULL, *p;
  glong v = -1;

  if (!g_file_get_contents ("/proc/self/status", &s, NULL, NULL))
    return -1;
  p = strstr (s, key);
  if (p)
    v = strtol (p + strlen (key), NULL, 10);
  g_free (s);
  return v;
}

static gsize
iov_total (const struct iovec *iov, guint n)
{
  gsize t = 0;
  guint i;

  for (i = 0; i < n; i++)
    t += iov[i].iov_len;
  return t;
}

/* Packets for the guest into its RX buffers, while it has some. */
static void
pump_rx (void)
{
  VuDev *dev = &be.dev.parent;
  VuVirtq *vq = vu_get_queue (dev, RX_QUEUE);
  gboolean pushed = FALSE;

  if (!be.dev_up || !vu_queue_started (dev, vq) || !vu_queue_enabled (dev, vq))
    return;
  for (;;) {
    VuVirtqElement *e = vu_queue_pop (dev, vq, sizeof (VuVirtqElement));
    gsize cap, len, off;
    guint i;

    if (!e)
      break;
    cap = MIN (iov_total (e->in_sg, e->in_num), sizeof (be.buf));
    if (cap < HVV_HDR_SIZE) {
      g_message ("bad guest RX buffer: %" G_GSIZE_FORMAT " bytes, returned "
          "unused", cap);
      vu_queue_push (dev, vq, e, 0);
      pushed = TRUE;
      free (e);
      continue;
    }
    len = hvv_core_next_rx (be.core, be.buf, cap);
    if (len == 0) {
      vu_queue_unpop (dev, vq, e, 0);
      free (e);
      break;
    }
    for (i = 0, off = 0; i < e->in_num && off < len; i++) {
      gsize n = MIN (e->in_sg[i].iov_len, len - off);
      memcpy (e->in_sg[i].iov_base, be.buf + off, n);
      off += n;
    }
    vu_queue_push (dev, vq, e, len);
    pushed = TRUE;
    free (e);
  }
  if (pushed)
    vu_queue_notify (dev, vq);
}

static gboolean
pump_idle (gpointer data)
{
  be.pump_scheduled = FALSE;
  pump_rx ();
  return G_SOURCE_REMOVE;
}

/* from the core: something for the guest (called from inside the core,
 * so the pump runs later, from the main loop) */
static void
on_wake (gpointer data)
{
  if (be.pump_scheduled)
    return;
  be.pump_scheduled = TRUE;
  /* at the sockets' priority: a default idle would wait for them all */
  g_idle_add_full (G_PRIORITY_DEFAULT, pump_idle, NULL, NULL);
}

static void
on_rx_kick (VuDev * dev, int qidx)
{
  pump_rx ();
}

/* The guest's packets: each element's readable buffers, copied flat
 * (bounded), then checked and handled by the core. At most TX_BATCH
 * elements at a time: a guest that refills its queue as fast as it is
 * emptied would otherwise keep the main loop here, and its sockets and the
 * RX queue unserved; the rest waits for the next turn of the loop. */
static gboolean drain_tx_idle (gpointer data);

static void
drain_tx (void)
{
  VuDev *dev = &be.dev.parent;
  VuVirtq *vq = vu_get_queue (dev, TX_QUEUE);
  gboolean pushed = FALSE;
  guint handled;

  for (handled = 0; handled < TX_BATCH; handled++) {
    VuVirtqElement *e = vu_queue_pop (dev, vq, sizeof (VuVirtqElement));
    gsize total, len = 0;
    guint i;

    if (!e)
      break;
    total = iov_total (e->out_sg, e->out_num);
    for (i = 0; i < e->out_num && len < sizeof (be.buf); i++) {
      gsize n = MIN (e->out_sg[i].iov_len, sizeof (be.buf) - len);
      memcpy (be.buf + len, e->out_sg[i].iov_base, n);
      len += n;
    }
    hvv_core_tx (be.core, be.buf, len, total);
    vu_queue_push (dev, vq, e, 0);
    pushed = TRUE;
    free (e);
  }
  if (pushed)
    vu_queue_notify (dev, vq);
  if (handled == TX_BATCH && !be.tx_scheduled) {
    be.tx_scheduled = TRUE;
    g_idle_add_full (G_PRIORITY_DEFAULT, drain_tx_idle, NULL, NULL);
  }
  pump_rx ();
}

static gboolean
drain_tx_idle (gpointer data)
{
  be.tx_scheduled = FALSE;
  if (be.dev_up && vu_queue_started (&be.dev.parent,
          vu_get_queue (&be.dev.parent, TX_QUEUE)))
    drain_tx ();
  return G_SOURCE_REMOVE;
}

static void
on_tx_kick (VuDev * dev, int qidx)
{
  drain_tx ();
}

static void
queue_set_started (VuDev * dev, int qidx, bool started)
{
  VuVirtq *vq = vu_get_queue (dev, qidx);

  g_message ("queue %d %s", qidx, started ? "started" : "stopped");
  if (qidx == RX_QUEUE)
    vu_set_queue_handler (dev, vq, started ? on_rx_kick : NULL);
  else if (qidx == TX_QUEUE)
    vu_set_queue_handler (dev, vq, started ? on_tx_kick : NULL);
  if (!started)
    hvv_core_reset (be.core);
  else if (be.anon_start_kb < 0)
    be.anon_start_kb = be.anon_max_kb = status_kb ("RssAnon:");
}

static int
get_config (VuDev * dev, uint8_t * config, uint32_t len)
{
  guint64 cid = GUINT64_TO_LE (be.guest_cid);

  /* the size is the front end's (libvhost-user does not check it) */
  if (len < sizeof (cid) || len > VHOST_USER_MAX_CONFIG_SIZE)
    return -1;
  memset (config, 0, len);
  memcpy (config, &cid, sizeof (cid));
  return 0;
}

static int
set_config (VuDev * dev, const uint8_t * data, uint32_t offset,
    uint32_t size, uint32_t flags)
{
  /* the guest's CID is ours to set */
  return -1;
}

static gboolean teardown (gpointer data);

/* libvhost-user reads a closed socket as an empty message (NONE), on
 * which it would exit(): the front end is gone, drop it here instead (at a
 * priority above the socket's, which stays readable) */
static int
process_msg (VuDev * dev, VhostUserMsg * msg, int *do_reply)
{
  if (msg->request != VHOST_USER_NONE)
    return 0;
  *do_reply = 0;
  g_message ("vhost-user front end closed the connection");
  g_idle_add_full (G_PRIORITY_HIGH, teardown, NULL, NULL);
  return 1;
}

static const VuDevIface iface = {
  .process_msg = process_msg,
  .queue_set_started = queue_set_started,
  .get_config = get_config,
  .set_config = set_config,
};

/* Whether @fd has bytes (or an end) before @deadline (monotonic, µs) */
static gboolean
wait_readable (gint fd, gint64 deadline)
{
  for (;;) {
    gint64 left_ms = (deadline - g_get_monotonic_time () + 999) / 1000;
    struct pollfd pfd = {.fd = fd,.events = POLLIN };
    gint r;

    if (left_ms <= 0)
      return FALSE;
    r = poll (&pfd, 1, (gint) MIN (left_ms, G_MAXINT));
    if (r < 0 && errno == EINTR)
      continue;
    return r > 0;
  }
}

/* @n bytes into @p before @deadline: the rest of a message */
static gboolean
read_full (gint fd, guint8 * p, gsize n, gint64 deadline)
{
  while (n > 0) {
    gssize r;

    if (!wait_readable (fd, deadline))
      return FALSE;
    r = read (fd, p, n);
    if (r < 0 && errno == EINTR)
      continue;
    if (r <= 0)
      return FALSE;
    p += r;
    n -= r;
  }
  return TRUE;
}

/* One vhost-user message. libvhost-user's own reader asserts that one
 * read() brings a whole payload (a front end that sends less aborts the
 * backend) and retries a timed-out read for ever; this one reads until the
 * message is complete and gives up on an end, an error or a message not
 * whole FRONT_END_TIMEOUT_S after its first bytes came (one deadline for
 * the message, so a front end trickling a byte at a time cannot hold the
 * backend): the front end is then dropped. The dispatcher calls it when
 * the socket is readable, but libvhost-user also calls it to wait for an
 * answer (the postcopy SET_MEM_TABLE's): the first bytes have the same
 * deadline. */
static bool
read_msg (VuDev * dev, int sock, VhostUserMsg * vmsg)
{
  char control[CMSG_SPACE (VHOST_MEMORY_BASELINE_NREGIONS * sizeof (int))];
  struct iovec iov = {.iov_base = vmsg,.iov_len = VHOST_USER_HDR_SIZE };
  struct msghdr msg = {.msg_iov = &iov,.msg_iovlen = 1,
    .msg_control = control,.msg_controllen = sizeof (control)
  };
  struct cmsghdr *cmsg;
  gint64 deadline = g_get_monotonic_time () +
      FRONT_END_TIMEOUT_S * G_USEC_PER_SEC;
  gssize rc;
  gint i;

  memset (control, 0, sizeof (control));
  vmsg->fd_num = 0;
  if (!wait_readable (sock, deadline)) {
    g_message ("vhost-user front end: no message within %d s",
        FRONT_END_TIMEOUT_S);
    return false;
  }
  do
    rc = recvmsg (sock, &msg, MSG_CMSG_CLOEXEC);
  while (rc < 0 && errno == EINTR);
  for (cmsg = CMSG_FIRSTHDR (&msg); cmsg; cmsg = CMSG_NXTHDR (&msg, cmsg)) {
    if (cmsg->cmsg_level == SOL_SOCKET && cmsg->cmsg_type == SCM_RIGHTS) {
      vmsg->fd_num = (cmsg->cmsg_len - CMSG_LEN (0)) / sizeof (int);
      memcpy (vmsg->fds, CMSG_DATA (cmsg), vmsg->fd_num * sizeof (int));
      break;
    }
  }
  if (rc <= 0) {
    g_message ("vhost-user front end: %s", rc == 0 ? "closed the connection"
        : g_strerror (errno));
    goto fail;
  }
  if (rc < VHOST_USER_HDR_SIZE && !read_full (sock, (guint8 *) vmsg + rc,
          VHOST_USER_HDR_SIZE - rc, deadline)) {
    g_message ("vhost-user front end: a header cut short");
    goto fail;
  }
  if (vmsg->size > sizeof (vmsg->payload)) {
    g_message ("vhost-user front end: request %u of %u bytes, more than any",
        vmsg->request, vmsg->size);
    goto fail;
  }
  if (vmsg->size && !read_full (sock, (guint8 *) & vmsg->payload, vmsg->size,
          deadline)) {
    g_message ("vhost-user front end: request %u's %u bytes cut short",
        vmsg->request, vmsg->size);
    goto fail;
  }
  return true;

fail:
  for (i = 0; i < vmsg->fd_num; i++)
    close (vmsg->fds[i]);
  vmsg->fd_num = 0;
  return false;
}

static gboolean on_accept (gint fd, GIOCondition cond, gpointer data);

static void
watch_accept (void)
{
  be.accept_src = g_unix_fd_source_new (be.listen_fd, G_IO_IN);
  g_source_set_callback (be.accept_src,
      (GSourceFunc) (void (*)(void)) on_accept, NULL, NULL);
  g_source_attach (be.accept_src, NULL);
}

static gboolean
sample_rss (gpointer data)
{
  be.anon_max_kb = MAX (be.anon_max_kb, status_kb ("RssAnon:"));
  return G_SOURCE_CONTINUE;
}

static void
print_rss (const gchar * when)
{
  sample_rss (NULL);
  g_message ("%s: anon_start_kb=%ld anon_max_kb=%ld anon_kb=%ld rss_kb=%ld "
      "hwm_kb=%ld", when, be.anon_start_kb, be.anon_max_kb,
      status_kb ("RssAnon:"), status_kb ("VmRSS:"), status_kb ("VmHWM:"));
}

static gboolean
teardown (gpointer data)
{
  if (!be.dev_up)
    return G_SOURCE_REMOVE;
  vu_deinit (&be.dev.parent);
  vug_deinit (&be.dev);
  be.dev_up = FALSE;
  hvv_core_reset (be.core);
  print_rss ("front end gone");
  if (be.once)
    g_main_loop_quit (be.loop);
  else
    watch_accept ();
  return G_SOURCE_REMOVE;
}

static void
on_panic (VuDev * dev, const char *err)
{
  g_message ("vhost-user front end: %s; dropping it", err);
  g_idle_add_full (G_PRIORITY_HIGH, teardown, NULL, NULL);
}

static gboolean
on_accept (gint fd, GIOCondition cond, gpointer data)
{
  gint s = accept4 (be.listen_fd, NULL, NULL, SOCK_CLOEXEC);

  if (s < 0) {
    g_message ("accept: %s", g_strerror (errno));
    return G_SOURCE_CONTINUE;
  }
  if (!vug_init (&be.dev, 2, s, on_panic, &iface)) {
    g_message ("vhost-user: could not set up the device");
    close (s);
    return G_SOURCE_CONTINUE;
  }
  be.dev.parent.read_msg = read_msg;
  be.dev_up = TRUE;
  g_message ("vhost-user front end connected");
  g_source_unref (be.accept_src);
  be.accept_src = NULL;
  return G_SOURCE_REMOVE;
}

static gboolean
on_signal (gpointer data)
{
  g_message ("signal: stopping");
  g_main_loop_quit (be.loop);
  return G_SOURCE_CONTINUE;
}

int
main (int argc, char **argv)
{
  gchar *socket_path = NULL, *uds_path = NULL;
  gint64 guest_cid = 3;
  gint max_conns = 64, buf_alloc = 256 * 1024;
  gboolean once = FALSE;
  GOptionEntry entries[] = {
    {"socket", 0, 0, G_OPTION_ARG_FILENAME, &socket_path,
          "vhost-user socket to listen on (QEMU's -chardev socket,path=)",
        "PATH"},
    {"uds-path", 0, 0, G_OPTION_ARG_FILENAME, &uds_path,
        "guest connections to port P go to the UNIX socket PATH_P", "PATH"},
    {"guest-cid", 0, 0, G_OPTION_ARG_INT64, &guest_cid,
        "the guest's CID (default 3)", "CID"},
    {"max-connections", 0, 0, G_OPTION_ARG_INT, &max_conns,
        "connections at once; more are reset (default 64)", "N"},
    {"buf-alloc", 0, 0, G_OPTION_ARG_INT, &buf_alloc,
        "receive buffer per connection, in bytes, advertised to the guest "
          "(default 262144)", "BYTES"},
    {"once", 0, 0, G_OPTION_ARG_NONE, &once,
        "exit when the first vhost-user front end goes", NULL},
    {NULL}
  };
  GOptionContext *ctx = g_option_context_new ("- vhost-user-vsock backend "
      "relaying guest vsock to UNIX sockets");
  GError *err = NULL;
  struct sockaddr_un sa = {.sun_family = AF_UNIX };

  g_option_context_set_summary (ctx, "A vhost-user-vsock device backend for "
      "QEMU (-device vhost-user-vsock-pci): a guest connection to CID 2 "
      "port P becomes a connection to the UNIX socket <uds-path>_P. "
      "GPL-2.0-or-later (linked with QEMU's libvhost-user).");
  g_option_context_add_main_entries (ctx, entries, NULL);
  if (!g_option_context_parse (ctx, &argc, &argv, &err)) {
    g_printerr ("%s\n", err->message);
    return 2;
  }
  g_option_context_free (ctx);
  if (!socket_path || !uds_path) {
    g_printerr ("--socket and --uds-path are required (see --help)\n");
    return 2;
  }
  if (guest_cid < 3 || guest_cid > G_MAXUINT32 - 1 || max_conns < 1
      || max_conns > 4096 || buf_alloc < 4096 || buf_alloc > 64 * 1024 * 1024) {
    g_printerr ("--guest-cid must be 3..2^32-2, --max-connections 1..4096, "
        "--buf-alloc 4096..67108864\n");
    return 2;
  }
  if (strlen (socket_path) >= sizeof (sa.sun_path)) {
    g_printerr ("%s: path too long\n", socket_path);
    return 2;
  }
  signal (SIGPIPE, SIG_IGN);
  be.guest_cid = guest_cid;
  be.once = once;
  be.anon_start_kb = be.anon_max_kb = -1;
  g_timeout_add (200, sample_rss, NULL);
  be.loop = g_main_loop_new (NULL, FALSE);
  {
    HvvCoreConfig cfg = {
      .guest_cid = guest_cid,
      .uds_path = uds_path,
      .max_conns = max_conns,
      .buf_alloc = buf_alloc,
      .close_timeout_ms = 10000,
    };
    be.core = hvv_core_new (&cfg, on_wake, NULL);
  }
  strcpy (sa.sun_path, socket_path);
  unlink (socket_path);
  be.listen_fd = socket (AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (be.listen_fd < 0 || bind (be.listen_fd, (struct sockaddr *) &sa,
          sizeof (sa)) < 0 || listen (be.listen_fd, 1) < 0) {
    g_printerr ("%s: %s\n", socket_path, g_strerror (errno));
    return 1;
  }
  g_unix_signal_add (SIGINT, on_signal, NULL);
  g_unix_signal_add (SIGTERM, on_signal, NULL);
  watch_accept ();
  g_message ("listening on %s for a vhost-user front end; guest cid %"
      G_GINT64_FORMAT ", connections to port P go to %s_P (at most %d, %d "
      "bytes buffered each)", socket_path, guest_cid, uds_path, max_conns,
      buf_alloc);
  g_main_loop_run (be.loop);
  if (be.dev_up) {
    vu_deinit (&be.dev.parent);
    vug_deinit (&be.dev);
  }
  print_rss ("exit");
  hvv_core_free (be.core);
  if (be.accept_src) {
    g_source_destroy (be.accept_src);
    g_source_unref (be.accept_src);
  }
  close (be.listen_fd);
  unlink (socket_path);
  g_main_loop_unref (be.loop);
  g_free (socket_path);
  g_free (uds_path);
  return 0;
}
