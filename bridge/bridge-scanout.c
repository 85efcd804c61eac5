/* Scanout subscriptions, the VM side: the export watch, one encoder thread
 * per subscribed scanout, and the fan-out of its access units. See
 * bridge-scanout.h; the client side is bridge-subscriber.c.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "bridge-scanout-private.h"
#include "bridge-convert.h"
#include "hxfr-video.h"
#include "hxfr-surface.h"
#include "bridge-pipeline.h"

#include <gst/app/gstappsrc.h>
#include <gst/app/gstappsink.h>
#include <gst/video/video.h>

GST_DEBUG_CATEGORY_STATIC (scanout_debug);
#define GST_CAT_DEFAULT scanout_debug

#define WATCH_TIMEOUT_US (2 * G_USEC_PER_SEC)
#define WATCH_BACKOFF_MIN_US (100 * 1000)
#define WATCH_BACKOFF_MAX_US (2 * G_USEC_PER_SEC)
#define RESOLVE_TIMEOUT_US (2 * G_USEC_PER_SEC)
/* the encoder must answer a frame within this, else the scanout's
 * subscribers are ended (ENCODER) */
#define ENCODE_TIMEOUT_US (5 * G_USEC_PER_SEC)
/* frames given to one encoder and not yet out: one being encoded, one
 * converted and waiting for it, one being converted (a flip never waits
 * for a conversion); a newer converted frame replaces the one waiting, so
 * the encoder always takes the latest flip (bridge-pipeline.h) */
#define ENCODER_DEPTH 3
/* an IDR asked for by a new, lagging or requesting subscriber: at most
 * this often per scanout, whoever asks, so that no client can make the
 * others receive more (a new subscriber is sent the last IDR again when
 * nothing was encoded since) */
#define IDR_REQUEST_INTERVAL_US (250 * 1000)
/* hotplugs (ENABLE/DISABLE_SCANOUT) of one scanout: at most one per this
 * (a later one waits); the same one again, while the VMM still reports
 * it done, is a no-op */
#define HOTPLUG_INTERVAL_US (500 * 1000)
/* a scanout without subscribers frees its encoder after this */
#define IDLE_TEARDOWN_US (5 * G_USEC_PER_SEC)
/* failures to read a scanout: one log line per this */
#define FAILURE_LOG_INTERVAL_US (10 * G_USEC_PER_SEC)
/* a scanout's size or format changes: at most one log line per this (a
 * guest flipping between sizes must not flood the log) */
#define FORMAT_LOG_INTERVAL_US (1 * G_USEC_PER_SEC)
/* the encoder's nominal rate: x264enc delays every frame by one in
 * variable-framerate mode */
#define NOMINAL_FPS 60

/* What subscribers asking the same share: one encoder */
typedef struct
{
  guint32 codec;
  guint32 bitrate;              /* bit/s, never 0 */
  guint32 max_width, max_height;        /* scaled down to fit; 0: as shown */
  gboolean draw_cursor;         /* the pointer composited into the frames */
} RenditionKey;

/* One encoder of a scanout and the subscribers it serves: one per key
 * asked for (at most BRIDGE_MAX_RENDITIONS per scanout; past that a
 * subscriber shares the nearest of its codec). */
struct _Rendition
{
  Scanout *so;

  /* vm lock */
  const BridgeEncoderChoice *encoder;   /* NULL: a free slot */
  RenditionKey key;
  GPtrArray *subscribers;       /* Subscriber*, not owned */
  gboolean want_idr;            /* the next frame is an IDR */
  gboolean idr_deferred;        /* asked for within the rate limit: owed */
  gint64 t_idr_requested;
  EncodedFrame *last_frame;     /* the encoder's latest output, or NULL */
  gint64 t_no_subscribers;

  /* encoder thread only */
  GstElement *pipeline, *appsrc, *encoder_element, *appsink;
  GstElement *size_filter;      /* scaled renditions only */
  guint32 codec;                /* of the pipeline */
  GstVideoInfo info;
  gboolean have_info;
  guint32 out_width, out_height;        /* what it encodes */
  guint32 bitrate_applied;
  /* the frames pushed whose access unit is not out yet, oldest first:
   * everything but the access unit filled in; and their PTS, by which an
   * access unit finds its frame (the ones before it were replaced) */
  EncodedFrame *in_flight[ENCODER_DEPTH];
  GstClockTime in_flight_pts[ENCODER_DEPTH];
  guint n_in_flight;
  /* what the encoder adds to the PTS (GstVideoEncoder's minimum PTS:
   * x264enc's output starts at 1000 h), learnt from its first access
   * unit, which is its first frame: until then it is given one at a time */
  GstClockTimeDiff pts_offset;
  gboolean have_pts_offset;
  gint64 t_oldest_pushed;
};

struct _Scanout
{
  BridgeVm *vm;
  guint32 index;

  /* vm lock */
  HxfrScanoutState state;
  guint n_subscribers;          /* of all its renditions */
  Rendition renditions[BRIDGE_MAX_RENDITIONS];
  gboolean flush_pending;
  guint32 pending_resource;
  guint64 pending_time_ns;
  /* the picture of that flush, copied by the VMM at the flush (export
   * version 4), or NULL: the resource is resolved when encoded. Only the
   * newest is kept: a later flush releases it (latest frame wins). */
  HxexClientSurface *pending_snapshot;
  gint64 t_last_encode;         /* 0: nothing encoded since the encoders
                                 * started */
  gint64 t_format_logged;
  guint format_changes_unlogged;
  gint64 t_hotplug;             /* the last hotplug asked of the VMM */
  guint32 hotplug_mode[3];      /* its width, height, refresh if it enabled */
  gboolean output_ready;        /* an encoder has an access unit out */
  /* the cursor plane as the VMM last reported it (export version 3) */
  GBytes *cursor_pixels;        /* NULL: no image yet */
  HxfrCursorImage cursor_image;
  gboolean cursor_placed;
  HxfrCursorPosition cursor_pos;
  gboolean cursor_dirty;        /* the pointer changed: frames with it drawn
                                 * are due */
  GThread *thread;

  /* encoder thread only */
  HxexClient *export;
  BridgeConvert *convert;       /* its frames as I420; NULL when idle */
  /* the last flush's picture as the VMM copied it, as I420, for repeats
   * and IDRs until the next flush: what the guest draws into the shown
   * buffer after its flush never goes out. NULL: none, or stale (a flush
   * without a copy). */
  GstBuffer *flushed_yuv;
  GstVideoInfo flushed_info;
  guint32 flushed_resource;
  guint64 frame_counter;
  gint64 t_failure_logged;
};

struct _BridgeVm
{
  gchar *export_path;
  BridgeScanoutConfig cfg;
  gint64 t0;                    /* its encoders' PTS 0, monotonic us */

  GMutex lock;
  GCond cond;                   /* scanout threads and the watch thread */
  gboolean stopping;
  HxexWatch *watch;             /* set and freed by the watch thread */
  guint watch_users;            /* bridge_vm_set_enabled() calls using it */
  gboolean watch_lost;
  gboolean watch_tried;         /* the first connection attempt is over */
  guint n_scanouts;             /* 0 until a watch has connected */
  /* the scanouts the VMM was asked to snapshot at the flush, on this
   * watch: those with subscribers (the watch thread tells it) */
  guint32 snapshot_mask_sent;
  Scanout scanouts[BRIDGE_MAX_SCANOUTS];
  GThread *watch_thread;
  BridgeVmStats stats;
};

/* vm lock held: an IDR soon from encoder @r, at most one per
 * IDR_REQUEST_INTERVAL_US per encoder, whoever asks (a request inside the
 * interval is kept, not lost) */
static void scanout_request_idr (Rendition * r);

EncodedFrame *
bridge_encoded_frame_ref (EncodedFrame * f)
{
  return g_atomic_rc_box_acquire (f);
}

static void
bridge_encoded_frame_clear (EncodedFrame * f)
{
  g_bytes_unref (f->au);
}

void
bridge_encoded_frame_unref (EncodedFrame * f)
{
  g_atomic_rc_box_release_full (f, (GDestroyNotify) bridge_encoded_frame_clear);
}

const BridgeScanoutConfig *
bridge_vm_config (BridgeVm * vm)
{
  return &vm->cfg;
}

const gchar *
bridge_vm_get_export_path (BridgeVm * vm)
{
  return vm->export_path;
}

/* Ends every subscriber of @r. vm lock held. */
static void
end_rendition (Rendition * r, guint32 reason, const gchar * text)
{
  guint i;

  for (i = 0; i < r->subscribers->len; i++)
    bridge_subscriber_end (g_ptr_array_index (r->subscribers, i), reason, text);
  g_clear_pointer (&r->last_frame, bridge_encoded_frame_unref);
}

/* Ends every subscriber of @so. vm lock held. */
static void
end_subscribers (Scanout * so, guint32 reason, const gchar * text)
{
  guint i;

  for (i = 0; i < BRIDGE_MAX_RENDITIONS; i++)
    end_rendition (&so->renditions[i], reason, text);
}

