"""Paired T2 MRI / CT made from a real CT, with domain randomisation (in the spirit of SynthSeg / SynthSR).

Each pair takes the CT's anatomy through a random spatial augmentation (flip, rotation, in-plane scaling, elastic
deformation, often a urine-filled bladder inserted into the soft tissue away from bone) and renders a T2-weighted
image from HU-derived tissue fractions with the spin-echo model, every tissue's proton density, T1 and T2 drawn per
case within physiological ranges (:data:`RECIPE`). CT cannot tell muscle from organs or urine, so the soft tissue
is split by a smooth random field into muscle-, organ- and fluid-like regions with their own T2: dark muscle and
grey organs keep the CT's soft-tissue HU, and fluid, bright as free water is on a real T2, takes water's HU in the
training CT away from bone (held-out pairs keep the CT as it is); in most cases the CT's homogeneous water-density
regions (urine in a full bladder) are fluid too. Bone is a solid with a black cortical shell and bright, fat-like
marrow inside. The acquisition (coil bias and profile, turbo-spin-echo blur, Rician noise) and the slice profile
follow. The CT target is the augmented CT itself.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import SimpleITK as sitk

from CTSynthesisCore.hounsfield import AIR_HU, STORED_MAX_HU

from ..intensity import fill_holes_per_slice
from .tissue import ACQUISITION, add_mri_acquisition, smooth_field

# (tissue, HU) anchors: between two anchors a voxel is a linear mixture of the two tissues
HU_ANCHORS = (("gas", -950.0), ("fat", -100.0), ("soft_tissue", 50.0), ("marrow", 230.0), ("cortical_bone", 1400.0))
ANCHOR_INDEX = {name: index for index, (name, _) in enumerate(HU_ANCHORS)}
SOFT_TISSUE_KINDS = ("muscle", "organ", "fluid")
BONE_EDGE_HU = 180.0  # bone's outline in the CT (soft tissue, 30-80 HU, stays well below it)

# Per-case ranges of the spin-echo parameters (proton density relative to water, T1 and T2 in ms; fat's T2 is
# its apparent T2 in turbo spin echo), of the soft tissue's make-up, of the sequence and of the augmentation.
RECIPE: dict[str, Any] = {
    "tissues": {
        "gas": {"proton_density": (0.0, 0.02), "t1_ms": (1.0, 1.0), "t2_ms": (1.0, 5.0)},
        "fat": {"proton_density": (0.85, 1.0), "t1_ms": (230.0, 400.0), "t2_ms": (100.0, 170.0)},
        # pelvic muscle on a real T2 can be nearly as dark as cortex (0.07 of fat on the bundled ProstateX T2)
        "muscle": {"proton_density": (0.6, 0.85), "t1_ms": (800.0, 1400.0), "t2_ms": (18.0, 50.0)},
        "organ": {"proton_density": (0.75, 0.95), "t1_ms": (500.0, 1500.0), "t2_ms": (45.0, 110.0)},
        "fluid": {"proton_density": (0.95, 1.0), "t1_ms": (2000.0, 4000.0), "t2_ms": (300.0, 2000.0)},
        # from red marrow (vertebrae) to fatty marrow, as bright as fat on T2 (adult femoral heads: 1.15 of the
        # body's median bright signal on the bundled T2, against 1.12 in subcutaneous fat)
        "marrow": {"proton_density": (0.85, 1.0), "t1_ms": (250.0, 500.0), "t2_ms": (80.0, 170.0)},
        "cortical_bone": {"proton_density": (0.02, 0.12), "t1_ms": (200.0, 800.0), "t2_ms": (0.5, 3.0)},
    },
    "soft_tissue_shares": {"organ": (0.05, 0.4), "fluid": (0.0, 0.15)},  # the rest is muscle
    "soft_tissue_region_mm": (25.0, 60.0),  # size of the muscle / organ / fluid regions
    "water_density_fluid_probability": 0.8,  # of a case rendering the CT's homogeneous water-density regions as fluid
    "texture": (0.03, 0.12),  # relative amplitude of fine tissue texture
    "repetition_ms": (2500.0, 7000.0),
    "echo_ms": (70.0, 130.0),
    "slice_mm": (2.5, 4.0),
    "pixel_mm": (0.8, 1.6),
    "rotation_degrees": 12.0,
    "tilt_degrees": 4.0,
    "scale": (0.85, 1.15),
    "elastic_mm": (0.0, 6.0),  # standard deviation of the B-spline control-point displacements
    "cortex_mm": (0.8, 2.0),  # thickness of the black cortical shell drawn around bone
    "dark_interface_share": (0.2, 0.8),  # of the fat / soft-tissue boundary drawn dark (fascia, chemical shift)
    "fascia_spacing_mm": (15.0, 40.0),  # typical distance between dark fascia lines inside soft tissue
    "dark_line_of_muscle": (0.0, 0.5),  # a dark line's signal, as a share of the case's muscle signal
    "flip_probability": 0.5,
    "field_of_view_mm": (160.0, 300.0),  # craniocaudal length of the slab of the CT a training pair is made from
    # a urine-filled bladder inserted into the CT's soft tissue and fat (augmentation): the training CTs hold few
    # full bladders, and the ProstateX T2's urine came out as soft tissue (40-70 HU however bright it was drawn)
    "fluid_cavity_probability": 0.6,
    "fluid_cavity_mm": (15.0, 45.0),  # semi-axes of the cavity's ellipsoid
    "fluid_cavity_hu": (0.0, 15.0),
    # kept this far from bone: a bright round cavity against bone looks like a femoral head on T2 and taught the
    # network to read femoral-head marrow as water (recipe v8); a real bladder lies centimetres from the femora
    "fluid_cavity_bone_margin_mm": 20.0,
    # a real bladder's urine is ringed by its dark muscular wall (on the bundled T2 as dark as a femoral head's
    # cortex): without the wall, a bright region in a dark ring was always marrow and the urine read 116 HU (v9)
    "fluid_cavity_wall_mm": (2.0, 6.0),
    "fluid_cavity_wall_hu": (30.0, 50.0),
    # soft tissue rendered as fluid takes water's HU in the CT target beyond the bone margin above (recipe v11):
    # with the CT's own 30-80 HU there, bright fluid was taught as soft tissue and the ProstateX urine read 43-50 HU
    "fluid_region_hu": (0.0, 15.0),
    **ACQUISITION,  # bias field, surface coils, TSE blur and noise (the phantoms share them)
}


def draw(rng: np.random.Generator, bounds: tuple[float, float]) -> float:
    return float(rng.uniform(*bounds))


def tissue_fractions(hu: np.ndarray) -> np.ndarray:
    """(anchors, ...) fractions from HU by piecewise-linear mixing of neighbouring anchors."""
    values = np.array([v for _, v in HU_ANCHORS], np.float32)
    fractions = np.zeros((len(values), *hu.shape), np.float32)
    position = np.interp(np.clip(hu, values[0], values[-1]), values, np.arange(len(values)))
    lower = np.floor(position).astype(int).clip(0, len(values) - 2)
    weight = (position - lower).astype(np.float32)
    for index in range(len(values)):
        fractions[index] += np.where(lower == index, 1.0 - weight, 0.0)
        if index > 0:
            fractions[index] += np.where(lower == index - 1, weight, 0.0)
    return fractions


def spin_echo(parameters: dict[str, float], repetition_ms: float, echo_ms: float) -> float:
    """S = PD (1 - exp(-TR/T1)) exp(-TE/T2)."""
    return (parameters["proton_density"] * (1.0 - np.exp(-repetition_ms / parameters["t1_ms"]))
            * np.exp(-echo_ms / parameters["t2_ms"]))


def case_signals(rng: np.random.Generator) -> dict[str, float]:
    """Each tissue's T2-weighted signal for one case: its parameters and the sequence drawn from the recipe."""
    repetition, echo = draw(rng, RECIPE["repetition_ms"]), draw(rng, RECIPE["echo_ms"])
    return {name: spin_echo({key: draw(rng, bounds) for key, bounds in ranges.items()}, repetition, echo)
            for name, ranges in RECIPE["tissues"].items()}


