"""Digital male pelvis phantom with random anatomy per case (paired T2 MRI and CT).

Geometry is built in millimetres on an LPS grid (x to the patient's left, y to
posterior, slices from inferior to superior) from ellipses and circles whose sizes
and positions are drawn per case; ``u`` runs from the top slice (0, bladder dome,
acetabular roof) to the bottom slice (1, prostate apex, femoral shafts).
"""

from __future__ import annotations

import numpy as np
import SimpleITK as sitk

from .tissue import TISSUE_INDEX, render_labels


def _ellipse(x: np.ndarray, y: np.ndarray, cx: float, cy: float, rx: float, ry: float) -> np.ndarray:
    return ((x - cx) / max(rx, 1e-3)) ** 2 + ((y - cy) / max(ry, 1e-3)) ** 2 <= 1.0


def _cap(u: float, top: float, bottom: float) -> float:
    """Half-sphere-like profile: 1 in the middle of [top, bottom], 0 outside."""
    if not top <= u <= bottom:
        return 0.0
    centre, half = (top + bottom) / 2, (bottom - top) / 2
    return float(np.sqrt(max(0.0, 1.0 - ((u - centre) / half) ** 2)))


def _bone(labels: np.ndarray, inside: np.ndarray, core: np.ndarray) -> None:
    labels[inside] = TISSUE_INDEX["cortical_bone"]
    labels[core] = TISSUE_INDEX["marrow"]