/* The watch's callbacks: the watch's reader thread */

/* What the guest's compositor scans out (size and DRM fourcc, as the VMM
 * reports them), when it changes; rate-limited. vm lock held. */
static void
log_format_change (BridgeVm * vm, Scanout * so, const HxfrScanoutState * st)
{
  gint64 now = g_get_monotonic_time ();
  gchar cc[5];
  guint i;

  if (so->t_format_logged && now - so->t_format_logged < FORMAT_LOG_INTERVAL_US) {
    so->format_changes_unlogged++;
    return;
  }
  for (i = 0; i < 4; i++) {
    guint8 c = (st->fourcc >> (8 * i)) & 0xff;

    cc[i] = g_ascii_isprint (c) ? c : '?';
  }
  cc[4] = 0;
  vm->cfg.log ("scanouts: scanout %u shows %ux%u %s (fourcc 0x%08x), "
      "resource %u%s", st->index, st->width, st->height, cc, st->fourcc,
      st->resource_id, so->format_changes_unlogged ? " (earlier changes "
      "not logged: more than one a second)" : "");
  so->format_changes_unlogged = 0;
  so->t_format_logged = now;
}

static void
on_scanout_state (gpointer user_data, const HxfrScanoutState * st)
{
  BridgeVm *vm = user_data;
  Scanout *so;
  gboolean was_enabled;

  if (st->index >= BRIDGE_MAX_SCANOUTS)
    return;
  g_mutex_lock (&vm->lock);
  so = &vm->scanouts[st->index];
  was_enabled = so->state.enabled;
  if (st->resource_id && (st->width != so->state.width ||
          st->height != so->state.height || st->fourcc != so->state.fourcc))
    log_format_change (vm, so, st);
  so->state = *st;
  if (was_enabled && !st->enabled)
    end_subscribers (so, HXFR_SCANOUT_END_DISABLED, "the scanout was "
        "disabled");
  g_cond_broadcast (&vm->cond);
  g_mutex_unlock (&vm->lock);
}

/* A flush, with its picture (@snapshot, taken) or without (NULL: resolved
 * when encoded). A newer flip replaces one still waiting for the encoder;
 * the snapshot replaced, or one nobody subscribes to, is released (after
 * the lock: a RELEASE is a write on the watch's socket). */
static void
note_flush (BridgeVm * vm, const HxfrScanoutFlush * f,
    HxexClientSurface * snapshot)
{
  HxexClientSurface *replaced = NULL;
  Scanout *so;

  if (f->index < BRIDGE_MAX_SCANOUTS && f->resource_id != 0) {
    g_mutex_lock (&vm->lock);
    so = &vm->scanouts[f->index];
    so->flush_pending = TRUE;
    so->pending_resource = f->resource_id;
    so->pending_time_ns = f->time_ns;
    replaced = so->pending_snapshot;
    so->pending_snapshot = NULL;
    if (so->n_subscribers) {
      so->pending_snapshot = snapshot;
      snapshot = NULL;
      g_cond_broadcast (&vm->cond);
    }
    g_mutex_unlock (&vm->lock);
  }
  hxex_client_surface_free (replaced);
  hxex_client_surface_free (snapshot);
}

static void
on_scanout_flush (gpointer user_data, const HxfrScanoutFlush * f)
{
  note_flush (user_data, f, NULL);
}

/* Export version 4: the flush with its picture as it was at the flush */
static void
on_scanout_snapshot (gpointer user_data, const HxfrScanoutFlush * f,
    HxexClientSurface * surface)
{
  note_flush (user_data, f, surface);
}

static void
on_watch_closed (gpointer user_data, const GError * why)
{
  BridgeVm *vm = user_data;
  guint i;

  g_mutex_lock (&vm->lock);
  if (!vm->stopping)
    vm->cfg.log ("scanouts: the helix export %s went away (%s)",
        vm->export_path, why ? why->message : "closed");
  vm->watch_lost = TRUE;
  for (i = 0; i < BRIDGE_MAX_SCANOUTS; i++) {
    vm->scanouts[i].state.enabled = FALSE;
    vm->scanouts[i].state.resource_id = 0;
    /* its connection is gone: freeing sends nothing */
    g_clear_pointer (&vm->scanouts[i].pending_snapshot,
        hxex_client_surface_free);
    /* the next watch reports the cursor again */
    g_clear_pointer (&vm->scanouts[i].cursor_pixels, g_bytes_unref);
    vm->scanouts[i].cursor_placed = FALSE;
    end_subscribers (&vm->scanouts[i], HXFR_SCANOUT_END_VMM_GONE,
        "the VM's helix export went away");
  }
  g_cond_broadcast (&vm->cond);
  g_mutex_unlock (&vm->lock);
}

/* vm lock held: to every subscriber of @so that asked for the cursor,
 * its image (@image) and/or its position (@pos) as they are now */
static void
offer_cursor (Scanout * so, Subscriber * only, gboolean image, gboolean pos)
{
  guint i, k;

  if (!so->cursor_pixels)
    image = FALSE;
  if (!so->cursor_placed)
    pos = FALSE;
  if (!image && !pos)
    return;
  for (i = 0; i < BRIDGE_MAX_RENDITIONS; i++)
    for (k = 0; k < so->renditions[i].subscribers->len; k++) {
      Subscriber *sub = g_ptr_array_index (so->renditions[i].subscribers, k);

      if (!only || sub == only)
        bridge_subscriber_offer_cursor (sub, image ? so->cursor_pixels :
            NULL, &so->cursor_image, pos ? &so->cursor_pos : NULL);
    }
}

/* vm lock held: renditions that draw the pointer need a new frame (a
 * pointer moving over a static screen still moves in their stream) */
static void
cursor_changed (Scanout * so)
{
  guint i;

  for (i = 0; i < BRIDGE_MAX_RENDITIONS; i++)
    if (so->renditions[i].key.draw_cursor && so->renditions[i].subscribers->len) {
      so->cursor_dirty = TRUE;
      g_cond_broadcast (&so->vm->cond);
      return;
    }
}

/* The watch checked the image (at most HXEX_CURSOR_MAX_SIZE square): it
 * replaces the scanout's, shared by reference with the subscribers that
 * have not been sent it yet. */
static void
on_cursor_shape (gpointer user_data, const HxfrCursorShape * shape)
{
  BridgeVm *vm = user_data;
  Scanout *so;

  if (shape->desc.index >= BRIDGE_MAX_SCANOUTS)
    return;
  g_mutex_lock (&vm->lock);
  so = &vm->scanouts[shape->desc.index];
  g_clear_pointer (&so->cursor_pixels, g_bytes_unref);
  so->cursor_pixels = g_bytes_ref (shape->pixels);
  so->cursor_image = (HxfrCursorImage) {
  shape->desc.width, shape->desc.height, shape->desc.hot_x, shape->desc.hot_y};
  offer_cursor (so, NULL, TRUE, FALSE);
  cursor_changed (so);
  g_mutex_unlock (&vm->lock);
}

static void
on_cursor_move (gpointer user_data, const HxexCursorMove * move)
{
  BridgeVm *vm = user_data;
  Scanout *so;

  if (move->index >= BRIDGE_MAX_SCANOUTS)
    return;
  g_mutex_lock (&vm->lock);
  so = &vm->scanouts[move->index];
  so->cursor_placed = TRUE;
  so->cursor_pos = (HxfrCursorPosition) {
  move->x, move->y, (move->flags & HXEX_CURSOR_VISIBLE) ?
        HXFR_CURSOR_VISIBLE : 0, move->time_ns};
  offer_cursor (so, NULL, FALSE, TRUE);
  cursor_changed (so);
  g_mutex_unlock (&vm->lock);
}

static const HxexWatchCallbacks watch_callbacks = {
  on_scanout_state, on_scanout_flush, on_watch_closed, on_cursor_shape,
  on_cursor_move, on_scanout_snapshot
};

/* vm lock held: the scanouts someone subscribes to, whose flushes the VMM
 * is to copy at the flush (the others cost it nothing) */
static guint32
wanted_snapshots (BridgeVm * vm)
{
  guint32 mask = 0;
  guint i;

  for (i = 0; i < vm->n_scanouts; i++)
    if (vm->scanouts[i].n_subscribers)
      mask |= 1u << i;
  return mask;
}

/* Keeps a watch connected while the VM runs: the VMM may start after the
 * bridge, or restart. */
