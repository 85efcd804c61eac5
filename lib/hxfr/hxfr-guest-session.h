/* The guest side of one HXFR connection: connect, negotiate (v2 HELLO with
 * the v1 fallbacks of docs/protocol.md section 6), send requests, and a
 * reader thread that matches every answer to its request, answers PINGs,
 * maps v1 ERRORs and bounds every wait for an answer. Plus the reconnect
 * back-off. GLib/GIO only: vsockenc (gst/guest/gstvsockenc.c) is its
 * user and keeps everything that is GStreamer (frames, caps, the bus).
 *
 * One HxfrGuestSession is one connection: a reconnect is a new session.
 *
 * Threads and locks:
 * - What was negotiated (HxfrGuestInfo) is written once, by
 *   hxfr_guest_session_connect(), before the reader thread exists, and
 *   never after: any thread holding a reference reads it without a lock.
 * - session->lock guards the requests in flight (their seq, send time and
 *   deadline, the caller's tag), the next seq, the closed flag and the
 *   adaptive window's estimates (hxfr-window.h; the window itself is an
 *   atomic, read by senders without the lock). No socket I/O and no
 *   callback runs with it held.
 * - Sends may come from any thread (HxfrConn serialises writes); the
 *   reader thread is the only one that reads.
 * - The callbacks run on the reader thread with no session lock held.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#pragma once

#include <gio/gio.h>
#include "hxfr-protocol.h"
#include "hxfr-transport.h"

G_BEGIN_DECLS

/* What the guest asks for; copied by hxfr_guest_session_connect(). */
typedef struct
{
  const HxfrAddress *address;
  guint32 codec;                /* HXFR_CODEC_*; 0: H264. Not H264: v2 only
                                 * (HXFR v1 is H.264) */
  gboolean v1_only;             /* no HELLO: speak v1 as deployed guests do */
  guint max_in_flight;          /* asked for, >= 1 */
  gboolean adaptive_window;     /* v2: frames in flight follow the link and
                                 * the host (hxfr-window.h), up to what was
                                 * granted; else always what was granted */
  guint32 bitrate;              /* bit/s, for HELLO */
  guint32 keyframe_interval;    /* for HELLO */
  gboolean resource_ids;        /* HELLO guest flag: may send resource ids */
  const gchar *token;           /* NULL: none; at most HXFR_MAX_TOKEN used */
  gint64 timeout_us;            /* connect + negotiation, and each answer */
  GCancellable *cancellable;    /* kept (a reference) for every wait */
} HxfrGuestConfig;

/* What was negotiated: immutable once the session exists. */
typedef struct
{
  guint version;                /* 1 or 2 */
  guint32 codec;                /* HXFR_CODEC_*, as asked */
  guint in_flight_max;          /* granted (v1: 1) */
  gboolean host_resource_ids;   /* the host can resolve resource ids */
  guint32 host_max_width;
  guint32 host_max_height;
  gchar host_encoder[HXFR_ENCODER_NAME_SIZE];   /* "" for v1 */
} HxfrGuestInfo;

/* One answer, matched to its request. */
typedef struct
{
  guint32 seq;
  HxfrFrameStatus status;       /* OK, DROPPED or FAILED */
  gboolean keyframe;
  gboolean v1_error;            /* FAILED from a v1 ERROR (no round trip
                                 * time: v1 ERRORs were never timed) */
  gint64 rtt_us;                /* request sent to answer read */
  gint64 host_us;               /* v2: of that, in the host; -1 in v1 */
  gint32 error_code;            /* FAILED */
  const gchar *text;            /* FAILED: the host's message */
  guint8 *data;                 /* OK: the access unit (Annex B), owned by
                                 * the callee (g_free); NULL if empty */
  gsize size;
} HxfrGuestAnswer;

typedef struct _HxfrGuestSession HxfrGuestSession;

