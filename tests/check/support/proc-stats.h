/* What a test can see of a process from outside, through /proc: its open
 * descriptors, threads and resident memory. Header-only, like guest-emu.h.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#pragma once

#include <glib.h>
#include <stdlib.h>
#include <string.h>

/* Entries of /proc/@pid/@dir_name (0 if it cannot be read). */
static inline guint
proc_count_entries (GPid pid, const gchar * dir_name)
{
  gchar *path = g_strdup_printf ("/proc/%d/%s", (int) pid, dir_name);
  GDir *dir = g_dir_open (path, 0, NULL);
  guint n = 0;

  if (dir) {
    while (g_dir_read_name (dir))
      n++;
    g_dir_close (dir);
  }
  g_free (path);
  return n;
}

/* Open descriptors of @pid (0 if /proc cannot be read). */
static inline guint
proc_count_fds (GPid pid)
{
  return proc_count_entries (pid, "fd");
}

/* Threads of @pid (0 if /proc cannot be read). */
static inline guint
proc_count_threads (GPid pid)
{
  return proc_count_entries (pid, "task");
}

/* Resident set of @pid in KiB (0 if /proc cannot be read). */
static inline guint
proc_rss_kb (GPid pid)
{
  gchar *path = g_strdup_printf ("/proc/%d/status", (int) pid);
  gchar *status = NULL;
  const gchar *p;
  guint kb = 0;

  if (g_file_get_contents (path, &status, NULL, NULL)
      && (p = strstr (status, "VmRSS:")))
    kb = (guint) g_ascii_strtoull (p + 6, NULL, 10);
  g_free (status);
  g_free (path);
  return kb;
}
