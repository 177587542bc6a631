"""What a check needs, and the targets every check shares: one checked address at a time."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from certforge.common.acme import ErrorType
from certforge.validator.failures import ValidationFailure
from certforge.validator.resolver import Resolver
from certforge.validator.settings import ValidationSettings
from certforge.validator.targets import IPAddress, IPNetwork, parse_ip, refusal


@dataclass(frozen=True)
class Challenge:
    """One challenge to check, as loaded from the database."""

    type: str
    token: str
    identifier_type: str
    """`dns` or `ip`."""
    identifier: str
    """The authorization's identifier: for a wildcard, its base domain."""
    key_authorization: str

    @property
    def identifier_document(self) -> dict[str, str]:
        return {"type": self.identifier_type, "value": self.identifier}


@dataclass
class Network:
    """The validator's view of the outside: the resolver and the address rules."""

    settings: ValidationSettings
    resolver: Resolver
    allowed_networks: Sequence[IPNetwork] = field(default_factory=tuple)

    @classmethod
    def of(cls, settings: ValidationSettings) -> Network:
        return cls(
            settings,
            Resolver(settings.resolver, timeout=settings.connect_timeout_seconds),
            tuple(settings.allowed_networks),
        )

    async def addresses(self, host: str, *, what: str) -> list[IPAddress]:
        """The addresses to connect to for `host` (a name or an address), every one of them
        allowed: one refused address refuses the host, so that a name cannot mix a public
        address (to pass a first look) with an internal one. `what` names the host in the
        detail (`the identifier`, `the redirect target`)."""
        literal = parse_ip(host)
        found = [literal] if literal is not None else await self.resolver.addresses(host)
        for address in found:
            why = refusal(
                address,
                allow_private=self.settings.allow_private_targets,
                allowed_networks=self.allowed_networks,
            )
            if why is not None:
                shown = host if literal is not None else f"{host} resolves to {address}, which"
                raise ValidationFailure(
                    ErrorType.REJECTED_IDENTIFIER,
                    f"{what} {shown} is {why}: the validator does not connect to such addresses",
                )
        return found
