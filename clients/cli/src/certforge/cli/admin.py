"""Admin commands: one group per resource of the admin API, each a thin map onto its routes.

Bodies with many nested fields (policies, sync settings, name constraints) come from `--file`
(the JSON the API documents) with `--set key.sub=value` for small changes; the common fields have
their own options. The API validates: a bad field comes back as a 422 naming it (exit 3).
"""

from __future__ import annotations

from collections.abc import Sequence
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer

from certforge.cli.core import JsonOpt, body_from, example, put_if, state
from certforge.cli.output import print_json, show_list, show_object

FileOpt = Annotated[
    Path | None,
    typer.Option("--file", "-f", help="JSON body as the API documents it; `-` reads stdin."),
]
SetOpt = Annotated[
    list[str] | None,
    typer.Option("--set", help="KEY=VALUE (dotted keys nest, JSON values parse); repeatable."),
]


def _out(obj: Any, as_json: bool, columns: Sequence[tuple[str, str]] | None = None) -> None:
    if as_json:
        print_json(obj)
    elif isinstance(obj, list):
        show_list(obj, columns or [("ID", "id")])
    elif isinstance(obj, dict):
        show_object(obj)


def _call(ctx: typer.Context, method: str, path: str, body: Any = None) -> Any:
    with state(ctx).client() as client:
        if method == "GET":
            return client.get(path)
        if method == "POST":
            return client.post(path, body)
        if method == "PUT":
            return client.put(path, body)
        if method == "PATCH":
            return client.patch(path, body)
        return client.delete(path)


def _every(ctx: typer.Context, path: str) -> list[Any]:
    """Every item of a paged list (`{"items", "next_cursor"}`), following the cursors."""
    items: list[Any] = []
    cursor: str | None = None
    with state(ctx).client() as client:
        while True:
            page = client.get(path, {"limit": 500, **({"cursor": cursor} if cursor else {})})
            items += page["items"]
            cursor = page.get("next_cursor")
            if not cursor:
                return items


def _deleted(what: str, as_json: bool) -> None:
    if as_json:
        print_json({"deleted": what})
    else:
        typer.echo(f"deleted {what}")


def _group(name: str, what: str) -> typer.Typer:
    return typer.Typer(name=name, help=what, no_args_is_help=True)


# --- CAs ----------------------------------------------------------------------------------

ca_app = _group("ca", "Certificate authorities: create (root or intermediate), list, show.")
CA_COLUMNS = [("ID", "id"), ("NAME", "name"), ("TYPE", "type"), ("STATUS", "status"),
              ("NOT AFTER", "not_after")]  # fmt: skip


class CaType(StrEnum):
    root = "root"
    intermediate = "intermediate"


@ca_app.command(
    "create",
    epilog=example(
        "certforge ca create --name root --type root --cn 'Example Root CA' --validity 10y"
    ),
)
def ca_create(
    ctx: typer.Context,
    name: Annotated[str | None, typer.Option(help="Unique name.")] = None,
    type_: Annotated[CaType | None, typer.Option("--type", help="root or intermediate.")] = None,
    cn: Annotated[str | None, typer.Option("--cn", help="Subject common name.")] = None,
    org: Annotated[str | None, typer.Option("--org", help="Subject organization.")] = None,
    key_algorithm: Annotated[str | None, typer.Option(help="e.g. EC_P256, RSA_3072.")] = None,
    validity: Annotated[str | None, typer.Option(help="e.g. 10y, 5y.")] = None,
    parent: Annotated[str | None, typer.Option(help="Parent CA id (intermediate).")] = None,
    max_path_length: Annotated[int | None, typer.Option(help="Path length limit.")] = None,
    file: FileOpt = None,
    set_: SetOpt = None,
    json: JsonOpt = False,
) -> None:
    """Create a CA; the issuer generates its key and the answer carries its certificate."""
    body = body_from(file, set_)
    subject = dict(body.get("subject") or {})
    put_if(subject, common_name=cn, organization=org)
    if subject:
        body["subject"] = subject
    put_if(
        body,
        name=name,
        type=type_.value if type_ else None,
        key_algorithm=key_algorithm,
        validity=validity,
        parent_ca_id=parent,
        max_path_length=max_path_length,
    )
    _out(_call(ctx, "POST", "/api/v1/cas", body), json)


