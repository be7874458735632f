"""Configurations that travel inside a checkpoint, so training and prediction never disagree.

Every dataclass here round-trips through plain dicts (``to_dict`` / ``from_dict``) because a
checkpoint is loaded with ``torch.load(weights_only=True)``, which only admits plain data.
"""

from __future__ import annotations

from dataclasses import MISSING, asdict, dataclass, field, fields
from typing import Any

from .errors import CheckpointError
from .io.terminology import TERMINOLOGIES

STAGES = 5  # MTSA-Net's encoder stages: four 2x downsamplings (384 -> 24)
DEVICES = ("auto", "cpu", "cuda", "mps")  # what --device and the panel offer; inference.predictor.select_device picks one


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
    num_classes: int = 2  # classifier outputs: all heads' outputs concatenated (EGFR: wild-type, mutant)
    strip_kernels: tuple[int, ...] = (5, 7, 11)  # MSA strip-convolution branches
    transformer_heads: int = 4
    transformer_layers: int = 1
    dropout: float = 0.1
    segmentation: bool = True  # False: classification-only baseline
    classification: bool = True  # False: segmentation-only baseline
    roi_weighting: bool = False  # weigh the classifier's input by GTV core / rim / surroundings (breast paper)

    def __post_init__(self) -> None:
        if self.input_size < 64 or self.input_size % 16:
            raise ValueError(f"input_size must be a multiple of 16 and at least 64, got {self.input_size}")
        if self.in_channels < 1 or self.base_width < 1:
            raise ValueError("in_channels and base_width must be positive")
        if not (self.segmentation or self.classification):
            raise ValueError("the network needs at least one of segmentation and classification")
        if any(k < 3 or k % 2 == 0 for k in self.strip_kernels):
            raise ValueError(f"strip_kernels must be odd and at least 3, got {self.strip_kernels}")
        if self.classification:
            if self.num_classes < 1:
                raise ValueError(f"num_classes (the heads' outputs together) must be at least 1, got {self.num_classes}")
            if self.transformer_layers < 1 or self.transformer_heads < 1 or self.bottleneck_width % self.transformer_heads:
                raise ValueError(
                    f"need transformer_layers >= 1 and transformer_heads dividing the bottleneck width {self.bottleneck_width}, "
                    f"got {self.transformer_layers} layer(s), {self.transformer_heads} head(s)"
                )
            if not 0.0 <= self.dropout < 1.0:
                raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")
        if self.roi_weighting and not (self.segmentation and self.classification):
            raise ValueError("roi_weighting reads the network's own GTV: it needs both segmentation and classification")

    @property
    def bottleneck_width(self) -> int:
        """Channels at the bottleneck: base_width doubled at each of the four downsamplings."""
        return self.base_width * 2 ** (STAGES - 1)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["strip_kernels"] = list(self.strip_kernels)
        return d

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "NetConfig":
        return _from_dict(cls, data, "network configuration")


NORMALISATIONS = ("tissue_median", "percentile", "ct_window")


@dataclass(frozen=True)
class PreprocessConfig:
    """How a volume becomes the network's axial slices (and how the mask goes back)."""

    spacing_mm: float = 1.0  # in-plane spacing of the model grid
    input_size: int = 384  # model grid is input_size x input_size in-plane
    context_slices: int = 1  # neighbours on each side fed as channels: in_channels = 2*context+1
    min_slice_mm: float = 1.0  # axial slice spacing of the model grid is max(native, this)
    # 0: the model grid keeps a thick scan's slices; else a scan with thicker slices is predicted on slices interpolated
    # to native / ceil(native / this) mm, so a lesion in one or two native slices spans several (model card, "P3c");
    # this limit wins over min_slice_mm (3.5 mm slices under a 3 mm limit: 1.75 mm)
    max_slice_mm: float = 0.0
    clip_max: float = 4.0  # normalised intensities are clipped to [0, clip_max]
    tissue_threshold: float = 0.1  # tissue = voxels above this normalised intensity
    min_tissue_fraction: float = 0.01  # slices with less tissue than this share of pixels are skipped
    flip_average: bool = False  # predict each slice and its left-right mirror image, and average them
    # also predict each slice with its intensities raised to these powers (about the tissue median, 1): that view may
    # grow what the plain one marks, where faint enhancement stands out more (predictor.grown; model card, "gamma view")
    gamma_views: tuple[float, ...] = ()
    normalisation: str = "tissue_median"  # | "percentile" (MR) | "ct_window" (CT in HU); see preprocess.IntensityStats
    percentiles: tuple[float, float] = (1.0, 99.0)  # percentile: tissue percentiles mapped to 0 and 1
    window: tuple[float, float] = (-100.0, 250.0)  # ct_window: HU mapped to 0 and 1 (a liver window)

    def __post_init__(self) -> None:
        if not (self.spacing_mm > 0 and self.min_slice_mm > 0):
            raise ValueError("spacings must be positive")
        if self.max_slice_mm and self.max_slice_mm < self.min_slice_mm:
            raise ValueError(f"max_slice_mm must be 0 (none) or at least min_slice_mm ({self.min_slice_mm}), got {self.max_slice_mm}")
        if self.normalisation not in NORMALISATIONS:
            raise ValueError(f"normalisation must be one of {', '.join(NORMALISATIONS)}, got {self.normalisation!r}")
        if not (0 <= self.percentiles[0] < self.percentiles[1] <= 100 and self.window[0] < self.window[1]):
            raise ValueError("percentiles and window need low < high (percentiles within 0-100)")
        if self.input_size < 64 or self.input_size % 16:
            raise ValueError(f"input_size must be a multiple of 16 and at least 64, got {self.input_size}")
        if self.gamma_views and (self.normalisation != "tissue_median" or min(self.gamma_views) <= 0):
            raise ValueError(f"gamma_views must be positive powers of a tissue_median volume, got {self.gamma_views} "
                             f"with {self.normalisation}")

    @property
    def in_channels(self) -> int:
        return 2 * self.context_slices + 1

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d.update(percentiles=list(self.percentiles), window=list(self.window), gamma_views=list(self.gamma_views))
        return d

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "PreprocessConfig":
        return _from_dict(cls, data, "preprocessing configuration")


