/* See line-reader.h.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "line-reader.h"

#include <string.h>

struct _LineReader
{
  GDataInputStream *in;
  GThread *thread;
  LineReaderTee tee;
  gpointer tee_data;

  GMutex lock;
  GCond cond;
  GPtrArray *lines;             /* gchar*, every line; lock */
  GString *text;                /* the same, each ended by '\n'; lock */
  gboolean eof;                 /* lock */
};

static gpointer
reader_thread (gpointer data)
{
  LineReader *r = data;
  gchar *line;

  while ((line = g_data_input_stream_read_line_utf8 (r->in, NULL, NULL, NULL))) {
    g_mutex_lock (&r->lock);
    g_ptr_array_add (r->lines, line);
    g_string_append (r->text, line);
    g_string_append_c (r->text, '\n');
    g_cond_broadcast (&r->cond);
    g_mutex_unlock (&r->lock);
    if (r->tee)
      r->tee (line, r->tee_data);
  }
  g_mutex_lock (&r->lock);
  r->eof = TRUE;
  g_cond_broadcast (&r->cond);
  g_mutex_unlock (&r->lock);
  return NULL;
}

LineReader *
line_reader_start (GInputStream * in, const gchar * name, LineReaderTee tee,
    gpointer data)
{
  LineReader *r = g_new0 (LineReader, 1);

  g_mutex_init (&r->lock);
  g_cond_init (&r->cond);
  r->lines = g_ptr_array_new_with_free_func (g_free);
  r->text = g_string_new (NULL);
  r->in = g_data_input_stream_new (in);
  r->tee = tee;
  r->tee_data = data;
  r->thread = g_thread_new (name, reader_thread, r);
  return r;
}

void
line_reader_free (LineReader * r)
{
  g_thread_join (r->thread);
  g_object_unref (r->in);
  g_ptr_array_unref (r->lines);
  g_string_free (r->text, TRUE);
  g_mutex_clear (&r->lock);
  g_cond_clear (&r->cond);
  g_free (r);
}

gboolean
line_reader_wait_eof (LineReader * r, gint64 deadline)
{
  gboolean eof;

  g_mutex_lock (&r->lock);
  /* a wake-up before the end waits again; the deadline ends it */
  while (!r->eof && g_cond_wait_until (&r->cond, &r->lock, deadline));
  eof = r->eof;
  g_mutex_unlock (&r->lock);
  return eof;
}

static guint
count_locked (LineReader * r, const gchar * needle)
{
  const gchar *p = r->text->str;
  guint n = 0;

  while ((p = strstr (p, needle))) {
    n++;
    p += strlen (needle);
  }
  return n;
}

guint
line_reader_count (LineReader * r, const gchar * needle)
{
  guint n;

  g_mutex_lock (&r->lock);
  n = count_locked (r, needle);
  g_mutex_unlock (&r->lock);
  return n;
}

gboolean
line_reader_wait_count (LineReader * r, const gchar * needle, guint count,
    guint timeout_s)
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

gchar *
line_reader_get_text (LineReader * r)
{
  gchar *s;

  g_mutex_lock (&r->lock);
  s = g_strdup (r->text->str);
  g_mutex_unlock (&r->lock);
  return s;
}

/* Lock held. */
static const gchar *
find_locked (LineReader * r, guint * from, const gchar * const *prefixes)
{
  for (; *from < r->lines->len; (*from)++) {
    const gchar *l = g_ptr_array_index (r->lines, *from);
    guint i;

    for (i = 0; !prefixes || prefixes[i]; i++)
      if (!prefixes || g_str_has_prefix (l, prefixes[i])) {
        (*from)++;
        return l;
      }
  }
  return NULL;
}

gchar *
line_reader_find (LineReader * r, guint * from,
    const gchar * const *prefixes, gint64 deadline)
{
  const gchar *found;
  gchar *copy;

  g_mutex_lock (&r->lock);
  while (!(found = find_locked (r, from, prefixes)) && !r->eof)
    if (!g_cond_wait_until (&r->cond, &r->lock, deadline))
      break;
  /* a line may have come with the end of the pipe or at the deadline */
  if (!found)
    found = find_locked (r, from, prefixes);
  copy = g_strdup (found);
  g_mutex_unlock (&r->lock);
  return copy;
}
