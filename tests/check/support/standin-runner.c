/* See standin-runner.h.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "standin-runner.h"
#include "line-reader.h"
#include "text-number.h"

#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <glib/gstdio.h>
#include <gst/check/gstcheck.h>

#define READY_TIMEOUT_S 30
#define ANSWER_TIMEOUT_S 20
#define STOP_TIMEOUT_S 10

struct _StandinRunner
{
  GSubprocess *proc;            /* NULL once killed */
  LineReader *out;              /* its stdout; NULL once killed */
  GStrv argv;                   /* for a restart */
  gchar *dir;
  gchar *socket_path;
  gchar *address;
  guint32 resource;
  guint next;                   /* standin_runner_next_line()'s line */
};

static gint64
deadline_in (guint seconds)
{
  return g_get_monotonic_time () + seconds * G_USEC_PER_SEC;
}

gchar *
standin_runner_path (void)
{
  const gchar *root = g_getenv ("HXFR_BUILD_ROOT");
  gchar *exe = g_build_filename (root ? root : ".", "tests", "standin",
      "helix-standin-vmm", NULL);

  if (!g_file_test (exe, G_FILE_TEST_IS_EXECUTABLE)) {
    GST_WARNING ("no helix-standin-vmm (virglrenderer missing): skipped");
    g_clear_pointer (&exe, g_free);
  }
  return exe;
}

/* Waits (bounded) for the end of its stdout, kills it if need be, and
 * reaps it. */
static void
reap (StandinRunner * r)
{
  if (!line_reader_wait_eof (r->out, deadline_in (STOP_TIMEOUT_S)))
    g_subprocess_force_exit (r->proc);
  g_subprocess_wait (r->proc, NULL, NULL);
}

/* Starts r->argv and waits for READY. FALSE if it exited 77 (no
 * virglrenderer here); fails the test on any other start failure. */
static gboolean
spawn (StandinRunner * r)
{
  static const gchar *const ready[] = { "READY", NULL };
  GError *err = NULL;
  guint from = 0;
  gchar *line;

  r->proc = g_subprocess_newv ((const gchar * const *) r->argv,
      G_SUBPROCESS_FLAGS_STDIN_PIPE | G_SUBPROCESS_FLAGS_STDOUT_PIPE, &err);
  fail_unless (r->proc != NULL, "cannot start the stand-in VMM: %s",
      err ? err->message : "");
  r->out = line_reader_start (g_subprocess_get_stdout_pipe (r->proc),
      "standin-stdout", NULL, NULL);
  line = line_reader_find (r->out, &from, ready, deadline_in (READY_TIMEOUT_S));
  if (!line) {
    reap (r);
    if (g_subprocess_get_if_exited (r->proc)
        && g_subprocess_get_exit_status (r->proc) == 77)
      return FALSE;
    fail ("the stand-in VMM did not become READY");
  }
  fail_unless (sscanf (line, "READY socket=%*s resource=%u width=%*u "
          "height=%*u", &r->resource) == 1, "unexpected READY: %s", line);
  g_free (line);
  r->next = from;
  return TRUE;
}

static void
free_runner (StandinRunner * r)
{
  if (r->out)
    line_reader_free (r->out);
  g_clear_object (&r->proc);
  g_unlink (r->socket_path);
  g_rmdir (r->dir);
  g_strfreev (r->argv);
  g_free (r->dir);
  g_free (r->socket_path);
  g_free (r->address);
  g_free (r);
}

StandinRunner *
standin_runner_start (const gchar * const *extra_args)
{
  gchar *exe = standin_runner_path ();
  StandinRunner *r;
  GPtrArray *argv;

  if (!exe)
    return NULL;
  r = g_new0 (StandinRunner, 1);
  r->dir = g_dir_make_tmp ("hxstandin-XXXXXX", NULL);
  r->socket_path = g_build_filename (r->dir, "export.sock", NULL);
  r->address = g_strconcat ("unix:", r->socket_path, NULL);

  argv = g_ptr_array_new ();
  g_ptr_array_add (argv, exe);
  g_ptr_array_add (argv, g_strdup ("--serve-only"));
  g_ptr_array_add (argv, g_strdup ("--export-socket"));
  g_ptr_array_add (argv, g_strdup (r->socket_path));
  for (; extra_args && *extra_args; extra_args++)
    g_ptr_array_add (argv, g_strdup (*extra_args));
  g_ptr_array_add (argv, NULL);
  r->argv = (GStrv) g_ptr_array_free (argv, FALSE);

  if (!spawn (r)) {
    GST_WARNING ("virglrenderer could not start here: skipped");
    free_runner (r);
    return NULL;
  }
  return r;
}

const gchar *
standin_runner_get_socket_path (StandinRunner * r)
{
  return r->socket_path;
}

