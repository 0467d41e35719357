"""Sphinx configuration of the skmeta documentation.

Build with ``python -m sphinx -b html doc doc/_build/html``. Add ``-D
plot_gallery=0`` to skip running the examples. Without network access, set
``SKMETA_DOC_OFFLINE=1``: the intersphinx inventories are not fetched, and
references to other projects are rendered as plain text.
"""

import os
import sys
from pathlib import Path

from docutils import nodes

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import skmeta  # noqa: E402

# -- Project -------------------------------------------------------------------

project = "skmeta"
author = "The skmeta developers"
copyright = "The skmeta developers"
release = skmeta.__version__
version = ".".join(release.split(".")[:2])

# -- General -------------------------------------------------------------------

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.doctest",
    "sphinx.ext.intersphinx",
    "sphinx.ext.mathjax",
    "sphinx.ext.viewcode",
    "numpydoc",
    "sphinx_gallery.gen_gallery",
]

templates_path = ["_templates"]
exclude_patterns = ["_build", "generated/backreferences", "whats_new/v*.rst"]
root_doc = "index"
default_role = "literal"

autosummary_generate = True

# numpydoc renders the docstrings; the class templates list the methods.
numpydoc_show_class_members = False
numpydoc_class_members_toctree = False
numpydoc_attributes_as_param_list = True

# -- Cross-references to other projects ----------------------------------------

intersphinx_mapping = {
    "python": ("https://docs.python.org/3", None),
    "numpy": ("https://numpy.org/doc/stable/", None),
    "pandas": ("https://pandas.pydata.org/docs/", None),
    "sklearn": ("https://scikit-learn.org/stable/", None),
    "skorch": ("https://skorch.readthedocs.io/en/stable/", None),
    "fairlearn": ("https://fairlearn.org/main/", None),
    "torch": ("https://docs.pytorch.org/docs/stable/", None),
    "matplotlib": ("https://matplotlib.org/stable/", None),
    "joblib": ("https://joblib.readthedocs.io/en/stable/", None),
}
if os.environ.get("SKMETA_DOC_OFFLINE"):
    intersphinx_mapping = {}

# Issues of the skmeta tracker: :issue:`2` renders as "#2". Set ISSUES_URL (with
# a "{}" for the number) to link them.
ISSUES_URL = None


def issue_role(name, rawtext, text, lineno, inliner, options=None, content=None):
    """Render ``:issue:`N``` as ``#N``, linked when ``ISSUES_URL`` is set."""
    label = f"#{text}"
    if ISSUES_URL is None:
        return [nodes.inline(rawtext, label)], []
    return [nodes.reference(rawtext, label, refuri=ISSUES_URL.format(text))], []


def setup(app):
    app.add_role("issue", issue_role)


# -- Gallery -------------------------------------------------------------------

sphinx_gallery_conf = {
    "examples_dirs": "../examples",
    "gallery_dirs": "auto_examples",
    "doc_module": "skmeta",
    "backreferences_dir": "generated/backreferences",
    "filename_pattern": r"/plot_",
    "download_all_examples": False,
    "write_computation_times": False,
    "remove_config_comments": True,
}

# -- HTML ----------------------------------------------------------------------

html_theme = "pydata_sphinx_theme"
html_title = f"skmeta {release}"
html_theme_options = {
    "navigation_with_keys": False,
    "show_prev_next": False,
    "secondary_sidebar_items": ["page-toc"],
}
html_static_path = []
