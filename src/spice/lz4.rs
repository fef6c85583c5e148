//! An LZ4 *block* compressor (no frame header), as SPICE's LZ4 image carries one or more raw
//! blocks (brief §4; format: lz4/lz4 doc/lz4_Block_format.md).
//!
//! Greedy, one hash table, no backward extension: it trades a little ratio for simple code.
//! Screens compress well anyway (flat areas, repeated rows), and the output only has to be a
//! valid block: spice-gtk decodes it with liblz4's `LZ4_decompress_safe_continue`.

/// Bytes SPICE's LZ4 image adds around one block: `data_size` (4), top_down (1), format (1)
/// and the big-endian block length (4).
pub const FRAMING: usize = 10;

/// Shortest match the format can express.
const MIN_MATCH: usize = 4;
/// "The last match must start at least 12 bytes before the end of block."
const MFLIMIT: usize = 12;
/// "The last 5 bytes of input are always literals."
const LAST_LITERALS: usize = 5;
/// Offsets are 16-bit.
const MAX_DISTANCE: usize = 65_535;
/// 2^14 u32 entries = 64 KiB of table: liblz4's default `LZ4_MEMORY_USAGE`.
const HASH_LOG: u32 = 14;
/// After this many misses in a row the scan steps faster over incompressible data (liblz4's
/// `LZ4_skipTrigger`).
const SKIP_TRIGGER: u32 = 6;

fn read_u32(input: &[u8], at: usize) -> Option<u32> {
    input
        .get(at..at.checked_add(4)?)
        .and_then(|b| b.try_into().ok())
        .map(u32::from_le_bytes)
}

fn hash(seq: u32) -> usize {
    // Knuth's multiplicative hash, as liblz4's LZ4_hash4.
    let h = seq.wrapping_mul(2_654_435_761) >> (32 - HASH_LOG);
    usize::try_from(h).unwrap_or(0)
}

/// Writes a length continuation: 255s then the remainder.
fn put_len(out: &mut Vec<u8>, mut len: usize) {
    while len >= 255 {
        out.push(255);
        len -= 255;
    }
    // `len < 255` here.
    out.push(u8::try_from(len).unwrap_or(u8::MAX));
}

fn nibble(len: usize) -> u8 {
    u8::try_from(len.min(15)).unwrap_or(15)
}

fn put_sequence(out: &mut Vec<u8>, literals: &[u8], matched: Option<(usize, usize)>) {
    let lit = literals.len();
    let ml = matched.map_or(0, |(_, len)| len - MIN_MATCH);
    out.push((nibble(lit) << 4) | if matched.is_some() { nibble(ml) } else { 0 });
    if lit >= 15 {
        put_len(out, lit - 15);
    }
    out.extend_from_slice(literals);
    if let Some((offset, _)) = matched {
        let offset = u16::try_from(offset).unwrap_or(u16::MAX);
        out.extend_from_slice(&offset.to_le_bytes());
        if ml >= 15 {
            put_len(out, ml - 15);
        }
    }
}

/// Compresses `input` into one LZ4 block.
pub fn compress_block(input: &[u8]) -> Vec<u8> {
    let n = input.len();
    let mut out = Vec::with_capacity(n / 4 + 16);
    let mut table = vec![0u32; 1 << HASH_LOG];
    let mut anchor = 0;
    let mut i = 0;
    let mut misses = 0u32;
    let match_limit = n.saturating_sub(MFLIMIT);
    while i < match_limit {
        let Some(seq) = read_u32(input, i) else { break };
        let h = hash(seq);
        let candidate = table.get(h).copied().unwrap_or(0);
        if let Some(slot) = table.get_mut(h) {
            // Positions are stored +1 so that 0 means empty; blocks beyond 4 GiB never
            // happen (a surface is at most 256 MiB).
            *slot = u32::try_from(i + 1).unwrap_or(0);
        }
        let c = usize::try_from(candidate).unwrap_or(0);
        if c != 0 && i - (c - 1) <= MAX_DISTANCE && read_u32(input, c - 1) == Some(seq) {
            let c = c - 1;
            let max = n - LAST_LITERALS - i;
            let mut len = MIN_MATCH;
            while len < max && input.get(c + len) == input.get(i + len) {
                len += 1;
            }
            put_sequence(&mut out, &input[anchor..i], Some((i - c, len)));
            i += len;
            anchor = i;
            misses = 0;
        } else {
            misses = misses.saturating_add(1);
            i += 1 + usize::try_from(misses >> SKIP_TRIGGER).unwrap_or(0);
        }
    }
    put_sequence(&mut out, &input[anchor..], None);
    out
}

/// Decompresses one block into at most `max_out` bytes; `None` if malformed. For tests.
#[cfg(test)]
pub fn decompress_block(block: &[u8], max_out: usize) -> Option<Vec<u8>> {
    let mut out: Vec<u8> = Vec::new();
    let mut i = 0;
    let read_len = |i: &mut usize, mut len: usize| -> Option<usize> {
        loop {
            let b = *block.get(*i)?;
            *i += 1;
            len += usize::from(b);
            if b != 255 {
                return Some(len);
            }
        }
    };
    loop {
        let token = *block.get(i)?;
        i += 1;
        let mut lit = usize::from(token >> 4);
        if lit == 15 {
            lit = read_len(&mut i, lit)?;
        }
        out.extend_from_slice(block.get(i..i + lit)?);
        i += lit;
        if i == block.len() {
            return (out.len() <= max_out).then_some(out);
        }
        let offset = usize::from(u16::from_le_bytes(block.get(i..i + 2)?.try_into().ok()?));
        i += 2;
        let mut ml = usize::from(token & 15);
        if ml == 15 {
            ml = read_len(&mut i, ml)?;
        }
        ml += MIN_MATCH;
        if offset == 0 || offset > out.len() || out.len() + ml > max_out {
            return None;
        }
        let start = out.len() - offset;
        for k in 0..ml {
            let b = out[start + k];
            out.push(b);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(input: &[u8]) -> usize {
        let block = compress_block(input);
        assert_eq!(
            decompress_block(&block, input.len()).as_deref(),
            Some(input),
            "round trip of {} bytes",
            input.len()
        );
        block.len()
    }

    #[test]
    fn round_trips_edge_sizes() {
        for n in [0, 1, 4, 5, 12, 13, 16, 17, 100] {
            round_trip(&vec![7u8; n]);
            round_trip(&(0..n).map(|i| (i * 31 % 251) as u8).collect::<Vec<_>>());
        }
    }

    #[test]
    fn compresses_flat_screens_and_survives_noise() {
        let flat = vec![0x20u8; 640 * 480 * 4];
        assert!(round_trip(&flat) < flat.len() / 100);
        let mut x = 0x1234_5678u32;
        let noise: Vec<u8> = (0..100_000)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                x as u8
            })
            .collect();
        assert!(round_trip(&noise) <= noise.len() + noise.len() / 255 + 16);
    }

    #[test]
    fn long_matches_and_literals_use_continuation_bytes() {
        let mut v = vec![1u8; 300];
        v.extend((0..600).map(|i| (i % 256) as u8));
        v.extend(vec![9u8; 70_000]);
        round_trip(&v);
    }
}
