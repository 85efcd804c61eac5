/* See bridge-metrics.h.
 *
 * A metrics client is untrusted like a guest: everything happens on the
 * main loop with GIO's asynchronous calls, so a client that sends nothing,
 * trickles its request or never reads the answer costs one buffer of
 * MAX_REQUEST bytes until METRICS_TIMEOUT_S, and at most MAX_CLIENTS are
 * served at once (more are closed on arrival). One request per
 * connection, answered, then closed (HTTP/1.0).
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include <string.h>
#include <gio/gio.h>

#include "bridge-metrics.h"

#define MAX_REQUEST 4096
#define MAX_CLIENTS 8
#define METRICS_TIMEOUT_S 5

struct _BridgeMetrics
{
  HxfrListener *listener;
  GSocketService *service;
  gchar *encoder;
  BridgeMetricsCollectFunc collect;
  gpointer user_data;
  GList *clients;
  guint n_clients;
};

typedef struct
{
  BridgeMetrics *m;             /* NULL once the endpoint has stopped */
  GSocketConnection *conn;
  GCancellable *cancellable;
  GSource *timeout;
  gchar buf[MAX_REQUEST + 1];
  gsize len;
  gchar *reply;
  gsize reply_len;
} Client;

static void
client_free (Client * c)
{
  if (c->m) {
    c->m->clients = g_list_remove (c->m->clients, c);
    c->m->n_clients--;
  }
  if (c->timeout) {
    g_source_destroy (c->timeout);
    g_source_unref (c->timeout);
  }
  /* closing a socket does not block */
  g_io_stream_close (G_IO_STREAM (c->conn), NULL, NULL);
  g_object_unref (c->conn);
  g_object_unref (c->cancellable);
  g_free (c->reply);
  g_free (c);
}

static gboolean
on_client_timeout (gpointer data)
{
  Client *c = data;

  /* the pending read or write ends with CANCELLED and frees the client */
  g_cancellable_cancel (c->cancellable);
  return G_SOURCE_REMOVE;
}

static void
append_label_value (GString * out, const gchar * v)
{
  for (; *v; v++) {
    if (*v == '\\' || *v == '"')
      g_string_append_c (out, '\\');
    if (*v == '\n')
      g_string_append (out, "\\n");
    else
      g_string_append_c (out, *v);
  }
}

static void
append_metric (GString * out, const gchar * name, const gchar * type,
    const gchar * help, const gchar * label, guint64 value)
{
  g_string_append_printf (out, "# HELP %s %s\n# TYPE %s %s\n%s{%s} %"
      G_GUINT64_FORMAT "\n", name, help, name, type, name, label, value);
}

gchar *
bridge_metrics_format (const BridgeMetricsSnapshot * snap,
    const gchar * encoder)
{
  GString *out = g_string_new (NULL);
  GString *label = g_string_new ("encoder=\"");
  const HxfrHostStats *f = &snap->frames;
  gchar sum[G_ASCII_DTOSTR_BUF_SIZE];
  guint64 count = 0;
  guint i;

  append_label_value (label, encoder);
  g_string_append_c (label, '"');
  append_metric (out, "helix_bridge_sessions", "gauge",
      "Sessions being served now.", label->str, snap->sessions_now);
  append_metric (out, "helix_bridge_sessions_total", "counter",
      "Sessions accepted since the bridge started.", label->str,
      snap->sessions_total);
  append_metric (out, "helix_bridge_frames_requested_total", "counter",
      "Frame requests read from guests.", label->str, f->requests);
  append_metric (out, "helix_bridge_frames_encoded_total", "counter",
      "Frames answered with an access unit.", label->str, f->answered_ok);
  append_metric (out, "helix_bridge_frames_dropped_total", "counter",
      "Frames answered DROPPED (skipped by the encoder, or drained).",
      label->str, f->dropped);
  append_metric (out, "helix_bridge_frames_failed_total", "counter",
      "Frames answered FAILED.", label->str, f->failed);
  append_metric (out, "helix_bridge_errors_total", "counter",
      "ERROR messages sent to guests.", label->str, f->errors);
  append_metric (out, "helix_bridge_bytes_in_total", "counter",
      "Bytes received from guests.", label->str, f->bytes_in);
  append_metric (out, "helix_bridge_bytes_out_total", "counter",
      "Bytes sent to guests.", label->str, f->bytes_out);
  append_metric (out, "helix_bridge_refusals_total", "counter",
      "Connections refused (limits, access control, token).", label->str,
      snap->refusals_total);

  g_string_append (out, "# HELP helix_bridge_encode_seconds Time from a "
      "request fully read to its access unit.\n"
      "# TYPE helix_bridge_encode_seconds histogram\n");
  for (i = 0; i < HXFR_HOST_TIME_BUCKETS; i++) {
    guint64 bound = hxfr_host_time_bucket_us (i);

    count += f->host_time_buckets[i];
    g_string_append_printf (out, "helix_bridge_encode_seconds_bucket{%s,"
        "le=\"", label->str);
    if (bound == G_MAXUINT64)
      g_string_append (out, "+Inf");
    else
      g_string_append (out, g_ascii_formatd (sum, sizeof (sum), "%g",
              bound / 1e6));
    g_string_append_printf (out, "\"} %" G_GUINT64_FORMAT "\n", count);
  }
  g_string_append_printf (out, "helix_bridge_encode_seconds_sum{%s} %s\n",
      label->str, g_ascii_formatd (sum, sizeof (sum), "%.6f",
          f->host_time_sum_us / 1e6));
  g_string_append_printf (out, "helix_bridge_encode_seconds_count{%s} %"
      G_GUINT64_FORMAT "\n", label->str, count);
  g_string_free (label, TRUE);
  return g_string_free (out, FALSE);
}

