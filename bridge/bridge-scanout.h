/* Scanout subscriptions: the bridge encodes what a VM's virtio-gpu
 * scanouts show, on every flush, and pushes the access units to the guest
 * processes that subscribed (docs/protocol.md section 11; deployed helix
 * clients as ../shared/PROTOCOL-scanout.md describes them).
 *
 * One BridgeVm per helix export (one VM): a watch on the export tells it
 * which resource each scanout shows and when it is flushed. Each scanout
 * with subscribers has one encoder thread, shared by all of them: at most
 * one frame in the encoder (a newer flush replaces a waiting one), an IDR
 * for every new subscriber, a re-encode of the last image after a quiet
 * interval. A subscriber that cannot keep up skips frames up to the next
 * IDR, never a single P-frame.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#pragma once

#include <gst/gst.h>
#include "hxfr-transport.h"
#include "bridge-encoder.h"

G_BEGIN_DECLS

typedef struct _BridgeVm BridgeVm;

typedef struct
{
  /* per codec (bridge_codec_index()): its encoder (name NULL: none; for
   * H.264 BRIDGE_ENCODER_NULL with --encoder null), or why there is none */
  BridgeEncoderChoice encoders[BRIDGE_N_CODECS];
  const gchar *no_encoder[BRIDGE_N_CODECS];
  guint32 bitrate;              /* bit/s until a subscriber asks for one */
  gint64 quiet_interval_us;     /* re-encode a static screen; 0: never */
  guint max_subscribers_per_scanout;
  guint queue_frames;           /* frames one subscriber may have queued */
  guint32 max_width, max_height;        /* ENABLE_SCANOUT sizes accepted */
  gint64 idle_timeout_us;       /* a begun message must arrive within it */
  gint64 write_timeout_us;      /* a subscriber taking no bytes for this
                                 * long is ended (it does not read) */
  GBytes *token;                /* v2 subscriptions must present it, or NULL */
  void (*log) (const gchar * format, ...) G_GNUC_PRINTF (1, 2);
  /* a line about a client that presented no token: rate-limited per
   * @peer and in total (NULL: log) */
  void (*log_unproven) (const gchar * peer, const gchar * line);
} BridgeScanoutConfig;

/* Starts watching the export at @export_path (a UNIX socket path),
 * reconnecting with back-off while the VMM is not there. @cfg is copied
 * (the token referenced). */
BridgeVm *bridge_vm_new (const gchar * export_path,
    const BridgeScanoutConfig * cfg);
const gchar *bridge_vm_get_export_path (BridgeVm * vm);
/* Ends every subscription (v2 subscribers get SCANOUT_END, SHUTDOWN) and
 * stops the encoders; bridge_vm_serve() calls return soon after. */
void bridge_vm_stop (BridgeVm * vm);
/* After bridge_vm_stop() and after every bridge_vm_serve() returned. */
void bridge_vm_free (BridgeVm * vm);

typedef struct
{
  guint subscribers;            /* now */
  guint64 frames_encoded;
  guint64 frames_sent;
  guint64 frames_skipped;       /* not sent: subscriber waiting for an IDR */
} BridgeVmStats;

void bridge_vm_get_stats (BridgeVm * vm, BridgeVmStats * stats);

G_END_DECLS
