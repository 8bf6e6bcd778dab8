"""Sphinx configuration for the xpnet documentation.

Built by ``nox -s docs`` (HTML with warnings as errors, then every example run by the doctest
builder). The pictures under ``images/mnist`` come from a real training run on MNIST;
``scripts/make-doc-images.sh`` regenerates them.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

DOCS = Path(__file__).resolve().parent
sys.path.insert(0, str(DOCS.parent / "src"))

import xpnet  # noqa: E402

project = "xpnet"
author = "xpnet maintainers"
copyright = "2026, xpnet maintainers"
release = xpnet.__version__
version = release

extensions = [
    "myst_parser",
    "numpydoc",
    "sphinx.ext.autodoc",
    "sphinx.ext.doctest",
    "sphinx.ext.intersphinx",
    "sphinx.ext.viewcode",
]

source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
root_doc = "index"
exclude_patterns = ["_build", "README.md"]
language = "en"

myst_enable_extensions = ["colon_fence", "deflist"]
myst_heading_anchors = 3

# Every public name is documented from its docstring; the module's __all__ says which.
autodoc_default_options = {"member-order": "bysource"}
autodoc_typehints = "none"  # numpydoc's Parameters sections already carry the types
numpydoc_show_class_members = False
numpydoc_xref_param_type = False
numpydoc_validation_checks: set[str] = set()

intersphinx_mapping = {
    "python": ("https://docs.python.org/3", None),
    "numpy": ("https://numpy.org/doc/stable", None),
}
# The docs build must not depend on the network (CI machines may have none).
if os.environ.get("XPNET_DOCS_OFFLINE", "1") == "1":
    intersphinx_mapping = {}

# Doctests: every ``{doctest}`` block in the pages and every ``>>>`` example in a docstring
# runs with these names available, on NumPy, seeded.
doctest_global_setup = """
import numpy as np
import xpnet
import xpnet.functional as F
from xpnet import nn
np.set_printoptions(precision=4, suppress=True)
xpnet.set_backend("numpy")
xpnet.seed(0)
mnist_available = xpnet.data.find_mnist() is not None
strict_available = "array_api_strict" in xpnet.available_backends()
"""
doctest_default_flags = 0
import doctest  # noqa: E402

doctest_default_flags = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE | doctest.DONT_ACCEPT_TRUE_FOR_1

html_theme = "pydata_sphinx_theme"
html_title = f"xpnet {release}"
html_static_path: list[str] = []
html_theme_options = {
    "navigation_with_keys": False,
    "show_toc_level": 2,
    "footer_start": ["copyright"],
    "footer_end": ["sphinx-version"],
}

# Every public name (a module's ``__all__``) must appear in the API reference: a name left
# out is a build warning, so an error under ``-W``.
API_MODULES = [
    ("functional", "xpnet.functional"),
    ("nn", "xpnet.nn"),
    ("nn", "xpnet.nn.init"),
    ("nn", "xpnet.nn.utils"),
    ("optim", "xpnet.optim"),
    ("data", "xpnet.data"),
    ("train", "xpnet.train"),
    ("models", "xpnet.models"),
    ("viz", "xpnet.viz"),
    ("backends", "xpnet.backends"),
    ("config", "xpnet.config"),
    ("testing", "xpnet.testing"),
]
API_EXEMPT = {"xpnet.nn.init", "xpnet.nn.utils", "xpnet.data.transforms"}  # modules, own sections


def _check_api_coverage(app: object, exception: Exception | None) -> None:
    import importlib
    import re

    from sphinx.util import logging

    if exception is not None or getattr(app, "builder").name != "html":
        return
    logger = logging.getLogger(__name__)
    outdir = Path(getattr(app, "outdir"))
    for page, module_name in API_MODULES:
        module = importlib.import_module(module_name)
        html = (outdir / "api" / f"{page}.html").read_text(encoding="utf-8")
        documented = set(re.findall(r'id="([A-Za-z_][\w.]*)"', html))
        for name in module.__all__:
            full = f"{module_name}.{name}"
            if full not in documented and full not in API_EXEMPT:
                logger.warning("API reference: %s is public but not documented", full)


def setup(app: object) -> None:
    getattr(app, "connect")("build-finished", _check_api_coverage)
