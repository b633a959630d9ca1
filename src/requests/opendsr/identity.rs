//! Who signs and whom we trust: the processor's certificate and private key (configured, or a
//! self-signed development certificate made on first start), and the controllers' certificates
//! when requests must be signed.
//!
//! Signatures are what the specification asks for (FIPS 186-4 over SHA-256, base64): ECDSA
//! P-256 with SHA-256 (ASN.1 DER signature) for the development key; a configured key may also
//! be RSA (PKCS#1 v1.5, SHA-256).

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{anyhow, bail, Context};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use chrono::Utc;
use ring::rand::SystemRandom;
use ring::signature::{self, EcdsaKeyPair, KeyPair, RsaKeyPair, UnparsedPublicKey};

use crate::config::OpenDsrSettings;
use crate::crypto::FieldContext;
use crate::store::opendsr as store;
use crate::store::DbConnection;
use crate::vault::Vault;

/// The name of the stored development identity.
const DEVELOPMENT: &str = "development";

fn sealed_place() -> FieldContext<'static> {
    FieldContext {
        subject: "opendsr",
        record: DEVELOPMENT,
        field: "private_key",
    }
}

enum SigningKey {
    Ecdsa(EcdsaKeyPair),
    Rsa(RsaKeyPair),
}

/// The processor's signing identity.
pub struct ProcessorIdentity {
    domain: String,
    certificate_pem: String,
    key: SigningKey,
    development: bool,
    rng: SystemRandom,
}

impl std::fmt::Debug for ProcessorIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ProcessorIdentity({})", self.domain)
    }
}

/// The DER contents of every PEM block labelled `label` in `text`.
fn pem_blocks(text: &[u8], label: &str) -> Vec<Vec<u8>> {
    x509_parser::pem::Pem::iter_from_buffer(text)
        .filter_map(Result::ok)
        .filter(|pem| pem.label == label)
        .map(|pem| pem.contents)
        .collect()
}

fn parse_key(pkcs8: &[u8], rng: &SystemRandom) -> anyhow::Result<SigningKey> {
    if let Ok(key) =
        EcdsaKeyPair::from_pkcs8(&signature::ECDSA_P256_SHA256_ASN1_SIGNING, pkcs8, rng)
    {
        return Ok(SigningKey::Ecdsa(key));
    }
    RsaKeyPair::from_pkcs8(pkcs8)
        .map(SigningKey::Rsa)
        .map_err(|_| anyhow!("the private key is neither an ECDSA P-256 nor an RSA key in PKCS#8"))
}

/// The public key of `key`, as `x509_parser` reports a certificate's (to check they match).
fn public_key_bytes(key: &SigningKey) -> Vec<u8> {
    match key {
        SigningKey::Ecdsa(pair) => pair.public_key().as_ref().to_vec(),
        SigningKey::Rsa(pair) => pair.public_key().as_ref().to_vec(),
    }
}

fn certificate_key(pem: &[u8]) -> anyhow::Result<Vec<u8>> {
    let der = pem_blocks(pem, "CERTIFICATE")
        .into_iter()
        .next()
        .ok_or_else(|| anyhow!("no CERTIFICATE block"))?;
    let (_, certificate) = x509_parser::parse_x509_certificate(&der)
        .map_err(|_| anyhow!("the certificate cannot be parsed"))?;
    Ok(certificate.public_key().subject_public_key.data.to_vec())
}

