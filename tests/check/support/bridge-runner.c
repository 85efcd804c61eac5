/* See bridge-runner.h.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "bridge-runner.h"
#include "line-reader.h"

#include <sys/resource.h>

#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <glib/gstdio.h>
#include <gst/check/gstcheck.h>

#define START_TIMEOUT_S 20
#define STOP_TIMEOUT_S 30

struct _BridgeRunner
{
  GSubprocess *proc;
  gchar *dir;
  gchar *socket_path;
  gchar *address;
  guint port;

  LineReader *log;              /* its stderr */
  /* the bridge's log goes here when HXFR_TEST_LOG_DIR is set, else to
   * stderr: meson shows only the last 100 lines of a failed test's output,
   * and hundreds of bridge lines would hide the failed check */
  FILE *log_file;
};

/* The reader's tee: each line to the log file or our stderr. */
static void
tee_line (const gchar * line, gpointer data)
{
  BridgeRunner *r = data;

  if (r->log_file) {
    fprintf (r->log_file, "%s\n", line);
    fflush (r->log_file);
  } else {
    g_printerr ("[bridge] %s\n", line);
  }
}

guint
bridge_runner_count_log (BridgeRunner * r, const gchar * needle)
{
  return line_reader_count (r->log, needle);
}

gboolean
bridge_runner_wait_log (BridgeRunner * r, const gchar * needle, guint count,
    guint timeout_s)
{
  return line_reader_wait_count (r->log, needle, count, timeout_s);
}

gchar *
bridge_runner_get_log (BridgeRunner * r)
{
  return line_reader_get_text (r->log);
}

static void
free_runner (BridgeRunner * r)
{
  if (r->log)
    line_reader_free (r->log);
  g_clear_object (&r->proc);
  if (r->log_file)
    fclose (r->log_file);
  if (r->socket_path)
    g_unlink (r->socket_path);
  if (r->dir)
    g_rmdir (r->dir);
  g_free (r->dir);
  g_free (r->socket_path);
  g_free (r->address);
  g_free (r);
}

static void
open_log_file (BridgeRunner * r)
{
  const gchar *dir = g_getenv ("HXFR_TEST_LOG_DIR");
  gchar *path;

  if (!dir || !*dir)
    return;
  g_mkdir_with_parents (dir, 0755);
  path = g_strdup_printf ("%s/bridge-%s.log", dir,
      g_subprocess_get_identifier (r->proc));
  r->log_file = fopen (path, "w");
  if (r->log_file)
    g_printerr ("[bridge] log: %s\n", path);
  g_free (path);
}

/* In the child, before exec: the soft and hard descriptor limit. */
static void
set_fd_limit (gpointer data)
{
  struct rlimit rl;

  rl.rlim_cur = rl.rlim_max = GPOINTER_TO_UINT (data);
  setrlimit (RLIMIT_NOFILE, &rl);
}

/* The bridge registers a vsocksrc of its own build. A bridge that scans a
 * fresh registry in its own process (a sanitizer build does) would load
 * the vsocksrc plugin (gst/host) too, whose type clashes with it: not on
 * its path. */
static void
drop_vsocksrc_plugin (GSubprocessLauncher * launcher)
{
  const gchar *path = g_getenv ("GST_PLUGIN_PATH_1_0");
  gchar **dirs;
  GString *kept = g_string_new (NULL);
  guint i;

  if (!path)
    return;
  dirs = g_strsplit (path, G_SEARCHPATH_SEPARATOR_S, -1);
  for (i = 0; dirs[i]; i++) {
    if (g_str_has_suffix (dirs[i], G_DIR_SEPARATOR_S "gst" G_DIR_SEPARATOR_S
            "host"))
      continue;
    if (kept->len)
      g_string_append (kept, G_SEARCHPATH_SEPARATOR_S);
    g_string_append (kept, dirs[i]);
  }
  g_subprocess_launcher_setenv (launcher, "GST_PLUGIN_PATH_1_0", kept->str,
      TRUE);
  g_string_free (kept, TRUE);
  g_strfreev (dirs);
}

BridgeRunner *
bridge_runner_start (BridgeRunnerTransport transport,
    const gchar * const *extra_args)
{
  return bridge_runner_start_with_fd_limit (transport, extra_args, 0);
}

static BridgeRunner *start_full (BridgeRunnerTransport transport,
    const gchar * listen_opts, const gchar * const *extra_args, guint fd_limit);

BridgeRunner *
bridge_runner_start_with_fd_limit (BridgeRunnerTransport transport,
    const gchar * const *extra_args, guint fd_limit)
{
  return start_full (transport, NULL, extra_args, fd_limit);
}

BridgeRunner *
bridge_runner_start_with_listen_opts (BridgeRunnerTransport transport,
    const gchar * listen_opts, const gchar * const *extra_args)
{
  return start_full (transport, listen_opts, extra_args, 0);
}

