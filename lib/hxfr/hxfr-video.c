/* See hxfr-video.h.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "hxfr-video.h"

static const struct
{
  GstVideoFormat format;
  guint32 fourcc;               /* v2 */
  guint32 v1_fourcc;            /* 0: not expressible in v1 */
} formats[] = {
  {GST_VIDEO_FORMAT_NV12, HXFR_FORMAT_NV12, HXFR_FORMAT_NV12},
  {GST_VIDEO_FORMAT_I420, HXFR_FORMAT_YUV420, 0},
  {GST_VIDEO_FORMAT_BGRA, HXFR_FORMAT_ARGB8888, HXFR_FORMAT_ARGB8888},
  {GST_VIDEO_FORMAT_BGRx, HXFR_FORMAT_XRGB8888, HXFR_FORMAT_ARGB8888},
  {GST_VIDEO_FORMAT_RGBA, HXFR_FORMAT_ABGR8888, HXFR_FORMAT_ABGR8888},
  {GST_VIDEO_FORMAT_RGBx, HXFR_FORMAT_XBGR8888, HXFR_FORMAT_ABGR8888},
};

guint32
hxfr_video_format_to_fourcc (GstVideoFormat format, guint version)
{
  guint i;

  for (i = 0; i < G_N_ELEMENTS (formats); i++)
    if (formats[i].format == format)
      return version >= 2 ? formats[i].fourcc : formats[i].v1_fourcc;
  return 0;
}

GstVideoFormat
hxfr_video_format_from_fourcc (guint32 fourcc)
{
  guint i;

  for (i = 0; i < G_N_ELEMENTS (formats); i++)
    if (formats[i].fourcc == fourcc)
      return formats[i].format;
  return GST_VIDEO_FORMAT_UNKNOWN;
}
