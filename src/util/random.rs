//! Random bytes and ids from the operating system's source (via ring).

/// Fills `buf` with random bytes from the operating system.
///
/// Small requests (ids: two per archived message) are served from a per-thread pool of 256
/// bytes from the OS, so that they cost one `getrandom` call per 256 bytes instead of one
/// each; bytes are handed out once and wiped from the pool.
pub fn random(buf: &mut [u8]) {
    use ring::rand::SecureRandom;
    use std::cell::RefCell;
    const POOL: usize = 256;
    fn os(buf: &mut [u8]) {
        ring::rand::SystemRandom::new()
            .fill(buf)
            .expect("the OS random source failed");
    }
    thread_local! {
        // The pool and how many of its bytes (from the front) are used up.
        static BYTES: RefCell<([u8; POOL], usize)> = const { RefCell::new(([0; POOL], POOL)) };
    }
    if buf.len() > 32 {
        return os(buf);
    }
    BYTES.with_borrow_mut(|(pool, used)| {
        if POOL - *used < buf.len() {
            os(pool);
            *used = 0;
        }
        let taken = &mut pool[*used..*used + buf.len()];
        buf.copy_from_slice(taken);
        taken.fill(0);
        *used += buf.len();
    });
}

/// `bytes` random bytes as lowercase hex: stream, session and push ids.
pub fn random_hex(bytes: usize) -> String {
    let mut raw = vec![0u8; bytes];
    random(&mut raw);
    raw.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pooled_random_bytes_are_never_handed_out_twice() {
        // 1000 × 10 bytes: the pool (256) is refilled many times, at uneven boundaries.
        let mut seen = std::collections::HashSet::new();
        for _ in 0..1000 {
            let mut b = [0u8; 10];
            random(&mut b);
            assert_ne!(b, [0u8; 10], "zeros: a wiped pool was handed out");
            assert!(seen.insert(b), "the same bytes twice");
        }
        let mut big = [0u8; 64];
        random(&mut big);
        assert_ne!(big, [0u8; 64]);
    }
}
