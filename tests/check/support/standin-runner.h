/* Runs the built stand-in VMM (host-bridge/export/helix-standin-vmm) in
 * --serve-only mode for the end-to-end tests: its helix export on a UNIX
 * socket in a temporary directory, commands on its stdin, every stdout
 * line kept so that a test can wait (bounded) for a reply or for an
 * asynchronous line such as HOTPLUG.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#pragma once

#include <gio/gio.h>

G_BEGIN_DECLS

typedef struct _StandinRunner StandinRunner;

/* Starts it with --serve-only --export-socket TMP/export.sock and
 * @extra_args (NULL-terminated, may be NULL), waits for READY. NULL when
 * the stand-in is not built or virglrenderer cannot start here (exit 77):
 * the caller skips. Fails the test if it starts and dies otherwise. */
StandinRunner *standin_runner_start (const gchar * const *extra_args);

const gchar *standin_runner_get_socket_path (StandinRunner * r);
/* "unix:<socket path>", for the bridge's --export or export= */
const gchar *standin_runner_get_export_address (StandinRunner * r);

/* Sends @cmd (no newline) and returns its answer line (owned): the next
 * line starting with SCANOUT, FLIPPED, RATE, STATS, CREATED, OK or
 * FAILED. Fails the test if none comes within 20 s. */
gchar *standin_runner_command (StandinRunner * r, const gchar * cmd);
/* The same, failing the test unless the answer starts with @want. */
void standin_runner_command_expect (StandinRunner * r, const gchar * cmd,
    const gchar * want);

/* Waits (up to @timeout_s) until @count stdout lines contain @needle. */
gboolean standin_runner_wait_line (StandinRunner * r, const gchar * needle,
    guint count, guint timeout_s);
guint standin_runner_count_lines (StandinRunner * r, const gchar * needle);

/* A number from "stats" ("flips1", "flushes", ...). */
guint64 standin_runner_stat (StandinRunner * r, const gchar * key);

/* End of input (quit), bounded wait, then kill; removes the directory. */
void standin_runner_stop (StandinRunner * r);

G_END_DECLS
