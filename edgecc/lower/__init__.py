"""Lowering: an optimized IR graph -> TIR kernels -> schedules -> a Relax module -> a built library.

`plan.py` decides the kernels (`plan_kernels`), `kernels.py` and `te_ops/` build them,
`schedules/` schedules them (tuning records come in through `schedules.ScheduleSource`),
`relax_module.py` calls them from Relax, `build.py` compiles and exports. Imports nothing above
the targets and the runtime (see tools/layers.py).
"""
