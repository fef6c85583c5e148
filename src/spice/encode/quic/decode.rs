//! A QUIC decoder for tests only, written after spice-common's decoder (quic.c
//! `quic_decode_begin`, `decode_eatbits`, `golomb_decoding_8bpc`, `decode_state_run`;
//! quic_tmpl.c `uncompress_row0_seg`, `uncompress_row_seg`), with its read-ahead word, so that
//! a stream the real decoder would run off the end of fails here too. The real judges are
//! spice-gtk clients (tests/quic_e2e.rs); this one checks every corner case fast.

use super::model::{for_each_segment, ChannelModel, CommonState};
use super::tables::{low_mask, BUCKET_OF, CODES, L2U, SHAPES};

/// Why a stream does not decode.
#[derive(Debug, PartialEq, Eq)]
pub enum DecodeError {
    Header(&'static str),
    /// More words were needed than the stream holds.
    Truncated,
    /// A run longer than the segment (`wrong RLE`).
    Run,
}

struct Reader<'a> {
    words: &'a [u32],
    pos: usize,
    word: u32,
    next: u32,
    avail: u32,
}

impl<'a> Reader<'a> {
    fn new(words: &'a [u32]) -> Result<Self, DecodeError> {
        let first = *words.first().ok_or(DecodeError::Truncated)?;
        Ok(Self {
            words,
            pos: 1,
            word: first,
            next: first,
            avail: 0,
        })
    }

    fn eat(&mut self, len: u32) -> Result<(), DecodeError> {
        assert!(len > 0 && len < 32);
        self.word <<= len;
        if self.avail >= len {
            self.avail -= len;
            self.word |= self.next.checked_shr(self.avail).unwrap_or(0);
            return Ok(());
        }
        let delta = len - self.avail;
        self.word |= self.next << delta;
        self.next = *self.words.get(self.pos).ok_or(DecodeError::Truncated)?;
        self.pos += 1;
        self.avail = 32 - delta;
        self.word |= self.next >> self.avail;
        Ok(())
    }

    fn eat32(&mut self) -> Result<u32, DecodeError> {
        let w = self.word;
        self.eat(16)?;
        self.eat(16)?;
        Ok(w)
    }

    /// One Golomb codeword under code number `l`.
    fn golomb(&mut self, l: usize) -> Result<u8, DecodeError> {
        let s = SHAPES[l];
        let bits = self.word;
        let (value, len) = if bits > low_mask(32 - s.alt_prefix) {
            let zeros = bits.leading_zeros();
            let len = zeros + 1 + l as u32;
            (
                (zeros << l) | ((bits >> (32 - len)) & low_mask(l as u32)),
                len,
            )
        } else {
            let len = s.escape_len();
            (
                s.n_gr + ((bits >> (32 - len)) & low_mask(s.suffix_len)),
                len,
            )
        };
        self.eat(len)?;
        Ok(value as u8)
    }

    fn run(&mut self, st: &mut CommonState) -> Result<usize, DecodeError> {
        let mut len = 0;
        loop {
            let ones = (!(self.word >> 24) as u8).leading_zeros();
            for _ in 0..ones {
                len += st.melc_order();
                st.melc_up();
            }
            if ones != 8 {
                self.eat(ones + 1)?;
                break;
            }
            self.eat(8)?;
        }
        if st.melc_len > 0 {
            len += (self.word >> (32 - st.melc_len)) as usize;
            self.eat(st.melc_len)?;
        }
        st.melc_down();
        Ok(len)
    }
}

struct Decoder<'a> {
    r: Reader<'a>,
    models: [ChannelModel; 3],
    corr: Vec<[u8; 3]>,
}

