"""Bottom layer: where data lives and what it must look like.

Store schemas and their checks (:mod:`.schema`), complete-or-absent Zarr and file writes with
the completion marker, fsspec/S3 options (:mod:`.storage`), chunk planning (:mod:`.chunks`) and
sample identity across orders (:mod:`.sample_order`). Imports nothing from the layers above.
"""
