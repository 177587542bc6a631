"""Certificate commands: request, list, show, renew, revoke, download.

Every argument that can be checked here is checked before the API is called (SAN syntax, tags,
a writable output directory), so a bad command changes nothing on the server and writes nothing
on disk. Issuance uses `Prefer: wait` with a spinner; if the server answers `202` (still
pending) the request is polled until it is done or `--wait` runs out. Files are written all at
once and atomically (`certforge.cli.files`), the private key with mode 0600.
"""

from __future__ import annotations

import ipaddress
import time
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer

from certforge.cli.api import ApiClient, Problem, Refused, Unreachable
from certforge.cli.core import (
    AppOpt,
    CliFailure,
    JsonOpt,
    bad_argument,
    example,
    key_values,
    put_if,
    state,
)
from certforge.cli.files import check_writable_dir, write_atomically
from certforge.cli.output import console, expires_in, now, print_json, show_list, show_object

cert_app = typer.Typer(
    name="cert", help="Request, list, show, renew, revoke and download certificates.",
    no_args_is_help=True,
)  # fmt: skip

SAN_TYPES = ("dns", "ip", "email", "uri")
POLL_INTERVAL = 1.0


def parse_san(text: str) -> dict[str, str]:
    """`dns:api.example.com` → `{"type": "dns", "value": "api.example.com"}`; the syntax is
    checked here (the policy is the server's), so a typo never reaches the API."""
    kind, sep, value = text.partition(":")
    kind = kind.strip().lower()
    if not sep or kind not in SAN_TYPES or not value.strip():
        raise bad_argument(
            "--san",
            f"{text!r}: expected TYPE:VALUE with TYPE dns, ip, email or uri "
            "(e.g. dns:api.example.com, ip:10.0.0.5)",
        )
    value = value.strip()
    if kind == "ip":
        try:
            ipaddress.ip_address(value)
        except ValueError:
            raise bad_argument("--san", f"{text!r}: {value!r} is not an IP address") from None
    if kind == "email" and "@" not in value:
        raise bad_argument("--san", f"{text!r}: an email needs an @")
    if kind == "uri" and ":" not in value:
        raise bad_argument(
            "--san", f"{text!r}: a URI needs a scheme (e.g. uri:spiffe://example.org/web)"
        )
    return {"type": kind, "value": value}


def _certs(app: str) -> str:
    return f"/api/v1/applications/{app}/certificates"


def _prepare_out_dir(out_dir: Path | None) -> None:
    if out_dir is not None:
        problem = check_writable_dir(out_dir)
        if problem:
            raise CliFailure(problem)


def _await_request(client: ApiClient, app: str, answer: dict[str, Any], wait: int) -> Any:
    """The request once it is issued: `answer` itself, or polled for up to `wait` seconds
    (the server answered `202` because its own wait ran out). Still pending: exit 5 with the
    command that picks it up later; failed or rejected: exit 3 with the issuer's reasons."""
    deadline = time.monotonic() + wait
    while answer.get("status") == "pending":
        if time.monotonic() >= deadline:
            raise Unreachable(
                f"request {answer.get('id')} still pending after {wait}s; "
                f"pick it up later with: certforge cert wait {answer.get('id')} --app {app}"
            )
        time.sleep(POLL_INTERVAL)
        answer = client.get(f"/api/v1/applications/{app}/certificate-requests/{answer['id']}")
    if answer.get("status") != "issued":
        detail = answer.get("error") or f"the request is {answer.get('status')}"
        errors = answer.get("errors") if isinstance(answer.get("errors"), list) else []
        problem = Problem(422, "Issuance refused", str(detail), errors=errors or [], raw=answer)
        raise Refused(f"Issuance refused: {detail}", problem)
    return answer


def _files_for(issued: dict[str, Any], out_dir: Path, name: str) -> list[tuple[Path, bytes, int]]:
    certificate = str(issued.get("certificate") or "")
    chain_value = issued.get("chain") or ""
    chain = "".join(chain_value) if isinstance(chain_value, list) else str(chain_value)
    files = [
        (out_dir / f"{name}.pem", certificate.encode(), 0o644),
        (out_dir / f"{name}-chain.pem", chain.encode(), 0o644),
        (out_dir / f"{name}-fullchain.pem", (certificate.rstrip("\n") + "\n" + chain).encode(),
         0o644),
    ]  # fmt: skip
    if issued.get("private_key"):
        files.append((out_dir / f"{name}.key", str(issued["private_key"]).encode(), 0o600))
    return files


