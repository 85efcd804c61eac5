/* A scripted HXFR host for the vsockenc tests, written on the core library:
 * listens on a UNIX socket in a temporary directory, answers in v1 or v2,
 * records what the guest sent, and injects faults on request.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#pragma once

#include <gst/gst.h>
#include "hxfr-transport.h"

G_BEGIN_DECLS

typedef enum
{
  FAKE_HOST_V2,
  FAKE_HOST_V1,                 /* answers HELLO with ERROR -1 */
  FAKE_HOST_V2_CLOSE_ON_HELLO,  /* hangs up on HELLO, then speaks v1 */
  FAKE_HOST_PING_ON_HELLO,      /* never answers HELLO: PINGs every 300 ms
                                 * until the guest leaves (30 s at most) */
} FakeHostMode;

typedef enum
{
  FAKE_FAULT_NONE,
  FAKE_FAULT_ERROR,             /* ERROR instead of the answer, then close */
  FAKE_FAULT_CLOSE,             /* close instead of answering */
  FAKE_FAULT_BAD_MAGIC,         /* an answer whose header has a bad magic */
  FAKE_FAULT_NAL_COUNT,         /* v1: a FRAME_RESPONSE with 2^31 NAL entries */
  FAKE_FAULT_PAYLOAD_SIZE,      /* a header announcing a 4 GiB payload */
  FAKE_FAULT_TRUNCATE,          /* half an answer, then silence */
  FAKE_FAULT_SILENCE,           /* never answer from then on */
  FAKE_FAULT_WRONG_SEQ,         /* v2: an answer echoing another seq */
  FAKE_FAULT_DROP,              /* v2: DROPPED (the session goes on) */
  FAKE_FAULT_FAILED,            /* v2: FAILED (the session goes on) */
  FAKE_FAULT_FRAME_ERROR,       /* ERROR -2 for it; the session goes on */
  FAKE_FAULT_PING,              /* PING and CONFIG_RESP before the answer */
} FakeFault;

/* One request as received. */
typedef struct
{
  guint8 type;
  guint8 flags;
  guint connection;             /* 0 for the first connection */
  HxfrFrameRequest req;
  guint32 payload_size;
  GBytes *pixels;               /* NULL without PIXEL_DATA */
  guint outstanding;            /* unanswered requests when it arrived */
} FakeHostFrame;

/* CONTROL, CONFIG_REQ and KEYFRAME_REQ as received. */
typedef struct
{
  guint8 type;
  guint32 mask;
  guint32 bitrate;
  guint32 keyframe_interval;
  guint frames_before;          /* requests received before it */
} FakeHostControl;

typedef struct _FakeHost FakeHost;

FakeHost *fake_host_new (FakeHostMode mode);
/* Listens on @path (its directory must exist and is left in place). */
FakeHost *fake_host_new_at (FakeHostMode mode, const gchar * path);
/* Listens on TCP 127.0.0.1, a free port. */
FakeHost *fake_host_new_tcp (FakeHostMode mode);
guint fake_host_get_port (FakeHost * host);
void fake_host_free (FakeHost * host);
const gchar *fake_host_get_path (FakeHost * host);

/* Request @at (0-based, counted over all connections) gets @fault. */
void fake_host_set_fault (FakeHost * host, FakeFault fault, guint at);
/* max_in_flight granted at most (default 16). */
void fake_host_set_grant (FakeHost * host, guint grant);
/* Answers wait while held. */
void fake_host_set_hold (FakeHost * host, gboolean hold);
/* Each answer goes out this long after its request (default 0). */
void fake_host_set_delay (FakeHost * host, guint delay_ms);
/* An encoder that takes this long per frame, one frame at a time: a frame
 * waits for the ones before it, and its host_time_us says so (default 0:
 * none). */
void fake_host_set_service_time (FakeHost * host, guint service_ms);
/* Answers go out this long after the host is done with them, time that
 * host_time_us does not count: a link's delay (default 0). */
void fake_host_set_link_delay (FakeHost * host, guint delay_ms);
/* HELLO must carry this token, else ERROR -7 and close (NULL: any). */
void fake_host_set_token (FakeHost * host, const gchar * token);
/* The token of the last HELLO, NULL if none (free with g_free). */
gchar *fake_host_get_hello_token (FakeHost * host);
/* Encode the pixels with an in-process x264enc instead of canned AUs. */
void fake_host_set_real_encoder (FakeHost * host, gboolean real);

gboolean fake_host_wait_frames (FakeHost * host, guint n, gint64 timeout_us);
gboolean fake_host_wait_connections (FakeHost * host, guint n,
    gint64 timeout_us);
/* Waits until @n connections have ended on the host side. */
gboolean fake_host_wait_closed (FakeHost * host, guint n, gint64 timeout_us);
gboolean fake_host_wait_controls (FakeHost * host, guint n,
    gint64 timeout_us);
guint fake_host_n_frames (FakeHost * host);
guint fake_host_n_connections (FakeHost * host);
guint fake_host_n_hellos (FakeHost * host);
guint fake_host_n_answered (FakeHost * host);
/* Waits until the host has sent @n answers (its count goes up after each
 * is sent, so a client can have one before the count has it). */
gboolean fake_host_wait_answered (FakeHost * host, guint n,
    gint64 timeout_us);
gboolean fake_host_wait_pongs (FakeHost * host, guint n, gint64 timeout_us);
/* Copies; pixels are shared. */
FakeHostFrame fake_host_get_frame (FakeHost * host, guint i);
guint fake_host_n_controls (FakeHost * host);
FakeHostControl fake_host_get_control (FakeHost * host, guint i);

G_END_DECLS
