//! Byte scanning and number writing for the hot path of appending a line (one router line per
//! request goes through here), without allocating.

/// Bytes tested together by [`position`].
const BLOCK: usize = 16;

/// The index of the first byte of `bytes` for which `hit` is true; the same answer as
/// `bytes.iter().position(|&b| hit(b))`.
///
/// It tests a whole block of bytes at once, with no early exit inside the block, which the
/// compiler turns into a few SIMD compares when `hit` is branch-free (write it with `|`, not
/// `||` or `matches!`); only a block with a hit, and the short tail, are searched byte by byte.
#[inline(always)]
pub(crate) fn position(bytes: &[u8], hit: impl Fn(u8) -> bool) -> Option<usize> {
    let mut blocks = bytes.chunks_exact(BLOCK);
    let mut start = 0;
    for block in &mut blocks {
        // A `u8` accumulator (not `bool`) is what lets the loop vectorize.
        if block.iter().fold(0u8, |any, &b| any | u8::from(hit(b))) != 0 {
            return block.iter().position(|&b| hit(b)).map(|i| start + i);
        }
        start += BLOCK;
    }
    blocks
        .remainder()
        .iter()
        .position(|&b| hit(b))
        .map(|i| start + i)
}

/// Appends `n` in decimal.
pub(crate) fn push_decimal(out: &mut Vec<u8>, mut n: u64) {
    let mut digits = [0u8; 20]; // u64::MAX has 20 digits
    let mut start = digits.len();
    loop {
        start -= 1;
        digits[start] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[start..]);
}

/// Writes `n` into `slot` in decimal, zero-padded to the slot's width; higher digits that do not
/// fit are dropped (callers pass numbers that fit).
pub(crate) fn put_padded(slot: &mut [u8], mut n: u32) {
    for digit in slot.iter_mut().rev() {
        *digit = b'0' + (n % 10) as u8;
        n /= 10;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn decimal(n: u64) -> String {
        let mut out = Vec::new();
        push_decimal(&mut out, n);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn decimals_match_display() {
        for n in [0, 1, 9, 10, 99, 100, 12_345, u64::from(u32::MAX), u64::MAX] {
            assert_eq!(decimal(n), n.to_string());
        }
        let mut slot = [0u8; 4];
        put_padded(&mut slot, 7);
        assert_eq!(&slot, b"0007");
        put_padded(&mut slot, 2026);
        assert_eq!(&slot, b"2026");
    }

    proptest! {
        #[test]
        fn position_matches_a_byte_at_a_time_search(
            bytes in prop::collection::vec(prop_oneof![Just(b'\n'), Just(b'\\'), any::<u8>()], 0..100),
            skip in 0usize..100,
        ) {
            // Starting at different offsets moves the hits across block boundaries.
            let bytes = &bytes[skip.min(bytes.len())..];
            let hit = |b: u8| (b == b'\n') | (b == b'\\');
            prop_assert_eq!(position(bytes, hit), bytes.iter().position(|&b| hit(b)));
        }

        #[test]
        fn decimals_match_display_everywhere(n in any::<u64>()) {
            prop_assert_eq!(decimal(n), n.to_string());
        }
    }
}
