/* See bridge-notify.h.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "bridge-notify.h"

#include <string.h>
#include <gio/gio.h>
#include <gio/gunixsocketaddress.h>

gboolean
bridge_notify (const gchar * state, GError ** error)
{
  const gchar *path = g_getenv ("NOTIFY_SOCKET");
  g_autoptr (GSocketAddress) addr = NULL;
  g_autoptr (GSocket) sock = NULL;
  gssize sent;
  gsize len;

  if (!path || !*path)
    return TRUE;
  /* "/path" is a filesystem socket, "@name" an abstract one (Linux);
   * anything else (e.g. vsock: addresses of newer systemd) we do not speak */
  if (path[0] == '@' && path[1]
      && g_unix_socket_address_abstract_names_supported ()) {
    addr =
        g_unix_socket_address_new_with_type (path + 1, -1,
        G_UNIX_SOCKET_ADDRESS_ABSTRACT);
  } else if (path[0] == '/') {
    addr = g_unix_socket_address_new (path);
  } else {
    g_set_error (error, G_IO_ERROR, G_IO_ERROR_NOT_SUPPORTED,
        "NOTIFY_SOCKET=%s: not a UNIX socket path", path);
    return FALSE;
  }

  sock = g_socket_new (G_SOCKET_FAMILY_UNIX, G_SOCKET_TYPE_DATAGRAM,
      G_SOCKET_PROTOCOL_DEFAULT, error);
  if (!sock)
    return FALSE;
  g_socket_set_blocking (sock, FALSE);
  len = strlen (state);
  sent = g_socket_send_to (sock, addr, state, len, NULL, error);
  if (sent < 0) {
    g_prefix_error (error, "NOTIFY_SOCKET=%s: ", path);
    return FALSE;
  }
  /* a datagram goes whole or not at all */
  return TRUE;
}

void
bridge_notify_or_warn (const gchar * state)
{
  g_autoptr (GError) err = NULL;

  if (!bridge_notify (state, &err))
    g_printerr ("helix-host-bridge: warning: cannot tell the service manager "
        "%s: %s\n", state, err->message);
}
