/* helix-host-bridge: the command line. GOptionContext (the --help text
 * below), the checks, the bridge's configuration made from it, and the
 * encoder of each codec (--encoder, or the first installed).
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <string.h>
#include <gst/gst.h>

#include "hxfr-host-session.h"
#include "bridge.h"
#include "bridge-options.h"
#include "bridge-encoder.h"

#define DEFAULT_MAX_SESSIONS 16
#define DEFAULT_MAX_DIMENSION 8192
#define DEFAULT_IDLE_TIMEOUT 5.0
#define DEFAULT_DRAIN_TIMEOUT 5.0
/* A guest connects when its pipeline starts and sends its first message at
 * once (HELLO) or with its first frame (v1): a connection silent for this
 * long is not a guest and must not keep a session slot. */
#define DEFAULT_FIRST_MESSAGE_TIMEOUT 30.0
#define DEFAULT_BITRATE 4000000
#define DEFAULT_UNIX_MODE "0660"
/* as deployed: helix's QEMU re-encodes a static screen after 500 ms */
#define DEFAULT_QUIET_INTERVAL 0.5
#define DEFAULT_MAX_SUBSCRIBERS_PER_SCANOUT 8

static const gchar description[] =
    "Accepts guests (vsockenc, or deployed HXFR v1 guests) and encodes their\n"
    "frames to H.264 on the host: one pipeline per connection,\n"
    "  vsocksrc ! [videoconvert] ! ENCODER ! h264parse ! appsink,\n"
    "each access unit sent back as the answer to its request.\n"
    "\n"
    "Addresses (--listen, repeatable; default tcp:127.0.0.1:15937):\n"
    "  vsock:PORT          vsock, any CID (guests connect to CID 2, port 5000)\n"
    "  tcp:HOST:PORT       TCP (QEMU user networking: guests reach the host\n"
    "                      loopback at 10.0.2.2, so use tcp:127.0.0.1:15937)\n"
    "  unix:PATH           UNIX socket. Hybrid-vsock VMMs (Firecracker,\n"
    "                      cloud-hypervisor, vhost-device-vsock) deliver a\n"
    "                      guest's connection to port P on <uds_path>_P:\n"
    "                      serve them with unix:<uds_path>_P\n"
    "\n"
    "Encoders (--encoder), per codec the guest asks for (auto: the first\n"
    "installed of each, in this order; VideoToolbox only on macOS):\n"
    "  H.264 (vsockenc, v1 guests, scanouts): vtenc_h264_hw, nvh264enc,\n"
    "    vah264enc, vah264lpenc, qsvh264enc, x264enc, openh264enc\n"
    "  H.265 (vsockh265enc): vtenc_h265_hw, nvh265enc, vah265enc,\n"
    "    vah265lpenc, qsvh265enc, x265enc\n"
    "  AV1 (vsockav1enc): nvav1enc, vaav1enc, qsvav1enc, av1enc (svtav1enc\n"
    "    only by name)\n"
    "A codec with no encoder is refused (ERROR -8, naming it); auto needs an\n"
    "H.264 one. --encoder NAME serves NAME's codec only. 'null' is for\n"
    "benchmarks only: every H.264 frame is answered with a fixed 6-byte\n"
    "access unit, nothing is encoded.\n"
    "\n"
    "Zero copy: with --export unix:PATH (the helix export of the VMM, e.g.\n"
    "QEMU with virtio-gpu-gl), frames a guest names by virtio-gpu resource\n"
    "id are resolved there and encoded from the shared readback slot or the\n"
    "DMA-BUF the VMM hands over; each session has its own export connection,\n"
    "made when it starts. Without it such frames fail one by one (FAILED -2);\n"
    "if the VMM goes away they fail with that reason (FAILED -99); the\n"
    "session goes on. See docs/zero-copy.md.\n"
    "\n"
    "Scanouts: a connection whose first message subscribes to a virtio-gpu\n"
    "scanout (v2 SUBSCRIBE2, or helix's deployed SUBSCRIBE/ENABLE_SCANOUT/\n"
    "DISABLE_SCANOUT) is served from the VM's export (the listener's\n"
    "export=unix:PATH, else --export): the bridge encodes what the scanout\n"
    "shows on every flush, one encoder per scanout and codec (SUBSCRIBE2's;\n"
    "at most 4) shared by its subscribers, an IDR for each new one, the\n"
    "last image again after --scanout-quiet-interval on a static screen.\n"
    "Deployed clients (H.264) have no token: a listener takes them only\n"
    "with ',deployed', e.g.\n"
    "  --listen 'tcp:127.0.0.1:15937,deployed,export=unix:/run/helix/vm1-export.sock'\n"
    "See docs/protocol.md section 11 and docs/deploy.md.\n"
    "\n"
    "Access: UNIX sockets get --unix-mode and, with --allow-uid, only those\n"
    "peer uids; vsock peers are checked against --allow-cid; with --token or\n"
    "--token-file, every guest must present the token in its v2 HELLO\n"
    "(v1 guests, which cannot, are refused): refused guests get ERROR -7.\n"
    "\n"
    "Metrics (--metrics tcp:127.0.0.1:PORT or unix:PATH, off by default):\n"
    "Prometheus text over HTTP/1.0, GET /metrics: sessions now and in all,\n"
    "frames requested/encoded/dropped/failed, bytes each way, refusals,\n"
    "an encode-time histogram, labelled with the encoder. No access\n"
    "control: keep it on loopback or a UNIX socket. Port 0 picks a free\n"
    "port, logged as \"metrics on ADDR\".\n"
    "\n"
    "SIGINT/SIGTERM: stop accepting, drain the sessions (bounded by\n"
    "--drain-timeout), remove socket files, exit 0. One log line per\n"
    "session start and end on stderr, and at most one per 10 s while a\n"
    "guest changes its bitrate.\n"
    "\n"
    "Resources: a session holds at most --max-in-flight + 2 frames of\n"
    "pixels (each within --max-frame-mb; padding beyond what the planes\n"
    "need is bounded) besides its encoder's own, and about 6 file\n"
    "descriptors. The soft descriptor limit is raised to the hard one at\n"
    "start; a new guest is refused (ERROR -10) while 16 are not free.\n"
    "See docs/security.md.";

