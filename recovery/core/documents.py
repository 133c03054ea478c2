"""Decisions and explanations as JSON documents and as text for people."""

import json

from recovery.core.devices import DeviceProof
from recovery.core.facts import Facts, decide_record, options_of
from recovery.core.machine import Consideration, Decision, RecoveryMachine
from recovery.core.printable import printable
from states.policy import Action

_ENCODERS = {indent: json.JSONEncoder(allow_nan=False, indent=indent) for indent in (None, 2)}
"""Made once: json.dumps builds a new encoder on every call that passes an option."""


def to_json(value: object, indent: int | None = None) -> str:
    """JSON text as every output prints it: NaN and Infinity are refused, since they are not JSON."""
    return _ENCODERS[indent].encode(value)


def action_json(action: Action) -> dict:
    return {"name": action.name, **dict(action.params)}


def path_json(decision: Decision) -> list[dict]:
    return [{"rule": step.rule.name, "from": step.source, "to": step.dest} for step in decision.steps]


def decision_json(decision: Decision) -> dict:
    """The `decide` output record (docs/decide.md), without the uuid."""
    return {
        "state": decision.start_state,
        "path": path_json(decision),
        "actions": [action_json(a) for a in decision.actions],
        "vm_state": decision.vm_state,
        "task_state": decision.task_state,
        "reason": decision.reason,
    }


class DecisionPrinter:
    """Prints `decide` output lines; facts with equal abstract keys print the same text after the uuid."""

    def __init__(self, machine: RecoveryMachine):
        self.machine = machine
        self._tails: dict[tuple, str] = {}

    def line(self, uuid: str, facts: Facts) -> str:
        key = self.machine.abstract_key(facts)
        tail = self._tails.get(key)
        if tail is None:
            tail = self._tails[key] = to_json(decision_json(self.machine.decide(facts, key)))[1:]
        return '{"uuid": ' + to_json(uuid) + ", " + tail


def considerations_json(considerations: tuple[Consideration, ...]) -> list[dict]:
    return [{"rule": c.rule, "state": c.state, "matched": c.matched, "why": list(c.why)} for c in considerations]


def explanation_json(machine: RecoveryMachine, facts: Facts, record: dict) -> dict:
    """The decision and why; its facts as a `decide` record (of an instance recorded on the
    record's host, with the record's metadata and downtime when it has them), so that they can be
    fed back to `decide` or `explain --facts`."""
    decision = machine.decide(facts)
    policy_inputs = {name: record[name] for name in POLICY_INPUTS if name in record}
    return {
        "state": decision.start_state,
        "facts": decide_record(facts, record.get("host")) | policy_inputs,
        "options": options_of(facts),
        "considered": considerations_json(machine.consider(facts)),
        **{k: v for k, v in decision_json(decision).items() if k != "state"},
    }


POLICY_INPUTS = ("metadata", "host_down_seconds")
"""What a record gives that the facts keep only as what it decides (resume_policy, down_too_long)."""


def device_proof_json(proof: DeviceProof) -> dict:
    """A guest's device proof as `explain --live` shows it: its readiness and every resource it needs, each
    with its readiness and, when not ready, why."""
    return {"readiness": proof.readiness.value,
            "resources": [{"kind": f.resource.kind.value, "name": f.resource.name, "pool": f.resource.pool,
                           "readiness": f.readiness.value, "reason": f.reason or None} for f in proof.findings]}


def device_proof_lines(doc: dict) -> list[str]:
    """Text for a device proof document (`device_proof_json`, or {"error": why no proof was made})."""
    if "error" in doc:
        return [f"devices: not proved ({doc['error']})"]
    lines = [f"devices: {doc['readiness']}"]
    for resource in doc["resources"]:
        pool = f" in pool {resource['pool']}" if resource["pool"] else ""
        lines.append(f"  {resource['kind']} {resource['name']}{pool}: {resource['readiness']}"
                     + (f" — {resource['reason']}" if resource["reason"] else ""))
    return lines


def format_action(action: dict) -> str:
    params = ", ".join(f"{k}={to_json(v)}" for k, v in action.items() if k not in ("name", "outcome", "error"))
    return f"{action['name']}({params})" if params else action["name"]


def walk_lines(doc: dict, brief: bool = False) -> list[str]:
    """Start state, facts, every rule considered and the path: what a decision and a journal entry share;
    `brief`: the start state and the names of the rules that matched, on one line each."""
    lines = [f"start state: {doc['state']}"]
    if brief:
        return [*lines, "path: " + (" → ".join(step["rule"] for step in doc["path"]) or "(none)")]
    lines.append("facts:")
    lines += [f"  {name} = {to_json(value)}" for name, value in doc["facts"].items()]
    if doc.get("options"):
        lines.append("options:")
        lines += [f"  {name} = {to_json(value)}" for name, value in doc["options"].items()]
    lines.append("rules considered:")
    for item in doc["considered"]:
        mark = "MATCH" if item["matched"] else "no"
        lines.append(f"  [{mark:5}] {item['rule']} at {item['state']}: " + "; ".join(item["why"]))
    lines.append("path:")
    lines += [f"  {step['from']} --{step['rule']}--> {step['to']}" for step in doc["path"]] or ["  (none)"]
    return lines


def explanation_text(doc: dict, brief: bool = False) -> str:
    """Text for one explanation document, as `explanation_json` builds it: one line per line, each
    `printable` (a name or reason holding a newline or a terminal escape forges nothing); `brief`: as
    walk_lines, and without the record after the decision (its path and actions say it)."""
    lines = walk_lines(doc, brief)
    lines.append("actions: " + (", ".join(format_action(a) for a in doc["actions"]) or "none"))
    if not brief:
        lines.append(f"record after the decision: vm_state={doc['vm_state']} task_state={doc['task_state'] or 'null'}")
    lines.append(f"why: {doc['reason']}")
    return "\n".join(printable(line) for line in lines)
