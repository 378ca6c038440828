//! TLS material for SSL listeners: the PEM certificate chain, private key and (for mTLS)
//! client CA files of `[tls]` turned into a rustls `ServerConfig` (ring provider; TLS 1.2
//! and 1.3), a stamp of those files to tell when they were rotated, and the principal of a
//! verified client certificate.
//!
//! Owns: file loading and the rustls configuration. May import: `crate::config`, rustls,
//! x509-parser. Runs on: whichever thread calls it; `load` and `FileStamp::of` read files
//! (blocking), so shards call them through their blocking pool.
//! Invariant: a `TlsMaterial` always holds a complete, consistent configuration (a reload
//! that fails keeps the previous one).

use super::Principal;
use crate::config::{ClientAuth, TlsConfig};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;
use thiserror::Error;

#[derive(Debug, Error)]
pub enum TlsError {
    #[error("tls.cert_file and tls.key_file are required by an SSL listener")]
    MissingFiles,
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {reason}")]
    Pem { path: PathBuf, reason: String },
    #[error("TLS configuration refused: {0}")]
    Rustls(#[from] rustls::Error),
    #[error("client CA file {path}: {reason}")]
    ClientCa { path: PathBuf, reason: String },
}

/// Size, modification time and inode of each TLS file: when any of them changes (a rotated
/// file written in place, or renamed over the old one), the files are loaded again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileStamp(Vec<(u64, Option<SystemTime>, u64)>);

impl FileStamp {
    /// Stats every file of `config`; fails when one cannot be read.
    pub fn of(config: &TlsConfig) -> Result<FileStamp, TlsError> {
        let stamps = files(config)?
            .into_iter()
            .map(|path| {
                let metadata = std::fs::metadata(path).map_err(|source| TlsError::Read {
                    path: path.to_path_buf(),
                    source,
                })?;
                Ok((metadata.len(), metadata.modified().ok(), metadata.ino()))
            })
            .collect::<Result<Vec<_>, TlsError>>()?;
        Ok(FileStamp(stamps))
    }
}

fn files(config: &TlsConfig) -> Result<Vec<&Path>, TlsError> {
    let (Some(cert), Some(key)) = (&config.cert_file, &config.key_file) else {
        return Err(TlsError::MissingFiles);
    };
    let mut files = vec![cert.as_path(), key.as_path()];
    files.extend(config.client_ca_file.as_deref());
    Ok(files)
}

/// A loaded TLS configuration and the stamp of the files it came from.
#[derive(Debug, Clone)]
pub struct TlsMaterial {
    pub server_config: Arc<rustls::ServerConfig>,
    pub stamp: FileStamp,
    /// The leaf certificate's subject, for the logs.
    pub subject: String,
}

fn read_certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let pem = |reason: String| TlsError::Pem {
        path: path.to_path_buf(),
        reason,
    };
    let bytes = std::fs::read(path).map_err(|source| TlsError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let certificates = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| pem(format!("not a PEM certificate file: {e}")))?;
    if certificates.is_empty() {
        return Err(pem("no CERTIFICATE block".to_string()));
    }
    Ok(certificates)
}

fn read_private_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    let bytes = std::fs::read(path).map_err(|source| TlsError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    PrivateKeyDer::from_pem_slice(&bytes).map_err(|e| TlsError::Pem {
        path: path.to_path_buf(),
        reason: format!("no usable private key (PKCS#8, PKCS#1 or SEC1 PEM): {e}"),
    })
}

/// rustls's *ring* provider. Deprecated in rustls 0.23.48 only because it lacks post-quantum
/// key exchange; the aws-lc-rs provider that has it needs a large C/cmake build on every
/// machine that builds shardlog. Clients negotiate X25519/P-256, as with Kafka's JSSE.
#[allow(deprecated)]
fn ring_provider() -> rustls::crypto::CryptoProvider {
    rustls::crypto::ring::default_provider()
}

