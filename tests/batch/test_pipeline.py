"""The seed notebook's significance step end to end on the Crab dataset: read the
MapDataset, estimate sqrt_ts (r = 0.4 deg), threshold at 5 sigma with NaN kept,
the hysteresis variant, a dilation of the excluded pixels, and FITS writing; with no
device-to-host copy between reading the dataset and writing the mask."""

from __future__ import annotations

import numpy as np
import pytest

import gpumask
from gpumask import to_host
from gpumask.stats.excess import ExcessMapEstimator

CRAB = "fermi-3fhl-crab/Fermi-LAT-3FHL_data_Fermi-LAT.fits"


def test_seed_significance_mask_without_host_copies(backend, data_dir, tmp_path):
    dataset = gpumask.read_dataset(data_dir / CRAB, backend=backend.name)
    with gpumask.count_transfers() as counter:
        result = ExcessMapEstimator("0.4 deg", selection_optional=[]).run(dataset)
        sqrt_ts = result["sqrt_ts"]
        # the notebook: mask = sqrt_ts < 5, then NaN pixels set to True ("keep")
        mask = gpumask.exclusion_from_significance(sqrt_ts, 5.0, nan="keep")
        plain = (sqrt_ts < 5.0) | ~(sqrt_ts == sqrt_ts)
        hyst = gpumask.exclusion_from_significance(sqrt_ts, 5.0, low=3.0, nan="keep")
        # grow the excluded regions by 0.2 deg: erode the usable pixels
        grown = hyst.binary_erode("0.2 deg")
        image = grown.get_image_by_idx((0,))
    assert counter.calls == 0 and counter.device_calls == 0
    assert mask.backend.name == backend.name and mask.is_mask

    out = tmp_path / "exclusion_mask.fits"
    with gpumask.count_transfers() as writing:
        image.write(out)
    assert writing.calls >= 1  # the FITS writer is where data leaves the device

    m = to_host(mask.data)
    assert (~m).sum() == 241
    np.testing.assert_array_equal(m, to_host(plain.data))
    h = to_host(hyst.data)
    assert (~h).sum() > 241 and np.all(h <= m)  # hysteresis only adds connected pixels
    g = to_host(grown.data)
    assert np.all(g <= h) and (~g).sum() > (~h).sum()

    back = gpumask.read_map(out)
    assert back.is_mask
    np.testing.assert_array_equal(to_host(back.data), g[0])


def test_seed_hysteresis_matches_skimage(data_dir):
    filters = pytest.importorskip("skimage.filters")
    dataset = gpumask.read_dataset(data_dir / CRAB)
    sqrt_ts = ExcessMapEstimator("0.4 deg").run(dataset)["sqrt_ts"]
    data = to_host(sqrt_ts.data)
    for low, high in ((3.0, 5.0), (2.0, 5.0), (4.0, 8.0)):
        ref = filters.apply_hysteresis_threshold(np.nan_to_num(data, nan=-np.inf)[0], low, high)
        ours = to_host(gpumask.hysteresis_threshold(sqrt_ts, low, high).data)[0]
        np.testing.assert_array_equal(ours, ref)
        excl = to_host(gpumask.exclusion_from_significance(sqrt_ts, high, low=low).data)[0]
        # inclusive comparisons differ from skimage's strict ones only on exact ties
        ties = (data[0] == low) | (data[0] == high)
        np.testing.assert_array_equal(~excl[~ties], ref[~ties])
