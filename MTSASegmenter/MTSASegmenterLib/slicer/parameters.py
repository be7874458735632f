"""The module's parameter node: what the user chose, saved with the scene and restored with it.

``SegmenterParameters`` is declared the way Slicer's scripted-module template declares its
parameter node; in Slicer, ``parameterNodeWrapper`` turns it into typed properties over the
module's ``vtkMRMLScriptedModuleNode`` (node references for nodes, text parameters for the rest),
so the choices travel in the .mrml file. ``request_from_parameters`` turns them into a prediction
request, refusing what cannot run with one message.
"""

from pathlib import Path

import slicer

from ..config import DEVICES
from ..errors import InputError
from .logic import Request
from .translation import _


class SegmenterParameters:
    """Wrapped by ``slicer.parameterNodeWrapper.parameterNodeWrapper`` in the module file.

    No ``from __future__ import annotations`` here: the wrapper reads these annotations as types.
    """

    inputVolume: slicer.vtkMRMLScalarVolumeNode
    outputSegmentation: slicer.vtkMRMLSegmentationNode  # None: "Create new segmentation"
    useBundledModel: bool = True
    modelPath: str = ""  # a checkpoint file, when useBundledModel is False
    device: str = "auto"
    batchSize: int = 0  # slices per batch; 0: the predictor's default for the device


def request_from_parameters(parameters) -> Request:
    """The prediction the parameters ask for; ``InputError`` with one message when it cannot run."""
    volume = parameters.inputVolume
    if volume is None:
        raise InputError(_("Select the T1-CE input volume."))
    model = None
    if not parameters.useBundledModel:
        if not parameters.modelPath:
            raise InputError(_("Choose a model file, or select the bundled demo model."))
        model = Path(parameters.modelPath)
        if not model.is_file():
            raise InputError(_("{path}: model file not found").format(path=model))
    if parameters.device not in DEVICES:
        raise InputError(_("{device}: unknown device (choose one of {devices})").format(
            device=parameters.device, devices=", ".join(DEVICES)))
    if parameters.batchSize < 0:
        raise InputError(_("{size}: slices per batch must be 0 (automatic) or more").format(size=parameters.batchSize))
    return Request(volume=volume, segmentation=parameters.outputSegmentation, model=model,
                   device=parameters.device, batch_size=parameters.batchSize or None)