/// Reads the files of `config` and builds the server configuration. The stamp is taken
/// before reading, so a file rotated while it is read is read again at the next check.
pub fn load(config: &TlsConfig) -> Result<TlsMaterial, TlsError> {
    let stamp = FileStamp::of(config)?;
    let (Some(cert_file), Some(key_file)) = (&config.cert_file, &config.key_file) else {
        return Err(TlsError::MissingFiles);
    };
    let chain = read_certificates(cert_file)?;
    let key = read_private_key(key_file)?;
    let subject = chain
        .first()
        .and_then(|leaf| certificate_subject(leaf))
        .map(|(subject, _)| subject)
        .unwrap_or_default();
    let provider = Arc::new(ring_provider());
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()?;
    let builder = match &config.client_ca_file {
        None => builder.with_no_client_auth(),
        Some(ca_file) => {
            let ca_error = |reason: String| TlsError::ClientCa {
                path: ca_file.clone(),
                reason,
            };
            let mut roots = rustls::RootCertStore::empty();
            for certificate in read_certificates(ca_file)? {
                roots
                    .add(certificate)
                    .map_err(|e| ca_error(e.to_string()))?;
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider);
            let verifier = match config.client_auth {
                ClientAuth::Required => verifier.build(),
                ClientAuth::Requested => verifier.allow_unauthenticated().build(),
            }
            .map_err(|e| ca_error(e.to_string()))?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let server_config = builder.with_single_cert(chain, key)?;
    Ok(TlsMaterial {
        server_config: Arc::new(server_config),
        stamp,
        subject,
    })
}

/// A certificate's subject (RFC 4514 form) and its first common name, if it parses.
pub fn certificate_subject(certificate: &CertificateDer<'_>) -> Option<(String, Option<String>)> {
    let (_, parsed) = x509_parser::parse_x509_certificate(certificate.as_ref()).ok()?;
    let subject = parsed.subject();
    let common_name = subject
        .iter_common_name()
        .next()
        .and_then(|cn| cn.as_str().ok())
        .map(str::to_string);
    Some((subject.to_string(), common_name))
}

/// The principal of a client that presented `certificate` (already verified against the
/// client CA): `User:<CN>` (as Kafka's `ssl.principal.mapping.rules` rule
/// `RULE:^CN=([^,]*).*$/$1/`), or `User:<subject>` for a subject without a CN. Also returns
/// the subject.
pub fn client_principal(certificate: &CertificateDer<'_>) -> Option<(Principal, String)> {
    let (subject, common_name) = certificate_subject(certificate)?;
    let name = common_name.unwrap_or_else(|| subject.clone());
    Some((Principal::user(&name), subject))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(dir: &Path) -> TlsConfig {
        TlsConfig {
            cert_file: Some(dir.join("cert.pem")),
            key_file: Some(dir.join("key.pem")),
            ..TlsConfig::default()
        }
    }

    #[test]
    fn missing_files_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let error = load(&config(dir.path())).unwrap_err().to_string();
        assert!(error.contains("cert.pem"), "{error}");
    }

    #[test]
    fn garbage_files_are_refused_with_the_file_named() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("cert.pem"), b"not a certificate").unwrap();
        std::fs::write(dir.path().join("key.pem"), b"not a key").unwrap();
        let error = load(&config(dir.path())).unwrap_err().to_string();
        assert!(
            error.contains("cert.pem") && error.contains("CERTIFICATE"),
            "{error}"
        );
        let stamp = FileStamp::of(&config(dir.path())).unwrap();
        std::fs::write(dir.path().join("key.pem"), b"another key, longer").unwrap();
        assert_ne!(stamp, FileStamp::of(&config(dir.path())).unwrap());
    }

    #[test]
    fn garbage_der_has_no_subject() {
        assert!(certificate_subject(&CertificateDer::from(vec![0x30, 0x03, 1, 2])).is_none());
        assert!(client_principal(&CertificateDer::from(Vec::new())).is_none());
    }
}
