/* A thread that reads a child's output pipe line by line and keeps every
 * line, so that a test can wait (bounded) for a line, count what the
 * child said, or read its lines in order: the one reader under both
 * bridge-runner (stderr) and standin-runner (stdout).
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#pragma once

#include <gio/gio.h>

G_BEGIN_DECLS typedef struct _LineReader LineReader;

/* Called from the reader thread with each line as it comes. */
typedef void (*LineReaderTee) (const gchar * line, gpointer data);

/* Reads @in (not owned; it must outlive the reader) in a thread named
 * @name; @tee (may be NULL) sees each line. */
LineReader *line_reader_start (GInputStream * in, const gchar * name,
    LineReaderTee tee, gpointer data);
/* Joins the thread: the child must have closed the pipe (exited). */
void line_reader_free (LineReader * r);

/* How often @needle stands in the output (lines joined by '\n', so "\n"
 * counts lines). */
guint line_reader_count (LineReader * r, const gchar * needle);
/* Waits until @needle stands @count times, the pipe ends, or @timeout_s
 * passes; whether it stands @count times. */
gboolean line_reader_wait_count (LineReader * r, const gchar * needle,
    guint count, guint timeout_s);
/* Waits until the pipe ends or @deadline (monotonic time); whether it
 * ended. */
gboolean line_reader_wait_eof (LineReader * r, gint64 deadline);
/* A copy of the output so far. */
gchar *line_reader_get_text (LineReader * r);

/* A copy of the first line at or after line *@from that starts with one
 * of @prefixes (NULL: any line), waiting until @deadline; *@from moves
 * past it. NULL if none came by then or before the pipe ended. */
gchar *line_reader_find (LineReader * r, guint * from,
    const gchar * const *prefixes, gint64 deadline);

G_END_DECLS
