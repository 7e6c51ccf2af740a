"""Reports from finished run folders: tables, per-group breakdowns, figures."""
