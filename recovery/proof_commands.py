"""The bodies of `verify` and `diff`: load the policy tables, prove or compare, print."""

import sys

import click

from recovery.exits import EXIT_FAILED, EXIT_OK, EXIT_USAGE, fail
from recovery.policy_source import (
    PolicySourceError,
    PolicyTable,
    installed_policy,
    policy_at_revision,
    policy_from_file,
)
from recovery.render import action_json, to_json
from recovery.verify import Counterexample, Verification, verify


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
