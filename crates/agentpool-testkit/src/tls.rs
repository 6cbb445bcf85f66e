//! Test certificates: a fresh CA per test and a server certificate it signs for 127.0.0.1 and
//! localhost, written as PEM files. Generated in-process (rcgen), so no openssl is needed.

use std::path::{Path, PathBuf};

use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};

/// PEM files of a CA and of a server certificate it signed.
#[derive(Debug, Clone)]
pub struct TestCerts {
    /// The CA certificate: what clients trust.
    pub ca_file: PathBuf,
    /// The server's certificate, valid for `127.0.0.1` and `localhost`.
    pub cert_file: PathBuf,
    /// The server's private key.
    pub key_file: PathBuf,
}

impl TestCerts {
    /// Generates a CA and a server certificate into `dir` (`ca.pem`, `server.pem`,
    /// `server.key`).
    pub fn generate(dir: &Path) -> TestCerts {
        let ca = new_ca("agentpool test CA");
        let key = KeyPair::generate().expect("generate server key");
        let params = CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])
            .expect("server certificate names");
        let cert = params
            .signed_by(&key, &ca)
            .expect("sign server certificate");
        let certs = TestCerts {
            ca_file: dir.join("ca.pem"),
            cert_file: dir.join("server.pem"),
            key_file: dir.join("server.key"),
        };
        write(&certs.ca_file, &ca.pem());
        write(&certs.cert_file, &cert.pem());
        write(&certs.key_file, &key.serialize_pem());
        certs
    }
}

/// Writes the certificate of a CA that signed nothing the tests serve to `path`: a client
/// that trusts only it must refuse every test server.
pub fn unrelated_ca(path: &Path) -> PathBuf {
    write(path, &new_ca("unrelated test CA").pem());
    path.to_owned()
}

fn new_ca(name: &str) -> CertifiedIssuer<'static, KeyPair> {
    let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(DnType::CommonName, name);
    let key = KeyPair::generate().expect("generate CA key");
    CertifiedIssuer::self_signed(params, key).expect("self-sign CA")
}

fn write(path: &Path, pem: &str) {
    std::fs::write(path, pem).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
}
