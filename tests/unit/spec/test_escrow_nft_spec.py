"""spec.escrow and spec.nft: off by default, slot bounds that leave time for close and fanout."""

from __future__ import annotations

import pydantic
import pytest

from hydrafed import spec

pytestmark = pytest.mark.unit

# 2 rounds x 100 s timeout + 2 x 60 s contestation = 320 slots at least.
BASE = {
    "training": {"rounds": 2},
    "roundPolicy": {"timeoutSeconds": 100},
    "head": {"contestationPeriodSeconds": 60},
}


def test_off_by_default() -> None:
    fed = spec.FederationSpec()
    assert not fed.escrow.enabled and not fed.nft.enabled


def test_refund_slot_must_leave_time_for_the_rounds_close_and_contestation() -> None:
    ok = spec.FederationSpec.model_validate({**BASE, "escrow": {"enabled": True, "refundSlot": 320}})
    assert ok.escrow.refund_slot == 320 and ok.escrow.threshold == 1
    with pytest.raises(pydantic.ValidationError, match=r"escrow\.refundSlot: 319 is too early.*is 320 slots"):
        spec.FederationSpec.model_validate({**BASE, "escrow": {"enabled": True, "refundSlot": 319}})
    # Disabled, the slot is not checked.
    spec.FederationSpec.model_validate({**BASE, "escrow": {"refundSlot": 0}})


def test_escrow_amount_below_the_deposit() -> None:
    with pytest.raises(
        pydantic.ValidationError, match=r"escrow\.amountLovelace must be below head\.depositLovelace"
    ):
        spec.FederationSpec.model_validate(
            {
                **BASE,
                "head": {"contestationPeriodSeconds": 60, "depositLovelace": 5_000_000},
                "escrow": {"enabled": True, "refundSlot": 10_000, "amountLovelace": 5_000_000},
            }
        )


def test_nft_deadline_is_checked_the_same_way() -> None:
    with pytest.raises(pydantic.ValidationError, match=r"nft\.policyDeadlineSlot: 10 is too early"):
        spec.FederationSpec.model_validate({**BASE, "nft": {"enabled": True, "policyDeadlineSlot": 10}})
    fed = spec.FederationSpec.model_validate(
        {**BASE, "nft": {"enabled": True, "policyDeadlineSlot": 400, "requiredSigners": 2}}
    )
    assert fed.nft.required_signers == 2
