"""Running the project: the papermill pipeline runner and the book build.
"""
