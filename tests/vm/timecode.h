/* timecode.h: a 32-bit value drawn into a frame as a row of black and
 * white blocks across its top, and read back from a decoded picture's
 * luma: the vm-test desktop's guest draw times (the guest's
 * CLOCK_MONOTONIC in µs, modulo 2^32), drawn by tests/vm/desk-client.c
 * and read by tests/vm/desk-latency.c.
 *
 * TIMECODE_BITS blocks, each width / TIMECODE_BITS wide and height / 40
 * high (above the rows that judge.py's pattern check samples): the
 * value's 32 bits, most significant first, then 8 check bits (the sum of
 * its four bytes, xor 0xa5); white is 1. Blocks of 20x15 pixels at
 * 800x600 come through H.264 at the bridge's default bitrate.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#ifndef TIMECODE_H
#define TIMECODE_H

#include <stdint.h>

#define TIMECODE_BITS 40

static inline uint64_t
timecode_bits (uint32_t v)
{
  uint32_t check = ((v >> 24) + ((v >> 16) & 0xff) + ((v >> 8) & 0xff) +
      (v & 0xff)) ^ 0xa5;

  return ((uint64_t) v << 8) | (check & 0xff);
}

/* Draws V into the top rows of an XRGB8888 frame of W x H (stride W). */
static inline void
timecode_draw (uint32_t * xrgb, unsigned w, unsigned h, uint32_t v)
{
  uint64_t bits = timecode_bits (v);

  for (unsigned y = 0; y < h / 40; y++) {
    uint32_t *row = xrgb + (size_t) y * w;

    for (unsigned i = 0; i < TIMECODE_BITS; i++) {
      uint32_t px = (bits >> (TIMECODE_BITS - 1 - i)) & 1 ?
          0xffffffffu : 0xff000000u;

      for (unsigned x = i * w / TIMECODE_BITS;
          x < (i + 1) * w / TIMECODE_BITS; x++)
        row[x] = px;
    }
  }
}

/* Reads the value from a luma plane of W x H (STRIDE bytes a row): each
 * block's middle row, three pixels at its middle. 0 and *v set if the
 * check bits agree, -1 if not (no code, or damaged). */
static inline int
timecode_read (const uint8_t * luma, unsigned stride, unsigned w,
    unsigned h, uint32_t * v)
{
  const uint8_t *row = luma + (size_t) (h / 80) * stride;
  uint64_t bits = 0;

  if (w < 3 * TIMECODE_BITS || h < 80)
    return -1;
  for (unsigned i = 0; i < TIMECODE_BITS; i++) {
    unsigned x = i * w / TIMECODE_BITS + w / (2 * TIMECODE_BITS);

    bits = (bits << 1) | (row[x - 1] + row[x] + row[x + 1] > 3 * 128);
  }
  if (timecode_bits ((uint32_t) (bits >> 8)) != bits)
    return -1;
  *v = (uint32_t) (bits >> 8);
  return 0;
}

#endif