static gboolean
parse_uint_list (gchar ** in, GArray * out, const gchar * what, GError ** error)
{
  for (; in && *in; in++) {
    guint64 v;

    if (!g_ascii_string_to_unsigned (*in, 10, 0, G_MAXUINT32, &v, error)) {
      g_prefix_error (error, "%s: ", what);
      return FALSE;
    }
    g_array_append_val (out, v);
  }
  return TRUE;
}

void
bridge_options_clear (Options * o)
{
  g_strfreev (o->listen);
  g_free (o->encoder);
  g_free (o->token);
  g_free (o->token_file);
  g_free (o->unix_mode_s);
  g_free (o->export);
  g_free (o->metrics);
  g_strfreev (o->allow_uid);
  g_strfreev (o->allow_cid);
}

/* The options table is long, not complicated: one entry per option. */
gboolean
bridge_options_parse (Options * o, int *argc, char ***argv, GError ** error)
{
  const GOptionEntry entries[] = {
    {"listen", 'l', 0, G_OPTION_ARG_STRING_ARRAY, &o->listen,
          "Listen on ADDR (repeatable): vsock:PORT, tcp:HOST:PORT, unix:PATH; "
          "options after commas: export=unix:PATH (this listener's VM), "
          "deployed (take helix's scanout clients, which have no token)",
        "ADDR[,OPT...]"},
    {"export", 0, 0, G_OPTION_ARG_STRING, &o->export,
        "The VMM's helix export socket (unix:PATH): resource-id frames are "
          "resolved there, without a copy", "ADDR"},
    {"encoder", 'e', 0, G_OPTION_ARG_STRING, &o->encoder,
          "Encoder element (H.264, H.265 or AV1: only its codec is then "
          "served), 'auto' (default: one per codec, hardware first) or "
          "'null' (bench only)",
        "NAME"},
    {"bitrate", 'b', 0, G_OPTION_ARG_INT, &o->bitrate,
          "Bitrate in bit/s until the guest asks for one (default 4000000)",
        "BPS"},
    {"max-sessions", 0, 0, G_OPTION_ARG_INT, &o->max_sessions,
        "Guests served at once; more get ERROR -10 (default 16)", "N"},
    {"max-sessions-per-peer", 0, 0, G_OPTION_ARG_INT, &o->max_sessions_per_peer,
        "Sessions one peer (vsock CID, UNIX uid, TCP address) may hold at "
          "once; more get ERROR -10 (default 0: only --max-sessions)", "N"},
    {"max-width", 0, 0, G_OPTION_ARG_INT, &o->max_width,
        "Widest frame accepted (default 8192)", "PIXELS"},
    {"max-height", 0, 0, G_OPTION_ARG_INT, &o->max_height,
        "Tallest frame accepted (default 8192)", "PIXELS"},
    {"max-frame-mb", 0, 0, G_OPTION_ARG_INT, &o->max_frame_mb,
        "Pixel MiB one frame may carry (default 0: what --max-width x "
          "--max-height needs); a session holds at most --max-in-flight + 2 "
          "frames", "MIB"},
    {"max-in-flight", 0, 0, G_OPTION_ARG_INT, &o->max_in_flight,
        "Unanswered requests a guest may have; more get ERROR -9 "
          "(default 8)", "N"},
    {"idle-timeout", 0, 0, G_OPTION_ARG_DOUBLE, &o->idle_timeout,
        "Seconds a begun message may take to arrive in full; then ERROR -11 "
          "(default 5)", "SECONDS"},
    {"first-message-timeout", 0, 0, G_OPTION_ARG_DOUBLE,
          &o->first_message_timeout,
        "Seconds a new connection may stay silent before its first message; "
          "then ERROR -11 (default 30)", "SECONDS"},
    {"drain-timeout", 0, 0, G_OPTION_ARG_DOUBLE, &o->drain_timeout,
          "Seconds to drain sessions on SIGINT/SIGTERM (default 5)",
        "SECONDS"},
    {"unix-mode", 0, 0, G_OPTION_ARG_STRING, &o->unix_mode_s,
        "Octal mode of UNIX socket files (default 0660)", "MODE"},
    {"allow-uid", 0, 0, G_OPTION_ARG_STRING_ARRAY, &o->allow_uid,
        "Only accept UNIX peers with this uid (repeatable)", "UID"},
    {"allow-cid", 0, 0, G_OPTION_ARG_STRING_ARRAY, &o->allow_cid,
        "Only accept vsock peers with this CID (repeatable)", "CID"},
    {"token", 0, 0, G_OPTION_ARG_STRING, &o->token,
        "Shared secret every guest must send in its v2 HELLO "
          "(visible in ps: prefer --token-file)", "TOKEN"},
    {"token-file", 0, 0, G_OPTION_ARG_FILENAME, &o->token_file,
        "Read the token from FILE (trailing newline removed)", "FILE"},
    {"scanout-quiet-interval", 0, 0, G_OPTION_ARG_DOUBLE, &o->quiet_interval,
          "Seconds after which a static scanout's last image is encoded again, "
          "so that subscribers keep receiving frames (default 0.5; 0: never)",
        "SECONDS"},
    {"max-subscribers-per-scanout", 0, 0, G_OPTION_ARG_INT, &o->max_subscribers,
        "Subscribers one scanout may have (default 8); all subscribers and "
          "guests together are bounded by --max-sessions", "N"},
    {"metrics", 0, 0, G_OPTION_ARG_STRING, &o->metrics,
        "Serve Prometheus metrics on ADDR (tcp:HOST:PORT, unix:PATH); "
          "keep it on loopback", "ADDR"},
    {"version", 0, 0, G_OPTION_ARG_NONE, &o->version, "Print the version",
        NULL},
    {NULL}
  };
  GOptionContext *ctx;
  gboolean ok;

  o->max_sessions = DEFAULT_MAX_SESSIONS;
  o->max_width = o->max_height = DEFAULT_MAX_DIMENSION;
  o->max_in_flight = HXFR_HOST_DEFAULT_MAX_IN_FLIGHT;
  o->bitrate = DEFAULT_BITRATE;
  o->idle_timeout = DEFAULT_IDLE_TIMEOUT;
  o->drain_timeout = DEFAULT_DRAIN_TIMEOUT;
  o->first_message_timeout = DEFAULT_FIRST_MESSAGE_TIMEOUT;
  o->quiet_interval = DEFAULT_QUIET_INTERVAL;
  o->max_subscribers = DEFAULT_MAX_SUBSCRIBERS_PER_SCANOUT;
  ctx = g_option_context_new ("- encode guests' frames on the host");
  g_option_context_set_description (ctx, description);
  g_option_context_add_main_entries (ctx, entries, NULL);
  g_option_context_add_group (ctx, gst_init_get_option_group ());
  ok = g_option_context_parse (ctx, argc, argv, error);
  g_option_context_free (ctx);
  return ok;
}