@ca_app.command(
    "import",
    epilog=example("certforge ca import --name legacy --cert ca.pem --key ca.key --chain up.pem"),
)
def ca_import(
    ctx: typer.Context,
    name: Annotated[str, typer.Option(help="Unique name.")],
    cert: Annotated[Path, typer.Option(help="The CA certificate (PEM).", exists=True,
                                       dir_okay=False, readable=True)],
    key: Annotated[Path, typer.Option(help="Its private key (PEM); sealed at rest.",
                                      exists=True, dir_okay=False, readable=True)],
    chain: Annotated[Path | None, typer.Option(help="Issuers above it (PEM).", exists=True,
                                               dir_okay=False, readable=True)] = None,
    json: JsonOpt = False,
) -> None:  # fmt: skip
    """Import an existing CA with its key (the key goes only to the issuer, which seals it)."""
    body = put_if(
        {"name": name, "certificate": cert.read_text(), "private_key": key.read_text()},
        chain=chain.read_text() if chain else None,
    )
    _out(_call(ctx, "POST", "/api/v1/cas/import", body), json)


@ca_app.command("list", epilog=example("certforge ca list"))
def ca_list(ctx: typer.Context, json: JsonOpt = False) -> None:
    """Every CA."""
    _out(_every(ctx, "/api/v1/cas"), json, CA_COLUMNS)


@ca_app.command("show", epilog=example("certforge ca show 0b6f…"))
def ca_show(ctx: typer.Context, ca_id: str, json: JsonOpt = False) -> None:
    """One CA (its certificate PEM with --json)."""
    _out(_call(ctx, "GET", f"/api/v1/cas/{ca_id}"), json)


@ca_app.command("disable", epilog=example("certforge ca disable 0b6f…"))
def ca_disable(ctx: typer.Context, ca_id: str, json: JsonOpt = False) -> None:
    """Stop a CA from issuing (it keeps signing CRLs and OCSP)."""
    _out(_call(ctx, "POST", f"/api/v1/cas/{ca_id}/disable"), json)


@ca_app.command("enable", epilog=example("certforge ca enable 0b6f…"))
def ca_enable(ctx: typer.Context, ca_id: str, json: JsonOpt = False) -> None:
    """Let a disabled CA issue again."""
    _out(_call(ctx, "POST", f"/api/v1/cas/{ca_id}/enable"), json)


# --- policies -----------------------------------------------------------------------------

policy_app = _group("policy", "Policies: what may be issued (names, keys, usages, validity).")
POLICY_COLUMNS = [("ID", "id"), ("NAME", "name"), ("MAX VALIDITY", "max_validity")]


@policy_app.command(
    "create", epilog=example("certforge policy create --name web --file web-policy.json")
)
def policy_create(
    ctx: typer.Context,
    name: Annotated[str | None, typer.Option(help="Unique name.")] = None,
    max_validity: Annotated[str | None, typer.Option(help="e.g. 90d.")] = None,
    file: FileOpt = None,
    set_: SetOpt = None,
    json: JsonOpt = False,
) -> None:
    """Create a policy; its rules come from --file (see the API's PolicyCreate)."""
    body = put_if(body_from(file, set_), name=name, max_validity=max_validity)
    _out(_call(ctx, "POST", "/api/v1/policies", body), json)


@policy_app.command("list", epilog=example("certforge policy list"))
def policy_list(ctx: typer.Context, json: JsonOpt = False) -> None:
    """Every policy."""
    _out(_every(ctx, "/api/v1/policies"), json, POLICY_COLUMNS)


@policy_app.command("show", epilog=example("certforge policy show 5a1e…"))
def policy_show(ctx: typer.Context, policy_id: str, json: JsonOpt = False) -> None:
    """One policy."""
    _out(_call(ctx, "GET", f"/api/v1/policies/{policy_id}"), json)