impl ProcessorIdentity {
    /// The configured certificate and key, or the development identity (made on first start
    /// and kept in the database, its key sealed under a key derived from the root secret, so
    /// every process and restart signs with the same key).
    pub fn load(
        conn: &mut DbConnection,
        vault: &Vault,
        settings: &OpenDsrSettings,
    ) -> anyhow::Result<ProcessorIdentity> {
        let rng = SystemRandom::new();
        if let Some((certificate_file, key_file)) = &settings.certificate {
            let certificate_pem = std::fs::read_to_string(certificate_file)
                .with_context(|| format!("cannot read {}", certificate_file.display()))?;
            let key_pem = std::fs::read(key_file)
                .with_context(|| format!("cannot read {}", key_file.display()))?;
            let pkcs8 = pem_blocks(&key_pem, "PRIVATE KEY")
                .into_iter()
                .next()
                .ok_or_else(|| anyhow!("{}: no PRIVATE KEY (PKCS#8) block", key_file.display()))?;
            let key = parse_key(&pkcs8, &rng).with_context(|| format!("{}", key_file.display()))?;
            let certified = certificate_key(certificate_pem.as_bytes())
                .with_context(|| format!("{}", certificate_file.display()))?;
            if certified != public_key_bytes(&key) {
                bail!(
                    "{} does not certify the key in {}",
                    certificate_file.display(),
                    key_file.display()
                );
            }
            return Ok(ProcessorIdentity {
                domain: settings.domain.clone(),
                certificate_pem,
                key,
                development: false,
                rng,
            });
        }
        let (certificate_pem, pkcs8) = loop {
            if let Some((certificate_pem, sealed)) = store::find_identity(conn, DEVELOPMENT)? {
                let pkcs8 = vault
                    .requests_key()
                    .decrypt(&sealed_place(), &sealed)
                    .map_err(|_| anyhow!("the stored OpenDSR key cannot be opened"))?;
                break (certificate_pem, pkcs8);
            }
            let (certificate_pem, pkcs8) = development_certificate(&settings.domain)?;
            let sealed = vault.requests_key().encrypt(&sealed_place(), &pkcs8);
            if store::insert_identity(
                conn,
                DEVELOPMENT,
                &certificate_pem,
                &sealed,
                Utc::now().naive_utc(),
            )? {
                break (certificate_pem, pkcs8);
            }
            // Another process stored one first: use theirs.
        };
        let key = parse_key(&pkcs8, &rng)?;
        Ok(ProcessorIdentity {
            domain: settings.domain.clone(),
            certificate_pem,
            key,
            development: true,
            rng,
        })
    }

    /// The domain sent as `X-OpenDSR-Processor-Domain`.
    pub(crate) fn domain(&self) -> &str {
        &self.domain
    }

    /// The certificate, PEM.
    pub(crate) fn certificate_pem(&self) -> &str {
        &self.certificate_pem
    }

    /// Whether this is the self-signed development certificate.
    pub(crate) fn is_development(&self) -> bool {
        self.development
    }

    /// The base64 signature of `bytes` (SHA-256 digest, ECDSA P-256 or RSA PKCS#1 v1.5).
    pub(crate) fn sign(&self, bytes: &[u8]) -> String {
        let signature = match &self.key {
            SigningKey::Ecdsa(pair) => pair
                .sign(&self.rng, bytes)
                .expect("ECDSA signing does not fail")
                .as_ref()
                .to_vec(),
            SigningKey::Rsa(pair) => {
                let mut out = vec![0; pair.public().modulus_len()];
                pair.sign(&signature::RSA_PKCS1_SHA256, &self.rng, bytes, &mut out)
                    .expect("RSA signing does not fail");
                out
            }
        };
        STANDARD.encode(signature)
    }
}

/// A self-signed certificate for `domain` and its key (PKCS#8 DER).
fn development_certificate(domain: &str) -> anyhow::Result<(String, Vec<u8>)> {
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
    let mut params = rcgen::CertificateParams::new(vec![domain.to_owned()])?;
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, domain);
    params.distinguished_name.push(
        rcgen::DnType::OrganizationName,
        "Custodia OpenDSR development certificate (self-signed)",
    );
    let certificate = params.self_signed(&key)?;
    Ok((certificate.pem(), key.serialize_der()))
}

/// A controller's verification key.
#[derive(Debug, Clone)]
struct ControllerKey {
    algorithm: &'static dyn signature::VerificationAlgorithm,
    public_key: Vec<u8>,
}