static gboolean
read_token (Bridge * b, Options * o, GError ** error)
{
  if (o->token_file) {
    gchar *contents;
    gsize len;

    if (!g_file_get_contents (o->token_file, &contents, &len, error))
      return FALSE;
    while (len && (contents[len - 1] == '\n' || contents[len - 1] == '\r'))
      len--;
    contents[len] = '\0';
    g_free (o->token);
    o->token = contents;
  }
  if (!o->token)
    return TRUE;
  if (!*o->token || strlen (o->token) > HXFR_MAX_TOKEN) {
    g_set_error (error, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE,
        "the token must be 1..%d bytes", HXFR_MAX_TOKEN);
    return FALSE;
  }
  b->cfg.token = g_bytes_new (o->token, strlen (o->token));
  return TRUE;
}

/* Checks the options and sets the bridge's configuration from them. */
gboolean
bridge_options_apply (Bridge * b, Options * o, GError ** error)
{
  const gchar *m = o->unix_mode_s ? o->unix_mode_s : DEFAULT_UNIX_MODE;
  gchar *end = NULL;
  guint64 mode = g_ascii_strtoull (m, &end, 8);

  b->allow_uid = g_array_new (FALSE, FALSE, sizeof (guint));
  b->allow_cid = g_array_new (FALSE, FALSE, sizeof (guint));
  if (!parse_uint_list (o->allow_uid, b->allow_uid, "--allow-uid", error)
      || !parse_uint_list (o->allow_cid, b->allow_cid, "--allow-cid", error))
    return FALSE;
  if (o->max_sessions < 1 || o->max_sessions_per_peer < 0
      || o->max_width < 1 || o->max_height < 1 || o->max_in_flight < 1
      || o->max_in_flight > 64 || o->bitrate < 1 || o->max_frame_mb < 0
      || o->idle_timeout <= 0 || o->drain_timeout < 0
      || o->first_message_timeout <= 0 || o->quiet_interval < 0
      || o->max_subscribers < 1) {
    g_set_error_literal (error, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE,
        "limits must be positive (max-in-flight at most 64)");
    return FALSE;
  }
  if (!*m || *end || mode > 0777) {
    g_set_error (error, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE,
        "--unix-mode wants an octal mode such as 0660, not \"%s\"", m);
    return FALSE;
  }
  b->unix_mode = mode;

  hxfr_host_config_init (&b->cfg);
  b->cfg.limits.max_width = o->max_width;
  b->cfg.limits.max_height = o->max_height;
  b->cfg.limits.max_frame_bytes = (guint64) o->max_frame_mb * 1024 * 1024;
  b->cfg.max_in_flight = o->max_in_flight;
  b->cfg.idle_timeout_us = (gint64) (o->idle_timeout * G_USEC_PER_SEC);
  if (!read_token (b, o, error))
    return FALSE;
  if (o->export) {
    b->export_path = g_strdup (g_str_has_prefix (o->export, "unix:") ?
        o->export + 5 : o->export);
    if (!*b->export_path) {
      g_set_error_literal (error, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE,
          "--export wants unix:PATH");
      return FALSE;
    }
  }
  b->listen = g_steal_pointer (&o->listen);
  b->bitrate = o->bitrate;
  b->max_sessions = o->max_sessions;
  b->max_sessions_per_peer = o->max_sessions_per_peer;
  b->max_in_flight = o->max_in_flight;
  b->drain_timeout = o->drain_timeout;
  b->first_message_timeout = o->first_message_timeout;
  return TRUE;
}

