/* What virglrenderer's installed header leaves out and the helix export,
 * the stand-in VMM and bench-readback all need: the layout of struct
 * virgl_box (declared there, defined only in its sources; QEMU defines the
 * same), and the virgl_hw.h values we use. One copy, so that they cannot
 * drift apart.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#pragma once

#include <stdint.h>

struct virgl_box
{
  uint32_t x, y, z;
  uint32_t w, h, d;
};

#define PIPE_TEXTURE_2D 2

/* the formats the export carries */
#define VIRGL_FORMAT_B8G8R8A8_UNORM 1
#define VIRGL_FORMAT_B8G8R8X8_UNORM 2
#define VIRGL_FORMAT_R8G8B8A8_UNORM 67
#define VIRGL_FORMAT_R8G8B8X8_UNORM 134

#define VIRGL_BIND_RENDER_TARGET (1 << 1)
#define VIRGL_BIND_SAMPLER_VIEW (1 << 3)
#define VIRGL_BIND_SCANOUT (1 << 18)
#define VIRGL_BIND_SHARED (1 << 20)
