"""A background run over volume nodes (the GUI's asynchronous path).

The input node is written into a job folder with the module's request (:mod:`CTSynthesisCore.jobs`),
the module's worker runs there in a child process (:mod:`CTSynthesisCore.background`), and only after
it succeeded are its result record and all its outputs read and then put into nodes, so a failed or
cancelled run leaves the scene exactly as it was.
"""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import SimpleITK as sitk

from ..background import BackgroundProcess, ProgressUpdate
from ..errors import Cancelled, UserInputError
from ..jobs import INPUT_FILE, JobResult, read_result, write_request
from ..progress import CancelToken, ProgressCallback, no_progress, progress_status
from ..volume_io import write_volume
from .mrml import image_from_volume_node


def check_output_nodes(input_node, *output_nodes, what: str = "input volume") -> None:
    """Refuse a missing input node or an output node that is the input node."""
    if input_node is None:
        raise UserInputError(f"select an {what}")
    for node in output_nodes:
        if node is not None and node.GetID() == input_node.GetID():
            raise UserInputError("an output volume cannot be the input volume; choose 'Create new volume'")


class NodeJob:
    """The worker ``WORKER FOLDER --worker`` in a child process, on a copy of ``input_node`` and a ``kind`` of
    ``request`` in a job folder. Call :meth:`start`, then :meth:`poll` from a timer (or :meth:`wait`) until
    ``running`` is False, then the subclass's ``finish()``, which reads the outputs through :meth:`collect`.
    """

    def __init__(self, input_node, worker: str, packages: tuple[str, ...], kind: str, request: Any) -> None:
        self.kind = kind
        self.scene = input_node.GetScene()
        self.input_name = input_node.GetName()
        self.input_transform_id = input_node.GetTransformNodeID()  # outputs go under the same transform
        self.folder = Path(tempfile.mkdtemp(prefix="ctsynthesis-job-"))
        try:
            write_volume(image_from_volume_node(input_node), self.folder / INPUT_FILE, compress=False)
            write_request(self.folder, kind, request)
            self.process = BackgroundProcess(worker, [str(self.folder)], packages)
        except BaseException:
            self.cleanup()
            raise

    def start(self) -> NodeJob:
        self.process.start()
        return self

    @property
    def running(self) -> bool:
        return self.process.running

    def poll(self) -> ProgressUpdate | None:
        return self.process.poll()

    def cancel(self) -> None:
        """Stop the child process tree and delete the temporary files; nodes are not touched."""
        self.process.cancel()
        self.cleanup()

    def cleanup(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)

    def transform_id(self) -> str | None:
        """The input's parent transform at the start, if it is still in the scene."""
        present = self.input_transform_id and self.scene.GetNodeByID(self.input_transform_id) is not None
        return self.input_transform_id if present else None

    def collect(self) -> tuple[JobResult, dict[str, list[sitk.Image]]]:
        """After the child ended: its result record and every output volume by role, read before any node is
        touched. Raises the child's error (or Cancelled); always cleans up."""
        try:
            self.process.raise_for_outcome()
            result = read_result(self.folder, self.kind)
            images = {role: [sitk.ReadImage(str(self.folder / name)) for name in names]
                      for role, names in result.outputs.items()}
            return result, images
        finally:
            self.cleanup()

    def wait(self, progress: ProgressCallback = no_progress, cancel: CancelToken | None = None) -> None:
        """Block until the child ends (the synchronous path of the console and of tests)."""
        try:
            self.process.wait(progress=progress, cancel=cancel)
        except BaseException:
            self.cleanup()
            raise


def target_node(scene, node, name: str):
    """``node``, or a new scalar volume node called ``name`` (the 'Create new volume' choice, or the chosen node
    was deleted from the scene while the job ran: vtkMRMLScene::RemoveNode detaches it with SetScene(nullptr))."""
    if node is not None and node.GetScene() is scene:
        return node
    return scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", name)


@dataclass
class JobReport:
    """What a panel shows after one poll of a job: progress while it runs, then its outcome or its error."""

    running: bool
    status: str
    progress: ProgressUpdate | None = None
    outcome: object = None
    error: str | None = None
    cancelled: bool = False


def poll_job(job, **finish_arguments) -> JobReport:
    """One timer tick of a panel: the newest progress, or, once the worker ended, ``job.finish()``'s outcome."""
    update = job.poll()
    if job.running:
        status = progress_status(update.done, update.total, update.message, job.process.elapsed_s) if update else ""
        return JobReport(True, status, update)
    try:
        outcome = job.finish(**finish_arguments)
    except Cancelled:
        return JobReport(False, "Cancelled; the scene is unchanged.", update, cancelled=True)
    except UserInputError as error:
        return JobReport(False, f"Failed: {error}", update, error=str(error))
    except Exception as error:  # noqa: BLE001 - an unexpected fault still reaches the user as one line
        cause = f"{type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}"
        return JobReport(False, f"Failed: {cause}", update, error=cause)
    summary = getattr(outcome, "summary", "")
    return JobReport(False, f"Done: {summary}" if summary else "Done.", update, outcome=outcome)
