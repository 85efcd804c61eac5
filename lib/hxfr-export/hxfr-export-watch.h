/* Helix export scanout watch: the bridge's view of a VM's virtio-gpu
 * scanouts (docs/export-protocol.md, "Scanouts").
 *
 * A watch is an export connection of its own (version 2 of the export
 * protocol) on which the VMM pushes the state of every scanout (which
 * resource it shows, size, format, enabled or not) and each flush of a
 * shown resource. The bridge can also enable or disable a scanout (a
 * connector hotplug in the guest). With version 4 and a snapshot
 * callback, the VMM copies the picture of the scanouts the watcher names
 * (hxex_watch_set_snapshots) at each flush into the watch's own ring of
 * readback slots, and the flush comes as a snapshot: an HxexClientSurface
 * of that picture. Otherwise (an older VMM, no free slot) a flush comes
 * without pixels, and the bridge resolves the resource it names on an
 * ordinary export connection (hxfr-export-client.h), later.
 *
 * Callbacks run on the watch's own reader thread, one at a time, in the
 * order the VMM sent the events; they must not block for long (the VMM
 * closes a watch whose socket fills up).
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#pragma once

#include <gio/gio.h>
#include "hxfr-export-protocol.h"
#include "hxfr-export-client.h"

G_BEGIN_DECLS

typedef struct _HxexWatch HxexWatch;

typedef struct
{
  guint32 index;
  gboolean enabled;             /* the connector is connected */
  guint32 resource_id;          /* 0: nothing shown */
  guint32 width;                /* of the resource shown */
  guint32 height;
  guint32 fourcc;               /* DRM fourcc of the resource */
} HxfrScanoutState;

typedef struct
{
  guint32 index;
  guint32 resource_id;
  guint32 x, y, width, height;  /* damage, in resource pixels */
  guint64 time_ns;              /* VMM CLOCK_MONOTONIC at the flush */
} HxfrScanoutFlush;

/* Version 3: a new image of a scanout's cursor plane (a move is the
 * message as parsed, HxexCursorMove) */
typedef struct
{
  HxexCursorShape desc;         /* checked: sizes, hotspot, index */
  /* desc.size bytes, ARGB8888 (B G R A in memory), rows top down, stride
   * width * 4; a copy: ref it to keep it */
  GBytes *pixels;
} HxfrCursorShape;

typedef struct
{
  /* a scanout's state changed; also once per scanout before
   * hxex_watch_new() returns */
  void (*state) (gpointer user_data, const HxfrScanoutState * state);
  void (*flush) (gpointer user_data, const HxfrScanoutFlush * flush);
  /* the VMM closed the watch or broke the protocol; no callback follows */
  void (*closed) (gpointer user_data, const GError * why);
  /* version 3 only (hxex_watch_has_cursor): a new cursor image, and a
   * move; both also once, after the initial states, for what the VMM
   * knows then. NULL: ignored. */
  void (*cursor_shape) (gpointer user_data, const HxfrCursorShape * shape);
  void (*cursor_move) (gpointer user_data, const HxexCursorMove * move);
  /* version 4: a flush with the picture copied at the flush (a readback
   * slot of the watch's ring, checked against it). Takes @surface: free it
   * (hxex_client_surface_free, any thread: it sends RELEASE) once read;
   * until then the VMM does not write that slot, and the VMM has only
   * n_slots of them for this watch. Non-NULL: the watch asks the VMM for a
   * ring (HELLO kinds) so that it can snapshot. */
  void (*snapshot) (gpointer user_data, const HxfrScanoutFlush * flush,
      HxexClientSurface * surface);
} HxexWatchCallbacks;

/* Connects to the export at @path, negotiates version 2 or 3, asks for scanout
 * events and reads the initial state of every scanout (calling
 * callbacks->state for each, on this thread), all within @timeout_us; then
 * starts the reader thread. A VMM whose export has no scanouts (version 1)
 * fails with G_IO_ERROR_NOT_SUPPORTED. */
HxexWatch *hxex_watch_new (const gchar * path,
    const HxexWatchCallbacks * callbacks, gpointer user_data,
    gint64 timeout_us, GError ** error);
/* The VMM's number of scanouts (QEMU: max_outputs). */
guint hxex_watch_get_n_scanouts (HxexWatch * watch);
/* The VMM speaks version 3: it reports the cursor plane. */
gboolean hxex_watch_has_cursor (HxexWatch * watch);
/* The VMM speaks version 4 and gave this watch a ring: it can snapshot. */
gboolean hxex_watch_has_snapshots (HxexWatch * watch);
/* The scanouts (bit N = scanout N, < n_scanouts) whose flushes the VMM is
 * to copy at the flush for this watch from now on (0: none; the VMM costs
 * nothing for scanouts nobody watches). Not answered: waits only for room
 * on the socket, up to @timeout_us. FALSE (G_IO_ERROR_NOT_SUPPORTED)
 * without hxex_watch_has_snapshots. Not from a callback. */
gboolean hxex_watch_set_snapshots (HxexWatch * watch, guint32 mask,
    gint64 timeout_us, GError ** error);
/* Enables (a connector hotplug with a preferred mode of @width x @height
 * at @refresh_hz) or disables scanout @index, waiting up to @timeout_us
 * for the VMM's answer. FALSE with HXEX_ERROR (e.g. HXEX_ERR_REFUSED for
 * scanout 0, an index out of range, a size above the VMM's maximum) or a
 * G_IO_ERROR. Not from a callback. */
gboolean hxex_watch_set_enabled (HxexWatch * watch,
    guint32 index, gboolean enable, guint32 width, guint32 height,
    guint32 refresh_hz, gint64 timeout_us, GError ** error);
/* Closes the connection and joins the reader thread: no callback runs
 * after it returns. Not from a callback. */
void hxex_watch_free (HxexWatch * watch);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (HxexWatch, hxex_watch_free);

G_END_DECLS
