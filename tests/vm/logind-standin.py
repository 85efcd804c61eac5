#!/usr/bin/env python3
"""A stand-in for systemd-logind, for mutter's native backend in the
vm-test guest (no systemd as PID 1, so no logind sessions there).

    logind-standin.py SESSION_ID SEAT_ID READY_FILE

Owns org.freedesktop.login1 on the system bus and serves the part of
the Manager, Session and Seat interfaces mutter's launcher uses (mutter's
data/dbus-interfaces/org.freedesktop.login1.xml): TakeControl, TakeDevice
(opens the node and passes the fd), ReleaseDevice, Active, Seat;
GetSession/GetSessionByPID name the one session.
The session's record for libsystemd's sd_session_* readers is
/run/systemd/sessions/SESSION_ID, written by the caller. One session, one
seat, always active: no VT switching. Writes READY_FILE once the name
is owned. Each call is logged to stdout.
"""
import os
import sys

from gi.repository import Gio, GLib

XML = """
<node>
  <interface name="org.freedesktop.login1.Manager">
    <method name="GetSession">
      <arg name="id" type="s" direction="in"/><arg name="path" type="o" direction="out"/>
    </method>
    <method name="GetSessionByPID">
      <arg name="pid" type="u" direction="in"/><arg name="path" type="o" direction="out"/>
    </method>
    <signal name="PrepareForSleep"><arg name="start" type="b"/></signal>
    <signal name="PrepareForShutdown"><arg name="start" type="b"/></signal>
  </interface>
  <interface name="org.freedesktop.login1.Session">
    <property name="Active" type="b" access="read"/>
    <property name="Id" type="s" access="read"/>
    <property name="Type" type="s" access="read"/>
    <property name="Class" type="s" access="read"/>
    <property name="State" type="s" access="read"/>
    <property name="Seat" type="(so)" access="read"/>
    <property name="Remote" type="b" access="read"/>
    <property name="VTNr" type="u" access="read"/>
    <method name="Activate"/>
    <method name="TakeControl"><arg name="force" type="b"/></method>
    <method name="ReleaseControl"/>
    <method name="TakeDevice">
      <arg name="major" type="u" direction="in"/>
      <arg name="minor" type="u" direction="in"/>
      <arg name="fd" type="h" direction="out"/>
      <arg name="inactive" type="b" direction="out"/>
    </method>
    <method name="ReleaseDevice">
      <arg name="major" type="u"/><arg name="minor" type="u"/>
    </method>
    <method name="PauseDeviceComplete">
      <arg name="major" type="u"/><arg name="minor" type="u"/>
    </method>
    <method name="SetDisplay"><arg name="display" type="s"/></method>
    <method name="SetType"><arg name="type" type="s"/></method>
    <method name="SetIdleHint"><arg name="idle" type="b"/></method>
    <method name="SetLockedHint"><arg name="locked" type="b"/></method>
    <signal name="PauseDevice">
      <arg name="major" type="u"/><arg name="minor" type="u"/>
      <arg name="type" type="s"/>
    </signal>
    <signal name="ResumeDevice">
      <arg name="major" type="u"/><arg name="minor" type="u"/>
      <arg name="fd" type="h"/>
    </signal>
    <signal name="Lock"/>
    <signal name="Unlock"/>
  </interface>
  <interface name="org.freedesktop.login1.Seat">
    <property name="Id" type="s" access="read"/>
    <property name="CanGraphical" type="b" access="read"/>
    <method name="SwitchTo"><arg name="vt" type="u"/></method>
  </interface>
</node>
"""


def dbus_escape(s):
    """sd_bus_path_encode's escaping: what mutter's get_escaped_dbus_path
    makes of an id ("1" -> "_31")."""
    return "".join(c if c.isalnum() and c.isascii() and not (i == 0 and c.isdigit())
                   else "_%02x" % ord(c) for i, c in enumerate(s))


def dev_node(major, minor):
    """The node of a character device, by its uevent (/dev/char links are
    udev's, which may not have made them yet)."""
    with open(f"/sys/dev/char/{major}:{minor}/uevent") as f:
        for line in f:
            if line.startswith("DEVNAME="):
                return "/dev/" + line.strip().split("=", 1)[1]
    raise OSError(f"no node for {major}:{minor}")


def main():
    session_id, seat_id, ready = sys.argv[1:4]
    node = Gio.DBusNodeInfo.new_for_xml(XML)
    taken = {}

    def log(*a):
        print(*a, flush=True)

    def session_call(conn, sender, path, iface, method, params, inv):
        log("call", method, params.unpack())
        if method == "TakeDevice":
            major, minor = params.unpack()
            try:
                fd = os.open(dev_node(major, minor),
                             os.O_RDWR | os.O_CLOEXEC | os.O_NOCTTY | os.O_NONBLOCK)
            except OSError as e:
                log("TakeDevice failed:", e)
                inv.return_dbus_error("org.freedesktop.login1.DeviceNotFound", str(e))
                return
            fds = Gio.UnixFDList.new()
            idx = fds.append(fd)
            old = taken.pop((major, minor), None)
            if old is not None:
                os.close(old)
            taken[(major, minor)] = fd
            inv.return_value_with_unix_fd_list(GLib.Variant("(hb)", (idx, False)), fds)
            return
        if method == "ReleaseDevice":
            fd = taken.pop(params.unpack(), None)
            if fd is not None:
                os.close(fd)
        inv.return_value(None)

    def session_prop(conn, sender, path, iface, prop):
        return {"Active": GLib.Variant("b", True), "Id": GLib.Variant("s", session_id),
                "Type": GLib.Variant("s", "wayland"), "Class": GLib.Variant("s", "user"),
                "State": GLib.Variant("s", "active"),
                "Seat": GLib.Variant("(so)", (seat_id, seat_path)),
                "Remote": GLib.Variant("b", False), "VTNr": GLib.Variant("u", 0)}.get(prop)

    def manager_call(conn, sender, path, iface, method, params, inv):
        # every pid and id is in the one session
        log("call", method, params.unpack())
        inv.return_value(GLib.Variant("(o)", (session_path,)))

    def seat_call(conn, sender, path, iface, method, params, inv):
        log("call", method, params.unpack())
        inv.return_value(None)

    def seat_prop(conn, sender, path, iface, prop):
        return {"Id": GLib.Variant("s", seat_id),
                "CanGraphical": GLib.Variant("b", True)}.get(prop)

    session_path = "/org/freedesktop/login1/session/" + dbus_escape(session_id)
    seat_path = "/org/freedesktop/login1/seat/" + dbus_escape(seat_id)

    def on_bus(conn, name):
        conn.register_object("/org/freedesktop/login1",
                             node.lookup_interface("org.freedesktop.login1.Manager"),
                             manager_call, None, None)
        conn.register_object(session_path,
                             node.lookup_interface("org.freedesktop.login1.Session"),
                             session_call, session_prop, None)
        conn.register_object(seat_path,
                             node.lookup_interface("org.freedesktop.login1.Seat"),
                             seat_call, seat_prop, None)

    def on_name(conn, name):
        log("owns", name)
        with open(ready, "w") as f:
            f.write("ready\n")

    def on_lost(conn, name):
        log("lost", name)
        loop.quit()

    loop = GLib.MainLoop()
    Gio.bus_own_name(Gio.BusType.SYSTEM, "org.freedesktop.login1",
                     Gio.BusNameOwnerFlags.NONE, on_bus, on_name, on_lost)
    loop.run()


if __name__ == "__main__":
    main()
