"""Alert channels: the only code that calls out (HTTP, SMTP). Their schemas are in
`certforge.common.alerts`, which the api validates with."""