static gpointer
watch_thread (gpointer data)
{
  BridgeVm *vm = data;
  gint64 backoff = WATCH_BACKOFF_MIN_US;
  gboolean said = FALSE;

  g_mutex_lock (&vm->lock);
  while (!vm->stopping) {
    HxexWatch *w;
    GError *err = NULL;

    if (vm->watch && !vm->watch_lost) {
      guint32 want = wanted_snapshots (vm);

      if (hxex_watch_has_snapshots (vm->watch)
          && want != vm->snapshot_mask_sent) {
        /* this thread alone frees the watch: usable without the lock */
        HxexWatch *watch = vm->watch;

        vm->snapshot_mask_sent = want;
        g_mutex_unlock (&vm->lock);
        if (!hxex_watch_set_snapshots (watch, want, WATCH_TIMEOUT_US, &err)) {
          /* the watch is lost too, or the VMM reads nothing: its close
           * brings a new watch, which is told again */
          vm->cfg.log ("scanouts: cannot ask the VMM for snapshots: %s",
              err->message);
          g_clear_error (&err);
        }
        g_mutex_lock (&vm->lock);
        continue;
      }
      g_cond_wait (&vm->cond, &vm->lock);
      continue;
    }
    while (vm->watch_users)
      g_cond_wait (&vm->cond, &vm->lock);
    w = vm->watch;
    vm->watch = NULL;
    g_mutex_unlock (&vm->lock);
    if (w)
      hxex_watch_free (w);
    w = hxex_watch_new (vm->export_path, &watch_callbacks, vm,
        WATCH_TIMEOUT_US, &err);
    g_mutex_lock (&vm->lock);
    vm->watch_tried = TRUE;
    g_cond_broadcast (&vm->cond);
    if (w) {
      vm->watch = w;
      vm->watch_lost = FALSE;
      vm->snapshot_mask_sent = 0;
      vm->n_scanouts = MIN (hxex_watch_get_n_scanouts (w), BRIDGE_MAX_SCANOUTS);
      vm->cfg.log ("scanouts: watching %u scanouts of %s (%s)", vm->n_scanouts,
          vm->export_path, hxex_watch_has_snapshots (w) ? "pictures copied "
          "by the VMM at each flush" : "an older VMM: pictures read when "
          "encoded");
      backoff = WATCH_BACKOFF_MIN_US;
      said = FALSE;
      continue;
    }
    if (!said)
      vm->cfg.log ("scanouts: helix export %s not available yet (%s); "
          "retrying", vm->export_path, err->message);
    said = TRUE;
    g_clear_error (&err);
    g_cond_wait_until (&vm->cond, &vm->lock, g_get_monotonic_time () + backoff);
    backoff = MIN (backoff * 2, WATCH_BACKOFF_MAX_US);
  }
  g_mutex_unlock (&vm->lock);
  return NULL;
}

/* The encoder of one scanout */

/* vm lock not held: the encoder's streaming threads take it
 * (output_ready) and stopping the pipeline waits for them. Frames still in
 * it are lost. */
static void
teardown_encoder (Rendition * r)
{
  if (r->pipeline) {
    gst_element_set_state (r->pipeline, GST_STATE_NULL);
    gst_clear_object (&r->pipeline);
  }
  r->appsrc = r->encoder_element = r->appsink = r->size_filter = NULL;
  r->have_info = FALSE;
  r->have_pts_offset = FALSE;
  while (r->n_in_flight)
    bridge_encoded_frame_unref (r->in_flight[--r->n_in_flight]);
}

/* The appsink's streaming thread: an access unit is out. */
static GstFlowReturn
encoder_output_ready (GstAppSink * appsink, gpointer data)
{
  Scanout *so = ((Rendition *) data)->so;

  g_mutex_lock (&so->vm->lock);
  so->output_ready = TRUE;
  g_cond_broadcast (&so->vm->cond);
  g_mutex_unlock (&so->vm->lock);
  return GST_FLOW_OK;
}

static void
close_export (Scanout * so)
{
  if (so->export) {
    hxex_client_close (so->export);
    g_clear_pointer (&so->export, hxex_client_unref);
  }
}

/* appsrc ! [videoconvert ! 4:2:0 ! queue] ! encoder ! parser ! appsink
 * (bridge-pipeline.h): headers before every keyframe, one access unit per
 * buffer, each announced by encoder_output_ready(). @encoder and @bitrate:
 * read under the vm lock. */
static gboolean
build_encoder (Rendition * r, const BridgeEncoderChoice * encoder,
    guint32 bitrate, gboolean scaled, GError ** error)
{
  GstElement *p = gst_pipeline_new (NULL), *first, *last;

  r->appsrc = bridge_bin_add (p, "appsrc", NULL, error);
  r->appsink = bridge_bin_add (p, "appsink", NULL, error);
  if (!r->appsrc || !r->appsink
      || !bridge_pipeline_add_scanout_encoder (p, encoder, bitrate, scaled,
          &first, &r->encoder_element, &last, &r->size_filter, error)) {
    gst_object_unref (p);
    return FALSE;
  }
  /* one frame waits at most, the newest: a newer one replaces it, so the
   * encoder takes the latest flip */
  g_object_set (r->appsrc, "format", GST_FORMAT_TIME, "is-live", TRUE,
      "block", FALSE, "max-buffers", (guint64) 1, NULL);
  gst_util_set_object_arg (G_OBJECT (r->appsrc), "leaky-type", "downstream");
  r->bitrate_applied = bitrate;
  g_object_set (r->appsink, "sync", FALSE, "async", FALSE,
      "enable-last-sample", FALSE, NULL);
  {
    GstAppSinkCallbacks callbacks = {.new_sample = encoder_output_ready };

    gst_app_sink_set_callbacks (GST_APP_SINK (r->appsink), &callbacks, r, NULL);
  }

  if (!gst_element_link (r->appsrc, first)
      || !gst_element_link (last, r->appsink)) {
    g_set_error (error, GST_CORE_ERROR, GST_CORE_ERROR_NEGOTIATION,
        "could not link the scanout encoder");
    gst_object_unref (p);
    return FALSE;
  }
  if (gst_element_set_state (p, GST_STATE_PLAYING) == GST_STATE_CHANGE_FAILURE) {
    g_set_error (error, GST_CORE_ERROR, GST_CORE_ERROR_STATE_CHANGE,
        "the scanout encoder %s did not start", encoder->name);
    gst_element_set_state (p, GST_STATE_NULL);
    gst_object_unref (p);
    return FALSE;
  }
  r->pipeline = p;
  r->codec = encoder->codec;
  return TRUE;
}

/* The encoder's next input: *@snapshot (taken), the picture the VMM
 * copied at the flush, else resource @resource_id read now (resolved on
 * the scanout's own export connection); mapped, so a DMA-BUF only if
 * linear (hxfr_surface_wrap()). */
static GstBuffer *
read_resource (Scanout * so, guint32 resource_id,
    HxexClientSurface ** snapshot, GstVideoInfo * info, GError ** error)
{
  HxexClientSurface *surface = *snapshot;
  GstBuffer *buf;
  GError *err = NULL;

  *snapshot = NULL;
  if (surface)
    goto wrap;
  if (so->export && !hxex_client_is_connected (so->export))
    g_clear_pointer (&so->export, hxex_client_unref);
  if (!so->export) {
    so->export = hxex_client_connect (so->vm->export_path,
        HXEX_KIND_BIT (HXEX_KIND_READBACK_SLOT) |
        HXEX_KIND_BIT (HXEX_KIND_DMABUF), RESOLVE_TIMEOUT_US, error);
    if (!so->export)
      return NULL;
  }
  surface = hxex_client_resolve (so->export, resource_id,
      RESOLVE_TIMEOUT_US, error);
  if (!surface)
    return NULL;
wrap:
  /* the buffer's memory owns the surface: the slot goes back to the VMM
   * when the encoder's converter is done with it */
  buf = hxfr_surface_wrap (surface, HXFR_SURFACE_MAPPED, info, &err);
  if (!buf) {
    /* a format or layout nothing can encode ends the subscribers
     * (ENCODER); a tiled DMA-BUF is logged and skipped like a resource
     * that could not be read */
    if (g_error_matches (err, HXFR_SURFACE_ERROR, HXFR_SURFACE_ERROR_LAYOUT)) {
      err->domain = GST_STREAM_ERROR;
      err->code = GST_STREAM_ERROR_FORMAT;
    }
    g_propagate_error (error, err);
    return NULL;
  }
  GST_VIDEO_INFO_FPS_N (info) = NOMINAL_FPS;
  GST_VIDEO_INFO_FPS_D (info) = 1;
  return buf;
}

/* What one turn of the encoder thread does: read one resource, and
 * encode it for each rendition marked active. */
typedef struct
{
  guint32 resource_id;
  /* its picture as at the flush (owned), or NULL: read it now */
  HxexClientSurface *snapshot;
  guint64 capture_ns;
  gboolean flush;               /* a flip, not a repeat, IDR or pointer */
  gboolean repeat;
  gboolean active[BRIDGE_MAX_RENDITIONS];
  gboolean force_idr[BRIDGE_MAX_RENDITIONS];
  RenditionKey key[BRIDGE_MAX_RENDITIONS];
  BridgeEncoderChoice encoder[BRIDGE_MAX_RENDITIONS];
  /* the pointer to draw, for renditions that draw it (a reference) */
  GBytes *cursor_pixels;        /* NULL: none to draw */
  HxfrCursorImage cursor_image;
  HxfrCursorPosition cursor_pos;
} Work;

