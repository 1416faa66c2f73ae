"""``atlas ca init|rotate|drop-previous``: the Atlas CA."""

from __future__ import annotations

import argparse
import json
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from atlas.cli.common import (
    DEFAULT_STATE_DIR,
    KUBERNETES,
    Formatter,
    add_kube_args,
    directory_pki,
    kube_pki,
    source_value,
    with_instance,
)
from atlas.config import DEFAULT_HTTP_PORT, LOCAL_STATUS_URL, Settings
from atlas.errors import ConfigError, PKIError
from atlas.pki import CAState, Credential, subject_key_id
from atlas.pki_store import CertificateManager, DirectoryStore

__all__ = ["add_parser"]

DEFAULT_STATUS_URL = LOCAL_STATUS_URL


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    ca = sub.add_parser("ca", help="the Atlas CA", formatter_class=Formatter)
    casub = ca.add_subparsers(dest="ca_command", required=True, metavar="COMMAND")
    for name, text, func in (
        ("init", "create the CA in the state directory (atlas serve also does)", _init),
        ("rotate", "issue a new CA; the old one stays trusted until drop-previous", _rotate),
        (
            "drop-previous",
            "stop trusting earlier CAs, once every downstream Envoy runs values from the new one",
            _drop_previous,
        ),
    ):
        c = casub.add_parser(name, help=text, description=text, formatter_class=Formatter)
        c.add_argument("--state-dir", default=DEFAULT_STATE_DIR, help="PKI state directory")
        c.add_argument(
            "--source",
            default="",
            type=source_value,
            help="'kubernetes' to act on the atlas-ca Secret (default: --state-dir)",
        )
        add_kube_args(c)
        c.set_defaults(func=func)
        if name == "rotate":
            c.add_argument(
                "--force",
                action="store_true",
                help="rotate although the previous CA is still trusted (Envoys installed "
                "before the last rotation are cut off at their next connection)",
            )
        if name == "drop-previous":
            c.add_argument(
                "--status-url",
                action="append",
                default=None,
                metavar="URL",
                help="status endpoint of a running Atlas (repeatable, one per replica): its "
                "connected Envoys' bootstrap credentials are checked too "
                f"(default in directory mode: {DEFAULT_STATUS_URL} when it answers)",
            )
            c.add_argument(
                "--force",
                action="store_true",
                help="drop the previous CA even if Envoys still depend on it",
            )


def _init(args: argparse.Namespace) -> int:
    if args.source == KUBERNETES:
        raise ConfigError("in Kubernetes the Atlas leader creates the CA when it starts")
    store = DirectoryStore(args.state_dir)
    if store.load_ca() is not None:
        print(f"a CA already exists in {store.root}")
        return 0
    state = CertificateManager(store, Settings().pki).ca()
    print(f"created CA in {store.root}, valid until {state.current.not_after:%Y-%m-%d}")
    return 0


def _rotate(args: argparse.Namespace) -> int:
    if args.source == KUBERNETES:
        return _kube_rotate(args)
    try:
        state = directory_pki(args.state_dir, Settings()).rotate_ca(force=args.force)
    except PKIError as err:
        raise ConfigError(f"{err} with --force") from None
    print(
        f"new CA valid until {state.current.not_after:%Y-%m-%d}; "
        f"{len(state.previous)} previous CA(s) still trusted"
    )
    return 0


def _kube_rotate(args: argparse.Namespace) -> int:
    """Ask the leader (through the CA Secret) rather than race it: it rotates and re-issues."""
    from atlas.kube import connect
    from atlas.model import ANN_CA_ROTATE

    kube_pki(args, Settings())  # the CA must exist
    secret = with_instance(args, Settings()).names.ca_secret
    kube = connect(kubeconfig=args.kubeconfig, context=args.kube_context)
    request = "force" if args.force else "requested"
    patch = {"metadata": {"annotations": {ANN_CA_ROTATE: request}}}
    kube.call(
        f"patch Secret {secret}",
        kube.core.patch_namespaced_secret,
        secret,
        args.namespace,
        patch,
    )
    print(f"rotation requested on Secret {args.namespace}/{secret}; the leader rotates")
    return 0


