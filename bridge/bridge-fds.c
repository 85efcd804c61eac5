/* File descriptor budget of the bridge. See bridge-fds.h.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "bridge-fds.h"

#include <fcntl.h>
#include <limits.h>
#include <sys/resource.h>
#include <unistd.h>

static int spare_fd = -1;

guint
bridge_fds_raise_limit (void)
{
  struct rlimit rl;

  if (getrlimit (RLIMIT_NOFILE, &rl) != 0)
    return 1024;
  if (rl.rlim_cur < rl.rlim_max) {
    struct rlimit want = rl;

    want.rlim_cur = rl.rlim_max;
#ifdef __APPLE__
    /* macOS refuses RLIM_INFINITY for the soft limit */
    if (want.rlim_cur > OPEN_MAX)
      want.rlim_cur = OPEN_MAX;
#endif
    if (setrlimit (RLIMIT_NOFILE, &want) == 0)
      rl = want;
  }
  return rl.rlim_cur > G_MAXUINT ? G_MAXUINT : (guint) rl.rlim_cur;
}

guint
bridge_fds_in_use (void)
{
  /* /proc/self/fd on Linux, /dev/fd on macOS: one entry per descriptor */
  const gchar *dirs[] = { "/proc/self/fd", "/dev/fd" };
  guint i;

  for (i = 0; i < G_N_ELEMENTS (dirs); i++) {
    GDir *dir = g_dir_open (dirs[i], 0, NULL);
    guint n = 0;

    if (!dir)
      continue;
    while (g_dir_read_name (dir))
      n++;
    g_dir_close (dir);
    /* not counting the directory's own descriptor */
    return n ? n - 1 : 0;
  }
  return 0;
}

void
bridge_fds_hold_spare (void)
{
  if (spare_fd < 0)
    spare_fd = open ("/dev/null", O_RDONLY | O_CLOEXEC);
}

void
bridge_fds_release_spare (void)
{
  if (spare_fd >= 0)
    close (spare_fd);
  spare_fd = -1;
}
