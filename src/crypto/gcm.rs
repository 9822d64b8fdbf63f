//! AES-256-GCM (NIST SP 800-38D, 96-bit nonce, 128-bit tag) for the small values of the field
//! envelope, composed from the `aes` block cipher and `ghash` — the same primitives `aes-gcm`
//! composes, with byte-identical output (tests below, against `aes-gcm`).
//!
//! Why not `aes-gcm` itself: it runs the cipher twice per message, once for the tag mask
//! `E(J0)` and once for the keystream. In wasm the cipher is bitsliced software whose cost is
//! mostly per call, so for a field of a few dozen bytes the second call was ~40% of the work
//! (BENCHMARKS.md, "The field envelope's GCM"). Here `J0` and the keystream counters go
//! through the cipher in one call.

use aes::cipher::{BlockCipherEncrypt, KeyInit};
use aes::{Aes256, Block};
use ctutils::CtEq;
use ghash::universal_hash::UniversalHash;
use ghash::GHash;

pub const NONCE_LEN: usize = 12;
pub const TAG_LEN: usize = 16;

/// Blocks for `J0` plus a keystream this long go on the stack; longer values allocate.
const STACK_BLOCKS: usize = 8;

/// The tag did not verify (wrong key, nonce, associated data or a tampered ciphertext).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TagMismatch;

/// An AES-256 key schedule and its GHASH key, computed once per key (both zeroized on drop).
#[derive(Clone)]
pub struct Gcm {
    aes: Aes256,
    ghash: GHash,
}

impl Gcm {
    pub fn new(key: &[u8; 32]) -> Gcm {
        let aes = Aes256::new(key.into());
        let mut h = Block::default();
        aes.encrypt_block(&mut h);
        let ghash = GHash::new(&h);
        zeroize::Zeroize::zeroize(h.as_mut_slice());
        Gcm { aes, ghash }
    }

    /// Encrypts `buf` in place and appends the tag.
    pub fn seal(&self, nonce: &[u8; NONCE_LEN], aad: &[u8], buf: &mut Vec<u8>) {
        let mask = self.apply_keystream(nonce, buf);
        let tag = self.tag(&mask, aad, buf);
        buf.extend_from_slice(&tag);
    }

    /// Verifies the tag at the end of `buf`, then decrypts in place and drops the tag. On a
    /// mismatch `buf` is left as it was.
    pub fn open(
        &self,
        nonce: &[u8; NONCE_LEN],
        aad: &[u8],
        buf: &mut Vec<u8>,
    ) -> Result<(), TagMismatch> {
        let Some(ct_len) = buf.len().checked_sub(TAG_LEN) else {
            return Err(TagMismatch);
        };
        let (ct, tag) = buf.split_at(ct_len);
        let mut blocks = Blocks::new(nonce, ct_len);
        self.aes.encrypt_blocks(blocks.as_mut());
        let expected = self.tag(&blocks.as_mut()[0], aad, ct);
        if !bool::from(expected.ct_eq(<&[u8; TAG_LEN]>::try_from(tag).expect("split at TAG_LEN"))) {
            return Err(TagMismatch);
        }
        buf.truncate(ct_len);
        xor_keystream(buf, &blocks.as_mut()[1..]);
        Ok(())
    }

    /// XORs the keystream into `buf` and returns the tag mask `E(J0)`.
    fn apply_keystream(&self, nonce: &[u8; NONCE_LEN], buf: &mut [u8]) -> Block {
        let mut blocks = Blocks::new(nonce, buf.len());
        let blocks = blocks.as_mut();
        self.aes.encrypt_blocks(blocks);
        xor_keystream(buf, &blocks[1..]);
        blocks[0]
    }

    /// `GHASH(aad, ct, lengths) ⊕ mask`.
    fn tag(&self, mask: &Block, aad: &[u8], ct: &[u8]) -> [u8; TAG_LEN] {
        let mut ghash = self.ghash.clone();
        ghash.update_padded(aad);
        ghash.update_padded(ct);
        let mut lengths = ghash::Block::default();
        lengths[..8].copy_from_slice(&(aad.len() as u64 * 8).to_be_bytes());
        lengths[8..].copy_from_slice(&(ct.len() as u64 * 8).to_be_bytes());
        ghash.update(&[lengths]);
        let mut tag: [u8; TAG_LEN] = ghash.finalize().into();
        for (t, m) in tag.iter_mut().zip(mask.iter()) {
            *t ^= m;
        }
        tag
    }
}

fn xor_keystream(buf: &mut [u8], keystream: &[Block]) {
    for (chunk, ks) in buf.chunks_mut(16).zip(keystream) {
        for (b, k) in chunk.iter_mut().zip(ks.iter()) {
            *b ^= k;
        }
    }
}

/// The counter blocks `J0 = nonce ‖ 1`, then `nonce ‖ 2`, `nonce ‖ 3`, … (32-bit big-endian
/// counter), one per 16 bytes of a message of `len` bytes.
enum Blocks {
    Stack([Block; STACK_BLOCKS], usize),
    Heap(Vec<Block>),
}