@policy_app.command(
    "update", epilog=example("certforge policy update 5a1e… --set max_validity=60d")
)
def policy_update(
    ctx: typer.Context, policy_id: str, file: FileOpt = None, set_: SetOpt = None,
    json: JsonOpt = False,
) -> None:  # fmt: skip
    """Change a policy (only the fields given)."""
    _out(_call(ctx, "PATCH", f"/api/v1/policies/{policy_id}", body_from(file, set_)), json)


@policy_app.command("delete", epilog=example("certforge policy delete 5a1e…"))
def policy_delete(ctx: typer.Context, policy_id: str, json: JsonOpt = False) -> None:
    """Delete a policy no profile uses."""
    _call(ctx, "DELETE", f"/api/v1/policies/{policy_id}")
    _deleted(f"policy {policy_id}", json)


# --- profiles -----------------------------------------------------------------------------

profile_app = _group("profile", "Profiles: a CA and a policy with issuance defaults.")
PROFILE_COLUMNS = [("ID", "id"), ("SLUG", "slug"), ("CA", "ca_id"), ("POLICY", "policy_id")]


@profile_app.command(
    "create",
    epilog=example(
        "certforge profile create --slug web-server --ca 0b6f… --policy 5a1e… --ttl 30d"
    ),
)
def profile_create(
    ctx: typer.Context,
    slug: Annotated[str | None, typer.Option(help="Unique slug.")] = None,
    ca: Annotated[str | None, typer.Option(help="CA id.")] = None,
    policy: Annotated[str | None, typer.Option(help="Policy id.")] = None,
    ttl: Annotated[str | None, typer.Option(help="Default validity, e.g. 30d.")] = None,
    key_algorithm: Annotated[str | None, typer.Option(help="Default key algorithm.")] = None,
    file: FileOpt = None,
    set_: SetOpt = None,
    json: JsonOpt = False,
) -> None:
    """Create a profile; defaults and extensions beyond these options come from --file."""
    body = put_if(body_from(file, set_), slug=slug, ca_id=ca, policy_id=policy)
    defaults = put_if(dict(body.get("defaults") or {}), ttl=ttl, key_algorithm=key_algorithm)
    if defaults:
        body["defaults"] = defaults
    _out(_call(ctx, "POST", "/api/v1/profiles", body), json)


@profile_app.command("list", epilog=example("certforge profile list"))
def profile_list(ctx: typer.Context, json: JsonOpt = False) -> None:
    """Every profile."""
    _out(_every(ctx, "/api/v1/profiles"), json, PROFILE_COLUMNS)


@profile_app.command("show", epilog=example("certforge profile show web-server"))
def profile_show(ctx: typer.Context, profile: str, json: JsonOpt = False) -> None:
    """One profile, by slug or id."""
    _out(_call(ctx, "GET", f"/api/v1/profiles/{profile}"), json)


@profile_app.command(
    "update", epilog=example("certforge profile update web-server --set defaults.ttl=14d")
)
def profile_update(
    ctx: typer.Context, profile: str, file: FileOpt = None, set_: SetOpt = None,
    json: JsonOpt = False,
) -> None:  # fmt: skip
    """Change a profile (only the fields given)."""
    _out(_call(ctx, "PATCH", f"/api/v1/profiles/{profile}", body_from(file, set_)), json)


@profile_app.command("delete", epilog=example("certforge profile delete web-server"))
def profile_delete(ctx: typer.Context, profile: str, json: JsonOpt = False) -> None:
    """Delete a profile no application uses."""
    _call(ctx, "DELETE", f"/api/v1/profiles/{profile}")
    _deleted(f"profile {profile}", json)


# --- applications -------------------------------------------------------------------------

app_app = _group("app", "Applications (tenants): create, list, show, update, delete.")
APP_COLUMNS = [("ID", "id"), ("SLUG", "slug"), ("NAME", "name")]


@app_app.command("create", epilog=example("certforge app create --slug shop --name Shop"))
def app_create(
    ctx: typer.Context,
    slug: Annotated[str, typer.Option(help="Unique slug, used in URLs.")],
    name: Annotated[str, typer.Option(help="Display name.")],
    description: Annotated[str | None, typer.Option(help="Free text.")] = None,
    json: JsonOpt = False,
) -> None:
    """Create an application."""
    body = put_if({"slug": slug, "name": name}, description=description)
    _out(_call(ctx, "POST", "/api/v1/applications", body), json)


