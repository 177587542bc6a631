"""Every message Certforge sends, one pydantic model each, with its subject beside it.

Evolve by adding optional fields; a breaking change is a new `.vN` type. Consumers ignore
unknown fields (`extra="ignore"`), so old consumers keep working when producers add fields.
"""