TASK_KINDS = ("segmentation", "binary", "multiclass", "regression")
HEAD_KINDS = TASK_KINDS[1:]
AGGREGATIONS = ("top_area_half_mean", "lesion_logistic")  # patient-level rules, postprocess/aggregation.py

# the kinds of task each field applies to; set on another kind, it is refused
FIELD_KINDS: dict[str, tuple[str, ...]] = {
    "classes": ("binary", "multiclass"), "aggregation": HEAD_KINDS, "threshold": ("binary",), "patient_model": ("binary",),
    "column": HEAD_KINDS, "unit": ("regression",), "scale": ("regression",),
    **dict.fromkeys(("min_peak", "min_volume_ml", "component_model", "min_component_probability", "terminology"), ("segmentation",)),
}


def _default(f) -> Any:
    return f.default_factory() if f.default_factory is not MISSING else f.default


@dataclass(frozen=True)
class TaskSpec:
    """One output of the network: the segmentation (GTV) or a patient-level head.

    Heads read their label from the cases.csv column ``column`` (default: the name in lower case).
    Classification heads list their classes, positive class last for a binary head; a regression
    head learns ``value / scale`` (e.g. Ki-67 in percent with scale 100) and reports ``unit``.
    The classifier's outputs are the heads' outputs concatenated in task order.

    One flat record, stored flat in checkpoints; each field belongs to the kinds in FIELD_KINDS,
    and setting it on another kind is refused.
    """

    name: str
    kind: str  # one of TASK_KINDS
    # heads
    classes: tuple[str, ...] = ()  # classification: class names, positive class last for a binary head
    aggregation: str = ""  # patient-level rule, one of AGGREGATIONS ("": the first, the paper's)
    threshold: float = 0.5  # binary: positive if the patient's probability exceeds it
    patient_model: dict[str, Any] = field(default_factory=dict)  # lesion_logistic: LogisticModel.to_dict()
    column: str = ""  # the cases.csv column of the labels ("": the name in lower case)
    unit: str = ""  # regression
    scale: float = 1.0  # regression: the network learns value / scale
    # segmentation
    min_peak: float = 0.0  # drop GTV components whose highest probability stays below this
    min_volume_ml: float = 0.0  # ... or that are smaller than this
    component_model: dict[str, Any] = field(default_factory=dict)  # LogisticModel over COMPONENT_FEATURES
    min_component_probability: float = 0.0  # drop components the component model rates below this
    terminology: str = ""  # key of terminology.TERMINOLOGIES (default: brain metastasis)

    def __post_init__(self) -> None:
        if self.kind not in TASK_KINDS:
            raise ValueError(f"task {self.name!r}: kind must be one of {', '.join(TASK_KINDS)}, got {self.kind!r}")
        misplaced = [f.name for f in fields(self) if f.name in FIELD_KINDS and self.kind not in FIELD_KINDS[f.name]
                     and getattr(self, f.name) != _default(f)]
        if misplaced:
            where = [f"{m} (for {'/'.join(FIELD_KINDS[m])})" for m in misplaced]
            raise ValueError(f"task {self.name!r}: a {self.kind} task has no {', '.join(where)}")
        if self.kind == "segmentation":
            self._check_segmentation()
        else:
            self._check_head()

    def _check_segmentation(self) -> None:
        if self.terminology and self.terminology not in TERMINOLOGIES:
            raise ValueError(f"task {self.name!r}: terminology {self.terminology!r} is not one of {', '.join(TERMINOLOGIES)}")
        if not 0.0 <= self.min_component_probability < 1.0:
            raise ValueError(f"task {self.name!r}: min_component_probability must be in [0, 1), got {self.min_component_probability}")

    def _check_head(self) -> None:
        if self.kind == "binary" and len(self.classes) != 2:
            raise ValueError(f"task {self.name!r}: a binary head needs exactly 2 classes, got {len(self.classes)}")
        if self.kind == "multiclass" and len(self.classes) < 2:
            raise ValueError(f"task {self.name!r}: a multiclass head needs at least 2 classes")
        if self.kind == "regression" and not self.scale > 0:
            raise ValueError(f"task {self.name!r}: scale must be positive")
        if self.aggregation and self.aggregation not in AGGREGATIONS:
            raise ValueError(f"task {self.name!r}: aggregation must be one of {', '.join(AGGREGATIONS)}, got {self.aggregation!r}")
        if (self.aggregation == "lesion_logistic") != bool(self.patient_model):
            raise ValueError(f"task {self.name!r}: a lesion_logistic head needs its patient_model, and only it has one")

    @property
    def is_head(self) -> bool:
        return self.kind != "segmentation"

    @property
    def outputs(self) -> int:
        """Width of this head's slice of the classifier output (0 for the segmentation)."""
        return {"segmentation": 0, "regression": 1}.get(self.kind, len(self.classes))

    @property
    def label_column(self) -> str:
        return self.column or self.name.lower()

    @property
    def key(self) -> str:
        """The head's key in the report (``egfr`` for MTSA-Net's head)."""
        return self.name.lower()

    def encode(self, raw: str) -> float | None:
        """A cases.csv cell as the training target: class index, value / scale, or None if empty."""
        raw = raw.strip()
        if not raw:
            return None
        if self.kind == "regression":
            value = float(raw)  # ValueError names the cell for the caller
            if value != value:
                raise ValueError(f"{raw!r} is not a number")
            return value / self.scale
        if raw not in self.classes:
            raise ValueError(f"{raw!r} is not one of {', '.join(repr(c) for c in self.classes)}")
        return float(self.classes.index(raw))

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["classes"] = list(self.classes)
        return d

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "TaskSpec":
        return _from_dict(cls, data, "task")