def _drop_previous(args: argparse.Namespace) -> int:
    settings = Settings()
    kube = args.source == KUBERNETES
    pki = kube_pki(args, settings) if kube else directory_pki(args.state_dir, settings)
    state = pki.ca()
    if not state.previous:
        print("no previous CA is trusted; nothing to drop")
        return 0
    if not args.force:
        _refuse_while_in_use(args, state, kube=kube)
    pki.drop_previous_cas()
    print("previous CAs dropped from the trust bundle")
    return 0


def _refuse_while_in_use(args: argparse.Namespace, state: CAState, *, kube: bool) -> None:
    """Dropping the CA that signed a downstream's bootstrap credential cuts that Envoy off
    from ADS: name those clusters and refuse."""
    previous = [Credential(pem, b"").certificate for pem in state.previous]
    previous_ids = {subject_key_id(c) for c in previous}
    blockers: dict[str, str] = {}
    if not kube:
        for cluster in _stored_on_previous(DirectoryStore(args.state_dir), previous):
            blockers[cluster] = "its last values carry a credential from the previous CA"
    urls = args.status_url or ([] if kube else [DEFAULT_STATUS_URL])
    answered = 0
    for url in urls:
        nodes = _status_nodes(url, explicit=bool(args.status_url))
        if nodes is None:
            continue
        answered += 1
        for node in nodes:
            if not node.get("connected") and not node.get("serving"):
                continue  # a removed cluster's Envoy, gone or refused anyway: not cut off
            cert = node.get("client_certificate") or {}
            if cert.get("issuer_key_id") in previous_ids:
                blockers[node["node"]] = "its Envoy connects with a credential from the previous CA"
    if kube and not answered:
        raise ConfigError(
            "cannot tell which downstream Envoys still connect with a bootstrap credential "
            "from the previous CA: pass --status-url for every Atlas replica (for example "
            f"`kubectl -n {args.namespace} port-forward pod/<replica> {DEFAULT_HTTP_PORT}` and "
            f"{DEFAULT_STATUS_URL}), or --force"
        )
    if blockers:
        lines = "\n".join(f"  {name}: {why}" for name, why in sorted(blockers.items()))
        raise ConfigError(
            "refusing to drop the previous CA: these Envoys would be cut off from Atlas:\n"
            f"{lines}\nInstall each one's new values ({_values_command(blockers)}, then "
            "helm upgrade), then run this again; --force drops it anyway"
        )


def _values_command(blockers: dict[str, str]) -> str:
    """The command that prints new values for the blocking nodes: the observability Envoy's
    (node ``atlas``) come from ``atlas observability values``, not ``cluster values``."""
    observability = Settings().observability_node
    commands = []
    if any(node != observability for node in blockers):
        commands.append("`atlas cluster values NAME ...`")
    if observability in blockers:
        commands.append(f"`atlas observability values ...` for {observability}")
    return " and ".join(commands)


def _stored_on_previous(store: DirectoryStore, previous: list[Any]) -> list[str]:
    """Clusters whose stored bootstrap credential (the one in their last values) was signed
    by a previous CA."""
    found = []
    for path in sorted(Path(store.root).glob("bootstrap-*.crt")):
        node = path.name.removeprefix("bootstrap-").removesuffix(".crt")
        credential = store.load(f"bootstrap-{node}")
        if credential is not None and any(credential.issued_by(ca) for ca in previous):
            found.append(node)
    return found


def _status_nodes(url: str, *, explicit: bool) -> list[dict[str, Any]] | None:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            status = json.loads(response.read())
    except (OSError, ValueError, urllib.error.URLError) as err:
        if explicit:
            raise ConfigError(f"--status-url {url}: {err}") from None
        return None
    return list(status.get("nodes", []))
