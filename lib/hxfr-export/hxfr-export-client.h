/* Helix export client: the bridge's side of docs/export-protocol.md.
 *
 * One connection to a VMM's export socket, shared by any number of
 * threads: requests are serialised on the connection and answers matched
 * by request id. Every call is bounded by its timeout; a VMM that goes
 * away fails the pending and all later calls with
 * G_IO_ERROR_CONNECTION_CLOSED, never a hang.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#pragma once

#include <gio/gio.h>
#include "hxfr-export-protocol.h"

G_BEGIN_DECLS

typedef struct _HxexClient HxexClient;

/* One resolved resource, valid until hxex_client_surface_free(). Planes:
 * READBACK_SLOT: @data points at the first byte of the slot, a plane is
 *   at @data + offset[i] (read-only mapping, shared with the VMM; stays
 *   mapped while any surface or the client lives);
 * DMABUF: @fd (owned by the surface, closed by free; dup it to keep it),
 *   a plane is at offset[i] of that buffer, layout @modifier;
 * IOSURFACE: @iosurface_id (macOS IOSurfaceLookup). */
typedef struct
{
  HxexKind kind;
  guint32 resource_id;
  guint32 handle;
  guint32 fourcc;               /* DRM fourcc, e.g. AR24 = GStreamer BGRA */
  guint64 modifier;
  guint32 width;
  guint32 height;
  guint n_planes;
  guint32 stride[HXEX_MAX_PLANES];
  guint32 offset[HXEX_MAX_PLANES];
  gsize size;
  const guint8 *data;           /* READBACK_SLOT */
  gint fd;                      /* DMABUF, else -1 */
  guint32 iosurface_id;         /* IOSURFACE */
  guint32 slot;                 /* READBACK_SLOT */

  /*< private > */
  HxexClient *client;
  gint released;
} HxexClientSurface;

/* Connects to the export socket at @path and completes the HELLO
 * exchange (mapping the ring of readback slots), all within @timeout_us.
 * @kinds: HXEX_KIND_BIT mask of surface kinds this client can use
 * (0 = all). */
HxexClient *hxex_client_connect (const gchar * path,
    guint32 kinds, gint64 timeout_us, GError ** error);
/* A boxed type (ref/unref): vsocksrc takes it as a typed property. */
#define HXEX_TYPE_CLIENT (hxex_client_get_type ())
GType hxex_client_get_type (void);
HxexClient *hxex_client_ref (HxexClient * client);
void hxex_client_unref (HxexClient * client);
/* Ends the connection: a thread waiting in resolve wakes with an error.
 * Surfaces already handed out stay valid until freed. */
void hxex_client_close (HxexClient * client);
gboolean hxex_client_is_connected (HxexClient * client);
guint hxex_client_get_n_slots (HxexClient * client);
guint64 hxex_client_get_slot_size (HxexClient * client);
guint32 hxex_client_get_kinds (HxexClient * client);

/* Asks the VMM for resource @resource_id. NULL with a GError:
 * HXEX_ERROR (HxexErrorCode, e.g. UNKNOWN_RESOURCE, BUSY: every slot is
 * held, release some) for an answer from the VMM, the connection stays
 * usable; G_IO_ERROR_TIMED_OUT when no answer came in time (a late
 * answer is released automatically); G_IO_ERROR_CONNECTION_CLOSED (or
 * another G_IO_ERROR) when the VMM went away. */
HxexClientSurface *hxex_client_resolve (HxexClient * client,
    guint32 resource_id, gint64 timeout_us, GError ** error);
/* The same, accepting only the surface kinds in @kinds (HXEX_KIND_BIT
 * mask, 0 = any agreed at connect), e.g. readback after a DMA-BUF the
 * caller turned out not to be able to read. */
HxexClientSurface *hxex_client_resolve_kinds (HxexClient *
    client, guint32 resource_id, guint32 kinds, gint64 timeout_us,
    GError ** error);

/* Gives the surface back to the VMM (its slot becomes free). Does not
 * wait for the VMM. FALSE with HXEX_ERR_RELEASED if it was already
 * released; TRUE (nothing to do) if the VMM is gone. The surface itself
 * stays allocated until hxex_client_surface_free(). */
gboolean hxex_client_surface_release (HxexClientSurface * surface,
    GError ** error);
/* Releases (if not done yet), closes the DMA-BUF fd, frees. */
void hxex_client_surface_free (HxexClientSurface * surface);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (HxexClient, hxex_client_unref);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (HxexClientSurface, hxex_client_surface_free);

G_END_DECLS
