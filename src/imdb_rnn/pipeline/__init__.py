"""The logic of the training stages (train, evaluate, seeds, tune) and the layout of reports/."""
