"""Analysis apart from training: benchmarks, head comparisons, attention maps, the colour-only floor.

Depends on ``models`` and ``engine``; nothing in ``engine`` depends on it.
"""
