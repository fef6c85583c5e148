//! The adaptive state QUIC's encoder and decoder evolve in lock step: per channel, which
//! Golomb code each context bucket uses; per image, the wait counts between model updates
//! and the run-length coder's state (quic.c `CommonState`, `update_model`, `tabrand`,
//! `encode_state_run`). Any divergence from the decoder's copy corrupts the rest of the image.

use super::tables::{
    low_mask, wm_trigger, BUCKETS, CHAOS, CODES_N, MELC, TABRAND_SEED, WMI_MAX, WMI_NEXT,
};

/// One channel's context model: per bucket, a running codeword-length sum for every code
/// number and the best code number so far.
#[derive(Debug, Clone)]
pub struct ChannelModel {
    counters: [[u32; CODES_N]; BUCKETS],
    best: [u8; BUCKETS],
}

impl Default for ChannelModel {
    fn default() -> Self {
        Self {
            counters: [[0; CODES_N]; BUCKETS],
            // `encoder_reset_channels`: every bucket starts on code BPC - 1.
            best: [(CODES_N - 1) as u8; BUCKETS],
        }
    }
}

impl ChannelModel {
    /// The code number to use in context bucket `bucket` (of the previous pixel's residual;
    /// `tables::BUCKET_OF`).
    #[inline(always)]
    pub fn code_for(&self, bucket: u8) -> usize {
        usize::from(self.best[usize::from(bucket) & (BUCKETS - 1)])
    }

    /// Learns that a value whose codewords are `codes` (its `tables::CODES` row) was coded in
    /// context bucket `bucket` (`update_model`): the smallest length sum wins, ties go to the
    /// larger code number, and all sums halve once the winner passes `trigger`.
    #[inline]
    pub fn update(&mut self, bucket: u8, codes: &[u32; CODES_N], trigger: u32) {
        let counters = &mut self.counters[usize::from(bucket) & (BUCKETS - 1)];
        let len = |l: usize| codes[l] & 0xff;
        let mut best = CODES_N - 1;
        counters[best] = counters[best].wrapping_add(len(best));
        let mut best_len = counters[best];
        for l in (0..CODES_N - 1).rev() {
            counters[l] = counters[l].wrapping_add(len(l));
            if counters[l] < best_len {
                best = l;
                best_len = counters[l];
            }
        }
        self.best[usize::from(bucket) & (BUCKETS - 1)] = best as u8;
        if best_len > trigger {
            for c in counters.iter_mut() {
                *c >>= 1;
            }
        }
    }
}

/// The state shared by the three channels of an RGB image (`Encoder::rgb_state`).
#[derive(Debug, Clone)]
pub struct CommonState {
    /// Pixels still to code before the next model update.
    pub waitcnt: usize,
    seed: u32,
    /// Wait mask index: updates thin out as the image goes on.
    pub wmidx: u32,
    /// Pixels left before `wmidx` grows.
    pub wmileft: usize,
    /// The halving trigger of `wmidx`.
    pub trigger: u32,
    melc_state: usize,
    /// `melclen`: a run shorter than `2^melc_len` is coded in `melc_len` bits.
    pub melc_len: u32,
}

impl Default for CommonState {
    fn default() -> Self {
        Self {
            waitcnt: 0,
            seed: TABRAND_SEED,
            wmidx: 0,
            wmileft: WMI_NEXT,
            trigger: wm_trigger(0),
            melc_state: 0,
            melc_len: MELC[0],
        }
    }
}

impl CommonState {
    /// The next pseudo-random wait (`tabrand() & waitmask`).
    #[inline]
    pub fn next_wait(&mut self, waitmask: u32) -> usize {
        self.seed = self.seed.wrapping_add(1);
        (CHAOS[(self.seed & 0xff) as usize] & waitmask) as usize
    }

    /// Whether the wait mask index still grows.
    pub fn wm_growing(&self) -> bool {
        self.wmidx < WMI_MAX
    }

    /// Moves to the next wait mask index (`wmidx++`, `set_wm_trigger`, `wmileft` reset).
    pub fn wm_next(&mut self) {
        self.wmidx = self.wmidx.saturating_add(1);
        self.trigger = wm_trigger(self.wmidx);
        self.wmileft = WMI_NEXT;
    }

    /// `melcorder`: the run length one "hit" bit stands for.
    #[inline]
    pub fn melc_order(&self) -> usize {
        1 << self.melc_len
    }

    /// After a hit: longer runs are expected.
    #[inline]
    pub fn melc_up(&mut self) {
        if self.melc_state < MELC.len() - 1 {
            self.melc_state += 1;
            self.melc_len = MELC[self.melc_state];
        }
    }

    /// After a run's remainder: shorter runs are expected.
    #[inline]
    pub fn melc_down(&mut self) {
        if self.melc_state > 0 {
            self.melc_state -= 1;
            self.melc_len = MELC[self.melc_state];
        }
    }
}

/// Splits one row of `width` pixels into the segments coded with one wait mask each
/// (`compress_row` / `uncompress_row`): calls `seg(start, end, waitmask)` for each and
/// advances the wait mask index as 2048-pixel stretches complete.
#[inline]
pub fn for_each_segment(
    state: &mut CommonState,
    width: usize,
    mut seg: impl FnMut(&mut CommonState, usize, usize, u32),
) {
    let mut pos = 0;
    let mut left = width;
    while state.wm_growing() && state.wmileft <= left {
        if state.wmileft > 0 {
            let end = pos + state.wmileft;
            let mask = low_mask(state.wmidx);
            seg(state, pos, end, mask);
            left -= state.wmileft;
            pos = end;
        }
        state.wm_next();
    }
    if left > 0 {
        let mask = low_mask(state.wmidx);
        seg(state, pos, pos + left, mask);
        if state.wm_growing() {
            state.wmileft -= left;
        }
    }
}
