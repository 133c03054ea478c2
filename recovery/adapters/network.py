"""The network side of recovery: plugging VIFs, and the deferred apply at the end of a run."""

import shlex
import subprocess


class NetworkHook:
    """Plugs VIFs and applies network rules once at the end (Nova's deferred iptables apply).

    No-op by default. With commands, `plug_command UUID` runs per instance and
    its failure is a VIF plug failure; `apply_command` runs once after the run.
    """

    def __init__(self, plug_command: str | None = None, apply_command: str | None = None):
        self.plug_command = shlex.split(plug_command) if plug_command else None
        self.apply_command = shlex.split(apply_command) if apply_command else None

    @staticmethod
    def _run(command: list[str], what: str) -> None:
        try:
            done = subprocess.run(command, capture_output=True, text=True, timeout=120)
        except (OSError, subprocess.TimeoutExpired) as error:
            raise RuntimeError(f"{what}: cannot run {command[0]}: {error}") from error
        if done.returncode != 0:
            detail = (done.stderr or done.stdout).strip().splitlines()
            raise RuntimeError(f"{what} failed (exit {done.returncode})" + (f": {detail[-1]}" if detail else ""))

    @property
    def plugs(self) -> bool:
        """Whether plugging does anything (a command is set)."""
        return self.plug_command is not None

    def plug_vifs(self, uuid: str) -> None:
        if self.plug_command:
            self._run([*self.plug_command, uuid], "plugging VIFs")

    def apply(self) -> None:
        if self.apply_command:
            self._run(self.apply_command, "network apply")
