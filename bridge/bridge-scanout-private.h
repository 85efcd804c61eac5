/* Inside the scanout code: what bridge-scanout.c (the VM, its scanouts and
 * their encoders) and bridge-subscriber.c (one client connection) share.
 *
 * Locks: BridgeVm.lock guards every Scanout field marked "vm lock" and
 * each Subscriber's scanout; Subscriber.lock guards its output queue and
 * what it was sent. Order: BridgeVm.lock, then Subscriber.lock.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#pragma once

#include "bridge-scanout.h"
#include "hxfr-export-client.h"
#include "hxfr-export-watch.h"
#include "hxfr-scanout.h"

G_BEGIN_DECLS

#define BRIDGE_MAX_SCANOUTS 16
/* encoders per scanout: one per codec its subscribers ask for */
#define BRIDGE_MAX_RENDITIONS 4

typedef struct _Scanout Scanout;
typedef struct _Rendition Rendition;
typedef struct _Subscriber Subscriber;

/* One access unit, shared by every subscriber it is sent to. */
typedef struct
{
  GBytes *au;
  gboolean keyframe;
  gboolean repeat;              /* the screen had not changed */
  guint32 width, height;
  guint64 capture_ns;           /* CLOCK_MONOTONIC of the flush */
  guint64 index;                /* per-scanout frame counter */
  guint32 encode_us;
} EncodedFrame;

EncodedFrame *bridge_encoded_frame_ref (EncodedFrame * f);
void bridge_encoded_frame_unref (EncodedFrame * f);

struct _Subscriber
{
  gint refcount;
  BridgeVm *vm;
  guint id;
  HxfrConn *conn;
  gchar *peer;                  /* hxfr_conn_get_peer_identity () */
  gboolean v2;
  gboolean proven;              /* presented the listener's token */
  guint16 session_id;           /* echoed in the headers we send */

  /* vm lock */
  Scanout *scanout;             /* NULL: not subscribed */
  Rendition *rendition;         /* its encoder, when subscribed */
  guint32 codec;                /* of that encoder (HXFR_CODEC_*) */
  guint32 scanout_index;        /* of scanout, once subscribed */

  /* Subscriber.lock: the writer's queue and what this subscriber was sent */
  GMutex lock;
  GCond cond;
  GQueue out;                   /* Outgoing* */
  guint out_frames;
  gboolean waiting_idr;         /* skip until an IDR */
  gboolean idr_owed;            /* the writer skipped stale frames: the next
                                 * offer asks the encoder for an IDR */
  gboolean discont;             /* frames were skipped since the last sent */
  guint32 seq;
  /* deployed pts / 16 666 667: the scanout's flip count at its first
   * frame, then one per frame offered to it, so a gap is only a frame it
   * lost (never one the encoder replaced by a newer flip); 0 = none yet */
  guint64 deployed_frame;
  guint64 first_capture_ns;     /* v2 pts origin; 0 = no frame yet */
  guint64 frames_sent, frames_skipped, frames_dropped;
  gboolean closing;             /* nothing more is queued; the writer ends */
  gboolean writer_done;
  gchar *end_reason;            /* why, once known (first one wins) */
  /* the cursor plane (v2, asked for): the latest image and position not
   * sent yet, coalesced to one of each (bridge_subscriber_offer_cursor) */
  gboolean cursor;              /* asked for and subscribed */
  gboolean cursor_on;           /* its SUBSCRIBE2_ACK went out */
  GBytes *cursor_pixels;        /* an image to send, or NULL */
  HxfrCursorImage cursor_image;
  gboolean cursor_pos_pending;
  HxfrCursorPosition cursor_pos;
  gint64 t_cursor_sent;         /* the last cursor message */
  guint64 cursor_images_sent, cursor_positions_sent;
  GThread *writer;
};

/* Subscriber output (bridge-subscriber.c) */
typedef enum
{
  BRIDGE_SUBSCRIBER_QUEUED,            /* it will be sent */
  BRIDGE_SUBSCRIBER_SKIPPED,           /* not sent: it waits for an IDR */
  BRIDGE_SUBSCRIBER_NEEDS_IDR,         /* not sent: it lags; ask for an IDR */
} BridgeSubscriberOffer;

