/* The vsocksrc plugin: the element of gstvsocksrc.c, for standalone use.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include "gstvsocksrc.h"

static gboolean
plugin_init (GstPlugin * plugin)
{
  return GST_ELEMENT_REGISTER (vsocksrc, plugin);
}

GST_PLUGIN_DEFINE (GST_VERSION_MAJOR, GST_VERSION_MINOR, vsocksrc,
    "Host side of the helix encode offload: guest frames as raw video",
    plugin_init, VERSION, "LGPL", "helix-encode-offload",
    "https://example.invalid/helix")
