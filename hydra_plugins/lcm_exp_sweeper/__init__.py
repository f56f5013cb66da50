"""lcm_exp sweeper plugin for Hydra (hydra/sweeper=lcm)."""
