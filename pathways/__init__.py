"""The bundled pathways, installed as the package ``carepath_content.pathways``.

This file only makes the folder a package: pyproject.toml maps it in place, so a wheel carries the
diagrams and forms, and :mod:`engine.settings` finds them with ``importlib.resources``.
"""
