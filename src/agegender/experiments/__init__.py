"""Experiments built on training: k-fold cross-validation, the Table 3 ablation, the Table 2 speed benchmark."""
