"""Stage 01, raw files to clean tables: readers, catalogs, ratings, the embedded MovieLens,
linking, row accounting, the cleaning step and the ratings store.
"""
