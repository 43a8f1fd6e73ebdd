"""eliminate-dead-code: unused nodes and constants go."""

from pass_check import check_pass, run_pipeline


def test_dead_code_removes_unused_chains_and_constants():
    check_pass("eliminate-dead-code", """
        graph @main(%x: f32[4]) {
          %c = const f32[4] dense<[1.0, 2.0, 3.0, 4.0]>
          %a = add(%x, %c) : f32[4]
          %b = relu(%a) : f32[4]
          %y = neg(%x) : f32[4]
          return %y
        }""", """
        graph @main(%x: f32[4]) {
          %y = neg(%x) : f32[4]
          return %y
        }""")


def test_dead_code_keeps_a_multi_output_node_with_one_output_used():
    check_pass("eliminate-dead-code", """
        graph @main(%x: f32[4]) {
          %a, %b = split(%x) {axis=0, sizes=[1,3]} : f32[1], f32[3]
          %dead = neg(%a) : f32[1]
          %y = relu(%b) : f32[3]
          return %y
        }""", """
        graph @main(%x: f32[4]) {
          %a, %b = split(%x) {axis=0, sizes=[1,3]} : f32[1], f32[3]
          %y = relu(%b) : f32[3]
          return %y
        }""")


def test_dead_code_reports_no_change_on_a_clean_graph():
    graph, changed = run_pipeline("eliminate-dead-code", """
        graph @main(%x: f32[4]) {
          %y = neg(%x) : f32[4]
          return %y
        }""")
    assert not changed and graph.op_counts() == {"neg": 1}
