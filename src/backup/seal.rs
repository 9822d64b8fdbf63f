//! Sealing: PBKDF2-SHA256 key derivation, the `keyCheck`, AES-256-GCM of the inner ZIP, and the
//! lenient base64 the manifest needs (written base64url unpadded; read in either alphabet, padded
//! or not).

use aes_gcm::aead::{AeadInOut, KeyInit};
use aes_gcm::{Aes256Gcm, Key, Nonce};
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig, URL_SAFE_NO_PAD};
use base64::engine::DecodePaddingMode;
use base64::{alphabet, Engine};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use zeroize::Zeroizing;

use super::error::{BackupError, Result};

/// PBKDF2 iterations used when the caller does not choose (docs/backup.md).
pub const DEFAULT_ITERATIONS: u32 = 600_000;
/// Iteration counts above this are refused when reading (a hostile manifest could otherwise make
/// key derivation run for hours) and when writing.
pub const MAX_ITERATIONS: u32 = 10_000_000;
/// Salt length in bytes.
pub const SALT_LEN: usize = 16;
/// AES-GCM IV length in bytes.
pub const IV_LEN: usize = 12;
/// AES-GCM tag length in bytes (appended to the ciphertext in `data.sealed`).
pub const TAG_LEN: usize = 16;
/// HMAC message of the key check.
pub const KEY_CHECK_LABEL: &[u8] = b"mana-backup-v2/key-check";
/// Bytes of the HMAC kept as key check.
pub const KEY_CHECK_LEN: usize = 16;

/// Salt, IV and iteration count of one sealing. Fresh random salt and IV for every archive
/// ([`SealParams::random`]); fixed ones only in tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SealParams {
    /// PBKDF2 salt.
    pub salt: [u8; SALT_LEN],
    /// AES-GCM IV.
    pub iv: [u8; IV_LEN],
    /// PBKDF2 iterations.
    pub iterations: u32,
}

impl SealParams {
    /// Random salt and IV from the OS (or, in the browser, `crypto.getRandomValues`).
    pub fn random(iterations: u32) -> Result<SealParams> {
        check_iterations(u64::from(iterations))?;
        let mut salt = [0u8; SALT_LEN];
        let mut iv = [0u8; IV_LEN];
        getrandom::fill(&mut salt)
            .and_then(|()| getrandom::fill(&mut iv))
            .map_err(|e| BackupError::InvalidInput(format!("no random source: {e}")))?;
        Ok(SealParams {
            salt,
            iv,
            iterations,
        })
    }
}

pub(crate) fn check_iterations(n: u64) -> Result<u32> {
    if n == 0 || n > u64::from(MAX_ITERATIONS) {
        return Err(BackupError::InvalidInput(format!(
            "kdfIterations must be between 1 and {MAX_ITERATIONS}, got {n}"
        )));
    }
    Ok(n as u32)
}

/// The 32-byte AES key: PBKDF2-HMAC-SHA256(passphrase, salt, iterations), used directly as the
/// AES-256-GCM key (what WebCrypto's `deriveKey`/`deriveBits(256)` produces for the same input).
pub fn derive_key(passphrase: &[u8], salt: &[u8], iterations: u32) -> Zeroizing<[u8; 32]> {
    let mut key = Zeroizing::new([0u8; 32]);
    pbkdf2::pbkdf2_hmac::<Sha256>(passphrase, salt, iterations, key.as_mut());
    key
}

/// First 16 bytes of HMAC-SHA256(key, "mana-backup-v2/key-check").
pub fn key_check(key: &[u8; 32]) -> [u8; KEY_CHECK_LEN] {
    let mut mac = hmac_for(key);
    mac.update(KEY_CHECK_LABEL);
    let full = mac.finalize().into_bytes();
    let mut out = [0u8; KEY_CHECK_LEN];
    out.copy_from_slice(&full[..KEY_CHECK_LEN]);
    out
}

/// Constant-time comparison of a manifest's key check with the one of `key`.
pub(crate) fn key_check_matches(key: &[u8; 32], expected: &[u8]) -> bool {
    if expected.len() != KEY_CHECK_LEN {
        return false;
    }
    let mut mac = hmac_for(key);
    mac.update(KEY_CHECK_LABEL);
    mac.verify_truncated_left(expected).is_ok()
}

fn hmac_for(key: &[u8; 32]) -> Hmac<Sha256> {
    <Hmac<Sha256> as KeyInit>::new_from_slice(key).expect("HMAC accepts any key length")
}

