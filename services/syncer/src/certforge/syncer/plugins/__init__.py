"""Destination plugins: one module per kind of external store, all behind `base.Destination`."""
