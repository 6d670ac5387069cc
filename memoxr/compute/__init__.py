"""How work runs: the one compute gateway with progress (:mod:`.progress`), the scheduler
context (:mod:`.scheduler`), chunked reductions declared once (:mod:`.reduction`), process
settings for BLAS threads, the allocator and the garbage collector, and what every ``--dry-run`` cost plan shares
(:mod:`.plan`)."""
