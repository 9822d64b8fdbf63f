//! The `enc:1:` envelope against independently generated vectors, the published AES-256-GCM
//! test cases, and tampered or moved ciphertexts (docs/client.md, "Encryption").
#![cfg(not(target_arch = "wasm32"))]

use aes_gcm::aead::{Aead, KeyInit};
use aes_gcm::{Aes256Gcm, Nonce};
use mana_sync::crypto::{is_encrypted, FieldCipher, Vault};
use serde_json::{json, Value};

fn vectors() -> Vec<Value> {
    let text = include_str!("vectors/envelope/envelope.json");
    let v: Value = serde_json::from_str(text).unwrap();
    v["cases"].as_array().unwrap().clone()
}

fn key_of(case: &Value) -> [u8; 32] {
    hex::decode(case["keyHex"].as_str().unwrap())
        .unwrap()
        .try_into()
        .unwrap()
}

#[test]
fn encrypts_to_the_independent_vectors_and_back() {
    for case in vectors() {
        let cipher = FieldCipher::new(&key_of(&case));
        let nonce: [u8; 12] = hex::decode(case["nonceHex"].as_str().unwrap())
            .unwrap()
            .try_into()
            .unwrap();
        let (c, id, f) = (
            case["collection"].as_str().unwrap(),
            case["id"].as_str().unwrap(),
            case["field"].as_str().unwrap(),
        );
        let env = cipher.encrypt(c, id, f, &case["value"], nonce);
        assert_eq!(env, case["envelope"].as_str().unwrap());
        assert!(is_encrypted(&Value::String(env.clone())));
        assert_eq!(
            cipher.decrypt(c, id, f, &Value::String(env)).unwrap(),
            case["value"]
        );
    }
}

#[test]
fn published_aes_256_gcm_test_cases() {
    // McGrew & Viega, "The Galois/Counter Mode of Operation", test cases 13 and 14.
    let aead = Aes256Gcm::new(&[0u8; 32].into());
    let nonce = Nonce::from([0u8; 12]);
    assert_eq!(
        hex::encode(aead.encrypt(&nonce, &b""[..]).unwrap()),
        "530f8afbc74536b9a963b4f1c4cb738b"
    );
    assert_eq!(
        hex::encode(aead.encrypt(&nonce, &[0u8; 16][..]).unwrap()),
        "cea7403d4d606b6e074ec5d3baf39d18d0d1c8a799996bf0265b98b5d48ab919"
    );
}

#[test]
fn tampered_moved_or_foreign_ciphertexts_fail_with_decrypt_failed() {
    let case = &vectors()[0];
    let cipher = FieldCipher::new(&key_of(case));
    let env = case["envelope"].as_str().unwrap().to_string();
    let body = env.strip_prefix("enc:1:").unwrap();

    // Flip one character of the ciphertext (base64 of a later byte).
    let mut chars: Vec<char> = body.chars().collect();
    let i = chars.len() - 5;
    chars[i] = if chars[i] == 'A' { 'B' } else { 'A' };
    let tampered = format!("enc:1:{}", chars.iter().collect::<String>());
    let truncated = format!("enc:1:{}", &body[..10]);
    let not_base64 = "enc:1:***".to_string();

    let cases: Vec<(&str, &str, &str, String)> = vec![
        ("notes", "n1", "title", tampered),
        ("notes", "n1", "title", truncated),
        ("notes", "n1", "title", not_base64),
        ("notes", "n1", "content", env.clone()), // moved to another field
        ("notes", "n2", "title", env.clone()),   // moved to another record
        ("todos", "n1", "title", env.clone()),   // moved to another collection
    ];
    for (c, id, f, v) in cases {
        let err = cipher
            .decrypt(c, id, f, &Value::String(v.clone()))
            .unwrap_err();
        assert_eq!(err.code(), "decrypt_failed", "{c}/{id}/{f} {v}");
    }
    // A different key.
    let other = FieldCipher::new(&[9u8; 32]);
    assert_eq!(
        other
            .decrypt("notes", "n1", "title", &Value::String(env))
            .unwrap_err()
            .code(),
        "decrypt_failed"
    );
}

#[test]
fn plaintext_passes_through_decrypt() {
    let cipher = FieldCipher::new(&[1u8; 32]);
    for v in [
        json!("plain"),
        json!(3),
        json!(null),
        json!({"a": "enc:1:x"}),
        json!("enc:2:zz"),
    ] {
        assert_eq!(cipher.decrypt("c", "i", "f", &v).unwrap(), v);
    }
}

#[test]
fn vault_refuses_bad_keys_and_forgets_on_lock() {
    let mut vault = Vault::default();
    assert_eq!(vault.cipher().err().unwrap().code(), "vault_locked");
    assert_eq!(
        vault.unlock(&[0u8; 16], None).unwrap_err().code(),
        "invalid_key"
    );
    let check = vault.unlock(&[1u8; 32], None).unwrap();
    assert!(vault.is_unlocked());
    vault.lock();
    assert!(!vault.is_unlocked());
    assert_eq!(
        vault.unlock(&[2u8; 32], Some(&check)).unwrap_err().code(),
        "wrong_vault_key"
    );
    assert!(!vault.is_unlocked());
    vault.unlock(&[1u8; 32], Some(&check)).unwrap();
    assert!(vault.cipher().is_ok());
}
