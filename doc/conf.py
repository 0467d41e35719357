"""Sphinx configuration of the skmeta documentation.

The build that must pass (offline, warnings as errors, nitpicky references)::

    pip install ".[docs]"
    SKMETA_DOC_OFFLINE=1 python -m sphinx -W --keep-going -b html doc doc/_build/html

Add ``-D plot_gallery=0`` to skip running the examples. ``SKMETA_DOC_OFFLINE=1``
builds without network access: the intersphinx inventories are not fetched, and
references to other projects are rendered as plain text. The maths needs no
network either way: MathJax is copied into the build (``sphinx-mathjax-offline``).
"""

import os
import sys
from pathlib import Path

from docutils import nodes
from sphinx.errors import PycodeError
from sphinx.pycode import ModuleAnalyzer

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
    "sphinx-mathjax-offline",
    "sphinx.ext.viewcode",
    "numpydoc",
    "sphinx_gallery.gen_gallery",
]

templates_path = ["_templates"]
exclude_patterns = ["_build", "generated/backreferences", "whats_new/v*.rst"]
root_doc = "index"
default_role = "literal"

autosummary_generate = True

# Every cross-reference must resolve (see the offline exceptions below).
nitpicky = True

# MathJax 3 from the sphinx-mathjax-offline package, copied to _static/mathjax at
# the end of the build: the maths renders without network access.
mathjax_path = "mathjax/tex-chtml.js"

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
# Python modules documented by the projects above, that the docs refer to.
_EXTERNAL_MODULES = [
    "copy",
    "fairlearn",
    "joblib",
    "matplotlib",
    "numpy",
    "pandas",
    "sklearn",
    "skorch",
    "torch",
]
if os.environ.get("SKMETA_DOC_OFFLINE"):
    intersphinx_mapping = {}
    # Without the inventories, references to other projects cannot resolve: they
    # are rendered as plain text, without a warning. skmeta's own must resolve.
    nitpick_ignore_regex = [(r"py:.*", rf"({'|'.join(_EXTERNAL_MODULES)})(\..*)?")]

# Issues of the skmeta tracker: :issue:`2` renders as "#2". Set ISSUES_URL (with
# a "{}" for the number) to link them.
ISSUES_URL = None


def issue_role(name, rawtext, text, lineno, inliner, options=None, content=None):
    """Render ``:issue:`N``` as ``#N``, linked when ``ISSUES_URL`` is set."""
    label = f"#{text}"
    if ISSUES_URL is None:
        return [nodes.inline(rawtext, label)], []
    return [nodes.reference(rawtext, label, refuri=ISSUES_URL.format(text))], []


def public_attribute_docstring(app, what, name, obj, options, lines):
    """Document a public constant with the docstring of its definition.

    autodoc reads the docstring of a module attribute (a string right after the
    assignment) in the module it is documented in, ``skmeta.metrics``, while the
    scorers are defined in a private submodule (``skmeta.metrics._scorers``).
    Without this, their pages show the docstring of their class, or nothing.
    """
    if what != "data" or not name.startswith("skmeta."):
        return
    modname, _, attr = name.rpartition(".")
    for source in sorted(sys.modules):
        if not source.startswith(modname + "."):
            continue
        if getattr(sys.modules[source], attr, None) is not obj:
            continue
        try:
            analyzer = ModuleAnalyzer.for_module(source)
            attr_docs = analyzer.find_attr_docs()
        except PycodeError:
            continue
        if ("", attr) in attr_docs:
            lines[:] = list(attr_docs[("", attr)])
            # Rebuild the page when that module changes.
            app.env.note_dependency(analyzer.srcname)
            return


def hide_empty_section_navigation(app, pagename, templatename, context, doctree):
    """No primary sidebar on pages whose top-level section has no subpages.

    The theme's "Section Navigation" lists the pages under the current top-level
    section (user guide, examples, API reference); on a section without
    subpages (installation, architecture, ...) it would be empty.
    """
    includes = app.env.toctree_includes
    root = app.config.root_doc
    parents = {
        child: parent for parent, children in includes.items() for child in children
    }
    section, seen = pagename, {pagename}
    while parents.get(section, root) not in seen | {root}:
        section = parents[section]
        seen.add(section)
    if not includes.get(section):
        context["sidebars"] = []


def setup(app):
    app.add_role("issue", issue_role)
    # Before numpydoc (priority 500), which formats the docstring's sections.
    app.connect("autodoc-process-docstring", public_attribute_docstring, priority=400)
    app.connect("html-page-context", hide_empty_section_navigation)


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
    # The six top-level sections (installation, user guide, examples, API
    # reference, architecture, what's new) in the header, not under "More"; the
    # links start right after the title, so that they fit on one line at 1280 px.
    "header_links_before_dropdown": 6,
    "navbar_align": "left",
    "navigation_with_keys": False,
    "show_prev_next": False,
    "secondary_sidebar_items": ["page-toc"],
}
html_static_path = ["_static"]
html_css_files = ["skmeta.css"]
