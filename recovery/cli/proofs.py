"""The bodies of `verify` and `diff`: load the policy tables, prove or compare, print."""

import sys

import click

from recovery.cli.exits import EXIT_FAILED, EXIT_OK, EXIT_USAGE, fail
from recovery.core.documents import action_json, decision_json, to_json
from recovery.core.machine import Decision, show_value
from recovery.core.printable import printable
from recovery.db import DatabaseError
from recovery.proofs.diff import AffectedInstance, DiffSettingError, PolicyDiff, affected_instances, compare, side
from recovery.proofs.policy_source import (
    PolicySourceError,
    PolicyTable,
    installed_policy,
    policy_at_revision,
    policy_from_file,
)
from recovery.proofs.verify import Counterexample, Verification, verify


def load_policy(module_path: str | None, revision: str | None) -> PolicyTable:
    """The policy named by a --policy-module path or a git --rev, else the installed one; exit 2 when it cannot load."""
    try:
        if module_path is not None:
            return policy_from_file(module_path)
        if revision is not None:
            return policy_at_revision(revision)
    except PolicySourceError as error:
        fail(str(error), EXIT_USAGE)
    return installed_policy()


def verify_command(module_path: str | None, revision: str | None) -> None:
    result = verify(load_policy(module_path, revision))
    click.echo(verification_text(result))
    sys.exit(EXIT_OK if result.holds else EXIT_FAILED)


def verification_text(result: Verification) -> str:
    classes = result.classes
    lines = [
        f"policy {result.policy.source}: {len(result.policy.rules)} rules",
        f"space: {result.state_count:,} states x {result.fact_class_count:,} fact classes "
        f"({' x '.join(str(len(c)) for c in classes.values())}) = {result.cases_per_invariant:,} cases per invariant",
    ]
    for proof in result.proofs:
        verdict = "holds" if proof.counterexample is None else "FAILS"
        lines.append(f"  {proof.invariant:<18} {verdict:<6} {proof.symbolic_cases:>7,} symbolic cases covering "
                     f"{proof.covered:,} cases")
    for proof in result.proofs:
        if proof.counterexample is not None:
            lines += [f"counterexample to {proof.invariant}: {proof.summary}", *_counterexample(proof.counterexample)]
    failed = sum(p.counterexample is not None for p in result.proofs)
    symbolic, covered = sum(p.symbolic_cases for p in result.proofs), sum(p.covered for p in result.proofs)
    lines.append(f"checked {symbolic:,} symbolic cases standing for {covered:,} cases: "
                 + ("every invariant holds" if not failed else f"{failed} invariant(s) fail"))
    return "\n".join(lines)


def _counterexample(found: Counterexample) -> list[str]:
    decision = found.decision
    return [
        f"  case:     {found.case.describe()}",
        f"  facts:    {to_json(found.case.facts()._asdict())}",
        f"  path:     {' -> '.join(f'{s.rule.name} ({s.source} to {s.dest})' for s in decision.steps) or 'none'}",
        f"  actions:  {to_json([action_json(a) for a in decision.actions])}",
        f"  problem:  {found.problem}",
    ]


def diff_command(a_settings: tuple[str, ...], b_settings: tuple[str, ...], a_source: tuple[str | None, str | None],
                 b_source: tuple[str | None, str | None], db_url: str | None, host: str | None, db_timeout: float,
                 as_json: bool) -> None:
    try:
        a, b = side(load_policy(*a_source), a_settings), side(load_policy(*b_source), b_settings)
    except DiffSettingError as error:
        fail(str(error), EXIT_USAGE)
    if db_url is not None and host is None:
        fail("diff --db needs --host: the host whose instances to look at", EXIT_USAGE)
    result = compare(a, b)
    affected = None if db_url is None else affected_instances(result, _host_records(db_url, host, db_timeout), host)
    click.echo(to_json(diff_json(result, affected), indent=2) if as_json else diff_text(result, affected, host))


def _host_records(db_url: str, host: str, db_timeout: float) -> list[tuple[str | None, dict]]:
    """The host's instances as decide records, read through a read-only session."""
    from recovery.cli.run import open_db
    from recovery.core.servicegroup import host_down_seconds
    from recovery.db.store import utcnow
    from recovery.run.boot import instance_record

    db = open_db(db_url, read_only=True, timeout=db_timeout)
    try:
        snapshot = db.load_host(host)
    except DatabaseError as error:
        fail(str(error), EXIT_USAGE)
    finally:
        db.close()
    evacuations = {m.instance_uuid.lower(): m for m in snapshot.evacuations if m.instance_uuid}
    down = host_down_seconds(snapshot.service, utcnow())
    return [(row.display_name, instance_record(row, None, evacuations.get(row.key), down))
            for row in snapshot.instances]


def _outcome_text(decision: Decision) -> str:
    actions = ", ".join(a.name + "".join(f" {k}={show_value(v)}" for k, v in a.params) for a in decision.actions)
    return f"{actions or 'no action'}; record {decision.vm_state}/{decision.task_state or 'none'}"


def diff_text(result: PolicyDiff, affected: list[AffectedInstance] | None, host: str | None) -> str:
    lines = [f"a: {result.a.describe()}", f"b: {result.b.describe()}"]
    for found in result.differences:
        lines += [found.case.describe(), f"    a: {_outcome_text(found.a)}", f"    b: {_outcome_text(found.b)}"]
    covered = sum(result.covered(d.case) for d in result.differences)
    lines.append(f"{len(result.differences):,} of {result.symbolic_cases:,} symbolic cases differ, standing for "
                 f"{covered:,} of {result.total_cases:,} cases (states x fact classes)")
    if affected is not None:
        lines.append(f"instances of host {host} it would affect: {len(affected)}")
        lines += [f"  {i.uuid} {i.name or '-'} {i.state} when the domain is {', '.join(i.power_states)}"
                  for i in affected]
    return "\n".join(printable(line) for line in lines)


def diff_json(result: PolicyDiff, affected: list[AffectedInstance] | None) -> dict:
    doc = {
        "a": result.a.describe(),
        "b": result.b.describe(),
        "differences": [
            {"state": d.case.state,
             "facts": {c.field: [show_value(v) for v in c.members] for c in d.case.fixed},
             "a": decision_json(d.a), "b": decision_json(d.b)}
            for d in result.differences
        ],
        "symbolic_cases": result.symbolic_cases,
        "cases": result.total_cases,
    }
    if affected is not None:
        doc["affected"] = [{"uuid": i.uuid, "name": i.name, "state": i.state, "power_states": list(i.power_states)}
                           for i in affected]
    return doc