static void
on_written (GObject * stream, GAsyncResult * res, gpointer data)
{
  Client *c = data;

  g_output_stream_write_all_finish (G_OUTPUT_STREAM (stream), res, NULL, NULL);
  client_free (c);
}

static void
reply (Client * c, const gchar * status, const gchar * body)
{
  c->reply = g_strdup_printf ("HTTP/1.0 %s\r\n"
      "Content-Type: text/plain; version=0.0.4\r\n"
      "Content-Length: %" G_GSIZE_FORMAT "\r\n"
      "Connection: close\r\n\r\n%s", status, strlen (body), body);
  c->reply_len = strlen (c->reply);
  g_output_stream_write_all_async (g_io_stream_get_output_stream (G_IO_STREAM
          (c->conn)), c->reply, c->reply_len, G_PRIORITY_DEFAULT,
      c->cancellable, on_written, c);
}

/* The request line and headers are in: answer it. */
static void
answer (Client * c)
{
  gchar *eol = strpbrk (c->buf, "\r\n");
  gchar **parts;
  const gchar *path;

  *eol = '\0';
  parts = g_strsplit (c->buf, " ", 4);
  if (g_strv_length (parts) < 2 || !g_str_equal (parts[0], "GET")) {
    reply (c, "405 Method Not Allowed", "GET /metrics only\n");
  } else {
    path = parts[1];
    if (!strncmp (path, "/metrics", 8) && (path[8] == '\0' || path[8] == '?')) {
      BridgeMetricsSnapshot snap = { 0, };
      gchar *body;

      c->m->collect (&snap, c->m->user_data);
      body = bridge_metrics_format (&snap, c->m->encoder);
      reply (c, "200 OK", body);
      g_free (body);
    } else {
      reply (c, "404 Not Found", "GET /metrics only\n");
    }
  }
  g_strfreev (parts);
}

static void read_more (Client * c);

static void
on_read (GObject * stream, GAsyncResult * res, gpointer data)
{
  Client *c = data;
  gssize n = g_input_stream_read_finish (G_INPUT_STREAM (stream), res, NULL);

  if (n <= 0 || !c->m) {
    /* closed, cancelled (timeout, the endpoint stopping) or failed */
    client_free (c);
    return;
  }
  c->len += n;
  c->buf[c->len] = '\0';
  if (strlen (c->buf) != c->len) {
    reply (c, "400 Bad Request", "NUL in the request\n");
    return;
  }
  /* the request ends with an empty line; nothing after it is read */
  if (strstr (c->buf, "\r\n\r\n") || strstr (c->buf, "\n\n")) {
    answer (c);
    return;
  }
  if (c->len == MAX_REQUEST) {
    reply (c, "431 Request Header Fields Too Large", "request too long\n");
    return;
  }
  read_more (c);
}

static void
read_more (Client * c)
{
  g_input_stream_read_async (g_io_stream_get_input_stream (G_IO_STREAM
          (c->conn)), c->buf + c->len, MAX_REQUEST - c->len,
      G_PRIORITY_DEFAULT, c->cancellable, on_read, c);
}

