"""Pathways as authors write them: diagrams, the files they name, versions and validation.

Owns: reading diagrams from the modellers' dialects (``diagrams``), the bundle a diagram's files
resolve in (``bundle``: never outside it), a pathway's sources and version hash and compiling them
(``sources``), a pathway's start contract (``start_schema``: the JSON Schema of its start data, one of
its files), deploying versions and listing them (``versions``), and ``carepath validate``
(``validation``).

May import: SpiffWorkflow's parser, lxml, jsonschema, ``engine.expressions`` (to lint), ``engine.decisions`` (to
read and translate decision tables), ``engine.spiff``
(to store compiled specs), ``engine.db``, ``engine.four_eyes`` (a second author activates a version) and
the shared modules. Never ``instances``.
"""