/* The whole skip policy: @f is queued for @sub, or skipped because it
 * waits for an IDR, or it lags (its queue is full, or frames waited in it
 * too long) and from now on it waits for an IDR, which the caller asks
 * for. vm lock held (the subscriber list @sub is on). */
BridgeSubscriberOffer bridge_subscriber_offer_frame (Subscriber * sub, EncodedFrame * f);
/* A new subscription, or (@same_stream) the same one served by another
 * encoder from now on: nothing is sent until an IDR; the same stream keeps
 * its timestamps going. */
void bridge_subscriber_start (Subscriber * sub, gboolean same_stream);
/* The cursor plane changed: @pixels (NULL: no new image) with @image,
 * and/or @pos (NULL: not moved), for a subscriber that asked for it (any
 * other: nothing). What is not sent yet is replaced, never queued: a
 * subscriber holds at most one image and one position. vm lock held. */
void bridge_subscriber_offer_cursor (Subscriber * sub, GBytes * pixels,
    const HxfrCursorImage * image, const HxfrCursorPosition * pos);
/* Ends the subscription from the VM's side: v2 subscribers are sent
 * SCANOUT_END @reason first; the connection is then closed, which ends
 * bridge_vm_serve() for it. vm lock held. */
void bridge_subscriber_end (Subscriber * sub, guint32 reason, const gchar * text);

/* The VM side (bridge-scanout.c): each call takes the VM's lock itself */
const BridgeScanoutConfig *bridge_vm_config (BridgeVm * vm);

/* A subscription asked for, and what became of it */
typedef struct
{
  guint32 index;
  gboolean v2;
  guint32 codec;                /* HXFR_CODEC_* */
  guint32 bitrate;              /* 0: the host's default */
  guint32 max_width, max_height;        /* scaled down to fit; 0: as shown */
  gboolean cursor;              /* v2: the cursor plane asked for (and, when
                                 * granted, given) */
  gboolean draw_cursor;         /* v2: the pointer drawn into the frames */
  gboolean again;               /* out: already there: nothing changed, no
                                 * new IDR */
  guint32 width, height;        /* out: what the scanout shows now */
  const gchar *encoder;         /* out: the encoder's name, granted */
  gint32 code;                  /* out, refused: the HXFR error code */
  gchar *text;                  /* out, refused: why (g_free it) */
} BridgeSubscription;

/* Queues the answer to a subscription (@ok: granted); FALSE if it could
 * not be queued. Called under the VM's lock. */
typedef gboolean (*BridgeSubscriptionAnswer) (Subscriber * sub,
    const BridgeSubscription * s, gboolean ok);

/* Subscribes @sub to scanout @s->index in @s->codec: the scanout's encoder
 * of that codec, started for it if there is none yet (refused: NO_SCANOUT,
 * TOO_MANY_SESSIONS, UNSUPPORTED: no encoder for the codec, LIMIT: the
 * scanout has BRIDGE_MAX_RENDITIONS encoders). The answer is queued by
 * @answer under the VM's lock, before the first frame can be: an IDR, the
 * encoder's last one again if nothing was encoded since, else a new one
 * within its IDR limit. Returns whether it was granted; *@queued: what
 * @answer returned. */
gboolean bridge_vm_subscribe (Subscriber * sub, BridgeSubscription * s,
    BridgeSubscriptionAnswer answer, gboolean * queued);
void bridge_vm_unsubscribe (Subscriber * sub);
gboolean bridge_vm_is_subscribed (Subscriber * sub);
/* KEYFRAME_REQ: an IDR within the encoder's limit (none if not
 * subscribed) */
void bridge_vm_request_idr (Subscriber * sub);
/* CONFIG_REQ, CONTROL: @bitrate (bit/s, > 0) for the encoder @sub is on,
 * applied before its next frame; the last one asked applies to every
 * subscriber of that encoder (nothing if not subscribed) */
void bridge_vm_set_bitrate (Subscriber * sub, guint32 bitrate);
/* Enables or disables a scanout through the VMM (a hotplug); blocks up to
 * a few seconds. vm lock NOT held. */
gboolean bridge_vm_set_enabled (BridgeVm * vm, guint32 index,
    gboolean enable, guint32 width, guint32 height, guint32 refresh,
    GError ** error);
/* Starts the watch on the first call; waits (bounded) for its first
 * attempt to connect. */
void bridge_vm_ensure_watching (BridgeVm * vm);

G_END_DECLS
