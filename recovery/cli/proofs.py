"""`compute-recover verify`, `diff` and `graph`: load the policy tables, prove, compare or draw them, print."""

import sys

import click

from recovery.cli.exits import CommandError
from recovery.cli.options import config_option, database_option, db_timeout_option, output_options
from recovery.core.documents import action_json, decision_json, to_json
from recovery.core.exit_codes import EXIT_FAILED, EXIT_OK
from recovery.core.facts import POWER_STATES, TASK_STATES, VM_STATES
from recovery.core.machine import Decision, shared_machine, show_value
from recovery.core.printable import printable
from recovery.present import graph as graphs
from recovery.present.formats import Output, emit, selected_columns
from recovery.proofs import verify as proofs
from recovery.proofs.diff import AffectedInstance, PolicyDiff, affected_instances, compare, side
from recovery.proofs.policy_source import (
    PolicyTable,
    installed_policy,
    policy_at_revision,
    policy_from_file,
)
from recovery.proofs.verify import Counterexample, Verification


@click.command()
@click.option("--format", "fmt", type=click.Choice(["mermaid", "dot"]), default="mermaid", show_default=True,
              help="Mermaid (rendered by GitHub, GitLab, mermaid.live) or Graphviz dot.")
@click.option("--vm-state", type=click.Choice(VM_STATES), metavar="VM_STATE",
              help=f"Only transitions leaving this vm_state: {', '.join(VM_STATES)}.")
@click.option("--task-state", type=click.Choice(TASK_STATES), metavar="TASK_STATE",
              help="Only transitions leaving this task_state (Nova's: none, rebooting, spawning, ...; a name it does "
              "not know is refused with the list).")
@click.option("--power-state", type=click.Choice(POWER_STATES), metavar="POWER_STATE",
              help=f"Only transitions leaving this power state: {', '.join(POWER_STATES)}.")
@click.option("--full", is_flag=True, help="Every vm_state/task_state/power_state transition, even unfiltered "
              "(about 13,000 edges: too many for Mermaid's default limits).")
def graph(fmt: str, vm_state: str | None, task_state: str | None, power_state: str | None, full: bool) -> None:
    """Export the compiled machine as a diagram.

    Without a filter or --full, a summary: one node per vm_state, one edge per pair of vm_states
    labelled with the rules between them and how many full states take each. It renders within
    Mermaid's default limits. With a filter (or --full): every state triple and rule transition.
    """
    edge_list = graphs.edges(shared_machine(), vm_state, task_state, power_state)
    if not (full or vm_state or task_state or power_state):
        edge_list = graphs.summary(edge_list)
    click.echo(graphs.mermaid(edge_list) if fmt == "mermaid" else graphs.dot(edge_list))


def _policy_source_options(command):
    """Which policy table a command judges: a copy in a file, states/ at a git revision, or the installed one."""
    command = click.option("--rev", "revision", help="The policy of states/policy.py at this git revision "
                           "(e.g. HEAD~3), read with git show.")(command)
    return click.option("--policy-module", type=click.Path(dir_okay=False),
                        help="A copy of states/policy.py to judge instead of the installed policy.")(command)


@click.command()
@_policy_source_options
def verify(policy_module: str | None, revision: str | None) -> None:
    """Prove the policy's invariants over every state and every class of facts.

    Totality, determinism, the decision cache, safety (no domain destroyed without evidence),
    convergence within 3 runs, and agreement of the walk with the machine's own triggers, each
    checked exhaustively (docs/verify.md). Exit 1 with a counterexample when one fails.
    """
    verify_command(policy_module, revision)


@click.command()
@click.option("--a", "a_settings", multiple=True, metavar="NAME=VALUE",
              help="A decision option of side a (repeatable): resume=off, destroy_after_evacuate=on, "
              "running_deleted_instance_action=reap; unset options take their defaults.")
@click.option("--b", "b_settings", multiple=True, metavar="NAME=VALUE", help="A decision option of side b.")
@click.option("--a-rev", help="Side a's policy: states/policy.py at this git revision (e.g. HEAD~3).")
@click.option("--b-rev", help="Side b's policy: states/policy.py at this git revision.")
@click.option("--a-policy-module", type=click.Path(dir_okay=False), help="Side a's policy: a copy of states/policy.py.")
@click.option("--b-policy-module", type=click.Path(dir_okay=False), help="Side b's policy: a copy of states/policy.py.")
@click.option("--host", help="With --db: the host whose instances it would affect.")
@output_options(example="state")
@database_option
@db_timeout_option
@config_option
def diff(a_settings: tuple[str, ...], b_settings: tuple[str, ...], a_rev: str | None, b_rev: str | None,
         a_policy_module: str | None, b_policy_module: str | None, host: str | None, output: Output,
         db_url: str | None, db_timeout: float) -> None:
    """List every state and class of facts whose decision differs between two sides.

    A side is a policy table (the installed one, a copy, or a git revision) with decision options.
    A decision differs when it starts other actions or leaves the record in another state. With
    --db and --host, also the instances of that host it would affect (read-only). docs/diff.md.
    Columns for -c: state, facts, a, b (the keys of each difference in the JSON document).
    """
    diff_command(a_settings, b_settings, (a_policy_module, a_rev), (b_policy_module, b_rev), db_url,
                 host, db_timeout, output)



def load_policy(module_path: str | None, revision: str | None) -> PolicyTable:
    """The policy named by a --policy-module path or a git --rev, else the installed one; a PolicySourceError
    (exit 2) when it cannot load."""
    if module_path is not None:
        return policy_from_file(module_path)
    if revision is not None:
        return policy_at_revision(revision)
    return installed_policy()


def verify_command(module_path: str | None, revision: str | None) -> None:
    result = proofs.verify(load_policy(module_path, revision))
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
                 output: Output) -> None:
    columns = selected_columns(DIFF_COLUMNS, output.columns)  # a bad -c is refused before the comparison
    a, b = side(load_policy(*a_source), a_settings), side(load_policy(*b_source), b_settings)
    if db_url is not None and host is None:
        raise CommandError("diff --db needs --host: the host whose instances to look at")
    result = compare(a, b)
    affected = None if db_url is None else affected_instances(result, _host_records(db_url, host, db_timeout), host)
    doc = diff_json(result, affected)
    emit(output, doc, lambda: doc["differences"], columns, lambda: click.echo(diff_text(result, affected, host)))


def _host_records(db_url: str, host: str, db_timeout: float) -> list[tuple[str | None, dict]]:
    """The host's instances as decide records (of a Nova cell, when it is one), read through a read-only session."""
    from recovery.cli.open import open_db
    from recovery.db import schema
    from recovery.run.gather import gather

    db = open_db(db_url, read_only=True, timeout=db_timeout)
    try:
        gathered = gather(db, None, host, nova_cell=schema.is_nova_cell(db))
    finally:
        db.close()
    return [(row.display_name, gathered.record(row)) for row in gathered.instances.values()]


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


DIFF_COLUMNS = ("state", "facts", "a", "b")
"""The columns of `diff -c`: the keys of each difference in the document, with the same values."""


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
