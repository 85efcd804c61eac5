/* See standin-runner.h.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "standin-runner.h"

#include <stdlib.h>
#include <string.h>
#include <glib/gstdio.h>
#include <gst/check/gstcheck.h>

#define READY_TIMEOUT_S 30
#define ANSWER_TIMEOUT_S 20
#define STOP_TIMEOUT_S 10

struct _StandinRunner
{
  GSubprocess *proc;
  GThread *reader;
  gchar *dir;
  gchar *socket_path;
  gchar *address;

  GMutex lock;
  GCond cond;
  GPtrArray *lines;             /* gchar*, every stdout line; lock */
  gboolean eof;
};

static gpointer
reader_thread (gpointer data)
{
  StandinRunner *r = data;
  GDataInputStream *in = g_data_input_stream_new
      (g_subprocess_get_stdout_pipe (r->proc));
  gchar *line;

  while ((line = g_data_input_stream_read_line_utf8 (in, NULL, NULL, NULL))) {
    g_mutex_lock (&r->lock);
    g_ptr_array_add (r->lines, line);
    g_cond_broadcast (&r->cond);
    g_mutex_unlock (&r->lock);
  }
  g_mutex_lock (&r->lock);
  r->eof = TRUE;
  g_cond_broadcast (&r->cond);
  g_mutex_unlock (&r->lock);
  g_object_unref (in);
  return NULL;
}

static void
free_runner (StandinRunner * r)
{
  if (r->reader)
    g_thread_join (r->reader);
  g_clear_object (&r->proc);
  if (r->socket_path)
    g_unlink (r->socket_path);
  if (r->dir)
    g_rmdir (r->dir);
  g_free (r->dir);
  g_free (r->socket_path);
  g_free (r->address);
  g_ptr_array_unref (r->lines);
  g_mutex_clear (&r->lock);
  g_cond_clear (&r->cond);
  g_free (r);
}

/* The first line at or after *@from starting with one of @prefixes (lock
 * held); *@from is moved past it. */
static const gchar *
find_locked (StandinRunner * r, guint * from, const gchar * const *prefixes)
{
  for (; *from < r->lines->len; (*from)++) {
    const gchar *l = g_ptr_array_index (r->lines, *from);
    guint i;

    for (i = 0; prefixes[i]; i++)
      if (g_str_has_prefix (l, prefixes[i])) {
        (*from)++;
        return l;
      }
  }
  return NULL;
}