def head_tasks(tasks: "list[TaskSpec] | tuple[TaskSpec, ...]") -> list[TaskSpec]:
    return [t for t in tasks if t.is_head]


def head_slices(tasks: "list[TaskSpec] | tuple[TaskSpec, ...]") -> dict[str, slice]:
    """Each head's columns in the classifier output, in task order."""
    out, start = {}, 0
    for t in head_tasks(tasks):
        out[t.name] = slice(start, start + t.outputs)
        start += t.outputs
    return out


def check_compatible(net: NetConfig, preprocess: PreprocessConfig, tasks: "list[TaskSpec] | tuple[TaskSpec, ...]") -> None:
    """The one check that a network, its preprocessing and its task list fit together (saving,
    loading and training all call it); a ValueError names what differs."""
    heads = head_tasks(tasks)
    if heads and not net.classification:
        raise ValueError(f"tasks {', '.join(t.name for t in heads)} need the classifier, which the network does not have")
    outputs = sum(t.outputs for t in heads)
    if net.classification and outputs != net.num_classes:
        raise ValueError(f"the classifier has {net.num_classes} outputs but the heads "
                         f"({', '.join(f'{t.name}: {t.outputs}' for t in heads) or 'none'}) need {outputs}")
    if sum(t.kind == "segmentation" for t in tasks) > 1:
        raise ValueError("the task list holds more than one segmentation task")
    keys = [t.key for t in tasks]
    if len(set(keys)) < len(keys):
        raise ValueError(f"task names must differ (ignoring case), got {', '.join(t.name for t in tasks)}")
    if net.in_channels != preprocess.in_channels:
        raise ValueError(f"network expects {net.in_channels} input channels but preprocessing gives "
                         f"{preprocess.in_channels} (context_slices={preprocess.context_slices})")
    if net.input_size != preprocess.input_size:
        raise ValueError(f"network input size {net.input_size} differs from preprocessing input size {preprocess.input_size}")


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
