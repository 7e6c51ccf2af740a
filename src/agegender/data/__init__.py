"""Data: readers (files -> records), folds, the decode-once cache and in-memory face sets."""