StandinRunner *
standin_runner_start (const gchar * const *extra_args)
{
  const gchar *root = g_getenv ("HXFR_BUILD_ROOT");
  static const gchar *const ready[] = { "READY", NULL };
  gchar *exe = g_build_filename (root ? root : ".", "host-bridge", "export",
      "helix-standin-vmm", NULL);
  StandinRunner *r;
  GPtrArray *argv;
  GError *err = NULL;
  gint64 deadline;
  guint from = 0;
  gboolean ok;

  if (!g_file_test (exe, G_FILE_TEST_IS_EXECUTABLE)) {
    GST_WARNING ("no helix-standin-vmm (virglrenderer missing): skipped");
    g_free (exe);
    return NULL;
  }
  r = g_new0 (StandinRunner, 1);
  g_mutex_init (&r->lock);
  g_cond_init (&r->cond);
  r->lines = g_ptr_array_new_with_free_func (g_free);
  r->dir = g_dir_make_tmp ("hxstandin-XXXXXX", NULL);
  r->socket_path = g_build_filename (r->dir, "export.sock", NULL);
  r->address = g_strconcat ("unix:", r->socket_path, NULL);

  argv = g_ptr_array_new ();
  g_ptr_array_add (argv, exe);
  g_ptr_array_add (argv, (gpointer) "--serve-only");
  g_ptr_array_add (argv, (gpointer) "--export-socket");
  g_ptr_array_add (argv, r->socket_path);
  for (; extra_args && *extra_args; extra_args++)
    g_ptr_array_add (argv, (gpointer) * extra_args);
  g_ptr_array_add (argv, NULL);
  r->proc = g_subprocess_newv ((const gchar * const *) argv->pdata,
      G_SUBPROCESS_FLAGS_STDIN_PIPE | G_SUBPROCESS_FLAGS_STDOUT_PIPE, &err);
  g_ptr_array_unref (argv);
  g_free (exe);
  fail_unless (r->proc != NULL, "cannot start the stand-in VMM: %s",
      err ? err->message : "");
  r->reader = g_thread_new ("standin-stdout", reader_thread, r);

  deadline = g_get_monotonic_time () + READY_TIMEOUT_S * G_USEC_PER_SEC;
  g_mutex_lock (&r->lock);
  while (!(ok = find_locked (r, &from, ready) != NULL) && !r->eof)
    if (!g_cond_wait_until (&r->cond, &r->lock, deadline))
      break;
  g_mutex_unlock (&r->lock);
  if (!ok) {
    g_subprocess_wait (r->proc, NULL, NULL);
    if (r->eof && g_subprocess_get_if_exited (r->proc)
        && g_subprocess_get_exit_status (r->proc) == 77) {
      GST_WARNING ("virglrenderer could not start here: skipped");
      free_runner (r);
      return NULL;
    }
    fail ("the stand-in VMM did not become READY");
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

gchar *
standin_runner_command (StandinRunner * r, const gchar * cmd)
{
  static const gchar *const answers[] = { "SCANOUT ", "FLIPPED ", "RATE ",
    "STATS ", "CREATED ", "OK", "FAILED", NULL
  };
  GOutputStream *in = g_subprocess_get_stdin_pipe (r->proc);
  gchar *line = g_strconcat (cmd, "\n", NULL);
  gint64 deadline = g_get_monotonic_time () + ANSWER_TIMEOUT_S *
      G_USEC_PER_SEC;
  const gchar *found;
  gchar *answer;
  guint from;

  g_mutex_lock (&r->lock);
  from = r->lines->len;
  g_mutex_unlock (&r->lock);
  fail_unless (g_output_stream_write_all (in, line, strlen (line), NULL, NULL,
          NULL), "writing '%s' to the stand-in", cmd);
  fail_unless (g_output_stream_flush (in, NULL, NULL));
  g_free (line);
  g_mutex_lock (&r->lock);
  while (!(found = find_locked (r, &from, answers)) && !r->eof)
    if (!g_cond_wait_until (&r->cond, &r->lock, deadline))
      break;
  if (!found)
    found = find_locked (r, &from, answers);
  answer = g_strdup (found);
  g_mutex_unlock (&r->lock);
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

static guint
count_locked (StandinRunner * r, const gchar * needle)
{
  guint i, n = 0;

  for (i = 0; i < r->lines->len; i++)
    if (strstr (g_ptr_array_index (r->lines, i), needle))
      n++;
  return n;
}

guint
standin_runner_count_lines (StandinRunner * r, const gchar * needle)
{
  guint n;

  g_mutex_lock (&r->lock);
  n = count_locked (r, needle);
  g_mutex_unlock (&r->lock);
  return n;
}

gboolean
standin_runner_wait_line (StandinRunner * r, const gchar * needle,
    guint count, guint timeout_s)
{
  gint64 deadline = g_get_monotonic_time () + timeout_s * G_USEC_PER_SEC;
  gboolean ok;

  g_mutex_lock (&r->lock);
  while (!(ok = count_locked (r, needle) >= count) && !r->eof)
    if (!g_cond_wait_until (&r->cond, &r->lock, deadline))
      break;
  ok = count_locked (r, needle) >= count;
  g_mutex_unlock (&r->lock);
  return ok;
}

guint64
standin_runner_stat (StandinRunner * r, const gchar * key)
{
  gchar *stats = standin_runner_command (r, "stats");
  gchar *needle = g_strconcat (" ", key, "=", NULL);
  const gchar *p = strstr (stats, needle);
  guint64 v;

  fail_unless (p != NULL, "no %s in %s", key, stats);
  v = g_ascii_strtoull (p + strlen (needle), NULL, 10);
  g_free (needle);
  g_free (stats);
  return v;
}

void
standin_runner_stop (StandinRunner * r)
{
  gint64 deadline = g_get_monotonic_time () + STOP_TIMEOUT_S *
      G_USEC_PER_SEC;

  /* end of input = quit */
  g_output_stream_close (g_subprocess_get_stdin_pipe (r->proc), NULL, NULL);
  g_mutex_lock (&r->lock);
  while (!r->eof)
    if (!g_cond_wait_until (&r->cond, &r->lock, deadline))
      break;
  g_mutex_unlock (&r->lock);
  if (!r->eof)
    g_subprocess_force_exit (r->proc);
  g_subprocess_wait (r->proc, NULL, NULL);
  free_runner (r);
}
