"""The publish phase: copy the selected images' original bytes into Parquet/WebDataset shards with a card."""
