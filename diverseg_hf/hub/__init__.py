"""The only Hub client: push a dataset folder (planned commits, pruning, retries logged one line each, the card
rendered for the repo id, gating) and read a published dataset (its configs' files, the source it was made from)."""
