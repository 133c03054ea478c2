"""Per-instance recovery policy from instance metadata (`recover:` keys), and durations.

The metadata keys are read here. `recover:resume` becomes the two facts the
policy's guards read: the instance's resume policy, and whether the host was
down longer than the instance (or the host's --max-downtime) allows. The start
order keys (`recover:priority`, `recover:ready`, `recover:address`,
`recover:start-delay`) become a `StartOrder`, which the run's tiers follow
(recovery/run/tiers.py); they never change a decision.
"""

import ipaddress
import re
from dataclasses import dataclass
from itertools import pairwise

from recovery.core.bounds import shown
from recovery.core.errors import RecoveryError
from states.enums import ResumePolicy

RESUME_KEY = "recover:resume"
DOWN_LESS_THAN = ResumePolicy.IF_DOWN_LESS_THAN.value
_UNITS = {"s": 1, "m": 60, "h": 3_600, "d": 86_400}
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*$")
MAX_DURATION_SECONDS = 366 * 86_400
_SPELLED = sorted(_UNITS.items(), key=lambda unit: -unit[1])
"""The units, largest first, as durations are printed."""

PRIORITY_KEY = "recover:priority"
READY_KEY = "recover:ready"
ADDRESS_KEY = "recover:address"
START_DELAY_KEY = "recover:start-delay"
START_ORDER_KEYS = (PRIORITY_KEY, READY_KEY, ADDRESS_KEY, START_DELAY_KEY)
DEFAULT_PRIORITY = 0
PRIORITY_BOUND = 1_000
"""Priorities are integers from -1000 to 1000."""
MAX_START_DELAY_SECONDS = 3_600
READY_RUNNING, READY_AGENT, READY_TCP = "running", "agent", "tcp"


class PolicyValueError(RecoveryError, ValueError):
    """A metadata value or option that names no policy; the message names the value and the fix."""


def parse_duration(text: str, what: str, at_most: float = MAX_DURATION_SECONDS) -> float:
    """`90s`, `30m`, `1h`, `2d`, or plain seconds, more than 0 and at most `at_most` seconds (a year)."""
    match = _DURATION.match(text) if isinstance(text, str) else None
    if match is None:
        raise PolicyValueError(f"{what} {shown(text)} is not a duration: use a number with s, m, h or d (e.g. 30m)")
    seconds = float(match.group(1)) * _UNITS[match.group(2) or "s"]
    if not 0 < seconds <= at_most:
        raise PolicyValueError(f"{what} {shown(text)} must be more than 0 and at most {format_duration(at_most)}")
    return seconds


def format_duration(seconds: float) -> str:
    """A duration the way people read it, in its two largest units, the second left out when the
    duration is whole in the first: `1h`, `2h 0m` (2 h and some seconds), `5m 12s`, `3d 4h`."""
    whole = int(seconds)
    for (unit, size), (smaller, smaller_size) in pairwise(_SPELLED):
        if whole >= size:
            first, rest = divmod(whole, size)
            return f"{first}{unit}" + (f" {rest // smaller_size}{smaller}" if rest else "")
    return f"{whole}s"


def parse_resume(text: str, what: str = RESUME_KEY) -> tuple[str, float | None]:
    """A `recover:resume` value as (policy, downtime limit in seconds for if-down-less-than:<duration>)."""
    if isinstance(text, str) and text.startswith(DOWN_LESS_THAN + ":"):
        return DOWN_LESS_THAN, parse_duration(text[len(DOWN_LESS_THAN) + 1:], what)
    choices = [p.value for p in ResumePolicy if p is not ResumePolicy.IF_DOWN_LESS_THAN]
    if text not in choices:
        raise PolicyValueError(f"{what} {shown(text)} is not a resume policy: use {', '.join(choices)} "
                               f"or {DOWN_LESS_THAN}:<duration>")
    return text, None


