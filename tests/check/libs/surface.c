/* hxfr_surface_wrap(): export surfaces as buffers, and the DMA-BUF layout
 * policy. A memfd stands in for the DMA-BUF (GstDmaBufAllocator maps it
 * like one); no VMM: the surfaces are made here.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#define _GNU_SOURCE             /* memfd_create */
#include <gst/check/gstcheck.h>
#include <gst/allocators/allocators.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <string.h>
#include <unistd.h>

#include "hxfr-surface.h"

#define W 16
#define H 8
#define STRIDE (W * 4 + 16)     /* not the default: the meta must carry it */
#define SIZE (STRIDE * H)
#define AR24 GST_MAKE_FOURCC ('A', 'R', '2', '4')
#define MOD_TILED 0x0100000000000001ull /* I915_FORMAT_MOD_X_TILED */

static guint8 pixels[SIZE];

static HxexClientSurface *
new_surface (HxexKind kind, guint64 modifier)
{
  HxexClientSurface *s = g_new0 (HxexClientSurface, 1);
  guint i;

  for (i = 0; i < SIZE; i++)
    pixels[i] = (i * 7) & 255;
  s->kind = kind;
  s->resource_id = 42;
  s->fourcc = AR24;
  s->modifier = modifier;
  s->width = W;
  s->height = H;
  s->n_planes = 1;
  s->stride[0] = STRIDE;
  s->size = SIZE;
  s->fd = -1;
  /* no VMM to give it back to */
  s->released = 1;
  if (kind == HXEX_KIND_READBACK_SLOT) {
    s->data = pixels;
  } else {
    s->fd = memfd_create ("surface", MFD_CLOEXEC);
    fail_unless (s->fd >= 0);
    fail_unless (write (s->fd, pixels, SIZE) == SIZE);
  }
  return s;
}

static gboolean
fd_is_open (gint fd)
{
  return fcntl (fd, F_GETFD) != -1;
}

/* @buf holds the surface's picture: its plane layout and its bytes. */
static void
check_picture (GstBuffer * buf, const GstVideoInfo * info)
{
  GstVideoMeta *meta = gst_buffer_get_video_meta (buf);
  GstVideoFrame frame;
  guint y;

  fail_unless (meta != NULL);
  fail_unless_equals_int (meta->format, GST_VIDEO_FORMAT_BGRA);
  fail_unless_equals_int (meta->width, W);
  fail_unless_equals_int (meta->height, H);
  fail_unless_equals_int (meta->stride[0], STRIDE);
  fail_unless_equals_int (GST_VIDEO_INFO_FORMAT (info), GST_VIDEO_FORMAT_BGRA);
  fail_unless_equals_int (GST_VIDEO_INFO_WIDTH (info), W);
  fail_unless_equals_int (GST_VIDEO_INFO_HEIGHT (info), H);
  fail_unless (gst_video_frame_map (&frame, info, buf, GST_MAP_READ));
  for (y = 0; y < H; y++)
    fail_unless (memcmp ((guint8 *) GST_VIDEO_FRAME_PLANE_DATA (&frame, 0) +
            y * GST_VIDEO_FRAME_PLANE_STRIDE (&frame, 0),
            pixels + y * STRIDE, W * 4) == 0, "row %u differs", y);
  gst_video_frame_unmap (&frame);
}

GST_START_TEST (test_readback_slot)
{
  HxexClientSurface *s = new_surface (HXEX_KIND_READBACK_SLOT, 0);
  GError *err = NULL;
  GstVideoInfo info;
  GstBuffer *buf;
  GstMapInfo map;

  buf = hxfr_surface_wrap (s, HXFR_SURFACE_MAPPED, &info, &err);
  fail_unless (buf != NULL, "%s", err ? err->message : "");
  check_picture (buf, &info);
  /* the slot itself, not a copy */
  fail_unless (gst_buffer_map (buf, &map, GST_MAP_READ));
  fail_unless (map.data == pixels);
  gst_buffer_unmap (buf, &map);
  gst_buffer_unref (buf);
}

GST_END_TEST;

/* A linear DMA-BUF is mapped, by either consumer, and the memory owns its
 * descriptor. */
GST_START_TEST (test_dmabuf_linear)
{
  HxfrSurfaceAccess access;

  for (access = HXFR_SURFACE_MAPPED; access <= HXFR_SURFACE_IMPORTED; access++) {
    HxexClientSurface *s = new_surface (HXEX_KIND_DMABUF,
        HXEX_DRM_FORMAT_MOD_LINEAR);
    gint fd = s->fd;
    GError *err = NULL;
    GstVideoInfo info;
    GstBuffer *buf;

    buf = hxfr_surface_wrap (s, access, &info, &err);
    fail_unless (buf != NULL, "%s", err ? err->message : "");
    fail_unless (gst_is_dmabuf_memory (gst_buffer_peek_memory (buf, 0)));
    fail_unless_equals_int (gst_dmabuf_memory_get_fd (gst_buffer_peek_memory
            (buf, 0)), fd);
    check_picture (buf, &info);
    gst_buffer_unref (buf);
    fail_if (fd_is_open (fd), "the DMA-BUF outlived its buffer");
  }
}

GST_END_TEST;

/* A tiled DMA-BUF is never mapped as if it were linear: a clear error
 * naming the resource, fourcc and modifier, whoever the consumer (nothing
 * here names a modifier to an importer), and the surface is freed. */
