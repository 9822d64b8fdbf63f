//! Random bytes drawn from the OS (or `crypto.getRandomValues`) in chunks, so a batch of
//! 10,000 writes costs a handful of calls into the random source, not one per nonce.

use super::CryptoError;

const CHUNK: usize = 4096;

pub struct RandomPool {
    buf: Box<[u8; CHUNK]>,
    pos: usize,
}

impl Default for RandomPool {
    fn default() -> Self {
        RandomPool {
            buf: Box::new([0; CHUNK]),
            pos: CHUNK,
        }
    }
}

impl RandomPool {
    pub fn fill(&mut self, out: &mut [u8]) -> Result<(), CryptoError> {
        let mut written = 0;
        while written < out.len() {
            if self.pos == CHUNK {
                getrandom::fill(&mut self.buf[..])
                    .map_err(|e| CryptoError::Random(e.to_string()))?;
                self.pos = 0;
            }
            let n = (out.len() - written).min(CHUNK - self.pos);
            out[written..written + n].copy_from_slice(&self.buf[self.pos..self.pos + n]);
            // Bytes handed out are erased from the pool so they can't be handed out twice.
            self.buf[self.pos..self.pos + n].fill(0);
            self.pos += n;
            written += n;
        }
        Ok(())
    }

    pub fn array<const N: usize>(&mut self) -> Result<[u8; N], CryptoError> {
        let mut a = [0u8; N];
        self.fill(&mut a)?;
        Ok(a)
    }
}
