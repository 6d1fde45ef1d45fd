"""examples/three-organisations: each organisation's manifests are valid and agree with the others'."""

from __future__ import annotations

from pathlib import Path

import pytest

from hydrafed import spec
from tests.conftest import REPO_ROOT
from tests.fixtures.cluster import Cluster
from tests.fixtures.kube import Obj, load_yaml_documents

ROOT = REPO_ROOT / "examples" / "three-organisations"
ORGS = ("alice", "bob", "carol")


def _docs(org: str) -> list[Obj]:
    return [d for path in sorted((ROOT / org).glob("*.yaml")) for d in load_yaml_documents(path)]


def _parties(org: str) -> dict[str, spec.PartySpec]:
    return {
        d["metadata"]["name"]: spec.PartySpec.model_validate(d["spec"])
        for d in _docs(org)
        if d["kind"] == "Party"
    }


@pytest.mark.unit
def test_each_organisation_has_one_local_party_and_the_peers_it_was_sent() -> None:
    feds = {org: [d for d in _docs(org) if d["kind"] == "Federation"] for org in ORGS}
    for org in ORGS:
        # Assert: the same Federation everywhere, one local party (its own), every peer remote
        assert feds[org] == feds["alice"] and len(feds[org]) == 1
        spec.FederationSpec.model_validate(feds[org][0]["spec"])
        parties = _parties(org)
        assert sorted(parties) == sorted(ORGS)
        assert [name for name, p in parties.items() if p.local] == [org]
        secrets = {d["metadata"]["name"] for d in _docs(org) if d["kind"] == "Secret"}
        assert parties[org].storage_secret_ref is not None
        assert parties[org].storage_secret_ref.name in secrets
        for peer in set(ORGS) - {org}:
            # what org holds about peer is what peer's own Party says (bucket, address)
            own = _parties(peer)[peer]
            assert (parties[peer].bucket, parties[peer].peer_address) == (own.bucket, own.peer_address)
            assert parties[peer].read_grant_secret_ref is not None
            assert parties[peer].read_grant_secret_ref.name in secrets


@pytest.mark.integration
@pytest.mark.parametrize("org", ORGS)
def test_an_organisation_directory_applies_on_the_api_server(
    k8s_cluster: Cluster, namespace: str, org: str
) -> None:
    # Prepare: the CRDs as committed
    for crd in sorted((REPO_ROOT / "crds").glob("*.yaml")):
        k8s_cluster.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(crd))
    k8s_cluster.kubectl(
        "wait", "--for=condition=Established", "crd/federations.hydrafed.io", "crd/parties.hydrafed.io"
    )

    # Execute
    applied = k8s_cluster.kubectl(
        "apply",
        "--server-side",
        "--dry-run=server",
        "-n",
        namespace,
        "-f",
        str(Path(ROOT / org)),
        check=False,
    )

    # Assert
    assert applied.returncode == 0, applied.stderr
    assert applied.stdout.count("party.hydrafed.io/") == 3
    assert "federation.hydrafed.io/digits serverside-applied (server dry run)" in applied.stdout
