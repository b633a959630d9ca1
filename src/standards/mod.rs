//! Consent standards (`docs/standards.md`): IAB TCF v2.2 TC strings and GPP strings read into
//! consent statements ([`signals`]), consent records written as ISO/IEC TS 27560 JSON-LD with
//! W3C DPV terms ([`iso27560`]). The vocabulary both are checked against is the policy's
//! (`crate::policy::vocabulary`): the policy names DPV terms, and stays a leaf module.

pub mod iso27560;
pub mod signals;
pub mod tcf;