impl Blocks {
    fn new(nonce: &[u8; NONCE_LEN], len: usize) -> Blocks {
        let count = 1 + len.div_ceil(16);
        // The 32-bit counter must not wrap: SP 800-38D caps a message at 2^32 - 2 blocks.
        assert!(
            (count as u64) < u32::MAX as u64,
            "an AES-GCM message is at most 2^36 - 32 bytes"
        );
        let mut blocks = if count <= STACK_BLOCKS {
            Blocks::Stack([Block::default(); STACK_BLOCKS], count)
        } else {
            Blocks::Heap(vec![Block::default(); count])
        };
        for (i, block) in blocks.as_mut().iter_mut().enumerate() {
            block[..NONCE_LEN].copy_from_slice(nonce);
            block[NONCE_LEN..].copy_from_slice(&(i as u32 + 1).to_be_bytes());
        }
        blocks
    }

    fn as_mut(&mut self) -> &mut [Block] {
        match self {
            Blocks::Stack(blocks, count) => &mut blocks[..*count],
            Blocks::Heap(blocks) => blocks,
        }
    }
}

// proptest and the aes-gcm reference are native dev-dependencies only.
#[cfg(all(test, not(target_arch = "wasm32")))]
mod tests {
    use super::*;
    use aes_gcm::aead::AeadInOut;
    use aes_gcm::{Aes256Gcm, Nonce};
    use proptest::prelude::*;

    fn reference(key: &[u8; 32]) -> Aes256Gcm {
        Aes256Gcm::new(key.into())
    }

    proptest! {
        #[test]
        fn seal_equals_aes_gcm_and_opens(
            key in any::<[u8; 32]>(),
            nonce in any::<[u8; 12]>(),
            aad in proptest::collection::vec(any::<u8>(), 0..80),
            plain in proptest::collection::vec(any::<u8>(), 0..300),
        ) {
            let mut ours = plain.clone();
            Gcm::new(&key).seal(&nonce, &aad, &mut ours);
            let mut theirs = plain.clone();
            reference(&key).encrypt_in_place(&Nonce::from(nonce), &aad, &mut theirs).unwrap();
            prop_assert_eq!(&ours, &theirs);

            Gcm::new(&key).open(&nonce, &aad, &mut ours).unwrap();
            prop_assert_eq!(ours, plain);
        }

        #[test]
        fn opens_what_aes_gcm_seals_and_refuses_any_change(
            key in any::<[u8; 32]>(),
            nonce in any::<[u8; 12]>(),
            aad in proptest::collection::vec(any::<u8>(), 0..40),
            plain in proptest::collection::vec(any::<u8>(), 0..200),
            flip in any::<prop::sample::Index>(),
            bit in 0u8..8,
        ) {
            let mut sealed = plain.clone();
            reference(&key).encrypt_in_place(&Nonce::from(nonce), &aad, &mut sealed).unwrap();
            let gcm = Gcm::new(&key);

            let mut opened = sealed.clone();
            gcm.open(&nonce, &aad, &mut opened).unwrap();
            prop_assert_eq!(&opened, &plain);

            let mut tampered = sealed.clone();
            let i = flip.index(tampered.len());
            tampered[i] ^= 1 << bit;
            let before = tampered.clone();
            prop_assert_eq!(gcm.open(&nonce, &aad, &mut tampered), Err(TagMismatch));
            prop_assert_eq!(tampered, before, "a refused open leaves the buffer as it was");

            let mut other_aad = aad.clone();
            other_aad.push(0);
            prop_assert_eq!(gcm.open(&nonce, &other_aad, &mut sealed.clone()), Err(TagMismatch));
        }
    }

    #[test]
    fn too_short_for_a_tag_is_refused() {
        let gcm = Gcm::new(&[1; 32]);
        for len in 0..TAG_LEN {
            assert_eq!(gcm.open(&[0; 12], b"", &mut vec![0; len]), Err(TagMismatch));
        }
    }

    /// NIST GCM test vector (gcmEncryptExtIV256.rsp, Count = 0 of Keylen 256, IVlen 96,
    /// PTlen 128, AADlen 128, Taglen 128).
    #[test]
    fn nist_vector() {
        let key: [u8; 32] =
            hex::decode("92e11dcdaa866f5ce790fd24501f92509aacf4cb8b1339d50c9c1240935dd08b")
                .unwrap()
                .try_into()
                .unwrap();
        let nonce: [u8; 12] = hex::decode("ac93a1a6145299bde902f21a")
            .unwrap()
            .try_into()
            .unwrap();
        let plain = hex::decode("2d71bcfa914e4ac045b2aa60955fad24").unwrap();
        let aad = hex::decode("1e0889016f67601c8ebea4943bc23ad6").unwrap();
        let mut buf = plain.clone();
        Gcm::new(&key).seal(&nonce, &aad, &mut buf);
        assert_eq!(
            hex::encode(&buf),
            "8995ae2e6df3dbf96fac7b7137bae67feca5aa77d51d4a0a14d9c51e1da474ab"
        );
    }
}
