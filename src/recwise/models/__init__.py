"""The model zoo, one file per model, registered by task and short name (see recwise.registry)."""