static gboolean
on_incoming (GSocketService * service, GSocketConnection * conn,
    GObject * source, gpointer data)
{
  BridgeMetrics *m = data;
  Client *c;

  if (m->n_clients >= MAX_CLIENTS) {
    /* more scrapers than any deployment needs: no buffer, no timer */
    g_io_stream_close (G_IO_STREAM (conn), NULL, NULL);
    return TRUE;
  }
  c = g_new0 (Client, 1);
  c->m = m;
  c->conn = g_object_ref (conn);
  c->cancellable = g_cancellable_new ();
  c->timeout = g_timeout_source_new_seconds (METRICS_TIMEOUT_S);
  g_source_set_callback (c->timeout, on_client_timeout, c, NULL);
  g_source_attach (c->timeout, g_main_context_get_thread_default ());
  m->clients = g_list_prepend (m->clients, c);
  m->n_clients++;
  read_more (c);
  return TRUE;
}

BridgeMetrics *
bridge_metrics_start (const gchar * spec, guint unix_mode,
    const gchar * encoder, BridgeMetricsCollectFunc collect,
    gpointer user_data, GError ** error)
{
  g_autoptr (HxfrAddress) addr = hxfr_address_parse (spec, error);
  BridgeMetrics *m;

  if (!addr)
    return NULL;
  if (addr->kind == HXFR_ADDRESS_VSOCK) {
    g_set_error (error, G_IO_ERROR, G_IO_ERROR_NOT_SUPPORTED,
        "metrics are served on tcp:HOST:PORT or unix:PATH, not vsock");
    return NULL;
  }
  m = g_new0 (BridgeMetrics, 1);
  /* the project's listener: port 0, stale UNIX socket files and the mode
   * handled as for guests; GIO's service accepts on the main loop */
  m->listener = hxfr_listener_new (addr, unix_mode, error);
  if (!m->listener) {
    g_free (m);
    return NULL;
  }
  m->service = g_socket_service_new ();
  if (!g_socket_listener_add_socket (G_SOCKET_LISTENER (m->service),
          hxfr_listener_get_socket (m->listener), NULL, error)) {
    g_object_unref (m->service);
    hxfr_listener_free (m->listener);
    g_free (m);
    return NULL;
  }
  m->encoder = g_strdup (encoder);
  m->collect = collect;
  m->user_data = user_data;
  g_signal_connect (m->service, "incoming", G_CALLBACK (on_incoming), m);
  g_socket_service_start (m->service);
  return m;
}

gchar *
bridge_metrics_get_address (BridgeMetrics * m)
{
  return hxfr_address_to_string (hxfr_listener_get_address (m->listener));
}

gboolean
bridge_metrics_is_exposed (BridgeMetrics * m)
{
  return !bridge_address_is_local (hxfr_listener_get_address (m->listener));
}

void
bridge_metrics_stop (BridgeMetrics * m)
{
  GList *l;

  if (!m)
    return;
  g_socket_service_stop (m->service);
  g_signal_handlers_disconnect_by_data (m->service, m);
  g_socket_listener_close (G_SOCKET_LISTENER (m->service));
  g_object_unref (m->service);
  /* clients still in progress end when their call returns cancelled */
  for (l = m->clients; l; l = l->next) {
    Client *c = l->data;

    c->m = NULL;
    g_cancellable_cancel (c->cancellable);
  }
  g_list_free (m->clients);
  hxfr_listener_free (m->listener);
  g_free (m->encoder);
  g_free (m);
}

void
bridge_metrics_add_stats (HxfrHostStats * into, const HxfrHostStats * from)
{
  guint i;

  into->requests += from->requests;
  into->answered_ok += from->answered_ok;
  into->dropped += from->dropped;
  into->failed += from->failed;
  into->errors += from->errors;
  into->bytes_in += from->bytes_in;
  into->bytes_out += from->bytes_out;
  for (i = 0; i < HXFR_HOST_TIME_BUCKETS; i++)
    into->host_time_buckets[i] += from->host_time_buckets[i];
  into->host_time_sum_us += from->host_time_sum_us;
}

gboolean
bridge_address_is_local (const HxfrAddress * addr)
{
  GInetAddress *ia;
  gboolean local;

  if (addr->kind != HXFR_ADDRESS_TCP)
    return TRUE;
  if (!g_ascii_strcasecmp (addr->host, "localhost"))
    return TRUE;
  ia = g_inet_address_new_from_string (addr->host);
  local = ia && g_inet_address_get_is_loopback (ia);
  if (ia)
    g_object_unref (ia);
  return local;
}
