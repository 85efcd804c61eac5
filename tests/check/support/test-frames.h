/* Source frames for the end-to-end tests that compare decoded video with
 * what was sent.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#pragma once

#include <gst/gst.h>

G_BEGIN_DECLS

/* @n frames of videotestsrc (moving SMPTE bars) as @format, @w x @h,
 * 30/1, optionally converted to I420 (the reference the decoded frames are
 * compared with). Fails the test if fewer come. GstSample each. */
GPtrArray *test_frames_collect (const gchar * format, guint w, guint h,
    guint n, gboolean as_i420);

G_END_DECLS
