/* bench-readback: the raw virgl_renderer_transfer_read_iov rate, the limit
 * of the zero-copy scenario's shared-memory readback path.
 *
 * Starts virglrenderer as helix-standin-vmm does (surfaceless EGL, Mesa
 * llvmpipe on a machine without a GPU), creates the same kind of resource
 * (a 2D BGRx/BGRA texture a guest compositor scans out), writes one frame
 * into it, then reads it back --frames times into one buffer, as the helix
 * export does into a readback slot, and nothing else. With --render, each
 * frame first does what helix-standin-vmm does for every frame it sends
 * (fill the "guest memory" with its test pattern, transfer_write_iov): the
 * limit of the zero-copy scenario, whose guest is the stand-in VMM. Prints
 * one JSON object like bench-guest's: fps, p50/p99 of one frame (ms), CPU
 * seconds per frame.
 *
 * Exit status 77: virglrenderer could not start here.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>

#include <glib.h>
#include <virgl/virglrenderer.h>

#include "helix-test-pattern.h"
#include "helix-virgl-defs.h"
#include "bench-cpu.h"

#define EXIT_NO_RENDERER 77

static void
write_fence (void *cookie, uint32_t fence)
{
}

static struct virgl_renderer_callbacks virgl_cbs = {
  .version = 1,
  .write_fence = write_fence,
};

static int
cmp_double (const void *a, const void *b)
{
  gdouble x = *(const gdouble *) a, y = *(const gdouble *) b;

  return x < y ? -1 : x > y;
}

int
main (int argc, char **argv)
{
  gint width = 1920, height = 1080, frames = 200, warmup = 10, i;
  gboolean render = FALSE;
  GOptionEntry entries[] = {
    {"render", 0, 0, G_OPTION_ARG_NONE, &render,
        "Write each frame first, as helix-standin-vmm does", NULL},
    {"width", 0, 0, G_OPTION_ARG_INT, &width, "Resource width", "PX"},
    {"height", 0, 0, G_OPTION_ARG_INT, &height, "Resource height", "PX"},
    {"frames", 0, 0, G_OPTION_ARG_INT, &frames, "Readbacks timed", "N"},
    {NULL}
  };
  GOptionContext *ctx = g_option_context_new ("- virglrenderer readback "
      "rate");
  GError *err = NULL;
  struct virgl_renderer_resource_create_args args;
  struct virgl_box box;
  struct iovec backing, slot;
  static int cookie;
  gdouble *lat, cpu0 = 0;
  gint64 t0 = 0, t1;
  gsize size;
  int ret;

  g_option_context_add_main_entries (ctx, entries, NULL);
  if (!g_option_context_parse (ctx, &argc, &argv, &err) || frames < 1
      || width < 1 || height < 1 || width > 8192 || height > 8192) {
    fprintf (stderr, "bench-readback: %s\n", err ? err->message :
        "bad size or frame count");
    return 2;
  }
  g_option_context_free (ctx);

  g_setenv ("EGL_PLATFORM", "surfaceless", FALSE);
  ret = virgl_renderer_init (&cookie, VIRGL_RENDERER_USE_EGL |
      VIRGL_RENDERER_USE_SURFACELESS, &virgl_cbs);
  if (ret != 0)
    ret = virgl_renderer_init (&cookie, VIRGL_RENDERER_USE_EGL |
        VIRGL_RENDERER_USE_SURFACELESS | VIRGL_RENDERER_USE_GLES, &virgl_cbs);
  if (ret != 0) {
    fprintf (stderr, "bench-readback: virglrenderer could not start: %s\n",
        g_strerror (ABS (ret)));
    return EXIT_NO_RENDERER;
  }

  memset (&args, 0, sizeof (args));
  args.handle = 1;
  args.target = PIPE_TEXTURE_2D;
  args.format = VIRGL_FORMAT_B8G8R8X8_UNORM;
  args.bind = VIRGL_BIND_RENDER_TARGET | VIRGL_BIND_SAMPLER_VIEW |
      VIRGL_BIND_SCANOUT | VIRGL_BIND_SHARED;
  args.width = width;
  args.height = height;
  args.depth = 1;
  args.array_size = 1;
  ret = virgl_renderer_resource_create (&args, NULL, 0);
  if (ret != 0) {
    fprintf (stderr, "bench-readback: resource_create: %s\n",
        g_strerror (ABS (ret)));
    return 1;
  }
  size = ((gsize) width) * height * 4;
  backing.iov_base = g_malloc (size);
  backing.iov_len = size;
  for (i = 0; i < (gint) size; i++)
    ((guint8 *) backing.iov_base)[i] = (guint8) (i * 7);
  ret = virgl_renderer_resource_attach_iov (1, &backing, 1);
  box = (struct virgl_box) {
    0, 0, 0, width, height, 1
  };
  if (ret == 0)
    ret = virgl_renderer_transfer_write_iov (1, 0, 0, width * 4, 0,
        &box, 0, NULL, 0);
  if (ret != 0) {
    fprintf (stderr, "bench-readback: attach/write: %s\n",
        g_strerror (ABS (ret)));
    return 1;
  }

  slot.iov_base = g_malloc (size);
  slot.iov_len = size;
  lat = g_new (gdouble, frames);
  virgl_renderer_force_ctx_0 ();
  for (i = -warmup; i < frames; i++) {
    gint64 a;

    if (i == 0) {
      t0 = g_get_monotonic_time ();
      cpu0 = bench_cpu_seconds ();
    }
    a = g_get_monotonic_time ();
    if (render) {
      helix_test_pattern_fill (backing.iov_base, width, height, i + warmup);
      ret = virgl_renderer_transfer_write_iov (1, 0, 0, width * 4, 0, &box,
          0, NULL, 0);
      if (ret != 0) {
        fprintf (stderr, "bench-readback: transfer_write_iov: %s\n",
            g_strerror (ABS (ret)));
        return 1;
      }
    }
    ret = virgl_renderer_transfer_read_iov (1, 0, 0, width * 4, 0,
        &box, 0, &slot, 1);
    if (ret != 0) {
      fprintf (stderr, "bench-readback: transfer_read_iov: %s\n",
          g_strerror (ABS (ret)));
      return 1;
    }
    if (i >= 0)
      lat[i] = (g_get_monotonic_time () - a) / 1e3;
  }
  t1 = g_get_monotonic_time ();
  qsort (lat, frames, sizeof (gdouble), cmp_double);
  printf ("{\"frames\": %d, \"seconds\": %.6f, \"fps\": %.3f, "
      "\"p50_ms\": %.4f, \"p99_ms\": %.4f, \"cpu_s_per_frame\": %.9f, "
      "\"bytes_per_frame\": 0, \"latencies_ms\": [", frames,
      (t1 - t0) / 1e6, frames / ((t1 - t0) / 1e6),
      lat[frames / 2], lat[MIN (frames * 99 / 100, frames - 1)],
      (bench_cpu_seconds () - cpu0) / frames);
  for (i = 0; i < frames; i++)
    printf ("%s%.4f", i ? ", " : "", lat[i]);
  printf ("]}\n");
  return 0;
}
