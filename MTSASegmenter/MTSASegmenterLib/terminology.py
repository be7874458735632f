"""The DICOM terminology of the GTV segment: a secondary neoplasm of the brain (ARCHITECTURE.md)."""

SEGMENT_NAME = "GTV"
SEGMENT_COLOR = (0.95, 0.35, 0.2)  # RGB 0-1: warm orange, readable over grey MR

CATEGORY = ("SCT", "49755003", "Morphologically Altered Structure")
TYPE = ("SCT", "14799000", "Neoplasm, Secondary")
REGION = ("SCT", "12738006", "Brain")


def _code(triple: tuple[str, str, str]) -> str:
    return "^".join(triple)


def slicer_terminology_entry() -> str:
    """The segment's ``Segmentation_TerminologyEntry`` string as Slicer writes it in .seg.nrrd."""
    return (
        f"Segmentation category and type - 3D Slicer General Anatomy list~{_code(CATEGORY)}"
        f"~{_code(TYPE)}~^^~Anatomic codes - DICOM master list~{_code(REGION)}~^^"
    )
