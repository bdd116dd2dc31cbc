"""MRML node level of MRItoCT: volume nodes in, filled output nodes out, display set up.

Two paths over the same engine: :func:`synthesize_nodes` runs in this process (Slicer's Python
console, tests); :class:`SynthesisJob` hands a :class:`~MRItoCTLib.settings.SynthesisRequest` to the
worker ``MRItoCTLib.jobs`` in a child process (the panel), so the GUI stays responsive, imports no
PyTorch, and Cancel ends the whole process tree.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from CTSynthesisCore.slicer.display import (
    add_volume_sequence,
    set_ct_display,
    set_uncertainty_display,
    show_in_slice_views,
)
from CTSynthesisCore.slicer.mrml import image_from_volume_node, place_under_transform, update_volume_node_from_image
from CTSynthesisCore.slicer.node_job import NodeJob, check_output_nodes, target_node
from CTSynthesisCore.progress import CancelToken, ProgressCallback, no_progress
from CTSynthesisCore.device import DEFAULT_DEVICE

from ..acquisition import HEADER_TAGS, acquisition_warnings
from ..catalog import DEFAULT_MODEL
from ..settings import JOB_KIND, SynthesisRequest, SynthesisSettings

WORKER = "MRItoCTLib.jobs"
WORKER_PACKAGES = ("MRItoCTLib", "CTSynthesisCore")


@dataclass
class SynthesisOutcome:
    """The nodes a synthesis filled or created, and its closing summary."""

    ct_node: object
    uncertainty_node: object
    sequence_node: object | None = None
    summary: str = ""
    warnings: list[str] = field(default_factory=list)
    facts: dict[str, str] = field(default_factory=dict)  # for the panel's results box (MRItoCTLib.jobs.result_facts)


RESEARCH_DESCRIPTION = "Synthetic CT from MRI (MRItoCT) - research use only, not for clinical use"


def output_names(input_name: str) -> tuple[str, str, str]:
    """Names of new nodes: synthetic CT, uncertainty, Monte-Carlo sample sequence (marked as research output)."""
    return (f"{input_name} synthetic CT (research)", f"{input_name} uncertainty (research)",
            f"{input_name} MC samples (research)")


def mark_research_output(*nodes) -> None:
    """Say in each output node's description that it is research output (shown in Slicer's Data module)."""
    for node in nodes:
        if node is not None:
            node.SetDescription(RESEARCH_DESCRIPTION)


def show_synthesis(outcome: SynthesisOutcome, opacity: float = 0.5) -> None:
    """CT window/level on the CT, Inferno overlay with a legend on the uncertainty, both in the slice views."""
    set_ct_display(outcome.ct_node)
    if outcome.uncertainty_node is not None:
        set_uncertainty_display(outcome.uncertainty_node, "Uncertainty")
    show_in_slice_views(outcome.ct_node.GetScene(), outcome.ct_node, outcome.uncertainty_node, opacity)


InstanceValue = Callable[[str, str], str]  # (instance UID, "gggg,eeee") -> the tag's value, "" when absent


def open_dicom_database() -> InstanceValue | None:
    """Slicer's DICOM database lookup when one is open (``slicer.dicomDatabase and slicer.dicomDatabase.isOpen``, as
    Modules/Scripted/DICOM/DICOM.py tests it); None without one (slicer-core, a Slicer without the DICOM module)."""
    import slicer

    database = getattr(slicer, "dicomDatabase", None)
    return database.instanceValue if database is not None and database.isOpen else None


def dicom_header(volume_node, instance_value: InstanceValue | None) -> dict[str, str]:
    """The acquisition tags of a volume that Slicer's DICOM module loaded: the values of its first instance.

    DICOMScalarVolumePlugin.py keeps the loaded files' instance UIDs, space-separated, in the node attribute
    "DICOM.instanceUIDs"; ``instanceValue(uid, "gggg,eeee")`` reads a tag from the database
    (Docs/developer_guide/script_repository/dicom.md). Volumes from other files get an empty header."""
    uids = (volume_node.GetAttribute("DICOM.instanceUIDs") or "").split()
    if not uids or instance_value is None:
        return {}
    values = {tag: instance_value(uids[0], tag.replace("|", ",")) for tag in HEADER_TAGS}
    return {tag: value for tag, value in values.items() if value}


def input_warnings(input_node, instance_value: InstanceValue | None = None) -> list[str]:
    """What the input volume's DICOM header says against using it (see :mod:`MRItoCTLib.acquisition`);
    ``instance_value`` defaults to Slicer's open DICOM database."""
    return acquisition_warnings(dicom_header(input_node, instance_value or open_dicom_database()))


