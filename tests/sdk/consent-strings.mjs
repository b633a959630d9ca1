// Encodes consent strings with the IAB Tech Lab's own libraries, for tests/api/standards.rs.
// Usage: node consent-strings.mjs '<spec json>'; prints {"tcf": "...", "gpp": "..."}.
//
// spec.tcf: { purposes: [..], vendors: [..], specialFeatures: [..], publisherPurposes: [..],
//             restrictions: [{purpose, type, vendor}], policyVersion, cmpId }
// spec.gpp: { sections: { usnat: {SaleOptOut: 1, ...}, usca: {...} }, tcfeuv2: true }
import { readFileSync } from "node:fs";
import { GVL, TCModel, TCString, PurposeRestriction } from "@iabtechlabtcf/core";
import { GppModel } from "@iabgpp/cmpapi";

const spec = JSON.parse(process.argv[2]);
const here = new URL(".", import.meta.url).pathname;
const out = {};

function tcString(tcf) {
  const gvl = new GVL(JSON.parse(readFileSync(here + "vendor-list.json", "utf8")));
  const model = new TCModel(gvl);
  model.cmpId = tcf.cmpId ?? 10;
  model.cmpVersion = 1;
  model.consentLanguage = "EN";
  model.publisherCountryCode = "DE";
  model.isServiceSpecific = true;
  if (tcf.policyVersion !== undefined) model.policyVersion = tcf.policyVersion;
  model.purposeConsents.set(tcf.purposes ?? []);
  model.vendorConsents.set(tcf.vendors ?? []);
  model.specialFeatureOptins.set(tcf.specialFeatures ?? []);
  model.publisherConsents.set(tcf.publisherPurposes ?? []);
  for (const r of tcf.restrictions ?? []) {
    model.publisherRestrictions.add(r.vendor, new PurposeRestriction(r.purpose, r.type));
  }
  return TCString.encode(model);
}

if (spec.tcf) out.tcf = tcString(spec.tcf);
if (spec.gpp) {
  const gpp = new GppModel();
  for (const [section, fields] of Object.entries(spec.gpp.sections ?? {})) {
    for (const [field, value] of Object.entries(fields)) gpp.setFieldValue(section, field, value);
  }
  if (spec.gpp.tcfeuv2) gpp.decodeSection("tcfeuv2", tcString(spec.gpp.tcfeuv2));
  out.gpp = gpp.encode();
}
console.log(JSON.stringify(out));