def _finish_issuance(
    answer: dict[str, Any], out_dir: Path | None, name: str | None, as_json: bool
) -> None:
    issued = answer.get("certificate") or {}
    written: list[Path] = []
    if out_dir is not None:
        files = _files_for(issued, out_dir, name or str(answer.get("certificate_id")))
        try:
            write_atomically(files)
        except OSError as exc:
            raise CliFailure(f"cannot write into {out_dir}: {exc.strerror or exc}") from exc
        written = [path for path, _, _ in files]
    if as_json:
        print_json(answer)
        return
    show_object(
        {
            "request": answer.get("id"),
            "certificate": answer.get("certificate_id"),
            "status": answer.get("status"),
            "serial_number": issued.get("serial_number"),
            "not_after": issued.get("not_after"),
            "files": ", ".join(str(p) for p in written) or None,
        }
    )


class KeyChoice(StrEnum):
    new = "new"
    reuse = "reuse"
    csr = "csr"


WaitOpt = Annotated[
    int,
    typer.Option(
        help="Seconds to wait for issuance (Prefer: wait, then polling); 0: do not wait.",
        min=0,
        max=600,
    ),
]
OutDirOpt = Annotated[
    Path | None,
    typer.Option(help="Write NAME.pem, NAME-chain.pem, NAME-fullchain.pem, NAME.key (0600)."),
]
CsrOpt = Annotated[
    Path | None,
    typer.Option(help="PEM CSR file: the key stays with you.", exists=True, dir_okay=False,
                 readable=True),
]  # fmt: skip


@cert_app.command(
    "request",
    epilog=example(
        "certforge cert request --app shop --profile web-server --cn api.example.com "
        "--san dns:api.example.com --san ip:10.0.0.5 --tag team=web --out-dir ./tls"
    ),
)
def request(
    ctx: typer.Context,
    app: AppOpt,
    profile: Annotated[str, typer.Option(help="Profile slug or id.")],
    cn: Annotated[str | None, typer.Option("--cn", help="Common name.")] = None,
    san: Annotated[
        list[str] | None, typer.Option(help="dns:NAME, ip:ADDR, email:ADDR, uri:URI; repeatable.")
    ] = None,
    csr: CsrOpt = None,
    key_algorithm: Annotated[
        str | None, typer.Option(help="EC_P256, EC_P384, RSA_2048, ED25519, …")
    ] = None,
    ttl: Annotated[str | None, typer.Option(help="Validity, e.g. 30d, 12h.")] = None,
    tag: Annotated[list[str] | None, typer.Option(help="KEY=VALUE metadata; repeatable.")] = None,
    out_dir: OutDirOpt = None,
    name: Annotated[
        str | None, typer.Option(help="File name stem in --out-dir (default: the CN, else the id).")
    ] = None,
    wait: WaitOpt = 60,
    json: JsonOpt = False,
) -> None:
    """Request a certificate (a managed key, or your --csr) and wait until it is issued."""
    sans = [parse_san(item) for item in san or []]
    metadata = key_values(tag, "--tag")
    body: dict[str, Any] = put_if(
        {"profile": profile},
        common_name=cn,
        sans=sans or None,
        key_algorithm=key_algorithm,
        ttl=ttl,
        metadata=metadata or None,
    )
    if csr is not None:
        body["method"] = "csr"
        body["csr"] = csr.read_text(encoding="utf-8", errors="replace")
    _prepare_out_dir(out_dir)
    spinner = console(stderr=True).status("waiting for the certificate…")
    with state(ctx).client() as client, spinner:
        path = f"/api/v1/applications/{app}/certificate-requests"
        answer = client.post(path, body, wait=min(wait, 60) or None)
        if wait == 0 and answer.get("status") == "pending":
            _show_pending(answer, app, json)
            return
        answer = _await_request(client, app, answer, wait)
    _finish_issuance(answer, out_dir, name or cn, json)


def _show_pending(answer: dict[str, Any], app: str, as_json: bool) -> None:
    if as_json:
        print_json(answer)
    else:
        typer.echo(
            f"request {answer.get('id')} is pending; "
            f"pick it up with: certforge cert wait {answer.get('id')} --app {app}"
        )


@cert_app.command(
    "wait", epilog=example("certforge cert wait 4f86… --app shop --out-dir ./tls --name api")
)
def wait_(
    ctx: typer.Context,
    request_id: str,
    app: AppOpt,
    out_dir: OutDirOpt = None,
    name: Annotated[
        str | None, typer.Option(help="File name stem in --out-dir (default: the id).")
    ] = None,
    wait: WaitOpt = 60,
    json: JsonOpt = False,
) -> None:
    """Wait for a pending request (from `--wait 0`, or one that timed out) and write its files."""
    _prepare_out_dir(out_dir)
    spinner = console(stderr=True).status("waiting for the certificate…")
    with state(ctx).client() as client, spinner:
        answer = client.get(f"/api/v1/applications/{app}/certificate-requests/{request_id}")
        answer = _await_request(client, app, answer, wait)
    _finish_issuance(answer, out_dir, name, json)


