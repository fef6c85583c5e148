#!/usr/bin/python3
"""A scriptable SPICE client for the server's end-to-end tests, on spice-gtk's
SpiceClientGLib (GObject introspection).

It connects the main, display, cursor and inputs channels and then talks JSON lines:
events on stdout, commands on stdin.

Events:  {"event": "primary", "width", "height"}      the display's primary surface exists
         {"event": "invalidate", "n", "x", "y", "w", "h"}
         {"event": "mark"}
         {"event": "cursor-set", "width", "height", "hot_x", "hot_y"}
         {"event": "cursor-move", "x", "y"}   {"event": "cursor-hide"}
         {"event": "mouse-mode", "mode"}      1 server, 2 client
         {"event": "modifiers", "value"}      the guest's lock LEDs (KEY_MODIFIERS)
         {"event": "agent", "connected"}
         {"event": "dumped", "path", "width", "height"}
         {"event": "sent", "cmd"}             an input or resize command went out
         {"event": "channel", "type", "what"} channel open/close/errors
         {"event": "closed"}                  the session ended (then exit 0)
Commands: {"cmd": "dump", "path", "quiet_ms"}  RGB of the primary once no invalidate came
                                                for quiet_ms
          {"cmd": "key", "scancode"}           press + release (0x1xx = E0-prefixed)
          {"cmd": "keydown", "scancode"} / {"cmd": "keyup", "scancode"}   one of the two
          {"cmd": "position", "x", "y", "buttons"}
          {"cmd": "press", "button"} / {"cmd": "release", "button"}   1 left 2 middle 3 right
          {"cmd": "resize", "width", "height"} ask the (pseudo-)agent for a monitor size
          {"cmd": "quit"}

Usage: spice_client.py [--tls-port N] [--ca-file PEM] [--host-subject SUBJECT] HOST PORT
[PASSWORD]; HOST "unix:/path" (PORT ignored) for a unix socket; PORT "-" for no plaintext port
(TLS only). With both ports spice-gtk links on PORT and moves a channel to the TLS port when
the server answers NEED_SECURED. Run with Debian's /usr/bin/python3.
"""

import ctypes
import json
import sys
import threading

import gi

gi.require_version("SpiceClientGLib", "2.0")
from gi.repository import GLib, GObject  # noqa: E402
from gi.repository import SpiceClientGLib as Spice  # noqa: E402

MAIN, DISPLAY, INPUTS, CURSOR = 1, 2, 3, 4


class PrimaryStruct(ctypes.Structure):
    """spice-client-glib's SpiceDisplayPrimary, read through the C ABI: the 0.42 typelib
    describes `format` with the wrong width, so GI misreads the fields after it."""
    _fields_ = [
        ("format", ctypes.c_int),
        ("width", ctypes.c_int),
        ("height", ctypes.c_int),
        ("stride", ctypes.c_int),
        ("shmid", ctypes.c_int),
        ("data", ctypes.c_void_p),
        ("marked", ctypes.c_int),
    ]


LIB = ctypes.CDLL("libspice-client-glib-2.0.so.8")
LIB.spice_display_channel_get_primary.argtypes = [
    ctypes.c_void_p, ctypes.c_uint32, ctypes.POINTER(PrimaryStruct)]
LIB.spice_display_channel_get_primary.restype = ctypes.c_int
ctypes.pythonapi.PyCapsule_GetPointer.restype = ctypes.c_void_p
ctypes.pythonapi.PyCapsule_GetPointer.argtypes = [ctypes.py_object, ctypes.c_char_p]


def primary_of(display):
    raw = ctypes.pythonapi.PyCapsule_GetPointer(display.__gpointer__, None)
    prim = PrimaryStruct()
    if not LIB.spice_display_channel_get_primary(raw, 0, ctypes.byref(prim)):
        return None
    return prim


def emit(**fields):
    sys.stdout.write(json.dumps(fields) + "\n")
    sys.stdout.flush()


