/* The host side of one HXFR connection: handshake (v2 HELLO or a v1 guest
 * detected from its first message), the reading of requests, and the
 * in-order queue of pending requests that pairs every answer with its
 * request and answers each exactly once. Used by vsocksrc (both when it
 * listens itself and when the bridge hands it a session) and by
 * helix-host-bridge; no other code answers a guest.
 *
 * Threads: one reader (the thread that calls handshake/next/read_pixels),
 * any number of answering threads, and the session's own writer, started
 * by the handshake: it alone writes answers and PONGs, in queue order. No
 * lock is held while writing, so a guest that sends its whole window
 * before it reads is still read from while its first answer waits.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#pragma once

#include "hxfr-transport.h"

G_BEGIN_DECLS

/* Requests a v2 guest may have unanswered unless the host says otherwise
 * (vsocksrc's max-in-flight, the bridge's --max-in-flight). */
#define HXFR_HOST_DEFAULT_MAX_IN_FLIGHT 8

/* Whether the host encodes @codec (HXFR_CODEC_*: the v2 HELLO's, H264 for
 * a v1 guest): the name of the encoder that will (HELLO_ACK's encoder), or
 * NULL with @error set, its message saying why (the ERROR UNSUPPORTED the
 * guest gets; at most HXFR_ERROR_TEXT_SIZE - 1 bytes are sent). Called on
 * the handshake's thread. */
typedef const gchar *(*HxfrHostCodecFunc) (guint32 codec, gpointer user_data,
    GError ** error);

typedef struct
{
  HxfrLimits limits;
  guint max_in_flight;          /* granted to v2 guests at most; also the
                                 * bound for v1 guests */
  GBytes *token;                /* NULL: no token required */
  gchar encoder[HXFR_ENCODER_NAME_SIZE];        /* when codec_func is NULL */
  HxfrHostCodecFunc codec_func; /* NULL: H264 only, by @encoder */
  gpointer codec_data;
  guint32 host_flags;
  gint64 idle_timeout_us;       /* rest of a begun message */
  gint64 write_timeout_us;      /* one answer */
} HxfrHostConfig;

void hxfr_host_config_init (HxfrHostConfig * cfg);

typedef struct _HxfrHostSession HxfrHostSession;

typedef enum
{
  HXFR_HOST_EVENT_FRAME,        /* a frame request: read its pixels next */
  HXFR_HOST_EVENT_KEYFRAME_REQ, /* the guest asked for an IDR (KEYFRAME_REQ) */
  HXFR_HOST_EVENT_EOS,          /* the guest closed the connection */
} HxfrHostEventType;

typedef struct
{
  HxfrHostEventType type;
  HxfrFrameRequest request;     /* FRAME */
  gsize pixel_size;             /* FRAME: bytes read_pixels() will read */
  gboolean force_keyframe;      /* FRAME: encode as IDR (guest's flag, a
                                 * KEYFRAME_REQ or the keyframe interval) */
} HxfrHostEvent;

/* Settings the guest asked for (HELLO, CONFIG_REQ, CONTROL). 0 = not set. */
typedef struct
{
  guint32 bitrate;              /* bit/s */
  guint32 keyframe_interval;    /* frames, 0 = only on request */
  guint32 fps_n;
  guint32 fps_d;
} HxfrHostSettings;

/* Called on the reader thread when the guest changes a setting; @mask is
 * the HXFR_CONTROL_* bits that changed. */
typedef void (*HxfrHostSettingsFunc) (HxfrHostSession * session,
    guint32 mask, const HxfrHostSettings * settings, gpointer user_data);

/* The ERROR text a v1 guest gets from a bridge that requires a token. */
#define HXFR_V1_TOKEN_REFUSAL "this bridge requires a token and HXFR v1 " \
  "guests cannot send one: serve v1 guests from a bridge without --token, " \
  "or upgrade the guest to vsockenc (HXFR v2, token property)"

/* Host time of OK answers (request fully read to its answer queued for
 * writing): buckets bounded by hxfr_host_time_bucket_us(), the last one
 * unbounded. */
#define HXFR_HOST_TIME_BUCKETS 12

typedef struct
{
  guint64 requests;
  guint64 answered_ok;
  guint64 dropped;
  guint64 failed;
  guint64 errors;               /* ERROR messages sent */
  guint64 bytes_in;
  guint64 bytes_out;
  guint64 host_time_buckets[HXFR_HOST_TIME_BUCKETS];    /* not cumulative */
  guint64 host_time_sum_us;
} HxfrHostStats;

/* Upper bound (inclusive, microseconds) of bucket @i; G_MAXUINT64 for the
 * last. */
guint64 hxfr_host_time_bucket_us (guint i);

HxfrHostSession *hxfr_host_session_new (HxfrConn * conn,
    const HxfrHostConfig * cfg);
/* A boxed type (ref/unref), so that vsocksrc takes it as a typed
 * property: a session of another layout cannot be handed over unnoticed. */
