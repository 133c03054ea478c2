"""The run report as one document: JSON and YAML print it, the value and csv formats its rows, and
recovery.present.report_table lays it out for people (rich is loaded only then)."""

from recovery.core.documents import action_json, format_action, path_json
from recovery.core.metadata import READY_RUNNING
from recovery.run.boot import RunResult
from recovery.run.tiers import TierReport


def run_json(result: RunResult) -> dict:
    instances = []
    for r in result.instances:
        decision = r.decision
        instances.append({
            "uuid": r.uuid,
            "state": decision.start_state if decision else None,
            "path": path_json(decision) if decision else [],
            "actions": [{**action_json(a.action), "outcome": a.outcome, "error": a.error} for a in r.actions],
            "outcome": r.outcome,
            "error": r.error,
            "reason": decision.reason if decision else None,
            "vm_state": r.vm_state,
            "task_state": r.task_state,
            "power_state": result.power_states.get(r.uuid, "nostate"),
            "tier": r.order.priority if r.order else None,
            "ready": r.order.describe() if r.order else None,
            "ready_seconds": None if r.ready_seconds is None else round(r.ready_seconds, 3),
        })
    return {
        "run_id": result.run_id,
        "host": result.settings.host,
        "dry_run": result.settings.dry_run,
        "host_down_seconds": result.host_down_seconds,
        "warnings": result.warnings,
        "instances": instances,
        "domains": [d.__dict__ for d in result.domains],
        "network_error": result.network_error,
        "halted": result.halted,
        "totals": result.totals,
        "seconds": round(result.seconds, 3),
        "tiers": [_tier_json(tier, result.started) for tier in result.tiers],
    }


def _tier_json(tier: TierReport, run_started: float) -> dict:
    """A tier's times in seconds from the run's start (null on a dry run)."""
    def since_start(moment: float | None) -> float | None:
        return None if moment is None else round(moment - run_started, 3)

    return {"project": tier.project, "priority": tier.priority, "instances": tier.instances,
            "began": since_start(tier.began), "ended": since_start(tier.ended), "not_ready": tier.not_ready}


RUN_COLUMNS = ("uuid", "start_state", "path", "actions", "outcome", "error", "vm_state", "task_state",
               "power_state", "tier", "ready", "reason")
"""The columns of `run -f value|csv` and of `-c`: one row an instance, every cell one line of text."""


def run_rows(doc: dict) -> list[dict]:
    """The run document's instances as flat rows of RUN_COLUMNS."""
    return [{
        "uuid": item["uuid"],
        "start_state": item["state"],
        "path": " → ".join(step["rule"] for step in item["path"]),
        "actions": ", ".join(f"{format_action(a)}: {a['outcome']}" for a in item["actions"]),
        "outcome": item["outcome"],
        "error": item["error"],
        "vm_state": item["vm_state"],
        "task_state": item["task_state"],
        "power_state": item["power_state"],
        "tier": item["tier"],
        "ready": item["ready"],
        "reason": item["reason"],
    } for item in doc["instances"]]


def ordered(doc: dict) -> bool:
    """Whether the run has an order worth showing: more than one tier, or a guest waited on."""
    return len(doc["tiers"]) > 1 or any(item["ready"] not in (None, READY_RUNNING) for item in doc["instances"])
