"""Case -> volumes -> inputs: determinism, cache atomicity, dataset contract."""

import numpy as np
import pytest
import torch

from angio.dataset import VesselDataset
from angio.pipeline import VolumeCache, VolumeSpec, build_case, network_input

SPEC = VolumeSpec(size=32, fov_mm=96.0, center="major")


def test_build_case_is_a_pure_function_of_seed_case_variant():
    a = build_case("BG001", SPEC, variant=2, seed=3)
    b = build_case("BG001", SPEC, variant=2, seed=3)
    c = build_case("BG001", SPEC, variant=1, seed=3)
    np.testing.assert_array_equal(a.intensity, b.intensity)
    assert a.transform == b.transform and a.transform != c.transform
    assert not np.array_equal(a.intensity, c.intensity)
    orig = build_case("BG001", SPEC)
    assert orig.transform.is_identity
    for v in (a, orig):
        assert v.intensity.shape == (32, 32, 32) and v.intensity.dtype == np.float32
        assert v.exact.dtype == bool and v.otsu.dtype == bool
        assert v.exact.any() and v.otsu.any()
        np.testing.assert_array_equal(v.exact, v.fraction >= 0.5)
        u = v.unit_intensity()
        assert u.min() >= 0 and u.max() <= 1


def test_cta_otsu_mask_catches_bone_exact_mask_does_not():
    cta = build_case("BG001", VolumeSpec(size=32, fov_mm=180.0, modality="cta"))
    assert cta.otsu.sum() > 20 * cta.exact.sum()  # the skull passes the threshold
    with pytest.raises(ValueError, match="target"):
        cta.target("manual")


def test_cache_roundtrip_rebuilds_corrupt_and_stale_entries(tmp_path):
    cache = VolumeCache(tmp_path)
    first = cache.get("BG001", SPEC, variant=1, seed=0)
    path = cache.path("BG001", SPEC, 1, 0)
    assert path.exists() and path.parent.name == SPEC.key()
    again = cache.get("BG001", SPEC, variant=1, seed=0)
    np.testing.assert_array_equal(first.intensity, again.intensity)
    np.testing.assert_array_equal(first.otsu, again.otsu)
    np.testing.assert_allclose(first.fraction, again.fraction, atol=1e-3)  # stored as float16
    assert again.transform == first.transform and again.grid == first.grid
    path.write_bytes(b"not an npz")
    rebuilt = cache.get("BG001", SPEC, variant=1, seed=0)
    np.testing.assert_array_equal(rebuilt.intensity, first.intensity)
    assert not [p for p in path.parent.iterdir() if p.suffix == ".tmp"]


def test_network_input_channels_and_projections():
    v = build_case("BG001", SPEC).unit_intensity()
    x, proj = network_input(v, 5, modes=("sum", "min"), return_projections=True)
    assert x.shape == (2, 32, 32, 32) and proj.shape == (5, 32, 32)
    for ch in x:
        assert ch.min() == 0.0 and ch.max() == pytest.approx(1.0)
    assert x[1].sum() < x[0].sum()  # the hull is tighter than the smear
    np.testing.assert_array_equal(network_input(v, angles=[0, 90])[0],
                                  network_input(v, 2)[0])
    with pytest.raises(ValueError, match="exactly one"):
        network_input(v, 2, angles=[0, 90])
    with pytest.raises(ValueError, match="modes"):
        network_input(v, 2, modes=("max",))


def test_dataset_items_and_epoch_variants():
    ds = VesselDataset(["BG001", "BG0002"], SPEC, 3, modes=("sum",), variants=4, seed=1)
    item = ds[0]
    assert item["input"].shape == (1, 32, 32, 32) and item["input"].dtype == torch.float32
    assert item["target"].shape == (1, 32, 32, 32)
    assert set(torch.unique(item["target"]).tolist()) <= {0.0, 1.0}
    seen = []
    for epoch in range(6):
        ds.set_epoch(epoch)
        seen.append(ds.variant_of(0))
    ds.set_epoch(2)
    assert ds.variant_of(0) == seen[2]  # a pure function of (seed, epoch, index)
    assert set(seen) <= {1, 2, 3, 4} and len(set(seen)) > 1
    plain = VesselDataset(["BG001"], SPEC, 2, target="exact")
    assert plain.variant_of(0) == 0
    np.testing.assert_array_equal(plain[0]["target"][0].numpy(), build_case("BG001", SPEC).exact)
    with pytest.raises(ValueError):
        VesselDataset([], SPEC, 2)
    with pytest.raises(ValueError, match="modality"):
        VolumeSpec(modality="mri")



