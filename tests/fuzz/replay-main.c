/* Runs a fuzz target over files, so the checked-in corpus (every crash found
 * becomes a file there) is a regression test in every build, gcc included.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include <glib.h>
#include <glib/gstdio.h>

int LLVMFuzzerTestOneInput (const guint8 * data, size_t size);
extern guint fuzz_messages_parsed;

static guint
replay_path (const gchar * path)
{
  guint n = 0;

  if (g_file_test (path, G_FILE_TEST_IS_DIR)) {
    GDir *dir = g_dir_open (path, 0, NULL);
    const gchar *name;

    while (dir && (name = g_dir_read_name (dir))) {
      gchar *child = g_build_filename (path, name, NULL);

      n += replay_path (child);
      g_free (child);
    }
    if (dir)
      g_dir_close (dir);
  } else {
    gchar *contents;
    gsize len;

    if (!g_file_get_contents (path, &contents, &len, NULL))
      g_error ("cannot read %s", path);
    LLVMFuzzerTestOneInput ((const guint8 *) contents, len);
    g_free (contents);
    n = 1;
  }
  return n;
}

int
main (int argc, char **argv)
{
  guint n = 0;
  int i;

  for (i = 1; i < argc; i++)
    n += replay_path (argv[i]);
  if (n == 0)
    g_error ("no input replayed");
  g_print ("replayed %u inputs, %u messages parsed\n", n, fuzz_messages_parsed);
  return 0;
}
