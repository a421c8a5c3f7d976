//! Shared inputs for the criterion benchmarks in `benches/`.

/// A fresh RSA-2048 private key as PKCS#8 PEM, made by the `openssl` command
/// (ring, one of the two crypto backends the benches run on, cannot generate
/// RSA keys). Panics when `openssl` is missing or fails: a bench cannot run
/// without its key.
pub fn rsa2048_pkcs8_pem() -> String {
    let out = std::process::Command::new("openssl")
        .args([
            "genpkey",
            "-algorithm",
            "RSA",
            "-pkeyopt",
            "rsa_keygen_bits:2048",
        ])
        .output()
        .expect("run openssl genpkey (install openssl)");
    assert!(
        out.status.success(),
        "openssl genpkey failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let pem = String::from_utf8(out.stdout).expect("openssl writes ASCII PEM");
    assert!(pem.starts_with("-----BEGIN PRIVATE KEY-----"), "{pem}");
    pem
}
