#!/usr/bin/env python3
"""Writes starting inputs for the fuzz targets into fuzz/corpus/<target>/.

Well-formed sequences get the fuzzers past the first checks at once: a guest's virtio-gpu
session (resource, backing, scanout, transfer, flush, cursor), a SPICE link handshake, and a
client's first messages on each channel. Layouts: the virtio 1.2 spec (5.7.6) and
spice-protocol (spice/protocol.h, enums.h, vd_agent.h); input framing: each target's header.

    fuzz/seeds.py && cargo +nightly fuzz run virtio_gpu_control
"""

import os
import struct

CORPUS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus")


def write(target, name, data):
    os.makedirs(os.path.join(CORPUS, target), exist_ok=True)
    with open(os.path.join(CORPUS, target, name), "wb") as f:
        f.write(data)


# virtio_gpu_control: u16 fill length, guest memory, then (kind u8, len u16, request).
def gpu_hdr(ctrl_type):
    return struct.pack("<IIQIB3x", ctrl_type, 0, 0, 0, 0)


def gpu_req(kind, body):
    return struct.pack("<BH", kind, len(body)) + body


CTRL = 0x20  # control queue (bit 0 clear), room for 256 response bytes


def create(rid, w, h, fmt=2):  # B8G8R8X8
    return gpu_req(CTRL, gpu_hdr(0x0101) + struct.pack("<IIII", rid, fmt, w, h))


def attach(rid, entries):
    mem = b"".join(struct.pack("<QII", addr, length, 0) for addr, length in entries)
    return gpu_req(CTRL, gpu_hdr(0x0106) + struct.pack("<II", rid, len(entries)) + mem)


def set_scanout(rid, w, h):
    return gpu_req(CTRL, gpu_hdr(0x0103) + struct.pack("<IIIIII", 0, 0, w, h, 0, rid))


def transfer(rid, x, y, w, h, offset=0):
    return gpu_req(CTRL, gpu_hdr(0x0105) + struct.pack("<IIIIQII", x, y, w, h, offset, rid, 0))


def flush(rid, x, y, w, h):
    return gpu_req(CTRL, gpu_hdr(0x0104) + struct.pack("<IIIIII", x, y, w, h, rid, 0))


def gpu_cursor(ctrl_type, rid, x, y):
    pos = struct.pack("<IIII", 0, x, y, 0)
    return gpu_req(1, gpu_hdr(ctrl_type) + pos + struct.pack("<IIII", rid, 1, 1, 0))


def virtio_gpu_control():
    memory = bytes((i * 7) & 0xFF for i in range(4096))
    prefix = struct.pack("<H", len(memory)) + memory
    info = gpu_req(CTRL, gpu_hdr(0x0100))
    edid = gpu_req(0x90, gpu_hdr(0x010A) + struct.pack("<II", 0, 0))
    detach = gpu_req(CTRL, gpu_hdr(0x0107) + struct.pack("<II", 2, 0))
    unref = gpu_req(CTRL, gpu_hdr(0x0102) + struct.pack("<II", 2, 0))
    seeds = {
        "draw": info + create(1, 32, 16) + attach(1, [(0, 2048)]) + set_scanout(1, 32, 16)
        + transfer(1, 0, 0, 32, 16) + flush(1, 0, 0, 32, 16),
        "split-backing": create(2, 16, 16) + attach(2, [(0, 512), (4096, 512)])
        + set_scanout(2, 16, 16) + transfer(2, 4, 4, 8, 8, 80) + flush(2, 4, 4, 8, 8)
        + detach + unref,
        "cursor": create(3, 64, 64, 1) + attach(3, [(0, 16384)]) + transfer(3, 0, 0, 64, 64)
        + gpu_cursor(0x0300, 3, 100, 100) + gpu_cursor(0x0301, 0, 5, 5)
        + gpu_cursor(0x0300, 0, 0, 0),
        "resize": create(1, 32, 16) + attach(1, [(0, 2048)]) + set_scanout(1, 32, 16)
        + create(4, 64, 32) + attach(4, [(8192, 8192)]) + set_scanout(4, 64, 32)
        + transfer(4, 0, 0, 64, 32) + flush(4, 0, 0, 64, 32) + set_scanout(0, 0, 0) + edid,
    }
    for name, body in seeds.items():
        write("virtio_gpu_control", name, prefix + body)


# spice_link: selector (ticketing, piece size), then what a client sends.
def spice_link():
    # Common caps: AUTH_SELECTION, AUTH_SPICE, MINI_HEADER.
    common = (1 << 0) | (1 << 1) | (1 << 3)
    for channel_type, name in [(1, "main"), (2, "display"), (3, "inputs"), (4, "cursor")]:
        mess = struct.pack("<IBBIII", 0, channel_type, 0, 1, 1, 18) + struct.pack("<II", common, 0)
        header = b"REDQ" + struct.pack("<III", 2, 2, len(mess))
        auth = struct.pack("<I", 1)  # SPICE_COMMON_CAP_AUTH_SPICE
        ticket = bytes(128)
        for selector in (0x3F, 0x81):
            write("spice_link", f"{name}-{selector:02x}", bytes([selector]) + header + mess + auth + ticket)


# spice_client_messages: selector (channel, header kind), then mini-header messages.
def mini(msg_type, body):
    return struct.pack("<HI", msg_type, len(body)) + body


def spice_client_messages():
    monitors = struct.pack("<II", 1, 0) + struct.pack("<IIIii", 768, 1024, 32, 0, 0)
    agent = struct.pack("<IIQI", 1, 2, 0, len(monitors)) + monitors  # VD_AGENT_MONITORS_CONFIG
    main = (mini(105, struct.pack("<H", 2)) + mini(106, struct.pack("<I", 10))
            + mini(107, agent) + mini(108, struct.pack("<I", 5)) + mini(104, b"")
            + mini(1, struct.pack("<I", 1)) + mini(3, struct.pack("<IQ", 1, 2)))
    display = (mini(101, struct.pack("<BqBi", 1, 1 << 20, 1, 1 << 20))
               + mini(103, struct.pack("<B", 3)) + mini(2, b""))
    inputs = (mini(101, struct.pack("<I", 0x1E)) + mini(102, struct.pack("<I", 0x9E))
              + mini(103, struct.pack("<H", 1)) + mini(104, bytes([0x1E, 0x9E, 0xE0, 0x48, 0xE0, 0xC8]))
              + mini(111, struct.pack("<iiH", 3, -2, 0)) + mini(112, struct.pack("<IIHB", 10, 20, 1, 0))
              + mini(113, struct.pack("<BH", 1, 1)) + mini(114, struct.pack("<BH", 1, 0)))
    cursor = mini(1, struct.pack("<I", 1)) + mini(2, b"")
    for selector, name, stream in [(0, "main", main), (1, "display", display),
                                   (2, "inputs", inputs), (3, "cursor", cursor)]:
        write("spice_client_messages", name, bytes([selector]) + stream)


if __name__ == "__main__":
    virtio_gpu_control()
    spice_link()
    spice_client_messages()
    for target in sorted(os.listdir(CORPUS)):
        print(target, len(os.listdir(os.path.join(CORPUS, target))))