/// The controllers whose signatures are accepted, by domain (`<domain>.pem` files).
#[derive(Debug, Clone, Default)]
pub struct ControllerKeys {
    keys: BTreeMap<String, ControllerKey>,
}

impl ControllerKeys {
    /// Loads every `<domain>.pem` certificate in `dir`.
    pub fn load(dir: &Path) -> anyhow::Result<ControllerKeys> {
        let mut keys = BTreeMap::new();
        for entry in
            std::fs::read_dir(dir).with_context(|| format!("cannot read {}", dir.display()))?
        {
            let path = entry?.path();
            let Some(domain) = path
                .file_name()
                .and_then(|name| name.to_str())
                .and_then(|name| name.strip_suffix(".pem"))
            else {
                continue;
            };
            let pem = std::fs::read(&path)?;
            let der = pem_blocks(&pem, "CERTIFICATE")
                .into_iter()
                .next()
                .ok_or_else(|| anyhow!("{}: no CERTIFICATE block", path.display()))?;
            let (_, certificate) = x509_parser::parse_x509_certificate(&der)
                .map_err(|_| anyhow!("{}: the certificate cannot be parsed", path.display()))?;
            let spki = certificate.public_key();
            let oid = spki.algorithm.algorithm.to_id_string();
            let algorithm: &'static dyn signature::VerificationAlgorithm = match oid.as_str() {
                // id-ecPublicKey (the curve must be P-256 for ring to accept the point).
                "1.2.840.10045.2.1" => &signature::ECDSA_P256_SHA256_ASN1,
                // rsaEncryption
                "1.2.840.113549.1.1.1" => &signature::RSA_PKCS1_2048_8192_SHA256,
                other => bail!("{}: unsupported key algorithm {other}", path.display()),
            };
            keys.insert(
                domain.to_owned(),
                ControllerKey {
                    algorithm,
                    public_key: spki.subject_public_key.data.to_vec(),
                },
            );
        }
        Ok(ControllerKeys { keys })
    }

    /// Whether `signature` (base64) is `domain`'s signature of `body`.
    pub fn verify(&self, domain: &str, signature: &str, body: &[u8]) -> bool {
        let Some(key) = self.keys.get(domain) else {
            return false;
        };
        let Ok(signature) = STANDARD.decode(signature.trim()) else {
            return false;
        };
        UnparsedPublicKey::new(key.algorithm, &key.public_key)
            .verify(body, &signature)
            .is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_development_signature_verifies_with_the_certificates_key() {
        let (certificate_pem, pkcs8) = development_certificate("processor.example").unwrap();
        let rng = SystemRandom::new();
        let identity = ProcessorIdentity {
            domain: "processor.example".into(),
            key: parse_key(&pkcs8, &rng).unwrap(),
            certificate_pem: certificate_pem.clone(),
            development: true,
            rng,
        };
        let body = br#"{"request_status":"pending"}"#;
        let signature = STANDARD.decode(identity.sign(body)).unwrap();
        let public_key = certificate_key(certificate_pem.as_bytes()).unwrap();
        let key = UnparsedPublicKey::new(&signature::ECDSA_P256_SHA256_ASN1, &public_key);
        assert!(key.verify(body, &signature).is_ok());
        assert!(key.verify(b"{}", &signature).is_err());
        // A controller list holding the same certificate accepts it, and nothing else.
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("controller.example.pem"), &certificate_pem).unwrap();
        let controllers = ControllerKeys::load(dir.path()).unwrap();
        let encoded = identity.sign(body);
        assert!(controllers.verify("controller.example", &encoded, body));
        assert!(!controllers.verify("controller.example", &encoded, b"{}"));
        assert!(!controllers.verify("other.example", &encoded, body));
        assert!(!controllers.verify("controller.example", "not base64!", body));
    }
}
