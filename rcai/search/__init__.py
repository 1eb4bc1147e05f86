"""Hardware-aware search: the report's bilevel DARTS search with the target's cost in the loss."""