@app_app.command("list", epilog=example("certforge app list"))
def app_list(ctx: typer.Context, json: JsonOpt = False) -> None:
    """The applications the token may see."""
    _out(_every(ctx, "/api/v1/applications"), json, APP_COLUMNS)


@app_app.command("show", epilog=example("certforge app show shop"))
def app_show(ctx: typer.Context, application: str, json: JsonOpt = False) -> None:
    """One application, by slug or id."""
    _out(_call(ctx, "GET", f"/api/v1/applications/{application}"), json)


@app_app.command("update", epilog=example("certforge app update shop --name 'Web shop'"))
def app_update(
    ctx: typer.Context,
    application: str,
    name: Annotated[str | None, typer.Option(help="Display name.")] = None,
    description: Annotated[str | None, typer.Option(help="Free text.")] = None,
    json: JsonOpt = False,
) -> None:
    """Rename or describe an application."""
    body = put_if({}, name=name, description=description)
    _out(_call(ctx, "PATCH", f"/api/v1/applications/{application}", body), json)


@app_app.command("delete", epilog=example("certforge app delete shop"))
def app_delete(ctx: typer.Context, application: str, json: JsonOpt = False) -> None:
    """Delete an application."""
    _call(ctx, "DELETE", f"/api/v1/applications/{application}")
    _deleted(f"application {application}", json)


# --- members ------------------------------------------------------------------------------

member_app = _group("member", "Who may act on an application, with which role.")


class Role(StrEnum):
    application_admin = "application-admin"
    operator = "operator"
    auditor = "auditor"


@member_app.command("list", epilog=example("certforge member list shop"))
def member_list(ctx: typer.Context, application: str, json: JsonOpt = False) -> None:
    """The members of an application."""
    columns = [("IDENTITY", "identity_id"), ("NAME", "name"), ("ROLE", "role")]
    _out(_every(ctx, f"/api/v1/applications/{application}/members"), json, columns)


@member_app.command("set", epilog=example("certforge member set shop 7d2c… --role operator"))
def member_set(
    ctx: typer.Context,
    application: str,
    identity_id: str,
    role: Annotated[Role, typer.Option(help="The identity's role in this application.")],
    json: JsonOpt = False,
) -> None:
    """Add an identity to an application, or change its role."""
    path = f"/api/v1/applications/{application}/members/{identity_id}"
    _out(_call(ctx, "PUT", path, {"role": role.value}), json)


@member_app.command("remove", epilog=example("certforge member remove shop 7d2c…"))
def member_remove(
    ctx: typer.Context, application: str, identity_id: str, json: JsonOpt = False
) -> None:
    """Take an identity out of an application."""
    _call(ctx, "DELETE", f"/api/v1/applications/{application}/members/{identity_id}")
    _deleted(f"member {identity_id} of {application}", json)


# --- enrollment (profiles attached to an application) -------------------------------------

enrollment_app = _group(
    "enrollment", "Attach profiles to an application and turn API enrollment on or off."
)


@enrollment_app.command(
    "attach",
    epilog=example("certforge enrollment attach shop web-server --api --auto-renew"),
)
def enrollment_attach(
    ctx: typer.Context,
    application: str,
    profile: str,
    api: Annotated[
        bool | None, typer.Option("--api/--no-api", help="API enrollment on or off.")
    ] = None,
    auto_renew: Annotated[
        bool | None, typer.Option("--auto-renew/--no-auto-renew", help="Server-side renewal.")
    ] = None,
    renew_before_days: Annotated[int | None, typer.Option(help="Days before expiry.")] = None,
    json: JsonOpt = False,
) -> None:
    """Attach a profile (idempotent); with --api, set API enrollment in the same call."""
    body: dict[str, Any] = {}
    if api is not None:
        body["api"] = put_if(
            {"enabled": api}, auto_renew=auto_renew, renew_before_days=renew_before_days
        )
    path = f"/api/v1/applications/{application}/profiles/{profile}"
    _out(_call(ctx, "PUT", path, body or None), json)


