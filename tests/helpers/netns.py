"""Machines of their own for the many-machines tests: Linux network namespaces joined to
this one by veth pairs, and a TCP forwarder in this namespace to the local PostgreSQL.

PostgreSQL listens on 127.0.0.1 only (trust for 127.0.0.1); a namespace cannot reach
that, so each machine reaches the forwarder on its veth's link-local address here, and
the forwarder connects to 127.0.0.1:5432. Bringing the veth down cuts that machine off
the database (its packets are dropped); bringing it up restores it.
"""

from __future__ import annotations

import contextlib
import os
import random
import socket
import subprocess
import threading
import uuid
from dataclasses import dataclass, field

import pytest

from tests.helpers.servers import IN_CI


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, text=True)


def require_netns() -> None:
    """Skip (fail under CI) unless network namespaces can be made here."""
    name = f"ofprobe{uuid.uuid4().hex[:6]}"
    try:
        _ip("netns", "add", name)
        _ip("netns", "del", name)
    except (OSError, subprocess.CalledProcessError) as error:
        detail = getattr(error, "stderr", "") or str(error)
        message = f"network namespaces cannot be made here (need root and iproute2): {detail}"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)


@dataclass
class Machine:
    """A network namespace with a veth to this one: `host_ip` here, `ip` inside."""

    name: str
    host_if: str
    host_ip: str
    ip: str

    @classmethod
    def create(cls, subnet: int, index: int) -> Machine:
        tag = uuid.uuid4().hex[:6]
        machine = cls(
            name=f"of{tag}{index}",
            host_if=f"ofh{tag}{index}",
            host_ip=f"169.254.{subnet}.{4 * index + 1}",
            ip=f"169.254.{subnet}.{4 * index + 2}",
        )
        inner = f"ofn{tag}{index}"
        _ip("netns", "add", machine.name)
        _ip("link", "add", machine.host_if, "type", "veth", "peer", "name", inner)
        _ip("link", "set", inner, "netns", machine.name)
        _ip("addr", "add", f"{machine.host_ip}/30", "dev", machine.host_if)
        _ip("link", "set", machine.host_if, "up")
        ns = ["netns", "exec", machine.name, "ip"]
        _ip(*ns, "addr", "add", f"{machine.ip}/30", "dev", inner)
        _ip(*ns, "link", "set", inner, "up")
        _ip(*ns, "link", "set", "lo", "up")
        return machine

    def command(self, *args: str) -> list[str]:
        """`args` run inside this machine."""
        return ["ip", "netns", "exec", self.name, *args]

    def cut(self) -> None:
        """Cut this machine off: its veth goes down, its packets are dropped."""
        _ip("link", "set", self.host_if, "down")

    def restore(self) -> None:
        """Reconnect it (the address and route come back with the link)."""
        _ip("link", "set", self.host_if, "up")

    def destroy(self) -> None:
        """Delete the namespace (and with it the veth pair)."""
        with contextlib.suppress(subprocess.CalledProcessError):
            _ip("netns", "del", self.name)
        with contextlib.suppress(subprocess.CalledProcessError):
            _ip("link", "del", self.host_if)


@dataclass
class Forwarder:
    """Accepts on each machine's host address and pipes every connection to PostgreSQL."""

    target: tuple[str, int] = ("127.0.0.1", 5432)
    servers: list[socket.socket] = field(default_factory=list)
    conns: list[socket.socket] = field(default_factory=list)
    stopped: threading.Event = field(default_factory=threading.Event)

    def listen(self, address: str, port: int = 0) -> int:
        """Listen on `address` (`port`, or a free one); returns the port."""
        server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        server.bind((address, port))
        server.listen(64)
        server.settimeout(0.2)
        self.servers.append(server)
        threading.Thread(target=self._accept, args=(server,), daemon=True).start()
        return int(server.getsockname()[1])

    def _accept(self, server: socket.socket) -> None:
        while not self.stopped.is_set():
            try:
                client, _ = server.accept()
            except (TimeoutError, OSError):
                continue
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            for sock in (client, upstream):
                sock.settimeout(None)
                self.conns.append(sock)
            threading.Thread(target=self._pipe, args=(client, upstream), daemon=True).start()
            threading.Thread(target=self._pipe, args=(upstream, client), daemon=True).start()

    @staticmethod
    def _pipe(src: socket.socket, dst: socket.socket) -> None:
        # a reset or a cut link ends this direction; both sockets are then shut down
        try:
            with contextlib.suppress(OSError):
                while data := src.recv(65536):
                    dst.sendall(data)
        finally:
            for sock in (src, dst):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        """Stop accepting and close every connection."""
        self.stopped.set()
        for sock in self.servers + self.conns:
            with contextlib.suppress(OSError):
                sock.close()


def random_subnet() -> int:
    """The third octet of this test's link-local addresses (169.254.N.0/24)."""
    return random.Random(os.getpid() ^ uuid.uuid4().int).randint(20, 250)
