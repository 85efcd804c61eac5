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

/* Serves the renderer's resources on the UNIX socket @path. Call once
 * virglrenderer is up (after virgl_renderer_init succeeded). */
HelixQemu *helix_qemu_start (const char *path, HelixQemuResourceAlive alive,
    void *opaque, Error ** errp);
/* The guest destroyed @resource_id (after virgl_renderer_resource_unref). */
void helix_qemu_resource_destroyed (HelixQemu * hq, uint32_t resource_id);
/* virgl_renderer_reset() ran: every resource of the guest is gone. */
void helix_qemu_renderer_reset (HelixQemu * hq);
/* Disconnects the bridge's connections and removes the socket. Call
 * before virgl_renderer_cleanup(). NULL is fine. */
void helix_qemu_stop (HelixQemu * hq);

#endif
