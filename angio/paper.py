"""Numbers quoted from Wu et al. (ISVC 2023), for side-by-side display only.

Wu, Kaneko, Mendoza, Liebeskind, Scalzo. "3D Reconstruction from 2D Cerebral Angiograms as
a Volumetric Denoising Problem". Advances in Visual Computing (ISVC 2023), LNCS 14361,
doi:10.1007/978-3-031-47969-4_30.

Only values this project could verify are filled in; the rest of the paper's tables (MSE,
MAE and accuracy per view count, the cGAN rows) are behind the publisher's paywall and are
left as ``None`` rather than guessed. Nothing here was re-run: these are the paper's own
numbers on its private 49-patient CTA data set.
"""

from __future__ import annotations

__all__ = ["CITATION", "TABLE1_IOU", "TABLE2_NOTE", "quoted_table1"]

CITATION = ("Wu, Kaneko, Mendoza, Liebeskind, Scalzo. 3D Reconstruction from 2D Cerebral "
            "Angiograms as a Volumetric Denoising Problem. ISVC 2023, LNCS 14361. "
            "doi:10.1007/978-3-031-47969-4_30")

#: Table 1, IoU (%) of the denoising autoencoder per number of views (known entries only).
TABLE1_IOU: dict[int, float | None] = {90: 56.8, 46: None, 24: None, 10: None, 5: None, 3: None, 2: 26.8}

#: What the abstract says about Table 2 (biplane: cGAN, L1 + cGAN, and the autoencoder).
TABLE2_NOTE = ("The paper's autoencoder outperformed the generative (cGAN) models in biplane "
               "reconstruction by 15.51% IoU and 3.5% pixel accuracy (abstract); its biplane "
               "IoU is 26.8% (Table 1, 2 views).")


def quoted_table1() -> list[dict]:
    """Rows ``{"views": n, "paper_iou_pct": value or None}`` in the paper's order."""
    return [{"views": n, "paper_iou_pct": v} for n, v in TABLE1_IOU.items()]
