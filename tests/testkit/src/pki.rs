//! A test CA and a certificate for `localhost`/`127.0.0.1` that it signed, as PEM files, for TLS servers
//! started by tests (rustls refuses a self-signed certificate used as its own CA, so the leaf is signed by
//! a separate CA that clients are told to trust).

use std::path::PathBuf;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use tempfile::TempDir;

pub struct TestPki {
    /// The CA certificate, for clients to trust.
    pub ca_pem: String,
    /// The leaf certificate followed by the CA's: the server's chain.
    pub cert_path: PathBuf,
    pub key_path: PathBuf,
    _dir: TempDir,
}

/// Makes a CA named `ca_name` and a leaf for `localhost` and `127.0.0.1`, written to a temporary folder
/// that lives as long as the returned value.
pub fn make_pki(ca_name: &str) -> TestPki {
    let dir = tempfile::tempdir().expect("temp dir");
    let ca_key = KeyPair::generate().expect("CA key");
    let mut ca = CertificateParams::new(Vec::<String>::new()).expect("CA params");
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name.push(DnType::CommonName, ca_name);
    ca.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let ca_cert = ca.self_signed(&ca_key).expect("CA certificate");
    let issuer = Issuer::new(ca, ca_key);
    let leaf_key = KeyPair::generate().expect("leaf key");
    let mut leaf = CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
        .expect("leaf params");
    leaf.distinguished_name
        .push(DnType::CommonName, "localhost");
    leaf.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    leaf.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let leaf_cert = leaf
        .signed_by(&leaf_key, &issuer)
        .expect("leaf certificate");
    let cert_path = dir.path().join("server-chain.pem");
    let key_path = dir.path().join("server-key.pem");
    std::fs::write(&cert_path, format!("{}{}", leaf_cert.pem(), ca_cert.pem()))
        .expect("write cert");
    std::fs::write(&key_path, leaf_key.serialize_pem()).expect("write key");
    TestPki {
        ca_pem: ca_cert.pem(),
        cert_path,
        key_path,
        _dir: dir,
    }
}
