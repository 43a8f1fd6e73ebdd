"""The x86 host target: code choices follow the CPU's features, named or detected."""

import pytest

from edgecc.targets import get_target


@pytest.mark.parametrize("cpu, vector_bytes, registers", [
    ("x86-64", 16, 16), ("haswell", 32, 16), ("znver3", 32, 16), ("alderlake", 32, 16),
    ("skylake-avx512", 64, 32), ("znver4", 64, 32), ("icelake-server", 64, 32), ("sapphirerapids", 64, 32),
])
def test_named_cpus_get_the_vector_width_of_their_features(cpu, vector_bytes, registers):
    """`--cpu znver4` on any machine builds what a Zen 4 host builds for itself."""
    target = get_target("host", cpu=cpu)
    assert (target.vector_bytes, target.vector_registers) == (vector_bytes, registers)
    assert target.lanes("float32") == vector_bytes // 4 and target.lanes("int8") == vector_bytes