/* @width x @height scaled down to fit @key's maximum, keeping the aspect,
 * in even numbers (4:2:0); as it is if it fits */
static void
fit_size (const RenditionKey * key, guint32 width, guint32 height,
    guint32 * out_width, guint32 * out_height)
{
  gdouble scale = 1.0;

  if (key->max_width && width > key->max_width)
    scale = (gdouble) key->max_width / width;
  if (key->max_height && height > key->max_height)
    scale = MIN (scale, (gdouble) key->max_height / height);
  *out_width = width;
  *out_height = height;
  if (scale < 1.0) {
    *out_width = MAX (2, (guint32) (width * scale) & ~1u);
    *out_height = MAX (2, (guint32) (height * scale) & ~1u);
  }
}

static guint64
monotonic_ns (void)
{
  return (guint64) g_get_monotonic_time () * 1000;
}

/* Gives one frame to encoder @r (built on first use); its access unit
 * comes out later (collect_output()). @frame: its description, filled in
 * but for the access unit; @pts: the frame's, the same for every
 * rendition. Takes @buf and @frame. */
static gboolean
push_frame (Rendition * r, guint i, GstBuffer * buf, GstClockTime pts,
    GstVideoInfo * info, const Work * w, EncodedFrame * frame, GError ** error)
{
  const BridgeEncoderChoice *encoder = &w->encoder[i];
  const RenditionKey *key = &w->key[i];
  gboolean idr = w->force_idr[i];

  /* an encoder that ignores keyframe requests starts afresh: its first
   * frame is one (encoders_have_room() let its frames out first) */
  if (idr && r->pipeline && encoder->desc
      && encoder->desc->keyframes_by_restart)
    teardown_encoder (r);
  if (!r->pipeline && !build_encoder (r, encoder, key->bitrate,
          key->max_width || key->max_height, error))
    goto refused;
  if (!r->have_info || !gst_video_info_is_equal (info, &r->info)) {
    GstCaps *caps = gst_video_info_to_caps (info);

    /* a resize: new caps, and an IDR with the new SPS */
    fit_size (key, GST_VIDEO_INFO_WIDTH (info), GST_VIDEO_INFO_HEIGHT (info),
        &r->out_width, &r->out_height);
    if (r->size_filter)
      bridge_pipeline_set_size (r->size_filter, r->out_width, r->out_height);
    gst_app_src_set_caps (GST_APP_SRC (r->appsrc), caps);
    gst_caps_unref (caps);
    r->info = *info;
    r->have_info = TRUE;
    idr = TRUE;
  }
  if (key->bitrate != r->bitrate_applied) {
    bridge_encoder_set_bitrate (r->encoder_element, encoder->desc,
        key->bitrate);
    r->bitrate_applied = key->bitrate;
  }
  frame->width = r->out_width;
  frame->height = r->out_height;
  if (idr) {
    GstPad *pad = gst_element_get_static_pad (r->encoder_element, "src");

    gst_pad_send_event (pad, gst_video_event_new_upstream_force_key_unit
        (GST_CLOCK_TIME_NONE, TRUE, 0));
    gst_object_unref (pad);
  }
  /* renditions share a frame's buffer: the first to take it stamps it,
   * before any encoder has it, and the others find it stamped so (a
   * buffer an encoder holds is never written) */
  if (GST_BUFFER_PTS (buf) != pts) {
    GST_BUFFER_PTS (buf) = pts;
    GST_BUFFER_DURATION (buf) = GST_SECOND / NOMINAL_FPS;
  }
  if (gst_app_src_push_buffer (GST_APP_SRC (r->appsrc), buf) != GST_FLOW_OK) {
    buf = NULL;
    g_set_error (error, GST_STREAM_ERROR, GST_STREAM_ERROR_ENCODE,
        "the scanout encoder refused a frame");
    goto refused;
  }
  if (!r->n_in_flight)
    r->t_oldest_pushed = g_get_monotonic_time ();
  r->in_flight_pts[r->n_in_flight] = pts;
  r->in_flight[r->n_in_flight++] = frame;
  return TRUE;

refused:
  if (buf)
    gst_buffer_unref (buf);
  bridge_encoded_frame_unref (frame);
  return FALSE;
}

/* The frame in flight in @r whose access unit @sample is, with it; the
 * older ones were replaced before the encoder took them and are dropped
 * (an encoder that does not keep the PTS: the oldest frame is taken). */
static EncodedFrame *
complete_frame (Rendition * r, GstSample * sample)
{
  GstBuffer *out = gst_sample_get_buffer (sample);
  guint k = 0, i;
  EncodedFrame *f;
  GstMapInfo map;
  gsize aud = 0;

  if (!r->have_pts_offset && GST_BUFFER_PTS_IS_VALID (out)) {
    r->pts_offset = GST_CLOCK_DIFF (r->in_flight_pts[0], GST_BUFFER_PTS (out));
    r->have_pts_offset = TRUE;
  }
  for (i = 0; i < r->n_in_flight; i++)
    if (r->have_pts_offset && GST_BUFFER_PTS (out) ==
        r->in_flight_pts[i] + r->pts_offset)
      k = i;
  for (i = 0; i < k; i++)
    bridge_encoded_frame_unref (r->in_flight[i]);
  f = r->in_flight[k];
  r->n_in_flight -= k + 1;
  memmove (r->in_flight, r->in_flight + k + 1, r->n_in_flight * sizeof (f));
  memmove (r->in_flight_pts, r->in_flight_pts + k + 1,
      r->n_in_flight * sizeof (GstClockTime));
  r->t_oldest_pushed = g_get_monotonic_time ();
  gst_buffer_map (out, &map, GST_MAP_READ);
  /* as deployed: no AUD (h264parse puts one in front of every access
   * unit in byte-stream output) */
  if (r->codec == HXFR_CODEC_H264)
    aud = hxfr_video_au_aud_length (map.data, map.size);
  f->au = g_bytes_new (map.data + aud, map.size - aud);
  gst_buffer_unmap (out, &map);
  f->keyframe = !GST_BUFFER_FLAG_IS_SET (out, GST_BUFFER_FLAG_DELTA_UNIT);
  f->encode_us = (guint32) MIN ((monotonic_ns () - f->capture_ns) / 1000,
      G_MAXUINT32);
  return f;
}

/* A copy of @buf (@info: one of the 4-byte RGB formats the export
 * carries) with @w's pointer blended in: its image, straight alpha,
 * top-left corner at the position minus the hotspot, clipped to the
 * frame. NULL if it cannot be mapped (the frame goes out without it). */
static GstBuffer *
draw_cursor (GstBuffer * buf, GstVideoInfo * info, const Work * w)
{
  const HxfrCursorImage *ci = &w->cursor_image;
  const guint8 *px = g_bytes_get_data (w->cursor_pixels, NULL);
  GstVideoFormat fmt = GST_VIDEO_INFO_FORMAT (info);
  /* where B, G and R are in a frame pixel (the image's are B G R A) */
  gboolean rgb_order = fmt == GST_VIDEO_FORMAT_RGBA
      || fmt == GST_VIDEO_FORMAT_RGBx;
  gint64 x0 = (gint64) w->cursor_pos.x - ci->hot_x;
  gint64 y0 = (gint64) w->cursor_pos.y - ci->hot_y;
  GstBuffer *copy;
  GstVideoFrame frame;
  guint32 cx, cy;

  if (GST_VIDEO_INFO_COMP_PSTRIDE (info, 0) != 4)
    return NULL;
  copy = gst_buffer_copy_deep (buf);
  if (!gst_video_frame_map (&frame, info, copy, GST_MAP_READWRITE)) {
    gst_buffer_unref (copy);
    return NULL;
  }
  for (cy = 0; cy < ci->height; cy++) {
    gint64 y = y0 + cy;
    guint8 *row;

    if (y < 0 || y >= GST_VIDEO_FRAME_HEIGHT (&frame))
      continue;
    row = (guint8 *) GST_VIDEO_FRAME_PLANE_DATA (&frame, 0) +
        y * GST_VIDEO_FRAME_PLANE_STRIDE (&frame, 0);
    for (cx = 0; cx < ci->width; cx++) {
      gint64 x = x0 + cx;
      const guint8 *s = px + ((gsize) cy * ci->width + cx) * 4;
      guint8 *d;
      guint a = s[3], c;

      if (x < 0 || x >= GST_VIDEO_FRAME_WIDTH (&frame) || a == 0)
        continue;
      d = row + x * 4;
      for (c = 0; c < 3; c++) {
        guint8 *dc = &d[rgb_order ? 2 - c : c];

        *dc = (s[c] * a + *dc * (255 - a) + 127) / 255;
      }
    }
  }
  gst_video_frame_unmap (&frame);
  return copy;
}

/* What an encoder is given of @picture (@info): its I420 conversion,
 * made on first use into *@yuv (then *@info_out is @yuv_info), else
 * @picture itself for the pipeline's videoconvert. */