typedef struct
{
  /* Every request's answer, in order, with the tag it was sent with.
   * Return FALSE (and set @error) to end the session as a bad answer. */
  gboolean (*answer) (HxfrGuestSession * session,
      HxfrGuestAnswer * answer, gpointer tag, gpointer user_data,
      GError ** error);
  /* The session failed (read error, host ERROR, timeout, bad answer):
   * called once by the reader, as its last act; @what says which. The
   * session's requests in flight are forgotten before the call. */
  void (*lost) (HxfrGuestSession * session, const gchar * what,
      const GError * error, gpointer user_data);
} HxfrGuestCallbacks;

/* Connects and negotiates, bounded by config->timeout_us as a whole. */
HxfrGuestSession *hxfr_guest_session_connect (const HxfrGuestConfig * config,
    GError ** error);
HxfrGuestSession *hxfr_guest_session_ref (HxfrGuestSession * session);
void hxfr_guest_session_unref (HxfrGuestSession * session);

const HxfrGuestInfo *hxfr_guest_session_get_info (HxfrGuestSession *
    session);
guint64 hxfr_guest_session_get_bytes_sent (HxfrGuestSession * session);
guint64 hxfr_guest_session_get_bytes_received (HxfrGuestSession * session);

/* Frames that may be in flight now: the adaptive window, or what was
 * granted (v1: 1). Any thread. */
guint hxfr_guest_session_get_window (HxfrGuestSession * session);
/* The adaptive window's estimates (hxfr-window.h), 0 until measured or
 * when the window is not adaptive: the host's service time per frame and
 * the link's part of a round trip, µs. Any thread. */
void hxfr_guest_session_get_window_estimates (HxfrGuestSession * session,
    guint64 * service_us, guint64 * link_us);

/* Starts the reader thread; once per session. */
void hxfr_guest_session_start (HxfrGuestSession * session,
    const HxfrGuestCallbacks * callbacks, gpointer user_data);

/* Sends a FRAME_REQUEST2 (v2) or FRAME_REQUEST (v1): req->seq is filled
 * in, and the request is in flight (with @tag) before a byte is sent, so
 * its answer may come at once. @pixels: the pixel bytes (n_pixels 0 with a
 * resource id). */
gboolean hxfr_guest_session_send_frame (HxfrGuestSession * session,
    HxfrFrameRequest * req, const GOutputVector * pixels, guint n_pixels,
    gpointer tag, GError ** error);

/* Settings: CONTROL (v2: bitrate unless 0, keyframe interval, framerate
 * when known) or CONFIG_REQ (v1: size, bitrate, framerate). */
typedef struct
{
  guint32 bitrate;              /* 0: the host's default */
  guint32 keyframe_interval;
  guint32 width;
  guint32 height;
  guint32 fps_n;                /* 0: unknown */
  guint32 fps_d;
} HxfrGuestSettings;

gboolean hxfr_guest_session_send_settings (HxfrGuestSession * session,
    const HxfrGuestSettings * settings, GError ** error);

/* Ends both directions: the reader wakes, reports the loss and ends. Any
 * thread, any number of times. */
void hxfr_guest_session_shutdown (HxfrGuestSession * session);
/* Shuts down and joins the reader (not from a callback). */
void hxfr_guest_session_stop (HxfrGuestSession * session);

/* Reconnect back-off: 100 ms doubling to 5 s. */
#define HXFR_BACKOFF_MIN_MS 100
#define HXFR_BACKOFF_MAX_MS 5000

typedef struct
{
  guint ms;                     /* the last wait, 0 after a success */
  gint64 next_us;               /* monotonic: no attempt before */
} HxfrBackoff;

void hxfr_backoff_reset (HxfrBackoff * b);
/* TRUE when an attempt may be made now. */
gboolean hxfr_backoff_due (const HxfrBackoff * b, gint64 now_us);
/* An attempt failed: the next wait (ms), doubled. */
guint hxfr_backoff_failed (HxfrBackoff * b, gint64 now_us);

G_END_DECLS
