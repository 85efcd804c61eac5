/* helix-host-bridge: the command line (bridge-options.c): parsed, checked,
 * turned into the bridge's configuration, and the encoder of each codec.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#pragma once

#include <glib.h>

#include "bridge.h"

G_BEGIN_DECLS

/* The command line, as parsed */
typedef struct
{
  gchar **listen;
  gchar *encoder, *token, *token_file, *unix_mode_s, *export, *metrics;
  gchar **allow_uid, **allow_cid;
  gint max_sessions_per_peer, max_sessions, max_width, max_height,
      max_in_flight, bitrate, max_frame_mb, max_subscribers;
  gdouble idle_timeout, drain_timeout, first_message_timeout, quiet_interval;
  gboolean version;
} Options;

/* The options table is long, not complicated: one entry per option. */
gboolean bridge_options_parse (Options * o, int *argc, char ***argv,
    GError ** error);
/* Checks the options and sets the bridge's configuration from them. */
gboolean bridge_options_apply (Bridge * b, Options * o, GError ** error);
/* --encoder NAME: that encoder, and only its codec is served; auto: for
 * each codec the first installed of the table's (H.264 required). Says
 * why on stderr if it cannot. */
gboolean bridge_options_choose_encoder (Bridge * b, const Options * o);
void bridge_options_clear (Options * o);

G_END_DECLS