impl Decoder<'_> {
    /// Decodes pixel `i`'s three residuals; `pred(c)` is channel `c`'s prediction.
    fn pixel(&mut self, i: usize, pred: [u8; 3]) -> Result<[u8; 3], DecodeError> {
        let mut out = [0; 3];
        for c in 0..3 {
            let l = self.models[c].code_for(BUCKET_OF[usize::from(self.corr[i][c])]);
            let v = self.r.golomb(l)?;
            self.corr[i + 1][c] = v;
            out[c] = L2U[usize::from(v)].wrapping_add(pred[c]);
        }
        Ok(out)
    }

    fn update(&mut self, st: &CommonState, i: usize) {
        for c in 0..3 {
            let (ctx, v) = (self.corr[i][c], self.corr[i + 1][c]);
            let bucket = BUCKET_OF[usize::from(ctx)];
            self.models[c].update(bucket, &CODES[usize::from(v)], st.trigger);
        }
    }

    fn first_wait(&mut self, st: &mut CommonState, mask: u32) {
        if st.waitcnt > 0 {
            st.waitcnt -= 1;
        } else {
            st.waitcnt = st.next_wait(mask);
            self.update(st, 0);
        }
    }

    fn row0_seg(
        &mut self,
        st: &mut CommonState,
        cur: &mut [[u8; 3]],
        mut i: usize,
        end: usize,
        mask: u32,
    ) -> Result<(), DecodeError> {
        if i == 0 {
            cur[0] = self.pixel(0, [0; 3])?;
            self.first_wait(st, mask);
            i = 1;
        }
        let mut stop = i + st.waitcnt;
        while stop < end {
            while i <= stop {
                cur[i] = self.pixel(i, cur[i - 1])?;
                i += 1;
            }
            self.update(st, stop);
            stop = i + st.next_wait(mask);
        }
        while i < end {
            cur[i] = self.pixel(i, cur[i - 1])?;
            i += 1;
        }
        st.waitcnt = stop - end;
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    fn row_seg(
        &mut self,
        st: &mut CommonState,
        prev: &[[u8; 3]],
        cur: &mut [[u8; 3]],
        mut i: usize,
        end: usize,
        mask: u32,
    ) -> Result<(), DecodeError> {
        let avg = |a: [u8; 3], b: [u8; 3]| {
            [0, 1, 2].map(|c| ((u16::from(a[c]) + u16::from(b[c])) >> 1) as u8)
        };
        let mut run_index = 0;
        if i == 0 {
            cur[0] = self.pixel(0, prev[0])?;
            self.first_wait(st, mask);
            i = 1;
        }
        let mut stop = i + st.waitcnt;
        loop {
            let mut run = false;
            'rows: {
                while stop < end {
                    while i <= stop {
                        if prev[i - 1] == prev[i]
                            && run_index != i
                            && i > 2
                            && cur[i - 1] == cur[i - 2]
                        {
                            run = true;
                            break 'rows;
                        }
                        cur[i] = self.pixel(i, avg(cur[i - 1], prev[i]))?;
                        i += 1;
                    }
                    self.update(st, stop);
                    stop = i + st.next_wait(mask);
                }
                while i < end {
                    if prev[i - 1] == prev[i] && run_index != i && i > 2 && cur[i - 1] == cur[i - 2]
                    {
                        run = true;
                        break 'rows;
                    }
                    cur[i] = self.pixel(i, avg(cur[i - 1], prev[i]))?;
                    i += 1;
                }
            }
            if !run {
                st.waitcnt = stop - end;
                return Ok(());
            }
            st.waitcnt = stop - i;
            run_index = i;
            let len = self.r.run(st)?;
            if len > end - i {
                return Err(DecodeError::Run);
            }
            for _ in 0..len {
                cur[i] = cur[i - 1];
                i += 1;
            }
            if i == end {
                return Ok(());
            }
            stop = i + st.waitcnt;
        }
    }
}

/// Decodes a `SpiceQUICData` payload to its width, height and B, G, R rows.
pub fn decode(payload: &[u8]) -> Result<(u32, u32, Vec<u8>), DecodeError> {
    let (size, data) = payload
        .split_first_chunk::<4>()
        .ok_or(DecodeError::Header("data_size"))?;
    if u32::from_le_bytes(*size) as usize != data.len() || data.len() % 4 != 0 {
        return Err(DecodeError::Header("data_size"));
    }
    let words: Vec<u32> = data
        .chunks_exact(4)
        .map(|w| u32::from_le_bytes([w[0], w[1], w[2], w[3]]))
        .collect();
    let mut r = Reader::new(&words)?;
    if r.eat32()? != 0x4349_5551 {
        return Err(DecodeError::Header("magic"));
    }
    if r.eat32()? != 0 {
        return Err(DecodeError::Header("version"));
    }
    if !matches!(r.eat32()?, 3 | 4) {
        return Err(DecodeError::Header("type"));
    }
    let width = r.eat32()?;
    let height = r.eat32()?;
    if width == 0 || height == 0 || u64::from(width) * u64::from(height) > 1 << 26 {
        return Err(DecodeError::Header("size"));
    }
    let w = width as usize;
    let mut d = Decoder {
        r,
        models: Default::default(),
        corr: vec![[0; 3]; w + 1],
    };
    let mut st = CommonState::default();
    let mut rows: Vec<Vec<[u8; 3]>> = Vec::new();
    let mut result = Ok(());
    for row in 0..height {
        let mut cur = vec![[0u8; 3]; w];
        if row == 0 {
            for_each_segment(&mut st, w, |st, s, e, m| {
                if result.is_ok() {
                    result = d.row0_seg(st, &mut cur, s, e, m);
                }
            });
        } else {
            d.corr[0] = d.corr[1];
            let prev = rows.last().expect("a previous row");
            for_each_segment(&mut st, w, |st, s, e, m| {
                if result.is_ok() {
                    result = d.row_seg(st, prev, &mut cur, s, e, m);
                }
            });
        }
        result.as_ref().map_err(|e| match e {
            DecodeError::Header(h) => DecodeError::Header(h),
            DecodeError::Truncated => DecodeError::Truncated,
            DecodeError::Run => DecodeError::Run,
        })?;
        rows.push(cur);
    }
    let bgr = rows
        .iter()
        .flatten()
        .flat_map(|&[r, g, b]| [b, g, r])
        .collect();
    Ok((width, height, bgr))
}
