"""`certforge`: the command line of Certforge, over its public REST API only (see `api`)."""
