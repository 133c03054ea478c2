"""Where a policy table comes from: the installed one, a copy in a file, or states/ at a git revision.

`verify` and `diff` judge any table, not only the one in use, so that a change
to the policy can be checked before it is made.
"""

import importlib.util
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from recovery.core.errors import RecoveryError
from states import policy as installed
from states.policy import ActionOutcome, Rule

REPOSITORY = Path(installed.__file__).resolve().parent.parent
POLICY_PATH = "states/policy.py"


class PolicySourceError(RecoveryError, ValueError):
    """A policy table that cannot be loaded; the message names the source and the fix."""


@dataclass(frozen=True)
class PolicyTable:
    source: str
    """Where it was read from, for reports."""
    rules: tuple[Rule, ...]
    actions: dict[str, ActionOutcome]


def installed_policy() -> PolicyTable:
    return PolicyTable(POLICY_PATH, installed.POLICY, installed.ACTIONS)


def policy_from_file(path: str | Path, source: str | None = None) -> PolicyTable:
    """Load a copy of states/policy.py (it may import states.enums) as a module of its own."""
    path = Path(path)
    shown = source or str(path)
    if not path.is_file():
        raise PolicySourceError(f"policy module {shown} does not exist: give the path of a copy of {POLICY_PATH}")
    name = f"_policy_copy_{abs(hash(str(path.resolve())))}"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except Exception as error:  # any error in foreign code is one line naming the module
        raise PolicySourceError(f"policy module {shown} does not load: {type(error).__name__}: {error}") from None
    finally:
        sys.modules.pop(name, None)
    rules, actions = getattr(module, "POLICY", None), getattr(module, "ACTIONS", None)
    # the copy defines its own Rule class (a twin of states.policy.Rule), so rules are recognised by their shape
    if not isinstance(rules, tuple) or not all(_looks_like_rule(r) for r in rules) or not isinstance(actions, dict):
        raise PolicySourceError(f"policy module {shown} must define POLICY (a tuple of Rule) and ACTIONS (a dict), "
                                f"as {POLICY_PATH} does")
    return PolicyTable(shown, rules, actions)


def _looks_like_rule(rule: object) -> bool:
    return all(hasattr(rule, field) for field in Rule.__dataclass_fields__)


def policy_at_revision(revision: str) -> PolicyTable:
    """states/policy.py as committed at a git revision (with today's states/enums.py)."""
    shown = f"{revision}:{POLICY_PATH}"
    try:
        text = subprocess.run(["git", "-C", str(REPOSITORY), "show", shown], check=True, capture_output=True,
                              text=True).stdout
    except FileNotFoundError:
        raise PolicySourceError(f"cannot read {shown}: git is not installed") from None
    except subprocess.CalledProcessError as error:
        detail = error.stderr.strip().splitlines()[-1] if error.stderr.strip() else "git show failed"
        raise PolicySourceError(f"cannot read {shown}: {detail}; name a commit of {REPOSITORY}") from None
    with tempfile.TemporaryDirectory(prefix="compute-recover-policy-") as directory:
        copy = Path(directory) / "policy.py"
        copy.write_text(text)
        return policy_from_file(copy, shown)