/* HxfrHostConfig.codec_func: the session's codec has an encoder here. */
static const gchar *
choose_codec (guint32 codec, gpointer user_data, GError ** error)
{
  Bridge *b = user_data;
  gint i = bridge_codec_index (codec);
  gchar fourcc[5];
  guint k;

  if (i >= 0 && b->encoders[i].name)
    return b->encoders[i].name;
  if (i >= 0) {
    g_set_error_literal (error, HXFR_ERROR, HXFR_ERR_UNSUPPORTED,
        b->no_encoder[i]);
    return NULL;
  }
  for (k = 0; k < 4; k++) {
    gchar c = (codec >> (8 * k)) & 0xff;

    fourcc[k] = g_ascii_isprint (c) ? c : '?';
  }
  fourcc[4] = '\0';
  g_set_error (error, HXFR_ERROR, HXFR_ERR_UNSUPPORTED, "codec %s "
      "(0x%08x) is none this bridge knows (H264, H265, AV01)", fourcc, codec);
  return NULL;
}

/* @name as the encoder of its codec. Says why on stderr if it cannot be. */
static gboolean
set_encoder (Bridge * b, const gchar * name)
{
  GstElementFactory *factory = gst_element_factory_find (name);
  BridgeEncoderChoice *c;
  guint32 codec;

  if (!factory) {
    g_printerr ("helix-host-bridge: encoder %s is not installed\n", name);
    return FALSE;
  }
  codec = bridge_encoder_codec_of (factory);
  if (!codec) {
    g_printerr ("helix-host-bridge: %s produces none of H.264, H.265 and "
        "AV1\n", name);
    gst_object_unref (factory);
    return FALSE;
  }
  c = &b->encoders[bridge_codec_index (codec)];
  c->codec = codec;
  c->name = gst_plugin_feature_get_name (factory);
  c->desc = bridge_encoder_lookup (name);
  c->need_convert = !bridge_encoder_takes_all_formats (factory);
  /* the name is the factory's, which the registry keeps */
  gst_object_unref (factory);
  return TRUE;
}

