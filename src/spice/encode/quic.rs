//! A QUIC encoder for 24-bit images: the lossless codec (SFALIC-based) spice-server uses by
//! default for natural images, which every SPICE client decodes without a capability.
//!
//! Format (spice-common quic.c, read as the decoder in `quic_decode_begin` / `quic_decode`
//! and the row templates of quic_tmpl.c): a stream of 32-bit little-endian words filled from
//! their most significant bit. Five header words (magic "QUIC", version 0, image type,
//! width, height), then the pixels row by row, each channel (R, G, B) of each pixel coded
//! in turn:
//! - the pixel is predicted from its left neighbour `a` (first row), the one above `b`
//!   (first column), else `(a + b) / 2`; the residual mod 256 is folded to 0, 1, 2... by
//!   magnitude and Golomb-Rice coded with the code number its context bucket (the previous
//!   pixel's folded residual) has found best so far;
//! - buckets learn only at pseudo-random pixels (a shared table of waits whose mask widens
//!   every 2048 pixels), so encoder and decoder update the same models at the same pixels;
//! - from the second row, where the row above repeats and the two pixels to the left are
//!   equal, a run of pixels equal to the left one is coded by an adaptive run-length code
//!   (MELCODE) instead.
//!
//! The decoder mirrors every state change, including the stale context values a run leaves
//! behind in the per-channel row of residuals; this encoder keeps the same row and the same
//! control flow, segment by segment, so that both sides agree on every bit.
//!
//! The type sent is RGB32: spice-common decodes RGB24 and RGB32 streams identically (into an
//! x8r8g8b8 surface), and RGB32 is what spice-server sends for 32-bit surfaces.

use self::model::{for_each_segment, ChannelModel, CommonState};
use self::tables::{BUCKET_OF_RESIDUAL, CODES_BY_RESIDUAL, CODES_N};

mod model;
mod tables;

/// "QUIC" as a little-endian word.
const MAGIC: u32 = 0x4349_5551;
/// Version 0.0.
const VERSION: u32 = 0;
/// `QUIC_IMAGE_TYPE_RGB32`.
const TYPE_RGB32: u32 = 4;

/// Bytes of a 24-bit pixel as read (B, G, R).
const BGR: usize = 3;

/// Pixels the decoder accepts at most (`SPICE_MAX_IMAGE_SIZE`).
const MAX_PIXELS: u64 = 512 * 1024 * 1024 - 1;

/// The payload's `data_size` prefix (`SpiceQUICData`).
const SIZE_PREFIX: usize = 4;
/// Header words (magic, version, type, width, height) and the flush's closing words.
const FRAME_BYTES: usize = 5 * 4 + 2 * 4;
/// Bits one pixel can cost at most: three 26-bit codewords and a 16-bit empty run (a run's
/// "hit" bits are paid for by the pixels it covers, at most one bit each).
const MAX_BITS_PER_PIXEL: u64 = 3 * 26 + 16 + 1;

/// The largest payload a `width × height` image can encode to: a bound on what
/// [`encode_bgr`] may allocate whatever the pixels.
pub fn max_payload_len(width: u32, height: u32) -> Option<usize> {
    let px = u64::from(width).checked_mul(u64::from(height))?;
    let bits = px.checked_mul(MAX_BITS_PER_PIXEL)?;
    let bytes = usize::try_from(bits.div_ceil(8)).ok()?;
    bytes.checked_add(SIZE_PREFIX + FRAME_BYTES + 4)
}

