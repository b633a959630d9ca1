//! What the policy says about consent standards (`docs/standards.md`): who the controller is,
//! how purposes, legal bases and data categories map to W3C DPV terms, how IAB TCF v2.2 and GPP
//! signals map onto purposes, and the Global Privacy Control statement.

use std::collections::BTreeMap;

use chrono::NaiveDate;
use serde::Serialize;

use super::{CategoryId, LegalBasis, PurposeId};

/// The consent standards a policy declares (all optional; absent tables turn the feature off).
#[derive(Debug, Clone, Default, Serialize, utoipa::ToSchema)]
pub struct Standards {
    /// The controller, as consent records name it (`[controller]`); ISO/IEC TS 27560 records
    /// and the DPV record of processing need it.
    pub controller: Option<Controller>,
    /// DPV terms of purposes, legal bases and data categories (`[dpv]`).
    pub dpv: Dpv,
    /// How a TCF v2.2 TC string maps onto purposes (`[tcf]`).
    pub tcf: Option<TcfMapping>,
    /// How a GPP string's US opt-outs map onto purposes (`[gpp]`).
    pub gpp: Option<GppMapping>,
    /// The GPC support resource (`[gpc]`), served at `/.well-known/gpc.json`.
    pub gpc: Option<GpcStatement>,
}

/// The data controller.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Controller {
    /// Its legal name.
    pub name: String,
    /// Its IRI (an https URL), its identifier in records.
    pub id: String,
    /// Where it is reached for privacy matters.
    pub email: String,
    /// Its postal address.
    pub address: String,
    /// Where a person changes or withdraws consent.
    pub consent_url: String,
    /// Where a person exercises their rights.
    pub rights_url: String,
    /// The jurisdiction whose law applies (e.g. `European Union`).
    pub jurisdiction: String,
}

/// DPV terms for the policy's own names, every one defined by the embedded vocabulary.
#[derive(Debug, Clone, Default, Serialize, utoipa::ToSchema)]
pub struct Dpv {
    /// DPV purposes per purpose, resolved: a purpose without its own list has its parent's.
    #[schema(value_type = Object)]
    pub purposes: BTreeMap<PurposeId, Vec<String>>,
    /// The DPV/GDPR legal basis per legal basis (GDPR Art. 6(1) unless the policy says else).
    #[schema(value_type = Object)]
    pub legal_bases: BTreeMap<String, Vec<String>>,
    /// DPV personal data categories per declared field category.
    #[schema(value_type = Object)]
    pub categories: BTreeMap<CategoryId, Vec<String>>,
}

impl Dpv {
    /// The DPV terms of a legal basis.
    pub fn legal_basis(&self, basis: LegalBasis) -> Vec<String> {
        self.legal_bases
            .get(basis.as_str())
            .cloned()
            .unwrap_or_else(|| vec![default_legal_basis(basis).to_owned()])
    }
}

/// GDPR Art. 6(1) in DPV's EU GDPR extension.
pub fn default_legal_basis(basis: LegalBasis) -> &'static str {
    match basis {
        LegalBasis::Consent => "eu-gdpr:A6-1-a",
        LegalBasis::Contract => "eu-gdpr:A6-1-b",
        LegalBasis::LegalObligation => "eu-gdpr:A6-1-c",
        LegalBasis::VitalInterests => "eu-gdpr:A6-1-d",
        LegalBasis::PublicTask => "eu-gdpr:A6-1-e",
        LegalBasis::LegitimateInterest => "eu-gdpr:A6-1-f",
    }
}

/// TCF v2.2: which TCF purposes and special features stand for which policy purposes, and
/// whose consent counts.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct TcfMapping {
    /// The controller's own vendor id in the Global Vendor List: a purpose counts as consented
    /// when the string consents to it, to this vendor, and no publisher restriction forbids it.
    /// Absent: the controller is the publisher, and the publisher TC segment decides.
    pub vendor_id: Option<u16>,
    /// Policy purposes per TCF purpose (1–11).
    #[schema(value_type = Object)]
    pub purposes: BTreeMap<u8, Vec<PurposeId>>,
    /// Policy purposes per special feature (1–2), opted into.
    #[schema(value_type = Object)]
    pub special_features: BTreeMap<u8, Vec<PurposeId>>,
    /// The oldest TCF policy version accepted (4: TCF v2.2).
    pub min_policy_version: u16,
    /// The oldest `LastUpdated` accepted, in days (TCF asks CMPs to re-ask after 13 months).
    pub max_age_days: u32,
}

/// GPP: which policy purposes a US section's opt-outs withdraw.
#[derive(Debug, Clone, Default, Serialize, utoipa::ToSchema)]
pub struct GppMapping {
    /// Withdrawn when the person opted out of the sale of personal data.
    #[schema(value_type = Vec<String>)]
    pub sale: Vec<PurposeId>,
    /// Withdrawn when the person opted out of sharing (cross-context behavioural advertising).
    #[schema(value_type = Vec<String>)]
    pub sharing: Vec<PurposeId>,
    /// Withdrawn when the person opted out of targeted advertising.
    #[schema(value_type = Vec<String>)]
    pub targeted_advertising: Vec<PurposeId>,
}

/// The GPC support resource (GPC specification, section 3.4).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct GpcStatement {
    /// When the controller last changed how it honours GPC.
    #[schema(value_type = String)]
    pub last_update: NaiveDate,
}