class Client:
    def __init__(self, host, port, password, tls=None):
        self.loop = GLib.MainLoop()
        self.session = Spice.Session()
        if host.startswith("unix:"):
            self.session.set_property("unix-path", host[len("unix:"):])
        else:
            self.session.set_property("host", host)
            if port != "-":
                self.session.set_property("port", str(port))
        for prop, value in (tls or {}).items():
            self.session.set_property(prop, value)
        if password:
            self.session.set_property("password", password)
        for prop in ("enable-audio", "enable-usbredir"):
            self.session.set_property(prop, False)
        self.main = self.display = self.inputs = None
        self.invalidates = 0
        self.last_invalidate = 0.0
        GObject.Object.connect(self.session, "channel-new", self.on_channel_new)
        GObject.Object.connect(self.session, "disconnected", self.on_disconnected)

    def on_channel_new(self, _session, ch):
        kind = ch.get_property("channel-type")
        GObject.Object.connect(ch, "channel-event", self.on_channel_event)
        if kind == MAIN:
            self.main = ch
            GObject.Object.connect(ch, "notify::mouse-mode", self.on_mouse_mode)
            GObject.Object.connect(ch, "notify::agent-connected", self.on_agent)
        elif kind == DISPLAY:
            self.display = ch
            GObject.Object.connect(ch, "display-primary-create", self.on_primary)
            GObject.Object.connect(ch, "display-invalidate", self.on_invalidate)
            GObject.Object.connect(ch, "display-mark", self.on_mark)
        elif kind == INPUTS:
            self.inputs = ch
            GObject.Object.connect(ch, "inputs-modifiers", self.on_modifiers)
        elif kind == CURSOR:
            GObject.Object.connect(ch, "cursor-set", self.on_cursor_set)
            GObject.Object.connect(ch, "cursor-move", self.on_cursor_move)
            GObject.Object.connect(ch, "cursor-hide", self.on_cursor_hide)
        if kind in (DISPLAY, INPUTS, CURSOR):
            ch.connect()

    def on_channel_event(self, ch, event):
        what = event.value_nick if hasattr(event, "value_nick") else str(event)
        emit(event="channel", type=ch.get_property("channel-type"), what=what)

    def on_disconnected(self, _session):
        emit(event="closed")
        self.loop.quit()

    def on_mouse_mode(self, ch, _pspec):
        emit(event="mouse-mode", mode=int(ch.get_property("mouse-mode")))

    def on_agent(self, ch, _pspec):
        emit(event="agent", connected=bool(ch.get_property("agent-connected")))

    def on_primary(self, _ch, _fmt, width, height, *_rest):
        emit(event="primary", width=width, height=height)

    def on_invalidate(self, _ch, x, y, w, h):
        self.invalidates += 1
        self.last_invalidate = GLib.get_monotonic_time()
        emit(event="invalidate", n=self.invalidates, x=x, y=y, w=w, h=h)

    def on_mark(self, _ch, mark):
        emit(event="mark", mark=mark)

    def on_modifiers(self, ch):
        emit(event="modifiers", value=int(ch.get_property("key-modifiers")))

    def on_cursor_set(self, _ch, width, height, hot_x, hot_y, _rgba):
        emit(event="cursor-set", width=width, height=height, hot_x=hot_x, hot_y=hot_y)

    def on_cursor_move(self, _ch, x, y):
        emit(event="cursor-move", x=x, y=y)

    def on_cursor_hide(self, _ch):
        emit(event="cursor-hide")

    # Commands, run on the GLib loop.

    def dump(self, path, quiet_ms, since=None):
        # Quiet means no invalidate for quiet_ms counted from the later of the last one and
        # the command itself: updates still in flight when the command came are waited for.
        quiet_us = quiet_ms * 1000
        now = GLib.get_monotonic_time()
        since = now if since is None else since
        if self.display is None or primary_of(self.display) is None \
                or now - max(self.last_invalidate, since) < quiet_us:
            GLib.timeout_add(max(10, quiet_ms // 4), self.dump, path, quiet_ms, since)
            return False
        prim = primary_of(self.display)
        raw = ctypes.string_at(prim.data, prim.stride * prim.height)
        rgb = bytearray()
        for y in range(prim.height):
            row = raw[y * prim.stride:y * prim.stride + prim.width * 4]
            # 32_xRGB little-endian: bytes B, G, R, X.
            px = bytearray(prim.width * 3)
            px[0::3] = row[2::4]
            px[1::3] = row[1::4]
            px[2::3] = row[0::4]
            rgb += px
        with open(path, "wb") as f:
            f.write(rgb)
        emit(event="dumped", path=path, width=prim.width, height=prim.height)
        return False

    def command(self, cmd):
        name = cmd.get("cmd")
        if name == "dump":
            self.dump(cmd["path"], int(cmd.get("quiet_ms", 300)))
        elif name == "key":
            self.inputs.key_press(int(cmd["scancode"]))
            self.inputs.key_release(int(cmd["scancode"]))
        elif name == "keydown":
            self.inputs.key_press(int(cmd["scancode"]))
        elif name == "keyup":
            self.inputs.key_release(int(cmd["scancode"]))
        elif name == "position":
            self.inputs.position(int(cmd["x"]), int(cmd["y"]), 0, int(cmd.get("buttons", 0)))
        elif name == "press":
            self.inputs.button_press(int(cmd["button"]), int(cmd.get("buttons", 0)))
        elif name == "release":
            self.inputs.button_release(int(cmd["button"]), int(cmd.get("buttons", 0)))
        elif name == "resize":
            self.main.update_display_enabled(0, True, False)
            self.main.update_display(0, 0, 0, int(cmd["width"]), int(cmd["height"]), False)
            if not self.main.send_monitor_config():
                emit(event="error", what="send_monitor_config refused")
        elif name == "quit":
            self.loop.quit()
            return False
        if name != "dump":
            emit(event="sent", cmd=name)
        return False

    def read_commands(self):
        for line in sys.stdin:
            line = line.strip()
            if line:
                GLib.idle_add(self.command, json.loads(line))
        GLib.idle_add(self.loop.quit)

    def run(self):
        if not self.session.connect():
            emit(event="error", what="connect failed")
            return 3
        threading.Thread(target=self.read_commands, daemon=True).start()
        self.loop.run()
        return 0


TLS_OPTIONS = {"--tls-port": "tls-port", "--ca-file": "ca-file", "--host-subject": "cert-subject"}


if __name__ == "__main__":
    args = sys.argv[1:]
    tls = {}
    while args and args[0] in TLS_OPTIONS and len(args) > 1:
        tls[TLS_OPTIONS[args[0]]] = args[1]
        args = args[2:]
    if len(args) < 2:
        sys.stderr.write(__doc__)
        sys.exit(2)
    sys.exit(Client(args[0], args[1], args[2] if len(args) > 2 else None, tls).run())