/// Encodes `width × height` pixels given as rows of `width × 3` bytes (B, G, R), top row
/// first, into a `SpiceQUICData` payload (`u32 data_size`, then the QUIC words).
///
/// `None` if the sizes do not match the pixels, the image is empty or too large for the
/// decoder, or the payload would exceed `limit` bytes (the encoder then stops early, so a
/// caller that would rather send raw pixels passes their size and pays for no more).
pub fn encode_bgr(pixels: &[u8], width: u32, height: u32, limit: usize) -> Option<Vec<u8>> {
    if width == 0 || height == 0 || u64::from(width) * u64::from(height) > MAX_PIXELS {
        return None;
    }
    let w = usize::try_from(width).ok()?;
    let stride = w.checked_mul(BGR)?;
    if Some(pixels.len()) != stride.checked_mul(usize::try_from(height).ok()?) {
        return None;
    }
    let cap = limit.min(max_payload_len(width, height)?);
    let mut coder = Coder {
        pending: Pending::default(),
        words: Words::new(cap)?,
        models: Default::default(),
        corr: vec![0; w.checked_add(1)?],
    };
    let mut state = CommonState::default();
    for word in [MAGIC, VERSION, TYPE_RGB32, width, height] {
        coder.words.push(word);
    }
    let mut rows = pixels.chunks_exact(stride);
    let mut prev = vec![0; w];
    let mut cur = vec![0; w];
    pack_row(rows.next()?, &mut prev);
    for_each_segment(&mut state, w, |st, start, end, mask| {
        coder.row0_segment(st, &prev, start, end, mask);
    });
    for row in rows {
        if coder.words.over {
            return None;
        }
        pack_row(row, &mut cur);
        // The first pixel's context is the first residual of the row above.
        coder.corr[0] = coder.corr[1];
        for_each_segment(&mut state, w, |st, start, end, mask| {
            coder.row_segment(st, &prev, &cur, start, end, mask);
        });
        std::mem::swap(&mut prev, &mut cur);
    }
    coder.pending.flush(&mut coder.words);
    coder.words.finish()
}

/// Pixels are handled packed in a word, B in bits 0..8, G in 8..16, R in 16..24 (the
/// bytes as read); channels are coded R, G, B, so from the highest byte down.
const SHIFTS: [u32; 3] = [16, 8, 0];
const LOW7: u32 = 0x007f_7f7f;
const HIGH: u32 = 0x0080_8080;

/// Packs a row of B, G, R bytes into `out`.
fn pack_row(row: &[u8], out: &mut [u32]) {
    for (p, o) in row.chunks_exact(BGR).zip(out.iter_mut()) {
        *o = u32::from(p[0]) | u32::from(p[1]) << 8 | u32::from(p[2]) << 16;
    }
}

/// Per byte: `x - y` mod 256.
#[inline(always)]
fn sub_bytes(x: u32, y: u32) -> u32 {
    ((x | HIGH).wrapping_sub(y & LOW7) ^ ((x ^ !y) & HIGH)) & 0x00ff_ffff
}

/// Per byte: `(a + b) / 2` rounded down.
#[inline(always)]
fn avg_bytes(a: u32, b: u32) -> u32 {
    (a & b) + (((a ^ b) >> 1) & LOW7)
}

/// Bits not yet in a word. Kept in locals while a segment is coded (see
/// [`Coder::row_segment`]), so that the accumulator stays in registers.
#[derive(Debug, Clone, Copy, Default)]
struct Pending {
    /// The newest bits in the low `n`.
    acc: u64,
    n: u32,
}

impl Pending {
    /// Appends the `len` (1..=32) low bits of `code`, most significant first.
    #[inline(always)]
    fn put(&mut self, code: u32, len: u32, out: &mut Words) {
        // n < 32 and len <= 32: the pending bits fit the accumulator.
        self.acc = (self.acc << len) | u64::from(code);
        self.n += len;
        if self.n >= 32 {
            self.n -= 32;
            out.push((self.acc >> self.n) as u32);
        }
    }

    /// quic.c `flush`: the last word padded with zeros, then one zero word (the decoder
    /// reads a word ahead).
    fn flush(mut self, out: &mut Words) {
        if self.n > 0 {
            self.put(0, 32 - self.n, out);
        }
        out.push(0);
    }
}

/// The payload being written, bounded by its capacity.
struct Words {
    out: Vec<u8>,
    cap: usize,
    /// A word did not fit: the result is discarded.
    over: bool,
}

impl Words {
    fn new(cap: usize) -> Option<Self> {
        if cap < SIZE_PREFIX {
            return None;
        }
        let mut out = Vec::with_capacity(cap);
        out.extend_from_slice(&[0; SIZE_PREFIX]);
        Some(Self {
            out,
            cap,
            over: false,
        })
    }

