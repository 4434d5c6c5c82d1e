"""recsys_utils: the package behind the notebooks.

Notebooks stay narrative; the work lives here, in one subpackage per pipeline stage
(``data`` 01, ``explore`` 02, ``rating`` 03, ``ranking`` 04, ``lifecycle`` 05,
``serving``, ``run``; see the README's "Package map", which a test keeps true).
"""

__version__ = "0.1.0"

#: The default random seed of every function that draws; the pipeline passes
#: ``common.seed`` from ``notebooks/params.yaml`` (a test keeps the two equal).
DEFAULT_SEED = 42
