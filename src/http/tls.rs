//! The TLS client configuration: which roots are trusted.
//!
//! The OS store comes first, because that is where an IT department puts
//! the CA of a TLS-inspecting proxy (rustls-native-certs also honours
//! `SSL_CERT_FILE` / `SSL_CERT_DIR`). The bundled Mozilla roots are added so
//! a machine with an empty or stale OS store still reaches the cloud. There
//! is deliberately no way to switch verification off.
//!
//! The roots are read at start and again after a certificate failure, at
//! most once per [`TRUST_RELOAD_INTERVAL`]: an admin who installs a proxy's
//! CA (`update-ca-certificates`) while the service runs should not have to
//! restart it. The reload lives in the certificate verifier
//! ([`ReloadingVerifier`]), so every client of the one TLS configuration
//! (each actor's, made once) sees the new roots at its next handshake.

use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};

use super::error::SetupError;

/// After a certificate failure the trusted roots are read again, but not
/// sooner than this after they were last read: reading the OS store costs
/// some milliseconds on the handshake's thread, and a store changes when an
/// admin changes it, not from one second to the next.
pub const TRUST_RELOAD_INTERVAL: Duration = Duration::from_secs(60);

/// Whether a certificate failure at `now` may read the roots again, they
/// were last read at `loaded_at`.
pub fn reload_due(loaded_at: Instant, now: Instant) -> bool {
    now.saturating_duration_since(loaded_at) >= TRUST_RELOAD_INTERVAL
}

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

    /// The rustls client configuration awc uses. Its verifier reads these
    /// roots again after a certificate failure (see [`ReloadingVerifier`]).
    pub fn client_config(&self) -> Result<Arc<ClientConfig>, SetupError> {
        // An explicit provider: the process-wide default is unset unless
        // someone installs one, and would be ambiguous if a dependency ever
        // enabled a second crypto backend.
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let roots = self.clone();
        let verifier = ReloadingVerifier::new(
            provider.clone(),
            Box::new(move || roots.root_store()),
            Box::new(Instant::now),
        )?;
        let mut config = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(SetupError::Tls)?
            // rustls's only door for a verifier of one's own; ours is
            // rustls's WebPKI verifier with roots that can be read again.
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(verifier))
            .with_no_client_auth();
        // HTTP/1.1 only: S3 and the API need nothing more, and awc's HTTP/2
        // client adds failure modes (and TLS-inspecting proxies often
        // mishandle h2) for no gain here.
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Arc::new(config))
    }
}

/// Reads the trusted roots (the OS store, for the service).
pub type LoadRoots = dyn Fn() -> Result<RootCertStore, SetupError> + Send + Sync;
/// The monotonic clock, injected so tests need not wait a minute.
pub type MonotonicClock = dyn Fn() -> Instant + Send + Sync;

/// rustls's WebPKI verification over roots that are read again after a
/// certificate failure, at most once per [`TRUST_RELOAD_INTERVAL`]. A chain
/// the new roots accept is accepted at once, in the same handshake, and the
/// first such handshake is logged: that line tells the admin the installed
/// CA took effect. Nothing else changes: a chain is trusted exactly when
/// WebPKI with the current roots trusts it.
pub struct ReloadingVerifier {
    provider: Arc<CryptoProvider>,
    load: Box<LoadRoots>,
    now: Box<MonotonicClock>,
    current: Mutex<LoadedRoots>,
}

struct LoadedRoots {
    verifier: Arc<WebPkiServerVerifier>,
    count: usize,
    /// When the roots were last read (successfully or not).
    read_at: Instant,
    /// Counts the reloads, so a handshake can tell whether the roots
    /// changed since it started.
    generation: u64,
    /// Whether a handshake has succeeded with this generation's roots
    /// after one failed with older roots; logged once.
    announced: bool,
}

