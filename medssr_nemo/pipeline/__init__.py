"""``medssr run``: the whole MedSSR recipe (real data -> synthesis -> pseudo-labels -> stage 1 ->
stage 2 -> evaluation -> report) in one resumable run directory. ``steps`` defines the steps,
``runner`` decides what to skip, resume or redo, ``manifest`` is what the directory remembers,
``report``/``figures`` write the report, ``sweep`` runs one pipeline per rare ratio α."""
