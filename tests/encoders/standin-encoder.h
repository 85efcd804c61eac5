/* Stand-ins for the hardware encoders this machine cannot run: GstBin
 * elements with exactly the properties, enum nicks and pad template caps
 * that GStreamer documents for them (one version's
 * gst_plugins_cache.json, through gst-docs-extract.py), encoding with x264
 * inside. Each property set and each force-key-unit event is written to
 * stderr as "standin ELEMENT: ..." in the element's own terms
 * ("standin nvh264enc: bitrate=1500 (guint)"), and the
 * bitrate and keyframe interval reach x264enc converted from the
 * documented unit.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#pragma once

#include <gst/gst.h>

G_BEGIN_DECLS

/* The docs file (GKeyFile written by gst-docs-extract.py) */
GKeyFile *standin_docs_load (const gchar * path, GError ** error);

/* The documented elements of @docs, and the ones asked for but not
 * documented (NULL-terminated, free with g_strfreev). */
gchar **standin_docs_elements (GKeyFile * docs);
gchar **standin_docs_missing (GKeyFile * docs);

/* "kbit/s", "bit/s" or NULL: what the documented bitrate property's
 * description says it counts in. */
gchar *standin_docs_bitrate_unit (GKeyFile * docs, const gchar * element);

/* The stand-in type for @element (registered on first call), or 0 with
 * @error set. Properties of a type the docs do not describe are left out
 * and named in *skipped (may be NULL; free with g_free). */
GType standin_encoder_get_type (GKeyFile * docs, const gchar * element,
    gchar ** skipped, GError ** error);

G_END_DECLS