class SortChoice(StrEnum):
    not_after = "not_after"
    not_after_desc = "-not_after"
    created_at = "created_at"
    created_at_desc = "-created_at"


@cert_app.command(
    "list",
    epilog=example("certforge cert list --app shop --status active --expiring-before 2027-01-01"),
)
def list_(
    ctx: typer.Context,
    app: Annotated[
        str | None,
        typer.Option(
            "--app",
            "-a",
            help="One application (default: all you may see).",
            envvar="CERTFORGE_APP",
        ),
    ] = None,
    status: Annotated[
        list[str] | None, typer.Option(help="active, renewed, revoked, expired; repeatable.")
    ] = None,
    profile: Annotated[str | None, typer.Option(help="Profile slug or id.")] = None,
    search: Annotated[str | None, typer.Option("--search", "-q", help="Part of a name.")] = None,
    expiring_before: Annotated[
        str | None, typer.Option(help="Only not_after before this ISO date or time.")
    ] = None,
    key_algorithm: Annotated[str | None, typer.Option(help="e.g. EC_P256.")] = None,
    tag: Annotated[list[str] | None, typer.Option(help="KEY=VALUE or KEY; repeatable.")] = None,
    sort: Annotated[SortChoice, typer.Option(help="Order.")] = SortChoice.not_after,
    limit: Annotated[int, typer.Option(help="At most this many.", min=1, max=500)] = 50,
    json: JsonOpt = False,
) -> None:
    """Certificates with their expiry, soonest first."""
    tags = [f"{k}:{v}" if v else k for k, v in (_tag_filter(t) for t in tag or [])]
    params = {
        "status": status,
        "profile": profile,
        "q": search,
        "expires_before": _as_datetime(expiring_before),
        "key_algorithm": key_algorithm,
        "tag": tags,
        "sort": sort.value,
        "limit": limit,
    }
    with state(ctx).client() as client:
        if app:
            page = client.get(_certs(app), params)
        else:
            page = client.get("/api/v1/certificates", params)
    if json:
        print_json(page)
        return
    moment = now()
    rows = [
        {**item, "expires_in": expires_in(item.get("not_after"), moment)}
        for item in page.get("items", [])
    ]
    show_list(
        rows,
        [("ID", "id"), ("APP", "application"), ("COMMON NAME", "common_name"),
         ("STATUS", "status"), ("PROFILE", "profile"), ("NOT AFTER", "not_after"),
         ("EXPIRES IN", "expires_in")],
    )  # fmt: skip
    if page.get("next_cursor"):
        console(stderr=True).print(f"({len(rows)} of {page.get('total')}; raise --limit)")


def _tag_filter(text: str) -> tuple[str, str]:
    key, _, value = text.partition("=")
    if not key.strip():
        raise bad_argument("--tag", f"{text!r}: expected KEY=VALUE or KEY")
    return key.strip(), value


def _as_datetime(text: str | None) -> str | None:
    """A date alone means its midnight UTC, which the API's date-time filter needs."""
    if text is None:
        return None
    return f"{text}T00:00:00Z" if len(text) == 10 else text


@cert_app.command("show", epilog=example("certforge cert show --app shop 3f9d…"))
def show(ctx: typer.Context, certificate_id: str, app: AppOpt, json: JsonOpt = False) -> None:
    """One certificate: status, names, validity, renewal and revocation (never the key)."""
    with state(ctx).client() as client:
        cert = client.get(f"{_certs(app)}/{certificate_id}")
    if json:
        print_json(cert)
    else:
        show_object({**cert, "expires_in": expires_in(cert.get("not_after"), now())})


