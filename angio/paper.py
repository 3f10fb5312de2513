"""Numbers published by Wu et al. (ISVC 2023), for side-by-side display only.

Wu, Kaneko, Mendoza, Liebeskind, Scalzo. "3D Reconstruction from 2D Cerebral Angiograms as
a Volumetric Denoising Problem". Advances in Visual Computing (ISVC 2023), LNCS 14361,
doi:10.1007/978-3-031-47969-4_30.

Every cell of the paper's Table 1 (its autoencoder per number of views) and Table 2 (the
biplane comparison) is here, as published. Nothing was re-run: these are the paper's own
numbers on its private data (CT angiograms of 49 patients, 384^3, skull included; the
ground truth is Otsu's threshold of the original CT; 5 test patients). The two conditional
GAN rows of Table 2 come from an earlier publication the paper quotes; the paper did not
re-run them either (:data:`TABLE2_QUOTED_BY_PAPER`).

Fractions are stored as fractions (IoU 0.5681, not 56.81%).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

__all__ = ["CITATION", "TABLE1", "TABLE1_IOU", "TABLE2", "TABLE2_QUOTED_BY_PAPER", "TABLE2_AUTOENCODER",
           "TABLE2_METRICS", "SETUP", "PROJECTIONS", "beside", "table2", "view_schedule"]

CITATION = ("Wu, Kaneko, Mendoza, Liebeskind, Scalzo. 3D Reconstruction from 2D Cerebral "
            "Angiograms as a Volumetric Denoising Problem. ISVC 2023, LNCS 14361. "
            "doi:10.1007/978-3-031-47969-4_30")

#: Table 1: the autoencoder per number of views (IoU as a fraction, MSE, MAE), 5 test patients.
TABLE1: dict[int, dict[str, float]] = {
    90: {"iou": 0.5681, "mse": 0.00124, "mae": 0.0196},
    46: {"iou": 0.5706, "mse": 0.00103, "mae": 0.0153},
    24: {"iou": 0.5643, "mse": 0.001396, "mae": 0.0197},
    10: {"iou": 0.5222, "mse": 0.00173, "mae": 0.0241},
    5: {"iou": 0.4535, "mse": 0.00277, "mae": 0.0275},
    3: {"iou": 0.3217, "mse": 0.00224, "mae": 0.0256},
    2: {"iou": 0.2683, "mse": 0.00264, "mae": 0.02516},
}

#: Table 1's IoU in percent per number of views (as the paper prints it).
TABLE1_IOU: dict[int, float] = {n: round(100 * row["iou"], 2) for n, row in TABLE1.items()}

#: Table 2: biplane (2 views). ``None`` where the paper gives no value.
TABLE2: dict[str, dict[str, float | None]] = {
    "conditional GAN (slice-wise 2D)": {"accuracy": 0.9631, "iou": 0.0726, "mse": None, "mae": None},
    "L1 + conditional GAN": {"accuracy": 0.9587, "iou": 0.1132, "mse": None, "mae": None},
    "3D denoising autoencoder": {"accuracy": 0.9985, "iou": 0.2683, "mse": 0.0026, "mae": 0.0251},
}

#: Rows of :data:`TABLE2` the paper itself quoted from earlier work rather than re-ran.
TABLE2_QUOTED_BY_PAPER = ("conditional GAN (slice-wise 2D)", "L1 + conditional GAN")

#: The row of :data:`TABLE2` that is the paper's own method (ours are set beside it).
TABLE2_AUTOENCODER = "3D denoising autoencoder"

#: The columns of :data:`TABLE2`, in the paper's order.
TABLE2_METRICS = ("accuracy", "iou", "mse", "mae")

#: The paper's setting, in numbers (paraphrased from its method section).
SETUP = {
    "patients": 49, "test_patients": 5, "volume": 384, "voxel_mm": 0.47,
    "views": (90, 46, 24, 10, 5, 3, 2), "view_spacing_deg": 1.0,
    "back_projection": "sum, scaled to [0, 1]", "ground_truth": "Otsu of the original CT (skull included)",
    "model_parameters": 360_481, "loss": "focal (alpha 0.5, gamma 0.2)", "optimizer": "Adam, lr 1e-3",
    "batch_size": 1, "precision": "mixed", "augmentation": "none", "threshold": 0.5,
}


#: The paper's projections: one every degree, at 0, 1, ..., 89 degrees.
PROJECTIONS: tuple[int, ...] = tuple(range(90))


def view_schedule(n: int) -> np.ndarray:
    """The paper's angles for ``n`` views: the first and last of its 90 projections, the rest evenly sampled.

    The paper renders 90 projections 1 degree apart (:data:`PROJECTIONS`, 0 to 89 degrees)
    and builds each view subset from them, always keeping the first (0 degrees) and the last
    (89 degrees) and sampling the others evenly in between. It does not say how the in-between
    angles are rounded to whole projections; here view ``k`` of ``n`` is the projection
    nearest to ``89 k / (n - 1)`` degrees, exact halves rounded up (computed in integers, so
    no floating-point tie goes astray). Hence 2 views are 0/89, 3 views 0/45/89, 5 views
    0/22/45/67/89, 46 views 2 degrees apart but for one step of 1 (44 to 45), and 90 views
    all of them.

    The study's own schedule, :func:`angio.projection.view_angles`, spaces ``n`` views evenly
    over 0 to 90 degrees inclusive, so that its biplane pair is exactly orthogonal; the
    zoo's models were trained with it.

    Parameters
    ----------
    n : int
        Number of views, 2 to 90 (the paper's counts are :data:`SETUP` ``["views"]``).

    Returns
    -------
    ndarray, shape (n,), float64
        Increasing angles in whole degrees, starting at 0 and ending at 89.

    Raises
    ------
    ValueError
        If ``n`` is not an integer from 2 to 90.
    """
    last = len(PROJECTIONS) - 1
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or not 2 <= n <= len(PROJECTIONS):
        raise ValueError(f"the paper's view subsets hold 2 to {len(PROJECTIONS)} of its projections, got {n!r}")
    n = int(n)
    k = np.arange(n)
    # round(last * k / (n - 1)), halves up: floor((2 * last * k + (n - 1)) / (2 * (n - 1)))
    index = (2 * last * k + (n - 1)) // (2 * (n - 1))
    return np.asarray([PROJECTIONS[i] for i in index], dtype=np.float64)


def beside(ours: dict[str, float], published: dict[str, float | None],
           metrics: tuple[str, ...] = ("iou", "mse", "mae")) -> dict[str, float | None]:
    """One table row: for each metric ``m``, ``m`` (ours), ``paper_m`` and ``diff_m`` (ours - paper).

    Metrics the paper does not report get ``None`` for the paper's value and the difference.
    """
    row: dict[str, float | None] = {}
    for m in metrics:
        mine, theirs = ours.get(m), published.get(m)
        row[m] = mine
        row[f"paper_{m}"] = theirs
        row[f"diff_{m}"] = None if mine is None or theirs is None else mine - theirs
    return row


def table2(ours: Mapping[str, Mapping[str, float]], *, against: str = TABLE2_AUTOENCODER) -> list[dict]:
    """The paper's Table 2 with our rows beside its autoencoder, cell by cell.

    Parameters
    ----------
    ours : mapping of str to mapping of str to float
        ``{label: metrics}``: each of our biplane results, with (some of) the metrics of
        :data:`TABLE2_METRICS` (mean over test cases, against the Otsu target as the paper).
    against : str
        The row of :data:`TABLE2` our rows are compared with.

    Returns
    -------
    list of dict
        First every row of :data:`TABLE2` as published: ``method``, ``source`` (``"quoted by
        the paper"`` for :data:`TABLE2_QUOTED_BY_PAPER`, else ``"paper"``), ``paper_<m>`` the
        published cell and ``<m>`` and ``diff_<m>`` ``None`` (we did not run these). Then one
        row per entry of ``ours``, in its order: ``method`` (the label), ``source`` ``"ours"``
        and the columns of :func:`beside` against the row ``against`` (``diff_<m>`` is ours
        minus the paper's, ``None`` where either is missing).

    Raises
    ------
    KeyError
        If ``against`` is not a row of :data:`TABLE2`.
    """
    if against not in TABLE2:
        raise KeyError(f"{against!r} is not a row of the paper's Table 2; rows: {list(TABLE2)}")
    rows: list[dict] = []
    for name, published in TABLE2.items():
        source = "quoted by the paper" if name in TABLE2_QUOTED_BY_PAPER else "paper"
        rows.append({"method": name, "source": source, **beside({}, published, TABLE2_METRICS)})
    for label, metrics in ours.items():
        rows.append({"method": label, "source": "ours", **beside(dict(metrics), TABLE2[against], TABLE2_METRICS)})
    return rows