    #[inline(always)]
    fn push(&mut self, w: u32) {
        if self.out.len() + 4 > self.cap {
            self.over = true;
        } else {
            self.out.extend_from_slice(&w.to_le_bytes());
        }
    }

    /// The payload with its `data_size`, or `None` if it did not fit.
    fn finish(mut self) -> Option<Vec<u8>> {
        if self.over {
            return None;
        }
        let size = u32::try_from(self.out.len() - SIZE_PREFIX).ok()?;
        self.out
            .get_mut(..SIZE_PREFIX)?
            .copy_from_slice(&size.to_le_bytes());
        self.out.shrink_to_fit();
        Some(self.out)
    }
}

/// Everything but the common state: the bit stream, the three channel models (R, G, B) and
/// the row of residuals (`correlate_row`, packed as the pixels are; index `i + 1` is pixel
/// `i`, index 0 the context of pixel 0). The decoder keeps them folded (`xlatU2L`); they
/// are kept unfolded here and every table is indexed accordingly, which is the same state.
struct Coder {
    pending: Pending,
    words: Words,
    models: [ChannelModel; 3],
    corr: Vec<u32>,
}

impl Coder {
    /// Codes pixel `i`'s residuals `v` in the context of pixel `i - 1`'s, `ctx` (which is
    /// `corr[i]`, carried in a register by the callers), and makes `v` the next context.
    #[inline(always)]
    fn put_pixel(&mut self, p: &mut Pending, ctx: &mut u32, i: usize, v: u32) {
        let c = *ctx;
        *ctx = v;
        self.corr[i + 1] = v;
        let ctx = c;
        let [e0, e1, e2] = [0, 1, 2].map(|c| {
            let bucket = BUCKET_OF_RESIDUAL[((ctx >> SHIFTS[c]) & 0xff) as usize];
            let l = self.models[c].code_for(bucket);
            CODES_BY_RESIDUAL[((v >> SHIFTS[c]) & 0xff) as usize][l & (CODES_N - 1)]
        });
        let (n0, n1, n2) = (e0 & 0xff, e1 & 0xff, e2 & 0xff);
        if n0 + n1 + n2 <= 32 {
            let code = (e0 >> 8) << (n1 + n2) | (e1 >> 8) << n2 | e2 >> 8;
            p.put(code, n0 + n1 + n2, &mut self.words);
        } else {
            p.put(e0 >> 8, n0, &mut self.words);
            p.put(e1 >> 8, n1, &mut self.words);
            p.put(e2 >> 8, n2, &mut self.words);
        }
    }

    /// Teaches each channel's model pixel `i`'s residual (`UPDATE_MODEL(i)`).
    #[inline]
    fn update(&mut self, st: &CommonState, i: usize) {
        let ctx = self.corr[i];
        let v = self.corr[i + 1];
        for (model, s) in self.models.iter_mut().zip(SHIFTS) {
            let bucket = BUCKET_OF_RESIDUAL[((ctx >> s) & 0xff) as usize];
            let codes = &CODES_BY_RESIDUAL[((v >> s) & 0xff) as usize];
            model.update(bucket, codes, st.trigger);
        }
    }

    /// After a row's first pixel: count down the wait, or draw a new one and update.
    #[inline]
    fn first_pixel_wait(&mut self, st: &mut CommonState, mask: u32) {
        if st.waitcnt > 0 {
            st.waitcnt -= 1;
        } else {
            st.waitcnt = st.next_wait(mask);
            self.update(st, 0);
        }
    }

    /// Pixels `i..end` of the first row (`compress_row0_seg`): left prediction, no runs.
    fn row0_segment(
        &mut self,
        st: &mut CommonState,
        cur: &[u32],
        mut i: usize,
        end: usize,
        mask: u32,
    ) {
        let mut p = self.pending;
        let mut ctx = self.corr[i];
        if i == 0 {
            self.put_pixel(&mut p, &mut ctx, 0, cur[0]);
            self.first_pixel_wait(st, mask);
            i = 1;
        }
        let mut stop = i + st.waitcnt;
        while stop < end {
            while i <= stop {
                self.put_pixel(&mut p, &mut ctx, i, sub_bytes(cur[i], cur[i - 1]));
                i += 1;
            }
            self.update(st, stop);
            stop = i + st.next_wait(mask);
        }
        while i < end {
            self.put_pixel(&mut p, &mut ctx, i, sub_bytes(cur[i], cur[i - 1]));
            i += 1;
        }
        st.waitcnt = stop - end;
        self.pending = p;
    }

