/* vsocksrc, the element: built once, as a static library that the plugin
 * (plugin.c) and helix-host-bridge both link.
 *
 * The bridge registers it in process (under the name vsocksrc, which then
 * takes the place of any plugin of that name): the session and export
 * client it hands over are typed properties of the same build, never a
 * plugin's from elsewhere.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#pragma once

#include <gst/gst.h>

G_BEGIN_DECLS

GST_ELEMENT_REGISTER_DECLARE (vsocksrc);

/* Registers vsocksrc with no plugin; TRUE on success. After gst_init(). */
gboolean gst_vsock_src_register_in_process (void);

G_END_DECLS
