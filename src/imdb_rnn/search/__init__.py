"""Search: Optuna storage, samplers, pruners, the search space and the trial loop; reports."""
