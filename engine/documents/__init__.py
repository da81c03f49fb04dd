"""Documents generated from an instance: the Personalised Care Plan and the End of Treatment Summary.

Owns: building each document's content (``build``), why each item was proposed in the reader's words
(``reasons``), the people and services to contact with their numbers (``contacts``, from the
deployment's service directory, ``directory``), rendering to HTML and PDF (``render``, with the
``templates/`` and the English and Swedish wording in ``locales/``), and the safety notice a form
declares (the 24-hour line on the needs checklist, ``notices``), filled with the directory's number for
the API, the web pages and the FHIR Questionnaire. The warning signs it prints come from the rules'
catalogue (``engine.rules.warning_signs``).

May import: ``engine.instances`` (to read an instance), ``engine.careplan``, ``engine.rules``,
``engine.db`` and the shared modules. Nothing imports ``documents`` except the facade's callers and ``engine.fhir``.
"""
