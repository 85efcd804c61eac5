/* The vsockenc plugin: the guest's elements. The encoders (gstvsockenc.c,
 * the codec subclasses in gstvsockenc-codecs.c) and the source of a
 * host-encoded scanout (gstvsockscanoutsrc.c).
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <gst/gst.h>

GST_ELEMENT_REGISTER_DECLARE (vsockenc);
GST_ELEMENT_REGISTER_DECLARE (vsockh265enc);
GST_ELEMENT_REGISTER_DECLARE (vsockav1enc);
GST_ELEMENT_REGISTER_DECLARE (vsockscanoutsrc);

static gboolean
plugin_init (GstPlugin * plugin)
{
  return GST_ELEMENT_REGISTER (vsockenc, plugin)
      && GST_ELEMENT_REGISTER (vsockh265enc, plugin)
      && GST_ELEMENT_REGISTER (vsockav1enc, plugin)
      && GST_ELEMENT_REGISTER (vsockscanoutsrc, plugin);
}

GST_PLUGIN_DEFINE (GST_VERSION_MAJOR, GST_VERSION_MINOR, vsockenc,
    "Guest side of the H.264, H.265 and AV1 encode offload to the VM host",
    plugin_init, PACKAGE_VERSION, GST_LICENSE, GST_PACKAGE_NAME,
    GST_PACKAGE_ORIGIN)
