"""``cntrust operator|token|node enroll|node revoke``: node identity from the CLI.

``operator add`` and ``token create`` are local admin commands (they open the
deployment's data dir, like ``tenant add``). ``enroll`` runs on the node: it makes the
node key locally, sends only the CSR, and keeps the key (0600), the SVID chain, the trust
bundle and the node registration token (0600) in ``--dir``. ``revoke`` calls the API.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any

import typer

from scheduler.cli.common import (
    DEFAULT_DATA_DIR,
    DEFAULT_SERVER,
    DataDir,
    JsonOut,
    Server,
    Token,
    api_errors,
    console,
    fail,
    parse_duration,
    print_json,
    with_local,
)

operator_app = typer.Typer(no_args_is_help=True, help="Node operators and their CAs (local admin).")
token_app = typer.Typer(no_args_is_help=True, help="One-time join tokens (local admin).")
app = typer.Typer(no_args_is_help=True, help="Node identity: operators, join tokens, enrollment.")
app.add_typer(operator_app, name="operator")
app.add_typer(token_app, name="token")

NODE_TOKEN_FILE = "node_token"  # noqa: S105 (a file name)
NodeId = Annotated[str, typer.Option("--node-id", help="This node's id (lowercase, digits, .-_).")]


@operator_app.command("add")
def operator_add(name: str, data_dir: DataDir = DEFAULT_DATA_DIR) -> None:
    """Create an operator and its intermediate CA."""

    def op(service: Any) -> None:
        from identity.errors import IdentityError
        from scheduler.identity_layer import install

        try:
            service.write_sync(install(service).add_operator(name, "local-admin"))
        except IdentityError as exc:
            fail(f"{type(exc).__name__}: {exc}", 1)

    with_local(data_dir, op)
    console.print(f"operator [bold]{name}[/] added")


@token_app.command("create")
def token_create(
    operator: Annotated[str, typer.Option("--operator", help="Operator the node joins.")],
    ttl: Annotated[str, typer.Option(help="Lifetime, e.g. 1h (at most 7d).")] = "1h",
    data_dir: DataDir = DEFAULT_DATA_DIR,
) -> None:
    """Print a one-time join token (shown once; only its hash is stored)."""
    lifetime = parse_duration(ttl)
    if lifetime.total_seconds() > 7 * 24 * 3600:
        fail("join tokens live at most 7d")

    def op(service: Any) -> str:
        from identity.errors import IdentityError
        from scheduler.identity_layer import install

        try:
            token, _record, write = install(service).create_join_token(operator, lifetime)
        except IdentityError as exc:
            fail(f"{type(exc).__name__}: {exc}", 1)
        service.write_sync(write)
        return str(token)

    typer.echo(with_local(data_dir, op))


def _write_secret(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
    try:
        os.fchmod(fd, 0o600)
        os.write(fd, text.encode())
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)


CaBundle = Annotated[
    Path | None,
    typer.Option(
        "--ca-bundle",
        help="PEM roots to verify an https:// server (the deployment's tls/ca.pem).",
    ),
]


def enroll(
    token: Annotated[
        str,
        typer.Option("--token", envvar="CNTRUST_JOIN_TOKEN", help="The one-time join token."),
    ],
    directory: Annotated[Path, typer.Option("--dir", help="Node credential directory.")],
    node_id: NodeId,
    server: Server = DEFAULT_SERVER,
    key_algorithm: Annotated[
        str, typer.Option("--key-algorithm", help="ed25519 or ecdsa-p256.")
    ] = "ed25519",
    ca_bundle: CaBundle = None,
    tpm: Annotated[
        bool, typer.Option("--tpm", help="Hardware-rooted: prove EK and AK with the TPM.")
    ] = False,
    tcti: Annotated[
        str, typer.Option("--tcti", help="TPM access for tpm2-tools (with --tpm).")
    ] = "device:/dev/tpmrm0",
    json_out: JsonOut = False,
) -> None:
    """Enroll this node: make its key here, send a CSR, store the SVID and bundle.

    With --tpm the node also sends its EK (certificate, or public key) and a fresh AK, and
    answers the scheduler's MakeCredential challenge with TPM2_ActivateCredential before
    the SVID is issued."""
    if key_algorithm not in ("ed25519", "ecdsa-p256"):
        fail(f"unsupported key algorithm {key_algorithm!r}: use ed25519 or ecdsa-p256")
    from identity.pki import CaStoreError, build_csr, generate_node_key, save_node_key
    from identity.pki import save_node_svid as save_svid
    from scheduler.client import Client

    key = generate_node_key(key_algorithm)  # type: ignore[arg-type]
    csr_pem = build_csr(key, common_name=node_id).decode()
    body = {"join_token": token, "csr_pem": csr_pem, "node_id": node_id}
    verify: str | bool = str(ca_bundle) if ca_bundle is not None else True
    with api_errors(), Client(server, verify=verify) as client:
        if tpm:
            from scheduler.cli.tpm_enroll import enroll_with_tpm

            result = enroll_with_tpm(client, body, tcti, directory)
        else:
            result = client.request("POST", "/v1/enroll", json=body)
    try:  # the key reaches the disk only with the SVID issued for it
        save_node_key(directory, key)
        save_svid(directory, result["svid_chain_pem"].encode(), result["trust_bundle_pem"].encode())
        _write_secret(directory / NODE_TOKEN_FILE, result["node_token"])
    except (CaStoreError, OSError) as exc:
        fail(f"cannot store the credentials in {directory}: {exc}", 1)
    summary = {k: result[k] for k in ("node_id", "operator", "spiffe_id", "not_after")}
    if json_out:
        print_json({**summary, "dir": str(directory)})
    else:
        console.print(f"enrolled [bold]{summary['spiffe_id']}[/]; credentials in {directory}")


def revoke(
    node: str,
    reason: Annotated[str, typer.Option("--reason", help="Why the node is revoked.")],
    server: Server = DEFAULT_SERVER,
    token: Token = "",
    json_out: JsonOut = False,
) -> None:
    """Revoke a node: its certificates and tokens are refused from now on."""
    from scheduler.client import Client

    with api_errors(), Client(server, token) as client:
        result = client.request("POST", f"/v1/nodes/{node}/revoke", json={"reason": reason})
    if json_out:
        print_json(result)
    elif result["already_revoked"]:
        console.print(f"node [bold]{node}[/] was already revoked: {result['reason']}")
    else:
        console.print(f"node [bold]{node}[/] revoked")


@operator_app.command("rotate")
def operator_rotate(
    name: str, server: Server = DEFAULT_SERVER, token: Token = "", json_out: JsonOut = False
) -> None:
    """Give an operator a new CA key; the old CA's SVIDs work until they expire."""
    from scheduler.client import Client

    with api_errors(), Client(server, token) as client:
        result = client.request("POST", f"/v1/operators/{name}/rotate")
    if json_out:
        print_json(result)
    else:
        console.print(
            f"operator [bold]{name}[/] CA rotated (serial {result['new_ca_serial'][:16]}…)"
        )


@operator_app.command("revoke")
def operator_revoke(
    name: str,
    reason: Annotated[str, typer.Option("--reason", help="Why the operator CA is revoked.")],
    server: Server = DEFAULT_SERVER,
    token: Token = "",
    json_out: JsonOut = False,
) -> None:
    """Revoke an operator's CA: every SVID it issued is refused from now on."""
    from scheduler.client import Client

    with api_errors(), Client(server, token) as client:
        result = client.request("POST", f"/v1/operators/{name}/revoke", json={"reason": reason})
    if json_out:
        print_json(result)
    elif result["already_revoked"]:
        console.print(f"operator [bold]{name}[/] was already revoked: {result['reason']}")
    else:
        console.print(f"operator [bold]{name}[/] revoked")


app.command("enroll")(enroll)
app.command("revoke")(revoke)
