/* Whether the GStreamer elements a test needs are installed: a suite
 * leaves out the tests whose elements (x264enc, avdec_h264, ...) this
 * machine lacks instead of failing them. Header-only, like proc-stats.h.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#pragma once

#include <gst/gst.h>

/* TRUE if every factory in @names (NULL-terminated) is in the registry. */
static inline gboolean
elements_available (const gchar * const *names)
{
  for (; *names; names++) {
    GstElementFactory *f = gst_element_factory_find (*names);

    if (!f)
      return FALSE;
    gst_object_unref (f);
  }
  return TRUE;
}
