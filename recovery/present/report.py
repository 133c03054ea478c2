"""The run report as one document: JSON and YAML print it, the value and csv formats its rows, and
recovery.present.report_table lays it out for people (rich is loaded only then)."""

from recovery.core.documents import format_action, path_json
from recovery.core.effects import after_success, changes_anything
from recovery.core.machine import Decision
from recovery.core.metadata import READY_RUNNING
from recovery.run.boot import RunResult
from recovery.run.tiers import TierReport


def run_json(result: RunResult) -> dict:
    """The run as one document; a dry run (`plan`) also says, for each instance, the state it would
    end in and whether anything would change, and how many instances would change."""
    instances = []
    dry_run = result.settings.dry_run
    for r in result.instances:
        decision = r.decision
        name, domain = result.names.get(r.uuid, (None, None))
        instances.append({
            "uuid": r.uuid,
            "name": name,
            "domain": domain,
            "state": decision.start_state if decision else None,
            "path": path_json(decision) if decision else [],
            "actions": [a.json() for a in r.actions],
            "outcome": r.outcome,
            "error": r.error,
            "reason": decision.reason if decision else None,
            "vm_state": r.vm_state,
            "task_state": r.task_state,
            "power_state": result.power_states.get(r.uuid, "nostate"),
            "tier": r.order.priority if r.order else None,
            "ready": r.order.describe() if r.order else None,
            "ready_seconds": None if r.ready_seconds is None else round(r.ready_seconds, 3),
            **_plan_json(decision if dry_run else None, dry_run),
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
        "would_change": sum(bool(i["would_change"]) for i in instances) if dry_run else None,
        "seconds": round(result.seconds, 3),
        "tiers": [_tier_json(tier, result.started) for tier in result.tiers],
    }


def _plan_json(decision: Decision | None, dry_run: bool) -> dict:
    """What a dry run predicts for an instance: the state it would end in once every action succeeded
    (the decision's writes and the actions' declared effects), and whether anything would change;
    null on a real run, whose vm_state, task_state and power_state are the end state itself."""
    if not dry_run or decision is None:
        return {"would_be": None, "would_change": False if dry_run else None}
    end = after_success(decision)
    return {"would_be": f"{end.vm_state}/{end.task_state}/{end.power_state}",
            "would_change": changes_anything(decision)}


def _tier_json(tier: TierReport, run_started: float) -> dict:
    """A tier's times in seconds from the run's start (null on a dry run)."""
    def since_start(moment: float | None) -> float | None:
        return None if moment is None else round(moment - run_started, 3)

    return {"project": tier.project, "priority": tier.priority, "instances": tier.instances,
            "began": since_start(tier.began), "ended": since_start(tier.ended), "not_ready": tier.not_ready}


RUN_COLUMNS = ("uuid", "start_state", "path", "actions", "outcome", "error", "vm_state", "task_state",
               "power_state", "tier", "ready", "reason")
"""The columns of `run -f value|csv` (and `plan`'s) and of `-c`: one row an instance, every cell one line of text."""
EXTRA_RUN_COLUMNS = ("name", "domain", "would_be", "would_change")
"""Columns there are only when -c names them: the instance's display name and libvirt domain name, and a
dry run's predicted end state and whether it would change anything."""
ALL_RUN_COLUMNS = RUN_COLUMNS + EXTRA_RUN_COLUMNS


def run_rows(doc: dict) -> list[dict]:
    """The run document's instances as flat rows of ALL_RUN_COLUMNS (a dry run's actions without the
    `skipped` of actions not carried out: they are what it would do)."""
    def actions(item: dict) -> str:
        if doc["dry_run"]:
            return ", ".join(format_action(a) for a in item["actions"])
        return ", ".join(f"{format_action(a)}: {a['outcome']}" for a in item["actions"])

    return [{
        "uuid": item["uuid"],
        "name": item["name"],
        "domain": item["domain"],
        "start_state": item["state"],
        "path": " → ".join(step["rule"] for step in item["path"]),
        "actions": actions(item),
        "outcome": item["outcome"],
        "error": item["error"],
        "vm_state": item["vm_state"],
        "task_state": item["task_state"],
        "power_state": item["power_state"],
        "tier": item["tier"],
        "ready": item["ready"],
        "reason": item["reason"],
        "would_be": item["would_be"],
        "would_change": item["would_change"],
    } for item in doc["instances"]]


def ordered(doc: dict) -> bool:
    """Whether the run has an order worth showing: more than one tier, or a guest waited on."""
    return len(doc["tiers"]) > 1 or any(item["ready"] not in (None, READY_RUNNING) for item in doc["instances"])


def filtered(doc: dict, outcomes: frozenset[str], changes: bool = False) -> dict:
    """The report with only the instances of these outcomes (all when none is named) and, with `changes`,
    only those a dry run would change; `shown` says how many of how many, and the totals stay the run's."""
    if not outcomes and not changes:
        return doc
    kept = [item for item in doc["instances"]
            if (not outcomes or item["outcome"] in outcomes) and (not changes or item["would_change"])]
    shown = {"outcomes": sorted(outcomes), "instances": len(kept)} | ({"would_change": True} if changes else {})
    return {**doc, "instances": kept, "shown": shown}


def shown_text(shown: dict) -> str:
    """Which instances a filtered report shows, in words: `outcome failed, conflict`, `the plan would change`."""
    said = [f"outcome {', '.join(shown['outcomes'])}"] if shown["outcomes"] else []
    return " and ".join([*said, *(["the plan would change"] if shown.get("would_change") else [])])