#define HXFR_TYPE_HOST_SESSION (hxfr_host_session_get_type ())
GType hxfr_host_session_get_type (void);
HxfrHostSession *hxfr_host_session_ref (HxfrHostSession * s);
void hxfr_host_session_unref (HxfrHostSession * s);

void hxfr_host_session_set_settings_func (HxfrHostSession * s,
    HxfrHostSettingsFunc func, gpointer user_data, GDestroyNotify notify);

/* 0 before the handshake, then 1 or 2. */
guint hxfr_host_session_get_version (HxfrHostSession * s);
/* After the handshake: the codec the session encodes (HXFR_CODEC_*). */
guint32 hxfr_host_session_get_codec (HxfrHostSession * s);
void hxfr_host_session_get_settings (HxfrHostSession * s,
    HxfrHostSettings * settings);
void hxfr_host_session_get_stats (HxfrHostSession * s, HxfrHostStats * stats);
/* The peer, for logs ("unix uid 1000", "tcp 127.0.0.1:40000"). */
const gchar *hxfr_host_session_get_peer (HxfrHostSession * s);

/* Reads the guest's first message. A HELLO is answered (HELLO_ACK, or
 * ERROR and close); any v1 message makes this a v1 session and is kept
 * for hxfr_host_session_next(). FALSE: the session is over (an ERROR has
 * been sent where the protocol wants one; @error says why). */
gboolean hxfr_host_session_handshake (HxfrHostSession * s,
    gint64 first_byte_timeout_us, GCancellable * cancellable,
    GError ** error);

/* Reads messages until one the caller must act on. PING, CONFIG_REQ,
 * CONTROL and resource-id frames the host cannot resolve are handled
 * here. After a FRAME event the caller must call read_pixels() before
 * next() again. A protocol violation is answered with ERROR, the
 * connection closed, and FALSE returned. */
gboolean hxfr_host_session_next (HxfrHostSession * s, HxfrHostEvent * event,
    GCancellable * cancellable, GError ** error);

/* Before the handshake: this session can resolve resource ids (a helix
 * export client is at hand). HELLO_ACK then says so (host_flags bit 0),
 * next() returns resource-id frames as FRAME events with pixel_size 0 and
 * the caller resolves them; and at most @max_in_flight requests are granted
 * (e.g. fewer than the export's readback slots; 0 = no change). */
void hxfr_host_session_set_resolves_resources (HxfrHostSession * s,
    guint max_in_flight);

/* The FRAME just returned cannot be served (e.g. its resource id is
 * unknown to the VMM): it is answered FAILED @code (v1: ERROR @code) in its
 * turn, and the session goes on. Its pixels, if any, are skipped. */
gboolean hxfr_host_session_fail_frame (HxfrHostSession * s, gint32 code,
    const gchar * text, GCancellable * cancellable, GError ** error);

/* Reads the pixels of the FRAME just returned into @dest (which holds
 * event->pixel_size bytes; NULL skips them) and queues the request, tagged
 * with @tag (e.g. the PTS of the buffer that carries it) for answer(). */
gboolean hxfr_host_session_read_pixels (HxfrHostSession * s, guint8 * dest,
    guint64 tag, GCancellable * cancellable, GError ** error);

/* Answers the request tagged @tag. Requests queued before it and still
 * unanswered are answered DROPPED first (the encoder skipped them).
 * OK: @au is one Annex B access unit (copied). DROPPED: nothing. FAILED:
 * @code and @text (v2 FAILED; v1 ERROR, the session goes on). In v1,
 * DROPPED is a FRAME_RESPONSE with no NAL entry (see docs). The writer
 * sends it; does not block. FALSE if no such request is pending (HXFR_ERROR)
 * or the connection has already failed (G_IO_ERROR). */
gboolean hxfr_host_session_answer (HxfrHostSession * s, guint64 tag,
    HxfrFrameStatus status, const guint8 * au, gsize au_size,
    gboolean keyframe, gint64 dts, gint32 code, const gchar * text,
    GError ** error);

/* Answers every pending request with @status (DROPPED or FAILED). */
void hxfr_host_session_answer_all (HxfrHostSession * s,
    HxfrFrameStatus status, gint32 code, const gchar * text);

/* Session-fatal: lets the answers already made leave (within the write
 * timeout), sends ERROR @code (once), ends our direction, discards
 * what the guest still sends for a short bounded time so that the ERROR is
 * read rather than lost to a reset, and shuts the connection down. */
void hxfr_host_session_fail (HxfrHostSession * s, gint32 code,
    const gchar * message);

/* Stops reading at the next message boundary: next() then returns EOS
 * (a message already begun is read in full, so every request read so far
 * can still be answered). For a draining shutdown. Any thread. */
void hxfr_host_session_stop_reading (HxfrHostSession * s);

/* Wakes a reader blocked in next()/read_pixels() (it sees EOS). */
void hxfr_host_session_shutdown (HxfrHostSession * s);

/* The HxfrErrorCode to send for a GError from the reader: HXFR_ERROR keeps
 * its code, a timeout mid-message is TIMEOUT, anything else INTERNAL. */
gint32 hxfr_host_error_code (const GError * error);

G_END_DECLS
