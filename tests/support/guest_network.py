"""A guest's network, for real: a network namespace joined to the host by a veth pair.

The libvirt test driver runs no guest, and a readiness probe may not connect to the host's own
addresses, so a test that needs a guest to answer puts a socket in a namespace of its own: the
host side of the pair is 10.N.M.1/24 (an address of this host), the guest side 10.N.M.2 (an address
no interface of the host has, reached through the pair as a guest's would be). Needs CAP_NET_ADMIN
(the suite runs as root); `remove` deletes the namespace and with it both ends of the pair.
"""

import ctypes
import itertools
import os
import socket
import subprocess
import threading

CLONE_NEWNET = 0x40000000
_numbers = itertools.count()


class GuestNetwork:
    def __init__(self) -> None:
        number = next(_numbers)
        self.name = f"cr-{os.getpid()}-{number}"
        subnet = f"10.{200 + os.getpid() % 50}.{(os.getpid() // 50 + number) % 250}"
        self.host_address, self.guest_address = f"{subnet}.1", f"{subnet}.2"
        host_end, guest_end = f"crh{os.getpid() % 100000}x{number}", "eth0"
        commands = [
            ["ip", "netns", "add", self.name],
            ["ip", "link", "add", host_end, "type", "veth", "peer", "name", guest_end, "netns", self.name],
            ["ip", "addr", "add", f"{self.host_address}/24", "dev", host_end],
            ["ip", "link", "set", host_end, "up"],
            ["ip", "-n", self.name, "addr", "add", f"{self.guest_address}/24", "dev", guest_end],
            ["ip", "-n", self.name, "link", "set", guest_end, "up"],
            ["ip", "-n", self.name, "link", "set", "lo", "up"],
        ]
        try:
            for command in commands:
                subprocess.run(command, check=True, capture_output=True, text=True)
        except subprocess.CalledProcessError as error:
            self.remove()
            raise RuntimeError(f"{' '.join(error.cmd)} failed: {error.stderr}") from None

    def socket(self) -> socket.socket:
        """A TCP socket in the guest's namespace, bound to the guest's address on a free port (not
        listening yet: connections to it are refused until `listen`)."""
        made: list[socket.socket | BaseException] = []

        def enter_and_bind() -> None:  # setns changes only this thread's namespace; the socket keeps it
            try:
                libc = ctypes.CDLL(None, use_errno=True)
                target = os.open(f"/run/netns/{self.name}", os.O_RDONLY)
                try:
                    if libc.setns(target, CLONE_NEWNET) != 0:
                        raise OSError(ctypes.get_errno(), "setns")
                finally:
                    os.close(target)
                sock = socket.socket()
                sock.bind((self.guest_address, 0))
                made.append(sock)
            except BaseException as error:  # handed to the calling thread
                made.append(error)

        thread = threading.Thread(target=enter_and_bind)
        thread.start()
        thread.join()
        if isinstance(made[0], BaseException):
            raise made[0]
        return made[0]

    def remove(self) -> None:
        subprocess.run(["ip", "netns", "del", self.name], capture_output=True)


def listening(address: str, made: socket.socket | None = None) -> socket.socket:
    """A listener at `address` (on a free port), or `made` (a guest's socket) made one; non-blocking."""
    sock = made or socket.socket(socket.AF_INET6 if ":" in address else socket.AF_INET)
    if made is None:
        sock.bind((address, 0))
    sock.listen(16)
    sock.setblocking(False)
    return sock


def connections(sock: socket.socket) -> int:
    """How many connections reached the listener (each accepted and closed)."""
    count = 0
    while True:
        try:
            conn, _ = sock.accept()
        except BlockingIOError:
            return count
        conn.close()
        count += 1
