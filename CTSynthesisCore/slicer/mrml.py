"""MRML scalar volume node <-> SimpleITK image, with the LPS/RAS flip handled here only.

Imports ``slicer`` and ``vtk`` (Slicer's Python or the PyPI package ``slicer-core``),
so the engines never do.
"""

from __future__ import annotations

import numpy as np
import SimpleITK as sitk

from ..nifti_check import check_volume_node_file

LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0])


def ijk_to_ras_from_image(image: sitk.Image) -> np.ndarray:
    """The 4x4 IJK-to-RAS matrix of a SimpleITK image (which lives in LPS)."""
    direction = np.array(image.GetDirection()).reshape(3, 3)
    matrix = np.eye(4)
    matrix[:3, :3] = LPS_TO_RAS @ direction @ np.diag(image.GetSpacing())
    matrix[:3, 3] = LPS_TO_RAS @ np.array(image.GetOrigin())
    return matrix


def geometry_from_ijk_to_ras(matrix: np.ndarray) -> tuple[tuple, tuple, tuple]:
    """Spacing, LPS origin and LPS direction (row-major) from an IJK-to-RAS matrix."""
    linear = LPS_TO_RAS @ np.asarray(matrix, dtype=float)[:3, :3]
    spacing = np.linalg.norm(linear, axis=0)
    direction = linear / spacing
    origin = LPS_TO_RAS @ np.asarray(matrix, dtype=float)[:3, 3]
    return tuple(spacing), tuple(origin), tuple(direction.flatten())


def _vtk_matrix_to_numpy(vtk_matrix) -> np.ndarray:
    return np.array([[vtk_matrix.GetElement(r, c) for c in range(4)] for r in range(4)])


def volume_node_geometry(node) -> tuple[tuple[int, ...], tuple, tuple]:
    """Size (i, j, k), spacing and LPS direction (row-major) of a volume node, without copying its voxels."""
    import vtk

    matrix = vtk.vtkMatrix4x4()
    node.GetIJKToRASMatrix(matrix)
    spacing, _, direction = geometry_from_ijk_to_ras(_vtk_matrix_to_numpy(matrix))
    return tuple(node.GetImageData().GetDimensions()), spacing, direction


def image_from_volume_node(node) -> sitk.Image:
    """A SimpleITK image (a copy) with the voxels and geometry of a scalar volume node."""
    import slicer
    import vtk

    from ..errors import UserInputError

    if node is None or node.GetImageData() is None:
        raise UserInputError(f"the volume '{node.GetName() if node else ''}' is empty (it holds no image data)")
    if node.GetImageData().GetNumberOfScalarComponents() != 1:
        raise UserInputError(f"the volume '{node.GetName()}' is not a scalar volume "
                             f"({node.GetImageData().GetNumberOfScalarComponents()} components per voxel)")
    if 0 in node.GetImageData().GetDimensions():
        raise UserInputError(f"the volume '{node.GetName()}' is empty")
    check_volume_node_file(node)  # NaN/Inf in a NIfTI file: Slicer's reader made them 0, the voxels cannot show it
    array = slicer.util.arrayFromVolume(node).copy()
    image = sitk.GetImageFromArray(array)
    matrix = vtk.vtkMatrix4x4()
    node.GetIJKToRASMatrix(matrix)
    spacing, origin, direction = geometry_from_ijk_to_ras(_vtk_matrix_to_numpy(matrix))
    image.SetSpacing(spacing)
    image.SetOrigin(origin)
    image.SetDirection(direction)
    return image


def update_volume_node_from_image(node, image: sitk.Image) -> None:
    """Fill a scalar volume node with the voxels and geometry of a SimpleITK image."""
    import slicer
    import vtk

    array = sitk.GetArrayFromImage(image)
    slicer.util.updateVolumeFromArray(node, array)
    matrix = vtk.vtkMatrix4x4()
    for row, values in enumerate(ijk_to_ras_from_image(image)):
        for column, value in enumerate(values):
            matrix.SetElement(row, column, float(value))
    node.SetIJKToRASMatrix(matrix)
    node.Modified()


def place_under_transform(transform_node_id: str | None, *nodes) -> None:
    """Put output nodes under the input's parent transform (``None``: none), so that outputs computed in the
    input's local voxel frame (``GetIJKToRASMatrix`` ignores parent transforms) stay aligned with it."""
    for node in nodes:
        if node is not None:
            node.SetAndObserveTransformNodeID(transform_node_id)
