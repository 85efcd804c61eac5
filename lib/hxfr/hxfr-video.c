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

const guint8 hxfr_video_aud[6] = { 0x00, 0x00, 0x00, 0x01, 0x09, 0xf0 };

/* Annex B start code length at @d (3 or 4), 0 if none. */
static guint
start_code_length (const guint8 * d, gsize size)
{
  if (size >= 3 && d[0] == 0 && d[1] == 0 && d[2] == 1)
    return 3;
  if (size >= 4 && d[0] == 0 && d[1] == 0 && d[2] == 0 && d[3] == 1)
    return 4;
  return 0;
}

gboolean
hxfr_video_au_opens_with_aud (const guint8 * au, gsize size)
{
  guint sc = start_code_length (au, size);

  /* an AUD is always an access unit's first NAL (H.264 7.4.1.2.3) */
  return sc && size > sc && (au[sc] & 0x1f) == 9;
}

gsize
hxfr_video_au_aud_length (const guint8 * au, gsize size)
{
  guint sc = start_code_length (au, size);
  gsize i;

  if (!hxfr_video_au_opens_with_aud (au, size))
    return 0;
  for (i = sc + 1; i + 3 <= size; i++)
    if (start_code_length (au + i, size - i))
      return i;
  return 0;
}

static const guint8 *
find_nal (const guint8 * au, gsize size, gboolean h265, guint type,
    gsize * nal_size)
{
  const guint8 *nal = NULL;
  gsize i = 0, sc;

  while (i < size) {
    sc = start_code_length (au + i, size - i);
    if (!sc) {
      i++;
      continue;
    }
    if (nal) {
      *nal_size = au + i - nal;
      return nal;
    }
    i += sc;
    if (i < size && (h265 ? (au[i] >> 1) & 0x3f : au[i] & 0x1f) == type)
      nal = au + i;
  }
  if (nal)
    *nal_size = au + size - nal;
  return nal;
}

const guint8 *
hxfr_video_au_find_nal (const guint8 * au, gsize size, guint type,
    gsize * nal_size)
{
  return find_nal (au, size, FALSE, type, nal_size);
}

const guint8 *
hxfr_video_au_find_h265_nal (const guint8 * au, gsize size, guint type,
    gsize * nal_size)
{
  return find_nal (au, size, TRUE, type, nal_size);
}

gsize
hxfr_video_nal_unescape (const guint8 * nal, gsize size, guint8 * out,
    gsize out_size)
{
  gsize i, n = 0;
  guint zeros = 0;

  for (i = 0; i < size && n < out_size; i++) {
    if (zeros >= 2 && nal[i] == 3) {
      zeros = 0;
      continue;
    }
    zeros = nal[i] == 0 ? zeros + 1 : 0;
    out[n++] = nal[i];
  }
  return n;
}
