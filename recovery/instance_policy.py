"""Per-instance recovery policy from instance metadata (`recover:resume`), and durations.

The metadata keys are read here and turned into the two facts the policy's
guards read: the instance's resume policy, and whether the host was down
longer than the instance (or the host's --max-downtime) allows.
"""

import re
from itertools import pairwise

from recovery.input_bounds import shown
from states.enums import ResumePolicy

RESUME_KEY = "recover:resume"
DOWN_LESS_THAN = ResumePolicy.IF_DOWN_LESS_THAN.value
_UNITS = {"s": 1, "m": 60, "h": 3_600, "d": 86_400}
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*$")
MAX_DURATION_SECONDS = 366 * 86_400
_SPELLED = sorted(_UNITS.items(), key=lambda unit: -unit[1])
"""The units, largest first, as durations are printed."""


class PolicyValueError(ValueError):
    """A metadata value or option that names no policy; the message names the value and the fix."""


def parse_duration(text: str, what: str) -> float:
    """`90s`, `30m`, `1h`, `2d`, or plain seconds, within a year."""
    match = _DURATION.match(text) if isinstance(text, str) else None
    if match is None:
        raise PolicyValueError(f"{what} {shown(text)} is not a duration: use a number with s, m, h or d (e.g. 30m)")
    seconds = float(match.group(1)) * _UNITS[match.group(2) or "s"]
    if not 0 < seconds <= MAX_DURATION_SECONDS:
        raise PolicyValueError(f"{what} {shown(text)} must be more than 0 and at most 366d")
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
