"""The only Hub client: push a dataset folder (planned commits, pruning, retries logged one line each)."""
