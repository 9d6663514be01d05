"""Sphinx configuration of the nanodomains documentation site.

The site is built with Sphinx + numpydoc (API reference from the docstrings) + MyST-NB
(the Markdown pages of ``docs/`` as they are, and the tutorials as MyST text notebooks
executed at build time). One command builds it, with warnings as errors::

    pip install -e ".[docs]" && python -m sphinx -W --keep-going -b html docs docs/_build/html

``tests/test_docs_site.py`` runs the same build in a temporary folder and checks every
internal link of the result.
"""

from __future__ import annotations

import inspect
import os
import sys
from pathlib import Path

from docutils import nodes
from sphinx import addnodes

DOCS = Path(__file__).resolve().parent
REPO = DOCS.parent
# the worktree's sources first, so the API reference documents this checkout even when
# another copy of nanodomains is installed
sys.path.insert(0, str(REPO / "src"))

import nanodomains  # noqa: E402

project = "nanodomains"
author = "the nanodomains developers"
copyright = "the nanodomains developers, BSD-3-Clause"
release = getattr(nanodomains, "__version__", "0.1.0")
version = release

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.mathjax",
    "sphinx.ext.viewcode",
    "numpydoc",
    "myst_nb",  # also registers myst_parser for the plain Markdown pages
]

# ---- sources ---------------------------------------------------------------------------
source_suffix = {".rst": "restructuredtext", ".md": "myst-nb", ".ipynb": "myst-nb"}
root_doc = "index"
exclude_patterns = [
    "_build",
    "**/.ipynb_checkpoints",
    "img/*.py",
    "img/*.json",
    "img/*.jsonl",
    "figures/*.py",
    "Thumbs.db",
    ".DS_Store",
]
templates_path = ["_templates"]

# ---- MyST (Markdown pages) -------------------------------------------------------------
myst_enable_extensions = ["dollarmath", "amsmath", "colon_fence", "deflist"]
# [text](page.md#a-heading) links of the pages (as GitHub renders them) resolve on the site
myst_heading_anchors = 4

# ---- MyST-NB (the tutorials in docs/tutorials/, jupytext "myst" text notebooks) ---------
# Executed at every build whose notebook code changed (cache keyed on the code cells);
# an error in a cell fails the build.
nb_execution_mode = os.environ.get("NANODOMAINS_DOCS_EXECUTION", "cache")
nb_execution_cache_path = str(DOCS / "_build" / ".jupyter_cache")
nb_execution_raise_on_error = True
nb_execution_show_tb = True
nb_execution_timeout = 1800  # seconds per cell: real files, posterior sampling
nb_execution_excludepatterns = []
nb_merge_streams = True

# ---- API reference (autosummary stubs generated into docs/api/generated/) ---------------
autosummary_generate = True
autosummary_imported_members = False
autosummary_ignore_module_all = True  # list submodules and own members, not re-exports
autodoc_default_options = {"members": True, "show-inheritance": True, "ignore-module-all": True}
autodoc_typehints = "none"  # numpydoc's Parameters sections carry the types
autodoc_member_order = "bysource"
autoclass_content = "class"
numpydoc_show_class_members = False  # autosummary's class template lists them once
numpydoc_class_members_toctree = False
numpydoc_attributes_as_param_list = True
numpydoc_xref_param_type = False
numpydoc_validation_checks: set[str] = set()

# ---- HTML ------------------------------------------------------------------------------
html_theme = "pydata_sphinx_theme"
html_title = "nanodomains"
html_static_path: list[str] = []
html_theme_options = {
    "navigation_with_keys": False,
    "header_links_before_dropdown": 4,
    "show_toc_level": 2,
    "secondary_sidebar_items": ["page-toc"],
}
html_show_sourcelink = False

# Links from the Markdown pages to repository files that are not pages of the site
# (``../src/...``, ``../benchmarks/...``, ``../tests/...``) point to the repository
# browser when NANODOMAINS_REPO_URL is set (e.g. https://github.com/ORG/nanodomains/blob/main),
# else they are rendered as the literal path; links to ``../README.md`` go to the landing
# page, which includes the README. On GitHub the same links work unchanged.
repo_blob_url = os.environ.get("NANODOMAINS_REPO_URL", "").rstrip("/")


def _repository_path(node, docname: str) -> str | None:
    """The repository-relative path a MyST link leaves ``docs/`` for, else None."""
    target = node.get("reftarget", "")
    if node.get("reftype") != "myst" or not target or "://" in target:
        return None
    if os.path.isabs(target):  # MyST's doc references carry an absolute path, no suffix
        path = Path(target)
    else:
        path = (DOCS / docname).parent / target
    path = Path(os.path.normpath(path))
    if path == DOCS or DOCS in path.parents or REPO not in path.parents:
        return None
    relative = path.relative_to(REPO).as_posix()
    if not path.exists() and path.with_suffix(".md").is_file():
        relative += ".md"
    return relative + ("/" if target.endswith("/") else "")


def _rewrite_repository_links(app, doctree) -> None:
    """Resolve links from pages to repository files outside docs/ (see above)."""
    docname = app.env.docname
    for node in list(doctree.findall(lambda n: isinstance(
            n, (addnodes.pending_xref, addnodes.download_reference)))):
        repo_path = _repository_path(node, docname)
        if repo_path is None:
            continue
        text = node.astext()
        if repo_path == "README.md":
            node["refdomain"], node["reftarget"] = "doc", "index"
            continue
        if repo_blob_url:
            new = nodes.reference("", "", nodes.Text(text), refuri=f"{repo_blob_url}/{repo_path}")
        elif text.strip("`./") == repo_path.strip("./") or text.endswith(repo_path):
            new = nodes.literal(repo_path, repo_path)
        else:
            new = nodes.inline("", "", nodes.Text(f"{text} ("), nodes.literal(repo_path, repo_path),
                               nodes.Text(")"))
        node.replace_self(new)


def _skip_foreign_members(app, what, name, obj, skip, options):
    """Skip classes and functions a module imported from another package (scipy's
    cKDTree...): autodoc would otherwise load them before its own imported-member check."""
    if what == "module" and (inspect.isclass(obj) or inspect.isroutine(obj)):
        module = getattr(obj, "__module__", None)
        if isinstance(module, str) and module.split(".")[0] != "nanodomains":
            return True
    return None


def setup(app):
    app.connect("doctree-read", _rewrite_repository_links, priority=100)
    app.connect("autodoc-skip-member", _skip_foreign_members)
    return {"parallel_read_safe": True}
