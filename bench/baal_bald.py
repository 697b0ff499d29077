"""Worker run inside the baal virtual environment: ranks images with baal's BALD heuristic.

Reads lines ``PATH K`` on stdin, where PATH is a ``.npy`` file of member probabilities
``(S, n, C)``; answers each with the ``K`` indices baal ranks first, space-separated.
"""

from __future__ import annotations

import sys

import numpy as np
from baal.active.heuristics import BALD


def main() -> None:
    heuristic = BALD()
    print("ready", flush=True)
    for line in sys.stdin:
        path, k = line.split()
        members = np.load(path)  # (S, n, C); baal wants (n, C, S)
        ranks = heuristic(np.transpose(members, (1, 2, 0)))
        print(" ".join(str(int(i)) for i in ranks[: int(k)]), flush=True)


if __name__ == "__main__":
    main()
