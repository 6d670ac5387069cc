import numpy as np

def average_ranks_into(
    x: np.ndarray,
    keep: np.ndarray,
    n: int,
    within: np.ndarray,
    pooled: np.ndarray | None,
    ordinal: bool,
    centred: bool,
    /,
) -> None: ...
