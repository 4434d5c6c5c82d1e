"""recsys_utils: the package behind the notebooks.

Notebooks stay narrative; the work lives here, one module per concern
(see the README's "Package map").
"""

__version__ = "0.1.0"