/// AES-256-GCM-encrypt `buf` in place (no associated data): afterwards it holds
/// ciphertext ‖ 16-byte tag, the layout of `data.sealed`. Never reuse an IV with the same key.
pub fn encrypt_in_place(key: &[u8; 32], iv: &[u8; IV_LEN], buf: &mut Vec<u8>) -> Result<()> {
    let cipher = Aes256Gcm::new(&Key::<Aes256Gcm>::from(*key));
    buf.reserve_exact(TAG_LEN);
    cipher
        .encrypt_in_place(&Nonce::from(*iv), b"", buf)
        .map_err(|_| BackupError::ArchiveTooLarge("plaintext too large for AES-GCM".into()))
}

/// Decrypt ciphertext ‖ tag in place. Fails with `wrong_passphrase_or_tampered` when the tag does
/// not verify (callers that checked a `keyCheck` first report `archive_tampered` instead).
pub fn decrypt_in_place(key: &[u8; 32], iv: &[u8; IV_LEN], buf: &mut Vec<u8>) -> Result<()> {
    let cipher = Aes256Gcm::new(&Key::<Aes256Gcm>::from(*key));
    cipher
        .decrypt_in_place(&Nonce::from(*iv), b"", buf)
        .map_err(|_| BackupError::WrongPassphraseOrTampered)
}

/// base64url without padding (RFC 4648 §5), as the original writer wrote salt, IV and keyCheck.
pub fn b64_encode(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

const LENIENT: GeneralPurposeConfig = GeneralPurposeConfig::new()
    .with_decode_padding_mode(DecodePaddingMode::Indifferent)
    .with_decode_allow_trailing_bits(false);
const STD_LENIENT: GeneralPurpose = GeneralPurpose::new(&alphabet::STANDARD, LENIENT);
const URL_LENIENT: GeneralPurpose = GeneralPurpose::new(&alphabet::URL_SAFE, LENIENT);

/// Decode base64 in the standard or the URL-safe alphabet, padded or not.
pub fn b64_decode(s: &str) -> Option<Vec<u8>> {
    let s = s.trim();
    if s.contains(['-', '_']) {
        URL_LENIENT.decode(s).ok()
    } else {
        STD_LENIENT.decode(s).ok()
    }
}

/// Decode a base64 field of exactly `N` bytes.
pub(crate) fn b64_decode_exact<const N: usize>(field: &str, s: &str) -> Result<[u8; N]> {
    let bytes = b64_decode(s)
        .ok_or_else(|| BackupError::corrupt(format!("passphrase.{field} is not valid base64")))?;
    <[u8; N]>::try_from(bytes.as_slice()).map_err(|_| {
        BackupError::corrupt(format!(
            "passphrase.{field} must decode to {N} bytes, got {}",
            bytes.len()
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pbkdf2_matches_rfc7914_vector() {
        // RFC 7914 §11: PBKDF2-HMAC-SHA256("passwd", "salt", 1, 64) — first 32 bytes.
        let key = derive_key(b"passwd", b"salt", 1);
        assert_eq!(
            hex::encode(*key),
            "55ac046e56e3089fec1691c22544b605f94185216dde0465e68b9d57c20dacbc"
        );
    }

    #[test]
    fn base64_accepts_both_alphabets_padded_or_not() {
        let bytes = [0xfbu8, 0xff, 0xfe, 0x01];
        for s in ["-__-AQ", "-__-AQ==", "+//+AQ", "+//+AQ=="] {
            assert_eq!(b64_decode(s).as_deref(), Some(&bytes[..]), "{s}");
        }
        assert_eq!(b64_encode(&bytes), "-__-AQ");
        assert_eq!(b64_decode("not base64!"), None);
    }

    #[test]
    fn seal_round_trip_and_tamper() {
        let key = [7u8; 32];
        let iv = [9u8; IV_LEN];
        let mut buf = b"inner zip".to_vec();
        encrypt_in_place(&key, &iv, &mut buf).unwrap();
        assert_eq!(buf.len(), 9 + TAG_LEN);
        let mut ok = buf.clone();
        decrypt_in_place(&key, &iv, &mut ok).unwrap();
        assert_eq!(ok, b"inner zip");
        buf[0] ^= 1;
        assert!(decrypt_in_place(&key, &iv, &mut buf).is_err());
        assert!(key_check_matches(&key, &key_check(&key)));
        assert!(!key_check_matches(&[8u8; 32], &key_check(&key)));
        assert!(!key_check_matches(&key, &key_check(&key)[..8]));
    }

    #[test]
    fn iteration_bounds() {
        assert!(SealParams::random(0).is_err());
        assert!(SealParams::random(MAX_ITERATIONS + 1).is_err());
        let a = SealParams::random(1000).unwrap();
        let b = SealParams::random(1000).unwrap();
        assert_ne!(a.salt, b.salt);
    }
}
