/* libFuzzer targets for the HXFR reader, over a real socket so partial reads
 * are exercised: a writer thread sends the input in chunks whose sizes come
 * from the input itself, the reader parses messages until the stream fails.
 *
 * FUZZ_ROLE selects the side: HXFR_ROLE_HOST parses what a hostile guest
 * sends (v1 and v2 requests, pixel tails), HXFR_ROLE_GUEST parses what a
 * host answers (responses, v1 NAL lists, errors).
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include <sys/socket.h>
#include <string.h>
#include <unistd.h>

#include "hxfr-transport.h"

#ifndef FUZZ_ROLE
#error "define FUZZ_ROLE"
#endif

typedef struct
{
  GSocket *sock;
  const guint8 *data;
  gsize size;
} Writer;

static gpointer
writer_thread (gpointer user_data)
{
  Writer *w = user_data;
  gsize pos = 0;
  guint8 chunk_seed = w->size ? w->data[0] : 1;

  g_socket_set_blocking (w->sock, TRUE);
  g_socket_set_timeout (w->sock, 2);
  while (pos < w->size) {
    /* small and odd chunk sizes split headers and fixed parts */
    gsize n = MIN (w->size - pos, (gsize) (chunk_seed % 61) + 1);
    gssize sent = g_socket_send (w->sock, (const gchar *) w->data + pos, n,
        NULL, NULL);

    if (sent <= 0)
      break;
    pos += sent;
    chunk_seed = (guint8) (chunk_seed * 31 + 7);
  }
  g_socket_shutdown (w->sock, FALSE, TRUE, NULL);
  return NULL;
}

/* Messages parsed so far, for the replay driver's report. */
guint fuzz_messages_parsed;

static void
read_messages (HxfrConn * conn)
{
  HxfrLimits limits;
  HxfrMessage msg;
  guint i;

  hxfr_limits_init_default (&limits);
  /* keep allocations in reach of the fuzzer's memory limit */
  limits.max_width = 256;
  limits.max_height = 256;
  limits.max_access_unit = 1 << 20;
  limits.max_nal_count = 64;

  for (i = 0; i < 64; i++) {
    guint8 *tail;

    if (!hxfr_conn_receive (conn, FUZZ_ROLE, &limits, &msg, G_USEC_PER_SEC,
            G_USEC_PER_SEC, NULL, NULL))
      return;
    fuzz_messages_parsed++;
    if (msg.tail_size == 0)
      continue;
    /* the reader allocates exactly what the checked header announced */
    tail = g_malloc (msg.tail_size);
    if (!hxfr_conn_read_exact (conn, tail, msg.tail_size, G_USEC_PER_SEC,
            NULL, NULL)) {
      g_free (tail);
      return;
    }
    if (msg.header.type == HXFR_MSG_FRAME_RESPONSE) {
      gsize au_size;

      hxfr_nal_list_unpack (tail, msg.tail_size,
          msg.u.frame_response.nal_count, &au_size, NULL);
    }
    g_free (tail);
  }
}

int LLVMFuzzerTestOneInput (const guint8 * data, size_t size);

int
LLVMFuzzerTestOneInput (const guint8 * data, size_t size)
{
  int fds[2];
  GSocket *reader_sock, *writer_sock;
  HxfrConn *conn;
  Writer w;
  GThread *thread;

  if (size > 1 << 20)
    return 0;
  if (socketpair (AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) != 0)
    return 0;
  reader_sock = g_socket_new_from_fd (fds[0], NULL);
  writer_sock = g_socket_new_from_fd (fds[1], NULL);
  g_assert (reader_sock && writer_sock);

  w.sock = writer_sock;
  w.data = data;
  w.size = size;
  thread = g_thread_new ("fuzz-writer", writer_thread, &w);

  conn = hxfr_conn_new (reader_sock);
  read_messages (conn);
  /* unblock a writer stuck on a full socket once the reader gave up */
  hxfr_conn_shutdown (conn);
  g_thread_join (thread);
  hxfr_conn_unref (conn);
  g_object_unref (reader_sock);
  g_socket_close (writer_sock, NULL);
  g_object_unref (writer_sock);
  return 0;
}
