"""The DICOM terminology of the segment a model draws: what it is, where, and how Slicer shows it.

MTSA-Net's GTV is a secondary neoplasm of the brain (ARCHITECTURE.md); the other presets'
tumours are primary neoplasms of the liver and of the breast. The segmentation task of a model
names its entry (``TaskSpec.terminology``) and the segment's name (the task's name).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

Code = tuple[str, str, str]  # (coding scheme, value, meaning)

MORPHOLOGICALLY_ALTERED: Code = ("SCT", "49755003", "Morphologically Altered Structure")


@dataclass(frozen=True)
class SegmentTerminology:
    name: str
    color: tuple[float, float, float]  # RGB 0-1
    type: Code
    region: Code
    category: Code = MORPHOLOGICALLY_ALTERED

    def entry(self) -> str:
        """The segment's ``Segmentation_TerminologyEntry`` string as Slicer writes it in .seg.nrrd."""
        code = "^".join
        return (f"Segmentation category and type - 3D Slicer General Anatomy list~{code(self.category)}"
                f"~{code(self.type)}~^^~Anatomic codes - DICOM master list~{code(self.region)}~^^")

    def to_report(self) -> dict[str, str]:
        return {"name": self.name, "type": self.type[2], "region": self.region[2], "terminology": self.entry()}


TERMINOLOGIES: dict[str, SegmentTerminology] = {
    "brain-metastasis": SegmentTerminology("GTV", (0.95, 0.35, 0.2), ("SCT", "14799000", "Neoplasm, Secondary"),
                                           ("SCT", "12738006", "Brain")),
    "liver-tumour": SegmentTerminology("Tumour", (0.85, 0.25, 0.55), ("SCT", "86049000", "Neoplasm, Primary"),
                                       ("SCT", "10200004", "Liver")),
    "breast-tumour": SegmentTerminology("Tumour", (0.2, 0.75, 0.95), ("SCT", "86049000", "Neoplasm, Primary"),
                                        ("SCT", "76752008", "Breast")),
}
DEFAULT = "brain-metastasis"
GTV = TERMINOLOGIES[DEFAULT]  # MTSA-Net's segment, and that of every checkpoint written before the presets


def for_task(task) -> SegmentTerminology:
    """The entry a segmentation ``TaskSpec`` names, under the task's own name (GTV when None)."""
    if task is None:
        return GTV
    return replace(TERMINOLOGIES[task.terminology or DEFAULT], name=task.name)
