"""Validating what the FHIR API produces against the HL7 FHIR R4 (4.0.1) models of ``fhir.resources`` 6.4.

``fhir.resources`` parses every element, its cardinality, types and choice types, but only records the
codes of required bindings (``enum_values``) without checking them; :func:`problems` checks those too
(where the list is complete), and that every narrative ``div`` is well-formed XHTML.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import fhir.resources
from fhir.resources import construct_fhir_element
from fhir.resources.core.fhirabstractmodel import FHIRAbstractModel
from lxml import etree

assert fhir.resources.__fhir_version__ == "4.0.1", "tests need the FHIR R4 models (fhir.resources 6.4)"


def problems(resource: dict[str, Any]) -> list[str]:
    """Everything in ``resource`` that FHIR R4 does not allow (empty when valid).

    Raises: pydantic.ValidationError when the models refuse it (element names, types, cardinality).
    """
    model = construct_fhir_element(resource["resourceType"], resource)
    return list(_codes(model, resource["resourceType"]))


def _codes(model: FHIRAbstractModel, path: str) -> Iterator[str]:
    for name, field in model.__fields__.items():
        value = getattr(model, name)
        if value is None:
            continue
        allowed = field.field_info.extra.get("enum_values")
        if allowed and "+" in allowed:  # the generator cut a long value set short: not checkable here
            allowed = None
        for index, item in enumerate(value if isinstance(value, list) else [value]):
            where = f"{path}.{field.alias}" + (f"[{index}]" if isinstance(value, list) else "")
            if allowed and isinstance(item, str) and item not in allowed:
                yield f"{where}: {item!r} is not one of {allowed}"
            if field.alias == "div" and isinstance(item, str):
                try:
                    root = etree.fromstring(item.encode())
                except etree.XMLSyntaxError as exc:
                    yield f"{where}: not well-formed XHTML ({exc})"
                else:
                    if root.tag != "{http://www.w3.org/1999/xhtml}div":
                        yield f"{where}: not an XHTML div"
            if isinstance(item, FHIRAbstractModel):
                yield from _codes(item, where)