@enrollment_app.command("api", epilog=example("certforge enrollment api shop web-server --off"))
def enrollment_api(
    ctx: typer.Context,
    application: str,
    profile: str,
    enabled: Annotated[bool, typer.Option("--on/--off", help="API enrollment on or off.")],
    auto_renew: Annotated[
        bool | None, typer.Option("--auto-renew/--no-auto-renew", help="Server-side renewal.")
    ] = None,
    renew_before_days: Annotated[int | None, typer.Option(help="Days before expiry.")] = None,
    json: JsonOpt = False,
) -> None:
    """Change API enrollment of an attached profile."""
    body = put_if({"enabled": enabled}, auto_renew=auto_renew, renew_before_days=renew_before_days)
    path = f"/api/v1/applications/{application}/profiles/{profile}/enrollment/api"
    _out(_call(ctx, "PUT", path, body), json)


@enrollment_app.command(
    "acme", epilog=example("certforge enrollment acme shop web-server --on --eab-required")
)
def enrollment_acme(
    ctx: typer.Context,
    application: str,
    profile: str,
    enabled: Annotated[bool, typer.Option("--on/--off", help="ACME enrollment on or off.")],
    eab_required: Annotated[
        bool | None,
        typer.Option("--eab-required/--no-eab-required", help="External account binding."),
    ] = None,
    file: FileOpt = None,
    set_: SetOpt = None,
    json: JsonOpt = False,
) -> None:
    """Change ACME enrollment of an attached profile (challenge types etc. via --set)."""
    body = put_if(body_from(file, set_), enabled=enabled, eab_required=eab_required)
    path = f"/api/v1/applications/{application}/profiles/{profile}/enrollment/acme"
    _out(_call(ctx, "PUT", path, body), json)


@enrollment_app.command("list", epilog=example("certforge enrollment list shop"))
def enrollment_list(ctx: typer.Context, application: str, json: JsonOpt = False) -> None:
    """The profiles attached to an application."""
    columns = [
        ("PROFILE", "profile"),
        ("ID", "profile_id"),
        ("API", "api"),
        ("ACME", "acme_enabled"),
    ]
    _out(_call(ctx, "GET", f"/api/v1/applications/{application}/profiles"), json, columns)


@enrollment_app.command("show", epilog=example("certforge enrollment show shop web-server"))
def enrollment_show(
    ctx: typer.Context, application: str, profile: str, json: JsonOpt = False
) -> None:
    """One attached profile and its enrollment settings."""
    _out(_call(ctx, "GET", f"/api/v1/applications/{application}/profiles/{profile}"), json)


@enrollment_app.command("detach", epilog=example("certforge enrollment detach shop web-server"))
def enrollment_detach(
    ctx: typer.Context, application: str, profile: str, json: JsonOpt = False
) -> None:
    """Detach a profile from an application."""
    _call(ctx, "DELETE", f"/api/v1/applications/{application}/profiles/{profile}")
    _deleted(f"profile {profile} from {application}", json)


# --- syncs --------------------------------------------------------------------------------

sync_app = _group("sync", "Syncs: push an application's certificates to external stores.")
SYNC_COLUMNS = [("ID", "id"), ("NAME", "name"), ("KIND", "kind"), ("ENABLED", "enabled")]


@sync_app.command(
    "create", epilog=example("certforge sync create shop --name vault --kind vault -f vault.json")
)
def sync_create(
    ctx: typer.Context,
    application: str,
    name: Annotated[str | None, typer.Option(help="Unique name in the application.")] = None,
    kind: Annotated[str | None, typer.Option(help="Destination kind, e.g. webhook.")] = None,
    file: FileOpt = None,
    set_: SetOpt = None,
    json: JsonOpt = False,
) -> None:
    """Create a sync; settings and credentials come from --file (credentials are sealed)."""
    body = put_if(body_from(file, set_), name=name, kind=kind)
    _out(_call(ctx, "POST", f"/api/v1/applications/{application}/syncs", body), json)


@sync_app.command("list", epilog=example("certforge sync list shop"))
def sync_list(ctx: typer.Context, application: str, json: JsonOpt = False) -> None:
    """The syncs of an application."""
    _out(_every(ctx, f"/api/v1/applications/{application}/syncs"), json, SYNC_COLUMNS)


