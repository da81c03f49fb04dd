"""Documents generated from an instance: the Personalised Care Plan and the End of Treatment Summary.

Owns: building each document's content (``build``), the HTML templates and the English and
Swedish wording (``templates/``, ``locales/``), and the warning-signs catalogue per diagnosis
(``warning_signs``).

May import: ``engine.instances`` (to read an instance), ``engine.careplan``, ``engine.rules``,
``engine.db`` and the shared modules. Nothing imports ``documents`` except the facade's callers.
"""