def phantom_labels(rng: np.random.Generator, size_xy: tuple[int, int], pixel_mm: float, slices: int) -> np.ndarray:
    """(z, y, x) tissue labels of one random pelvis, slice 0 inferior."""
    nx, ny = size_xy
    x = (np.arange(nx) - nx / 2 + 0.5) * pixel_mm
    y = (np.arange(ny) - ny / 2 + 0.5) * pixel_mm
    xx, yy = np.meshgrid(x, y)
    a, b = rng.uniform(150, 190), rng.uniform(105, 135)  # body semi-axes (LR, AP)
    fat = rng.uniform(12, 35)
    shift_y = rng.uniform(-8, 8)
    bladder_r, bladder_ap = rng.uniform(25, 48), rng.uniform(0.7, 1.0)
    prostate_r = rng.uniform(16, 24)
    rectum_r, rectal_gas = rng.uniform(11, 17), rng.random() < 0.6
    head_r, head_x = rng.uniform(21, 26), rng.uniform(0.50, 0.58) * a
    pelvis_fat, obturator = (rng.uniform(0.28, 0.4), rng.uniform(0.4, 0.55)), rng.uniform(0.04, 0.08)
    streaks = [(rng.uniform(-0.8, 0.8) * a, rng.uniform(-0.6, 0.8) * b, rng.uniform(15, 50), rng.uniform(1.5, 4),
                rng.uniform(0, np.pi)) for _ in range(int(rng.integers(6, 14)))]
    labels = np.zeros((slices, ny, nx), np.uint8)
    for k in range(slices):
        u = 1.0 - k / max(slices - 1, 1)
        lab = np.full((ny, nx), TISSUE_INDEX["air"], np.uint8)
        body_a = a * (1.0 - 0.08 * u)
        body = _ellipse(xx, yy, 0, shift_y, body_a, b)
        lab[body] = TISSUE_INDEX["skin"]
        lab[_ellipse(xx, yy, 0, shift_y, body_a - 2, b - 2)] = TISSUE_INDEX["fat"]
        muscle = _ellipse(xx, yy, 0, shift_y, body_a - fat, b - fat * 0.8)
        lab[muscle] = TISSUE_INDEX["muscle"]
        for sx, sy, length, width, angle in streaks:  # intermuscular fat planes
            dx, dy = xx - sx, yy - sy - shift_y
            along, across = dx * np.cos(angle) + dy * np.sin(angle), -dx * np.sin(angle) + dy * np.cos(angle)
            lab[muscle & ((along / length) ** 2 + (across / width) ** 2 <= 1)] = TISSUE_INDEX["fat"]
        pelvic_fat = _ellipse(xx, yy, 0, shift_y - 0.05 * b, pelvis_fat[0] * a, pelvis_fat[1] * b)
        lab[pelvic_fat & muscle] = TISSUE_INDEX["fat"]
        if u > 0.4:  # ischiorectal fossae
            for side in (-1, 1):
                lab[_ellipse(xx, yy, side * 0.24 * a, shift_y + 0.3 * b, 0.12 * a, 0.25 * b) & muscle] = TISSUE_INDEX["fat"]
        for side in (-1, 1):  # obturator internus along the pelvic side walls
            lab[_ellipse(xx, yy, side * 0.3 * a, shift_y, obturator * a, 0.3 * b) & muscle] = TISSUE_INDEX["muscle"]
        # bones: femoral heads and necks, acetabulum, pubis, ischium, sacrum
        for side in (-1, 1):
            head = head_r * _cap(u, 0.08, 0.62)
            cx, cy = side * head_x, shift_y + 0.02 * b
            if head > 3:
                socket = _ellipse(xx, yy, cx - side * 4, cy, head + 10, head + 8) & ~_ellipse(xx, yy, cx, cy, head + 1.5, head + 1.5)
                medial = (xx - cx) * side < 4
                _bone(lab, socket & medial, socket & medial & _ellipse(xx, yy, cx - side * 9, cy, head + 4, head + 3))
                _bone(lab, _ellipse(xx, yy, cx, cy, head, head), _ellipse(xx, yy, cx, cy, head - 2.5, head - 2.5))
            if u > 0.5:
                neck_x = cx + side * (u - 0.5) * 60
                _bone(lab, _ellipse(xx, yy, neck_x, cy, 15, 14), _ellipse(xx, yy, neck_x, cy, 11, 10))
            if 0.45 < u < 0.9:
                _bone(lab, _ellipse(xx, yy, side * 0.33 * a, shift_y + 0.32 * b, 14, 11),
                      _ellipse(xx, yy, side * 0.33 * a, shift_y + 0.32 * b, 10, 7))
            if 0.35 < u < 0.7:
                _bone(lab, _ellipse(xx, yy, side * 12, shift_y - 0.62 * b, 11, 9),
                      _ellipse(xx, yy, side * 12, shift_y - 0.62 * b, 7, 6))
        if u < 0.35:
            _bone(lab, _ellipse(xx, yy, 0, shift_y + 0.72 * b, 28 * (1 - u), 14), _ellipse(xx, yy, 0, shift_y + 0.72 * b, 23 * (1 - u), 9))
        # organs: bladder, prostate, rectum
        bladder = bladder_r * _cap(u, -0.3, 0.55)
        if bladder > 3:
            centre = shift_y - 0.25 * b
            lab[_ellipse(xx, yy, 0, centre, bladder + 3, bladder * bladder_ap + 3)] = TISSUE_INDEX["muscle"]
            lab[_ellipse(xx, yy, 0, centre, bladder, bladder * bladder_ap)] = TISSUE_INDEX["urine"]
        prostate = prostate_r * _cap(u, 0.42, 1.05)
        rectum_y = shift_y + 0.3 * b
        if u > 0.3:  # levator ani slung around the rectum
            lab[_ellipse(xx, yy, 0, rectum_y, rectum_r + 9, rectum_r + 7) & muscle] = TISSUE_INDEX["muscle"]
        if prostate > 3:
            prostate_y = shift_y - 0.05 * b
            gland = _ellipse(xx, yy, 0, prostate_y, prostate, prostate * 0.8)
            central = _ellipse(xx, yy, 0, prostate_y - 0.3 * prostate, 0.75 * prostate, 0.55 * prostate)
            lab[gland] = TISSUE_INDEX["peripheral_zone"]
            lab[gland & central] = TISSUE_INDEX["prostate"]
        lab[_ellipse(xx, yy, 0, rectum_y, rectum_r + 3, rectum_r + 3)] = TISSUE_INDEX["rectal_wall"]
        lumen = _ellipse(xx, yy, 0, rectum_y, rectum_r, rectum_r)
        if rectal_gas:
            lab[lumen & (yy < rectum_y + rectum_r * 0.3)] = TISSUE_INDEX["gas"]
        else:
            lab[lumen] = TISSUE_INDEX["rectal_wall"]
        lab[~body] = TISSUE_INDEX["air"]
        labels[k] = lab
    return labels


def make_phantom_case(rng: np.random.Generator) -> tuple[sitk.Image, sitk.Image, sitk.Image]:
    """One (T2 MRI, CT in HU, body mask) triple on a realistic grid (0.8-1.0 mm in-plane, 3 mm slices)."""
    pixel = float(rng.uniform(0.8, 1.0))
    size = (int(round(440 / pixel / 2)) * 2, int(round(330 / pixel / 2)) * 2)
    slices = int(rng.integers(20, 29))
    labels = phantom_labels(rng, (size[0] * 2, size[1] * 2), pixel / 2, slices)
    spacing = (pixel, pixel, 3.0)
    mri, ct = render_labels(labels, spacing, rng, supersampling=2)
    mask = (labels[:, ::2, ::2] != 0).astype(np.uint8)
    images = []
    for array in (mri, ct, mask):
        image = sitk.GetImageFromArray(array)
        image.SetSpacing(spacing)
        image.SetOrigin((-size[0] * pixel / 2, -size[1] * pixel / 2, 0.0))
        images.append(image)
    images[1] = sitk.Cast(sitk.Round(images[1]), sitk.sitkInt16)
    return images[0], images[1], images[2]