static GstBuffer *
encoder_input (Scanout * so, GstBuffer * picture, GstVideoInfo * info,
    GstBuffer ** yuv, GstVideoInfo * yuv_info, GstVideoInfo ** info_out)
{
  if (!*yuv && bridge_convert_available ()) {
    if (!so->convert)
      so->convert = bridge_convert_new ();
    *yuv = bridge_convert_to_i420 (so->convert, picture, info, yuv_info);
  }
  *info_out = *yuv ? yuv_info : info;
  return *yuv ? *yuv : picture;
}

/* Whether @w (not a flip) can take the last flip's picture as it was
 * flushed instead of reading the resource now: it shows the same
 * resource, and no rendition of it draws the pointer in. */
static gboolean
reuses_flushed (Scanout * so, const Work * w)
{
  guint i;

  if (w->flush || !so->flushed_yuv || so->flushed_resource != w->resource_id)
    return FALSE;
  for (i = 0; i < BRIDGE_MAX_RENDITIONS; i++)
    if (w->active[i] && w->key[i].draw_cursor && w->cursor_pixels)
      return FALSE;
  return TRUE;
}

/* After a flip: @yuv (the VMM's copy of it, converted), or NULL when the
 * picture is not known as flushed, is what repeats and IDRs show. */
static void
remember_flushed (Scanout * so, GstBuffer * yuv, const GstVideoInfo * info,
    guint32 resource_id)
{
  g_clear_pointer (&so->flushed_yuv, gst_buffer_unref);
  if (!yuv)
    return;
  so->flushed_yuv = gst_buffer_ref (yuv);
  so->flushed_info = *info;
  so->flushed_resource = resource_id;
}

/* Reads one frame (or takes the last flip's, reuses_flushed()) and gives
 * it to each active rendition's encoder (with the null encoder: only
 * reads it, and its "access unit" is out[i] at once). FALSE with @error
 * if the resource could not be read (nothing pushed), or with *@failed
 * set to the first rendition whose encoder failed. */
static gboolean
produce_frames (Scanout * so, Work * w, EncodedFrame ** out,
    gint * failed, GError ** error)
{
  GstVideoInfo info, yuv_info, *frame_info;
  GstBuffer *buf, *drawn = NULL;
  /* the pictures as I420, with and without the pointer: converted once
   * for every rendition */
  GstBuffer *yuv = NULL, *yuv_drawn = NULL;
  gboolean copied_at_flush = w->snapshot != NULL;
  GstClockTime pts = (g_get_monotonic_time () - so->vm->t0) * GST_USECOND;
  guint i;

  *failed = -1;
  for (i = 0; i < BRIDGE_MAX_RENDITIONS; i++)
    out[i] = NULL;
  if (reuses_flushed (so, w)) {
    buf = NULL;
    /* its pixels, with metadata of its own: the push sets a PTS, and the
     * flip's push may still be in an encoder */
    yuv = gst_buffer_copy (so->flushed_yuv);
    info = yuv_info = so->flushed_info;
  } else if (!(buf = read_resource (so, w->resource_id, &w->snapshot, &info,
              error))) {
    return FALSE;
  }
  for (i = 0; i < BRIDGE_MAX_RENDITIONS; i++) {
    EncodedFrame *f;
    GstBuffer *frame_buf;

    if (!w->active[i])
      continue;
    if (w->key[i].draw_cursor && w->cursor_pixels && !drawn)
      drawn = draw_cursor (buf, &info, w);
    frame_buf = w->key[i].draw_cursor && drawn ? drawn : buf;
    frame_info = &info;
    f = g_atomic_rc_box_new0 (EncodedFrame);
    f->repeat = w->repeat;
    f->width = GST_VIDEO_INFO_WIDTH (&info);
    f->height = GST_VIDEO_INFO_HEIGHT (&info);
    f->capture_ns = w->capture_ns;
    f->index = so->frame_counter + 1;
    if (g_strcmp0 (w->encoder[i].name, BRIDGE_ENCODER_NULL) == 0) {
      /* the --encoder null answer: one access unit delimiter */
      f->au = g_bytes_new_static (hxfr_video_aud, sizeof (hxfr_video_aud));
      f->keyframe = TRUE;
      f->encode_us = (guint32) MIN ((monotonic_ns () - w->capture_ns) / 1000,
          G_MAXUINT32);
      out[i] = f;
    } else {
      frame_buf = encoder_input (so, frame_buf, &info, drawn
          && frame_buf == drawn ? &yuv_drawn : &yuv, &yuv_info, &frame_info);
      if (!push_frame (&so->renditions[i], i, gst_buffer_ref (frame_buf),
              pts, frame_info, w, f, error)) {
        *failed = i;
        break;
      }
    }
  }
  so->frame_counter++;
  if (w->flush)
    remember_flushed (so, copied_at_flush ? yuv : NULL, &yuv_info,
        w->resource_id);
  /* with the frames converted, the VMM's slot goes back now */
  if (buf)
    gst_buffer_unref (buf);
  if (drawn)
    gst_buffer_unref (drawn);
  if (yuv)
    gst_buffer_unref (yuv);
  if (yuv_drawn)
    gst_buffer_unref (yuv_drawn);
  return *failed < 0;
}

/* vm lock held: what to do next, or FALSE and *wait_until (monotonic us)
 * when nothing is due. */
static gboolean
next_work (Scanout * so, Work * w, gint64 * wait_until)
{
  const BridgeScanoutConfig *cfg = &so->vm->cfg;
  gint64 now = g_get_monotonic_time ();
  guint32 resource = so->state.resource_id;
  gboolean want_idr = FALSE, quiet, any = FALSE, cursor_only = FALSE;
  guint i;

  *wait_until = now + G_USEC_PER_SEC;
  if (!so->n_subscribers || !so->state.enabled)
    return FALSE;
  for (i = 0; i < BRIDGE_MAX_RENDITIONS; i++) {
    Rendition *r = &so->renditions[i];

    if (!r->subscribers->len)
      continue;
    if (r->idr_deferred) {
      if (now - r->t_idr_requested >= IDR_REQUEST_INTERVAL_US)
        scanout_request_idr (r);
      else
        *wait_until = MIN (*wait_until, r->t_idr_requested +
            IDR_REQUEST_INTERVAL_US);
    }
    want_idr |= r->want_idr;
  }
  quiet = cfg->quiet_interval_us && so->t_last_encode
      && now - so->t_last_encode >= cfg->quiet_interval_us;
  if (so->flush_pending) {
    so->flush_pending = FALSE;
    so->cursor_dirty = FALSE;
    resource = so->pending_resource;
    w->snapshot = so->pending_snapshot;
    so->pending_snapshot = NULL;
    w->capture_ns = so->pending_time_ns;
    w->flush = TRUE;
    w->repeat = FALSE;
  } else if (resource && so->cursor_dirty) {
    /* only the pointer moved: the same picture with it drawn anew, for
     * the renditions that draw it (below) */
    cursor_only = TRUE;
    so->cursor_dirty = FALSE;
    w->capture_ns = monotonic_ns ();
    w->repeat = FALSE;
  } else if (resource && (want_idr || quiet)) {
    /* a new subscriber's IDR, or a static screen: what it shows now */
    w->capture_ns = monotonic_ns ();
    w->repeat = so->t_last_encode != 0;
  } else {
    /* nothing due: the quiet interval's end, when something is shown (with
     * nothing shown that time may be past: waiting for it would spin) */
    if (resource && cfg->quiet_interval_us && so->t_last_encode)
      *wait_until = MIN (*wait_until, so->t_last_encode +
          cfg->quiet_interval_us);
    return FALSE;
  }
  if (!resource)
    return FALSE;
  w->resource_id = resource;
  for (i = 0; i < BRIDGE_MAX_RENDITIONS; i++) {
    Rendition *r = &so->renditions[i];

    /* a repeat for one rendition's IDR is not encoded for the others, a
     * pointer's move only for those that draw it */
    w->active[i] = r->subscribers->len && (!w->repeat || quiet || r->want_idr)
        && (!cursor_only || r->key.draw_cursor);
    if (!w->active[i])
      continue;
    any = TRUE;
    if (r->key.draw_cursor && so->cursor_pixels && so->cursor_placed
        && (so->cursor_pos.flags & HXFR_CURSOR_VISIBLE) && !w->cursor_pixels) {
      w->cursor_pixels = g_bytes_ref (so->cursor_pixels);
      w->cursor_image = so->cursor_image;
      w->cursor_pos = so->cursor_pos;
    }
    w->force_idr[i] = r->want_idr;
    r->want_idr = FALSE;
    w->key[i] = r->key;
    w->encoder[i] = *r->encoder;
  }
  return any;
}

