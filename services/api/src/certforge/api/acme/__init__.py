"""The ACME protocol (RFC 8555, 8737, 8738, 9773) served by the api.

`routes/acme.py` only wires HTTP to these modules: `jws` (pure JWS checks), `nonces`, `urls`,
`directory` (which enrollment a URL names), `signed` (the checks every POST goes through),
`accounts`, `eab`, `orders`, `authorizations`, `finalize`, `certificates`, `revocation`, `ari`.
Every refusal is an `AcmeProblem` (`errors`), answered as `application/problem+json` by
`responses` through the handler `certforge.api.problems` installs.
"""
