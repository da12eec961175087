"""What joins the runtime (``vidseek.engine``) and the storage (``vidseek.index``): model resolution
(``models``), the indexer (folder -> index), the searcher (query -> moments), the checks of
``vidseek doctor``, and the public Python API, ``Index`` (``api``). The CLI is a thin shell over it."""
