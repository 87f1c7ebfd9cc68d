//! The TLS client configuration: which roots are trusted.
//!
//! The OS store comes first, because that is where an IT department puts
//! the CA of a TLS-inspecting proxy (rustls-native-certs also honours
//! `SSL_CERT_FILE` / `SSL_CERT_DIR`). The bundled Mozilla roots are added so
//! a machine with an empty or stale OS store still reaches the cloud. There
//! is deliberately no way to switch verification off.

use std::sync::Arc;

use rustls::pki_types::CertificateDer;
use rustls::{ClientConfig, RootCertStore};

use super::error::SetupError;

/// Where trusted roots come from.
#[derive(Debug, Clone)]
pub struct TrustedRoots {
    /// The operating system's store (or `SSL_CERT_FILE` / `SSL_CERT_DIR`).
    pub os_store: bool,
    /// The Mozilla roots compiled into the binary (webpki-roots).
    pub bundled: bool,
    /// More roots, DER: a test CA, or a CA from configuration.
    pub extra: Vec<CertificateDer<'static>>,
}

impl Default for TrustedRoots {
    fn default() -> Self {
        TrustedRoots {
            os_store: true,
            bundled: true,
            extra: Vec::new(),
        }
    }
}

impl TrustedRoots {
    /// The OS store and the bundled roots.
    pub fn system() -> Self {
        TrustedRoots::default()
    }

    /// Adds a root (DER) to those trusted.
    pub fn with_extra(mut self, der: impl Into<CertificateDer<'static>>) -> Self {
        self.extra.push(der.into());
        self
    }

    /// Builds the root store. Unreadable OS certificates are logged and
    /// skipped (one bad file must not stop the service); a store that ends
    /// up empty is an error, since every connection would fail.
    pub fn root_store(&self) -> Result<RootCertStore, SetupError> {
        let mut store = RootCertStore::empty();
        let mut notes = Vec::new();
        if self.os_store {
            let found = rustls_native_certs::load_native_certs();
            for e in &found.errors {
                tracing::warn!("cannot read OS root certificates: {e}");
            }
            let (added, ignored) = store.add_parsable_certificates(found.certs);
            if ignored > 0 {
                tracing::warn!("ignored {ignored} unusable OS root certificates");
            }
            tracing::debug!("{added} root certificates from the OS store");
            notes.push(format!("{added} from the OS store"));
            if let Some(e) = found.errors.first() {
                notes.push(e.to_string());
            }
        }
        if self.bundled {
            store.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        }
        let (added, ignored) = store.add_parsable_certificates(self.extra.iter().cloned());
        if ignored > 0 {
            notes.push(format!("{ignored} extra certificates unusable"));
        }
        if !self.extra.is_empty() {
            tracing::debug!("{added} extra root certificates");
        }
        if store.is_empty() {
            if !self.os_store {
                notes.push("the OS store is not used".into());
            }
            if !self.bundled {
                notes.push("the bundled roots are not used".into());
            }
            return Err(SetupError::NoTrustedRoots {
                detail: notes.join("; "),
            });
        }
        Ok(store)
    }

    /// The rustls client configuration awc uses.
    pub fn client_config(&self) -> Result<Arc<ClientConfig>, SetupError> {
        // An explicit provider: the process-wide default is unset unless
        // someone installs one, and would be ambiguous if a dependency ever
        // enabled a second crypto backend.
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(SetupError::Tls)?
            .with_root_certificates(self.root_store()?)
            .with_no_client_auth();
        // HTTP/1.1 only: S3 and the API need nothing more, and awc's HTTP/2
        // client adds failure modes (and TLS-inspecting proxies often
        // mishandle h2) for no gain here.
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Arc::new(config))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_root_store_is_an_error_with_a_hint() {
        let none = TrustedRoots {
            os_store: false,
            bundled: false,
            extra: Vec::new(),
        };
        let e = none.client_config().unwrap_err();
        let text = e.to_string();
        assert!(matches!(e, SetupError::NoTrustedRoots { .. }), "{e:?}");
        assert!(text.contains("SSL_CERT_FILE"), "{text}");
        assert!(text.contains("ca-certificates"), "{text}");
    }

    #[test]
    fn bundled_roots_alone_are_enough() {
        let bundled = TrustedRoots {
            os_store: false,
            bundled: true,
            extra: Vec::new(),
        };
        assert!(bundled.root_store().unwrap().len() > 100);
        assert_eq!(
            bundled.client_config().unwrap().alpn_protocols,
            vec![b"http/1.1".to_vec()]
        );
    }

    #[test]
    fn garbage_extra_roots_do_not_count() {
        let only_garbage = TrustedRoots {
            os_store: false,
            bundled: false,
            extra: vec![CertificateDer::from(vec![1u8, 2, 3])],
        };
        let text = only_garbage.root_store().unwrap_err().to_string();
        assert!(text.contains("1 extra certificates unusable"), "{text}");
    }
}
