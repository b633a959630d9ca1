"""Checks JSON-LD that Custodia wrote (an ISO/IEC TS 27560 consent record, or the DPV record of
processing) with rdflib, for tests/api/standards.rs.

Usage: python3 check_jsonld.py <record|ropa> < document.json

Parses the document as JSON-LD (its context is inline: nothing is fetched), then checks that
every IRI in the DPV namespaces it uses is defined by the shipped vocabulary (standards/dpv/*.ttl),
and, for records, that every field DPV's 27560 guide marks mandatory is present on each record.
Prints one problem per line and exits 1 if there is any; prints a summary and exits 0 if not.
"""
import sys
from pathlib import Path

from rdflib import Graph, Namespace, URIRef, BNode
from rdflib.namespace import RDF, DCTERMS

ROOT = Path(__file__).resolve().parents[2]
DPV = Namespace("https://w3id.org/dpv#")
EU = Namespace("https://w3id.org/dpv/legal/eu/gdpr#")
PD = Namespace("https://w3id.org/dpv/pd#")
SCHEMA = Namespace("https://schema.org/")

kind = sys.argv[1]
document = sys.stdin.read()
graph = Graph()
graph.parse(data=document, format="json-ld")
problems = []

vocabulary = Graph()
for name in ("dpv.ttl", "eu-gdpr.ttl", "pd.ttl"):
    vocabulary.parse(ROOT / "standards" / "dpv" / name, format="turtle")
defined = set(vocabulary.subjects())
for term in set(graph.subjects()) | set(graph.predicates()) | set(graph.objects()):
    if isinstance(term, URIRef) and any(str(term).startswith(str(ns)) for ns in (DPV, EU, PD)):
        if term not in defined:
            problems.append(f"undefined DPV term: {term}")


def one(subject, predicate, what):
    values = list(graph.objects(subject, predicate))
    if not values:
        problems.append(f"{subject}: missing {what} ({predicate})")
    return values


if kind == "record":
    records = list(graph.subjects(RDF.type, DPV.ConsentRecord))
    if not records:
        problems.append("no dpv:ConsentRecord in the document")
    for record in records:
        # 8.1 header
        one(record, DCTERMS.conformsTo, "schema version")
        one(record, DCTERMS.identifier, "record identifier")
        one(record, DPV.hasDataSubject, "data subject")
        # 8.2 notice
        for notice in one(record, DPV.hasNotice, "notice"):
            one(notice, DCTERMS.language, "notice language")
        one(record, DCTERMS.language, "notice language")
        # 8.3 processing
        for process in one(record, DPV.hasProcess, "process"):
            one(process, DPV.hasPurpose, "purpose")
            one(process, DPV.hasPersonalData, "personal data")
            one(process, DPV.hasStorageCondition, "storage condition")
            one(process, DPV.hasDataController, "data controller")
            one(process, DPV.hasRecipient, "recipients")
            one(process, DPV.hasConsentControl, "consent change & withdrawal")
            one(process, DPV.hasJurisdiction, "jurisdiction")
            one(process, DPV.hasRight, "rights")
            one(process, DPV.hasLegalBasis, "legal basis")
        # 8.4 entities
        for entity in one(record, DPV.hasEntity, "entity"):
            one(entity, DPV.hasIdentifier, "entity identifier")
            one(entity, RDF.type, "entity role")
            if (entity, RDF.type, DPV.DataSubject) not in graph:
                one(entity, DPV.hasName, "entity name")
                for contact in one(entity, SCHEMA.contactPoint, "entity contact"):
                    one(contact, SCHEMA.address, "entity postal address")
        # 8.5 events
        for event in one(record, DPV.hasConsentStatus, "consent state"):
            one(event, RDF.type, "consent state type")
            one(event, DPV.isIndicatedAtTime, "event time")
            one(event, DPV.hasDuration, "event duration")
            one(event, DPV.isIndicatedBy, "expression by entity")
        one(record, DPV.hasLegalBasis, "consent type")
elif kind == "ropa":
    ropas = list(graph.subjects(RDF.type, DPV.ROPA))
    if len(ropas) != 1:
        problems.append(f"expected one dpv:ROPA, found {len(ropas)}")
    for ropa in ropas:
        for process in one(ropa, DPV.hasProcess, "process"):
            one(process, DPV.hasPurpose, "purpose")
            one(process, DPV.hasLegalBasis, "legal basis")
            one(process, DPV.hasPersonalData, "personal data")
else:
    problems.append(f"unknown kind {kind}")

if problems:
    print("\n".join(sorted(set(problems))))
    sys.exit(1)
print(f"ok: {len(graph)} triples")