/* vm lock held: @f to every subscriber of @r that can take it. */
static void
fan_out (Rendition * r, EncodedFrame * f)
{
  BridgeVm *vm = r->so->vm;
  gboolean idr_wanted = FALSE;
  guint i;

  vm->stats.frames_encoded++;
  if (f->keyframe)
    r->idr_deferred = FALSE;
  if (r->last_frame)
    bridge_encoded_frame_unref (r->last_frame);
  r->last_frame = bridge_encoded_frame_ref (f);
  for (i = 0; i < r->subscribers->len; i++) {
    switch (bridge_subscriber_offer_frame (g_ptr_array_index (r->subscribers,
                i), f)) {
      case BRIDGE_SUBSCRIBER_QUEUED:
        vm->stats.frames_sent++;
        break;
      case BRIDGE_SUBSCRIBER_NEEDS_IDR:
        idr_wanted = TRUE;
        /* fall through */
      case BRIDGE_SUBSCRIBER_SKIPPED:
        vm->stats.frames_skipped++;
        break;
    }
  }
  if (idr_wanted)
    scanout_request_idr (r);
}

static void
log_failure (Scanout * so, const gchar * what, const GError * err)
{
  gint64 now = g_get_monotonic_time ();

  if (so->t_failure_logged && now - so->t_failure_logged <
      FAILURE_LOG_INTERVAL_US)
    return;
  so->t_failure_logged = now;
  so->vm->cfg.log ("scanout %u: %s: %s", so->index, what, err->message);
}

/* vm lock held: renditions without subscribers for long lose their
 * encoder (the lock is let go meanwhile) and free their slot. */
static void
teardown_idle (Scanout * so)
{
  gint64 now = g_get_monotonic_time ();
  guint i;

  for (i = 0; i < BRIDGE_MAX_RENDITIONS; i++) {
    Rendition *r = &so->renditions[i];

    if (!r->encoder || r->subscribers->len
        || now - r->t_no_subscribers <= IDLE_TEARDOWN_US)
      continue;
    g_clear_pointer (&r->last_frame, bridge_encoded_frame_unref);
    r->encoder = NULL;
    r->want_idr = r->idr_deferred = FALSE;
    r->t_idr_requested = 0;
    memset (&r->key, 0, sizeof (r->key));
    g_mutex_unlock (&so->vm->lock);
    teardown_encoder (r);
    g_mutex_lock (&so->vm->lock);
  }
  if (!so->n_subscribers && so->export
      && now - so->t_last_encode > IDLE_TEARDOWN_US) {
    g_mutex_unlock (&so->vm->lock);
    close_export (so);
    remember_flushed (so, NULL, NULL, 0);
    g_clear_pointer (&so->convert, bridge_convert_free);
    g_mutex_lock (&so->vm->lock);
    so->t_last_encode = 0;
  }
}

/* vm lock held (let go meanwhile): encoder @r failed; its subscribers are
 * ended (ENCODER) and it is torn down. */
static void
fail_encoder (Rendition * r, const gchar * why)
{
  BridgeVm *vm = r->so->vm;

  vm->cfg.log ("scanout %u: the %s encoder failed: %s", r->so->index,
      r->encoder ? r->encoder->name : "?", why);
  end_rendition (r, HXFR_SCANOUT_END_ENCODER, why);
  g_mutex_unlock (&vm->lock);
  teardown_encoder (r);
  g_mutex_lock (&vm->lock);
}

/* vm lock held: whether every encoder can take the next frame. One that
 * restarts for its IDR lets its frames out first. */
static gboolean
encoders_have_room (Scanout * so)
{
  guint i;

  for (i = 0; i < BRIDGE_MAX_RENDITIONS; i++) {
    Rendition *r = &so->renditions[i];
    gboolean restarts = r->want_idr && r->encoder && r->encoder->desc
        && r->encoder->desc->keyframes_by_restart;

    /* (encoder thread: this thread) */
    if (r->n_in_flight >= (restarts || !r->have_pts_offset ? 1 : ENCODER_DEPTH))
      return FALSE;
  }
  return TRUE;
}

/* When the oldest frame in an encoder is overdue (G_MAXINT64: none in
 * flight). */
static gint64
encoders_due (Scanout * so)
{
  gint64 due = G_MAXINT64;
  guint i;

  for (i = 0; i < BRIDGE_MAX_RENDITIONS; i++) {
    Rendition *r = &so->renditions[i];

    if (r->n_in_flight)
      due = MIN (due, r->t_oldest_pushed + ENCODE_TIMEOUT_US);
  }
  return due;
}

/* vm lock held (let go meanwhile): every access unit the encoders have
 * out goes to its subscribers; an encoder that kept a frame past
 * ENCODE_TIMEOUT_US fails. */
static void
collect_output (Scanout * so)
{
  EncodedFrame *out[BRIDGE_MAX_RENDITIONS][ENCODER_DEPTH];
  guint n[BRIDGE_MAX_RENDITIONS] = { 0, };
  gint64 now;
  guint i, j;

  so->output_ready = FALSE;
  /* not under the vm lock: the appsink's thread takes it after its own */
  g_mutex_unlock (&so->vm->lock);
  for (i = 0; i < BRIDGE_MAX_RENDITIONS; i++) {
    Rendition *r = &so->renditions[i];
    GstSample *sample;

    while (r->n_in_flight && (sample =
            gst_app_sink_try_pull_sample (GST_APP_SINK (r->appsink), 0))) {
      out[i][n[i]++] = complete_frame (r, sample);
      gst_sample_unref (sample);
    }
  }
  g_mutex_lock (&so->vm->lock);
  now = g_get_monotonic_time ();
  for (i = 0; i < BRIDGE_MAX_RENDITIONS; i++) {
    Rendition *r = &so->renditions[i];

    for (j = 0; j < n[i]; j++) {
      fan_out (r, out[i][j]);
      bridge_encoded_frame_unref (out[i][j]);
    }
    if (r->n_in_flight && now - r->t_oldest_pushed >= ENCODE_TIMEOUT_US) {
      gchar *why = g_strdup_printf ("no access unit within %d s",
          (gint) (ENCODE_TIMEOUT_US / G_USEC_PER_SEC));

      fail_encoder (r, why);
      g_free (why);
    }
  }
}

/* vm lock held (let go meanwhile): reads @w's frame and gives it to the
 * encoders. */
static void
encode_work (Scanout * so, Work * w)
{
  BridgeVm *vm = so->vm;
  EncodedFrame *out[BRIDGE_MAX_RENDITIONS];
  GError *err = NULL;
  gint failed;
  gboolean ok;
  guint i;

  g_mutex_unlock (&vm->lock);
  ok = produce_frames (so, w, out, &failed, &err);
  g_mutex_lock (&vm->lock);
  so->t_last_encode = g_get_monotonic_time ();
  /* the null encoder's, out at once; also when a later rendition failed */
  for (i = 0; i < BRIDGE_MAX_RENDITIONS; i++) {
    if (out[i]) {
      fan_out (&so->renditions[i], out[i]);
      bridge_encoded_frame_unref (out[i]);
    }
  }
  if (failed >= 0) {
    fail_encoder (&so->renditions[failed], err->message);
  } else if (!ok && (err->domain == GST_STREAM_ERROR
          || err->domain == GST_CORE_ERROR)) {
    /* a format nothing can encode */
    vm->cfg.log ("scanout %u: the encoder failed: %s", so->index, err->message);
    end_subscribers (so, HXFR_SCANOUT_END_ENCODER, err->message);
  } else if (!ok) {
    /* resource gone, export busy or away: the next flush tries again;
     * an IDR it owed is owed still (rate-limited: no busy retry) */
    log_failure (so, "reading its resource", err);
    for (i = 0; i < BRIDGE_MAX_RENDITIONS; i++)
      if (w->active[i] && w->force_idr[i])
        scanout_request_idr (&so->renditions[i]);
  }
  g_clear_error (&err);
}

/* One per subscribed scanout: reads each flip's resource and gives it to
 * the encoders while they encode the one before; their access units go
 * out as they come (encoder_output_ready() wakes it). */
static gpointer
scanout_thread (gpointer data)
{
  Scanout *so = data;
  BridgeVm *vm = so->vm;
  guint i;

  g_mutex_lock (&vm->lock);
  while (!vm->stopping) {
    gint64 due = encoders_due (so), wait_until;
    Work w = { 0, };

    if (so->output_ready || g_get_monotonic_time () >= due) {
      collect_output (so);
      continue;
    }
    if (!encoders_have_room (so)) {
      g_cond_wait_until (&vm->cond, &vm->lock, due);
      continue;
    }
    if (!next_work (so, &w, &wait_until)) {
      /* nobody to encode it for: its slot back to the VMM */
      if (!so->n_subscribers && !w.snapshot) {
        w.snapshot = so->pending_snapshot;
        so->pending_snapshot = NULL;
      }
      if (w.snapshot) {
        /* a flush nobody's encoder takes: its slot back to the VMM */
        g_mutex_unlock (&vm->lock);
        hxex_client_surface_free (w.snapshot);
        g_mutex_lock (&vm->lock);
        continue;
      }
      teardown_idle (so);
      g_cond_wait_until (&vm->cond, &vm->lock, MIN (MIN (wait_until, due),
              g_get_monotonic_time () + IDLE_TEARDOWN_US));
      continue;
    }
    encode_work (so, &w);
    g_clear_pointer (&w.cursor_pixels, g_bytes_unref);
    if (w.snapshot) {
      /* not read: the resource could not be taken for another reason */
      g_mutex_unlock (&vm->lock);
      hxex_client_surface_free (w.snapshot);
      g_mutex_lock (&vm->lock);
    }
  }
  g_mutex_unlock (&vm->lock);
  for (i = 0; i < BRIDGE_MAX_RENDITIONS; i++)
    teardown_encoder (&so->renditions[i]);
  close_export (so);
  remember_flushed (so, NULL, NULL, 0);
  g_clear_pointer (&so->convert, bridge_convert_free);
  return NULL;
}

