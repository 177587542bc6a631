"""HTTP routes, one module per resource; every router but OCSP's and health's lives under
`API_PREFIX`, set on the router itself so a route's path is its full template (what metrics
and traces label requests with)."""

API_PREFIX = "/api/v1"