def resume_facts(metadata: dict, default_policy: str, max_downtime: float | None,
                 host_down_seconds: float | None) -> tuple[str, bool]:
    """(resume_policy, down_too_long): the instance's metadata wins over the host default; the limit is the
    instance's if-down-less-than duration, else --max-downtime; an unknown downtime is never too long."""
    value = metadata.get(RESUME_KEY)
    policy, limit = parse_resume(value) if value is not None else parse_resume(default_policy, "--resume-policy")
    if limit is None:
        limit = max_downtime
    return policy, host_down_seconds is not None and limit is not None and host_down_seconds >= limit


@dataclass(frozen=True)
class StartOrder:
    """When a guest the run starts is started, and when it counts as ready (docs/recovery-policy.md)."""

    priority: int = DEFAULT_PRIORITY
    """Its tier: tiers start in ascending order, each once the one before is ready or timed out."""
    ready: str = READY_RUNNING
    """running (its start succeeded), agent (the QEMU guest agent answers) or tcp (a connect succeeds)."""
    port: int | None = None
    address: str | None = None
    """The guest's IP address, for tcp."""
    start_delay: float = 0.0
    """Seconds after its start before it counts as ready (checked only then)."""

    @property
    def waits(self) -> bool:
        """Whether its tier has anything to wait for once it is started."""
        return self.ready != READY_RUNNING or self.start_delay > 0

    def describe(self) -> str:
        """The readiness check, as the report and explain print it."""
        check = f"tcp:{self.port} at {self.address}" if self.ready == READY_TCP else self.ready
        return check + (f" after {format_duration(self.start_delay)}" if self.start_delay else "")


DEFAULT_ORDER = StartOrder()


def start_order(metadata: dict[str, str]) -> StartOrder:
    """An instance's start order from its metadata; an instance without the keys costs one lookup a key."""
    if not metadata or not any(key in metadata for key in START_ORDER_KEYS):
        return DEFAULT_ORDER
    ready, port = _parse_ready(metadata.get(READY_KEY, READY_RUNNING))
    delay = metadata.get(START_DELAY_KEY)
    return StartOrder(
        priority=_parse_priority(metadata.get(PRIORITY_KEY, str(DEFAULT_PRIORITY))),
        ready=ready,
        port=port,
        address=_parse_address(metadata.get(ADDRESS_KEY), metadata[READY_KEY]) if ready == READY_TCP else None,
        start_delay=0.0 if delay is None else parse_duration(delay, START_DELAY_KEY, MAX_START_DELAY_SECONDS),
    )


def _parse_priority(text: str) -> int:
    value = text.strip() if isinstance(text, str) else ""
    if not re.fullmatch(r"[-+]?\d{1,5}", value) or not -PRIORITY_BOUND <= int(value) <= PRIORITY_BOUND:
        raise PolicyValueError(f"{PRIORITY_KEY} {shown(text)} is not an integer from {-PRIORITY_BOUND} to "
                               f"{PRIORITY_BOUND}: lower starts first (e.g. 0 for a database, 1 for its applications)")
    return int(value)


def _parse_ready(text: str) -> tuple[str, int | None]:
    if text in (READY_RUNNING, READY_AGENT):
        return text, None
    port = text[len(READY_TCP) + 1:] if isinstance(text, str) and text.startswith(READY_TCP + ":") else ""
    if not (port.isascii() and port.isdigit() and len(port) <= 5 and 1 <= int(port) <= 65_535):
        raise PolicyValueError(f"{READY_KEY} {shown(text)} is not a readiness check: use {READY_RUNNING}, "
                               f"{READY_AGENT} or {READY_TCP}:<port> (port 1 to 65535)")
    return READY_TCP, int(port)


def _parse_address(text: str | None, ready: str) -> str:
    """An IP address, never a name: at boot the name server may be one of the guests still down."""
    if text is None:
        raise PolicyValueError(f"{READY_KEY} {shown(ready)} needs {ADDRESS_KEY}: set it to the guest's IP address")
    try:
        return str(ipaddress.ip_address(text.strip()))
    except ValueError:
        raise PolicyValueError(f"{ADDRESS_KEY} {shown(text)} is not an IP address: give the guest's IPv4 or IPv6 "
                               "address (names are not resolved at boot)") from None
