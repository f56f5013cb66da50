"""Optional speed and memory switches (``perf`` config, schema ``PerfConfig``) that keep the distillation math.

The training package builds every run the same way (``lcm_exp.train.build``) and applies these where they act:
the step order and teacher passes live in the objective's spec, the DDIM table precision in the solver, the EMA
mode and the target's compute-dtype copy in the adapter, fused AdamW in the optimizer; what is left here acts on
the networks themselves (``switches``) and the benchmark's phase marks inside a step (``clock``).
"""
