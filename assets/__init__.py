"""Dagster assets: thin wrappers, one module per step of the flow."""
