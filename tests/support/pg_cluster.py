"""A throwaway PostgreSQL cluster in a temporary directory, started from the server binaries.

Used by the session's `pg_url` fixture, by fault tests that stop or freeze a cluster of their
own, and by the fleet benchmark. Runs the server as the `postgres` user when we are root
(initdb refuses root).
"""

import contextlib
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
from pathlib import Path

from tests.support.ports import free_port

PG_PASSWORD = "s3cret-pg-password"
"""The superuser password: password auth is on, so URLs must carry it and every message must hide it."""


class ClusterUnavailable(Exception):
    """The server binaries or the account to run them are missing (a test skips)."""


class ClusterError(Exception):
    """A server command failed; the message carries its output and the server log."""


def pg_bindir() -> Path | None:
    """The newest Debian-installed PostgreSQL server binaries, else initdb on PATH."""
    installed = sorted(
        Path("/usr/lib/postgresql").glob("*/bin/initdb"),
        key=lambda initdb: int(initdb.parent.parent.name) if initdb.parent.parent.name.isdigit() else 0,
    )
    if installed:
        return installed[-1].parent
    on_path = shutil.which("initdb")
    return Path(on_path).parent if on_path else None


class PostgresCluster:
    """initdb in a new temporary directory on a free loopback port; `start`, `stop`, `freeze`,
    `thaw`, and `remove` (stops it first). `server_options` adds `-c` settings."""

    def __init__(self, server_options: str = "-c fsync=off") -> None:
        bindir = pg_bindir()
        if bindir is None:
            raise ClusterUnavailable("PostgreSQL server binaries (initdb, pg_ctl) not found: "
                                     "apt-get install postgresql")
        self.bindir = bindir
        self.workdir = Path(tempfile.mkdtemp(prefix="compute-recover-pg-"))
        self.as_server_user: list[str] = []
        if os.geteuid() == 0:
            try:
                account = pwd.getpwnam("postgres")
            except KeyError:
                shutil.rmtree(self.workdir)
                raise ClusterUnavailable("running as root and there is no 'postgres' user to run the server as") \
                    from None
            os.chown(self.workdir, account.pw_uid, account.pw_gid)
            self.as_server_user = ["runuser", "-u", "postgres", "--"]
        self.data, self.port = self.workdir / "data", free_port()
        self.frozen = False
        self.options = (f"-p {self.port} -c listen_addresses=127.0.0.1 -c unix_socket_directories={self.workdir} "
                        f"{server_options}")
        (self.workdir / "pwfile").write_text(PG_PASSWORD + "\n")
        try:
            self._pg("initdb", "-D", self.data, "-U", "postgres", f"--pwfile={self.workdir / 'pwfile'}",
                     "--auth-local=trust", "--auth-host=scram-sha-256", "--no-locale", "--encoding=UTF8",
                     "--no-sync")
        except ClusterError:
            shutil.rmtree(self.workdir, ignore_errors=True)
            raise

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+psycopg://postgres:{PG_PASSWORD}@127.0.0.1:{self.port}/{database}"

    def start(self) -> None:
        self._pg("pg_ctl", "-D", self.data, "-l", self.workdir / "server.log", "-o", self.options, "-w", "start")

    def stop(self, mode: str = "fast") -> None:
        """As an operator stops it: `fast` ends every session (their open transactions roll back)."""
        self._pg("pg_ctl", "-D", self.data, "-m", mode, "-w", "stop")

    def running(self) -> bool:
        return (self.data / "postmaster.pid").exists()

    def server_pids(self) -> list[int]:
        """The postmaster and every process it forked (backends, checkpointer, ...)."""
        postmaster = int((self.data / "postmaster.pid").read_text().split()[0])
        children = [int(p.name) for p in Path("/proc").iterdir() if p.name.isdigit() and _parent(p) == postmaster]
        return [postmaster, *children]

    def cpu_seconds(self) -> float:
        """CPU the server has used: the postmaster's own and that of its ended children (backends
        of closed connections), which the kernel adds to the postmaster's when it reaps them."""
        postmaster = int((self.data / "postmaster.pid").read_text().split()[0])
        fields = Path(f"/proc/{postmaster}/stat").read_text().rsplit(")", 1)[1].split()
        return sum(int(tick) for tick in fields[11:15]) / os.sysconf("SC_CLK_TCK")

    def freeze(self) -> None:
        """SIGSTOP every server process: the kernel still accepts connections, nothing answers."""
        self._signal(signal.SIGSTOP)
        self.frozen = True

    def thaw(self) -> None:
        self._signal(signal.SIGCONT)
        self.frozen = False

    def remove(self) -> None:
        try:
            if self.running():
                if self.frozen:
                    self.thaw()
                self.stop()
        finally:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def _signal(self, number: signal.Signals) -> None:
        for pid in self.server_pids():
            with contextlib.suppress(ProcessLookupError):  # a backend that ended meanwhile
                os.kill(pid, number)

    def _pg(self, program: str, *args: object) -> None:
        command = [*self.as_server_user, str(self.bindir / program), *map(str, args)]
        done = subprocess.run(command, capture_output=True, text=True)
        if done.returncode != 0:
            log = self.workdir / "server.log"
            detail = done.stderr + (log.read_text() if log.exists() else "")
            raise ClusterError(f"{program} failed ({done.returncode}):\n{detail}")


def _parent(proc: Path) -> int | None:
    try:
        # /proc/PID/stat: "pid (comm) state ppid ..."; comm may hold spaces, so split after ')'.
        return int((proc / "stat").read_text().rsplit(")", 1)[1].split()[1])
    except (OSError, IndexError, ValueError):
        return None
