"""Hostile inputs, small to send and cheap to make, and a real server to send them to:
shared by tests/security and bench/serve_audit.py. Each input is a real, valid file of
its kind (a PNG that decodes), so a test shows the defence, not a parser error."""

from __future__ import annotations

import os
import re
import socket
import struct
import subprocess
import sys
import threading
import zlib
from dataclasses import dataclass, field
from pathlib import Path


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(
        ">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def png_bomb(width: int = 9000, height: int = 9000, bit_depth: int = 16,
             rgb: bool = False) -> bytes:
    """A valid all-black PNG of ``width`` x ``height`` (16-bit grey by default): 9000 x
    9000 is about 160 KB on the wire and 160 MB (2.6 GB as float64) decoded. Compressed
    a row at a time, so making it takes little memory."""
    channels = 3 if rgb else 1
    row = b"\0" * (1 + width * channels * bit_depth // 8)  # filter byte + pixels
    z = zlib.compressobj(9)
    parts = [z.compress(row) for _ in range(height)]
    parts.append(z.flush())
    ihdr = struct.pack(">IIBBBBB", width, height, bit_depth, 2 if rgb else 0, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", b"".join(parts))
            + _chunk(b"IEND", b""))


def deep_json(depth: int = 100_000) -> bytes:
    """``[[[...]]]`` nested ``depth`` deep: Python's json parser raises RecursionError."""
    return b"[" * depth + b"]" * depth


def stalled_connections(host: str, port: int, n: int, *, head: bool = True
                        ) -> list[socket.socket]:
    """``n`` connections that send the start of a request head (or nothing) and stall:
    the slow-connection ('slowloris') attack."""
    socks = []
    for _ in range(n):
        s = socket.create_connection((host, port), timeout=10)
        if head:
            s.sendall(b"POST /v1/predict HTTP/1.1\r\nHost: x\r\nX-a: ")
        socks.append(s)
    return socks


def closed_by_server(sock: socket.socket, timeout: float) -> bytes | None:
    """What the server sent before closing ``sock`` (b'' for nothing), or None when it
    was still open after ``timeout`` seconds."""
    sock.settimeout(timeout)
    data = b""
    try:
        while True:
            part = sock.recv(65536)
            if not part:
                return data
            data += part
    except TimeoutError:
        return None
    except ConnectionResetError:
        return data


@dataclass
class Server:
    proc: subprocess.Popen
    port: int
    log: list[str] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def rss_mb(self) -> float:
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        raise RuntimeError("no VmRSS")


def start_server(package: Path, *args: str) -> Server:
    """``launchml serve package --port 0 *args`` on 127.0.0.1, once it accepts connections."""
    proc = subprocess.Popen([sys.executable, "-m", "launchml", "serve", str(package),
                             "--port", "0", *args], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "LAUNCHML_QUIET": "1"})
    log: list[str] = []
    assert proc.stderr is not None
    for line in proc.stderr:  # uvicorn's ready line names the port it bound
        log.append(line)
        found = re.search(r"Uvicorn running on http://127\.0\.0\.1:(\d+)", line)
        if found:
            break
    else:
        raise RuntimeError(f"server exited with {proc.wait()}: {''.join(log)[-3000:]}")
    # keep reading its log (access lines) so the pipe never fills and blocks the server
    threading.Thread(target=lambda: log.extend(proc.stderr), daemon=True).start()
    return Server(proc, int(found.group(1)), log)
