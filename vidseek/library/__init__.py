"""What joins the runtime (``vidseek.engine``) and the storage (``vidseek.index``): model resolution
(``models``), the indexer (folder -> index), the searcher (query -> moments), the checks of
``vidseek doctor``, and the public Python API, ``Index`` (``api``). The CLI is a thin shell over it."""

# Clips the head grounds per search (``--candidates``). 20 against the former 50 on a held-out
# world of 160 videos (600 test sentences): VCMR-true R1@0.5 71.0 vs 70.5, R10@0.5 87.5 vs 87.5;
# p50 at 1k videos 15.6 vs 30.5 ms (docs/benchmarks.md, "Fewer candidates").
CANDIDATES = 20