/* Subscriptions (vm lock held) */

/* How far apart two renditions are: the larger over the smaller, of the
 * bitrates times of the sizes' limits (a viewer at 1 Mbit/s is nearer 2
 * than 0.25) */
static gdouble
key_distance (const RenditionKey * a, const RenditionKey * b)
{
  /* no limit: as large as a scanout can be */
  gdouble area_a = (gdouble) (a->max_width ? a->max_width : G_MAXUINT16) *
      (a->max_height ? a->max_height : G_MAXUINT16);
  gdouble area_b = (gdouble) (b->max_width ? b->max_width : G_MAXUINT16) *
      (b->max_height ? b->max_height : G_MAXUINT16);

  return (gdouble) MAX (a->bitrate, b->bitrate) / MIN (a->bitrate, b->bitrate)
      * MAX (area_a, area_b) / MIN (area_a, area_b);
}

/* vm lock held: @so's rendition of @want (a bitrate of 0: the configured
 * default): the one there is, else a free slot given to it, else the one
 * of its codec nearest to it; NULL with the HXFR error code and text if
 * the codec has none and no slot is free. */
static Rendition *
rendition_for (Scanout * so, RenditionKey want, gint32 * code, gchar ** text)
{
  const BridgeScanoutConfig *cfg = &so->vm->cfg;
  gint c = bridge_codec_index (want.codec);
  Rendition *free_slot = NULL, *nearest = NULL;
  guint i;

  if (c < 0 || !cfg->encoders[c].name) {
    *code = HXFR_ERR_UNSUPPORTED;
    *text = g_strdup (c < 0 ? "this bridge encodes H264, H265 and AV01 "
        "only" : cfg->no_encoder[c]);
    return NULL;
  }
  if (!want.bitrate)
    want.bitrate = cfg->bitrate;
  for (i = 0; i < BRIDGE_MAX_RENDITIONS; i++) {
    Rendition *r = &so->renditions[i];

    if (!r->encoder) {
      free_slot = free_slot ? free_slot : r;
      continue;
    }
    /* drawn or not is never shared: one would see the pointer twice or
     * not at all */
    if (r->key.codec != want.codec || r->key.draw_cursor != want.draw_cursor)
      continue;
    if (memcmp (&r->key, &want, sizeof (want)) == 0)
      return r;
    if (!nearest || key_distance (&r->key, &want) <
        key_distance (&nearest->key, &want))
      nearest = r;
  }
  if (free_slot) {
    free_slot->encoder = &cfg->encoders[c];
    free_slot->key = want;
    return free_slot;
  }
  if (nearest)
    return nearest;
  *code = HXFR_ERR_LIMIT;
  *text = g_strdup_printf ("scanout %u has its maximum of %u encoders",
      so->index, BRIDGE_MAX_RENDITIONS);
  return NULL;
}

/* vm lock held: @sub served by @r from now on */
static void
rendition_add (Rendition * r, Subscriber * sub)
{
  g_ptr_array_add (r->subscribers, sub);
  sub->rendition = r;
}

/* vm lock held: @sub no longer served by its rendition */
static void
rendition_remove (Subscriber * sub)
{
  Rendition *r = sub->rendition;

  g_ptr_array_remove_fast (r->subscribers, sub);
  sub->rendition = NULL;
  if (!r->subscribers->len)
    r->t_no_subscribers = g_get_monotonic_time ();
}

static gboolean
scanout_subscribe (BridgeVm * vm, Subscriber * sub, BridgeSubscription * s)
{
  guint32 index = s->index;
  gint32 *code = &s->code;
  gchar **text = &s->text;
  /* deployed clients never get the pointer drawn: their viewer draws it */
  RenditionKey want = { s->codec, s->bitrate, s->max_width, s->max_height,
    s->v2 && s->draw_cursor
  };
  Scanout *so;
  Rendition *r;

  if (vm->stopping) {
    *code = HXFR_ERR_SHUTDOWN;
    *text = g_strdup ("the bridge is stopping");
    return FALSE;
  }
  if (index >= (vm->n_scanouts ? vm->n_scanouts : BRIDGE_MAX_SCANOUTS)) {
    *code = HXFR_ERR_NO_SCANOUT;
    *text = g_strdup_printf ("scanout %u does not exist (this VM has %u)",
        index, vm->n_scanouts);
    return FALSE;
  }
  so = &vm->scanouts[index];
  /* deployed clients may subscribe before the connector is enabled (as
   * against helix's QEMU); a v2 client learns it and retries */
  if (s->v2 && !so->state.enabled) {
    *code = HXFR_ERR_NO_SCANOUT;
    *text = g_strdup_printf ("scanout %u is %s", index, vm->n_scanouts ?
        "disabled" : "not known yet (the VM's export is not connected)");
    return FALSE;
  }
  if (so->n_subscribers >= vm->cfg.max_subscribers_per_scanout) {
    *code = HXFR_ERR_TOO_MANY_SESSIONS;
    *text = g_strdup_printf ("scanout %u has its maximum of %u subscribers",
        index, vm->cfg.max_subscribers_per_scanout);
    return FALSE;
  }
  if (!(r = rendition_for (so, want, code, text)))
    return FALSE;
  rendition_add (r, sub);
  so->n_subscribers++;
  sub->scanout = so;
  sub->codec = s->codec;
  sub->scanout_index = index;
  /* only v2 subscribers ask: deployed clients draw their own pointer */
  sub->cursor = s->v2 && s->cursor;
  bridge_subscriber_start (sub, FALSE);
  vm->stats.subscribers++;
  if (!so->thread)
    so->thread = g_thread_new ("hx-scanout", scanout_thread, so);
  /* the watch thread asks the VMM for snapshots of it */
  g_cond_broadcast (&vm->cond);
  return TRUE;
}

static void
scanout_send_first_frame (Subscriber * sub)
{
  Rendition *r = sub->rendition;

  /* the encoder's latest output is an IDR: the same picture the others
   * were sent, and what follows it refers to nothing older */
  if (r->last_frame && r->last_frame->keyframe
      && bridge_subscriber_offer_frame (sub,
          r->last_frame) == BRIDGE_SUBSCRIBER_QUEUED)
    return;
  /* else a new one, rate-limited per encoder: a static screen is encoded
   * again for it */
  scanout_request_idr (r);
}

static void
scanout_unsubscribe (Subscriber * sub)
{
  Scanout *so = sub->scanout;

  if (!so)
    return;
  rendition_remove (sub);
  so->n_subscribers--;
  sub->scanout = NULL;
  so->vm->stats.subscribers--;
  /* with the last one gone the encoder thread gives back a snapshot left
   * pending and the watch thread tells the VMM to stop copying it */
  g_cond_broadcast (&so->vm->cond);
}

static void
scanout_request_idr (Rendition * r)
{
  gint64 t = g_get_monotonic_time ();

  if (r->t_idr_requested && t - r->t_idr_requested < IDR_REQUEST_INTERVAL_US) {
    /* not dropped: next_work() asks for it once the interval is over */
    r->idr_deferred = TRUE;
    return;
  }
  r->idr_deferred = FALSE;
  r->t_idr_requested = t;
  r->want_idr = TRUE;
  g_cond_broadcast (&r->so->vm->cond);
}

/* vm lock held: @sub's stream at @bitrate from now on, from the encoder
 * of that bitrate (rendition_for()) and its next IDR; the others it shared
 * an encoder with keep theirs. Repeating it is a no-op; moving back and
 * forth asks IDRs of the same bounded set of encoders, each at most one
 * per IDR_REQUEST_INTERVAL_US. */
static void
scanout_set_bitrate (Subscriber * sub, guint32 bitrate)
{
  RenditionKey want = sub->rendition->key;
  Rendition *to;
  gint32 code;
  gchar *text = NULL;

  want.bitrate = bitrate;
  to = rendition_for (sub->scanout, want, &code, &text);
  g_free (text);
  if (!to || to == sub->rendition)
    return;
  rendition_remove (sub);
  rendition_add (to, sub);
  bridge_subscriber_start (sub, TRUE);
  scanout_send_first_frame (sub);
}

static void
scanout_get_size (Rendition * r, guint32 * width, guint32 * height)
{
  const HxfrScanoutState *state = &r->so->state;

  *width = *height = 0;
  if (state->resource_id)
    fit_size (&r->key, state->width, state->height, width, height);
}

