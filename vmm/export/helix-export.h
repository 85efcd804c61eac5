/* Helix export, the VMM side: serves virglrenderer resources to the host
 * bridge over a UNIX socket (docs/export-protocol.md).
 *
 * Shaped for QEMU's virtio-gpu-gl (see qemu-glue.c):
 *
 *   ex = helix_export_new ("/run/helix/export.sock", NULL, &error);
 *   qemu_set_fd_handler (helix_export_get_fd (ex), dispatch_cb, NULL, ex);
 *   ...  dispatch_cb: helix_export_dispatch (ex);
 *   helix_export_free (ex);
 *
 * Threading: create, dispatch and free on the thread that owns the
 * renderer (the thread that called virgl_renderer_init). Every
 * virglrenderer call the module makes happens inside
 * helix_export_dispatch(); it never blocks (a client whose socket would
 * block is disconnected) and handles a bounded number of messages per
 * call, so it is safe in a VMM's main loop.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

typedef struct _HelixExport HelixExport;

typedef struct
{
  /* readback ring, per client connection: n_slots of slot_size bytes in
   * one memfd (0 slots: no readback) */
  guint n_slots;
  guint64 slot_size;
  /* permissions of the socket file (0 = leave as the umask made it) */
  guint unix_mode;
  guint max_clients;
  guint32 max_width;
  guint32 max_height;
  /* try DMA-BUF export (virglrenderer export query, then
   * virgl_renderer_get_fd_for_texture2) before readback when the client
   * accepts DMA-BUF */
  gboolean allow_dmabuf;
  /* TESTS ONLY: answer DMABUF-accepting clients with kind DMABUF backed
   * by a memfd holding a readback copy (linear, modifier 0), so that the
   * client's DMA-BUF path runs on a machine whose renderer cannot export
   * a real DMA-BUF. Not zero copy; never set it in a VMM. */
  gboolean simulate_dmabuf;
  /* TESTS ONLY: the modifier those simulated DMA-BUFs claim (0 = linear;
   * e.g. a tiled one to make the client fall back to readback) */
  guint64 simulate_dmabuf_modifier;
  /* macOS only: the VMM maps a resource id to a global IOSurfaceID (from
   * the Metal texture its virglrenderer reports); FALSE = not available.
   * Ignored elsewhere. */
  gboolean (*lookup_iosurface) (gpointer user_data, guint32 resource_id,
      guint32 * iosurface_id);
  /* The VMM's own record of the guest's resources (QEMU: its reslist):
   * FALSE for an id the guest never created or has destroyed, which is
   * then answered UNKNOWN_RESOURCE without asking the renderer. NULL: the
   * renderer's table alone decides. */
  gboolean (*resource_alive) (gpointer user_data, guint32 resource_id);
  /* scanouts reported to watchers (protocol version 2; QEMU: max_outputs,
   * <= HXEX_MAX_SCANOUTS = 16); 0 = none, WATCH is then refused */
  guint n_scanouts;
  /* a watcher asks to connect (enable) or disconnect a scanout's
   * connector; the VMM hotplugs it and reports the new state with
   * helix_export_scanout_update() (from inside this callback or later).
   * Called from dispatch, only with 0 < index < n_scanouts and, when
   * enabling, 0 < width <= max_width, 0 < height <= max_height.
   * FALSE: refused. NULL: every request refused. */
  gboolean (*set_scanout_enabled) (gpointer user_data, guint32 index,
      gboolean enable, guint32 width, guint32 height, guint32 refresh_hz);
  gpointer user_data;
  /* the highest protocol version spoken (0: the module's, 4); a lower one
   * plays an older VMM (the stand-in's --export-version, for tests of old
   * and new peers) */
  guint max_version;
} HelixExportOptions;

#define HELIX_EXPORT_DEFAULT_N_SLOTS 8
/* one 4K BGRA frame, rounded up to 4 KiB pages */
#define HELIX_EXPORT_DEFAULT_SLOT_SIZE (3840u * 2160u * 4u)

