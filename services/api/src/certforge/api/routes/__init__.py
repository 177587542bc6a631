"""HTTP routes, one module per resource; every router but OCSP's and health's lives under
`API_PREFIX`, set on the router itself so a route's path is its full template (what metrics
and traces label requests with). The prefix and the paths issued certificates point at are a
contract with the issuer, so they live in `certforge.common.contracts.routes`."""

from certforge.common.contracts.routes import API_PREFIX

__all__ = ["API_PREFIX"]