WATER_HU = (-10.0, 18.0)  # urine, bile, ascites, cysts; soft tissue is denser, fat far lighter
WATER_SPREAD_HU = 15.0  # local spread below which a water-density neighbourhood counts as one fluid


def water_density_fluid(hu: np.ndarray, spacing: tuple[float, float, float]) -> np.ndarray:
    """Homogeneous water-density regions of the CT (bladder urine, gallbladder, bowel fluid): mean HU over a 3 mm
    in-plane neighbourhood in WATER_HU with a local spread under WATER_SPREAD_HU, so the thin mixed band between
    fat and muscle (its mean crosses the same HU) is left out."""
    mean, spread = in_plane_mean_and_spread(hu, spacing)
    return (mean >= WATER_HU[0]) & (mean <= WATER_HU[1]) & (spread < WATER_SPREAD_HU)


def in_plane_mean_and_spread(hu: np.ndarray, spacing: tuple[float, float, float],
                             radius_mm: float = 3.0) -> tuple[np.ndarray, np.ndarray]:
    """Mean and standard deviation of HU over an in-plane neighbourhood of ``radius_mm``: tissue rather than noise."""
    image = sitk.GetImageFromArray(hu.astype(np.float32))
    image.SetSpacing(spacing)
    radius = [max(1, round(radius_mm / s)) for s in spacing[:2]] + [0]
    return sitk.GetArrayFromImage(sitk.Mean(image, radius)), sitk.GetArrayFromImage(sitk.Noise(image, radius))


