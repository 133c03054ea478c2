"""The exit codes of compute-recover: a process's status, and also what the journal and the agent's
metrics record of each run (`RunResult.exit_code`), so they live below every layer that records one.
What each means, and which error exits with which, is in `recovery.cli.exits`."""

EXIT_OK = 0
EXIT_FAILED = 1
"""Some instance failed, lost a race to a concurrent change or was not ready within its tier's timeout,
the run stopped because its database or hypervisor went away, some `decide` line was bad, or
`run --plan` held an instance back (its facts changed since the plan, or it is not in the plan)."""
EXIT_USAGE = 2
EXIT_REFUSED = 3
"""Refused before changing anything: libvirt too old, or an identity check failed."""
EXIT_LOCKED = 4
"""Another recovery of the same host held the host lock for the whole --lock-timeout; nothing changed."""
EXIT_CHANGES_PENDING = 5
"""Only with `--detailed-exitcode` (`plan`, `run --dry-run`): the plan would change something (as
`terraform plan -detailed-exitcode` says it with 2, which is compute-recover's usage error)."""
EXIT_UNAVAILABLE = 6
"""The database or libvirt did not answer at start (nothing was changed); they may come back: the
agent waits for them (--start-wait) and its unit restarts it on this code."""
SIGNAL_EXIT_BASE = 128
"""A command stopped by a signal exits with 128 + its number, as a shell reports a process it ended."""
EXIT_INTERRUPTED = SIGNAL_EXIT_BASE + 2
"""SIGINT (Ctrl-C): the run stopped taking new instances, finished the actions under way and reported."""
EXIT_TERMINATED = SIGNAL_EXIT_BASE + 15
"""SIGTERM: as SIGINT."""
