"""The Jinja2 templates, loaded from the ``templates`` package wherever it is installed.

The repository's ``templates/`` folder is an importable package whose data ship inside the wheel
(``[tool.setuptools.package-data]``): ``emails/`` for ``adapters.mailer``, ``ops/`` for the ops
dashboard. Both are found through the import system, so the image (the wheel installed in
site-packages, run from any directory) renders exactly what the checkout does.
"""

from __future__ import annotations

from jinja2 import Environment, PackageLoader, select_autoescape

#: The package that holds the templates (the repository's ``templates/`` folder).
PACKAGE = "templates"


def loader(folder: str = "") -> PackageLoader:
    """A loader of ``templates/<folder>/``: template names are relative to ``folder``."""
    return PackageLoader(PACKAGE, folder)


def dashboard_environment() -> Environment:
    """The ops dashboard's templates (``templates/ops``), ``.html`` autoescaped as Starlette's default is."""
    return Environment(loader=loader("ops"), autoescape=select_autoescape())