const gchar *
standin_runner_get_export_address (StandinRunner * r)
{
  return r->address;
}

guint32
standin_runner_get_resource (StandinRunner * r)
{
  return r->resource;
}

static void
send_line (StandinRunner * r, const gchar * cmd)
{
  GOutputStream *in = g_subprocess_get_stdin_pipe (r->proc);
  gchar *line = g_strconcat (cmd, "\n", NULL);

  fail_unless (g_output_stream_write_all (in, line, strlen (line), NULL, NULL,
          NULL), "writing '%s' to the stand-in", cmd);
  fail_unless (g_output_stream_flush (in, NULL, NULL));
  g_free (line);
}

gchar *
standin_runner_command (StandinRunner * r, const gchar * cmd)
{
  static const gchar *const answers[] = { "SCANOUT ", "FLIPPED ", "RATE ",
    "STATS ", "CREATED ", "CURSOR ", "MOVED ", "OK", "FAILED", NULL
  };
  /* the answer comes after the command: older lines are not it (each
   * line ends with "\n", so this counts them) */
  guint from = line_reader_count (r->out, "\n");
  gchar *answer;

  send_line (r, cmd);
  answer = line_reader_find (r->out, &from, answers,
      deadline_in (ANSWER_TIMEOUT_S));
  fail_unless (answer != NULL, "the stand-in did not answer '%s'", cmd);
  return answer;
}

void
standin_runner_command_expect (StandinRunner * r, const gchar * cmd,
    const gchar * want)
{
  gchar *a = standin_runner_command (r, cmd);

  fail_unless (g_str_has_prefix (a, want), "'%s' answered '%s', not %s...",
      cmd, a, want);
  g_free (a);
}

gchar *
standin_runner_next_line (StandinRunner * r)
{
  gchar *line = line_reader_find (r->out, &r->next, NULL,
      deadline_in (ANSWER_TIMEOUT_S));

  /* NULL at the end is an answer; NULL before it is the timeout */
  fail_unless (line != NULL || line_reader_wait_eof (r->out, 0),
      "the stand-in VMM said nothing in %d s", ANSWER_TIMEOUT_S);
  return line;
}

gchar *
standin_runner_ask (StandinRunner * r, const gchar * cmd)
{
  gchar *answer;

  send_line (r, cmd);
  answer = standin_runner_next_line (r);
  fail_unless (answer != NULL, "the stand-in ended before answering '%s'", cmd);
  return answer;
}

gchar *
standin_runner_ask_stats (StandinRunner * r)
{
  gchar *line = standin_runner_ask (r, "stats");

  fail_unless (g_str_has_prefix (line, "STATS "), "bad stats line: %s", line);
  return line;
}

guint64
standin_runner_ask_stat (StandinRunner * r, const gchar * key)
{
  gchar *stats = standin_runner_ask_stats (r);
  guint64 v = standin_runner_stat_in (stats, key);

  g_free (stats);
  return v;
}

guint
standin_runner_count_lines (StandinRunner * r, const gchar * needle)
{
  return line_reader_count (r->out, needle);
}

gboolean
standin_runner_wait_line (StandinRunner * r, const gchar * needle,
    guint count, guint timeout_s)
{
  return line_reader_wait_count (r->out, needle, count, timeout_s);
}

guint64
standin_runner_stat_in (const gchar * stats, const gchar * key)
{
  return text_number (stats, " ", key, "=");
}

guint64
standin_runner_stat (StandinRunner * r, const gchar * key)
{
  gchar *stats = standin_runner_command (r, "stats");
  guint64 v = standin_runner_stat_in (stats, key);

  g_free (stats);
  return v;
}

void
standin_runner_kill (StandinRunner * r)
{
  g_subprocess_force_exit (r->proc);
  reap (r);
  line_reader_free (r->out);
  r->out = NULL;
  g_clear_object (&r->proc);
}

void
standin_runner_restart (StandinRunner * r)
{
  fail_unless (spawn (r), "the stand-in VMM did not start again");
}

/* End of input = quit. */
static void
quit (StandinRunner * r)
{
  g_output_stream_close (g_subprocess_get_stdin_pipe (r->proc), NULL, NULL);
  reap (r);
}

void
standin_runner_stop (StandinRunner * r)
{
  if (r->proc)
    quit (r);
  free_runner (r);
}

void
standin_runner_stop_checked (StandinRunner * r)
{
  if (r->proc) {
    quit (r);
    if (g_subprocess_get_if_exited (r->proc)) {
      fail_unless_equals_int (g_subprocess_get_exit_status (r->proc), 0);
      fail_if (g_file_test (r->socket_path, G_FILE_TEST_EXISTS),
          "the stand-in left its socket file");
    }
  }
  free_runner (r);
}