/* --encoder NAME: that encoder, and only its codec is served; auto: for
 * each codec the first installed of the table's (H.264 required). Says
 * why on stderr if it cannot. */
gboolean
bridge_options_choose_encoder (Bridge * b, const Options * o)
{
  const gchar *encoder = o->encoder;
  gint h264 = bridge_codec_index (HXFR_CODEC_H264);
  const gchar *served = NULL;
  guint i;

  b->cfg.codec_func = choose_codec;
  b->cfg.codec_data = b;
  if (encoder && g_str_equal (encoder, BRIDGE_ENCODER_NULL)) {
    b->null_encoder = TRUE;
    b->encoders[h264].codec = HXFR_CODEC_H264;
    b->encoders[h264].name = BRIDGE_ENCODER_NULL;
  } else if (encoder && !g_str_equal (encoder, "auto")) {
    if (!set_encoder (b, encoder))
      return FALSE;
  } else {
    for (i = 0; i < BRIDGE_N_CODECS; i++) {
      guint32 codec = bridge_codec_get (i);
      const gchar *name = bridge_encoder_auto (codec);

      if (name && !set_encoder (b, name))
        return FALSE;
    }
    if (!b->encoders[h264].name) {
      gchar *tried = bridge_encoder_auto_list (HXFR_CODEC_H264);

      g_printerr ("helix-host-bridge: no H.264 encoder installed (tried "
          "%s)\n", tried);
      g_free (tried);
      return FALSE;
    }
  }
  for (i = 0; i < BRIDGE_N_CODECS; i++)
    if (b->encoders[i].name)
      served = bridge_codec_name (b->encoders[i].codec);
  for (i = 0; i < BRIDGE_N_CODECS; i++) {
    guint32 codec = bridge_codec_get (i);
    gchar *tried;

    if (b->encoders[i].name)
      continue;
    if (encoder && !g_str_equal (encoder, "auto")) {
      b->no_encoder[i] = g_strdup_printf ("%s cannot be encoded here: this "
          "bridge runs with --encoder %s, which encodes %s only",
          bridge_codec_name (codec), encoder, served);
      continue;
    }
    tried = bridge_encoder_auto_list (codec);
    b->no_encoder[i] = g_strdup_printf ("%s cannot be encoded here: no %s "
        "encoder is installed (%s)", bridge_codec_name (codec),
        bridge_codec_name (codec), tried);
    g_free (tried);
  }
  b->encoder_name = g_strdup (b->encoders[h264].name ? b->encoders[h264].name
      : encoder);
  {
    GString *line = g_string_new ("encoders:");

    for (i = 0; i < BRIDGE_N_CODECS; i++)
      g_string_append_printf (line, "%s %s %s", i ? "," : "",
          bridge_codec_name (bridge_codec_get (i)), b->encoders[i].name ?
          b->encoders[i].name : "none");
    bridge_log_line ("%s", line->str);
    g_string_free (line, TRUE);
  }
  g_strlcpy (b->cfg.encoder, b->encoder_name, sizeof (b->cfg.encoder));
  return TRUE;
}
