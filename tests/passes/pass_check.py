"""`check_pass(pipeline, before, expected)`: pass tests written as IR text in and IR text out;
`check_unchanged(pipeline, text)` for a graph a pass must leave as it is."""

from __future__ import annotations

import textwrap

from edgecc.ir import parse_graph, print_graph
from edgecc.passes import PassContext, PassManager, parse_pipeline


def run_pipeline(pipeline: str, text: str, target=None):
    graph = parse_graph(textwrap.dedent(text))
    manager = PassManager(parse_pipeline(pipeline), verify_each=True)
    changed = manager.run(graph, PassContext(target=target))
    return graph, changed


def check_pass(pipeline: str, before: str, expected: str, target=None) -> None:
    """Run `pipeline` on `before` and compare the printed result with `expected` (normalized)."""
    graph, _ = run_pipeline(pipeline, before, target)
    got = print_graph(graph)
    want = print_graph(parse_graph(textwrap.dedent(expected)))
    assert got == want, f"\n--- got ---\n{got}\n--- expected ---\n{want}"


def check_unchanged(pipeline: str, text: str, target=None) -> None:
    """Run `pipeline` on `text`: it reports no change and prints the graph as it was."""
    graph, changed = run_pipeline(pipeline, text, target)
    want = print_graph(parse_graph(textwrap.dedent(text)))
    assert not changed and print_graph(graph) == want, f"\n--- got ---\n{print_graph(graph)}\n--- expected ---\n{want}"
