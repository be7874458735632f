"""The DICOM terminology of the segment a model draws: what it is, where, and how Slicer shows it.

MTSA-Net's GTV is a secondary neoplasm of the brain (ARCHITECTURE.md); the other presets'
tumours are primary neoplasms of the liver and of the breast. The segmentation task of a model
names its entry (``TaskSpec.terminology``) and the segment's name (the task's name).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

Code = tuple[str, str, str]  # (coding scheme, value, meaning)

MORPHOLOGICALLY_ALTERED: Code = ("SCT", "49755003", "Morphologically Altered Structure")

#: The context names Slicer gives its terminology lists (SegmentationCategoryTypeContextName and the
#: anatomic context of its bundled JSON files). "Neoplasm, Primary" and "Neoplasm, Secondary" are
#: listed under Morphologically Altered Structure in the DICOM master list only, so an entry naming
#: another context (e.g. "3D Slicer General Anatomy list") is one Slicer's terminology selector
#: cannot find.
CATEGORY_CONTEXT = "Segmentation category and type - DICOM master list"
ANATOMIC_CONTEXT = "Anatomic codes - DICOM master list"


@dataclass(frozen=True)
class SegmentTerminology:
    name: str
    color: tuple[float, float, float]  # RGB 0-1
    type: Code
    region: Code
    category: Code = MORPHOLOGICALLY_ALTERED

    def entry(self) -> str:
        """The segment's terminology string exactly as Slicer serialises it (``vtkSegment.GetTerminology``,
        the ``TerminologyEntry`` tag in .seg.nrrd): context~category~type~type modifier~anatomic
        context~region~region modifier, each code ``scheme^value^meaning``."""
        code = "^".join
        return (f"{CATEGORY_CONTEXT}~{code(self.category)}~{code(self.type)}~^^"
                f"~{ANATOMIC_CONTEXT}~{code(self.region)}~^^")

    @classmethod
    def from_entry(cls, name: str, color: tuple[float, float, float], entry: str) -> "SegmentTerminology":
        """The inverse of ``entry()``: how a segment read back from a .seg.nrrd is described again."""
        parts = entry.split("~")
        if len(parts) != 7:
            raise ValueError(f"{entry!r}: not a terminology entry (context~category~type~modifier~context~region~modifier)")

        def code(text: str) -> Code:
            scheme, value, meaning = (text.split("^", 2) + ["", ""])[:3]
            return (scheme, value, meaning)

        return cls(name, tuple(float(c) for c in color), code(parts[2]), code(parts[5]), code(parts[1]))

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