typedef struct
{
  guint clients;                /* connected now */
  guint slots_in_use;           /* all clients */
  guint handles_held;           /* all clients, all kinds */
  guint64 resolves;             /* answered with a SURFACE */
  guint64 readbacks;
  guint64 dmabufs;
  guint64 iosurfaces;
  guint64 errors;               /* answered with an ERROR */
  guint64 bad_releases;         /* RELEASE of a handle not held */
  guint64 dmabuf_failures;      /* DMA-BUF tried, fell back to readback */
  guint watchers;               /* watch connections now (also in clients) */
  guint64 scanout_updates;      /* helix_export_scanout_update that changed */
  guint64 flushes;              /* helix_export_scanout_flush calls */
  guint64 flushes_sent;         /* FLUSH messages written, all watchers */
  guint64 watchers_dropped;     /* watchers closed: their socket was full */
  guint64 scanout_controls;     /* SCANOUT_CONTROL answered */
  guint64 scanout_refusals;     /* ... of which refused */
  guint64 cursor_shapes;        /* helix_export_cursor_shape calls taken */
  guint64 cursor_moves;         /* helix_export_cursor_move that changed */
  guint64 cursor_moves_coalesced;       /* ... replaced, unsent, by a newer
                                         * one for a watcher that was behind */
  guint64 snapshots;            /* FLUSH_SNAPSHOT sent (a copy at the flush) */
  guint64 snapshot_misses;      /* a watcher wanted one, got a FLUSH: no
                                 * free slot, too large, or the read failed */
} HelixExportStats;

void helix_export_options_init (HelixExportOptions * options);

/* Binds @socket_path (a stale socket file is replaced, a live one is an
 * error) and starts listening. @options may be NULL for the defaults. */
HelixExport *helix_export_new (const gchar * socket_path,
    const HelixExportOptions * options, GError ** error);
/* One descriptor that becomes readable when dispatch has work (an epoll
 * fd on Linux, a kqueue on macOS). Add it to the VMM's main loop. */
gint helix_export_get_fd (HelixExport * ex);
/* Accepts clients and answers their requests; never blocks. Call when the
 * fd is readable, from the renderer's thread. */
void helix_export_dispatch (HelixExport * ex);
void helix_export_get_stats (HelixExport * ex, HelixExportStats * stats);
/* Scanout @index (< n_scanouts, else ignored) now shows @resource_id (0 =
 * nothing) of @width x @height, DRM @fourcc (0 = unknown); @enabled: its
 * connector is connected. Sends SCANOUT to every watcher when something
 * changed. From the renderer's thread, like dispatch (also from inside
 * set_scanout_enabled). Never blocks: a watcher whose socket is full is
 * disconnected. */
void helix_export_scanout_update (HelixExport * ex, guint32 index,
    gboolean enabled, guint32 resource_id, guint32 width, guint32 height,
    guint32 fourcc);
/* The guest flushed (page-flipped or damaged) @resource_id on scanout
 * @index; the rectangle is the damage, in resource pixels. Sends FLUSH,
 * stamped with CLOCK_MONOTONIC now, to every watcher; a version-4 watcher
 * that asked for snapshots of @index gets FLUSH_SNAPSHOT instead: the
 * resource read back now, into a free slot of its ring (so call it where
 * the guest's commands before the flush have run and later ones have not:
 * QEMU's RESOURCE_FLUSH handler). Same thread and policy as update. */
void helix_export_scanout_flush (HelixExport * ex, guint32 index,
    guint32 resource_id, guint32 x, guint32 y, guint32 width, guint32 height);
/* Scanout @index's cursor plane shows @argb (ARGB8888 as 32-bit words in
 * the host's order, i.e. B G R A in memory on little-endian; @width x
 * @height, 1..HXEX_CURSOR_MAX_SIZE, rows top down, stride width * 4),
 * hotspot @hot_x, @hot_y inside it. Sends CURSOR_SHAPE with the image in
 * a sealed memfd to every version-3 watcher, and to later ones when they
 * WATCH. FALSE (@error): out of range, or no memory for the image. Same
 * thread and policy as update. */
gboolean helix_export_cursor_shape (HelixExport * ex, guint32 index,
    guint32 width, guint32 height, guint32 hot_x, guint32 hot_y,
    const guint32 * argb, GError ** error);
/* Scanout @index's pointer hotspot is at @x, @y (scanout pixels; may be
 * outside it), drawn or not (@visible). Sends CURSOR_MOVE when something
 * changed. Same thread as update; but a watcher whose socket is full is
 * not disconnected for a move: it is owed the newest position, sent when
 * its socket drains (before any later event). */
void helix_export_cursor_move (HelixExport * ex, guint32 index,
    gboolean visible, gint32 x, gint32 y);
/* Disconnects every client (their slots are freed), closes and removes
 * the socket. */
void helix_export_free (HelixExport * ex);

G_END_DECLS