def test_samples_per_volume_and_resident_items_match_the_computed_ones(tmp_path):
    kwargs = dict(modes=("sum", "min"), target="exact", variants=2, cache=VolumeCache(tmp_path), seed=3)
    plain = VesselDataset(["BG001", "BG0002"], SPEC, 2, **kwargs)
    many = VesselDataset(["BG001", "BG0002"], SPEC, 2, samples_per_volume=3, **kwargs)
    resident = VesselDataset(["BG001", "BG0002"], SPEC, 2, samples_per_volume=3, resident=True, **kwargs)
    assert len(plain) == 2 and len(many) == len(resident) == 6
    assert resident.pairs() == [("BG001", 1), ("BG001", 2), ("BG0002", 1), ("BG0002", 2)]
    resident.preload(device="cpu", threads=2)
    assert set(resident._store) == set(resident.pairs())
    for epoch in (0, 1):
        for ds in (many, resident):
            ds.set_epoch(epoch)
        for i in range(6):
            ref, item = many[i], resident[i]
            assert ref["case"] == item["case"] == ["BG001", "BG0002"][i % 2]  # item i is case i % n
            assert ref["variant"] == item["variant"] == many.variant_of(i)
            assert item["input"].dtype == torch.float16 and item["target"].dtype == torch.uint8
            # float16 storage: relative rounding at most 2**-11
            np.testing.assert_allclose(item["input"].float().numpy(), ref["input"].numpy(), rtol=2**-11, atol=1e-7)
            np.testing.assert_array_equal(item["target"].numpy(), ref["target"].numpy())
    # each sample of a case draws its own variant
    draws = [{many.variant_of(i) for i in range(start, 6, 2)} for start in (0, 1)]
    assert max(len(d) for d in draws) > 1
    with pytest.raises(ValueError, match="resident"):
        plain.preload()
    with pytest.raises(ValueError, match="samples_per_volume"):
        VesselDataset(["BG001"], SPEC, 2, samples_per_volume=0)
    lazy = VesselDataset(["BG001"], SPEC, 2, cache=VolumeCache(tmp_path), resident=True)
    assert not lazy._store and lazy[0]["input"].dtype == torch.float16 and set(lazy._store) == {("BG001", 0)}


def test_windowed_otsu_target_thresholds_the_vessel_window():
    from angio.phantom import PRESETS
    from angio.segment import otsu_mask

    v = build_case("BG001", VolumeSpec(size=48, modality="cta"))
    low, high = PRESETS["cta"].vessel_window
    win = v.target("otsu_window")
    np.testing.assert_array_equal(win, otsu_mask(np.clip(v.intensity, low, high)))
    assert v.target("otsu_window") is win  # computed once
    # the window keeps the threshold between brain and contrast: no air, a smaller mask than
    # the raw-HU Otsu, and every windowed voxel is at least brain-bright
    assert 0 < win.sum() < v.otsu.sum() and v.intensity[win].min() > PRESETS["cta"].tissue
    rot = build_case("BG001", VolumeSpec(size=48))
    assert rot.target("otsu_window") is rot.otsu  # no vessel window: the paper's mask
    with pytest.raises(ValueError, match="target must be one of"):
        v.target("windowed")
    ds = VesselDataset(["BG001"], VolumeSpec(size=48, modality="cta"), 2, target="otsu_window")
    np.testing.assert_array_equal(ds[0]["target"][0].numpy() > 0.5, win)
