/* vm-psnr W H EXPECTED.i420 GOT.i420: luma PSNR of each frame of GOT
 * against the same frame of EXPECTED; prints "frames_expected=",
 * "frames_got=", "min_psnr=" and "avg_psnr=" (dB, 99 for identical).
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include <glib.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

int
main (int argc, char **argv)
{
  gchar *a = NULL, *b = NULL;
  gsize na, nb, w, h, frame, fa, fb, n, i, p;
  double minp = 99, sum = 0;

  if (argc != 5) {
    fprintf (stderr, "usage: vm-psnr W H EXPECTED GOT\n");
    return 64;
  }
  w = strtoul (argv[1], NULL, 10);
  h = strtoul (argv[2], NULL, 10);
  frame = w * h + 2 * ((w + 1) / 2) * ((h + 1) / 2);
  if (!g_file_get_contents (argv[3], &a, &na, NULL)
      || !g_file_get_contents (argv[4], &b, &nb, NULL)) {
    fprintf (stderr, "vm-psnr: cannot read the inputs\n");
    return 1;
  }
  fa = na / frame;
  fb = nb / frame;
  n = MIN (fa, fb);
  for (i = 0; i < n; i++) {
    const guint8 *ya = (const guint8 *) a + i * frame;
    const guint8 *yb = (const guint8 *) b + i * frame;
    double se = 0, psnr;

    for (p = 0; p < w * h; p++) {
      int d = ya[p] - yb[p];
      se += d * d;
    }
    psnr = se == 0 ? 99 : 10 * log10 (255.0 * 255.0 * w * h / se);
    minp = MIN (minp, psnr);
    sum += psnr;
  }
  printf ("frames_expected=%zu\nframes_got=%zu\nmin_psnr=%.2f\navg_psnr=%.2f\n",
      fa, fb, n ? minp : 0, n ? sum / n : 0);
  g_free (a);
  g_free (b);
  return 0;
}
