"""Training a base model or a subnet, evaluation, and the run-folder conventions shared with search."""
