"""Speed and memory switches (``perf`` config, schema ``PerfConfig``) that keep the LCD math unchanged.

Each switch maps onto one component the loop already builds: the objective spec and solver (``components``), the
optimizer (``components.build_optimizer``), the UNets' memory format / attention / compilation (``modules``), the
target network's storage dtype and the EMA mode (``adapter.PerfAdapter``), and the order of one training step
(``train_step.TrainStep``, which the benchmark harness in ``lcm_exp.bench`` times phase by phase).
"""
