"""The bundled rule sets and catalogues, installed as the package ``carepath_content.rules``.

This file only makes the folder a package: pyproject.toml maps it in place, so a wheel carries the
rules, and :mod:`engine.settings` finds them with ``importlib.resources``.
"""
