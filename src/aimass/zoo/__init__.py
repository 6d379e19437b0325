"""The model library: ready entries from classical ML to deep learning, each a ``train`` job.

Each family module holds ``ENTRIES`` (catalogue entries with their params,
task, default dataset, exports, signature and an example request) and may hold
``DATASETS`` (built-in datasets that need no download). They reach the catalogue
through the ``builtin-zoo`` plugin (:func:`aimass.zoo.families.register`), like
any third-party library would. Importing them loads no ML library: each entry
imports what it needs inside its train function, in the job's process. Must not
import the API or the store.
"""