def synthesize_nodes(input_node, ct_node, uncertainty_node, settings: SynthesisSettings, model: str = DEFAULT_MODEL,
                     device: str = DEFAULT_DEVICE, progress: ProgressCallback = no_progress,
                     cancel: CancelToken | None = None):
    """Run synthesis in this process and return the engine's ``SynthesisResult``; output nodes are filled only
    after everything succeeded. With ``settings.keep_samples`` the Monte-Carlo samples also become a sequence node.
    """
    from ..model import load_model
    from ..pipeline import synthesize

    check_output_nodes(input_node, ct_node, uncertainty_node, what="input MRI volume")
    image = image_from_volume_node(input_node)
    result = synthesize(image, load_model(model), settings, device=device, progress=progress, cancel=cancel)
    result.warnings[:0] = input_warnings(input_node)
    update_volume_node_from_image(ct_node, result.ct)
    if uncertainty_node is not None:
        update_volume_node_from_image(uncertainty_node, result.uncertainty)
    place_under_transform(input_node.GetTransformNodeID(), ct_node, uncertainty_node)
    mark_research_output(ct_node, uncertainty_node)
    sequence = None
    if settings.keep_samples:
        sequence, _ = add_volume_sequence(ct_node.GetScene(), result.samples, output_names(input_node.GetName())[2])
    show_synthesis(SynthesisOutcome(ct_node, uncertainty_node, sequence))
    return result


class SynthesisJob(NodeJob):
    """Synthesis in a child process; :meth:`finish` fills (or creates) the output nodes on success."""

    def __init__(self, input_node, ct_node, uncertainty_node, settings: SynthesisSettings,
                 model: str = DEFAULT_MODEL, device: str = DEFAULT_DEVICE) -> None:
        check_output_nodes(input_node, ct_node, uncertainty_node, what="input MRI volume")
        settings = settings.validated()
        self.ct_node, self.uncertainty_node, self.keep_samples = ct_node, uncertainty_node, settings.keep_samples
        self.input_warnings = input_warnings(input_node)
        super().__init__(input_node, WORKER, WORKER_PACKAGES, JOB_KIND, SynthesisRequest(settings, model, device))

    def finish(self, opacity: float = 0.5) -> SynthesisOutcome:
        """Read the results (raising the child's error or Cancelled), then fill nodes and set up display."""
        result, images = self.collect()
        ct_name, uncertainty_name, samples_name = output_names(self.input_name)
        outcome = SynthesisOutcome(target_node(self.scene, self.ct_node, ct_name),
                                   target_node(self.scene, self.uncertainty_node, uncertainty_name),
                                   summary=result.summary, warnings=self.input_warnings + result.warnings,
                                   facts=result.facts)
        update_volume_node_from_image(outcome.ct_node, images["ct"][0])
        update_volume_node_from_image(outcome.uncertainty_node, images["uncertainty"][0])
        place_under_transform(self.transform_id(), outcome.ct_node, outcome.uncertainty_node)
        mark_research_output(outcome.ct_node, outcome.uncertainty_node)
        if self.keep_samples:
            outcome.sequence_node, _ = add_volume_sequence(self.scene, images["samples"], samples_name)
        show_synthesis(outcome, opacity)
        return outcome
