/* Scanout subscriptions from a test's side: the stand-in VMM and the bridge
 * started together, a raw client of either dialect written from the specs
 * (deployed: ../shared/PROTOCOL-scanout.md, exactly as helix's Go reader;
 * v2: docs/protocol.md 11.2), H.264 access-unit checks, decoding against
 * the stand-in's pattern, and a subscriber reading on a thread. Shared by
 * the scanout suites; every wait is bounded.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#pragma once

#include <gst/check/gstcheck.h>
#include <gst/video/video.h>

#include "bridge-runner.h"
#include "standin-runner.h"
#include "video-compare.h"
#include "hxfr-scanout.h"

#define FRAME_TIMEOUT_US (5 * G_USEC_PER_SEC)
#define SW 160                  /* scanout 1's size in most tests */
#define SH 120
#define PATTERN_STRIDE 64       /* flip f of scanout K: pattern f + 64 K */
/* luma PSNR threshold for decoded frames vs the pattern */
#define MAX_MSE VIDEO_COMPARE_MAX_MSE_30DB

/* the usual stand-in: 4 scanouts, scanout 1 160x120 flipping at @hz */
#define STANDIN_ARGS(hz) { "--width", "64", "--height", "48", \
    "--scanouts", "4", "--scanout", "1:160x120@" hz, NULL }

typedef struct
{
  StandinRunner *vmm;
  BridgeRunner *bridge;
} Env;

typedef struct
{
  int fd;
} Cl;

typedef enum
{
  RD_OK,
  RD_EOF,
  RD_TIMEOUT,
} Rd;

typedef struct
{
  guint8 type;
  guint16 session_id;
  guint32 size;
  guint8 *payload;
} Msg;

typedef struct
{
  gboolean keyframe;
  guint8 flags;                 /* v2 frame_flags */
  guint32 width, height;        /* v2 */
  guint32 seq;                  /* v2 */
  gint64 pts;
  guint64 capture_time;         /* v2 */
  guint16 session_id;
  GBytes *au;
  gint64 t_arrival;
} Frame;

typedef struct
{
  guint type;
  gsize start_code;             /* 3 or 4 */
  const guint8 *data;           /* after the start code */
  gsize size;
} Nal;

typedef struct
{
  Cl *cl;
  gboolean v2;
  GThread *thread;
  GMutex lock;
  GArray *frames;               /* Frame (au not kept); lock */
  gboolean paused;              /* stops reading; lock */
  gboolean stop;
  gboolean eof;
  gint32 end_reason;
} Reader;

/* @standin_args: after --serve-only; @listen_opts: appended to the
 * export= option (e.g. "deployed"); @bridge_args: more bridge options. */
Env *
env_start (const gchar * const *standin_args, const gchar * listen_opts,
    const gchar * const *bridge_args);

void
env_stop (Env * e);

Cl *
cl_connect_path (const gchar * path);

Cl *
cl_connect (Env * e);

void
cl_close (Cl * c);

/* False when the peer closed (EPIPE, ECONNRESET). */
gboolean
cl_write (Cl * c, const guint8 * buf, gsize len);

/* A header as helix's Go codec writes it: little-endian, packed */
void
put_header (guint8 out[12], guint8 type, guint16 session_id,
    guint32 payload_size);

guint32
le32 (const guint8 * p);

void
put_le32 (guint8 * p, guint32 v);

/* Sends a message whose header declares @declared bytes (a lie if it is
 * not @len). */
gboolean
cl_send (Cl * c, guint8 type, guint16 session_id, const guint8 * payload,
    gsize len, guint32 declared);

/* One whole message (payload at most 16 MiB, else the test fails). */
Rd
rd_msg (Cl * c, Msg * m, gint64 timeout_us);

void
msg_clear (Msg * m);

/* Drains until EOF; TRUE if it came within @timeout_us. */
gboolean
wait_eof (Cl * c, gint64 timeout_us);

/* SUBSCRIBE as the Go client sends it; the first message back must be a
 * SUBSCRIBE_RESP, within 5 s. Returns its success field. */
guint32
deployed_subscribe (Cl * c, guint32 index);

void
frame_clear (Frame * f);

/* A pushed frame exactly as the Go reader takes it; anything but a
 * FRAME_RESPONSE fails the test (it would kill helix's stream). */
Rd
deployed_frame (Cl * c, Frame * f, gint64 timeout_us);

/* deployed pts: the per-scanout frame counter at 60 fps */
gint64
deployed_index (const Frame * f);

/* SUBSCRIBE2; returns 0 and fills *ack on SUBSCRIBE2_ACK, else the ERROR
 * code (text in @text if not NULL). */
gint32
v2_subscribe (Cl * c, guint32 index, const gchar * token,
    HxfrSubscribe2Ack * ack, gchar ** text);

/* The same, asking for @bitrate (bit/s; 0: the host's default). */
gint32
v2_subscribe_at (Cl * c, guint32 index, guint32 bitrate, const gchar * token,
    HxfrSubscribe2Ack * ack, gchar ** text);

/* The same, with SUBSCRIBE2 @flags (HXFR_SUBSCRIBE2_*). */
gint32
v2_subscribe_flags (Cl * c, guint32 index, guint32 bitrate, guint32 flags,
    const gchar * token, HxfrSubscribe2Ack * ack, gchar ** text);
/* RD_OK with a frame; RD_EOF also after a SCANOUT_END (*end_reason set,
 * else 0) or an ERROR (-code in *end_reason). */
Rd
v2_frame (Cl * c, Frame * f, gint64 timeout_us, gint32 * end_reason);

/* The NAL units of an Annex B access unit; fails unless it starts with a
 * start code. */
GArray *
au_nals (GBytes * au);

gboolean
au_has_idr (GBytes * au);

/* is_keyframe exactly on IDR access units; SPS then PPS (4-byte start
 * codes) before the first IDR slice. */
void
check_au (const Frame * f);

/* The picture size an access unit's SPS says (FALSE: no SPS). */
gboolean
au_sps_size (GBytes * au, guint * width, guint * height);

/* Decodes @aus (GBytes*, starting with an IDR) to I420 samples. */
GPtrArray *
decode_aus (GPtrArray * aus);

/* The pattern frame (mod 256) closest to decoded @s, and its MSE. */
guint
best_pattern (GstSample * s, gdouble * mse);

/* Every decoded frame is the pattern of scanout @k: frame f + 64 k with
 * f in [0, @max_flip] (wrapped at 256), PSNR >= 30 dB. */
void
check_pattern (GPtrArray * decoded, guint k, guint64 max_flip);

guint64
flips (Env * e, guint k);

/* @cl subscribed already */
Reader *
reader_start (Cl * cl, gboolean v2);

guint
reader_count (Reader * r);

void
reader_pause (Reader * r, gboolean paused);

/* Waits (bounded) until @r has @n frames. */
gboolean
reader_wait (Reader * r, guint n, guint timeout_s);

void
reader_stop (Reader * r);

/* A subscriber of scanout 1 (deployed, or v2) reading on a thread, once it
 * has 20 frames */
Reader *
streaming_reader (Env * e, gboolean v2);

/* Frames of @readers counted over @seconds (a measuring window). */
void
count_window (Reader ** readers, guint n, gdouble seconds, guint * counts);