impl ReloadingVerifier {
    /// Reads the roots once; an error (no root at all) stops the set-up.
    pub fn new(
        provider: Arc<CryptoProvider>,
        load: Box<LoadRoots>,
        now: Box<MonotonicClock>,
    ) -> Result<Self, SetupError> {
        let store = load()?;
        let count = store.len();
        let verifier = webpki_verifier(store, &provider)?;
        let read_at = now();
        Ok(ReloadingVerifier {
            provider,
            load,
            now,
            current: Mutex::new(LoadedRoots {
                verifier,
                count,
                read_at,
                generation: 0,
                announced: true,
            }),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, LoadedRoots> {
        self.current.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The roots to retry a failed chain with, and their generation: newer
    /// ones than those of `failed_generation`, read now if that is due;
    /// `None` when there are none.
    fn newer_roots(&self, failed_generation: u64) -> Option<(Arc<WebPkiServerVerifier>, u64)> {
        let mut current = self.lock();
        if current.generation != failed_generation {
            // Another handshake has read them meanwhile.
            return Some((current.verifier.clone(), current.generation));
        }
        let now = (self.now)();
        if !reload_due(current.read_at, now) {
            return None;
        }
        current.read_at = now;
        // Read under the lock: a second failing handshake waits for these
        // roots rather than reading them again.
        let loaded = (self.load)().and_then(|store| {
            let count = store.len();
            Ok((webpki_verifier(store, &self.provider)?, count))
        });
        match loaded {
            Ok((verifier, count)) => {
                tracing::debug!(
                    "a certificate was refused: read the trusted roots again ({count} roots, \
                     {} before)",
                    current.count
                );
                current.verifier = verifier;
                current.count = count;
                current.generation += 1;
                current.announced = false;
                Some((current.verifier.clone(), current.generation))
            }
            Err(e) => {
                tracing::warn!(
                    "cannot read the trusted roots again after a certificate failure: {e}; \
                     keeping the previous ones, trying again in {} s at the earliest",
                    TRUST_RELOAD_INTERVAL.as_secs()
                );
                None
            }
        }
    }

    fn announce(&self, generation: u64, server_name: &ServerName<'_>) {
        let mut current = self.lock();
        if current.generation == generation && !current.announced {
            current.announced = true;
            tracing::info!(
                "the trusted roots were read again ({} roots) and the store now trusts the \
                 certificate of {}: TLS works again, no restart needed",
                current.count,
                server_name.to_str()
            );
        }
    }
}

fn webpki_verifier(
    store: RootCertStore,
    provider: &Arc<CryptoProvider>,
) -> Result<Arc<WebPkiServerVerifier>, SetupError> {
    WebPkiServerVerifier::builder_with_provider(Arc::new(store), provider.clone())
        .build()
        .map_err(|e| SetupError::Tls(rustls::Error::General(e.to_string())))
}

impl ServerCertVerifier for ReloadingVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let (verifier, generation) = {
            let current = self.lock();
            (current.verifier.clone(), current.generation)
        };
        let verify = |verifier: &WebPkiServerVerifier| {
            verifier.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
        };
        match verify(&verifier) {
            Err(rustls::Error::InvalidCertificate(refused)) => {
                let Some((newer, generation)) = self.newer_roots(generation) else {
                    return Err(rustls::Error::InvalidCertificate(refused));
                };
                let verdict = verify(&newer);
                if verdict.is_ok() {
                    self.announce(generation, server_name);
                }
                verdict
            }
            verdict => verdict,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

impl fmt::Debug for ReloadingVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let current = self.lock();
        f.debug_struct("ReloadingVerifier")
            .field("roots", &current.count)
            .field("generation", &current.generation)
            .finish_non_exhaustive()
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

    /// A throwaway CA and a leaf for `127.0.0.1` signed by it.
    fn ca_and_leaf(name: &str) -> (CertificateDer<'static>, CertificateDer<'static>) {
        use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};
        let ca_key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        let ca = params.self_signed(&ca_key).unwrap();
        let leaf = CertificateParams::new(vec!["127.0.0.1".to_owned()])
            .unwrap()
            .signed_by(&KeyPair::generate().unwrap(), &ca, &ca_key)
            .unwrap();
        (ca.der().clone(), leaf.der().clone())
    }

    /// A verifier over a store the test fills, on a clock the test moves.
    struct Rig {
        store: Arc<Mutex<Vec<CertificateDer<'static>>>>,
        reads: Arc<Mutex<usize>>,
        clock: Arc<Mutex<Instant>>,
        verifier: ReloadingVerifier,
    }

    impl Rig {
        fn trusting(roots: &[CertificateDer<'static>]) -> Rig {
            let store = Arc::new(Mutex::new(roots.to_vec()));
            let reads = Arc::new(Mutex::new(0));
            let clock = Arc::new(Mutex::new(Instant::now()));
            let (s, r, c) = (store.clone(), reads.clone(), clock.clone());
            let verifier = ReloadingVerifier::new(
                Arc::new(rustls::crypto::ring::default_provider()),
                Box::new(move || {
                    *r.lock().unwrap() += 1;
                    let mut roots = RootCertStore::empty();
                    roots.add_parsable_certificates(s.lock().unwrap().iter().cloned());
                    Ok(roots)
                }),
                Box::new(move || *c.lock().unwrap()),
            )
            .unwrap();
            Rig {
                store,
                reads,
                clock,
                verifier,
            }
        }

        fn advance(&self, by: Duration) {
            *self.clock.lock().unwrap() += by;
        }

        fn verify(&self, leaf: &CertificateDer<'_>) -> Result<ServerCertVerified, rustls::Error> {
            self.verifier.verify_server_cert(
                leaf,
                &[],
                &ServerName::try_from("127.0.0.1").unwrap(),
                &[],
                UnixTime::now(),
            )
        }

        fn reads(&self) -> usize {
            *self.reads.lock().unwrap()
        }
    }

    #[test]
    fn reloads_are_due_a_minute_after_the_last_read() {
        let t0 = Instant::now();
        assert!(!reload_due(t0, t0));
        assert!(!reload_due(t0, t0 + Duration::from_secs(59)));
        assert!(reload_due(t0, t0 + TRUST_RELOAD_INTERVAL));
        assert!(reload_due(t0, t0 + Duration::from_secs(3600)));
        assert!(
            !reload_due(t0 + Duration::from_secs(5), t0),
            "never backwards"
        );
    }

    #[test]
    fn a_ca_installed_later_is_trusted_at_the_first_failure_a_minute_after_the_last_read() {
        let (known_ca, known_leaf) = ca_and_leaf("known CA");
        let (proxy_ca, proxy_leaf) = ca_and_leaf("proxy CA");
        let rig = Rig::trusting(&[known_ca]);
        assert_eq!(rig.reads(), 1);
        assert!(rig.verify(&known_leaf).is_ok());
        let refused = rig.verify(&proxy_leaf).unwrap_err();
        assert!(
            matches!(refused, rustls::Error::InvalidCertificate(_)),
            "{refused:?}"
        );
        assert_eq!(rig.reads(), 1, "the roots were read just now");

        // The admin installs the CA; failures within the minute do not read.
        rig.store.lock().unwrap().push(proxy_ca);
        rig.advance(Duration::from_secs(30));
        assert!(rig.verify(&proxy_leaf).is_err());
        assert_eq!(rig.reads(), 1);

        rig.advance(Duration::from_secs(30));
        assert!(rig.verify(&known_leaf).is_ok(), "a success reads nothing");
        assert_eq!(rig.reads(), 1);
        assert!(rig.verify(&proxy_leaf).is_ok(), "read again and trusted");
        assert_eq!(rig.reads(), 2);
        assert!(rig.verify(&proxy_leaf).is_ok());
        assert!(rig.verify(&known_leaf).is_ok());
        assert_eq!(rig.reads(), 2);
    }

    #[test]
    fn a_store_that_still_lacks_the_ca_is_read_at_most_once_a_minute() {
        let (known_ca, _) = ca_and_leaf("known CA");
        let (_, stranger) = ca_and_leaf("unknown CA");
        let rig = Rig::trusting(&[known_ca]);
        for _ in 0..10 {
            rig.advance(Duration::from_secs(20));
            assert!(rig.verify(&stranger).is_err());
        }
        // 200 s of failures every 20 s: read at 60, 120 and 180 s.
        assert_eq!(rig.reads(), 4);
    }

    #[test]
    fn a_store_that_cannot_be_read_again_keeps_the_old_roots() {
        let (known_ca, known_leaf) = ca_and_leaf("known CA");
        let (_, stranger) = ca_and_leaf("unknown CA");
        let rig = Rig::trusting(&[known_ca]);
        rig.store.lock().unwrap().clear();
        rig.advance(TRUST_RELOAD_INTERVAL);
        assert!(rig.verify(&stranger).is_err());
        assert_eq!(rig.reads(), 2);
        // An empty store (update-ca-certificates half-way?) is no store.
        assert!(rig.verify(&known_leaf).is_ok(), "the old roots still hold");
    }
}
