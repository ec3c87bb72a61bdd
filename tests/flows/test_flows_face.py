"""The flows package's face (``patchwire.flows``) offers every model of the flow format
(``flows/spec.py``), so code building or reading flows needs no deeper import."""

from __future__ import annotations

import patchwire.flows
from patchwire.flows import spec


def test_the_flows_face_exports_every_model_of_the_flow_format() -> None:
    missing = sorted(set(spec.__all__) - set(patchwire.flows.__all__))

    assert missing == []
    for name in spec.__all__:
        assert getattr(patchwire.flows, name) is getattr(spec, name)
    assert patchwire.flows.Limits(expression_timeout=2).expression_timeout == 2
