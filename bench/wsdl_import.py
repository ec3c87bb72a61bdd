"""WSDL import time: the public WSDLs kept as test data, and a generated large one.

Each document is imported from a fresh copy (so zeep parses it, nothing cached) ``rounds``
times; the median and the best are reported, with the actions made. ``--wsdl PATH`` adds
any other WSDL (e.g. Salesforce's partner or tooling WSDL, whose terms keep them out of
this repository). The generated WSDL has
``--operations`` document/literal operations, each with its own request type (ten fields:
strings, numbers, a date, an enumeration, an optional repeated nested type) — the shape of
a large ERP or telephony service description. Ends with one JSON line.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import tempfile
import time
from pathlib import Path

from patchwire.connectors.wsdl import import_wsdl

PUBLIC = Path(__file__).resolve().parents[1] / "tests" / "conformance" / "wsdl"


def generated_wsdl(operations: int) -> str:
    types, messages, port_ops, binding_ops = [], [], [], []
    types.append('<xs:simpleType name="Status"><xs:restriction base="xs:string">'
                 + "".join(f'<xs:enumeration value="s{i}"/>' for i in range(8))
                 + "</xs:restriction></xs:simpleType>"
                 '<xs:complexType name="Address"><xs:sequence>'
                 '<xs:element name="street" type="xs:string"/>'
                 '<xs:element name="city" type="xs:string"/>'
                 '<xs:element name="zip" type="xs:string" minOccurs="0"/>'
                 "</xs:sequence></xs:complexType>")
    for i in range(operations):
        types.append(
            f'<xs:element name="Op{i}"><xs:complexType><xs:sequence>'
            '<xs:element name="id" type="xs:string"/>'
            '<xs:element name="count" type="xs:int"/>'
            '<xs:element name="amount" type="xs:decimal" minOccurs="0"/>'
            '<xs:element name="since" type="xs:date" minOccurs="0"/>'
            '<xs:element name="status" type="tns:Status"/>'
            '<xs:element name="flag" type="xs:boolean" minOccurs="0"/>'
            '<xs:element name="note" type="xs:string" minOccurs="0"/>'
            '<xs:element name="tags" type="xs:string" minOccurs="0" maxOccurs="unbounded"/>'
            '<xs:element name="address" type="tns:Address" minOccurs="0" maxOccurs="3"/>'
            '<xs:element name="limit" type="xs:long" minOccurs="0"/>'
            f"</xs:sequence></xs:complexType></xs:element>"
            f'<xs:element name="Op{i}Response"><xs:complexType><xs:sequence>'
            '<xs:element name="ok" type="xs:boolean"/></xs:sequence></xs:complexType>'
            "</xs:element>")
        messages.append(f'<message name="Op{i}In"><part name="parameters" element="tns:Op{i}"/>'
                        f'</message><message name="Op{i}Out"><part name="parameters" '
                        f'element="tns:Op{i}Response"/></message>')
        port_ops.append(f'<operation name="Op{i}"><documentation>Operation {i}.</documentation>'
                        f'<input message="tns:Op{i}In"/><output message="tns:Op{i}Out"/>'
                        "</operation>")
        binding_ops.append(f'<operation name="Op{i}"><soap:operation soapAction="urn:op{i}"/>'
                           '<input><soap:body use="literal"/></input>'
                           '<output><soap:body use="literal"/></output></operation>')
    return ('<?xml version="1.0"?><definitions xmlns="http://schemas.xmlsoap.org/wsdl/" '
            'xmlns:soap="http://schemas.xmlsoap.org/wsdl/soap/" '
            'xmlns:xs="http://www.w3.org/2001/XMLSchema" xmlns:tns="urn:big" '
            'targetNamespace="urn:big"><types><xs:schema targetNamespace="urn:big" '
            f'elementFormDefault="qualified">{"".join(types)}</xs:schema></types>'
            f'{"".join(messages)}<portType name="PT">{"".join(port_ops)}</portType>'
            '<binding name="B" type="tns:PT"><soap:binding style="document" '
            f'transport="http://schemas.xmlsoap.org/soap/http"/>{"".join(binding_ops)}'
            '</binding><service name="Big"><port name="P" binding="tns:B">'
            '<soap:address location="https://erp.example.com/soap"/></port></service>'
            "</definitions>")


def measure(source: Path, rounds: int) -> dict[str, object]:
    times, actions = [], 0
    for n in range(rounds):
        with tempfile.TemporaryDirectory() as tmp:
            # a fresh copy of the WSDL's directory: a new file version, parsed afresh
            folder = Path(tmp) / str(n)
            shutil.copytree(source.parent, folder)
            copy = folder / source.name
            started = time.perf_counter()
            result = import_wsdl(copy)
            times.append(time.perf_counter() - started)
            actions = len(result.connector.actions)
    return {"file": source.name, "bytes": source.stat().st_size, "actions": actions,
            "median_s": round(statistics.median(times), 4), "best_s": round(min(times), 4)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--operations", type=int, default=1000)
    parser.add_argument("--wsdl", type=Path, action="append", default=[],
                        help="also measure this WSDL (with what it includes beside it)")
    args = parser.parse_args()
    results = [measure(p, args.rounds) for p in sorted(PUBLIC.glob("*.wsdl"))]
    extra = [measure(p, args.rounds) for p in args.wsdl]
    with tempfile.TemporaryDirectory() as tmp:
        big = Path(tmp) / f"generated-{args.operations}-operations.wsdl"
        big.write_text(generated_wsdl(args.operations), encoding="utf-8")
        results.append(measure(big, max(1, args.rounds // 2)))
    for r in [*results, *extra]:
        print(f"{r['file']}: {r['bytes']} bytes, {r['actions']} actions, "
              f"median {r['median_s']} s, best {r['best_s']} s")
    largest_public = max((r for r in results[:-1]), key=lambda r: int(str(r["bytes"])))
    print(json.dumps({"benchmark": "wsdl_import", "largest_public": largest_public,
                      "generated": results[-1], "extra": extra, "all": results}))


if __name__ == "__main__":
    main()
