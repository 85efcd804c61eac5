/* The luma difference of two decoded frames, for the tests
 * (video-compare.h) and the codec bench (bench/codec-rd.c): no check
 * framework here.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#pragma once

#include <gst/video/video.h>

G_BEGIN_DECLS

/* Sum of squared luma differences of two samples of the same size (the
 * first plane of each: Y of I420, NV12...); *@pixels (if not NULL) gets
 * the pixel count added. -1 if their sizes differ or one cannot be
 * mapped. */
gdouble video_luma_sse (GstSample * a, GstSample * b, guint64 * pixels);

G_END_DECLS
