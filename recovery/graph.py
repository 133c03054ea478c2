"""The compiled machine as a picture (Mermaid or Graphviz dot) for policy review."""

from recovery.machine import RecoveryMachine


def edges(machine: RecoveryMachine, vm_state: str | None = None, task_state: str | None = None,
          power_state: str | None = None) -> list[tuple[str, str, str]]:
    """(source, rule, dest) for every transition leaving a state that matches the filters."""
    wanted = (vm_state, task_state, power_state)
    found = set()
    for state in machine.machine.states:
        parts = state.split("/")
        if any(want is not None and want != part for want, part in zip(wanted, parts, strict=True)):
            continue
        for _, guard, dest in machine.transitions_from(state):
            found.add((state, guard.rule.name, dest))
    return sorted(found)


def _node_id(state: str) -> str:
    return "s_" + "".join(ch if ch.isalnum() else "_" for ch in state)


def mermaid(edge_list: list[tuple[str, str, str]]) -> str:
    lines = ["stateDiagram-v2"]
    states = sorted({s for s, _, _ in edge_list} | {d for _, _, d in edge_list})
    lines += [f'    state "{s}" as {_node_id(s)}' for s in states]
    lines += [f"    {_node_id(s)} --> {_node_id(d)}: {rule}" for s, rule, d in edge_list]
    return "\n".join(lines)


def dot(edge_list: list[tuple[str, str, str]]) -> str:
    lines = ["digraph recovery {", "    rankdir=LR;", "    node [shape=box, fontsize=10];"]
    lines += [f'    "{s}" -> "{d}" [label="{rule}"];' for s, rule, d in edge_list]
    lines.append("}")
    return "\n".join(lines)