def soft_tissue_kinds(hu: np.ndarray, spacing: tuple[float, float, float], rng: np.random.Generator,
                      known_kind: np.ndarray | None = None) -> np.ndarray:
    """The kind of soft tissue per voxel (an index into SOFT_TISSUE_KINDS): muscle-, organ- and fluid-like regions
    from a smooth random field, and (in most cases) fluid wherever the CT shows homogeneous water density, as a
    real T2 shows urine: bright. ``known_kind`` (-1 where unknown) overrides both."""
    region_voxels = draw(rng, RECIPE["soft_tissue_region_mm"]) / spacing[0]
    field = smooth_field(hu.shape, rng, region_voxels)
    organ, fluid = (draw(rng, RECIPE["soft_tissue_shares"][kind]) for kind in ("organ", "fluid"))
    low, high = np.quantile(field, [1.0 - organ - fluid, 1.0 - fluid]) if organ + fluid > 0 else (np.inf, np.inf)
    kind = np.where(field >= high, 2, np.where(field >= low, 1, 0)).astype(np.int8)
    if rng.random() < RECIPE["water_density_fluid_probability"]:
        kind = np.where(water_density_fluid(hu, spacing), 2, kind)
    if known_kind is not None:
        kind = np.where(known_kind >= 0, known_kind, kind)
    return kind


def soft_tissue_signal(kinds: np.ndarray, signals: dict[str, float]) -> np.ndarray:
    """The soft tissue's signal per voxel: its kind's signal (see :func:`soft_tissue_kinds`)."""
    return np.array([signals[name] for name in SOFT_TISSUE_KINDS], np.float32)[kinds]


FLUID_REGION_REPLACES_HU = (20.0, 100.0)  # soft tissue through and through, not its partial volume with fat or bone


def with_water_in_fluid(hu: np.ndarray, kinds: np.ndarray, bone_clearance: np.ndarray,
                        rng: np.random.Generator) -> np.ndarray:
    """``hu`` with water density (``fluid_region_hu``, drawn per case) wherever soft tissue is rendered as fluid
    beyond the bladder's bone margin: fluid bright on T2 (T2 of 300 ms and more) is free water in the body (urine,
    bile, cysts), never muscle's HU; next to bone a bright region stays soft tissue in HU, so that bright marrow in
    its dark cortex is not taught as water (the inserted bladder keeps the same margin; ``bone_clearance`` from
    :func:`bone_clearance_mm`)."""
    fluid = (kinds == SOFT_TISSUE_KINDS.index("fluid")) & (hu > FLUID_REGION_REPLACES_HU[0]) & (
        hu < FLUID_REGION_REPLACES_HU[1]) & (bone_clearance > 0.0)
    watered = hu.copy()
    watered[fluid] = draw(rng, RECIPE["fluid_region_hu"]) + rng.normal(0.0, CAVITY_NOISE_HU, int(fluid.sum()))
    return watered


