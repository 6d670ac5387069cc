"""How work runs: the one compute gateway with progress (:mod:`.progress`), the scheduler
context (:mod:`.scheduler`), process settings for BLAS threads and the allocator, and the cost
plans of ``--dry-run`` (:mod:`.plan`)."""
