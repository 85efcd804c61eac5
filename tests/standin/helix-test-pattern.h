/* The moving BGRA test content the stand-in VMM renders into its resources,
 * shared with bench-readback so that its limit does the same work per frame.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#pragma once

#include <glib.h>

/* Frame @frame of the pattern, @width x @height BGRA rows of width * 4:
 * B = x + 4 frame, G = y + 2 frame, R = (x ^ y) + frame, A = 255 (each mod
 * 256). Written a pixel word at a time: byte stores took 2.5 ms a 1080p
 * frame, CPU the stand-in VMM took from the bridge it is measuring. */
static inline void
helix_test_pattern_fill (guint8 * p, guint32 width, guint32 height,
    guint32 frame)
{
  guint32 x, y;

  for (y = 0; y < height; y++) {
    guint32 *row = (guint32 *) (p + (gsize) y * width * 4);
    guint32 green = ((y + 2 * frame) & 255) << 8;

    for (x = 0; x < width; x++)
      row[x] = GUINT32_TO_LE (0xff000000u | ((((x ^ y) + frame) & 255) << 16)
          | green | ((x + 4 * frame) & 255));
  }
}

/* Cursor image @serial of the stand-in VMM, pixel (x, y), as an ARGB8888
 * word (B G R A in memory): b0 = x * 4, b1 = y * 4, b2 = serial, alpha
 * 255 on the left half and 128 on the right (so a blend shows). */
static inline guint32
helix_test_cursor_pixel (guint32 x, guint32 y, guint32 width, guint32 serial)
{
  guint32 a = x < width / 2 ? 255 : 128;

  return (a << 24) | ((serial & 255) << 16) | (((y * 4) & 255) << 8)
      | ((x * 4) & 255);
}