/* The subscriber's side, each under the VM's lock */

gboolean
bridge_vm_subscribe (Subscriber * sub, BridgeSubscription * s,
    BridgeSubscriptionAnswer answer, gboolean * queued)
{
  BridgeVm *vm = sub->vm;
  gboolean ok = TRUE;

  g_mutex_lock (&vm->lock);
  /* deployed: the last SUBSCRIBE wins; the same one again changes nothing
   * (no new IDR for everyone) but is answered, as deployed */
  s->again = sub->scanout && sub->scanout_index == s->index
      && sub->codec == s->codec;
  if (!s->again) {
    scanout_unsubscribe (sub);
    ok = scanout_subscribe (vm, sub, s);
  }
  if (ok) {
    if (s->again && s->bitrate)
      scanout_set_bitrate (sub, s->bitrate);
    scanout_get_size (sub->rendition, &s->width, &s->height);
    s->encoder = sub->rendition->encoder->name;
  }
  /* queued before the lock goes: no frame can come first */
  *queued = answer (sub, s, ok);
  if (ok && !s->again) {
    /* the cursor as it is now, sent after the answer */
    offer_cursor (sub->scanout, sub, TRUE, TRUE);
    scanout_send_first_frame (sub);
  }
  g_mutex_unlock (&vm->lock);
  return ok;
}

void
bridge_vm_unsubscribe (Subscriber * sub)
{
  g_mutex_lock (&sub->vm->lock);
  scanout_unsubscribe (sub);
  g_mutex_unlock (&sub->vm->lock);
}

gboolean
bridge_vm_is_subscribed (Subscriber * sub)
{
  gboolean subscribed;

  g_mutex_lock (&sub->vm->lock);
  subscribed = sub->scanout != NULL;
  g_mutex_unlock (&sub->vm->lock);
  return subscribed;
}

void
bridge_vm_request_idr (Subscriber * sub)
{
  g_mutex_lock (&sub->vm->lock);
  if (sub->scanout)
    scanout_request_idr (sub->rendition);
  g_mutex_unlock (&sub->vm->lock);
}

void
bridge_vm_set_bitrate (Subscriber * sub, guint32 bitrate)
{
  g_mutex_lock (&sub->vm->lock);
  if (sub->scanout && bitrate)
    scanout_set_bitrate (sub, bitrate);
  g_mutex_unlock (&sub->vm->lock);
}

/* vm lock held: the VMM reports @so as a hotplug of this mode left it */
static gboolean
hotplug_is_done (Scanout * so, gboolean enable, const guint32 mode[3])
{
  if (!so->t_hotplug || so->state.enabled != enable)
    return FALSE;
  return !enable || memcmp (mode, so->hotplug_mode, sizeof
      (so->hotplug_mode)) == 0;
}

gboolean
bridge_vm_set_enabled (BridgeVm * vm, guint32 index, gboolean enable,
    guint32 width, guint32 height, guint32 refresh, GError ** error)
{
  const guint32 mode[3] = { width, height, refresh };
  Scanout *so = &vm->scanouts[MIN (index, BRIDGE_MAX_SCANOUTS - 1)];
  HxexWatch *w;
  gboolean ok;

  g_mutex_lock (&vm->lock);
  /* what the VMM always refuses is refused here, without a request, a
   * wait or a line in the VMM's log */
  if (index == 0 || index >= BRIDGE_MAX_SCANOUTS
      || (vm->n_scanouts && index >= vm->n_scanouts)) {
    g_set_error (error, HXFR_ERROR, HXFR_ERR_NO_SCANOUT, "scanout %u cannot "
        "be hotplugged (0 is the console; this VM has %u)", index,
        vm->n_scanouts);
    g_mutex_unlock (&vm->lock);
    return FALSE;
  }
  if (hotplug_is_done (so, enable, mode)) {
    /* a token-less client repeating itself: no hotplug event in the guest
     * for each */
    g_mutex_unlock (&vm->lock);
    return TRUE;
  }
  /* one hotplug per interval per scanout (bounded wait, on the asking
   * client's own thread) */
  while (so->t_hotplug && !vm->stopping
      && g_get_monotonic_time () < so->t_hotplug + HOTPLUG_INTERVAL_US)
    g_cond_wait_until (&vm->cond, &vm->lock, so->t_hotplug +
        HOTPLUG_INTERVAL_US);
  /* counted: the watch thread frees a lost watch only when unused */
  w = vm->watch_lost ? NULL : vm->watch;
  if (w)
    vm->watch_users++;
  so->t_hotplug = g_get_monotonic_time ();
  g_mutex_unlock (&vm->lock);
  if (!w) {
    g_set_error (error, G_IO_ERROR, G_IO_ERROR_NOT_CONNECTED,
        "the VM's helix export %s is not connected", vm->export_path);
    return FALSE;
  }
  ok = hxex_watch_set_enabled (w, index, enable, width, height,
      refresh, WATCH_TIMEOUT_US, error);
  g_mutex_lock (&vm->lock);
  if (ok)
    memcpy (so->hotplug_mode, mode, sizeof (so->hotplug_mode));
  vm->watch_users--;
  g_cond_broadcast (&vm->cond);
  g_mutex_unlock (&vm->lock);
  return ok;
}

/* Life cycle */

BridgeVm *
bridge_vm_new (const gchar * export_path, const BridgeScanoutConfig * cfg)
{
  BridgeVm *vm = g_new0 (BridgeVm, 1);
  guint i;

  if (!scanout_debug)
    GST_DEBUG_CATEGORY_INIT (scanout_debug, "hxscanout", 0,
        "bridge scanout encoders");
  vm->export_path = g_strdup (export_path);
  vm->cfg = *cfg;
  if (cfg->token)
    vm->cfg.token = g_bytes_ref (cfg->token);
  vm->t0 = g_get_monotonic_time ();
  g_mutex_init (&vm->lock);
  g_cond_init (&vm->cond);
  for (i = 0; i < BRIDGE_MAX_SCANOUTS; i++) {
    guint k;

    vm->scanouts[i].vm = vm;
    vm->scanouts[i].index = i;
    for (k = 0; k < BRIDGE_MAX_RENDITIONS; k++) {
      vm->scanouts[i].renditions[k].so = &vm->scanouts[i];
      vm->scanouts[i].renditions[k].subscribers = g_ptr_array_new ();
    }
  }
  return vm;
}

void
bridge_vm_ensure_watching (BridgeVm * vm)
{
  gint64 deadline = g_get_monotonic_time () + WATCH_TIMEOUT_US + G_USEC_PER_SEC;

  /* started by the first scanout client, so that a bridge serving only
   * frame sessions never holds a connection the VMM would count */
  g_mutex_lock (&vm->lock);
  if (!vm->watch_thread && !vm->stopping)
    vm->watch_thread = g_thread_new ("hx-watch", watch_thread, vm);
  /* the first subscriber waits for the first attempt (bounded), so that
   * it is not refused only because the scanouts are not known yet */
  while (!vm->watch_tried && !vm->stopping)
    if (!g_cond_wait_until (&vm->cond, &vm->lock, deadline))
      break;
  g_mutex_unlock (&vm->lock);
}

void
bridge_vm_stop (BridgeVm * vm)
{
  guint i;

  g_mutex_lock (&vm->lock);
  vm->stopping = TRUE;
  for (i = 0; i < BRIDGE_MAX_SCANOUTS; i++)
    end_subscribers (&vm->scanouts[i], HXFR_SCANOUT_END_SHUTDOWN,
        "the bridge is stopping");
  g_cond_broadcast (&vm->cond);
  g_mutex_unlock (&vm->lock);
}

void
bridge_vm_free (BridgeVm * vm)
{
  guint i;

  bridge_vm_stop (vm);
  if (vm->watch_thread)
    g_thread_join (vm->watch_thread);
  for (i = 0; i < BRIDGE_MAX_SCANOUTS; i++) {
    Scanout *so = &vm->scanouts[i];

    guint k;

    if (so->thread)
      g_thread_join (so->thread);
    g_clear_pointer (&so->cursor_pixels, g_bytes_unref);
    g_clear_pointer (&so->pending_snapshot, hxex_client_surface_free);
    for (k = 0; k < BRIDGE_MAX_RENDITIONS; k++) {
      g_clear_pointer (&so->renditions[k].last_frame,
          bridge_encoded_frame_unref);
      g_ptr_array_unref (so->renditions[k].subscribers);
    }
  }
  if (vm->watch)
    hxex_watch_free (vm->watch);
  if (vm->cfg.token)
    g_bytes_unref (vm->cfg.token);
  g_mutex_clear (&vm->lock);
  g_cond_clear (&vm->cond);
  g_free (vm->export_path);
  g_free (vm);
}

void
bridge_vm_get_stats (BridgeVm * vm, BridgeVmStats * stats)
{
  g_mutex_lock (&vm->lock);
  *stats = vm->stats;
  g_mutex_unlock (&vm->lock);
}