GST_START_TEST (test_dmabuf_tiled_refused)
{
  HxfrSurfaceAccess access;

  for (access = HXFR_SURFACE_MAPPED; access <= HXFR_SURFACE_IMPORTED; access++) {
    HxexClientSurface *s = new_surface (HXEX_KIND_DMABUF, MOD_TILED);
    gint fd = s->fd;
    GError *err = NULL;

    fail_unless (hxfr_surface_wrap (s, access, NULL, &err) == NULL);
    fail_unless (g_error_matches (err, HXFR_SURFACE_ERROR,
            HXFR_SURFACE_ERROR_MODIFIER), "%s", err ? err->message : "none");
    fail_unless (strstr (err->message, "resource 42") != NULL, "%s",
        err->message);
    fail_unless (strstr (err->message, "AR24") != NULL, "%s", err->message);
    fail_unless (strstr (err->message, "0x0100000000000001") != NULL, "%s",
        err->message);
    g_error_free (err);
    fail_if (fd_is_open (fd));
  }
}

GST_END_TEST;

/* The implicit modifier: only an importer (whose driver knows the layout
 * the exporter meant) gets it; mapping it could be a wrong picture. */
GST_START_TEST (test_dmabuf_implicit)
{
  HxexClientSurface *s = new_surface (HXEX_KIND_DMABUF,
      HXEX_DRM_FORMAT_MOD_INVALID);
  GError *err = NULL;
  GstBuffer *buf;

  fail_unless (hxfr_surface_wrap (s, HXFR_SURFACE_MAPPED, NULL, &err) == NULL);
  fail_unless (g_error_matches (err, HXFR_SURFACE_ERROR,
          HXFR_SURFACE_ERROR_MODIFIER));
  fail_unless (strstr (err->message, "0x00ffffffffffffff") != NULL, "%s",
      err->message);
  g_clear_error (&err);

  s = new_surface (HXEX_KIND_DMABUF, HXEX_DRM_FORMAT_MOD_INVALID);
  buf = hxfr_surface_wrap (s, HXFR_SURFACE_IMPORTED, NULL, &err);
  fail_unless (buf != NULL, "%s", err ? err->message : "");
  fail_unless (gst_is_dmabuf_memory (gst_buffer_peek_memory (buf, 0)));
  gst_buffer_unref (buf);
}

GST_END_TEST;

/* What no frame can be: refused before anything reads it. */
GST_START_TEST (test_bad_layout)
{
  struct
  {
    const gchar *what;
    guint32 fourcc, width, n_planes, stride, size;
  } cases[] = {
    {"unknown format", GST_MAKE_FOURCC ('Y', 'U', 'Y', 'V'), W, 1, STRIDE,
        SIZE},
    {"zero width", AR24, 0, 1, STRIDE, SIZE},
    {"too wide", AR24, 20000, 1, STRIDE, SIZE},
    {"two planes", AR24, W, 2, STRIDE, SIZE},
    {"stride under a row", AR24, W, 1, W * 4 - 4, SIZE},
    {"rows past the end", AR24, W, 1, STRIDE, SIZE - 1},
  };
  guint i;

  for (i = 0; i < G_N_ELEMENTS (cases); i++) {
    HxexClientSurface *s = new_surface (HXEX_KIND_READBACK_SLOT, 0);
    GError *err = NULL;

    s->fourcc = cases[i].fourcc;
    s->width = cases[i].width;
    s->n_planes = cases[i].n_planes;
    s->stride[0] = cases[i].stride;
    s->size = cases[i].size;
    fail_unless (hxfr_surface_wrap (s, HXFR_SURFACE_MAPPED, NULL, &err) == NULL,
        "%s was wrapped", cases[i].what);
    fail_unless (g_error_matches (err, HXFR_SURFACE_ERROR,
            HXFR_SURFACE_ERROR_LAYOUT), "%s: %s", cases[i].what,
        err ? err->message : "no error");
    fail_unless (strstr (err->message, "resource 42") != NULL);
    g_error_free (err);
  }
}

GST_END_TEST;

#ifndef __APPLE__
GST_START_TEST (test_iosurface_unsupported)
{
  HxexClientSurface *s = new_surface (HXEX_KIND_READBACK_SLOT, 0);
  GError *err = NULL;

  s->kind = HXEX_KIND_IOSURFACE;
  fail_unless (hxfr_surface_wrap (s, HXFR_SURFACE_MAPPED, NULL, &err) == NULL);
  fail_unless (g_error_matches (err, HXFR_SURFACE_ERROR,
          HXFR_SURFACE_ERROR_UNSUPPORTED));
  g_error_free (err);
}

GST_END_TEST;
#endif

static Suite *
surface_suite (void)
{
  Suite *s = suite_create ("surface");
  TCase *tc = tcase_create ("general");

  suite_add_tcase (s, tc);
  tcase_add_test (tc, test_readback_slot);
  tcase_add_test (tc, test_dmabuf_linear);
  tcase_add_test (tc, test_dmabuf_tiled_refused);
  tcase_add_test (tc, test_dmabuf_implicit);
  tcase_add_test (tc, test_bad_layout);
#ifndef __APPLE__
  tcase_add_test (tc, test_iosurface_unsupported);
#endif
  return s;
}

GST_CHECK_MAIN (surface);
