"""Feldman–Zhang influence data: opening stores and npz (:mod:`.sources`), the score kernels
(:mod:`.kernels`), the lazy scores (:mod:`.scores`), the per-class table (:mod:`.stats`), the
analyses (:mod:`.analysis`), high-influence pairs (:mod:`.pairs`), the seed's npz layout
(:mod:`.seed_npz`) and what ``calculate``/``update-csv``/``demo`` do (:mod:`.workflows`)."""
