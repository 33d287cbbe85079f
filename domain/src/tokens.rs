//! One-time tokens: 256 random bits, hex-encoded; the database keeps only their SHA-256.

use rand::RngCore;
use sha2::{Digest, Sha256};

/// A random URL-safe token with 256 bits of entropy and its SHA-256 (what the database keeps).
pub fn new_token() -> (String, String) {
    let mut bytes = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut bytes);
    let token = hex::encode(bytes);
    let hash = hash_token(&token);
    (token, hash)
}

pub fn hash_token(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}