def solid_bone(hu: np.ndarray, spacing: tuple[float, float, float]) -> sitk.Image:
    """Bone as a solid: voxels above BONE_EDGE_HU, closed over 3 mm and filled in each axial plane. Trabecular bone
    in a thick CT dips below the threshold in places; its gaps are marrow, not bone surface."""
    bone = sitk.GetImageFromArray((hu > BONE_EDGE_HU).astype(np.uint8))
    bone.SetSpacing(spacing)
    closed = sitk.BinaryMorphologicalClosing(bone, [max(1, round(3.0 / s)) for s in spacing[:2]] + [1], sitk.sitkBall)
    return fill_holes_per_slice(closed)


def cortical_shell(hu: np.ndarray, spacing: tuple[float, float, float], rng: np.random.Generator) -> np.ndarray:
    """The outer layer of bone, ``cortex_mm`` thick: cortical bone.

    A CT of 3 mm smears a 1-2 mm cortex into voxels of 400-900 HU, which mixing by HU renders as mostly bright
    marrow; a real T2 of 0.5-1 mm pixels shows the cortex as a black ring around the marrow (femoral heads,
    vertebral bodies). The shell restores that ring on the outline of the solid bone only, so the marrow inside
    stays bright; the CT target keeps the CT's own values."""
    solid = solid_bone(hu, spacing)
    thickness = draw(rng, RECIPE["cortex_mm"])
    interior = sitk.BinaryErode(solid, [max(1, round(thickness / s)) for s in spacing], sitk.sitkBall)
    return sitk.GetArrayFromImage(solid - interior).astype(bool) & (hu > BONE_EDGE_HU)


def soft_tissue_voxels(hu: np.ndarray) -> np.ndarray:
    """Soft tissue where dark lines may be drawn: above water, below bone's outline."""
    return (hu > 0.0) & (hu <= BONE_EDGE_HU)


def fat_boundary_lines(hu: np.ndarray, spacing: tuple[float, float, float], rng: np.random.Generator) -> np.ndarray:
    """Patches of the boundary between fat and soft tissue (fascia and the chemical-shift band), one voxel wide."""
    near = [sitk.GetArrayFromImage(sitk.BinaryDilate(sitk.GetImageFromArray(m.astype(np.uint8)), [1, 1, 0])) > 0
            for m in (hu < -30.0, soft_tissue_voxels(hu))]
    patches = smooth_field(hu.shape, rng, 20.0 / spacing[0])
    return near[0] & near[1] & (patches < np.quantile(patches, draw(rng, RECIPE["dark_interface_share"])))


def fascia_lines(hu: np.ndarray, spacing: tuple[float, float, float], rng: np.random.Generator) -> np.ndarray:
    """A network of thin lines inside soft tissue: the zero crossings of a smooth random field."""
    field = smooth_field(hu.shape, rng, draw(rng, RECIPE["fascia_spacing_mm"]) / spacing[0])
    crossings = np.zeros(hu.shape, bool)
    crossings[:, :-1, :] |= np.sign(field[:, :-1, :]) != np.sign(field[:, 1:, :])
    crossings[:, :, :-1] |= np.sign(field[:, :, :-1]) != np.sign(field[:, :, 1:])
    return crossings & soft_tissue_voxels(hu)


def dark_lines(hu: np.ndarray, spacing: tuple[float, float, float], rng: np.random.Generator) -> np.ndarray:
    """Thin dark lines that are not bone. A real T2 is full of them (fascia, chemical shift) and a CT shows none,
    so without them every dark line reads as cortex."""
    boundary = fat_boundary_lines(hu, spacing, rng)
    return boundary | fascia_lines(hu, spacing, rng)


def render_t2(hu: np.ndarray, inside: np.ndarray, spacing: tuple[float, float, float],
              rng: np.random.Generator, signals: dict[str, float], kinds: np.ndarray) -> np.ndarray:
    """A clean T2-weighted signal (before the acquisition) from HU, with the case's tissue ``signals`` (see
    :func:`case_signals`) and soft-tissue ``kinds`` (see :func:`soft_tissue_kinds`), a black cortical shell around
    bone and dark lines that are not bone."""
    fractions = tissue_fractions(hu)
    per_anchor = [signals["gas"], signals["fat"], soft_tissue_signal(kinds, signals), signals["marrow"],
                  signals["cortical_bone"]]
    clean = sum(fraction * signal for fraction, signal in zip(fractions, per_anchor))
    clean = np.where(cortical_shell(hu, spacing, rng), signals["cortical_bone"], clean)
    clean = np.where(dark_lines(hu, spacing, rng), signals["muscle"] * draw(rng, RECIPE["dark_line_of_muscle"]), clean)
    clean = clean * (1.0 + draw(rng, RECIPE["texture"]) * smooth_field(hu.shape, rng, 1.5))
    return np.where(inside, np.clip(clean, 0.0, None), 0.0).astype(np.float32)