@sync_app.command("show", epilog=example("certforge sync show shop 9e3a…"))
def sync_show(ctx: typer.Context, application: str, sync_id: str, json: JsonOpt = False) -> None:
    """One sync and its last status."""
    _out(_call(ctx, "GET", f"/api/v1/applications/{application}/syncs/{sync_id}"), json)


@sync_app.command("update", epilog=example("certforge sync update shop 9e3a… --set enabled=false"))
def sync_update(
    ctx: typer.Context, application: str, sync_id: str, file: FileOpt = None,
    set_: SetOpt = None, json: JsonOpt = False,
) -> None:  # fmt: skip
    """Change a sync (only the fields given)."""
    path = f"/api/v1/applications/{application}/syncs/{sync_id}"
    _out(_call(ctx, "PATCH", path, body_from(file, set_)), json)


@sync_app.command("delete", epilog=example("certforge sync delete shop 9e3a…"))
def sync_delete(ctx: typer.Context, application: str, sync_id: str, json: JsonOpt = False) -> None:
    """Delete a sync."""
    _call(ctx, "DELETE", f"/api/v1/applications/{application}/syncs/{sync_id}")
    _deleted(f"sync {sync_id}", json)


@sync_app.command("run", epilog=example("certforge sync run shop 9e3a…"))
def sync_run(ctx: typer.Context, application: str, sync_id: str, json: JsonOpt = False) -> None:
    """Push every current certificate now."""
    _out(_call(ctx, "POST", f"/api/v1/applications/{application}/syncs/{sync_id}/run"), json)


@sync_app.command("test", epilog=example("certforge sync test shop 9e3a…"))
def sync_test(ctx: typer.Context, application: str, sync_id: str, json: JsonOpt = False) -> None:
    """Check that the destination accepts the sync's credentials."""
    _out(_call(ctx, "POST", f"/api/v1/applications/{application}/syncs/{sync_id}/test"), json)


# --- identities ---------------------------------------------------------------------------

identity_app = _group("identity", "Identities (people and machines) and their tokens.")
IDENTITY_COLUMNS = [("ID", "id"), ("NAME", "name"), ("ADMIN", "product_admin")]


@identity_app.command("create", epilog=example("certforge identity create --name ci-bot --json"))
def identity_create(
    ctx: typer.Context,
    name: Annotated[str, typer.Option(help="Unique name.")],
    product_admin: Annotated[bool, typer.Option(help="Administers the whole product.")] = False,
    json: JsonOpt = False,
) -> None:
    """Create an identity; its token is shown this once."""
    body = {"name": name, "product_admin": product_admin}
    _out(_call(ctx, "POST", "/api/v1/identities", body), json)


@identity_app.command("list", epilog=example("certforge identity list"))
def identity_list(ctx: typer.Context, json: JsonOpt = False) -> None:
    """Every identity."""
    _out(_every(ctx, "/api/v1/identities"), json, IDENTITY_COLUMNS)


@identity_app.command("show", epilog=example("certforge identity show 7d2c…"))
def identity_show(ctx: typer.Context, identity_id: str, json: JsonOpt = False) -> None:
    """One identity, its roles and tokens."""
    _out(_call(ctx, "GET", f"/api/v1/identities/{identity_id}"), json)


@identity_app.command("token", epilog=example("certforge identity token 7d2c… --ttl 90d --json"))
def identity_token(
    ctx: typer.Context,
    identity_id: str,
    ttl: Annotated[
        str | None, typer.Option(help="Lifetime, e.g. 90d (default: no expiry).")
    ] = None,
    json: JsonOpt = False,
) -> None:
    """Issue another token for an identity; it is shown this once."""
    body = put_if({}, ttl=ttl)
    _out(_call(ctx, "POST", f"/api/v1/identities/{identity_id}/tokens", body), json)


@identity_app.command("delete", epilog=example("certforge identity delete 7d2c…"))
def identity_delete(ctx: typer.Context, identity_id: str, json: JsonOpt = False) -> None:
    """Disable an identity and its tokens."""
    _call(ctx, "DELETE", f"/api/v1/identities/{identity_id}")
    _deleted(f"identity {identity_id}", json)
