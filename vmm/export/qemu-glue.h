/* QEMU glue for the helix export (qemu-glue.c). Built inside QEMU by the
 * helix series (vmm/qemu/): hw/display/virtio-gpu-gl.c and
 * virtio-gpu-virgl.c call these from the main loop thread, which owns
 * virglrenderer.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#ifndef HELIX_QEMU_GLUE_H
#define HELIX_QEMU_GLUE_H

typedef struct HelixQemu HelixQemu;

/* Is @resource_id a resource the guest created and has not destroyed? */
typedef bool (*HelixQemuResourceAlive) (void *opaque, uint32_t resource_id);
/* Connect (a hotplug, @width x @height the preferred mode) or disconnect
 * output @index; false: refused. */
typedef bool (*HelixQemuSetScanoutEnabled) (void *opaque, uint32_t index,
    bool enable, uint32_t width, uint32_t height, uint32_t refresh_hz);

/* What the export needs of the device (virtio-gpu-gl) */
typedef struct
{
  HelixQemuResourceAlive resource_alive;        /* NULL: the renderer decides */
  HelixQemuSetScanoutEnabled set_scanout_enabled;       /* NULL: none */
  uint32_t n_scanouts;          /* max_outputs; 0: no scanouts reported */
  uint32_t enabled_mask;        /* outputs connected now, bit N = scanout N */
  void *opaque;
} HelixQemuDevice;

/* Serves the renderer's resources on the UNIX socket @path, and reports
 * the device's scanouts. Call once virglrenderer is up (after
 * virgl_renderer_init succeeded). */
HelixQemu *helix_export_qemu_start (const char *path, const HelixQemuDevice * dev,
    Error ** errp);
/* The guest destroyed @resource_id (after virgl_renderer_resource_unref). */
void helix_export_qemu_resource_destroyed (HelixQemu * hq, uint32_t resource_id);
/* virgl_renderer_reset() ran: every resource of the guest is gone. */
void helix_export_qemu_renderer_reset (HelixQemu * hq);
/* SET_SCANOUT(_BLOB) done: scanout @index shows @resource_id (0: nothing)
 * of @width x @height in @virgl_format (virtio-gpu formats share the
 * numbers). */
void helix_export_qemu_scanout_set (HelixQemu * hq, uint32_t index,
    uint32_t resource_id, uint32_t width, uint32_t height,
    uint32_t virgl_format);
/* RESOURCE_FLUSH of @resource_id, shown on scanout @index */
void helix_export_qemu_scanout_flush (HelixQemu * hq, uint32_t index,
    uint32_t resource_id, uint32_t x, uint32_t y, uint32_t width,
    uint32_t height);
/* UPDATE_CURSOR with a resource: scanout @index's pointer image is now
 * @data (ARGB8888 words, @width x @height, QEMU's QEMUCursor), hotspot
 * @hot_x, @hot_y. */
void helix_export_qemu_cursor_define (HelixQemu * hq, uint32_t index,
    uint32_t width, uint32_t height, int hot_x, int hot_y,
    const uint32_t * data);
/* UPDATE_CURSOR or MOVE_CURSOR: the pointer of scanout @index is at @x,
 * @y, shown when @visible (the command named a cursor resource). */
void helix_export_qemu_cursor_move (HelixQemu * hq, uint32_t index, bool visible,
    uint32_t x, uint32_t y);
/* Device reset: no scanout shows anything, only @enabled_mask is
 * connected. */
void helix_export_qemu_scanouts_reset (HelixQemu * hq, uint32_t enabled_mask);
/* Disconnects the bridge's connections and removes the socket. Call
 * before virgl_renderer_cleanup(). NULL is fine. */
void helix_export_qemu_stop (HelixQemu * hq);

#endif
