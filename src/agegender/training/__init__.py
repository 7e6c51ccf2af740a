"""Training (needs torch): the epoch loop, losses, augmentation, checkpoints."""
