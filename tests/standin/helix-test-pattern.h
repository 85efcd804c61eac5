/* The moving BGRA test content the stand-in VMM renders into its resources,
 * shared with bench-readback so that its limit does the same work per frame.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#pragma once

#include <glib.h>

/* Frame @frame of the pattern, @width x @height BGRA rows of width * 4. */
static inline void
helix_test_pattern_fill (guint8 * p, guint32 width, guint32 height,
    guint32 frame)
{
  guint32 x, y;

  for (y = 0; y < height; y++) {
    guint8 *row = p + (gsize) y * width * 4;

    for (x = 0; x < width; x++) {
      row[4 * x + 0] = (x + 4 * frame) & 255;
      row[4 * x + 1] = (y + 2 * frame) & 255;
      row[4 * x + 2] = ((x ^ y) + frame) & 255;
      row[4 * x + 3] = 255;
    }
  }
}
