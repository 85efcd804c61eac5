#!/usr/bin/env python3
"""Sets the mode of mutter's one monitor through its DisplayConfig D-Bus
API on the session bus (what gnome-control-center does), temporarily:

    mutter-mode.py WIDTHxHEIGHT

mutter takes the connector's preferred mode (virtio-gpu's 1280x800); the
vm-test desktops run at DESKTOP_MODE, and a smaller picture is what keeps
the scenario short under TCG. Prints key=value lines (mode_id=, or
mode_error=); exit 0 when mutter took the configuration.
"""
import sys

from gi.repository import Gio, GLib


def main():
    w, h = (int(x) for x in sys.argv[1].split("x"))
    bus = Gio.bus_get_sync(Gio.BusType.SESSION, None)

    def call(method, args, reply):
        return bus.call_sync("org.gnome.Mutter.DisplayConfig",
                             "/org/gnome/Mutter/DisplayConfig",
                             "org.gnome.Mutter.DisplayConfig", method, args,
                             GLib.VariantType(reply) if reply else None,
                             Gio.DBusCallFlags.NONE, 30000, None)

    serial, monitors, _, _ = call("GetCurrentState", None,
                                  "(ua((ssss)a(siiddada{sv})a{sv})a(iiduba(ssss)a{sv})a{sv})").unpack()
    if not monitors:
        print("mode_error=no monitor")
        return 1
    spec, modes, _ = monitors[0]
    # the highest refresh rate of that size
    fit = sorted((m for m in modes if m[1] == w and m[2] == h), key=lambda m: m[4])
    if not fit:
        print(f"mode_error=no {w}x{h} on {spec[0]}")
        return 1
    mode_id = fit[-1][0]
    print(f"mode_id={mode_id}")
    lm = [(0, 0, 1.0, 0, True, [(spec[0], mode_id, {})])]
    try:
        call("ApplyMonitorsConfig",
             GLib.Variant("(uua(iiduba(ssa{sv}))a{sv})", (serial, 1, lm, {})), None)
    except GLib.Error as e:
        print(f"mode_error={e.message}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