static BridgeRunner *
start_full (BridgeRunnerTransport transport, const gchar * listen_opts,
    const gchar * const *extra_args, guint fd_limit)
{
  GSubprocessLauncher *launcher;
  BridgeRunner *r = g_new0 (BridgeRunner, 1);
  const gchar *root = g_getenv ("HXFR_BUILD_ROOT");
  GPtrArray *argv = g_ptr_array_new_with_free_func (g_free);
  GError *err = NULL;
  gchar *listen;

  r->dir = g_dir_make_tmp ("hxbridge-XXXXXX", NULL);
  if (transport == BRIDGE_RUNNER_UNIX) {
    r->socket_path = g_build_filename (r->dir, "hx.sock", NULL);
    listen = g_strconcat ("unix:", r->socket_path, NULL);
  } else {
    listen = g_strdup ("tcp:127.0.0.1:0");
  }
  if (listen_opts && *listen_opts) {
    gchar *l = g_strconcat (listen, ",", listen_opts, NULL);

    g_free (listen);
    listen = l;
  }

  g_ptr_array_add (argv, g_build_filename (root ? root : ".", "bridge",
          "helix-host-bridge", NULL));
  g_ptr_array_add (argv, g_strdup ("--listen"));
  g_ptr_array_add (argv, listen);
  for (; extra_args && *extra_args; extra_args++)
    g_ptr_array_add (argv, g_strdup (*extra_args));
  g_ptr_array_add (argv, NULL);

  launcher = g_subprocess_launcher_new (G_SUBPROCESS_FLAGS_STDERR_PIPE);
  drop_vsocksrc_plugin (launcher);
  if (fd_limit)
    g_subprocess_launcher_set_child_setup (launcher, set_fd_limit,
        GUINT_TO_POINTER (fd_limit), NULL);
  r->proc = g_subprocess_launcher_spawnv (launcher,
      (const gchar * const *) argv->pdata, &err);
  g_object_unref (launcher);
  g_ptr_array_unref (argv);
  if (!r->proc) {
    g_printerr ("cannot start the bridge: %s\n", err->message);
    g_error_free (err);
    free_runner (r);
    return NULL;
  }
  open_log_file (r);
  r->log = line_reader_start (g_subprocess_get_stderr_pipe (r->proc),
      "bridge-log", tee_line, r);

  if (!bridge_runner_wait_log (r, "listening on ", 1, START_TIMEOUT_S)) {
    gchar *log = bridge_runner_get_log (r);

    g_printerr ("the bridge did not start listening:\n%s\n", log);
    g_free (log);
    g_subprocess_force_exit (r->proc);
    free_runner (r);
    return NULL;
  }

  {
    gchar *log = line_reader_get_text (r->log);
    const gchar *p = strstr (log, "listening on ") + strlen ("listening on ");
    const gchar *end = strchr (p, ' ');

    r->address = g_strndup (p, end ? (gsize) (end - p) : strlen (p));
    g_free (log);
  }
  if (transport == BRIDGE_RUNNER_TCP) {
    const gchar *colon = strrchr (r->address, ':');

    r->port = colon ? atoi (colon + 1) : 0;
  }
  return r;
}

const gchar *
bridge_runner_get_address (BridgeRunner * r)
{
  return r->address;
}

const gchar *
bridge_runner_get_socket_path (BridgeRunner * r)
{
  return r->socket_path;
}

guint
bridge_runner_get_port (BridgeRunner * r)
{
  return r->port;
}

GPid
bridge_runner_get_pid (BridgeRunner * r)
{
  const gchar *id = g_subprocess_get_identifier (r->proc);

  return id ? (GPid) atoi (id) : 0;
}

static gint wait_exit (BridgeRunner * r, gboolean * socket_left);

gint
bridge_runner_stop (BridgeRunner * r, gboolean * socket_left)
{
  g_subprocess_send_signal (r->proc, SIGTERM);
  return wait_exit (r, socket_left);
}

gint
bridge_runner_wait (BridgeRunner * r, gboolean * socket_left)
{
  return wait_exit (r, socket_left);
}

static gint
wait_exit (BridgeRunner * r, gboolean * socket_left)
{
  gint64 deadline = g_get_monotonic_time () + STOP_TIMEOUT_S * G_USEC_PER_SEC;
  gint status = -1;
  gboolean eof;

  /* the reader sees EOF on stderr when the bridge exits */
  eof = line_reader_wait_eof (r->log, deadline);

  if (!eof)
    g_subprocess_force_exit (r->proc);
  g_subprocess_wait (r->proc, NULL, NULL);
  if (eof && g_subprocess_get_if_exited (r->proc))
    status = g_subprocess_get_exit_status (r->proc);
  else if (!eof)
    g_printerr ("[bridge] did not exit within %d s of SIGTERM\n",
        STOP_TIMEOUT_S);
  else if (g_subprocess_get_if_signaled (r->proc))
    g_printerr ("[bridge] killed by signal %d (%s)\n",
        g_subprocess_get_term_sig (r->proc),
        g_strsignal (g_subprocess_get_term_sig (r->proc)));
  if (socket_left)
    *socket_left = r->socket_path
        && g_file_test (r->socket_path, G_FILE_TEST_EXISTS);
  free_runner (r);
  return status;
}

void
bridge_runner_stop_checked (BridgeRunner * r)
{
  gboolean left = TRUE;

  fail_unless_equals_int (bridge_runner_stop (r, &left), 0);
  fail_if (left, "socket file left behind");
}
