//! The TLS crypto provider of every HTTPS client (providers, token endpoints, callbacks):
//! rustls with `ring`, installed as the process default before a client is built.
//!
//! Why `ring` and not rustls' default, aws-lc-rs: aws-lc-sys is a large C (and assembly) build,
//! after the bundled SQLite the longest single step of a cold build on the 2-core machine
//! (issue 14; CONTRIBUTING.md, "Build"). ocpoll uses nothing that only aws-lc offers: no FIPS mode,
//! and TLS 1.2/1.3 with X25519 and the NIST curves covers the providers and receivers it
//! talks to. What it gives up is the hybrid post-quantum key exchange aws-lc would offer first.

/// Makes `ring` the process's rustls provider; later calls (and a provider some other code
/// installed first) leave it as it is. Cheap enough to call before every client is built.
pub fn install_provider() {
    // Err only says a provider is installed already, which is all this needs.
    let _ = rustls::crypto::ring::default_provider().install_default();
}

#[cfg(test)]
mod tests {
    use std::io::Read;

    /// With the provider installed, a client builds and opens TLS (a ClientHello reaches a
    /// loopback listener); without one, reqwest cannot build a client at all.
    #[tokio::test]
    async fn clients_open_tls_with_the_ring_provider() {
        super::install_provider();
        let provider = rustls::crypto::CryptoProvider::get_default().expect("installed");
        assert!(
            provider
                .cipher_suites
                .iter()
                .any(|suite| suite.version() == &rustls::version::TLS13)
        );
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = std::thread::spawn(move || {
            let (mut stream, _) = listener.accept().unwrap();
            let mut record_header = [0u8; 5];
            stream.read_exact(&mut record_header).unwrap();
            record_header
        });
        let client = reqwest::Client::builder().build().expect("a client");
        // The listener closes after the first bytes, so the request fails; what was sent counts.
        let _ = client
            .get(format!("https://127.0.0.1:{port}/"))
            .send()
            .await;
        let record_header = server.join().unwrap();
        assert_eq!(record_header[0], 0x16, "a TLS handshake record");
    }
}
