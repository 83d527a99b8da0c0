"""Safe, versioned model artifacts: a folder (model.skops + manifest.json + hashes) and a registry.

store.py      stage a version folder, verify every sha256, load the pipeline with skops
trust.py      the types skops may construct, fixed here and never read from an artifact
refs.py       NAME, NAME:VERSION, NAME@ALIAS: parsing and validation
registry.py   open_registry(): the folder + SQLite registry, or Postgres (index and files)
importer.py   turn an existing skops or (trusted) pickle file into an artifact
"""