def random_transform(ct: sitk.Image, rng: np.random.Generator) -> sitk.Transform:
    """Flip, rotation (mostly about the slice axis), in-plane scaling and an elastic B-spline, about the CT's centre."""
    centre = ct.TransformContinuousIndexToPhysicalPoint([(n - 1) / 2 for n in ct.GetSize()])
    affine = sitk.AffineTransform(3)
    affine.SetCenter(centre)
    flip = -1.0 if rng.random() < RECIPE["flip_probability"] else 1.0
    scales = np.diag([flip * draw(rng, RECIPE["scale"]), draw(rng, RECIPE["scale"]), 1.0])
    angle = np.deg2rad(rng.uniform(-1, 1) * RECIPE["rotation_degrees"])
    tilt = np.deg2rad(rng.uniform(-1, 1) * RECIPE["tilt_degrees"])
    about_z = np.array([[np.cos(angle), -np.sin(angle), 0], [np.sin(angle), np.cos(angle), 0], [0, 0, 1]])
    about_x = np.array([[1, 0, 0], [0, np.cos(tilt), -np.sin(tilt)], [0, np.sin(tilt), np.cos(tilt)]])
    affine.SetMatrix((about_z @ about_x @ scales).flatten().tolist())
    elastic = sitk.BSplineTransformInitializer(ct, [4, 4, 2])
    parameters = np.asarray(elastic.GetParameters())
    elastic.SetParameters((rng.normal(0.0, draw(rng, RECIPE["elastic_mm"]), parameters.shape)).tolist())
    return sitk.CompositeTransform([affine, elastic])


CAVITY_REPLACES_HU = (-150.0, 100.0)  # a cavity displaces fat and soft tissue, never bone or gas
CAVITY_CENTRE_HU = (20.0, 80.0)  # a cavity's centre lies in soft tissue
CAVITY_NOISE_HU = 3.0


def distance_mm(mask: np.ndarray, spacing: tuple[float, float, float]) -> np.ndarray:
    """Distance in mm from each voxel outside ``mask`` to the mask (0 inside it; infinite when it is empty)."""
    if not mask.any():
        return np.full(mask.shape, np.inf, np.float32)
    image = sitk.GetImageFromArray(mask.astype(np.uint8))
    image.SetSpacing(spacing)
    distance = sitk.GetArrayFromImage(sitk.SignedMaurerDistanceMap(image, insideIsPositive=False, squaredDistance=False,
                                                                     useImageSpacing=True))
    return np.maximum(distance, 0.0)


def bone_clearance_mm(hu: np.ndarray, spacing: tuple[float, float, float]) -> np.ndarray:
    """How far each voxel lies beyond the bladder's bone margin (``fluid_cavity_bone_margin_mm``), in mm; negative
    within it."""
    return distance_mm(hu > BONE_EDGE_HU, spacing) - RECIPE["fluid_cavity_bone_margin_mm"]