    /// Pixels `i..end` of a later row (`compress_row_seg`): `(a + b) / 2` prediction and
    /// runs.
    fn row_segment(
        &mut self,
        st: &mut CommonState,
        prev: &[u32],
        cur: &[u32],
        start: usize,
        end: usize,
        mask: u32,
    ) {
        let mut p = self.pending;
        self.row_segment_with(&mut p, st, prev, cur, start, end, mask);
        self.pending = p;
    }

    #[allow(clippy::too_many_arguments)]
    #[inline(always)]
    fn row_segment_with(
        &mut self,
        p: &mut Pending,
        st: &mut CommonState,
        prev: &[u32],
        cur: &[u32],
        mut i: usize,
        end: usize,
        mask: u32,
    ) {
        let (prev, cur) = (&prev[..end], &cur[..end]);
        let mut run_index = 0;
        let mut ctx = self.corr[i];
        if i == 0 {
            self.put_pixel(p, &mut ctx, 0, sub_bytes(cur[0], prev[0]));
            self.first_pixel_wait(st, mask);
            i = 1;
        }
        let mut stop = i + st.waitcnt;
        loop {
            // RLE_PRED_IMP: a run may start where the row above repeats and the two pixels
            // to the left are equal, but not where the last run stopped.
            let run = 'coded: {
                while stop < end {
                    while i <= stop {
                        if prev[i - 1] == prev[i]
                            && run_index != i
                            && i > 2
                            && cur[i - 1] == cur[i - 2]
                        {
                            break 'coded true;
                        }
                        let pred = avg_bytes(cur[i - 1], prev[i]);
                        self.put_pixel(p, &mut ctx, i, sub_bytes(cur[i], pred));
                        i += 1;
                    }
                    self.update(st, stop);
                    stop = i + st.next_wait(mask);
                }
                while i < end {
                    if prev[i - 1] == prev[i] && run_index != i && i > 2 && cur[i - 1] == cur[i - 2]
                    {
                        break 'coded true;
                    }
                    let pred = avg_bytes(cur[i - 1], prev[i]);
                    self.put_pixel(p, &mut ctx, i, sub_bytes(cur[i], pred));
                    i += 1;
                }
                false
            };
            if !run {
                st.waitcnt = stop - end;
                return;
            }
            // do_run: the wait resumes after the run; the run's pixels leave their
            // residuals untouched.
            run_index = i;
            st.waitcnt = stop - i;
            let mut len = 0;
            while cur[i] == cur[i - 1] {
                len += 1;
                i += 1;
                if i == end {
                    self.put_run(p, st, len);
                    return;
                }
            }
            self.put_run(p, st, len);
            // The run's pixels left their residuals as they were (from an earlier row).
            ctx = self.corr[i];
            stop = i + st.waitcnt;
        }
    }

    /// `encode_state_run`: a "hit" bit per `melcorder` pixels (the order growing with
    /// each), a 0, then the remainder in `melclen` bits.
    fn put_run(&mut self, p: &mut Pending, st: &mut CommonState, mut len: usize) {
        let mut hits = 0usize;
        while len >= st.melc_order() {
            hits += 1;
            len -= st.melc_order();
            st.melc_up();
        }
        while hits >= 16 {
            p.put(0xffff, 16, &mut self.words);
            hits -= 16;
        }
        if hits > 0 {
            p.put((1 << hits) - 1, hits as u32, &mut self.words);
        }
        // len < 2^melclen <= 2^15.
        p.put(len as u32, st.melc_len + 1, &mut self.words);
        st.melc_down();
    }
}

#[cfg(test)]
pub(crate) mod decode;
#[cfg(test)]
mod tests;
