/* Numbers that a child prints as text: the bridge's /metrics lines
 * ("\nSERIES VALUE") and the stand-in VMM's STATS line (" KEY=VALUE") are
 * read the same way. Header-only, like proc-stats.h.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#pragma once

#include <string.h>
#include <gst/check/gstcheck.h>

/* The number right after @before @key @after in @text; fails the test if
 * @text does not hold them. */
static inline guint64
text_number (const gchar * text, const gchar * before, const gchar * key,
    const gchar * after)
{
  gchar *needle = g_strconcat (before, key, after, NULL);
  const gchar *p = strstr (text, needle);
  guint64 v;

  fail_unless (p != NULL, "%s not in:\n%s", key, text);
  v = g_ascii_strtoull (p + strlen (needle), NULL, 10);
  g_free (needle);
  return v;
}
