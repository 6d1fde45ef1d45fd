"""Peers' objects through a real local bucket and read grant: verified, loaded safely, or refused."""

from __future__ import annotations

from pathlib import Path

import pytest
import safetensors.torch
import torch

from hydrafed import errors
from hydrafed.hydra import tx
from hydrafed.rounds import ConfirmedAnnouncement
from hydrafed.storage import LocalStore, open_shared, sha256_file
from hydrafed.worker import party
from hydrafed.worker.party import load_peer_update, state_sha256

pytestmark = pytest.mark.integration

KEY = "fed/rounds/1/bob.safetensors"


@pytest.fixture(autouse=True, params=["in-memory", "through-a-file"])
def download_path(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Every test runs both ways a peer's update can arrive: small ones in memory, large via disk."""
    if request.param == "through-a-file":
        monkeypatch.setattr(party, "IN_MEMORY_BYTES", 0)
    return str(request.param)


@pytest.fixture
def reference() -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(3)
    return {"w": torch.randn(4, 3, generator=generator), "b": torch.zeros(3)}


def _publish(root: Path, tmp: Path, tensors: dict[str, torch.Tensor]) -> tuple[LocalStore, str]:
    """Bob uploads tensors to his bucket; returns his store and the sha256 he would announce."""
    owner = LocalStore(root)
    owner.ensure_bucket("bob")
    path = tmp / "bob-upload.safetensors"
    safetensors.torch.save_file(tensors, str(path))
    owner.put("bob", KEY, path)
    return owner, sha256_file(path)


def _entry(digest: str) -> ConfirmedAnnouncement:
    ann = tx.Announcement(
        fed="fed", round=1, party="bob", uri=f"local://bob/{KEY}", sha256=digest, samples=40, spec_hash="ab"
    )
    return ConfirmedAnnouncement(ann, tx_id="11" * 32, snapshot=3)


def test_verified_update_loads_through_the_read_grant(
    tmp_path: Path, reference: dict[str, torch.Tensor]
) -> None:
    # Prepare
    owner, digest = _publish(tmp_path / "buckets", tmp_path, reference)
    reader = open_shared(owner.share("bob", "fed/rounds/"))

    # Execute
    update, download_s, verify_s = load_peer_update(
        reader, _entry(digest), tmp_path / "in" / "bob.st", reference
    )

    # Assert
    assert update.party == "bob" and update.samples == 40
    assert state_sha256(update.tensors) == state_sha256(reference)
    assert download_s >= 0 and verify_s >= 0


def test_tampered_object_is_rejected_before_loading(
    tmp_path: Path, reference: dict[str, torch.Tensor]
) -> None:
    # Prepare: bob announces one hash, then the stored object changes (a bit flip on disk)
    owner, digest = _publish(tmp_path / "buckets", tmp_path, reference)
    stored = tmp_path / "buckets" / "bob" / Path(KEY)
    data = bytearray(stored.read_bytes())
    data[-1] ^= 0x01
    stored.write_bytes(bytes(data))
    reader = open_shared(owner.share("bob", "fed/rounds/"))
    dest = tmp_path / "in" / "bob.st"

    # Execute / Assert
    with pytest.raises(errors.IntegrityError, match="does not match the announced"):
        load_peer_update(reader, _entry(digest), dest, reference)
    assert not dest.exists()
    assert not dest.parent.exists() or list(dest.parent.iterdir()) == []


def test_object_larger_than_the_model_is_refused_unread(
    tmp_path: Path, reference: dict[str, torch.Tensor], download_path: str
) -> None:
    # A peer's object that hashes right but is far larger than the model must not fill memory.
    if download_path == "through-a-file":
        pytest.skip("the size cap applies to in-memory downloads")
    bloated = {**reference, "padding": torch.zeros(1 << 18)}  # 1 MiB more than the model
    owner, digest = _publish(tmp_path / "buckets", tmp_path, bloated)
    reader = open_shared(owner.share("bob", "fed/rounds/"))
    with pytest.raises(errors.IntegrityError, match="larger than the"):
        load_peer_update(reader, _entry(digest), tmp_path / "in.st", reference)


@pytest.mark.parametrize(
    ("tensors", "message"),
    [
        ({"w": torch.zeros(4, 3)}, r"missing \['b'\]"),
        ({"w": torch.zeros(3, 4), "b": torch.zeros(3)}, r"'w' is torch.float32 \(3, 4\)"),
        ({"w": torch.zeros(4, 3, dtype=torch.float64), "b": torch.zeros(3)}, "float64"),
    ],
)
def test_update_that_does_not_fit_the_model_is_refused(
    tmp_path: Path, reference: dict[str, torch.Tensor], tensors: dict[str, torch.Tensor], message: str
) -> None:
    owner, digest = _publish(tmp_path / "buckets", tmp_path, tensors)
    reader = open_shared(owner.share("bob", "fed/rounds/"))
    with pytest.raises(errors.AggregationError, match=message):
        load_peer_update(reader, _entry(digest), tmp_path / "in.st", reference)


def test_pickle_is_never_loaded(tmp_path: Path, reference: dict[str, torch.Tensor]) -> None:
    # A torch.save (pickle) file with a matching hash is still refused: only safetensors is read.
    root = tmp_path / "buckets"
    owner = LocalStore(root)
    owner.ensure_bucket("bob")
    path = tmp_path / "evil.pt"
    torch.save(reference, path)
    owner.put("bob", KEY, path)
    reader = open_shared(owner.share("bob", "fed/rounds/"))
    with pytest.raises(errors.AggregationError, match="not valid safetensors"):
        load_peer_update(reader, _entry(sha256_file(path)), tmp_path / "in.st", reference)


def test_grant_for_another_prefix_cannot_read(tmp_path: Path, reference: dict[str, torch.Tensor]) -> None:
    owner, digest = _publish(tmp_path / "buckets", tmp_path, reference)
    reader = open_shared(owner.share("bob", "other/"))
    with pytest.raises(errors.AccessDeniedError):
        load_peer_update(reader, _entry(digest), tmp_path / "in.st", reference)
