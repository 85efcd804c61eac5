/* Comparing decoded frames with their sources, for the end-to-end tests.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#pragma once

#include <gst/video/video.h>

G_BEGIN_DECLS

/* Luma PSNR >= 30 dB  <=>  MSE <= 255^2 / 10^3 */
#define VIDEO_COMPARE_MAX_MSE_30DB 65.025

/* Mean squared error of the luma of two samples of the same size (the
 * first plane of any YUV format). Fails the test on a size mismatch. */
gdouble video_compare_luma_mse (GstSample * a, GstSample * b);

G_END_DECLS
