/* Inside lib/hxfr: what the codecs (hxfr-protocol.c, hxfr-scanout.c) share
 * to lay out wire structures. Not installed, not for other code.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

/* Wire structures are packed and copied in and out with memcpy, never
 * dereferenced in place (alignment). */
#define HXFR_PACKED __attribute__((packed))

#define LE32(v) GUINT32_TO_LE (v)
#define LE16(v) GUINT16_TO_LE (v)
#define LE64(v) GINT64_TO_LE (v)
#define FROM_LE32(v) GUINT32_FROM_LE (v)
#define FROM_LE16(v) GUINT16_FROM_LE (v)
#define FROM_LE64(v) GINT64_FROM_LE (v)

/* FALSE with HXFR_ERR_INVALID naming @what unless @len == @expected. */
gboolean hxfr_wire_check_len (const gchar * what, gsize len, gsize expected,
    GError ** error);

G_END_DECLS
