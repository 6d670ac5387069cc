"""Where data lives and what it must look like.

A path or URL with its options, resolved once (:mod:`.location`); one npy array and npz archives
read without unpickling (:mod:`.npy`, :mod:`.npz`), a source file's sha256, also on a thread of
its own (:mod:`.checksum`); Zarr stores and files written complete or
absent, with the completion marker (:mod:`.storage`); a local store opened without zarr-python
(:mod:`.local_zarr`) and its float chunks read straight from their files (:mod:`.direct_chunks`); store schemas and their checks
(:mod:`.schema`), encodings (:mod:`.encoding`) and chunk plans (:mod:`.chunks`); sample identity
across orders (:mod:`.sample_order`). Imports only from :mod:`memoxr.compute` and the foundation.
"""
