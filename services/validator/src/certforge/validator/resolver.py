"""Name lookups of the validator: the addresses of an http-01 / tls-alpn-01 target and the
TXT records of a dns-01 name, through one configurable resolver.

With `resolver` set, every lookup (addresses included) asks that server, like Pebble's
`-dnsserver`: on one machine a test's own DNS server can then point names at its responders.
Without it, addresses come from the system (`getaddrinfo`, so /etc/hosts counts) and TXT
records from the servers of /etc/resolv.conf.

Each outcome a requester must tell apart has its own wording: the name does not exist
(NXDOMAIN), it exists without such records, or the DNS server failed or did not answer (the
only transient case).
"""

from __future__ import annotations

import asyncio
import socket

import dns.asyncresolver
import dns.exception
import dns.resolver

from certforge.common.acme import ErrorType
from certforge.validator.failures import ValidationFailure
from certforge.validator.targets import IPAddress, parse_ip


def parse_nameserver(value: str) -> tuple[str, int]:
    """`host`, `host:port`, `v6` or `[v6]:port` → (address, port); the host must be an IP
    address (a resolver named by a name would need a resolver)."""
    text = value.strip()
    port = 53
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        if rest:
            if not rest.startswith(":"):
                raise ValueError(f"resolver {value!r}: expected `[address]:port`")
            port = _port(rest[1:], value)
    elif text.count(":") == 1:
        host, _, raw = text.partition(":")
        port = _port(raw, value)
    else:
        host = text
    if parse_ip(host) is None:
        raise ValueError(f"resolver {value!r}: the host must be an IP address")
    return host, port


def _port(raw: str, value: str) -> int:
    if not raw.isdigit() or not 1 <= int(raw) <= 65535:
        raise ValueError(f"resolver {value!r}: the port must be a number from 1 to 65535")
    return int(raw)


class Resolver:
    def __init__(self, nameserver: str, *, timeout: float) -> None:
        self._timeout = timeout
        self._configured = bool(nameserver)
        if nameserver:
            host, port = parse_nameserver(nameserver)
            self._dns = dns.asyncresolver.Resolver(configure=False)
            self._dns.nameservers = [host]
            self._dns.port = port
        else:
            self._dns = dns.asyncresolver.Resolver(configure=True)
        self._dns.lifetime = timeout
        self._dns.timeout = timeout
        self._dns.cache = None  # a retried validation must see the record the requester fixed
        self.described = f"{host}:{port}" if nameserver else "the system resolver"

    async def addresses(self, name: str) -> list[IPAddress]:
        """Every IPv6 then IPv4 address of `name` (IPv6 first, as Boulder tries them)."""
        if not self._configured:
            return await self._system_addresses(name)
        found: list[IPAddress] = []
        missing: list[str] = []
        nxdomain = 0
        results = await asyncio.gather(
            self._query(name, "AAAA"), self._query(name, "A"), return_exceptions=True
        )
        for kind, result in zip(("AAAA", "A"), results, strict=True):
            if isinstance(result, dns.resolver.NXDOMAIN):
                nxdomain += 1
            elif isinstance(result, dns.resolver.NoAnswer):
                missing.append(kind)
            elif isinstance(result, BaseException):
                raise self._failure(name, kind, result)
            else:
                found.extend(address for rdata in result if (address := parse_ip(rdata.address)))
        if nxdomain:
            raise ValidationFailure(
                ErrorType.DNS, f"DNS problem: NXDOMAIN looking up A and AAAA for {name}"
            )
        if not found:
            raise ValidationFailure(
                ErrorType.DNS, f"DNS problem: no A or AAAA record found for {name}"
            )
        return found

    async def txt(self, name: str) -> list[str]:
        """The TXT records of `name`, each record's strings joined (RFC 8555 §8.4 compares a
        whole record)."""
        try:
            answer = await self._query(name, "TXT")
        except dns.resolver.NXDOMAIN:
            raise ValidationFailure(
                ErrorType.DNS, f"DNS problem: NXDOMAIN looking up TXT for {name}"
            ) from None
        except dns.resolver.NoAnswer:
            raise ValidationFailure(
                ErrorType.UNAUTHORIZED, f"No TXT record found at {name}"
            ) from None
        except Exception as exc:
            raise self._failure(name, "TXT", exc) from None
        return [b"".join(rdata.strings).decode("utf-8", errors="replace") for rdata in answer]

    async def _query(self, name: str, kind: str) -> dns.resolver.Answer:
        return await self._dns.resolve(name, kind, search=False)

    def _failure(self, name: str, kind: str, exc: BaseException) -> ValidationFailure:
        if isinstance(exc, dns.exception.Timeout):
            why = f"query timed out after {self._timeout:g} s"
        elif isinstance(exc, dns.resolver.NoNameservers):
            why = "the DNS server failed to answer (SERVFAIL or REFUSED)"
        elif isinstance(exc, (dns.exception.DNSException, OSError)):
            why = type(exc).__name__
        else:
            raise exc
        return ValidationFailure(
            ErrorType.DNS,
            f"DNS problem: looking up {kind} for {name} at {self.described}: {why}",
            transient=True,
        )

    async def _system_addresses(self, name: str) -> list[IPAddress]:
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(self._timeout):
                infos = await loop.getaddrinfo(name, None, type=socket.SOCK_STREAM)
        except TimeoutError:
            raise ValidationFailure(
                ErrorType.DNS,
                f"DNS problem: looking up {name} timed out after {self._timeout:g} s",
                transient=True,
            ) from None
        except socket.gaierror as exc:
            transient = exc.errno in (socket.EAI_AGAIN, socket.EAI_FAIL)
            raise ValidationFailure(
                ErrorType.DNS,
                f"DNS problem: looking up {name}: {exc.strerror}",
                transient=transient,
            ) from None
        found: list[IPAddress] = []
        for info in infos:
            address = parse_ip(str(info[4][0]).split("%", 1)[0])
            if address is not None and address not in found:
                found.append(address)
        found.sort(key=lambda address: address.version, reverse=True)
        return found
