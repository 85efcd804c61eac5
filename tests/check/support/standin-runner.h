/* Runs the built stand-in VMM (tests/standin/helix-standin-vmm) in
 * --serve-only mode for the end-to-end tests: its helix export on a UNIX
 * socket in a temporary directory, commands on its stdin, every stdout
 * line kept (support/line-reader) so that a test can wait (bounded) for a
 * reply or for an asynchronous line such as HOTPLUG.
 *
 * Two ways to read its answers: standin_runner_command() picks the answer
 * out of the lines that come after the command (for tests where HOTPLUG
 * and SCANOUT lines come in between), standin_runner_ask() takes the next
 * line in order (for tests that read every line, STALLING and all).
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#pragma once

#include <gio/gio.h>

G_BEGIN_DECLS typedef struct _StandinRunner StandinRunner;

/* The stand-in's path (owned); NULL, with a warning, when it is not built
 * (no virglrenderer). */
gchar *standin_runner_path (void);

/* Starts it with --serve-only --export-socket TMP/export.sock and
 * @extra_args (NULL-terminated, may be NULL), waits for READY. NULL when
 * the stand-in is not built or virglrenderer cannot start here (exit 77):
 * the caller skips. Fails the test if it starts and dies otherwise. */
StandinRunner *standin_runner_start (const gchar * const *extra_args);

const gchar *standin_runner_get_socket_path (StandinRunner * r);
/* "unix:<socket path>", for the bridge's --export or export= */
const gchar *standin_runner_get_export_address (StandinRunner * r);
/* The resource it made at start (its READY line). */
guint32 standin_runner_get_resource (StandinRunner * r);

/* Sends @cmd (no newline) and returns its answer line (owned): the next
 * line starting with SCANOUT, FLIPPED, RATE, STATS, CREATED, CURSOR,
 * MOVED, OK or FAILED. Fails the test if none comes within 20 s. */
gchar *standin_runner_command (StandinRunner * r, const gchar * cmd);
/* The same, failing the test unless the answer starts with @want. */
void standin_runner_command_expect (StandinRunner * r, const gchar * cmd,
    const gchar * want);

/* The next stdout line in order (owned; the first is the one after
 * READY); NULL once the stand-in has ended. Fails the test if none comes
 * within 20 s. */
gchar *standin_runner_next_line (StandinRunner * r);
/* Sends @cmd and returns standin_runner_next_line(), failing the test if
 * the stand-in ended instead. */
gchar *standin_runner_ask (StandinRunner * r, const gchar * cmd);
/* standin_runner_ask (r, "stats"), failing unless the line is STATS. */
gchar *standin_runner_ask_stats (StandinRunner * r);
/* A number from standin_runner_ask_stats(). */
guint64 standin_runner_ask_stat (StandinRunner * r, const gchar * key);

/* Waits (up to @timeout_s) until @needle stands @count times in its
 * stdout (each HOTPLUG line once). */
gboolean standin_runner_wait_line (StandinRunner * r, const gchar * needle,
    guint count, guint timeout_s);
guint standin_runner_count_lines (StandinRunner * r, const gchar * needle);

/* A number from "stats" ("flips1", "flushes", ...), asked with
 * standin_runner_command(). */
guint64 standin_runner_stat (StandinRunner * r, const gchar * key);
/* The number after " @key=" in a STATS line; fails the test if none. */
guint64 standin_runner_stat_in (const gchar * stats, const gchar * key);

/* SIGKILL: it dies at once, its export connections drop, its socket file
 * stays behind, stale. Its lines so far are forgotten. */
void standin_runner_kill (StandinRunner * r);
/* After standin_runner_kill(): the same command line again, on the same
 * socket path; fails the test unless it becomes READY. */
void standin_runner_restart (StandinRunner * r);

/* End of input (quit), bounded wait, then kill; removes the directory. */
void standin_runner_stop (StandinRunner * r);
/* The same, failing the test if the stand-in exited with a status other
 * than 0 or left its socket file (a clean shutdown removes it); one that
 * was killed is not checked. */
void standin_runner_stop_checked (StandinRunner * r);

G_END_DECLS