@cert_app.command("renew", epilog=example("certforge cert renew --app shop 3f9d… --out-dir ./tls"))
def renew(
    ctx: typer.Context,
    certificate_id: str,
    app: AppOpt,
    key: Annotated[KeyChoice, typer.Option(help="new key, reuse the managed key, or --csr.")] = (
        KeyChoice.new
    ),
    csr: CsrOpt = None,
    out_dir: OutDirOpt = None,
    name: Annotated[str | None, typer.Option(help="File name stem in --out-dir.")] = None,
    wait: WaitOpt = 60,
    json: JsonOpt = False,
) -> None:
    """Renew now: a new certificate of the same lineage (the old one becomes `renewed`)."""
    body: dict[str, Any] = {"key": key.value}
    if csr is not None:
        body = {"key": "csr", "csr": csr.read_text(encoding="utf-8", errors="replace")}
    elif key is KeyChoice.csr:
        raise bad_argument("--key", "csr needs --csr FILE")
    _prepare_out_dir(out_dir)
    spinner = console(stderr=True).status("waiting for the renewed certificate…")
    with state(ctx).client() as client, spinner:
        answer = client.post(
            f"{_certs(app)}/{certificate_id}/renew", body, wait=min(wait, 60) or None
        )
        if wait == 0 and answer.get("status") == "pending":
            _show_pending(answer, app, json)
            return
        answer = _await_request(client, app, answer, wait)
    _finish_issuance(answer, out_dir, name, json)


class Reason(StrEnum):
    unspecified = "unspecified"
    keyCompromise = "keyCompromise"  # noqa: N815 - RFC 5280's names, as the API takes them
    caCompromise = "caCompromise"  # noqa: N815
    affiliationChanged = "affiliationChanged"  # noqa: N815
    superseded = "superseded"
    cessationOfOperation = "cessationOfOperation"  # noqa: N815
    certificateHold = "certificateHold"  # noqa: N815
    privilegeWithdrawn = "privilegeWithdrawn"  # noqa: N815
    aACompromise = "aACompromise"  # noqa: N815


@cert_app.command(
    "revoke", epilog=example("certforge cert revoke --app shop 3f9d… --reason keyCompromise")
)
def revoke(
    ctx: typer.Context,
    certificate_id: str,
    app: AppOpt,
    reason: Annotated[Reason, typer.Option(help="RFC 5280 reason.")] = Reason.unspecified,
    json: JsonOpt = False,
) -> None:
    """Revoke: OCSP answers `revoked` at once, the next CRL lists it, renewals stop."""
    with state(ctx).client() as client:
        cert = client.post(f"{_certs(app)}/{certificate_id}/revoke", {"reason": reason.value})
    if json:
        print_json(cert)
    else:
        reason_text = cert.get("revocation_reason")
        typer.echo(f"revoked {cert.get('id')} ({reason_text}) at {cert.get('revoked_at')}")


class Format(StrEnum):
    pem = "pem"
    chain = "chain"
    bundle = "bundle"
    der = "der"
    p12 = "p12"
    key = "key"


ROUTES = {
    Format.pem: "pem",
    Format.chain: "chain",
    Format.bundle: "bundle",
    Format.der: "der",
    Format.key: "private-key",
}
SECRET_FORMATS = (Format.p12, Format.key)


@cert_app.command(
    "download",
    epilog=example("certforge cert download --app shop 3f9d… --format bundle --out www-full.pem"),
)
def download(
    ctx: typer.Context,
    certificate_id: str,
    app: AppOpt,
    format_: Annotated[
        Format,
        typer.Option("--format", help="pem, chain, bundle (cert + chain), der, p12, key."),
    ] = Format.pem,
    out: Annotated[
        Path | None, typer.Option(help="File to write (default: stdout, text formats only).")
    ] = None,
    password: Annotated[
        str | None,
        typer.Option(help="PKCS#12 password (8+ characters).", envvar="CERTFORGE_P12_PASSWORD"),
    ] = None,
    no_chain: Annotated[bool, typer.Option(help="PKCS#12 without the chain.")] = False,
) -> None:
    """Download a certificate, its chain, a bundle, DER, PKCS#12 or the managed key."""
    binary = format_ in (Format.der, Format.p12)
    if out is None and binary:
        raise bad_argument("--format", f"{format_.value} is binary: add --out FILE")
    if out is not None:
        _prepare_out_dir(out.parent if str(out.parent) else Path())
        if out.is_dir():
            raise CliFailure(f"{out} is a directory; name a file")
    if format_ is Format.p12 and password is None:
        password = typer.prompt("PKCS#12 password", hide_input=True, confirmation_prompt=True)
    with state(ctx).client() as client:
        base = f"{_certs(app)}/{certificate_id}"
        if format_ is Format.p12:
            content = client.post_bytes(
                f"{base}/pkcs12", {"password": password, "include_chain": not no_chain}
            )
        else:
            content = client.get_bytes(f"{base}/{ROUTES[format_]}")
    if out is None:
        typer.echo(content.decode(), nl=False)
        return
    mode = 0o600 if format_ in SECRET_FORMATS else 0o644
    try:
        write_atomically([(out, content, mode)])
    except OSError as exc:
        raise CliFailure(f"cannot write {out}: {exc.strerror or exc}") from exc
    typer.echo(f"wrote {out} ({len(content)} bytes)")
