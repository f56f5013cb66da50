"""Multirun sweeps: guidance pairs and grids with a constraint, resumable named sweeps, summaries, reproduction.

Pieces: ``config`` (the ``sweep`` node of a job), ``plan`` (which jobs a sweep launches), ``job`` (seed, skip,
resume, force for one job), ``objective`` (the value a job returns), ``callback`` (failure records, summary at the
end), ``summary``/``plots`` (CSV, Markdown, heatmaps, loss curves). The Hydra sweeper plugin lives in
``hydra_plugins/lcm_exp_sweeper`` (Hydra loads sweepers only from that namespace).
"""