def with_fluid_cavity(hu: np.ndarray, inside: np.ndarray, bone_clearance: np.ndarray,
                      spacing: tuple[float, float, float], rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """``hu`` with a bladder inserted, and the soft-tissue kind it fixes (fluid in the urine, muscle in the wall, -1
    elsewhere; see :func:`soft_tissue_signal`). The urine (water density) fills an ellipsoid, and a soft-tissue
    wall rings it, centred at a random point of soft tissue whose depth in the body and distance beyond the bone
    margin are at least the smallest semi-axis plus the wall; no voxel of either lies within the margin of bone.
    Unchanged when no such point exists."""
    semi_axes_mm = np.array([draw(rng, RECIPE["fluid_cavity_mm"]) for _ in range(3)])
    wall_mm = draw(rng, RECIPE["fluid_cavity_wall_mm"])
    known_kind = np.full(hu.shape, -1, np.int8)
    depth = distance_mm(~inside, spacing)
    reach = semi_axes_mm.min() + wall_mm
    soft = (hu > CAVITY_CENTRE_HU[0]) & (hu < CAVITY_CENTRE_HU[1])
    candidates = np.argwhere((depth >= reach) & (bone_clearance >= reach) & soft)
    if len(candidates) == 0:
        return hu, known_kind
    centre = candidates[rng.integers(len(candidates))]
    grid = np.ogrid[tuple(slice(0, n) for n in hu.shape)]
    spacing_zyx = np.array(spacing[::-1])
    urine_axes, wall_axes = semi_axes_mm[::-1], semi_axes_mm[::-1] + wall_mm
    offsets = [(axis - c) * s for axis, c, s in zip(grid, centre, spacing_zyx)]
    displaced = inside & (hu > CAVITY_REPLACES_HU[0]) & (hu < CAVITY_REPLACES_HU[1]) & (bone_clearance > 0.0)
    urine = displaced & (sum((o / a) ** 2 for o, a in zip(offsets, urine_axes)) <= 1.0)
    wall = displaced & ~urine & (sum((o / a) ** 2 for o, a in zip(offsets, wall_axes)) <= 1.0)
    with_bladder = hu.copy()
    for region, key in ((urine, "fluid_cavity_hu"), (wall, "fluid_cavity_wall_hu")):
        with_bladder[region] = draw(rng, RECIPE[key]) + rng.normal(0.0, CAVITY_NOISE_HU, int(region.sum()))
    known_kind[urine], known_kind[wall] = SOFT_TISSUE_KINDS.index("fluid"), SOFT_TISSUE_KINDS.index("muscle")
    return with_bladder, known_kind


def mri_spacing(rng: np.random.Generator) -> tuple[float, float, float]:
    """An MRI-like in-plane pixel and slice thickness (mm) for a rendered case."""
    pixel, slice_mm = draw(rng, RECIPE["pixel_mm"]), draw(rng, RECIPE["slice_mm"])
    return pixel, pixel, slice_mm


def output_size(ct: sitk.Image, spacing: tuple[float, float, float]) -> tuple[int, ...]:
    """Voxels of a rendered case at ``spacing`` over the CT's extent."""
    extent = [n * s for n, s in zip(ct.GetSize(), ct.GetSpacing())]
    return tuple(max(1, int(e / s)) for e, s in zip(extent, spacing))


def ct_body_mask(ct: sitk.Image) -> sitk.Image:
    """Patient body in a CT: above -500 HU, largest component, holes filled per slice."""
    foreground = sitk.Cast(ct > -500, sitk.sitkUInt8)
    largest = sitk.Cast(sitk.RelabelComponent(sitk.ConnectedComponent(foreground), sortByObjectSize=True) == 1,
                        sitk.sitkUInt8)
    return fill_holes_per_slice(largest)


ENHANCED_HU = (150.0, 600.0)  # iodine-enhanced blood and organs; also trabecular bone, but that is a few percent
CONTRAST_SHARE = 0.08  # more of the body than this in ENHANCED_HU: the CT looks contrast-enhanced


def enhanced_share(ct: sitk.Image) -> float:
    """The share of the body between 150 and 600 HU: about 4 % in a non-contrast abdomen (mostly trabecular
    bone), 10 % in a portal-venous abdomen and 25 % in a CT angiogram (blood pool)."""
    body = sitk.GetArrayFromImage(ct_body_mask(ct)).astype(bool)  # a copy: a view would outlive its image
    values = sitk.GetArrayViewFromImage(ct)[body]
    return float(np.mean((values >= ENHANCED_HU[0]) & (values <= ENHANCED_HU[1]))) if values.size else 0.0


IODINE_HU = 80.0  # soft tissue denser than this away from bone holds iodine (without it: 20-70 HU)
BONE_DENSE_HU, BONE_DENSE_SHARE = 600.0, 0.02  # bone: 4-40 % of a piece this dense; enhanced organs: under 1 %
BONE_NEIGHBOURHOOD_MM = 3.0  # soft tissue this close to bone shares voxels with it: partial volume, not iodine


def dense_bone(hu: np.ndarray, spacing: tuple[float, float, float]) -> np.ndarray:
    """Solid bone (:func:`solid_bone`) made of the pieces of bone's outline (voxels above BONE_EDGE_HU, not yet
    closed, so that an enhanced aorta beside a vertebra stays a piece of its own) with a cortex: at least
    BONE_DENSE_SHARE of the piece above BONE_DENSE_HU. Vertebrae, ribs, pelvis and femora, but not the enhanced
    vessels and organs of a portal-venous CT, nor a calcified plaque's vessel. In a CT angiogram the contrast-filled
    aorta and heart touch the spine and count as bone."""
    outline = sitk.GetImageFromArray((hu > BONE_EDGE_HU).astype(np.uint8))
    outline.SetSpacing(spacing)
    labels = sitk.ConnectedComponent(outline)
    label_array = sitk.GetArrayFromImage(labels)
    sizes = np.bincount(label_array.ravel())
    dense_share = np.bincount(label_array.ravel(), weights=(hu >= BONE_DENSE_HU).ravel(), minlength=sizes.size) / sizes
    dense_share[0] = 0.0
    pieces = (dense_share >= BONE_DENSE_SHARE)[label_array]
    return sitk.GetArrayFromImage(solid_bone(np.where(pieces, hu, AIR_HU), spacing)).astype(bool)


def iodine_enhanced(hu: np.ndarray, spacing: tuple[float, float, float]) -> np.ndarray:
    """Soft tissue above IODINE_HU (in its 3 mm mean: tissue, not noise) farther than BONE_NEIGHBOURHOOD_MM from
    dense bone: the blood and organs that iodine brightens in a contrast-enhanced CT, HU that no T2 image can show
    (iodine leaves T1 and T2 as they are)."""
    mean, _ = in_plane_mean_and_spread(hu, spacing)
    return (hu > IODINE_HU) & (mean > IODINE_HU) & (
        distance_mm(dense_bone(hu, spacing), spacing) > BONE_NEIGHBOURHOOD_MM)


def without_iodine(hu: np.ndarray, spacing: tuple[float, float, float]) -> np.ndarray:
    """``hu`` as a T2 image sees it: iodine-enhanced soft tissue (:func:`iodine_enhanced`) at IODINE_HU."""
    return np.where(iodine_enhanced(hu, spacing), np.float32(IODINE_HU), hu).astype(hu.dtype)


def slice_profile(values: np.ndarray, thin_per_slice: int) -> np.ndarray:
    """Average groups of ``thin_per_slice`` thin slices into one thick slice (a box slice profile)."""
    slices = values.shape[0] // thin_per_slice
    return values[:slices * thin_per_slice].reshape(slices, thin_per_slice, *values.shape[1:]).mean(axis=1)


BODY_MARGIN_MM = 30.0  # air kept around the body's in-plane bounding box: room for rotation and scaling
THIN_PER_SLICE = 3  # thin slices rendered per MRI slice: the slice profile
RENDERED_VOXELS_MAX = 20_000_000  # of a training pair's thin grid: about 3 GB while rendering


def body_in_plane(ct: sitk.Image) -> sitk.Image:
    """The CT cropped in-plane to its body's bounding box plus BODY_MARGIN_MM (all of it when no body is found)."""
    body = sitk.GetArrayFromImage(ct_body_mask(ct)).any(axis=0)  # (y, x)
    if not body.any():
        return ct
    rows, columns = np.nonzero(body)
    low, high = [], []
    for axis, indices in enumerate((columns, rows)):
        margin = round(BODY_MARGIN_MM / ct.GetSpacing()[axis])
        low.append(max(0, int(indices.min()) - margin))
        high.append(min(ct.GetSize()[axis], int(indices.max()) + 1 + margin))
    return ct[low[0]:high[0], low[1]:high[1], :]


def training_field_of_view(ct: sitk.Image, rng: np.random.Generator,
                           spacing: tuple[float, float, float]) -> sitk.Image:
    """What a training pair rendered at ``spacing`` is made from: :func:`body_in_plane`, then a random craniocaudal
    slab RECIPE ``field_of_view_mm`` long (an MRI covers part of what a CT does), shortened where the thin grid
    would exceed RENDERED_VOXELS_MAX. A whole 512 x 512 x 163 planning CT rendered at once took 10.8 GB."""
    body = body_in_plane(ct)
    area_mm2 = body.GetSize()[0] * body.GetSpacing()[0] * body.GetSize()[1] * body.GetSpacing()[1]
    thin_voxel_mm3 = spacing[0] * spacing[1] * spacing[2] / THIN_PER_SLICE
    length_mm = min(draw(rng, RECIPE["field_of_view_mm"]), RENDERED_VOXELS_MAX * thin_voxel_mm3 / area_mm2)
    slices = body.GetSize()[2]
    length = min(slices, max(1, round(length_mm / body.GetSpacing()[2])))
    first = int(rng.integers(0, slices - length + 1))
    return body[:, :, first:first + length]


def pair_from_ct(ct: sitk.Image, rng: np.random.Generator, augment: bool = True,
                 hide_iodine: bool = False) -> tuple[sitk.Image, sitk.Image, sitk.Image]:
    """(T2 MRI, CT, body mask) of one randomised case from a real CT (``augment=False``: no flip, rotation, scaling,
    deformation or inserted bladder; the case still gets a random MRI-like pixel size and slice thickness).
    ``hide_iodine``: the MRI is rendered from :func:`without_iodine` HU, so that the enhanced blood and organs of a
    contrast CT look like any soft tissue, as on a real T2; the CT keeps its own HU. A training pair is made from
    :func:`training_field_of_view`; a held-out pair covers the whole CT."""
    spacing = mri_spacing(rng)
    if augment:
        ct = training_field_of_view(ct, rng, spacing)
    size, thin = output_size(ct, spacing), THIN_PER_SLICE
    thin_spacing = (spacing[0], spacing[1], spacing[2] / thin)
    reference = sitk.Image([size[0], size[1], size[2] * thin], sitk.sitkFloat32)
    reference.SetSpacing(thin_spacing)
    reference.SetDirection(ct.GetDirection())
    reference.SetOrigin(ct.GetOrigin())
    transform = random_transform(ct, rng) if augment else sitk.Transform()
    thin_ct = sitk.Resample(ct, reference, transform, sitk.sitkLinear, AIR_HU, sitk.sitkFloat32)
    hu = sitk.GetArrayFromImage(thin_ct)
    inside = sitk.GetArrayFromImage(ct_body_mask(thin_ct)).astype(bool)
    known_kind = None
    bone_clearance = bone_clearance_mm(hu, thin_spacing) if augment else None  # the bladder leaves bone as it is
    if augment and rng.random() < RECIPE["fluid_cavity_probability"]:
        hu, known_kind = with_fluid_cavity(hu, inside, bone_clearance, thin_spacing, rng)
    signals = case_signals(rng)
    kinds = soft_tissue_kinds(hu, thin_spacing, rng, known_kind)
    if augment:  # held-out pairs keep the CT as it is
        hu = with_water_in_fluid(hu, kinds, bone_clearance, rng)
    seen = without_iodine(hu, thin_spacing) if hide_iodine else hu
    mri_thin = render_t2(seen, inside, thin_spacing, rng, signals, kinds)
    mri = add_mri_acquisition(slice_profile(mri_thin, thin), spacing, rng)
    hu_thick = slice_profile(np.where(inside, np.clip(hu, AIR_HU, STORED_MAX_HU), AIR_HU), thin)
    mask = slice_profile(inside.astype(np.float32), thin) >= 0.5
    hu_thick = np.where(mask, hu_thick, AIR_HU)
    direction = np.array(ct.GetDirection()).reshape(3, 3)
    origin = np.array(ct.GetOrigin()) + direction @ np.array([0.0, 0.0, thin_spacing[2] * (thin - 1) / 2])
    images = []
    for array in (mri, hu_thick, mask.astype(np.uint8)):  # a thick slice sits at the centre of its thin ones
        image = sitk.GetImageFromArray(array)
        image.SetSpacing(spacing)
        image.SetDirection(ct.GetDirection())
        image.SetOrigin(tuple(origin))
        images.append(image)
    images[1] = sitk.Cast(sitk.Round(images[1]), sitk.sitkInt16)
    return images[0], images[1], images[2]
