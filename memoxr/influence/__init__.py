"""Feldman–Zhang influence data: opening stores and npz (:mod:`.sources`), the score kernels
(:mod:`.kernels`), the lazy scores (:mod:`.scores`), the per-class table (:mod:`.stats`), the
analyses (:mod:`.analysis`), high-influence pairs (:mod:`.pairs`),
the FZ npz layout (:mod:`.fz_npz`), the seed's scores npz (:mod:`.seed_npz`) and the
``--dry-run`` plans (:mod:`.plan`)."""

from . import accessor as _accessor  # noqa: F401  (registers Dataset.memoxr with any influence module)
