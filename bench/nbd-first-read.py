#!/usr/bin/env python3
"""Times the first read of an NBD export, phase by phase, with a minimal NBD client.

    bench/nbd-first-read.py nbd://HOST:PORT/NAME [OFFSET [LENGTH]]      (default: offset 0, 4096 bytes)

Opens a TCP connection, does the fixed newstyle handshake with NBD_OPT_GO (no TLS, no structured
replies), sends one NBD_CMD_READ of LENGTH bytes at OFFSET, receives its simple reply and all its
data, then NBD_CMD_DISC. Prints one line of JSON with milliseconds since the connect call started:
  connect     the TCP connection is established
  handshake   the server acknowledged NBD_OPT_GO (the export is open)
  first_byte  the reply header and the first data byte of the READ arrived
  read_done   all LENGTH bytes arrived (the time to first byte of a guest's read)
and the export size. Exits 1 with a message on any protocol error or NBD error reply.
"""
import json
import socket
import struct
import sys
import time
import urllib.parse

NBDMAGIC = 0x4E42444D41474943
IHAVEOPT = 0x49484156454F5054
OPT_REPLY_MAGIC = 0x3E889045565A9
REQUEST_MAGIC = 0x25609513
SIMPLE_REPLY_MAGIC = 0x67446698
FLAG_FIXED_NEWSTYLE = 1
FLAG_NO_ZEROES = 2
OPT_GO = 7
REP_ACK = 1
REP_INFO = 3
INFO_EXPORT = 0
CMD_READ = 0
CMD_DISC = 2


def fail(message):
    print(f"nbd-first-read: {message}", file=sys.stderr)
    sys.exit(1)


def recv_exact(sock, n):
    data = bytearray()
    while len(data) < n:
        part = sock.recv(n - len(data))
        if not part:
            fail(f"the server closed the connection ({len(data)} of {n} bytes received)")
        data += part
    return bytes(data)


def main():
    if len(sys.argv) < 2:
        fail("usage: nbd-first-read.py nbd://HOST:PORT/NAME [OFFSET [LENGTH]]")
    url = urllib.parse.urlparse(sys.argv[1])
    if url.scheme != "nbd" or not url.hostname or not url.port:
        fail(f"not an nbd://HOST:PORT/NAME URL: {sys.argv[1]}")
    name = url.path.lstrip("/").encode()
    offset = int(sys.argv[2]) if len(sys.argv) > 2 else 0
    length = int(sys.argv[3]) if len(sys.argv) > 3 else 4096

    t0 = time.perf_counter()
    ms = lambda: (time.perf_counter() - t0) * 1000.0
    sock = socket.create_connection((url.hostname, url.port))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    times = {"connect": ms()}

    magic, opt_magic, flags = struct.unpack(">QQH", recv_exact(sock, 18))
    if magic != NBDMAGIC or opt_magic != IHAVEOPT:
        fail("not a fixed newstyle NBD server")
    client_flags = FLAG_FIXED_NEWSTYLE | (FLAG_NO_ZEROES if flags & FLAG_NO_ZEROES else 0)
    go = struct.pack(">I", len(name)) + name + struct.pack(">H", 0)
    sock.sendall(struct.pack(">IQII", client_flags, IHAVEOPT, OPT_GO, len(go)) + go)
    size = None
    while True:
        reply_magic, option, reply, reply_len = struct.unpack(">QIII", recv_exact(sock, 20))
        data = recv_exact(sock, reply_len)
        if reply_magic != OPT_REPLY_MAGIC or option != OPT_GO:
            fail("bad option reply")
        if reply & 0x80000000:
            fail(f"NBD_OPT_GO refused (reply type {reply:#x}): {data.decode(errors='replace')}")
        if reply == REP_INFO and len(data) >= 12 and struct.unpack(">H", data[:2])[0] == INFO_EXPORT:
            size = struct.unpack(">Q", data[2:10])[0]
        if reply == REP_ACK:
            break
    times["handshake"] = ms()

    sock.sendall(struct.pack(">IHHQQI", REQUEST_MAGIC, 0, CMD_READ, 1, offset, length))
    reply_magic, error, handle = struct.unpack(">IIQ", recv_exact(sock, 16))
    if reply_magic != SIMPLE_REPLY_MAGIC or handle != 1:
        fail("bad reply to NBD_CMD_READ")
    if error:
        fail(f"NBD_CMD_READ failed with NBD error {error}")
    recv_exact(sock, 1)
    times["first_byte"] = ms()
    recv_exact(sock, length - 1)
    times["read_done"] = ms()
    sock.sendall(struct.pack(">IHHQQI", REQUEST_MAGIC, 0, CMD_DISC, 2, 0, 0))
    sock.close()
    print(json.dumps({**{k: round(v, 3) for k, v in times.items()}, "size": size}))


main()
