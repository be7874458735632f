"""Configurations that travel inside a checkpoint, so training and prediction never disagree.

Every dataclass here round-trips through plain dicts (``to_dict`` / ``from_dict``) because a
checkpoint is loaded with ``torch.load(weights_only=True)``, which only admits plain data.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any

from .errors import CheckpointError


def _from_dict(cls, data: dict[str, Any], what: str):
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise CheckpointError(f"{what}: unknown field(s) {', '.join(unknown)} (checkpoint from a newer version?)")
    kwargs = {k: (tuple(v) if isinstance(v, list) else v) for k, v in data.items()}
    return cls(**kwargs)


@dataclass(frozen=True)
class NetConfig:
    """MTSA-Net shape. The paper's network: in_channels=1, input_size=384, base_width=32."""

    in_channels: int = 3  # 2.5D: the slice and its neighbours (see PreprocessConfig.context_slices)
    base_width: int = 32  # channels of the first MSA block; doubled at each of the 4 downsamplings
    input_size: int = 384  # any multiple of 16 from 64
    num_classes: int = 2  # EGFR head: index 0 wild-type, 1 mutant
    strip_kernels: tuple[int, ...] = (5, 7, 11)  # MSA strip-convolution branches
    transformer_heads: int = 4
    transformer_layers: int = 1
    dropout: float = 0.1
    segmentation: bool = True  # False: classification-only baseline
    classification: bool = True  # False: segmentation-only baseline

    def __post_init__(self) -> None:
        if self.input_size < 64 or self.input_size % 16:
            raise ValueError(f"input_size must be a multiple of 16 and at least 64, got {self.input_size}")
        if self.in_channels < 1 or self.base_width < 1:
            raise ValueError("in_channels and base_width must be positive")
        if not (self.segmentation or self.classification):
            raise ValueError("the network needs at least one of segmentation and classification")

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["strip_kernels"] = list(self.strip_kernels)
        return d

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "NetConfig":
        return _from_dict(cls, data, "network configuration")


@dataclass(frozen=True)
class PreprocessConfig:
    """How a volume becomes the network's axial slices (and how the mask goes back)."""

    spacing_mm: float = 1.0  # in-plane spacing of the model grid
    input_size: int = 384  # model grid is input_size x input_size in-plane
    context_slices: int = 1  # neighbours on each side fed as channels: in_channels = 2*context+1
    min_slice_mm: float = 1.0  # axial slice spacing of the model grid is max(native, this)
    clip_max: float = 4.0  # intensities / tissue median, clipped to [0, clip_max]
    tissue_threshold: float = 0.1  # tissue = voxels above this fraction of the tissue median
    min_tissue_fraction: float = 0.01  # slices with less tissue than this share of pixels are skipped

    def __post_init__(self) -> None:
        if not (self.spacing_mm > 0 and self.min_slice_mm > 0):
            raise ValueError("spacings must be positive")
        if self.input_size < 64 or self.input_size % 16:
            raise ValueError(f"input_size must be a multiple of 16 and at least 64, got {self.input_size}")

    @property
    def in_channels(self) -> int:
        return 2 * self.context_slices + 1

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "PreprocessConfig":
        return _from_dict(cls, data, "preprocessing configuration")


@dataclass(frozen=True)
class TaskSpec:
    """One output of the network. MTSA-Net has a segmentation task (GTV) and one binary head (EGFR)."""

    name: str
    kind: str  # "segmentation" | "binary"
    classes: tuple[str, ...] = ()  # for classification heads: class names, positive class last
    aggregation: str = ""  # patient-level rule: "top_area_half_mean" (the paper's) or "lesion_logistic"
    threshold: float = 0.5
    patient_model: dict[str, Any] = field(default_factory=dict)  # lesion_logistic: LogisticModel.to_dict()

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["classes"] = list(self.classes)
        return d

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "TaskSpec":
        return _from_dict(cls, data, "task")


DEFAULT_TASKS: tuple[TaskSpec, ...] = (
    TaskSpec(name="GTV", kind="segmentation"),
    TaskSpec(
        name="EGFR",
        kind="binary",
        classes=("wild-type", "mutant"),
        aggregation="top_area_half_mean",
        threshold=0.5,
    ),
)


@dataclass
class ModelInfo:
    """Provenance kept beside the weights."""

    name: str = "MTSA-Net"
    version: str = "0.0.0"
    synthetic_only: bool = True  # trained only on the synthetic phantom: not for clinical use
    training: dict[str, Any] = field(default_factory=dict)  # data summary, command, seed
    metrics: dict[str, Any] = field(default_factory=dict)
    code_version: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "ModelInfo":
        return _from_dict(cls, data, "model information")
